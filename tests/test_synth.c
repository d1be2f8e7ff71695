/* The synthetic data generator: the FFT against a naive DFT, the 1/f^beta texture's spectrum,
 * malignant vs benign lesion statistics, the CBIS-DDSM and INbreast layouts with their quirks,
 * the DICOM tags, determinism (same seed -> byte-identical trees whatever the thread count),
 * and `mammo synth` through the built binary. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kernels/philox.h"
#include "tests/harness.h"
#include "tools/dicom.h"
#include "tools/synth.h"

/* ---- FFT and texture -------------------------------------------------------------------- */

MM_TEST(synth_fft_matches_naive_dft)
{
    int n = 64;
    float re[64], im[64];
    double wr[64], wi[64];
    for (int i = 0; i < n; i++) {
        re[i] = mm_philox_uniform(1, (uint64_t)i) - 0.5f;
        im[i] = mm_philox_uniform(2, (uint64_t)i) - 0.5f;
    }
    for (int k = 0; k < n; k++) { /* X[k] = sum_j x[j] exp(-2 pi i j k / n) */
        wr[k] = wi[k] = 0;
        for (int j = 0; j < n; j++) {
            double a = -2 * M_PI * (double)j * k / n;
            wr[k] += re[j] * cos(a) - im[j] * sin(a);
            wi[k] += re[j] * sin(a) + im[j] * cos(a);
        }
    }
    float fr[64], fi[64];
    memcpy(fr, re, sizeof fr);
    memcpy(fi, im, sizeof fi);
    mm_synth_fft(fr, fi, n, 0);
    for (int k = 0; k < n; k++) {
        CHECK_CLOSE(fr[k], wr[k], 1e-4, 1e-4);
        CHECK_CLOSE(fi[k], wi[k], 1e-4, 1e-4);
    }
    mm_synth_fft(fr, fi, n, 1); /* unscaled inverse: n * x */
    for (int j = 0; j < n; j++) {
        CHECK_CLOSE(fr[j] / n, re[j], 1e-5, 1e-4);
        CHECK_CLOSE(fi[j] / n, im[j], 1e-5, 1e-4);
    }
}

/* Slope of the radially averaged power spectrum in log-log, over 4..64 cycles per 256 px. */
static double spectral_slope(const float *x, int n)
{
    float *re = malloc(sizeof(float) * n * n), *im = calloc((size_t)n * n, sizeof(float));
    memcpy(re, x, sizeof(float) * n * n);
    float *cr = malloc(sizeof(float) * n), *ci = malloc(sizeof(float) * n);
    for (int y = 0; y < n; y++) mm_synth_fft(re + y * n, im + y * n, n, 0);
    for (int xx = 0; xx < n; xx++) {
        for (int y = 0; y < n; y++) cr[y] = re[y * n + xx], ci[y] = im[y * n + xx];
        mm_synth_fft(cr, ci, n, 0);
        for (int y = 0; y < n; y++) re[y * n + xx] = cr[y], im[y * n + xx] = ci[y];
    }
    double pw[200] = {0};
    int cnt[200] = {0};
    for (int ky = 0; ky < n; ky++)
        for (int kx = 0; kx < n; kx++) {
            int fy = ky <= n / 2 ? ky : ky - n, fx = kx <= n / 2 ? kx : kx - n;
            int f = (int)lround(sqrt((double)fx * fx + (double)fy * fy));
            if (f < 200) {
                pw[f] += (double)re[ky * n + kx] * re[ky * n + kx] + (double)im[ky * n + kx] * im[ky * n + kx];
                cnt[f]++;
            }
        }
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int f = 4; f <= 64; f++) {
        double lx = log((double)f), ly = log(pw[f] / cnt[f]);
        sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
        m++;
    }
    free(re);
    free(im);
    free(cr);
    free(ci);
    return (m * sxy - sx * sy) / (m * sxx - sx * sx);
}

