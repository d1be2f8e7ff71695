/* On-the-fly augmentation as the paper's reference (Keras 2.0.x ImageDataGenerator.random_transform),
 * drawn reproducibly from Philox and applied as ONE affine warp.
 *
 * Per sample (draws in parentheses, all independent):
 *   - horizontal flip (u < 0.5) and vertical flip (u < 0.5), when enabled;
 *   - rotation theta ~ U(-rotation_deg, +rotation_deg) degrees;
 *   - shear s ~ U(-shear, +shear), in RADIANS: Keras 2.0.x documents shear_range as "shear angle in
 *     counter-clockwise direction as radians" and feeds the draw straight into sin/cos (Keras >= 2.2
 *     switched to degrees). The paper's 0.2 is therefore 0.2 rad = 11.5 degrees;
 *   - zoom zx, zy ~ U(zoom_min, zoom_max), drawn independently for rows and columns (Keras draws two);
 *   - intensity shift: t_k ~ U(-intensity_shift, +intensity_shift) added to the RESCALED intensities,
 *     the result clipped to [min, max] of the warped image (Keras random_channel_shift). The reference
 *     uses channel_shift_range = 20 on intensities rescaled to 0..255 (factor 255/65535), and draws an
 *     independent shift for each of the 3 replicated channels; shift_per_channel = 0 draws one shift
 *     for all channels instead (the channels then stay identical).
 *
 * Geometry. Coordinates are (row, col) of pixel centres. The warp maps each OUTPUT pixel p to an
 * INPUT position q and samples the input there (scipy.ndimage.affine_transform convention):
 *
 *     q = c + R(theta) . Sh(s) . Z(zx, zy) . F . (p - c),      c = ((H-1)/2, (W-1)/2)
 *
 *     R = [cos -sin; sin cos]   Sh = [1 -sin(s); 0 cos(s)]   Z = [zx 0; 0 zy]   F = diag(fv, fh)
 *
 * with fv = -1 for a vertical flip, fh = -1 for a horizontal flip, else +1. This is the Keras
 * composition R.Sh.Z applied about the centre, followed (as Keras does) by the flips of the output,
 * folded into one matrix. zx > 1 samples a larger input area (the content looks smaller). With
 * theta = +90 degrees on a square image out[r][c] = in[N-1-c][r], i.e. np.rot90(in, k=-1).
 * Two deliberate differences from Keras 2.0: the centre is the true centre (H-1)/2 (Keras uses
 * H/2 + 0.5, half a pixel plus one pixel off, which makes a flip or a 90 degree rotation not an exact
 * permutation of pixels), and the interpolation is bilinear (Keras 2.0 uses order 0, nearest;
 * MM_INTERP_NEAREST reproduces that). Positions outside the image take the nearest edge pixel
 * (Keras fill_mode 'nearest'). */
#ifndef MM_AUGMENT_H
#define MM_AUGMENT_H

#include <stdint.h>

typedef enum mm_interp {
    MM_INTERP_BILINEAR = 0,
    MM_INTERP_NEAREST,
} mm_interp;

typedef struct mm_augment_params {
    int hflip, vflip;        /* random horizontal / vertical flips with probability 0.5 each */
    float rotation_deg;      /* rotation range in degrees (0 = none) */
    float shear;             /* shear range in radians (0 = none) */
    float zoom_min, zoom_max; /* zoom range (1, 1 = none) */
    float intensity_shift;   /* additive shift range on rescaled intensities (0 = none) */
    int shift_per_channel;   /* 1: one shift per output channel (reference); 0: one for all */
    mm_interp interp;        /* bilinear (default) or nearest */
} mm_augment_params;

/* The paper's defaults: flips on, 25 degrees, shear 0.2 rad, zoom 0.8..1.2, intensity shift 20
 * (for rescale 255/65535), per-channel shift as the reference, bilinear. */
void mm_augment_params_default(mm_augment_params *p);

/* One sample's draw. */
typedef struct mm_augment_draw {
    int hflip, vflip;
    double theta;   /* radians */
    double shear;   /* radians */
    double zx, zy;
    float shift[3]; /* per output channel; all 0 when no shift */
    int has_shift;
} mm_augment_draw;

void mm_augment_identity(mm_augment_draw *d);

/* The draw for the sample at `position` (0-based, in epoch order) of `epoch` under `seed`: a pure
 * function of its arguments (Philox), whatever thread computes it and in whatever order. */
void mm_augment_sample(mm_augment_draw *d, const mm_augment_params *p, uint64_t seed, int64_t epoch,
                       int64_t position);

/* The 2x3 matrix m of the map q = [m0 m1; m3 m4] p + (m2, m5) above, for an H x W image. */
void mm_augment_matrix(double m[6], const mm_augment_draw *d, int height, int width);

/* 1 if the draw moves no pixel (no flip, no rotation, shear or zoom). */
int mm_augment_is_identity_warp(const mm_augment_draw *d);

/* out[H*W] = in[H*W] sampled at m.p for every output pixel p (edge pixels extend outwards).
 * Also returns the min and max of out (for the intensity-shift clip). */
void mm_warp_affine(float *out, float *out_min, float *out_max, const float *in, const double m[6],
                    mm_interp interp, int height, int width);

/* Philox key of one random stream of the data pipeline: a pure mix of (seed, stream, epoch), so the
 * epoch order and the augmentation draws use unrelated streams. */
uint64_t mm_data_stream_key(uint64_t seed, uint64_t stream, int64_t epoch);

#define MM_STREAM_ORDER 1u
#define MM_STREAM_AUGMENT 2u

#endif
