/* 3x3 stride-1 convolutions on the CPU as Winograd F(2x2, 3x3) (Lavin and Gray, 2015).
 *
 * The output is cut into 2x2 tiles; tile t reads the 4x4 input patch d at (2*ty - pad_h,
 * 2*tx - pad_w) (zeros outside the image) and
 *   y_tile = A^T [ (G g G^T) . (B^T d B) ] A     (. element-wise, summed over input channels)
 * with
 *   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1 1  1  0]
 *         [0  1  1  0]        [1/2  1/2  1/2]          [0 1 -1 -1]
 *         [0 -1  1  0]        [1/2 -1/2  1/2]
 *         [0  1  0 -1]        [ 0    0    1 ]
 * So for each of the 16 positions e of a 4x4 tile the sum over channels is one matrix product,
 *   M_e[t, k] = sum_c V_e[t, c] U_e[k, c],   V_e = (B^T d B)_e,  U_e = (G g G^T)_e,
 * 16 GEMMs of 16 products per 4 outputs where im2col's GEMM does 36: 2.25 times fewer, and
 * V is 16 floats per tile and channel where im2col's matrix is 36. Rounding stays close to a
 * direct sum's (the transforms' entries are 0, +-1 and +-1/2).
 *
 * Tiles run in chunks whose V and M fit half of mm_cpu_conv_ws_budget; each thread transforms
 * the tiles of its block of GEMM rows, multiplies them and transforms them back, so its tiles
 * stay in its cache and no thread waits for another. U is transformed once per call (a pass over
 * the filter), which small images do not repay: from mm_cpu_winograd_min_pixels output pixels on.
 * The filter gradient is that computation's own gradient: with V as above and Z_t = A dy_t A^T
 * (dy's 2x2 tile, zeros past the output's edge),
 *   dw[k, :, :, c] = G^T X G,   X_e[k, c] = sum_t Z_e[t, k] V_e[t, c],
 * 16 GEMMs over the tiles (each thread its block of X's rows after all threads transformed the
 * chunk), then one pass over X: the same 2.25 times fewer products as the forward.
 * The transforms work on 16 channels at a time in local arrays, which the compiler vectorises. */
#include <omp.h>
#include <string.h>

#include "cpu_internal.h"
#include "cpu_kernels.h"

#define LANES 16
#define MIN_CHANNELS 16

int64_t mm_cpu_winograd_min_pixels = 1024;

int mm_cpu_winograd_applies(const mm_conv_dims *d)
{
    return d->r == 3 && d->s == 3 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h <= 2 &&
           d->pad_w <= 2 && d->c >= MIN_CHANNELS && d->k >= MIN_CHANNELS &&
           (int64_t)d->n * d->oh * d->ow >= mm_cpu_winograd_min_pixels;
}

static size_t round64(size_t bytes) { return (bytes + 63) / 64 * 64; }

static int64_t tiles_of(const mm_conv_dims *d)
{
    return (int64_t)d->n * ((d->oh + 1) / 2) * ((d->ow + 1) / 2);
}

/* Tiles per chunk: V and M of a chunk within half the im2col budget (U, as large as 16 filters,
 * comes on top: VGG16's workspace grew from 34 to 42 MB), at least 16. */
static int64_t chunk_tiles(const mm_conv_dims *d)
{
    size_t per_tile = (size_t)16 * (size_t)(d->c + d->k) * sizeof(float);
    int64_t t = (int64_t)(mm_cpu_conv_ws_budget / 2 / per_tile), total = tiles_of(d);
    if (t < 16) t = 16;
    return t < total ? t : total;
}

/* The workspace, in byte offsets: U [16][k][c] (the filter gradient's X), a row of zeros (the
 * pixels outside the image or the output), then a chunk's V [16][chunk][c] and M [16][chunk][k]
 * (the filter gradient's Z); end is its size. */
typedef struct {
    size_t zeros, v, m, end;
    int zeros_n;
} wino_layout;

