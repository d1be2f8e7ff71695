/* `mammo synth --layout inbreast`: a synthetic INbreast release with the real layout and quirks
 * (data-formats.md section 2):
 *
 *   OUT/INbreast.csv    semicolon-separated, header
 *                       "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads";
 *                       patient fields "removed", View CC/MLO, ACR 1-4 or a whitespace-padded blank,
 *                       Bi-Rads strings 1, 2, 3, 4a, 4b, 4c, 5, 6
 *   OUT/AllDICOMs/<FileName>_<16-hex patient hash>_MG_<L|R>_<CC|ML>_ANON.dcm
 *                       (the file name says ML where the CSV says MLO); 14-bit in 16, Digital
 *                       Mammography For Presentation, PatientID = the hash, ImageLaterality,
 *                       ViewPosition, pixel spacing; about 1 in 10 stored MONOCHROME1 (inverted)
 *   OUT/AllXML/<FileName>.xml   OsiriX plist: Images[0].ROIs[] with Name, NumberOfPoints, Point_px
 *                       ("(x, y)", x = column), Point_mm, Area, Center, Dev, IndexInImage, Max, Mean,
 *                       Min, Total, Type; masses are polygons ("Mass"), calcifications one-point ROIs
 *                       ("Calcification", sometimes the typo "Calcifications"), malignant clusters
 *                       also a "Cluster" polygon, asymmetries "Asymmetry" or "Assymetry", some
 *                       spiculated masses a "Spiculated Region" / "Espiculated Region" polygon.
 *                       BI-RADS 1 images (no findings) have no XML file.
 *   OUT/synth-truth-images.csv, OUT/synth-truth-rois.csv   the answer key
 *
 * 4 images per patient (CC and MLO of both breasts), 2 for about 1 patient in 5 (mastectomy).
 * BI-RADS 4a-6 breasts hold malignant lesions, BI-RADS 2-3 benign ones, BI-RADS 1 none. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom.h"
#include "fs.h"
#include "synth_layout.h"

static const char *const birads_names[8] = {"1", "2", "3", "4a", "4b", "4c", "5", "6"};

typedef struct ib_patient {
    char hash[17];
    int small_plate, acr, acr_blank, date, density;
} ib_patient;

typedef struct ib_breast {
    int patient, side, birads; /* birads: index into birads_names */
    int n;
    mm_synth_finding f[MM_SYNTH_MAX_LESIONS];
    int typo_calc, typo_asym, spic_region, typo_spic;
} ib_breast;

typedef struct ib_image {
    int breast, view, file_name, mono1;
    mm_synth_exam ex;
    char rel[160], xml_rel[64];
    mm_strbuf truth_rois; /* rows of synth-truth-rois.csv, filled while writing the XML */
} ib_image;

typedef struct ib_plan {
    const mm_synth_opts *o;
    ib_patient *pat;
    ib_breast *br;
    ib_image *img;
    int n_pat, n_br, n_img;
} ib_plan;

static void ib_size(const mm_synth_opts *o, int small_plate, int *h, int *w, double *mmpp)
{
    int H0 = small_plate ? 3328 : 4084, W0 = small_plate ? 2560 : 3328;
    if (o->height > 0) *h = o->height, *w = o->width;
    else if (o->full_size) *h = H0, *w = W0;
    else {
        double s = 320.0 / 4084.0;
        *h = (int)lround(H0 * s), *w = (int)lround(W0 * s);
    }
    *mmpp = MM_SYNTH_INBREAST_PX_MM * H0 / *h;
}