MM_TEST(synth_texture_has_power_law_spectrum)
{
    int n = 256;
    float *t = malloc(sizeof(float) * n * n);
    double betas[3] = {2.0, 2.8, 3.5};
    for (int b = 0; b < 3; b++) {
        double slope = 0;
        for (int rep = 0; rep < 3; rep++) {
            mm_synth_texture(t, n, n, betas[b], 100 + (uint64_t)rep);
            slope += spectral_slope(t, n) / 3;
        }
        CHECK_MSG(fabs(slope + betas[b]) < 0.25, "beta %.1f: measured slope %.2f", betas[b], slope);
    }
    /* unit variance, zero mean; a non-power-of-two size is cropped from the padded grid */
    float *u = malloc(sizeof(float) * 100 * 70);
    mm_synth_texture(u, 100, 70, 3.0, 5);
    double s = 0, s2 = 0;
    for (int i = 0; i < 7000; i++) s += u[i], s2 += (double)u[i] * u[i];
    CHECK_CLOSE(s / 7000, 0, 1e-4, 0);
    CHECK_CLOSE(s2 / 7000, 1, 1e-3, 0);
    free(u);
    free(t);
}

/* ---- lesions ----------------------------------------------------------------------------- */

typedef struct lesion_stats {
    double outside_signal; /* fraction of the added intensity outside the mask (spicules, halo) */
    double irregularity;   /* perimeter^2 / (4 pi area) of the outline: 1 for a circle */
    double inside_mean;    /* mean added intensity inside the mask, relative to the contrast */
    int specks;
    double speck_r;        /* mean speck radius, mm */
    double spread;         /* mask area per speck, mm^2 */
} lesion_stats;

static lesion_stats lesion_on_flat(mm_synth_kind kind, int malignant, uint64_t seed, double mmpp)
{
    int h = 200, w = 200;
    float *img = calloc((size_t)h * w, sizeof(float));
    uint8_t *mask = calloc((size_t)h * w, 1);
    mm_synth_lesion les = {0};
    les.kind = kind, les.malignant = malignant, les.cx = 100, les.cy = 100;
    les.size_mm = kind == MM_SYNTH_MASS ? 15 : malignant ? 7 : 16;
    les.contrast = kind == MM_SYNTH_MASS ? 0.15 : 0.35;
    les.spiculated = 1;
    les.seed = seed;
    mm_synth_draw_lesion(img, mask, &les, h, w, mmpp);
    lesion_stats st = {0};
    double in = 0, out = 0, nin = 0;
    for (int i = 0; i < h * w; i++) {
        if (mask[i]) in += img[i], nin++;
        else out += img[i];
    }
    st.outside_signal = out / (in + out);
    st.inside_mean = in / nin / les.contrast;
    double per = 0, area = 0;
    for (int i = 0, j = les.n_outline - 1; i < les.n_outline; j = i++) {
        double *a = les.outline + 2 * i, *b = les.outline + 2 * j;
        per += hypot(a[0] - b[0], a[1] - b[1]);
        area += 0.5 * (b[0] * a[1] - a[0] * b[1]);
    }
    st.irregularity = per * per / (4 * M_PI * fabs(area));
    st.specks = les.n_specks;
    for (int i = 0; i < les.n_specks; i++) st.speck_r += les.speck_r[i] * mmpp / les.n_specks;
    if (les.n_specks) st.spread = nin * mmpp * mmpp / les.n_specks;
    CHECK(les.mask_pixels == (int)nin && les.x0 < les.x1 && les.y0 < les.y1);
    mm_synth_lesion_free(&les);
    free(img);
    free(mask);
    return st;
}

/* Malignant masses are spiculated and irregular, benign ones smooth and round, with the same
 * intensity inside; malignant calcifications are more, finer and more tightly packed. Checked on
 * averages over 24 lesions each, near full resolution (0.1 mm) and at the small default (0.75). */