static wino_layout layout_of(const mm_conv_dims *d, int64_t chunk)
{
    wino_layout l;
    l.zeros_n = d->c > d->k ? d->c : d->k;
    l.zeros = round64((size_t)16 * d->k * d->c * sizeof(float));
    l.v = l.zeros + round64((size_t)l.zeros_n * sizeof(float));
    l.m = l.v + round64((size_t)16 * chunk * d->c * sizeof(float));
    l.end = l.m + (size_t)16 * chunk * d->k * sizeof(float);
    return l;
}

size_t mm_cpu_winograd_workspace(const mm_conv_dims *d)
{
    return layout_of(d, chunk_tiles(d)).end;
}

/* U_e[k, c] = (G g G^T)_e for g = w[k, :, :, c]: lanes of channels [c0, c0 + n). */
MM_CPU_VECTOR static void filter_lanes(float *u, const float *w, int64_t e_stride, int c, int n)
{
    float g[9][LANES] = {{0}}, h[12][LANES], o[16][LANES];
    for (int i = 0; i < 9; i++) memcpy(g[i], w + (int64_t)i * c, sizeof(float) * (size_t)n);
    for (int j = 0; j < 3; j++) /* h = G g: 4 rows of 3 */
        for (int l = 0; l < LANES; l++) {
            float a = g[j][l], b = g[3 + j][l], q = g[6 + j][l];
            h[j][l] = a;
            h[3 + j][l] = 0.5f * (a + b + q);
            h[6 + j][l] = 0.5f * (a - b + q);
            h[9 + j][l] = q;
        }
    for (int i = 0; i < 4; i++) /* o = h G^T: 4 columns */
        for (int l = 0; l < LANES; l++) {
            float a = h[3 * i][l], b = h[3 * i + 1][l], q = h[3 * i + 2][l];
            o[4 * i][l] = a;
            o[4 * i + 1][l] = 0.5f * (a + b + q);
            o[4 * i + 2][l] = 0.5f * (a - b + q);
            o[4 * i + 3][l] = q;
        }
    for (int e = 0; e < 16; e++) memcpy(u + e * e_stride, o[e], sizeof(float) * (size_t)n);
}

/* V_e[t, :] = (B^T d B)_e for the 4x4 patch whose pixels are in[0..15] (rows of c channels;
 * a zero row outside the image), lanes of channels [c0, c0 + n). */
MM_CPU_VECTOR static void input_lanes(float *v, int64_t e_stride, const float *const *in, int c0,
                                      int n)
{
    float d[16][LANES] = {{0}}, t[16][LANES];
    for (int p = 0; p < 16; p++) memcpy(d[p], in[p] + c0, sizeof(float) * (size_t)n);
    for (int j = 0; j < 4; j++) /* t = B^T d */
        for (int l = 0; l < LANES; l++) {
            float d0 = d[j][l], d1 = d[4 + j][l], d2 = d[8 + j][l], d3 = d[12 + j][l];
            t[j][l] = d0 - d2;
            t[4 + j][l] = d1 + d2;
            t[8 + j][l] = d2 - d1;
            t[12 + j][l] = d1 - d3;
        }
    for (int i = 0; i < 4; i++) /* d = t B */
        for (int l = 0; l < LANES; l++) {
            float t0 = t[4 * i][l], t1 = t[4 * i + 1][l], t2 = t[4 * i + 2][l],
                  t3 = t[4 * i + 3][l];
            d[4 * i][l] = t0 - t2;
            d[4 * i + 1][l] = t1 + t2;
            d[4 * i + 2][l] = t2 - t1;
            d[4 * i + 3][l] = t1 - t3;
        }
    for (int e = 0; e < 16; e++) memcpy(v + e * e_stride + c0, d[e], sizeof(float) * (size_t)n);
}

/* The 2x2 outputs A^T M_t A (+ bias) of one tile into out[0..3] (NULL: outside the image),
 * lanes of filters [k0, k0 + n). */
