/* `mammo synth --layout cbis-ddsm`: a synthetic CBIS-DDSM download with the real layout and its
 * quirks (data-formats.md section 1):
 *
 *   OUT/mass_case_description_train_set.csv, mass_case_description_test_set.csv,
 *   OUT/calc_case_description_train_set.csv, calc_case_description_test_set.csv
 *       one row per abnormality; the real headers (mass: breast_density, mass shape/margins;
 *       calc: "breast density", calc type/distribution); paths
 *       <Subject>/<StudyUID>/<SeriesUID>/00000x.dcm that do NOT match the files on disk; cropped
 *       and mask paths often quoted with a trailing newline inside the quotes; some rows with the
 *       cropped and mask paths swapped; several rows per image; BENIGN_WITHOUT_CALLBACK;
 *       a few breast densities of 0 and blank descriptors.
 *   OUT/metadata.csv                      the NBIA retriever's series list
 *   OUT/CBIS-DDSM/<Subject>/<study folder>/<series folder>/<file>.dcm
 *       Subject = {Mass|Calc}-{Training|Test}_P_xxxxx_{LEFT|RIGHT}_{CC|MLO}, ROIs add _<abnormality id>;
 *       descriptive tree (default): 07-20-2016-DDSM-NA-12345/1.000000-full mammogram images-12345/1-1.dcm;
 *       an ROI holds either two series folders (ROI mask images, cropped images; 1-1.dcm each) or one
 *       "ROI mask images" folder with both files as 1-1.dcm and 1-2.dcm in random order (both files
 *       then say "ROI mask images": only size and bit depth tell the crop from the mask).
 *   OUT/synth-truth-images.csv, OUT/synth-truth-rois.csv   the answer key (not in the real data)
 *
 * Full images: 16-bit MONOCHROME2 Secondary Capture, PatientID = Subject (per view), no laterality or
 * view tags. Masks: 8-bit 0/255, the full image's size. Crops: 16-bit, the mask's bounding box plus
 * 15%. An image with a mass and a calcification is stored twice, under its Mass- and its Calc-
 * subject, with different UIDs, as in the real collection. CBIS-DDSM has no normal images. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom.h"
#include "fs.h"
#include "synth_layout.h"

#define UID_ROOT "1.3.6.1.4.1.9590.100.1.2"

typedef struct cb_lesion {
    mm_synth_finding f;
    int pathology; /* 0 MALIGNANT, 1 BENIGN, 2 BENIGN_WITHOUT_CALLBACK */
    char d1[48], d2[48];     /* mass shape / margins, or calc type / distribution */
    int assessment, subtlety;
} cb_lesion;

typedef struct cb_breast {
    int patient, side; /* 0 LEFT, 1 RIGHT */
    int n;
    cb_lesion les[MM_SYNTH_MAX_LESIONS];
} cb_breast;

typedef struct cb_image {
    int breast, view; /* 0 CC, 1 MLO */
    mm_synth_exam ex;
    int label;
    int first_subject, n_subjects;
} cb_image;

typedef struct cb_subject {
    int image, calc;
    char name[64], study[72], series[72], sop[72];
    char rel[512];  /* path on disk, relative to OUT */
    char csv[512];  /* "image file path" as the CSV writes it */
    char study_dir[96], series_dir[112];
    int first_roi, n_rois;
    long long bytes;
} cb_subject;

typedef struct cb_roi {
    int subject, lesion, abn_id;
    char name[80], study[72], crop_series[72], mask_series[72], crop_sop[72], mask_sop[72];
    char study_dir[96], crop_dir[112], mask_dir[112];
    int one_folder, swapped, mask_first, csv_crop_first, nl_crop, nl_mask;
    char crop_rel[512], mask_rel[512], crop_csv[512], mask_csv[512];
    long long crop_bytes, mask_bytes;
    int x0, y0, x1, y1;
} cb_roi;

typedef struct cb_patient {
    int number, test, density;
} cb_patient;

typedef struct cb_plan {
    const mm_synth_opts *o;
    cb_patient *pat;
    cb_breast *br;
    cb_image *img;
    cb_subject *sub;
    cb_roi *roi;
    int n_pat, n_br, n_img, n_sub, n_roi, cap_br, cap_img, cap_sub, cap_roi;
    uint64_t uid_next;
} cb_plan;