MM_TEST(synth_malignant_and_benign_lesions_differ)
{
    double scales[2] = {0.1, 0.75};
    for (int s = 0; s < 2; s++) {
        double mmpp = scales[s];
        lesion_stats m = {0}, b = {0}, cm = {0}, cb = {0};
        int n = 24;
        for (int i = 0; i < n; i++) {
            lesion_stats x = lesion_on_flat(MM_SYNTH_MASS, 1, 1000 + (uint64_t)i, mmpp);
            lesion_stats y = lesion_on_flat(MM_SYNTH_MASS, 0, 2000 + (uint64_t)i, mmpp);
            lesion_stats u = lesion_on_flat(MM_SYNTH_CALC, 1, 3000 + (uint64_t)i, mmpp);
            lesion_stats v = lesion_on_flat(MM_SYNTH_CALC, 0, 4000 + (uint64_t)i, mmpp);
            m.outside_signal += x.outside_signal / n, b.outside_signal += y.outside_signal / n;
            m.irregularity += x.irregularity / n, b.irregularity += y.irregularity / n;
            m.inside_mean += x.inside_mean / n, b.inside_mean += y.inside_mean / n;
            cm.specks += u.specks, cb.specks += v.specks;
            cm.speck_r += u.speck_r / n, cb.speck_r += v.speck_r / n;
            cm.spread += u.spread / n, cb.spread += v.spread / n;
        }
        if (getenv("MM_SYNTH_VERBOSE"))
            printf("    %.2f mm: outside %.3f/%.3f irregular %.3f/%.3f inside %.3f/%.3f specks %d/%d r %.3f/%.3f "
                   "spread %.2f/%.2f\n", mmpp, m.outside_signal, b.outside_signal, m.irregularity, b.irregularity,
                   m.inside_mean, b.inside_mean, cm.specks, cb.specks, cm.speck_r, cb.speck_r, cm.spread, cb.spread);
        CHECK_MSG(m.outside_signal > 2.0 * b.outside_signal, "spicules: %.3f vs %.3f", m.outside_signal, b.outside_signal);
        CHECK_MSG(m.irregularity > b.irregularity + 0.15, "outline: %.3f vs %.3f", m.irregularity, b.irregularity);
        CHECK_MSG(b.irregularity < 1.15, "benign outline %.3f", b.irregularity);
        CHECK_MSG(fabs(m.inside_mean - b.inside_mean) < 0.15 * b.inside_mean, "inside %.3f vs %.3f", m.inside_mean, b.inside_mean);
        CHECK_MSG(cm.specks > 2 * cb.specks, "speck counts %d vs %d", cm.specks, cb.specks);
        CHECK_MSG(cm.speck_r < cb.speck_r, "speck radius %.3f vs %.3f mm", cm.speck_r, cb.speck_r);
        CHECK_MSG(cm.spread < 0.5 * cb.spread, "area per speck %.2f vs %.2f mm2", cm.spread, cb.spread);
    }
}

/* ---- the layouts -------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    if (len) *len = got;
    return b;
}

static char *text_at(const char *dir, const char *rel)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return slurp(p, NULL);
}

static int exists(const char *dir, const char *rel)
{
    char p[2048];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return stat(p, &st) == 0;
}

static int count_str(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Splits a simple CSV line (no quotes) in place. */
static int split(char *line, char sep, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == sep) *p = '\0', f[n++] = p + 1;
    return n;
}

/* Every file of a tree, for comparisons. */
static char tree_files[4096][512];
static int n_tree_files;
static const char *tree_root;
static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (type == FTW_F && n_tree_files < 4096)
        snprintf(tree_files[n_tree_files++], 512, "%s", path + strlen(tree_root));
    return 0;
}
static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }
static int list_tree(const char *root)
{
    n_tree_files = 0;
    tree_root = root;
    nftw(root, collect, 16, FTW_PHYS);
    qsort(tree_files, (size_t)n_tree_files, sizeof tree_files[0], cmp_str);
    return n_tree_files;
}

static mm_synth_opts small_opts(mm_synth_layout layout, const char *out, int patients, uint64_t seed, int threads)
{
    mm_synth_opts o = {0};
    o.layout = layout, o.out_dir = out, o.patients = patients, o.seed = seed, o.threads = threads;
    return o;
}

