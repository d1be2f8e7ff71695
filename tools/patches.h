/* `mammo patches`: the paper's patch sampler (S10: 10 patches of 224x224 per ROI with overlap
 * >= 0.9 on 1152x896 images, and as many background patches from the same mammogram).
 *
 * For every ROI of class calc/mass x benign/malignant (mm_roi_class), `per_roi` patches:
 *   - a centre is drawn uniformly over the ROI mask's bounding box; the patch (size x size, shifted
 *     to lie inside the image) is kept when its overlap with the ROI reaches `min_overlap`, where
 *     overlap = max(intersection / ROI area, intersection / patch area), both in mask pixels (the
 *     reference repository's test: a small ROI must be almost all inside the patch, a large one
 *     must fill almost all of it);
 *   - after `max_tries` rejections in a row the threshold drops by 0.05 (as the reference does),
 *     down to 0.05; an ROI that still gives nothing keeps fewer patches (counted in the stats).
 * Then per_roi background patches for every ROI that gave patches, from the same image: top-left
 * corner uniform over the image, kept when the patch centre is in the breast, at least
 * `min_breast` of the patch is breast, and the patch overlaps no ROI of the image at all (any
 * type, any pathology). The breast is the largest 4-connected region brighter than
 * `breast_threshold` x the image maximum, with its holes filled (the reference segments the same
 * way at 5%).
 *
 * Random numbers come from Philox keyed by the seed and a hash of the image id, so the result
 * does not depend on the thread count or the order of the index.
 *
 * Output folder OUT (must not exist or be empty; written under a temporary name and renamed when
 * complete, so a failed run leaves nothing):
 *   OUT/<split>/<class>/<image_id>_r<k>_<j>.png    16-bit (the image's values), size x size
 *   OUT/<split>/<class>/<image_id>_bg_<j>.png
 *   OUT/patches.csv  path,split,class,label,image_id,patient_id,roi,y,x,size,overlap
 *     (path relative to OUT; class one of background, calc_ben, calc_mal, mass_ben, mass_mal and
 *     label its index 0..4 in that order; roi = the ROI's position in the index record, -1 for
 *     background; y, x = top-left corner in the image; overlap as defined above, 0 for
 *     background). Rows follow the index order. */
#ifndef MM_PATCHES_H
#define MM_PATCHES_H

#include <stdbool.h>
#include <stdint.h>

#include "../runtime/error.h"
#include "index.h"

typedef struct mm_patch_opts {
    int size;                /* patch side, 224 */
    int per_roi;             /* patches per ROI, 10 */
    double min_overlap;      /* 0.9 */
    int height, width;       /* images of another size are resized to this first; 0 (default): as
                                they are, i.e. the size `mammo prep` wrote (1152 x 896) */
    double breast_threshold; /* fraction of the image maximum, 0.05 */
    double min_breast;       /* fraction of a background patch that must be breast, 0.5 */
    int max_tries;           /* rejections before relaxing, 1000 */
    uint64_t seed;
    int threads;             /* <= 0: one per CPU */
    bool quiet;
} mm_patch_opts;

void mm_patch_opts_default(mm_patch_opts *o);

/* One sampled patch. */
typedef struct mm_patch {
    int cls;        /* mm_patch_class */
    int roi;        /* position of the ROI in the image record; -1 for background */
    int y, x;       /* top-left corner */
    double overlap;
} mm_patch;

typedef struct mm_patch_stats {
    int images, rois, rois_skipped;  /* ROIs with no class or an empty mask are skipped */
    int rois_relaxed;                /* ROIs that needed a lower overlap threshold */
    int rois_short, bkg_short;       /* patches that could not be found */
    int per_class[5];
    int per_split[3];
} mm_patch_stats;

/* Samples the patches of one image whose pixels and ROI masks (0/1, all [h*w]) are loaded.
 * *out is malloc'ed [*n]. `key` selects the random stream (the runner uses a hash of the image
 * id). Counts go to stats (added). */
mm_status mm_patches_sample(mm_patch **out, int *n, mm_patch_stats *stats,
                            const uint16_t *img /* [h*w] */, uint8_t *const *masks /* [n_rois][h*w] */,
                            const mm_index_image *im, const mm_patch_opts *o, uint64_t key,
                            int h, int w);

/* The breast: pixels above threshold * max, largest 4-connected component, holes filled.
 * Returns its pixel count. */
int64_t mm_breast_mask(uint8_t *out /* [h*w] */, const uint16_t *img /* [h*w] */,
                       double threshold, int h, int w);

/* Summed-area table: ii[(y)*(w+1)+x] = number of nonzero m pixels above-left of (y, x). */
void mm_integral(int64_t *ii /* [(h+1)*(w+1)] */, const uint8_t *m /* [h*w] */, int h, int w);
/* Nonzero pixels in rows [y0, y1) x columns [x0, x1). */
static inline int64_t mm_integral_sum(const int64_t *ii, int w, int y0, int x0, int y1, int x1)
{
    size_t s = (size_t)w + 1;
    return ii[(size_t)y1 * s + (size_t)x1] - ii[(size_t)y0 * s + (size_t)x1] -
           ii[(size_t)y1 * s + (size_t)x0] + ii[(size_t)y0 * s + (size_t)x0];
}

/* The whole command: reads the index, samples every image, writes OUT (see above). */
mm_status mm_patches_run(mm_patch_stats *stats, const char *index_path, const char *out_dir,
                         const mm_patch_opts *o);

#endif