MM_CPU_VECTOR static void output_lanes(float *const *out, const float *m, int64_t e_stride,
                                       const float *bias, int k0, int n)
{
    float q[16][LANES] = {{0}}, s[8][LANES], y[4][LANES], b[LANES] = {0};
    for (int e = 0; e < 16; e++) memcpy(q[e], m + e * e_stride + k0, sizeof(float) * (size_t)n);
    if (bias) memcpy(b, bias + k0, sizeof(float) * (size_t)n);
    for (int j = 0; j < 4; j++) /* s = A^T q: 2 rows of 4 */
        for (int l = 0; l < LANES; l++) {
            float q0 = q[j][l], q1 = q[4 + j][l], q2 = q[8 + j][l], q3 = q[12 + j][l];
            s[j][l] = q0 + q1 + q2;
            s[4 + j][l] = q1 - q2 - q3;
        }
    for (int i = 0; i < 2; i++) /* y = s A */
        for (int l = 0; l < LANES; l++) {
            float s0 = s[4 * i][l], s1 = s[4 * i + 1][l], s2 = s[4 * i + 2][l],
                  s3 = s[4 * i + 3][l];
            y[2 * i][l] = s0 + s1 + s2 + b[l];
            y[2 * i + 1][l] = s1 - s2 - s3 + b[l];
        }
    for (int p = 0; p < 4; p++)
        if (out[p]) memcpy(out[p] + k0, y[p], sizeof(float) * (size_t)n);
}

/* Z_e[t, :] = (A q A^T)_e for dy's 2x2 tile whose pixels are in[0..3] (rows of k filters; a
 * zero row past the output's edge), lanes of filters [k0, k0 + n). */
MM_CPU_VECTOR static void grad_lanes(float *z, int64_t e_stride, const float *const *in, int k0,
                                     int n)
{
    float q[4][LANES] = {{0}}, h[8][LANES], o[16][LANES];
    for (int p = 0; p < 4; p++) memcpy(q[p], in[p] + k0, sizeof(float) * (size_t)n);
    for (int j = 0; j < 2; j++) /* h = A q: 4 rows of 2 */
        for (int l = 0; l < LANES; l++) {
            float q0 = q[j][l], q1 = q[2 + j][l];
            h[j][l] = q0;
            h[2 + j][l] = q0 + q1;
            h[4 + j][l] = q0 - q1;
            h[6 + j][l] = -q1;
        }
    for (int i = 0; i < 4; i++) /* o = h A^T: 4 columns */
        for (int l = 0; l < LANES; l++) {
            float h0 = h[2 * i][l], h1 = h[2 * i + 1][l];
            o[4 * i][l] = h0;
            o[4 * i + 1][l] = h0 + h1;
            o[4 * i + 2][l] = h0 - h1;
            o[4 * i + 3][l] = -h1;
        }
    for (int e = 0; e < 16; e++) memcpy(z + e * e_stride + k0, o[e], sizeof(float) * (size_t)n);
}

/* dw[k, :, :, c] (=, or += unless overwrite) G^T X G for X_e = x[e * e_stride], lanes of
 * channels [c0, c0 + n) (dw and x point at channel c0 of filter k). */
MM_CPU_VECTOR static void filter_grad_lanes(float *dw, const float *x, int64_t e_stride, int c,
                                            int n, int overwrite)
{
    float q[16][LANES] = {{0}}, h[12][LANES], g[9][LANES];
    for (int e = 0; e < 16; e++) memcpy(q[e], x + e * e_stride, sizeof(float) * (size_t)n);
    for (int b = 0; b < 4; b++) /* h = G^T q: 3 rows of 4 */
        for (int l = 0; l < LANES; l++) {
            float q0 = q[b][l], q1 = q[4 + b][l], q2 = q[8 + b][l], q3 = q[12 + b][l];
            h[b][l] = q0 + 0.5f * (q1 + q2);
            h[4 + b][l] = 0.5f * (q1 - q2);
            h[8 + b][l] = 0.5f * (q1 + q2) + q3;
        }
    for (int r = 0; r < 3; r++) /* g = h G: 3 columns */
        for (int l = 0; l < LANES; l++) {
            float h0 = h[4 * r][l], h1 = h[4 * r + 1][l], h2 = h[4 * r + 2][l],
                  h3 = h[4 * r + 3][l];
            g[3 * r][l] = h0 + 0.5f * (h1 + h2);
            g[3 * r + 1][l] = 0.5f * (h1 - h2);
            g[3 * r + 2][l] = 0.5f * (h1 + h2) + h3;
        }
    for (int i = 0; i < 9; i++) {
        float *out = dw + (int64_t)i * c;
        if (overwrite)
            memcpy(out, g[i], sizeof(float) * (size_t)n);
        else
            for (int l = 0; l < n; l++) out[l] += g[i][l];
    }
}