static const char *const pathology_names[3] = {"MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK"};

static const char *pick(mm_srng *r, const char *const *items, int n) { return items[mm_srng_int(r, 0, n - 1)]; }

static void describe(cb_lesion *l, mm_srng *r)
{
    const mm_synth_finding *f = &l->f;
    if (f->kind == MM_SYNTH_MASS) {
        static const char *const mal_shape[] = {"IRREGULAR", "IRREGULAR", "IRREGULAR-ARCHITECTURAL_DISTORTION", "LOBULATED-IRREGULAR"};
        static const char *const spic[] = {"SPICULATED", "SPICULATED", "ILL_DEFINED-SPICULATED"};
        static const char *const ill[] = {"ILL_DEFINED", "MICROLOBULATED", "ILL_DEFINED"};
        static const char *const ben_shape[] = {"ROUND", "OVAL", "OVAL"};
        static const char *const ben_marg[] = {"CIRCUMSCRIBED", "CIRCUMSCRIBED", "OBSCURED", "CIRCUMSCRIBED-OBSCURED"};
        if (f->malignant) {
            snprintf(l->d1, sizeof l->d1, "%s", pick(r, mal_shape, 4));
            snprintf(l->d2, sizeof l->d2, "%s", f->spiculated ? pick(r, spic, 3) : pick(r, ill, 3));
        } else {
            snprintf(l->d1, sizeof l->d1, "%s", f->lobulated ? "LOBULATED" : pick(r, ben_shape, 3));
            snprintf(l->d2, sizeof l->d2, "%s", pick(r, ben_marg, 4));
        }
    } else {
        static const char *const mal_type[] = {"PLEOMORPHIC", "PLEOMORPHIC", "FINE_LINEAR_BRANCHING", "PLEOMORPHIC-FINE_LINEAR_BRANCHING", "AMORPHOUS"};
        static const char *const mal_dist[] = {"CLUSTERED", "CLUSTERED", "LINEAR", "CLUSTERED-LINEAR", "SEGMENTAL"};
        static const char *const ben_type[] = {"ROUND_AND_REGULAR", "PUNCTATE", "LUCENT_CENTER", "COARSE", "ROUND_AND_REGULAR-LUCENT_CENTER"};
        static const char *const ben_dist[] = {"SCATTERED", "REGIONAL", "DIFFUSELY_SCATTERED", "SCATTERED"};
        snprintf(l->d1, sizeof l->d1, "%s", f->malignant ? pick(r, mal_type, 5) : pick(r, ben_type, 5));
        snprintf(l->d2, sizeof l->d2, "%s", f->malignant ? pick(r, mal_dist, 5) : pick(r, ben_dist, 4));
    }
    if (mm_srng_bern(r, 0.03)) l->d2[0] = '\0'; /* blank descriptors exist */
    static const int mal_a[] = {4, 4, 4, 5, 5, 5, 3, 0}, ben_a[] = {2, 2, 3, 3, 4, 4, 4, 0}, bwc_a[] = {2, 2, 3, 3, 0};
    if (l->pathology == 0) l->assessment = mal_a[mm_srng_int(r, 0, 7)];
    else if (l->pathology == 1) l->assessment = ben_a[mm_srng_int(r, 0, 7)];
    else l->assessment = bwc_a[mm_srng_int(r, 0, 4)];
    l->subtlety = mm_srng_int(r, 1, 5);
}

