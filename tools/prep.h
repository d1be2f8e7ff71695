/* `mammo prep`: every image of an index to a 16-bit grayscale PNG at the training size, every ROI
 * mask to an 8-bit 0/255 PNG at the same size, and an updated index that points at them.
 *
 * Layout of the output folder OUT:
 *   OUT/images/<image_id>.png      16-bit, target height x width, area-averaged (tools/resize.h),
 *                                  the DICOM's values kept as they are (no windowing, no scaling)
 *   OUT/masks/<image_id>_<k>.png   8-bit 0/255, the k-th ROI (k from 0), area-averaged from the
 *                                  mask's own size (CBIS-DDSM masks are not always the image's
 *                                  size) and binarised at half coverage (mm_resize_mask)
 *   OUT/index.csv                  the input index with image/height/width/roi_masks replaced by
 *                                  these (relative to OUT) and `source` made absolute
 * Images are processed in parallel. The run is resumable: an output that exists as a PNG of the
 * right size and depth is kept (unless `force`); every file is written to a temporary name and
 * renamed, and OUT/index.csv is written last, so an interrupted run leaves only whole files and
 * no index until every image is done. */
#ifndef MM_PREP_H
#define MM_PREP_H

#include <stdbool.h>
#include <stdint.h>

#include "../runtime/error.h"

typedef struct mm_prep_opts {
    int height, width; /* target size (1152 x 896 in the paper) */
    int threads;       /* <= 0: one per CPU */
    bool force;        /* redo outputs that already exist */
    bool quiet;        /* no progress on stderr */
} mm_prep_opts;

typedef struct mm_prep_stats {
    int images, images_skipped, masks, masks_skipped;
} mm_prep_stats;

mm_status mm_prep_run(mm_prep_stats *stats, const char *index_path, const char *out_dir,
                      const mm_prep_opts *opts);

/* Loads a grayscale image as uint16: a PNG (8- or 16-bit) when the name ends in .png, else a DICOM
 * (mm_dicom_read_u16). *pixels is malloc'ed [h*w]. */
mm_status mm_load_gray16(uint16_t **pixels, int *h, int *w, const char *path);
/* Loads a mask the same way as 0/1 bytes (nonzero = inside). */
mm_status mm_load_mask(uint8_t **mask, int *h, int *w, const char *path);

/* True when `path` is a PNG of exactly this size and bit depth (reads its IHDR only). */
bool mm_png_has_shape(const char *path, int height, int width, int bit_depth);

#endif