/* Tile t's image and the output pixel at its top left. */
static void tile_origin(const mm_conv_dims *d, int64_t t, int *img, int *oy0, int *ox0)
{
    const int tw = (d->ow + 1) / 2, th = (d->oh + 1) / 2;
    int rem = (int)(t % ((int64_t)th * tw));
    *img = (int)(t / ((int64_t)th * tw));
    *oy0 = 2 * (rem / tw), *ox0 = 2 * (rem % tw);
}

/* The tiles [t0, t1) of the batch (tile index base at row 0 of V and M). */
static void transform_inputs(float *v, int64_t rows, const float *x, const float *zeros,
                             const mm_conv_dims *d, int64_t t0, int64_t t1, int64_t base)
{
    const int c = d->c;
    for (int64_t t = t0; t < t1; t++) {
        int img, oy0, ox0;
        tile_origin(d, t, &img, &oy0, &ox0);
        int iy0 = oy0 - d->pad_h, ix0 = ox0 - d->pad_w;
        const float *in[16];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                int iy = iy0 + i, ix = ix0 + j;
                in[4 * i + j] = iy < 0 || iy >= d->h || ix < 0 || ix >= d->w
                                    ? zeros
                                    : x + (((int64_t)img * d->h + iy) * d->w + ix) * c;
            }
        for (int c0 = 0; c0 < c; c0 += LANES)
            input_lanes(v + (t - base) * c, rows * c, in, c0, c - c0 < LANES ? c - c0 : LANES);
    }
}

/* The offsets in y (or dy) of tile t's 2x2 output pixels; -1 past the output's edge. */
static void tile_outputs(const mm_conv_dims *d, int64_t t, int64_t off[4])
{
    int img, oy0, ox0;
    tile_origin(d, t, &img, &oy0, &ox0);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            int oy = oy0 + i, ox = ox0 + j;
            off[2 * i + j] = oy < d->oh && ox < d->ow
                                 ? (((int64_t)img * d->oh + oy) * d->ow + ox) * d->k
                                 : -1;
        }
}

static void transform_outputs(float *y, const float *m, int64_t rows, const float *bias,
                              const mm_conv_dims *d, int64_t t0, int64_t t1, int64_t base)
{
    const int k = d->k;
    for (int64_t t = t0; t < t1; t++) {
        int64_t off[4];
        float *out[4];
        tile_outputs(d, t, off);
        for (int p = 0; p < 4; p++) out[p] = off[p] < 0 ? NULL : y + off[p];
        for (int k0 = 0; k0 < k; k0 += LANES)
            output_lanes(out, m + (t - base) * k, rows * k, bias, k0,
                         k - k0 < LANES ? k - k0 : LANES);
    }
}

static void transform_grads(float *z, int64_t rows, const float *dy, const float *zeros,
                            const mm_conv_dims *d, int64_t t0, int64_t t1, int64_t base)
{
    const int k = d->k;
    for (int64_t t = t0; t < t1; t++) {
        int64_t off[4];
        const float *in[4];
        tile_outputs(d, t, off);
        for (int p = 0; p < 4; p++) in[p] = off[p] < 0 ? zeros : dy + off[p];
        for (int k0 = 0; k0 < k; k0 += LANES)
            grad_lanes(z + (t - base) * k, rows * k, in, k0, k - k0 < LANES ? k - k0 : LANES);
    }
}