static void make_lesion(cb_lesion *l, mm_srng *r, int malignant, uint64_t seed)
{
    memset(l, 0, sizeof *l);
    mm_synth_finding *f = &l->f;
    f->kind = mm_srng_bern(r, 0.45) ? MM_SYNTH_CALC : MM_SYNTH_MASS;
    f->malignant = malignant;
    f->u = mm_srng_range(r, 0.25, 0.75);
    f->v = mm_srng_range(r, -0.55, 0.55);
    if (f->kind == MM_SYNTH_MASS) {
        f->size_mm = mm_srng_range(r, 8, 28);
        f->contrast = mm_srng_range(r, 0.10, 0.20);
        f->spiculated = malignant && mm_srng_bern(r, 0.8);
        f->lobulated = !malignant && mm_srng_bern(r, 0.3);
    } else {
        f->size_mm = malignant ? mm_srng_range(r, 4, 10) : mm_srng_range(r, 10, 22);
        f->contrast = mm_srng_range(r, 0.28, 0.42);
    }
    f->seed = seed;
    if (malignant) l->pathology = 0;
    else l->pathology = mm_srng_bern(r, f->kind == MM_SYNTH_CALC ? 0.4 : 0.2) ? 2 : 1;
    describe(l, r);
}

/* Image size and pixel spacing (synth.h). */
static void cbis_size(const mm_synth_opts *o, mm_srng *r, int *h, int *w, double *mmpp)
{
    double jh = mm_srng_range(r, 0.95, 1.05), jw = mm_srng_range(r, 0.95, 1.05);
    if (o->height > 0) {
        *h = o->height, *w = o->width;
    } else if (o->full_size) {
        *h = (int)lround(MM_SYNTH_CBIS_FULL_H * jh), *w = (int)lround(MM_SYNTH_CBIS_FULL_W * jw);
    } else {
        *h = (int)lround(MM_SYNTH_CBIS_H * jh), *w = (int)lround(MM_SYNTH_CBIS_W * jw);
    }
    *mmpp = MM_SYNTH_CBIS_FOV_MM / *h;
}

#define GROW(arr, n, cap)                                                                        \
    do {                                                                                         \
        if ((n) == (cap)) {                                                                      \
            (cap) = (cap) ? 2 * (cap) : 16;                                                      \
            (arr) = mm_xrealloc((arr), sizeof(*(arr)) * (size_t)(cap));                          \
        }                                                                                        \
    } while (0)

static void next_uid(cb_plan *p, char *out, size_t cap) { mm_synth_uid(out, cap, UID_ROOT, p->o->seed, p->uid_next++); }

/* Folder and file names of the chosen download tree. */
static void tree_study_dir(char *out, size_t cap, mm_synth_tree t, const char *date, int num, const char *uid)
{
    if (t == MM_SYNTH_TREE_CLASSIC) snprintf(out, cap, "%s", uid);
    else if (t == MM_SYNTH_TREE_OLD) snprintf(out, cap, "%s-DDSM-%05d", date, num);
    else snprintf(out, cap, "%s-DDSM-NA-%05d", date, num);
}

static void tree_series_dir(char *out, size_t cap, mm_synth_tree t, const char *desc, int num, const char *uid)
{
    if (t == MM_SYNTH_TREE_CLASSIC) snprintf(out, cap, "%s", uid);
    else if (t == MM_SYNTH_TREE_OLD) snprintf(out, cap, "1-%s-%05d", desc, num);
    else snprintf(out, cap, "1.000000-%s-%05d", desc, num);
}

static const char *tree_file(mm_synth_tree t, int k) /* k = 0, 1 */
{
    if (t == MM_SYNTH_TREE_OLD) return k ? "000001.dcm" : "000000.dcm";
    return k ? "1-2.dcm" : "1-1.dcm";
}