static void make_finding(mm_synth_finding *f, mm_srng *r, int malignant, mm_synth_kind kind)
{
    memset(f, 0, sizeof *f);
    f->kind = kind, f->malignant = malignant;
    f->u = mm_srng_range(r, 0.25, 0.75);
    f->v = mm_srng_range(r, -0.55, 0.55);
    if (kind == MM_SYNTH_MASS) {
        f->size_mm = mm_srng_range(r, 8, 28);
        f->contrast = mm_srng_range(r, 0.10, 0.20);
        f->spiculated = malignant && mm_srng_bern(r, 0.8);
        f->lobulated = !malignant && mm_srng_bern(r, 0.3);
    } else if (kind == MM_SYNTH_CALC) {
        f->size_mm = malignant ? mm_srng_range(r, 4, 10) : mm_srng_range(r, 10, 22);
        f->contrast = mm_srng_range(r, 0.28, 0.42);
    } else {
        f->size_mm = mm_srng_range(r, 20, 40);
        f->contrast = mm_srng_range(r, 0.04, 0.07);
    }
    f->seed = mm_srng_u64(r);
}

static void make_plan(ib_plan *p)
{
    const mm_synth_opts *o = p->o;
    mm_srng r = mm_srng_make(o->seed, MM_TAG_PLAN, 1);
    p->n_pat = o->patients;
    p->pat = mm_xcalloc((size_t)o->patients, sizeof(ib_patient));
    p->br = mm_xcalloc((size_t)o->patients * 2, sizeof(ib_breast));
    p->img = mm_xcalloc((size_t)o->patients * 4, sizeof(ib_image));
    int *used = mm_xcalloc((size_t)o->patients * 4, sizeof(int));
    for (int pi = 0; pi < o->patients; pi++) {
        ib_patient *pt = &p->pat[pi];
        snprintf(pt->hash, sizeof pt->hash, "%016llx", (unsigned long long)mm_srng_u64(&r));
        pt->small_plate = mm_srng_bern(&r, 0.2);
        static const int dens[] = {1, 1, 2, 2, 2, 3, 3, 4};
        pt->density = dens[mm_srng_int(&r, 0, 7)];
        pt->acr = pt->density;
        pt->acr_blank = mm_srng_bern(&r, 0.06);
        pt->date = 200800 + 100 * mm_srng_int(&r, 0, 2) + mm_srng_int(&r, 1, 12);
        int mastectomy = mm_srng_bern(&r, 0.22), only_side = mm_srng_int(&r, 0, 1), any_mal = 0;
        for (int side = 0; side < 2; side++) {
            if (mastectomy && side != only_side) continue;
            ib_breast *b = &p->br[p->n_br++];
            b->patient = pi, b->side = side;
            double u = mm_srng_unif(&r);
            if (u < (any_mal ? 0.08 : 0.28)) { /* malignant: BI-RADS 4a..6 */
                static const int mal[] = {3, 4, 5, 6, 6, 6, 7, 3, 4, 5, 6, 6, 6, 7, 6, 6, 5, 4, 3, 6};
                b->birads = mal[mm_srng_int(&r, 0, 19)];
                any_mal = 1;
                b->n = mm_srng_bern(&r, 0.85) ? 1 : 2;
                for (int k = 0; k < b->n; k++)
                    make_finding(&b->f[k], &r, 1, mm_srng_bern(&r, 0.55) ? MM_SYNTH_MASS : MM_SYNTH_CALC);
                if (mm_srng_bern(&r, 0.3)) /* plus a benign finding */
                    make_finding(&b->f[b->n++], &r, 0, mm_srng_bern(&r, 0.5) ? MM_SYNTH_MASS : MM_SYNTH_CALC);
            } else {
                double v = mm_srng_unif(&r);
                b->birads = v < 0.30 ? 0 : v < 0.88 ? 1 : 2;
                b->n = b->birads == 0 ? 0 : b->birads == 2 ? 1 : mm_srng_int(&r, 1, 2);
                for (int k = 0; k < b->n; k++) {
                    double kv = mm_srng_unif(&r);
                    mm_synth_kind kind = b->birads == 2 ? (kv < 0.6 ? MM_SYNTH_MASS : kv < 0.85 ? MM_SYNTH_ASYMMETRY : MM_SYNTH_CALC)
                                                        : (kv < 0.4 ? MM_SYNTH_MASS : kv < 0.8 ? MM_SYNTH_CALC : MM_SYNTH_ASYMMETRY);
                    make_finding(&b->f[k], &r, 0, kind);
                }
            }
            b->typo_calc = mm_srng_bern(&r, 0.15);
            b->typo_asym = mm_srng_bern(&r, 0.4);
            b->spic_region = mm_srng_bern(&r, 0.4);
            b->typo_spic = mm_srng_bern(&r, 0.5);
            for (int view = 0; view < 2; view++) {
                ib_image *im = &p->img[p->n_img];
                im->breast = (int)(b - p->br), im->view = view;
                int fn, clash;
                do { /* unique 8-digit file names */
                    fn = 20000000 + (int)(mm_srng_u32(&r) % 34000000u);
                    clash = 0;
                    for (int j = 0; j < p->n_img; j++) clash |= used[j] == fn;
                } while (clash);
                used[p->n_img] = fn;
                im->file_name = fn;
                im->mono1 = mm_srng_bern(&r, 0.1);
                mm_synth_exam *ex = &im->ex;
                ib_size(o, pt->small_plate, &ex->h, &ex->w, &ex->mm_per_px);
                ex->chest_right = side, ex->mlo = view, ex->density = pt->density, ex->film = 0, ex->bits = 14;
                ex->seed = mm_srng_u64(&r);
                ex->n_findings = b->n;
                memcpy(ex->findings, b->f, sizeof b->f);
                snprintf(im->rel, sizeof im->rel, "AllDICOMs/%d_%s_MG_%s_%s_ANON.dcm", fn, pt->hash, side ? "R" : "L",
                         view ? "ML" : "CC");
                if (b->n) snprintf(im->xml_rel, sizeof im->xml_rel, "AllXML/%d.xml", fn);
                p->n_img++;
            }
        }
    }
    free(used);
}

