/* Synthetic mammograms and synthetic CBIS-DDSM / INbreast datasets (`mammo synth`).
 *
 * The real datasets cannot be downloaded here, so the project makes its own in the same layout and
 * with the same quirks (../shared/notes/data-formats.md): real DICOM files written through DCMTK,
 * the CSV/XML files of the real layouts, and an answer key (synth-truth-*.csv) that the real
 * datasets do not have, for tests.
 *
 * An image (all sizes in mm are converted with the pixel spacing):
 *   - breast: a half-ellipse against the chest wall (left edge for LEFT breasts, right edge for
 *     RIGHT ones), thickness roll-off towards the skin and a brighter skin line; MLO views add the
 *     pectoral muscle, a bright triangle in the top chest-wall corner;
 *   - parenchyma: glandular tissue (a thresholded smooth 1/f^3.5 field whose glandular fraction
 *     follows the ACR density 1..4) modulated by a 1/f^beta texture (beta ~ U(2.6, 3.2), spectral
 *     synthesis with our own radix-2 FFT, as in Burgess' power-law model of breast tissue);
 *   - lesions: masses (malignant: irregular outline, ill-defined margin, 8-22 tapered, slightly
 *     curved spicules; benign: round/oval or gently lobulated, sharp circumscribed margin) and
 *     calcification clusters (malignant: 10-28 fine, elongated, pleomorphic specks along branching
 *     ductal curves in a small region; benign: 4-10 larger round specks, some with lucent centres,
 *     scattered over a larger region); the size and contrast distributions of malignant and
 *     benign lesions are the same, they differ in shape and margin only;
 *   - system: Gaussian blur (sigma 0.6 px), signal-dependent noise; CBIS-like images also get the
 *     scanned-film look (noisy background, bright film-edge bands, a bright label box);
 *   - quantised to 16 bits (CBIS-DDSM) or 14 bits (INbreast).
 * Feature sizes are clamped to a minimum number of pixels so that spicules and calcifications stay
 * visible at the small default sizes. Everything is a pure function of the seed. */
#ifndef MM_SYNTH_H
#define MM_SYNTH_H

#include <stdint.h>

#include "../runtime/error.h"

/* ---- the dataset generator ---------------------------------------------------------------- */

typedef enum { MM_SYNTH_CBIS_DDSM, MM_SYNTH_INBREAST } mm_synth_layout;

/* CBIS-DDSM download trees (data-formats.md section 1): the NBIA retriever's current
 * "descriptive" folder names (default), the 2016-17 "old" names, or "classic" UID folders. */
typedef enum { MM_SYNTH_TREE_DESCRIPTIVE, MM_SYNTH_TREE_OLD, MM_SYNTH_TREE_CLASSIC } mm_synth_tree;

typedef struct mm_synth_opts {
    mm_synth_layout layout;
    const char *out_dir;
    int patients;
    uint64_t seed;
    int full_size;      /* real sizes: CBIS ~4000 x 3000 (jittered), INbreast 4084 x 3328 / 3328 x 2560 */
    int height, width;  /* > 0: every image exactly this size (overrides the defaults) */
    int threads;        /* 0: OpenMP's default */
    mm_synth_tree tree; /* CBIS-DDSM only */
} mm_synth_opts;

typedef struct mm_synth_summary {
    int patients, images, malignant_images, benign_images, normal_images, rois, files;
} mm_synth_summary;

/* Writes the whole dataset under opts->out_dir (created if missing). Same options and seed give
 * byte-identical files whatever the number of threads. Every file goes through temp + rename. */
mm_status mm_synth_generate(const mm_synth_opts *opts, mm_synth_summary *summary);

/* Default image sizes (rows x columns) and field of view. Small: CBIS 320 x 256 nominal, each
 * image jittered by up to +-5% per side like the real digitiser sizes; INbreast 320 x 261 (the
 * 4084 x 3328 plate scaled by 320/4084) or 261 x 201 (the 3328 x 2560 plate). Full size: CBIS
 * 4000 x 3000 nominal, jittered the same way; INbreast 4084 x 3328 or 3328 x 2560. The pixel
 * spacing follows from a fixed field of view: CBIS 240 mm high (0.06 mm full, 0.75 mm small),
 * INbreast 0.07 mm per full-size pixel (0.893 mm small). */
#define MM_SYNTH_CBIS_H 320
#define MM_SYNTH_CBIS_W 256
#define MM_SYNTH_CBIS_FULL_H 4000
#define MM_SYNTH_CBIS_FULL_W 3000
#define MM_SYNTH_CBIS_FOV_MM 240.0
#define MM_SYNTH_INBREAST_PX_MM 0.07