static void add_subject(cb_plan *p, mm_srng *r, int img_index, int calc)
{
    cb_image *im = &p->img[img_index];
    cb_breast *b = &p->br[im->breast];
    cb_patient *pt = &p->pat[b->patient];
    mm_synth_tree t = p->o->tree;
    GROW(p->sub, p->n_sub, p->cap_sub);
    cb_subject *s = &p->sub[p->n_sub];
    memset(s, 0, sizeof *s);
    s->image = img_index, s->calc = calc;
    snprintf(s->name, sizeof s->name, "%s-%s_P_%05d_%s_%s", calc ? "Calc" : "Mass", pt->test ? "Test" : "Training",
             pt->number, b->side ? "RIGHT" : "LEFT", im->view ? "MLO" : "CC");
    next_uid(p, s->study, sizeof s->study);
    next_uid(p, s->series, sizeof s->series);
    next_uid(p, s->sop, sizeof s->sop);
    tree_study_dir(s->study_dir, sizeof s->study_dir, t, "07-20-2016", mm_srng_int(r, 10000, 99999), s->study);
    tree_series_dir(s->series_dir, sizeof s->series_dir, t, "full mammogram images", mm_srng_int(r, 10000, 99999), s->series);
    snprintf(s->rel, sizeof s->rel, "CBIS-DDSM/%s/%s/%s/%s", s->name, s->study_dir, s->series_dir, tree_file(t, 0));
    snprintf(s->csv, sizeof s->csv, "%s/%s/%s/000000.dcm", s->name, s->study, s->series);
    s->first_roi = p->n_roi;
    static const char *const roi_dates[] = {"08-29-2017", "07-21-2016", "09-06-2017", "08-07-2016"};
    int abn = 0;
    for (int li = 0; li < b->n; li++) {
        if ((b->les[li].f.kind == MM_SYNTH_CALC) != calc) continue;
        GROW(p->roi, p->n_roi, p->cap_roi);
        cb_roi *q = &p->roi[p->n_roi++];
        memset(q, 0, sizeof *q);
        q->subject = p->n_sub, q->lesion = li, q->abn_id = ++abn;
        snprintf(q->name, sizeof q->name, "%s_%d", s->name, q->abn_id);
        next_uid(p, q->study, sizeof q->study);
        next_uid(p, q->crop_series, sizeof q->crop_series);
        next_uid(p, q->crop_sop, sizeof q->crop_sop);
        next_uid(p, q->mask_sop, sizeof q->mask_sop);
        q->one_folder = mm_srng_bern(r, 0.5);
        if (q->one_folder) snprintf(q->mask_series, sizeof q->mask_series, "%s", q->crop_series);
        else next_uid(p, q->mask_series, sizeof q->mask_series);
        q->mask_first = mm_srng_bern(r, 0.5);     /* on-disk order inside one folder */
        q->csv_crop_first = mm_srng_bern(r, 0.7); /* CSV's 000000/000001 naming in one series */
        q->swapped = mm_srng_bern(r, 0.12);       /* the CSV's cropped and mask paths exchanged */
        q->nl_crop = mm_srng_bern(r, 0.6);
        q->nl_mask = mm_srng_bern(r, 0.6);
        tree_study_dir(q->study_dir, sizeof q->study_dir, t, pick(r, roi_dates, 4), mm_srng_int(r, 10000, 99999), q->study);
        tree_series_dir(q->mask_dir, sizeof q->mask_dir, t, "ROI mask images", mm_srng_int(r, 10000, 99999), q->mask_series);
        if (q->one_folder) {
            snprintf(q->crop_dir, sizeof q->crop_dir, "%s", q->mask_dir);
            snprintf(q->mask_rel, sizeof q->mask_rel, "CBIS-DDSM/%s/%s/%s/%s", q->name, q->study_dir, q->mask_dir, tree_file(t, !q->mask_first));
            snprintf(q->crop_rel, sizeof q->crop_rel, "CBIS-DDSM/%s/%s/%s/%s", q->name, q->study_dir, q->crop_dir, tree_file(t, q->mask_first));
            snprintf(q->crop_csv, sizeof q->crop_csv, "%s/%s/%s/%s", q->name, q->study, q->crop_series, q->csv_crop_first ? "000000.dcm" : "000001.dcm");
            snprintf(q->mask_csv, sizeof q->mask_csv, "%s/%s/%s/%s", q->name, q->study, q->mask_series, q->csv_crop_first ? "000001.dcm" : "000000.dcm");
        } else {
            tree_series_dir(q->crop_dir, sizeof q->crop_dir, t, "cropped images", mm_srng_int(r, 10000, 99999), q->crop_series);
            snprintf(q->mask_rel, sizeof q->mask_rel, "CBIS-DDSM/%s/%s/%s/%s", q->name, q->study_dir, q->mask_dir, tree_file(t, 0));
            snprintf(q->crop_rel, sizeof q->crop_rel, "CBIS-DDSM/%s/%s/%s/%s", q->name, q->study_dir, q->crop_dir, tree_file(t, 0));
            snprintf(q->crop_csv, sizeof q->crop_csv, "%s/%s/%s/000000.dcm", q->name, q->study, q->crop_series);
            snprintf(q->mask_csv, sizeof q->mask_csv, "%s/%s/%s/000000.dcm", q->name, q->study, q->mask_series);
        }
    }
    s->n_rois = p->n_roi - s->first_roi;
    p->n_sub++;
}

