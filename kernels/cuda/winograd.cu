/* The transforms of Winograd F(m x m, 3x3) convolutions and their filter gradients, m = 2 or 4
 * (conv_wino.c runs them between cuBLAS's GEMMs), fp32 NHWC.
 *
 * A 3x3 stride-1 convolution gives each m x m block of output pixels (a tile) from the a x a
 * block of input pixels under it (a = m + 2). In one dimension (Lavin & Gray, "Fast Algorithms
 * for Convolutional Neural Networks", 2016), F(2, 3) with input d0..d3 and filter g0..g2:
 *   y0 = d0 g0 + d1 g1 + d2 g2 = m0 + m1 + m2
 *   y1 = d1 g0 + d2 g1 + d3 g2 = m1 - m2 - m3
 * with m0 = (d0 - d2) g0, m1 = (d1 + d2)(g0 + g1 + g2)/2, m2 = (d2 - d1)(g0 - g1 + g2)/2,
 * m3 = (d1 - d3) g2: four products for six. F(4, 3) interpolates at 0, +-1, +-2 and infinity:
 * six products for twelve. In two dimensions each transform is applied to the columns and then
 * to the rows, and the a*a products of a tile, summed over input channels, are a*a matrix
 * products over all tiles at once (cuBLAS, conv_wino.c):
 *   U[e][t][c] = (B^T d B)[e]  for tile t, channel c      (mm_cuda_wino_input)
 *   F[e][k][c] = (G g G^T)[e]  for filter k, channel c    (mm_cuda_wino_filter)
 *   M[e][t][k] = sum_c U[e][t][c] F[e][k][c]              (the GEMMs)
 *   y tile     = A^T M[.][t][k] A                          (mm_cuda_wino_output)
 * where e = a i + j indexes the a x a transformed tile. The filter gradient is the same
 * algorithm turned around (differentiating y = A^T [(G g) . (B^T d)] by g):
 *   U[e][t][c]  = (B^T d B)[e]  as above                  (mm_cuda_wino_input)
 *   V[e][t][k]  = (A dy A^T)[e] for tile t of dy           (mm_cuda_wino_dy)
 *   W[e][k][c]  = sum_t V[e][t][k] U[e][t][c]              (the GEMMs, summing over tiles)
 *   dw[k][.][.][c] = G^T W[.][k][c] G                      (mm_cuda_wino_dw)
 * (F(2, 3) is then F(3, 2): three outputs from two values of dy and four of x.)
 *
 * F(2x2, 3x3) does 2.25 times fewer products than a direct convolution and its transforms only
 * add, subtract and halve, so it rounds about as a direct convolution does; F(4x4, 3x3) does 4
 * times fewer, and its transforms' larger coefficients (up to 8) make its fp32 result about ten
 * times less exact (relative L2 error ~2e-6 against ~2e-7 for one 256-channel layer), as cuDNN's
 * own non-fused Winograd.
 *
 * Tiles are numbered over (sample, tile row, tile column) of the output, tile row ty covering
 * output rows m ty .. m ty + m - 1 and input rows m ty - pad .. m ty - pad + a - 1 (zeros outside
 * the image); a run takes tiles t0 .. t0 + tc - 1 (a chunk). One thread per (tile, channel), or
 * per (tile, 4 channels) for F(2x2, 3x3) where the channel count is divisible by 4 and the
 * pointers 16-byte aligned: adjacent threads move adjacent channels. */
#include "cuda_common.cuh"
#include "cuda_kernels.h"

template <int M> struct mm_wino;

/* F(2, 3): B^T d, G g and A^T m, each over one column or row. */
template <> struct mm_wino<2> {
    static constexpr int A = 4;
    __device__ static __forceinline__ void bt(const float *d, float *v)
    {
        v[0] = d[0] - d[2];
        v[1] = d[1] + d[2];
        v[2] = d[2] - d[1];
        v[3] = d[1] - d[3];
    }
    __device__ static __forceinline__ void g(const float *g, float *u)
    {
        u[0] = g[0];
        u[1] = 0.5f * (g[0] + g[1] + g[2]);
        u[2] = 0.5f * (g[0] - g[1] + g[2]);
        u[3] = g[2];
    }
    __device__ static __forceinline__ void at(const float *m, float *y)
    {
        y[0] = m[0] + m[1] + m[2];
        y[1] = m[1] - m[2] - m[3];
    }
    /* A v over two values, and G^T u over four: the filter gradient's */
    __device__ static __forceinline__ void a(const float *v, float *e)
    {
        e[0] = v[0];
        e[1] = v[0] + v[1];
        e[2] = v[0] - v[1];
        e[3] = -v[1];
    }
    __device__ static __forceinline__ void gt(const float *u, float *g)
    {
        g[0] = u[0] + 0.5f * (u[1] + u[2]);
        g[1] = 0.5f * (u[1] - u[2]);
        g[2] = 0.5f * (u[1] + u[2]) + u[3];
    }
};

