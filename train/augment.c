/* Augmentation draws (Philox), the combined affine matrix, and the warp: see augment.h. */
#include "augment.h"

#include <math.h>

#include "../kernels/philox.h"

void mm_augment_params_default(mm_augment_params *p)
{
    p->hflip = 1;
    p->vflip = 1;
    p->rotation_deg = 25.0f;
    p->shear = 0.2f;
    p->zoom_min = 0.8f;
    p->zoom_max = 1.2f;
    p->intensity_shift = 20.0f;
    p->shift_per_channel = 1;
    p->interp = MM_INTERP_BILINEAR;
}

void mm_augment_identity(mm_augment_draw *d)
{
    d->hflip = d->vflip = 0;
    d->theta = d->shear = 0.0;
    d->zx = d->zy = 1.0;
    d->shift[0] = d->shift[1] = d->shift[2] = 0.0f;
    d->has_shift = 0;
}

/* splitmix64's finaliser: a bijective 64-bit mix, so distinct inputs give unrelated keys. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t mm_data_stream_key(uint64_t seed, uint64_t stream, int64_t epoch)
{
    return mix64(mix64(mix64(seed) ^ stream) ^ (uint64_t)epoch);
}

/* Each sample owns 16 consecutive 32-bit words of its epoch's augmentation stream; the word
 * offsets below are fixed so that turning one augmentation off does not change the others. */
enum {
    DRAW_HFLIP = 0,
    DRAW_VFLIP,
    DRAW_THETA,
    DRAW_SHEAR,
    DRAW_ZX,
    DRAW_ZY,
    DRAW_SHIFT0, /* .. DRAW_SHIFT0 + 2 */
    DRAWS_PER_SAMPLE = 16,
};

void mm_augment_sample(mm_augment_draw *d, const mm_augment_params *p, uint64_t seed, int64_t epoch,
                       int64_t position)
{
    uint64_t key = mm_data_stream_key(seed, MM_STREAM_AUGMENT, epoch);
    uint64_t base = (uint64_t)position * DRAWS_PER_SAMPLE;
#define U(k) ((double)mm_philox_uniform(key, base + (k)))
    mm_augment_identity(d);
    if (p->hflip) d->hflip = U(DRAW_HFLIP) < 0.5;
    if (p->vflip) d->vflip = U(DRAW_VFLIP) < 0.5;
    if (p->rotation_deg != 0.0f)
        d->theta = (double)p->rotation_deg * (2.0 * U(DRAW_THETA) - 1.0) * (M_PI / 180.0);
    if (p->shear != 0.0f) d->shear = (double)p->shear * (2.0 * U(DRAW_SHEAR) - 1.0);
    if (p->zoom_min != 1.0f || p->zoom_max != 1.0f) {
        double span = (double)p->zoom_max - (double)p->zoom_min;
        d->zx = (double)p->zoom_min + span * U(DRAW_ZX);
        d->zy = (double)p->zoom_min + span * U(DRAW_ZY);
    }
    if (p->intensity_shift != 0.0f) {
        d->has_shift = 1;
        for (int k = 0; k < 3; k++) {
            int word = p->shift_per_channel ? DRAW_SHIFT0 + k : DRAW_SHIFT0;
            d->shift[k] = (float)((double)p->intensity_shift * (2.0 * U(word) - 1.0));
        }
    }
#undef U
}

int mm_augment_is_identity_warp(const mm_augment_draw *d)
{
    return !d->hflip && !d->vflip && d->theta == 0.0 && d->shear == 0.0 && d->zx == 1.0 &&
           d->zy == 1.0;
}

void mm_augment_matrix(double m[6], const mm_augment_draw *d, int height, int width)
{
    double ct = cos(d->theta), st = sin(d->theta);
    double ss = sin(d->shear), cs = cos(d->shear);
    /* A = R . Sh . Z . F, multiplied out. R.Sh = [ct, -ct*ss - st*cs; st, -st*ss + ct*cs]. */
    double rs00 = ct, rs01 = -ct * ss - st * cs;
    double rs10 = st, rs11 = -st * ss + ct * cs;
    double fv = d->vflip ? -1.0 : 1.0, fh = d->hflip ? -1.0 : 1.0;
    double a00 = rs00 * d->zx * fv, a01 = rs01 * d->zy * fh;
    double a10 = rs10 * d->zx * fv, a11 = rs11 * d->zy * fh;
    double cr = 0.5 * (height - 1), cc = 0.5 * (width - 1);
    /* q = c + A (p - c) = A p + (c - A c) */
    m[0] = a00;
    m[1] = a01;
    m[2] = cr - (a00 * cr + a01 * cc);
    m[3] = a10;
    m[4] = a11;
    m[5] = cc - (a10 * cr + a11 * cc);
}

static inline double clampd(double x, double hi)
{
    return x < 0.0 ? 0.0 : (x > hi ? hi : x);
}

void mm_warp_affine(float *out, float *out_min, float *out_max, const float *in, const double m[6],
                    mm_interp interp, int height, int width)
{
    double rmax = height - 1, cmax = width - 1;
    float lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < height; r++) {
        double br = m[0] * r + m[2], bc = m[3] * r + m[5];
        float *o = out + (int64_t)r * width;
        if (interp == MM_INTERP_NEAREST) {
            for (int c = 0; c < width; c++) {
                int ir = (int)floor(clampd(br + m[1] * c, rmax) + 0.5);
                int ic = (int)floor(clampd(bc + m[4] * c, cmax) + 0.5);
                float v = in[(int64_t)ir * width + ic];
                o[c] = v;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            continue;
        }
        for (int c = 0; c < width; c++) {
            double qr = clampd(br + m[1] * c, rmax), qc = clampd(bc + m[4] * c, cmax);
            int r0 = (int)qr, c0 = (int)qc; /* floor: q >= 0 */
            int r1 = r0 < height - 1 ? r0 + 1 : r0, c1 = c0 < width - 1 ? c0 + 1 : c0;
            float fr = (float)(qr - r0), fc = (float)(qc - c0);
            const float *row0 = in + (int64_t)r0 * width, *row1 = in + (int64_t)r1 * width;
            /* lerp form: exact for constant neighbourhoods and for integer positions */
            float top = row0[c0] + fc * (row0[c1] - row0[c0]);
            float bot = row1[c0] + fc * (row1[c1] - row1[c0]);
            float v = top + fr * (bot - top);
            o[c] = v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    *out_min = lo;
    *out_max = hi;
}