static void make_plan(cb_plan *p)
{
    const mm_synth_opts *o = p->o;
    mm_srng r = mm_srng_make(o->seed, MM_TAG_PLAN, 0);
    p->n_pat = o->patients;
    p->pat = mm_xcalloc((size_t)o->patients, sizeof(cb_patient));
    int number = 1;
    for (int pi = 0; pi < o->patients; pi++) {
        cb_patient *pt = &p->pat[pi];
        if (pi > 0) number += 1 + (mm_srng_bern(&r, 0.5) ? mm_srng_int(&r, 0, 3) : 0);
        pt->number = number;
        pt->test = mm_srng_bern(&r, 0.2);
        static const int dens[] = {1, 2, 2, 2, 3, 3, 3, 4};
        pt->density = dens[mm_srng_int(&r, 0, 7)];
        int both = mm_srng_bern(&r, 0.1), first_side = mm_srng_int(&r, 0, 1);
        for (int side = 0; side < 2; side++) {
            if (!both && side != first_side) continue;
            GROW(p->br, p->n_br, p->cap_br);
            int bi = p->n_br++;
            cb_breast *b = &p->br[bi];
            memset(b, 0, sizeof *b);
            b->patient = pi, b->side = side;
            double u = mm_srng_unif(&r);
            b->n = u < 0.75 ? 1 : u < 0.93 ? 2 : 3;
            int prev_mal = 0;
            for (int k = 0; k < b->n; k++) {
                int mal = mm_srng_bern(&r, k == 0 ? 0.45 : prev_mal ? 0.6 : 0.2);
                make_lesion(&b->les[k], &r, mal, mm_srng_u64(&r));
                prev_mal = mal;
            }
            double vu = mm_srng_unif(&r);
            int views[2] = {vu < 0.94, vu < 0.88 || vu >= 0.94}; /* CC+MLO 88%, CC 6%, MLO 6% */
            for (int view = 0; view < 2; view++) {
                if (!views[view]) continue;
                GROW(p->img, p->n_img, p->cap_img);
                cb_image *im = &p->img[p->n_img];
                memset(im, 0, sizeof *im);
                im->breast = bi, im->view = view;
                mm_synth_exam *ex = &im->ex;
                cbis_size(o, &r, &ex->h, &ex->w, &ex->mm_per_px);
                /* scanned films: the chest wall is usually on the side's conventional edge, but
                 * about 1 film in 10 was digitised the other way round */
                ex->chest_right = mm_srng_bern(&r, 0.1) ? !side : side;
                ex->mlo = view, ex->density = pt->density, ex->film = 1, ex->bits = 16;
                ex->seed = mm_srng_u64(&r);
                ex->n_findings = b->n;
                for (int k = 0; k < b->n; k++) {
                    ex->findings[k] = b->les[k].f;
                    im->label |= b->les[k].f.malignant;
                }
                int img_index = p->n_img++;
                p->img[img_index].first_subject = p->n_sub;
                int has_mass = 0, has_calc = 0;
                for (int k = 0; k < b->n; k++) {
                    if (b->les[k].f.kind == MM_SYNTH_CALC) has_calc = 1;
                    else has_mass = 1;
                }
                if (has_mass) add_subject(p, &r, img_index, 0);
                if (has_calc) add_subject(p, &r, img_index, 1);
                p->img[img_index].n_subjects = p->n_sub - p->img[img_index].first_subject;
            }
        }
    }
}

/* ---- writing ------------------------------------------------------------------------------ */

static mm_dicom_write_opts cbis_opts(const char *subject, const char *study, const char *series,
                                     const char *sop, const char *desc, int bits)
{
    mm_dicom_write_opts d = {0};
    d.bits_allocated = bits, d.bits_stored = bits;
    d.patient_id = subject, d.patient_name = subject;
    d.study_uid = study, d.series_uid = series, d.sop_instance_uid = sop;
    d.series_description = desc;
    d.modality = "MG";
    d.conversion_type = "DF"; /* digitized film */
    d.study_date = "20160720";
    return d;
}