/* F(4, 3) at the points 0, 1, -1, 2, -2 and infinity. */
template <> struct mm_wino<4> {
    static constexpr int A = 6;
    __device__ static __forceinline__ void bt(const float *d, float *v)
    {
        v[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
        v[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];
        v[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];
        v[3] = -2.0f * (d[1] - d[3]) - d[2] + d[4];
        v[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];
        v[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
    }
    __device__ static __forceinline__ void g(const float *g, float *u)
    {
        u[0] = 0.25f * g[0];
        u[1] = -(g[0] + g[1] + g[2]) / 6.0f;
        u[2] = -(g[0] - g[1] + g[2]) / 6.0f;
        u[3] = (g[0] + 2.0f * g[1] + 4.0f * g[2]) / 24.0f;
        u[4] = (g[0] - 2.0f * g[1] + 4.0f * g[2]) / 24.0f;
        u[5] = g[2];
    }
    __device__ static __forceinline__ void at(const float *m, float *y)
    {
        float p1 = m[1] + m[2], n1 = m[1] - m[2], p2 = m[3] + m[4], n2 = m[3] - m[4];
        y[0] = m[0] + p1 + p2;
        y[1] = n1 + 2.0f * n2;
        y[2] = p1 + 4.0f * p2;
        y[3] = n1 + 8.0f * n2 + m[5];
    }
    __device__ static __forceinline__ void a(const float *v, float *e)
    {
        float p = v[0] + v[2], n = v[1] + v[3], p4 = v[0] + 4.0f * v[2],
              n4 = 2.0f * v[1] + 8.0f * v[3];
        e[0] = v[0];
        e[1] = p + n;
        e[2] = p - n;
        e[3] = p4 + n4;
        e[4] = p4 - n4;
        e[5] = v[3];
    }
    __device__ static __forceinline__ void gt(const float *u, float *g)
    {
        float p1 = u[1] + u[2], p2 = u[3] + u[4];
        g[0] = 0.25f * u[0] - p1 / 6.0f + p2 / 24.0f;
        g[1] = (u[2] - u[1]) / 6.0f + (u[3] - u[4]) / 12.0f;
        g[2] = (p2 - p1) / 6.0f + u[5];
    }
};

/* The five 1-D transforms, by kind, with their sizes in and out (a = m + 2). */
enum { MM_WINO_BT, MM_WINO_G, MM_WINO_AT, MM_WINO_A, MM_WINO_GT };

template <int M, int KIND> struct mm_wino_1d {
    static constexpr int A = mm_wino<M>::A;
    static constexpr int IN = KIND == MM_WINO_G ? 3 : KIND == MM_WINO_A ? M : A;
    static constexpr int OUT = KIND == MM_WINO_AT ? M : KIND == MM_WINO_GT ? 3 : A;
    __device__ static __forceinline__ void run(const float *in, float *out)
    {
        if constexpr (KIND == MM_WINO_BT) mm_wino<M>::bt(in, out);
        else if constexpr (KIND == MM_WINO_G) mm_wino<M>::g(in, out);
        else if constexpr (KIND == MM_WINO_AT) mm_wino<M>::at(in, out);
        else if constexpr (KIND == MM_WINO_A) mm_wino<M>::a(in, out);
        else mm_wino<M>::gt(in, out);
    }
};

/* out = T in T^T for the 1-D transform T of KIND, on lane v of in and out: T applied to the
 * columns, then to the rows. in and out may be the same array when they have the same size
 * (every value of the lane is read before any is written). */
template <int M, int KIND, int V>
__device__ __forceinline__ void mm_wino_2d(
    const float (&in)[mm_wino_1d<M, KIND>::IN][mm_wino_1d<M, KIND>::IN][V],
    float (&out)[mm_wino_1d<M, KIND>::OUT][mm_wino_1d<M, KIND>::OUT][V], int v)
{
    typedef mm_wino_1d<M, KIND> T;
    float s[T::OUT][T::IN];
#pragma unroll
    for (int q = 0; q < T::IN; q++) {
        float col[T::IN], r[T::OUT];
#pragma unroll
        for (int a = 0; a < T::IN; a++) col[a] = in[a][q][v];
        T::run(col, r);
#pragma unroll
        for (int a = 0; a < T::OUT; a++) s[a][q] = r[a];
    }
#pragma unroll
    for (int a = 0; a < T::OUT; a++) {
        float r[T::OUT];
        T::run(s[a], r);
#pragma unroll
        for (int q = 0; q < T::OUT; q++) out[a][q][v] = r[q];
    }
}

/* Tile t's sample, and its row and column among th x tw tiles. */
__device__ __forceinline__ int64_t mm_wino_tile(int64_t t, int th, int tw, int *ty, int *tx)
{
    *tx = (int)(t % tw);
    t /= tw;
    *ty = (int)(t % th);
    return t / th;
}

/* Stores the n x n values of a transformed tile, lanes of V channels, to plane e = n i + j of
 * p: p[e * plane + at]. */
template <int N, int V>
__device__ __forceinline__ void mm_wino_store_planes(float *p, int64_t plane, int64_t at,
                                                     const float (&v)[N][N][V])
{
#pragma unroll
    for (int a = 0; a < N; a++)
#pragma unroll
        for (int q = 0; q < N; q++) mm_stv<V>(p, (N * a + q) * plane + at, v[a][q]);
}

/* Loads them back: v[i][j] = p[(n i + j) * plane + at]. */
template <int N, int V>
__device__ __forceinline__ void mm_wino_load_planes(const float *p, int64_t plane, int64_t at,
                                                    float (&v)[N][N][V])
{
#pragma unroll
    for (int a = 0; a < N; a++)
#pragma unroll
        for (int q = 0; q < N; q++) mm_ldv<V>(p, (N * a + q) * plane + at, v[a][q]);
}

/* Loads an n x n block of an NHWC tensor [.][h][w][c] of sample b, rows y0.. and columns x0..
 * (zeros outside the image), lanes of V channels from c0. */
template <int N, int V>
__device__ __forceinline__ void mm_wino_load_block(const float *x, int64_t b, int h, int w, int c,
                                                   int y0, int x0, int c0, float (&v)[N][N][V])
{
#pragma unroll
    for (int a = 0; a < N; a++)
#pragma unroll
        for (int q = 0; q < N; q++) {
            int yy = y0 + a, xx = x0 + q;
            if (yy >= 0 && yy < h && xx >= 0 && xx < w) {
                mm_ldv<V>(x, ((b * h + yy) * w + xx) * c + c0, v[a][q]);
            } else {
#pragma unroll
                for (int u = 0; u < V; u++) v[a][q][u] = 0.0f;
            }
        }
}

/* Writes (or with accumulate adds) an n x n block to an NHWC tensor [.][h][w][c] of sample b,
 * rows y0.. and columns x0.. (what falls outside is not written), lanes of V channels from c0;
 * then adds bias[c0..] (NULL: none) and, with relu, takes max(., 0), as mm_cuda_bias_add does.
 * The block's values are changed. */
template <int N, int V>
__device__ __forceinline__ void mm_wino_store_block(float *y, int64_t b, int h, int w, int c,
                                                    int y0, int x0, int c0, bool accumulate,
                                                    const float *bias, bool relu,
                                                    float (&v)[N][N][V])
{
    float bv[V];
#pragma unroll
    for (int u = 0; u < V; u++) bv[u] = bias ? bias[c0 + u] : 0.0f;
#pragma unroll
    for (int a = 0; a < N; a++)
#pragma unroll
        for (int q = 0; q < N; q++) {
            int yy = y0 + a, xx = x0 + q;
            if (yy >= h || xx >= w) continue;
            int64_t o = ((b * h + yy) * w + xx) * c + c0;
            if (accumulate) {
                float was[V];
                mm_ldv<V>(y, o, was);
#pragma unroll
                for (int u = 0; u < V; u++) v[a][q][u] += was[u];
            }
#pragma unroll
            for (int u = 0; u < V; u++) {
                float r = v[a][q][u] + bv[u];
                v[a][q][u] = relu ? (r > 0.0f ? r : 0.0f) : r;
            }
            mm_stv<V>(y, o, v[a][q]);
        }
}

/* The kernels: one thread per (tile or filter, lane of V channels), grid-striding over them. */
#define MM_WINO_FOR_EACH(i, total)                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (total);          \
         i += (int64_t)gridDim.x * blockDim.x)

/* F[e][k][c] from the OHWI filter w[k][3][3][c]. */
template <int M, int V>
__global__ void mm_wino_filter_kernel(float *f, const float *w, int k, int c)
{
    constexpr int A = mm_wino<M>::A;
    int cv = c / V;
    MM_WINO_FOR_EACH(i, (int64_t)k * cv)
    {
        int kk = (int)(i / cv), c0 = (int)(i % cv) * V;
        float g[3][3][V], out[A][A][V];
        mm_wino_load_block<3, V>(w, kk, 3, 3, c, 0, 0, c0, g);
#pragma unroll
        for (int v = 0; v < V; v++) mm_wino_2d<M, MM_WINO_G, V>(g, out, v);
        mm_wino_store_planes<A, V>(f, (int64_t)k * c, (int64_t)kk * c + c0, out);
    }
}

/* U[e][t - t0][c] for tiles t0 .. t0 + tc - 1 of x[n][h][w][c]. */
template <int M, int V>
__global__ void mm_wino_input_kernel(float *u, const float *x, int h, int w, int c, int pad_h,
                                     int pad_w, int th, int tw, int64_t t0, int tc)
{
    constexpr int A = mm_wino<M>::A;
    int cv = c / V;
    MM_WINO_FOR_EACH(i, (int64_t)tc * cv)
    {
        int lt = (int)(i / cv), c0 = (int)(i % cv) * V, ty, tx;
        int64_t b = mm_wino_tile(t0 + lt, th, tw, &ty, &tx);
        float d[A][A][V];
        mm_wino_load_block<A, V>(x, b, h, w, c, M * ty - pad_h, M * tx - pad_w, c0, d);
#pragma unroll
        for (int v = 0; v < V; v++) mm_wino_2d<M, MM_WINO_BT, V>(d, d, v);
        mm_wino_store_planes<A, V>(u, (int64_t)tc * c, (int64_t)lt * c + c0, d);
    }
}

/* y[n][oh][ow][k] (=, or += with accumulate) from M[e][t - t0][k] for tiles t0 .. t0 + tc - 1,
 * then the bias (NULL: none) and the ReLU with relu; output pixels past the edge (oh or ow not
 * divisible by m) are not written. */
template <int M, int V>
__global__ void mm_wino_output_kernel(float *y, const float *m, int oh, int ow, int k, int th,
                                      int tw, int64_t t0, int tc, int accumulate,
                                      const float *bias, int relu)
{
    constexpr int A = mm_wino<M>::A;
    int kv = k / V;
    MM_WINO_FOR_EACH(i, (int64_t)tc * kv)
    {
        int lt = (int)(i / kv), k0 = (int)(i % kv) * V, ty, tx;
        int64_t b = mm_wino_tile(t0 + lt, th, tw, &ty, &tx);
        float mv[A][A][V], out[M][M][V];
        mm_wino_load_planes<A, V>(m, (int64_t)tc * k, (int64_t)lt * k + k0, mv);
#pragma unroll
        for (int v = 0; v < V; v++) mm_wino_2d<M, MM_WINO_AT, V>(mv, out, v);
        mm_wino_store_block<M, V>(y, b, oh, ow, k, M * ty, M * tx, k0, accumulate, bias, relu,
                                  out);
    }
}

/* V[e][t - t0][k] for tiles t0 .. t0 + tc - 1 of dy[n][oh][ow][k] (zeros past the edge). */
template <int M, int V>
__global__ void mm_wino_dy_kernel(float *v, const float *dy, int oh, int ow, int k, int th,
                                  int tw, int64_t t0, int tc)
{
    constexpr int A = mm_wino<M>::A;
    int kv = k / V;
    MM_WINO_FOR_EACH(i, (int64_t)tc * kv)
    {
        int lt = (int)(i / kv), k0 = (int)(i % kv) * V, ty, tx;
        int64_t b = mm_wino_tile(t0 + lt, th, tw, &ty, &tx);
        float g[M][M][V], out[A][A][V];
        mm_wino_load_block<M, V>(dy, b, oh, ow, k, M * ty, M * tx, k0, g);
#pragma unroll
        for (int u = 0; u < V; u++) mm_wino_2d<M, MM_WINO_A, V>(g, out, u);
        mm_wino_store_planes<A, V>(v, (int64_t)tc * k, (int64_t)lt * k + k0, out);
    }
}

/* dw[k][3][3][c] (=, or += with accumulate) from W[e][k][c]. */
template <int M, int V>
__global__ void mm_wino_dw_kernel(float *dw, const float *wt, int k, int c, int accumulate)
{
    constexpr int A = mm_wino<M>::A;
    int cv = c / V;
    MM_WINO_FOR_EACH(i, (int64_t)k * cv)
    {
        int kk = (int)(i / cv), c0 = (int)(i % cv) * V;
        float mv[A][A][V], out[3][3][V];
        mm_wino_load_planes<A, V>(wt, (int64_t)k * c, (int64_t)kk * c + c0, mv);
#pragma unroll
        for (int u = 0; u < V; u++) mm_wino_2d<M, MM_WINO_GT, V>(mv, out, u);
        mm_wino_store_block<3, V>(dw, kk, 3, 3, c, 0, 0, c0, accumulate, NULL, false, out);
    }
}

/* Launches kernel<M, 4> over items / 4 threads where vec4, else kernel<M, 1> over items. The
 * 4-wide form is F(2x2, 3x3)'s only: F(4x4, 3x3)'s 36 values a channel would need four times the
 * registers. */
#define MM_WINO_LAUNCH(kernel, m, vec4, items, st, ...)                                     \
    do {                                                                                   \
        if ((m) == 2 && (vec4))                                                            \
            kernel<2, 4><<<mm_blocks_for((items) / 4), MM_THREADS, 0, st>>>(__VA_ARGS__);  \
        else if ((m) == 2)                                                                 \
            kernel<2, 1><<<mm_blocks_for(items), MM_THREADS, 0, st>>>(__VA_ARGS__);        \
        else                                                                               \
            kernel<4, 1><<<mm_blocks_for(items), MM_THREADS, 0, st>>>(__VA_ARGS__);        \
        MM_CUDA_CHECK_LAUNCH();                                                            \
    } while (0)

void mm_cuda_wino_filter(float *f, const float *w, int m, int k, int c, cudaStream_t st)
{
    MM_CU_ASSERT(m == 2 || m == 4);
    if (k <= 0 || c <= 0) return;
    MM_WINO_LAUNCH(mm_wino_filter_kernel, m, mm_chan4(c, {f, w}), (int64_t)k * c, st, f, w, k, c);
}

void mm_cuda_wino_input(float *u, const float *x, int m, const mm_conv_dims *d, int64_t t0,
                        int tc, cudaStream_t st)
{
    MM_CU_ASSERT(m == 2 || m == 4);
    if (tc <= 0) return;
    int th = (d->oh + m - 1) / m, tw = (d->ow + m - 1) / m;
    MM_WINO_LAUNCH(mm_wino_input_kernel, m, mm_chan4(d->c, {u, x}), (int64_t)tc * d->c, st, u, x,
                   d->h, d->w, d->c, d->pad_h, d->pad_w, th, tw, t0, tc);
}

void mm_cuda_wino_output(float *y, const float *mt, int m, const mm_conv_dims *d, int64_t t0,
                         int tc, int accumulate, const float *bias, int relu, cudaStream_t st)
{
    MM_CU_ASSERT(m == 2 || m == 4);
    if (tc <= 0) return;
    int th = (d->oh + m - 1) / m, tw = (d->ow + m - 1) / m;
    MM_WINO_LAUNCH(mm_wino_output_kernel, m, mm_chan4(d->k, {y, mt}), (int64_t)tc * d->k, st, y,
                   mt, d->oh, d->ow, d->k, th, tw, t0, tc, accumulate, bias, relu);
}

void mm_cuda_wino_dy(float *v, const float *dy, int m, const mm_conv_dims *d, int64_t t0, int tc,
                     cudaStream_t st)
{
    MM_CU_ASSERT(m == 2 || m == 4);
    if (tc <= 0) return;
    int th = (d->oh + m - 1) / m, tw = (d->ow + m - 1) / m;
    MM_WINO_LAUNCH(mm_wino_dy_kernel, m, mm_chan4(d->k, {v, dy}), (int64_t)tc * d->k, st, v, dy,
                   d->oh, d->ow, d->k, th, tw, t0, tc);
}

void mm_cuda_wino_dw(float *dw, const float *wt, int m, int k, int c, int accumulate,
                     cudaStream_t st)
{
    MM_CU_ASSERT(m == 2 || m == 4);
    if (k <= 0 || c <= 0) return;
    MM_WINO_LAUNCH(mm_wino_dw_kernel, m, mm_chan4(c, {dw, wt}), (int64_t)k * c, st, dw, wt, k, c,
                   accumulate);
}