MM_TEST(synth_cbis_layout_and_quirks)
{
    char out[600];
    snprintf(out, sizeof out, "%s/cbis", mm_test_tmpdir());
    mm_synth_opts o = small_opts(MM_SYNTH_CBIS_DDSM, out, 16, 7, 2);
    mm_synth_summary sum;
    CHECK_MSG(mm_synth_generate(&o, &sum) == MM_OK, "%s", mm_last_error());
    CHECK_EQ_INT(sum.patients, 16);
    CHECK(sum.malignant_images > 0 && sum.benign_images > 0 && sum.normal_images == 0);
    CHECK(sum.rois > sum.images / 2);
    const char *csvs[4] = {"mass_case_description_train_set.csv", "mass_case_description_test_set.csv",
                           "calc_case_description_train_set.csv", "calc_case_description_test_set.csv"};
    const char *mass_head = "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,"
                            "mass shape,mass margins,assessment,pathology,subtlety,image file path,cropped image file path,"
                            "ROI mask file path\n";
    const char *calc_head = "patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,"
                            "calc type,calc distribution,assessment,pathology,subtlety,image file path,cropped image file "
                            "path,ROI mask file path\n";
    int quoted_nl = 0, rows = 0, bwc = 0, first_patient = 0;
    for (int k = 0; k < 4; k++) {
        char *t = text_at(out, csvs[k]);
        CHECK_MSG(t != NULL, "%s missing", csvs[k]);
        if (!t) continue;
        CHECK_MSG(!strncmp(t, k < 2 ? mass_head : calc_head, strlen(mass_head) - 2), "%s header", csvs[k]);
        CHECK(!strncmp(t, k < 2 ? mass_head : calc_head, strlen(k < 2 ? mass_head : calc_head)));
        quoted_nl += count_str(t, ".dcm\n\"");
        rows += count_str(t, "\nP_");
        bwc += count_str(t, ",BENIGN_WITHOUT_CALLBACK,");
        first_patient += count_str(t, "\nP_00001,");
        free(t);
    }
    CHECK_MSG(quoted_nl > 0, "no quoted path with a trailing newline");
    CHECK_EQ_INT(rows, sum.rois);
    CHECK(bwc > 0);
    CHECK(first_patient > 0);
    /* The answer key: every file it names exists; the CSV paths do not. */
    char *tr = text_at(out, "synth-truth-rois.csv");
    CHECK(tr != NULL);
    int swapped = 0, one_folder = 0, checked = 0, multi = 0;
    char *save = NULL, prev_exam[32] = "";
    for (char *line = strtok_r(tr, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "exam,", 5)) continue;
        char *f[20];
        CHECK_EQ_INT(split(line, ',', f, 20), 16);
        swapped += atoi(f[15]);
        if (!strcmp(f[0], prev_exam)) multi++;
        snprintf(prev_exam, sizeof prev_exam, "%s", f[0]);
        char mask_path[2048], crop_path[2048];
        snprintf(mask_path, sizeof mask_path, "%s/%s", out, f[9]);
        snprintf(crop_path, sizeof crop_path, "%s/%s", out, f[10]);
        const char *slash_m = strrchr(f[9], '/'), *slash_c = strrchr(f[10], '/');
        if (slash_m - f[9] == slash_c - f[10] && !strncmp(f[9], f[10], (size_t)(slash_m - f[9]))) {
            one_folder++;
            CHECK(strstr(f[9], "/1-1.dcm") || strstr(f[9], "/1-2.dcm"));
        }
        if (checked < 12) { /* masks: 8-bit 0/255 full size; crops: 16-bit, small */
            checked++;
            mm_dicom_info mi, ci;
            uint16_t *mp = NULL, *cp = NULL;
            CHECK_MSG(mm_dicom_read_u16(mask_path, &mi, &mp) == MM_OK, "%s", mm_last_error());
            CHECK_MSG(mm_dicom_read_u16(crop_path, &ci, &cp) == MM_OK, "%s", mm_last_error());
            if (mp && cp) {
                CHECK_EQ_INT(mi.bits_allocated, 8);
                CHECK_EQ_INT(ci.bits_allocated, 16);
                CHECK(ci.rows < mi.rows && ci.cols < mi.cols);
                CHECK(!strcmp(mi.series_description, "ROI mask images"));
                int x0 = atoi(f[11]), y0 = atoi(f[12]), x1 = atoi(f[13]), y1 = atoi(f[14]), bad = 0, on = 0;
                for (int y = 0; y < mi.rows; y++)
                    for (int x = 0; x < mi.cols; x++) {
                        int v = mp[y * mi.cols + x];
                        bad += v != 0 && v != 255;
                        on += v == 255;
                        if (v && (x < x0 || x >= x1 || y < y0 || y >= y1)) bad++;
                    }
                CHECK_EQ_INT(bad, 0);
                CHECK(on > 0);
            }
            free(mp);
            free(cp);
        }
    }
    free(tr);
    CHECK_MSG(swapped > 0, "no ROI row with the crop and mask paths swapped");
    CHECK_MSG(one_folder > 0, "no ROI with both files in one folder");
    CHECK_MSG(multi > 0, "no image with several ROIs");
    /* Full images: the CSV's series UID is the DICOM's, the CSV path is not on disk. */
    char *ti = text_at(out, "synth-truth-images.csv");
    CHECK(ti != NULL && !strncmp(ti, "exam,patient_id,side,view,label,n_rois,collection,height,width,image_path\n", 70));
    char *all_csv = NULL;
    {
        size_t cap = 0;
        for (int k = 0; k < 4; k++) {
            char *t = text_at(out, csvs[k]);
            size_t n = strlen(t);
            all_csv = realloc(all_csv, cap + n + 1);
            memcpy(all_csv + cap, t, n + 1);
            cap += n;
            free(t);
        }
    }
    int images = 0, copies = 0;
    for (char *line = strtok_r(ti, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "exam,", 5)) continue;
        char *f[12];
        CHECK_EQ_INT(split(line, ',', f, 12), 10);
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", out, f[9]);
        CHECK(strstr(f[9], "CBIS-DDSM/") == f[9] && strstr(f[9], "-DDSM-NA-") && strstr(f[9], "1.000000-full mammogram images-") &&
              strstr(f[9], "/1-1.dcm"));
        mm_dicom_info in;
        CHECK_MSG(mm_dicom_read_info(path, &in) == MM_OK, "%s", mm_last_error());
        CHECK_EQ_INT(in.rows, atoi(f[7]));
        CHECK_EQ_INT(in.cols, atoi(f[8]));
        CHECK(in.rows >= 304 && in.rows <= 336 && in.cols >= 243 && in.cols <= 269);
        CHECK_EQ_INT(in.bits_stored, 16);
        CHECK(!strcmp(in.photometric, "MONOCHROME2"));
        CHECK(!strcmp(in.series_description, "full mammogram images"));
        CHECK(!strcmp(in.modality, "MG"));
        CHECK(in.laterality[0] == '\0' && in.view[0] == '\0'); /* CBIS files lack them */
        CHECK(strstr(in.patient_id, f[1]) && strstr(in.patient_id, f[2]) && strstr(in.patient_id, f[3]));
        CHECK_MSG(strstr(all_csv, in.series_uid) != NULL, "series %s not in the CSVs", in.series_uid);
        char csv_path[512];
        snprintf(csv_path, sizeof csv_path, "CBIS-DDSM/%s/%s/%s/000000.dcm", in.patient_id, in.study_uid, in.series_uid);
        CHECK(!exists(out, csv_path));
        images++;
        copies += strcmp(f[0], "0") == 0;
    }
    free(ti);
    free(all_csv);
    CHECK(images >= sum.images);
    /* metadata.csv */
    char *md = text_at(out, "metadata.csv");
    CHECK(md && !strncmp(md, "Series UID,Collection,3rd Party Analysis,Data Description URI,Subject ID,Study UID,"
                             "Study Description,Study Date,Series Description,Manufacturer,Modality,SOP Class Name,"
                             "SOP Class UID,Number of Images,File Size,File Location,Download Timestamp\n", 200));
    CHECK(md && count_str(md, ",./CBIS-DDSM/") == count_str(md, "\n") - 1);
    free(md);
    /* nothing half-written left behind */
    int tmp = 0;
    for (int i = 0, n = list_tree(out); i < n; i++) tmp += strstr(tree_files[i], ".tmp.") != NULL;
    CHECK_EQ_INT(tmp, 0);
}