static mm_status write_dicom(const char *out_dir, const char *rel, const void *px, int h, int w,
                             const mm_dicom_write_opts *d, long long *bytes)
{
    char path[4096];
    mm_synth_join(path, sizeof path, out_dir, rel);
    MM_TRY(mm_dicom_write(path, px, h, w, d));
    *bytes = mm_fs_file_size(path);
    return MM_OK;
}

static mm_status render_image(void *ctx, int ii)
{
    cb_plan *p = ctx;
    cb_image *im = &p->img[ii];
    const mm_synth_exam *ex = &im->ex;
    int h = ex->h, w = ex->w;
    mm_synth_rendered rd;
    mm_synth_render(&rd, ex, 1);
    mm_status s = MM_OK;
    for (int si = im->first_subject; si < im->first_subject + im->n_subjects && s == MM_OK; si++) {
        cb_subject *sub = &p->sub[si];
        mm_dicom_write_opts d = cbis_opts(sub->name, sub->study, sub->series, sub->sop, "full mammogram images", 16);
        s = write_dicom(p->o->out_dir, sub->rel, rd.pixels, h, w, &d, &sub->bytes);
        for (int qi = sub->first_roi; qi < sub->first_roi + sub->n_rois && s == MM_OK; qi++) {
            cb_roi *q = &p->roi[qi];
            const mm_synth_lesion *les = &rd.les[q->lesion];
            /* the crop: the mask's bounding box grown by 15% (+2 px) on each side */
            int bx = les->x0, by = les->y0, bw = les->x1 - les->x0, bh = les->y1 - les->y0;
            if (bw <= 0 || bh <= 0) /* a lesion clipped away entirely: a small box at its centre */
                bx = (int)les->cx - 4, by = (int)les->cy - 4, bw = bh = 8;
            int mx = (int)(0.15 * bw) + 2, my = (int)(0.15 * bh) + 2;
            int x0 = bx - mx, y0 = by - my, x1 = bx + bw + mx, y1 = by + bh + my;
            x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0, x1 = x1 > w ? w : x1, y1 = y1 > h ? h : y1;
            q->x0 = bx, q->y0 = by, q->x1 = bx + bw, q->y1 = by + bh;
            int ch = y1 - y0, cw = x1 - x0;
            uint16_t *crop = mm_xmalloc(sizeof(uint16_t) * (size_t)ch * cw);
            for (int y = 0; y < ch; y++)
                memcpy(crop + (size_t)y * cw, rd.pixels + (size_t)(y + y0) * w + x0, sizeof(uint16_t) * (size_t)cw);
            d = cbis_opts(q->name, q->study, q->crop_series, q->crop_sop,
                          q->one_folder ? "ROI mask images" : "cropped images", 16);
            d.instance_number = q->one_folder && q->mask_first ? 2 : 1;
            s = write_dicom(p->o->out_dir, q->crop_rel, crop, ch, cw, &d, &q->crop_bytes);
            free(crop);
            if (s != MM_OK) break;
            d = cbis_opts(q->name, q->study, q->mask_series, q->mask_sop, "ROI mask images", 8);
            d.instance_number = q->one_folder && !q->mask_first ? 2 : 1;
            s = write_dicom(p->o->out_dir, q->mask_rel, rd.masks[q->lesion], h, w, &d, &q->mask_bytes);
        }
    }
    mm_synth_rendered_free(&rd);
    return s;
}

static void csv_path_field(mm_strbuf *b, const char *path, int newline)
{
    if (newline) mm_strbuf_printf(b, "\"%s\n\"", path);
    else mm_strbuf_printf(b, "%s", path);
}

static void size_text(char *out, size_t cap, long long bytes)
{
    if (bytes >= 1048576) snprintf(out, cap, "%.2f MB", bytes / 1048576.0);
    else snprintf(out, cap, "%.2f KB", bytes / 1024.0);
}