/* ---- the OsiriX plist ------------------------------------------------------------------------ */

typedef struct roi_stats {
    double area, mean, dev, min, max, total;
} roi_stats;

static roi_stats stats_over(const uint16_t *px, const uint8_t *mask, int h, int w, int x0, int y0, int x1, int y1)
{
    roi_stats st = {0, 0, 0, 1e30, -1e30, 0};
    double s2 = 0, n = 0;
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (mask && !mask[i]) continue;
            double v = px[i];
            n++;
            st.total += v;
            s2 += v * v;
            if (v < st.min) st.min = v;
            if (v > st.max) st.max = v;
        }
    if (n == 0) return (roi_stats){0, 0, 0, 0, 0, 0};
    st.area = n;
    st.mean = st.total / n;
    st.dev = sqrt(fmax(0.0, s2 / n - st.mean * st.mean));
    return st;
}

static void plist_roi(mm_strbuf *b, int index, const char *name, int type, const double *pts, int n, double mmpp,
                      roi_stats st)
{
    double cx = 0, cy = 0;
    for (int i = 0; i < n; i++) cx += pts[2 * i], cy += pts[2 * i + 1];
    cx /= n, cy /= n;
    mm_strbuf_printf(b, "\t\t\t\t<dict>\n");
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Area</key>\n\t\t\t\t\t<real>%.6f</real>\n", st.area * mmpp * mmpp / 100.0);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Center</key>\n\t\t\t\t\t<string>(%.6f, %.6f, 0.000000)</string>\n", cx * mmpp, cy * mmpp);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Dev</key>\n\t\t\t\t\t<real>%.6f</real>\n", st.dev);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>IndexInImage</key>\n\t\t\t\t\t<integer>%d</integer>\n", index);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Max</key>\n\t\t\t\t\t<real>%.6f</real>\n", st.max);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Mean</key>\n\t\t\t\t\t<real>%.6f</real>\n", st.mean);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Min</key>\n\t\t\t\t\t<real>%.6f</real>\n", st.min);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Name</key>\n\t\t\t\t\t<string>%s</string>\n", name);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>NumberOfPoints</key>\n\t\t\t\t\t<integer>%d</integer>\n", n);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Point_mm</key>\n\t\t\t\t\t<array>\n");
    for (int i = 0; i < n; i++)
        mm_strbuf_printf(b, "\t\t\t\t\t\t<string>(%.6f, %.6f, 0.000000)</string>\n", pts[2 * i] * mmpp, pts[2 * i + 1] * mmpp);
    mm_strbuf_printf(b, "\t\t\t\t\t</array>\n\t\t\t\t\t<key>Point_px</key>\n\t\t\t\t\t<array>\n");
    for (int i = 0; i < n; i++) mm_strbuf_printf(b, "\t\t\t\t\t\t<string>(%.3f, %.3f)</string>\n", pts[2 * i], pts[2 * i + 1]);
    mm_strbuf_printf(b, "\t\t\t\t\t</array>\n");
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Total</key>\n\t\t\t\t\t<real>%.6f</real>\n", st.total);
    mm_strbuf_printf(b, "\t\t\t\t\t<key>Type</key>\n\t\t\t\t\t<integer>%d</integer>\n", type);
    mm_strbuf_printf(b, "\t\t\t\t</dict>\n");
}