/* ---- one image (used by the generator and its tests) -------------------------------------- */

/* A 1/f^beta random field: out [h*w] gets zero mean and unit variance and a radially averaged
 * power spectrum proportional to f^-beta (f in cycles per pixel), made by filtering complex white
 * noise in the frequency domain of a power-of-two grid (radix-2 FFT) and cropping. */
void mm_synth_texture(float *out, int h, int w, double beta, uint64_t seed);

/* In-place radix-2 complex FFT of length n (a power of two); inverse=1 computes the unscaled
 * inverse transform. Exposed for the tests. */
void mm_synth_fft(float *re, float *im, int n, int inverse);

typedef struct mm_synth_breast {
    int h, w;
    double mm_per_px;
    int chest_right; /* 1: chest wall at the right edge (RIGHT breasts), 0: at the left edge */
    int mlo;         /* MLO view: pectoral muscle in the top chest-wall corner */
    int density;     /* ACR 1..4 */
    int film;        /* scanned-film look (CBIS-DDSM) */
    uint64_t seed;
    /* Geometry, set by mm_synth_breast_init from the seed (pixels). */
    double depth;          /* ellipse semi-axis from the chest wall towards the nipple */
    double cy, half_h;     /* ellipse centre row and vertical semi-axis */
    double pec_x, pec_y;   /* pectoral triangle legs along the top edge and the chest wall */
} mm_synth_breast;

void mm_synth_breast_init(mm_synth_breast *b, int h, int w, double mm_per_px, int chest_right,
                          int mlo, int density, int film, uint64_t seed);

/* Maps normalised breast coordinates to pixels: u in (0,1) is the depth from the chest wall as a
 * fraction of the breast depth, v in (-1,1) the height as a fraction of the local half-height. */
void mm_synth_breast_point(const mm_synth_breast *b, double u, double v, double *x, double *y);

/* 1 if (x, y) is inside the breast, at least `margin` (fraction of the radius) from the skin and
 * outside the pectoral muscle (with a margin). */
int mm_synth_breast_inside(const mm_synth_breast *b, double x, double y, double margin);

/* Draws the breast (tissue, skin, pectoral) into img [h*w] (values in [0,1], bright = dense);
 * breast_mask [h*w] may be NULL, else gets 255 inside the breast. */
void mm_synth_draw_breast(float *img, uint8_t *breast_mask, const mm_synth_breast *b);

/* Film look (if b->film), blur, noise, clipping to [0,1]. */
void mm_synth_finish(float *img, const mm_synth_breast *b);

typedef enum { MM_SYNTH_MASS, MM_SYNTH_CALC, MM_SYNTH_ASYMMETRY } mm_synth_kind;

typedef struct mm_synth_lesion {
    /* inputs */
    mm_synth_kind kind;
    int malignant;
    double cx, cy;     /* centre (pixels; x = column, y = row) */
    double size_mm;    /* mass / asymmetry diameter, calcification cluster extent */
    double contrast;   /* added intensity of a mass body / the brightest speck (0..1 scale) */
    int spiculated;    /* malignant masses: 1 long spicules, 0 ill-defined with a few short ones */
    int lobulated;     /* benign masses: gently lobulated instead of round/oval */
    uint64_t seed;
    /* outputs of mm_synth_draw_lesion (free with mm_synth_lesion_free) */
    int x0, y0, x1, y1;    /* bounding box of the mask, [x0,x1) x [y0,y1), clipped; empty if x0>=x1 */
    int mask_pixels;
    int n_outline;         /* mask outline polygon (x,y pairs), pixels */
    double *outline;
    int n_specks;          /* calcification specks: centres (x,y) and radii (px, mean semi-axis) */
    double *specks, *speck_r;
    int n_spicules;
    double spicule_reach;  /* longest spicule tip distance from the centre (px) */
} mm_synth_lesion;

/* Adds the lesion to img [h*w] and ORs its mask (255) into mask [h*w] (may be NULL). The mask is
 * the mass body without spicules (as tight as CBIS-DDSM's mass outlines), a coarse outline around
 * a calcification cluster (the convex hull of its specks grown by max(1.5 mm, 2.5 px)), or the
 * half-maximum outline of an asymmetry. */
void mm_synth_draw_lesion(float *img, uint8_t *mask, mm_synth_lesion *les, int h, int w,
                          double mm_per_px);
void mm_synth_lesion_free(mm_synth_lesion *les);

/* Scales [0,1] to [0, maxval] with rounding: out [n]. */
void mm_synth_quantize(uint16_t *out, const float *img, long long n, int maxval);

#endif