MM_TEST(synth_cbis_other_trees)
{
    const char *names[2] = {"old", "classic"};
    for (int t = 0; t < 2; t++) {
        char out[600];
        snprintf(out, sizeof out, "%s/%s", mm_test_tmpdir(), names[t]);
        mm_synth_opts o = small_opts(MM_SYNTH_CBIS_DDSM, out, 3, 5, 1);
        o.tree = t == 0 ? MM_SYNTH_TREE_OLD : MM_SYNTH_TREE_CLASSIC;
        o.height = 96, o.width = 80;
        mm_synth_summary sum;
        CHECK_MSG(mm_synth_generate(&o, &sum) == MM_OK, "%s", mm_last_error());
        int n = list_tree(out), dcm = 0, style = 0;
        for (int i = 0; i < n; i++) {
            if (!strstr(tree_files[i], ".dcm")) continue;
            dcm++;
            if (t == 0) style += strstr(tree_files[i], "-DDSM-") && !strstr(tree_files[i], "-DDSM-NA-") &&
                                 (strstr(tree_files[i], "/000000.dcm") || strstr(tree_files[i], "/000001.dcm"));
            else style += strstr(tree_files[i], "/1.3.6.1.4.1.9590.100.1.2.") != NULL;
        }
        CHECK_EQ_INT(dcm, sum.files);
        CHECK_EQ_INT(style, dcm);
        mm_dicom_info in;
        char *ti = text_at(out, "synth-truth-images.csv");
        char *line = strchr(ti, '\n') + 1, *f[12];
        *strchr(line, '\n') = '\0';
        split(line, ',', f, 12);
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", out, f[9]);
        CHECK(mm_dicom_read_info(path, &in) == MM_OK);
        CHECK_EQ_INT(in.rows, 96);
        CHECK_EQ_INT(in.cols, 80);
        free(ti);
    }
}