static void truth_roi(ib_image *im, int exam, int finding, int index, const char *name, const char *type,
                      int malignant, const double *pts, int n)
{
    double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, pts[2 * i]), x1 = fmax(x1, pts[2 * i]);
        y0 = fmin(y0, pts[2 * i + 1]), y1 = fmax(y1, pts[2 * i + 1]);
    }
    mm_strbuf_printf(&im->truth_rois, "%d,%d,%d,%d,%s,%s,%d,%d,%.1f,%.1f,%.1f,%.1f\n", exam, im->file_name, finding,
                   index, name, type, malignant, n, x0, y0, x1, y1);
}

static mm_status write_xml(ib_plan *p, int ii, const mm_synth_rendered *rd)
{
    ib_image *im = &p->img[ii];
    const ib_breast *b = &p->br[im->breast];
    const mm_synth_exam *ex = &im->ex;
    int h = ex->h, w = ex->w, nroi = 0;
    double mmpp = ex->mm_per_px;
    mm_strbuf rois = {0};
    for (int k = 0; k < ex->n_findings; k++) {
        const mm_synth_lesion *les = &rd->les[k];
        const mm_synth_finding *f = &ex->findings[k];
        if (f->kind == MM_SYNTH_CALC) {
            const char *nm = b->typo_calc ? "Calcifications" : "Calcification";
            for (int s = 0; s < les->n_specks; s++) {
                const double *pt = les->specks + 2 * s;
                int x = (int)lround(pt[0]), y = (int)lround(pt[1]);
                roi_stats st = stats_over(rd->pixels, NULL, h, w, x, y, x + 1, y + 1);
                st.area = 0;
                plist_roi(&rois, nroi, nm, 19, pt, 1, mmpp, st);
                truth_roi(im, ii, k, nroi++, nm, "calcification", f->malignant, pt, 1);
            }
            if (f->malignant) {
                roi_stats st = stats_over(rd->pixels, rd->masks[k], h, w, les->x0, les->y0, les->x1, les->y1);
                plist_roi(&rois, nroi, "Cluster", 15, les->outline, les->n_outline, mmpp, st);
                truth_roi(im, ii, k, nroi++, "Cluster", "cluster", 1, les->outline, les->n_outline);
            }
        } else {
            const char *nm = "Mass", *type = "mass";
            if (f->kind == MM_SYNTH_ASYMMETRY) nm = b->typo_asym ? "Assymetry" : "Asymmetry", type = "asymmetry";
            roi_stats st = stats_over(rd->pixels, rd->masks[k], h, w, les->x0, les->y0, les->x1, les->y1);
            plist_roi(&rois, nroi, nm, 15, les->outline, les->n_outline, mmpp, st);
            truth_roi(im, ii, k, nroi++, nm, type, f->malignant, les->outline, les->n_outline);
            if (f->kind == MM_SYNTH_MASS && f->spiculated && b->spic_region) {
                /* the region covered by the spicules: a circle through the farthest tip */
                double pts[2 * 32], R = les->spicule_reach;
                for (int i = 0; i < 32; i++) {
                    double th = 2 * 3.14159265358979 * i / 32;
                    pts[2 * i] = fmin(fmax(les->cx + R * cos(th), 0.0), w - 1.0);
                    pts[2 * i + 1] = fmin(fmax(les->cy + R * sin(th), 0.0), h - 1.0);
                }
                const char *sn = b->typo_spic ? "Espiculated Region" : "Spiculated Region";
                roi_stats sr = stats_over(rd->pixels, NULL, h, w, (int)(les->cx - R), (int)(les->cy - R),
                                          (int)(les->cx + R) + 1, (int)(les->cy + R) + 1);
                plist_roi(&rois, nroi, sn, 15, pts, 32, mmpp, sr);
                truth_roi(im, ii, k, nroi++, sn, "spiculated_region", 1, pts, 32);
            }
        }
    }
    mm_strbuf x = {0};
    mm_strbuf_printf(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                       "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                       "<plist version=\"1.0\">\n<dict>\n\t<key>Images</key>\n\t<array>\n\t\t<dict>\n"
                       "\t\t\t<key>ImageIndex</key>\n\t\t\t<integer>0</integer>\n"
                       "\t\t\t<key>NumberOfROIs</key>\n\t\t\t<integer>%d</integer>\n"
                       "\t\t\t<key>ROIs</key>\n\t\t\t<array>\n",
                   nroi);
    mm_strbuf_printf(&x, "%s", mm_strbuf_str(&rois));
    mm_strbuf_printf(&x, "\t\t\t</array>\n\t\t</dict>\n\t</array>\n</dict>\n</plist>\n");
    mm_status s = mm_synth_write_text(&x, p->o->out_dir, im->xml_rel);
    mm_strbuf_free(&x);
    mm_strbuf_free(&rois);
    return s;
}