/* The workspace's parts (layout_of), the row of zeros cleared. */
static void carve(void *ws, const mm_conv_dims *d, int64_t chunk, float **u, float **zeros,
                  float **v, float **m)
{
    wino_layout l = layout_of(d, chunk);
    *u = ws;
    *zeros = (float *)((char *)ws + l.zeros);
    *v = (float *)((char *)ws + l.v);
    *m = (float *)((char *)ws + l.m);
    memset(*zeros, 0, sizeof(float) * (size_t)l.zeros_n);
}

void mm_cpu_winograd_forward(float *y, const float *x, const float *w, const float *b,
                             const mm_conv_dims *d, void *ws)
{
    const int c = d->c, k = d->k;
    const int64_t total = tiles_of(d), chunk = chunk_tiles(d);
    float *u, *zeros, *v, *m;
    carve(ws, d, chunk, &u, &zeros, &v, &m);
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int ki = 0; ki < k; ki++)
            for (int c0 = 0; c0 < c; c0 += LANES)
                filter_lanes(u + (int64_t)ki * c + c0, w + (int64_t)ki * 9 * c + c0,
                             (int64_t)k * c, c, c - c0 < LANES ? c - c0 : LANES);
        /* the implicit barrier: U is complete */
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int64_t t0 = 0; t0 < total; t0 += chunk) {
            int64_t rows = t0 + chunk < total ? chunk : total - t0;
            int lo, hi;
            mm_cpu_gemm_block((int)rows, t, nt, &lo, &hi);
            if (hi > lo) {
                transform_inputs(v, chunk, x, zeros, d, t0 + lo, t0 + hi, t0);
                for (int e = 0; e < 16; e++)
                    mm_blas_sgemm(CblasNoTrans, CblasTrans, hi - lo, k, c, 1.0f,
                                  v + (e * chunk + lo) * c, c, u + (int64_t)e * k * c, c, 0.0f,
                                  m + (e * chunk + lo) * k, k);
                transform_outputs(y, m, chunk, b, d, t0 + lo, t0 + hi, t0);
            }
            /* the last chunk's rows are shared out differently: no thread may start on it
             * while another still uses those rows of V and M */
#pragma omp barrier
        }
    }
}

void mm_cpu_winograd_backward_filter(float *dw, const float *dy, const float *x,
                                     const mm_conv_dims *d, void *ws)
{
    const int c = d->c, k = d->k;
    const int64_t total = tiles_of(d), chunk = chunk_tiles(d);
    float *xs, *zeros, *v, *z;
    carve(ws, d, chunk, &xs, &zeros, &v, &z);
#pragma omp parallel
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int64_t t0 = 0; t0 < total; t0 += chunk) {
            int64_t rows = t0 + chunk < total ? chunk : total - t0, lo, hi;
            mm_cpu_thread_block(rows, t, nt, &lo, &hi);
            transform_inputs(v, chunk, x, zeros, d, t0 + lo, t0 + hi, t0);
            transform_grads(z, chunk, dy, zeros, d, t0 + lo, t0 + hi, t0);
#pragma omp barrier
            /* X_e [k, c] (+)= Z_e^T V_e: each thread its block of X, for every e */
            for (int e = 0; e < 16; e++)
                mm_cpu_sgemm_part(t, nt, CblasTrans, CblasNoTrans, k, c, (int)rows, 1.0f,
                                  z + e * chunk * k, k, v + e * chunk * c, c, t0 ? 1.0f : 0.0f,
                                  xs + (int64_t)e * k * c, c);
#pragma omp barrier
        }
#pragma omp for schedule(static)
        for (int ki = 0; ki < k; ki++)
            for (int c0 = 0; c0 < c; c0 += LANES)
                filter_grad_lanes(dw + (int64_t)ki * 9 * c + c0, xs + (int64_t)ki * c + c0,
                                  (int64_t)k * c, c, c - c0 < LANES ? c - c0 : LANES,
                                  d->overwrite);
    }
}