MM_TEST(synth_inbreast_layout_and_quirks)
{
    char out[600];
    snprintf(out, sizeof out, "%s/inb", mm_test_tmpdir());
    mm_synth_opts o = small_opts(MM_SYNTH_INBREAST, out, 12, 3, 2);
    mm_synth_summary sum;
    CHECK_MSG(mm_synth_generate(&o, &sum) == MM_OK, "%s", mm_last_error());
    CHECK(sum.malignant_images > 0 && sum.benign_images > 0 && sum.normal_images > 0);
    char *csv = text_at(out, "INbreast.csv");
    const char *head = "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n";
    CHECK(csv && !strncmp(csv, head, strlen(head)));
    char *ti = text_at(out, "synth-truth-images.csv");
    int rows = 0, xml_present = 0, mono1 = 0;
    char *save = NULL;
    for (char *line = strtok_r(csv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "Patient ID", 10)) continue;
        char *f[10];
        CHECK_EQ_INT(split(line, ';', f, 10), 8);
        CHECK(!strcmp(f[0], "removed") && !strcmp(f[1], "removed"));
        CHECK(!strcmp(f[2], "L") || !strcmp(f[2], "R"));
        CHECK(!strcmp(f[3], "CC") || !strcmp(f[3], "MLO"));
        CHECK(strlen(f[4]) == 6 && strlen(f[5]) == 8);
        CHECK((strlen(f[6]) == 1 && f[6][0] >= '1' && f[6][0] <= '4') || !strcmp(f[6], "  "));
        const char *ok_birads[] = {"1", "2", "3", "4a", "4b", "4c", "5", "6"};
        int okb = 0;
        for (int k = 0; k < 8; k++) okb |= !strcmp(f[7], ok_birads[k]);
        CHECK_MSG(okb, "Bi-Rads '%s'", f[7]);
        /* the DICOM: <FileName>_<16 hex>_MG_<L|R>_<CC|ML>_ANON.dcm */
        char pattern[64];
        snprintf(pattern, sizeof pattern, "AllDICOMs/%s_", f[5]);
        char *at = strstr(ti, pattern);
        CHECK_MSG(at != NULL, "no image for file name %s", f[5]);
        if (!at) continue;
        char rel[256];
        sscanf(at, "%255[^,]", rel);
        char suffix[32];
        snprintf(suffix, sizeof suffix, "_MG_%s_%s_ANON.dcm", f[2], !strcmp(f[3], "MLO") ? "ML" : "CC");
        CHECK_MSG(strlen(rel) == strlen("AllDICOMs/") + 8 + 1 + 16 + strlen(suffix) && strstr(rel, suffix), "%s", rel);
        char path[2048], xml[128];
        snprintf(path, sizeof path, "%s/%s", out, rel);
        mm_dicom_info in;
        uint16_t *px = NULL;
        CHECK_MSG(mm_dicom_read_u16(path, &in, &px) == MM_OK, "%s", mm_last_error());
        if (px) {
            CHECK_EQ_INT(in.bits_stored, 14);
            CHECK(!strcmp(in.laterality, f[2]) && !strcmp(in.view, f[3]));
            CHECK(strlen(in.patient_id) == 16 && strstr(rel, in.patient_id));
            CHECK(!strcmp(in.sop_class_uid, MM_DICOM_SOP_MAMMO_PRESENTATION));
            CHECK((in.rows == 320 && in.cols == 261) || (in.rows == 261 && in.cols == 201));
            mono1 += !strcmp(in.photometric, "MONOCHROME1");
            /* whatever the photometric interpretation, air reads dark: the corner away from the
             * chest wall is far below the breast's level */
            int x = f[2][0] == 'R' ? 2 : in.cols - 3;
            CHECK_MSG(px[(in.rows / 2) * in.cols + x] < 2000, "%s: air %d", rel, px[(in.rows / 2) * in.cols + x]);
            int xc = f[2][0] == 'R' ? in.cols - 20 : 20;
            CHECK(px[(in.rows / 2) * in.cols + xc] > 3000);
        }
        free(px);
        snprintf(xml, sizeof xml, "AllXML/%s.xml", f[5]);
        int has_xml = exists(out, xml);
        xml_present += has_xml;
        CHECK_MSG(has_xml == (strcmp(f[7], "1") != 0), "%s: BI-RADS %s, XML %d", f[5], f[7], has_xml);
        rows++;
    }
    CHECK_EQ_INT(rows, sum.images);
    CHECK(rows >= 2 * 12 && rows <= 4 * 12);
    CHECK(xml_present > 0);
    CHECK(mono1 > 0);
    free(csv);
    free(ti);
    /* the XML plists: Point_px strings, the ROI names (typos included) */
    char *tr = text_at(out, "synth-truth-rois.csv");
    CHECK(tr && count_str(tr, ",Mass,") > 0 && count_str(tr, ",Calcification") > 0);
    int n = list_tree(out), names_ok = 1, points = 0, one_point = 0;
    for (int i = 0; i < n; i++) {
        if (!strstr(tree_files[i], ".xml")) continue;
        char *x = text_at(out, tree_files[i] + 1);
        CHECK(strstr(x, "<plist version=\"1.0\">") && strstr(x, "<key>Images</key>") && strstr(x, "<key>ROIs</key>"));
        points += count_str(x, "<key>Point_px</key>");
        one_point += count_str(x, "<key>NumberOfPoints</key>\n\t\t\t\t\t<integer>1</integer>");
        for (char *p = x; (p = strstr(p, "<key>Name</key>\n\t\t\t\t\t<string>")); p++) {
            char nm[64];
            sscanf(p + strlen("<key>Name</key>\n\t\t\t\t\t<string>"), "%63[^<]", nm);
            const char *allowed[] = {"Mass", "Calcification", "Calcifications", "Cluster", "Asymmetry", "Assymetry",
                                     "Spiculated Region", "Espiculated Region"};
            int ok = 0;
            for (int k = 0; k < 8; k++) ok |= !strcmp(nm, allowed[k]);
            names_ok &= ok;
        }
        char pt[64];
        char *q = strstr(x, "<key>Point_px</key>\n\t\t\t\t\t<array>\n\t\t\t\t\t\t<string>");
        CHECK(q != NULL);
        if (q) {
            sscanf(q + strlen("<key>Point_px</key>\n\t\t\t\t\t<array>\n\t\t\t\t\t\t<string>"), "%63[^<]", pt);
            double px, py;
            CHECK_MSG(sscanf(pt, "(%lf, %lf)", &px, &py) == 2, "Point_px '%s'", pt);
        }
        free(x);
    }
    CHECK(names_ok);
    CHECK(points > 0 && one_point > 0);
    free(tr);
}