static mm_status render_image(void *ctx, int ii)
{
    ib_plan *p = ctx;
    ib_image *im = &p->img[ii];
    const ib_breast *b = &p->br[im->breast];
    const ib_patient *pt = &p->pat[b->patient];
    const mm_synth_exam *ex = &im->ex;
    mm_synth_rendered rd;
    mm_synth_render(&rd, ex, 1);
    size_t n = (size_t)ex->h * ex->w;
    uint16_t *stored = rd.pixels, *inv = NULL;
    if (im->mono1) { /* MONOCHROME1 stores 16383 - v; the reader inverts it back */
        inv = mm_xmalloc(sizeof(uint16_t) * n);
        for (size_t i = 0; i < n; i++) inv[i] = (uint16_t)(16383 - rd.pixels[i]);
        stored = inv;
    }
    char path[4096], date[16];
    mm_synth_join(path, sizeof path, p->o->out_dir, im->rel);
    snprintf(date, sizeof date, "%06d15", pt->date);
    mm_dicom_write_opts d = {0};
    d.bits_allocated = 16, d.bits_stored = 14;
    d.patient_id = pt->hash, d.patient_name = "removed";
    d.laterality = b->side ? "R" : "L";
    d.view = im->view ? "MLO" : "CC";
    d.photometric = im->mono1 ? "MONOCHROME1" : "MONOCHROME2";
    d.sop_class_uid = MM_DICOM_SOP_MAMMO_PRESENTATION;
    d.modality = "MG";
    d.manufacturer = "SIEMENS";
    d.study_date = date;
    d.pixel_spacing_mm = ex->mm_per_px;
    d.rescale_slope = 1.0, d.rescale_intercept = 0.0;
    char study[72], series[72], sop[72];
    mm_synth_uid(study, sizeof study, "1.2.826.0.1.3680043.9.7.1", p->o->seed, 3u * (uint64_t)ii);
    mm_synth_uid(series, sizeof series, "1.2.826.0.1.3680043.9.7.2", p->o->seed, 3u * (uint64_t)ii + 1);
    mm_synth_uid(sop, sizeof sop, "1.2.826.0.1.3680043.9.7.3", p->o->seed, 3u * (uint64_t)ii + 2);
    d.study_uid = study, d.series_uid = series, d.sop_instance_uid = sop;
    d.series_number = 1 + im->view, d.instance_number = 1;
    mm_status s = mm_dicom_write(path, stored, ex->h, ex->w, &d);
    if (s == MM_OK && im->xml_rel[0]) s = write_xml(p, ii, &rd);
    free(inv);
    mm_synth_rendered_free(&rd);
    return s;
}