static mm_status write_tables(cb_plan *p, mm_synth_summary *sum)
{
    const char *out = p->o->out_dir;
    mm_srng r = mm_srng_make(p->o->seed, MM_TAG_NAMES, 0);
    for (int calc = 0; calc < 2; calc++)
        for (int test = 0; test < 2; test++) {
            mm_strbuf b = {0};
            if (calc)
                mm_strbuf_printf(&b, "patient_id,breast density,left or right breast,image view,abnormality id,"
                                   "abnormality type,calc type,calc distribution,assessment,pathology,subtlety,"
                                   "image file path,cropped image file path,ROI mask file path\n");
            else
                mm_strbuf_printf(&b, "patient_id,breast_density,left or right breast,image view,abnormality id,"
                                   "abnormality type,mass shape,mass margins,assessment,pathology,subtlety,"
                                   "image file path,cropped image file path,ROI mask file path\n");
            for (int si = 0; si < p->n_sub; si++) {
                const cb_subject *s = &p->sub[si];
                const cb_image *im = &p->img[s->image];
                const cb_breast *br = &p->br[im->breast];
                const cb_patient *pt = &p->pat[br->patient];
                if (s->calc != calc || pt->test != test) continue;
                for (int qi = s->first_roi; qi < s->first_roi + s->n_rois; qi++) {
                    const cb_roi *q = &p->roi[qi];
                    const cb_lesion *l = &br->les[q->lesion];
                    int density = mm_srng_bern(&r, 0.02) ? 0 : pt->density;
                    mm_strbuf_printf(&b, "P_%05d,%d,%s,%s,%d,%s,%s,%s,%d,%s,%d,", pt->number, density,
                                   br->side ? "RIGHT" : "LEFT", im->view ? "MLO" : "CC", q->abn_id,
                                   calc ? "calcification" : "mass", l->d1, l->d2, l->assessment,
                                   pathology_names[l->pathology], l->subtlety);
                    mm_strbuf_printf(&b, "%s,", s->csv);
                    const char *crop = q->swapped ? q->mask_csv : q->crop_csv;
                    const char *mask = q->swapped ? q->crop_csv : q->mask_csv;
                    csv_path_field(&b, crop, q->nl_crop);
                    mm_strbuf_printf(&b, ",");
                    csv_path_field(&b, mask, q->nl_mask);
                    mm_strbuf_printf(&b, "\n");
                }
            }
            char name[64];
            snprintf(name, sizeof name, "%s_case_description_%s_set.csv", calc ? "calc" : "mass", test ? "test" : "train");
            mm_status s = mm_synth_write_text(&b, out, name);
            mm_strbuf_free(&b);
            MM_TRY(s);
        }
    /* metadata.csv: one row per series, as the NBIA Data Retriever writes it */
    mm_strbuf m = {0};
    mm_strbuf_printf(&m, "Series UID,Collection,3rd Party Analysis,Data Description URI,Subject ID,Study UID,"
                       "Study Description,Study Date,Series Description,Manufacturer,Modality,SOP Class Name,"
                       "SOP Class UID,Number of Images,File Size,File Location,Download Timestamp\n");
    char sz[32];
    const char *fixed = "CBIS-DDSM,NO,https://doi.org/10.7937/K9/TCIA.2016.7O02S9CY";
    const char *sop = "MG,Secondary Capture Image Storage,1.2.840.10008.5.1.4.1.1.7";
    const char *stamp = "2024-03-05T10:21:43.517";
    for (int si = 0; si < p->n_sub; si++) {
        const cb_subject *s = &p->sub[si];
        size_text(sz, sizeof sz, s->bytes);
        mm_strbuf_printf(&m, "%s,%s,%s,%s,,07-20-2016,full mammogram images,,%s,1,%s,./CBIS-DDSM/%s/%s/%s,%s\n", s->series,
                       fixed, s->name, s->study, sop, sz, s->name, s->study_dir, s->series_dir, stamp);
        for (int qi = s->first_roi; qi < s->first_roi + s->n_rois; qi++) {
            const cb_roi *q = &p->roi[qi];
            if (q->one_folder) {
                size_text(sz, sizeof sz, q->crop_bytes + q->mask_bytes);
                mm_strbuf_printf(&m, "%s,%s,%s,%s,,07-20-2016,ROI mask images,,%s,2,%s,./CBIS-DDSM/%s/%s/%s,%s\n",
                               q->mask_series, fixed, q->name, q->study, sop, sz, q->name, q->study_dir, q->mask_dir, stamp);
            } else {
                size_text(sz, sizeof sz, q->mask_bytes);
                mm_strbuf_printf(&m, "%s,%s,%s,%s,,07-20-2016,ROI mask images,,%s,1,%s,./CBIS-DDSM/%s/%s/%s,%s\n",
                               q->mask_series, fixed, q->name, q->study, sop, sz, q->name, q->study_dir, q->mask_dir, stamp);
                size_text(sz, sizeof sz, q->crop_bytes);
                mm_strbuf_printf(&m, "%s,%s,%s,%s,,07-20-2016,cropped images,,%s,1,%s,./CBIS-DDSM/%s/%s/%s,%s\n",
                               q->crop_series, fixed, q->name, q->study, sop, sz, q->name, q->study_dir, q->crop_dir, stamp);
            }
        }
    }
    mm_status s = mm_synth_write_text(&m, out, "metadata.csv");
    mm_strbuf_free(&m);
    MM_TRY(s);
    /* the answer key */
    mm_strbuf ti = {0}, tr = {0};
    mm_strbuf_printf(&ti, "exam,patient_id,side,view,label,n_rois,collection,height,width,image_path\n");
    mm_strbuf_printf(&tr, "exam,patient_id,side,view,collection,abnormality_id,type,pathology,malignant,"
                        "mask_path,crop_path,x0,y0,x1,y1,csv_swapped\n");
    for (int si = 0; si < p->n_sub; si++) {
        const cb_subject *sb = &p->sub[si];
        const cb_image *im = &p->img[sb->image];
        const cb_breast *br = &p->br[im->breast];
        const char *side = br->side ? "RIGHT" : "LEFT", *view = im->view ? "MLO" : "CC";
        int pn = p->pat[br->patient].number;
        mm_strbuf_printf(&ti, "%d,P_%05d,%s,%s,%d,%d,%s,%d,%d,%s\n", sb->image, pn, side, view, im->label, sb->n_rois,
                       sb->calc ? "calc" : "mass", im->ex.h, im->ex.w, sb->rel);
        for (int qi = sb->first_roi; qi < sb->first_roi + sb->n_rois; qi++) {
            const cb_roi *q = &p->roi[qi];
            const cb_lesion *l = &br->les[q->lesion];
            mm_strbuf_printf(&tr, "%d,P_%05d,%s,%s,%s,%d,%s,%s,%d,%s,%s,%d,%d,%d,%d,%d\n", sb->image, pn, side, view,
                           sb->calc ? "calc" : "mass", q->abn_id, sb->calc ? "calcification" : "mass",
                           pathology_names[l->pathology], l->f.malignant, q->mask_rel, q->crop_rel, q->x0, q->y0,
                           q->x1, q->y1, q->swapped);
        }
    }
    s = mm_synth_write_text(&ti, out, "synth-truth-images.csv");
    if (s == MM_OK) s = mm_synth_write_text(&tr, out, "synth-truth-rois.csv");
    mm_strbuf_free(&ti);
    mm_strbuf_free(&tr);
    MM_TRY(s);
    sum->patients = p->n_pat;
    sum->images = p->n_img;
    for (int i = 0; i < p->n_img; i++) {
        if (p->img[i].label) sum->malignant_images++;
        else sum->benign_images++;
    }
    sum->rois = p->n_roi;
    sum->files = p->n_sub + 2 * p->n_roi;
    return MM_OK;
}

mm_status mm_synth_cbis(const mm_synth_opts *o, mm_synth_summary *sum)
{
    cb_plan p;
    memset(&p, 0, sizeof p);
    p.o = o;
    make_plan(&p);
    mm_status s = mm_synth_parallel(p.n_img, o->threads, render_image, &p);
    if (s == MM_OK) s = write_tables(&p, sum);
    free(p.pat);
    free(p.br);
    free(p.img);
    free(p.sub);
    free(p.roi);
    return s;
}