/* Same seed: byte-identical trees with 1 and 3 threads; another seed: different files. */
MM_TEST(synth_is_deterministic)
{
    for (int layout = 0; layout < 2; layout++) {
        char a[600], b[600], c[600];
        snprintf(a, sizeof a, "%s/a%d", mm_test_tmpdir(), layout);
        snprintf(b, sizeof b, "%s/b%d", mm_test_tmpdir(), layout);
        snprintf(c, sizeof c, "%s/c%d", mm_test_tmpdir(), layout);
        mm_synth_summary s;
        mm_synth_opts o = small_opts((mm_synth_layout)layout, a, 4, 42, 1);
        o.height = 128, o.width = 100;
        CHECK(mm_synth_generate(&o, &s) == MM_OK);
        o.out_dir = b, o.threads = 3;
        CHECK(mm_synth_generate(&o, &s) == MM_OK);
        o.out_dir = c, o.seed = 43;
        CHECK(mm_synth_generate(&o, &s) == MM_OK);
        int na = list_tree(a);
        static char files_a[4096][512];
        memcpy(files_a, tree_files, sizeof(tree_files[0]) * (size_t)na);
        int nb = list_tree(b);
        CHECK_EQ_INT(na, nb);
        int differ = 0;
        for (int i = 0; i < na && i < nb; i++) {
            CHECK(!strcmp(files_a[i], tree_files[i]));
            char pa[1200], pb[1200];
            snprintf(pa, sizeof pa, "%s%.511s", a, files_a[i]);
            snprintf(pb, sizeof pb, "%s%.511s", b, tree_files[i]);
            size_t la, lb;
            char *xa = slurp(pa, &la), *xb = slurp(pb, &lb);
            if (!xa || !xb || la != lb || memcmp(xa, xb, la)) {
                differ++;
                CHECK_MSG(0, "%s differs between runs", files_a[i]);
            }
            free(xa);
            free(xb);
        }
        CHECK_EQ_INT(differ, 0);
        char *t1 = text_at(a, "synth-truth-images.csv"), *t2 = text_at(c, "synth-truth-images.csv");
        CHECK(t1 && t2 && strcmp(t1, t2) != 0);
        free(t1);
        free(t2);
    }
}