static mm_status write_tables(ib_plan *p, mm_synth_summary *sum)
{
    mm_strbuf c = {0}, ti = {0}, tr = {0};
    mm_strbuf_printf(&c, "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n");
    mm_strbuf_printf(&ti, "exam,patient_id,side,view,file_name,birads,label,n_findings,photometric,height,width,"
                        "image_path,xml_path\n");
    mm_strbuf_printf(&tr, "exam,file_name,finding,roi_index,name,type,malignant,n_points,x0,y0,x1,y1\n");
    for (int ii = 0; ii < p->n_img; ii++) {
        ib_image *im = &p->img[ii];
        const ib_breast *b = &p->br[im->breast];
        const ib_patient *pt = &p->pat[b->patient];
        char acr[8];
        if (pt->acr_blank) snprintf(acr, sizeof acr, "  ");
        else snprintf(acr, sizeof acr, "%d", pt->acr);
        mm_strbuf_printf(&c, "removed;removed;%s;%s;%d;%d;%s;%s\n", b->side ? "R" : "L", im->view ? "MLO" : "CC",
                       pt->date, im->file_name, acr, birads_names[b->birads]);
        int label = b->birads >= 3;
        mm_strbuf_printf(&ti, "%d,%s,%s,%s,%d,%s,%d,%d,%s,%d,%d,%s,%s\n", ii, pt->hash, b->side ? "R" : "L",
                       im->view ? "MLO" : "CC", im->file_name, birads_names[b->birads], label, b->n,
                       im->mono1 ? "MONOCHROME1" : "MONOCHROME2", im->ex.h, im->ex.w, im->rel, im->xml_rel);
        mm_strbuf_puts(&tr, mm_strbuf_str(&im->truth_rois));
        if (label) sum->malignant_images++;
        else if (b->n) sum->benign_images++;
        else sum->normal_images++;
        sum->rois += b->n;
        sum->files += 1 + (im->xml_rel[0] != 0);
    }
    const char *out = p->o->out_dir;
    mm_status s = mm_synth_write_text(&c, out, "INbreast.csv");
    if (s == MM_OK) s = mm_synth_write_text(&ti, out, "synth-truth-images.csv");
    if (s == MM_OK) s = mm_synth_write_text(&tr, out, "synth-truth-rois.csv");
    mm_strbuf_free(&c);
    mm_strbuf_free(&ti);
    mm_strbuf_free(&tr);
    sum->patients = p->n_pat;
    sum->images = p->n_img;
    return s;
}

mm_status mm_synth_inbreast(const mm_synth_opts *o, mm_synth_summary *sum)
{
    ib_plan p;
    memset(&p, 0, sizeof p);
    p.o = o;
    make_plan(&p);
    char dir[4096];
    mm_synth_join(dir, sizeof dir, o->out_dir, "AllDICOMs");
    mm_status s = mm_fs_mkdirs(dir);
    mm_synth_join(dir, sizeof dir, o->out_dir, "AllXML");
    if (s == MM_OK) s = mm_fs_mkdirs(dir);
    if (s == MM_OK) s = mm_synth_parallel(p.n_img, o->threads, render_image, &p);
    if (s == MM_OK) s = write_tables(&p, sum);
    for (int i = 0; i < p.n_img; i++) mm_strbuf_free(&p.img[i].truth_rois);
    free(p.pat);
    free(p.br);
    free(p.img);
    return s;
}