static int run(const char *cmd)
{
    char full[2400];
    snprintf(full, sizeof full, "%s >/dev/null 2>'%s/stderr.txt'", cmd, mm_test_tmpdir());
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

MM_TEST(synth_cli)
{
    char cmd[2000];
    const char *exe = MM_MAMMO_EXE, *tmp = mm_test_tmpdir();
    snprintf(cmd, sizeof cmd, "'%s' synth --layout inbreast --out '%s/cli' --patients 1 --seed 9 --height 90 --width 70", exe, tmp);
    CHECK_EQ_INT(run(cmd), 0);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/cli", tmp);
    CHECK(exists(dir, "INbreast.csv"));
    snprintf(cmd, sizeof cmd, "'%s' synth --out '%s/x' --patients 1", exe, tmp);
    CHECK_EQ_INT(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "'%s' synth --layout ddsm --out '%s/x'", exe, tmp);
    CHECK_EQ_INT(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "'%s' synth --layout cbis-ddsm --out '%s/x' --tree new", exe, tmp);
    CHECK_EQ_INT(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "'%s' synth --layout cbis-ddsm --out '%s/x' --height 100", exe, tmp);
    CHECK_EQ_INT(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "'%s' synth --layout cbis-ddsm --out '%s/x' --patients 0", exe, tmp);
    CHECK_EQ_INT(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "'%s' synth --layout cbis-ddsm --out /proc/nope --patients 1", exe);
    CHECK_EQ_INT(run(cmd), 1);
    char err[700];
    snprintf(err, sizeof err, "%s/stderr.txt", tmp);
    char *e = slurp(err, NULL);
    CHECK(e && !strncmp(e, "mammo: ", 7) && strstr(e, "/proc/nope"));
    free(e);
}
