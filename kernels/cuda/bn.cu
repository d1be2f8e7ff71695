/* Batch norm over the m = n*h*w rows of an NHWC tensor, written for this backend rather than
 * through cuDNN's batch-norm calls: it takes fp32 or bf16 activations in any mix with fp32
 * statistics, matches the CPU reference's semantics exactly (PyTorch's running-statistics
 * update with the unbiased variance, dx/dgamma/dbeta each optional, dx in place of dy), and
 * leaves room for fusing ReLU and the residual add into the same passes.
 *
 * Forward (training), three launches:
 *   1. per row slice and channel, sums of d = x - K and d^2, with K = x[0,j] a per-channel shift
 *      so that E[d^2] - E[d]^2 does not cancel when |mean| >> std;
 *   2. per channel, the slices combined in double in a fixed order: mean, biased variance,
 *      invstd = 1/sqrt(var + eps), the running statistics, and the coefficients of step 3;
 *   3. y = (x - mean) * (gamma * invstd) + beta, element-wise.
 * Backward: sums of dy and dy*(x - mean) per channel the same way (dy gated by the sign of the
 * following ReLU's output when that ReLU's backward is folded in), then
 *   dbeta += sum dy, dgamma += invstd * sum dy(x-mean) = sum dy * xhat,
 *   dx = gamma*invstd * (dy - sum dy / m - xhat * sum dy*xhat / m), xhat = (x - mean) * invstd.
 * The split of rows into slices is deterministic, so results are bitwise reproducible.
 * Where c is divisible by 4 (every layer of our nets) the sums load 4 channels at once and the
 * element-wise passes keep each thread on 4 channels whose coefficients it loads once
 * (cuda_chan.cuh); the general forms serve the rest. */
#include "cuda_chan.cuh"
#include "cuda_col.cuh"
#include "cuda_common.cuh"
#include "cuda_gate.cuh"
#include "cuda_kernels.h"

/* Workspace: partial sums [G][c] float2, then per-channel arrays mean, scale (and save_mean,
 * save_invstd when the caller passes none), each c floats, 256-byte aligned. */

size_t mm_cuda_bn_workspace(int64_t m, int c)
{
    mm_col_split sp = mm_cuda_col_split(m, c);
    return mm_cuda_round256((size_t)sp.slices * (size_t)c * 2 * sizeof(float)) +
           4 * mm_cuda_round256((size_t)c * sizeof(float));
}

typedef struct mm_bn_ws {
    float2 *partial;
    float *mean, *scale, *save_mean, *save_invstd;
} mm_bn_ws;

static mm_bn_ws mm_bn_ws_split(void *ws, int64_t m, int c)
{
    mm_col_split sp = mm_cuda_col_split(m, c);
    char *p = (char *)ws;
    mm_bn_ws w;
    size_t cb = mm_cuda_round256((size_t)c * sizeof(float));
    w.partial = (float2 *)p;
    p += mm_cuda_round256((size_t)sp.slices * (size_t)c * 2 * sizeof(float));
    w.mean = (float *)p;
    w.scale = (float *)(p + cb);
    w.save_mean = (float *)(p + 2 * cb);
    w.save_invstd = (float *)(p + 3 * cb);
    return w;
}

/* Sums two per-thread values over the MM_COL_ROWS row lanes of a block; lane y = 0 gets them. */
__device__ __forceinline__ float2 mm_col_block_sum(float a, float b)
{
    __shared__ float2 red[MM_COL_ROWS][MM_COL_LANES + 1];
    red[threadIdx.y][threadIdx.x] = make_float2(a, b);
    __syncthreads();
    float2 t = make_float2(0.0f, 0.0f);
    if (threadIdx.y == 0) {
        for (int k = 0; k < MM_COL_ROWS; k++) {
            t.x += red[k][threadIdx.x].x;
            t.y += red[k][threadIdx.x].y;
        }
    }
    return t;
}

/* ---- forward, training ---- */
/* This block's slice of the column sums, and its rows [*r0, *r1) of m. The sums run over the
 * rows last to first (block y takes slice G - 1 - y; blocks start roughly in order): they first
 * read what the op before them wrote last, and leave in L2 the rows the element-wise pass after
 * them (first to first) reads first. */
__device__ __forceinline__ int64_t mm_col_slice_reversed(int64_t m, int64_t rows_per_slice,
                                                         int64_t *r0, int64_t *r1)
{
    int64_t slice = (int64_t)gridDim.y - 1 - blockIdx.y;
    *r0 = slice * rows_per_slice;
    *r1 = *r0 + rows_per_slice < m ? *r0 + rows_per_slice : m;
    return slice;
}

template <typename TX>
__global__ void mm_bn_stats_kernel(float2 *partial /* [G,c] */, const TX *x /* [m,c] */,
                                   int64_t m, int c, int64_t rows_per_slice)
{
    int j = blockIdx.x * MM_COL_LANES + threadIdx.x;
    int64_t r0, r1, slice = mm_col_slice_reversed(m, rows_per_slice, &r0, &r1);
    float s = 0.0f, ss = 0.0f;
    if (j < c) {
        float k = mm_ld(x, j);
#pragma unroll 4
        for (int64_t r = r0 + threadIdx.y; r < r1; r += MM_COL_ROWS) {
            float d = mm_ld(x, r * c + j) - k;
            s += d;
            ss += d * d;
        }
    }
    float2 t = mm_col_block_sum(s, ss);
    if (threadIdx.y == 0 && j < c) partial[slice * c + j] = t;
}

/* The 4-channel form of the column sums (stats here, the backward's below), for c divisible by 4
 * and 16-byte aligned tensors: blocks of ql = min(c/4, 32) channel quads x MM_THREADS / ql row
 * lanes, so a warp reads 512 contiguous bytes of fp32 rows in 16-byte loads where the scalar
 * form's read 128 in 4-byte ones; the same slices (mm_cuda_col_split) and partials [G,c], so
 * the finish kernels and the workspace are the same. */
static inline dim3 mm_col4_block(int c)
{
    int ql = c / 4 < 32 ? c / 4 : 32;
    return dim3((unsigned)ql, (unsigned)(MM_THREADS / ql), 1);
}

static inline dim3 mm_col4_grid(int c, const mm_col_split &sp)
{
    unsigned ql = mm_col4_block(c).x;
    return dim3(((unsigned)(c / 4) + ql - 1) / ql, (unsigned)sp.slices, 1);
}

/* Each thread's a[4], b[4] summed over the block's row lanes in lane order, into row lane 0's
 * a and b. Every thread of the block calls it. */
__device__ __forceinline__ void mm_col4_block_sum(float a[4], float b[4])
{
    __shared__ float red[MM_THREADS][8];
    int me = threadIdx.y * blockDim.x + threadIdx.x;
    for (int k = 0; k < 4; k++) {
        red[me][k] = a[k];
        red[me][4 + k] = b[k];
    }
    __syncthreads();
    if (threadIdx.y != 0) return;
    for (int k = 0; k < 4; k++) a[k] = b[k] = 0.0f;
    for (unsigned l = 0; l < blockDim.y; l++) {
        const float *p = red[l * blockDim.x + threadIdx.x];
        for (int k = 0; k < 4; k++) {
            a[k] += p[k];
            b[k] += p[4 + k];
        }
    }
}

/* The first of the 4 channels of this thread of a 4-channel column sum. */
__device__ __forceinline__ int mm_col4_channel()
{
    return (int)(blockIdx.x * blockDim.x + threadIdx.x) * 4;
}

/* The frame of the 4-channel column sums: add(i, a, b) adds element i..i+3's terms to a[4] and
 * b[4] for each row of this thread's share of its block's slice (i = row * c + its channel),
 * then the block's sums are its slice's partials. Every thread of the block calls it. */
template <typename Add>
__device__ __forceinline__ void mm_col4_sums(float2 *partial, int64_t m, int c,
                                             int64_t rows_per_slice, Add add)
{
    int j = mm_col4_channel();
    int64_t r0, r1, slice = mm_col_slice_reversed(m, rows_per_slice, &r0, &r1);
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f}, b[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (j < c) {
#pragma unroll 4
        for (int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) add(r * c + j, a, b);
    }
    mm_col4_block_sum(a, b);
    if (threadIdx.y == 0 && j < c)
        for (int q = 0; q < 4; q++) partial[slice * c + j + q] = make_float2(a[q], b[q]);
}

template <typename TX>
__global__ void mm_bn_stats4_kernel(float2 *partial /* [G,c] */, const TX *x /* [m,c] */,
                                    int64_t m, int c, int64_t rows_per_slice)
{
    int j = mm_col4_channel();
    float k[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (j < c) mm_ld4(x, j, k);
    mm_col4_sums(partial, m, c, rows_per_slice, [&](int64_t i, float *s, float *ss) {
        float v[4];
        mm_ld4(x, i, v);
        for (int q = 0; q < 4; q++) {
            float d = v[q] - k[q];
            s[q] += d;
            ss[q] += d * d;
        }
    });
}

template <typename TX>
__global__ void mm_bn_finish_train_kernel(float *mean_out, float *scale_out, float *save_mean,
                                          float *save_invstd, float *running_mean,
                                          float *running_var, const float2 *partial,
                                          const TX *x, const float *gamma, int slices, int64_t m,
                                          int c, float eps, float momentum)
{
    int j = mm_col_combine_column();
    double sum[2];
    if (!mm_col_combine<2>((const float *)partial, slices, c, j, sum)) return;
    double s = sum[0], ss = sum[1];
    double md = s / (double)m;
    double var = ss / (double)m - md * md; /* biased: what normalises the batch */
    if (var < 0.0) var = 0.0;
    double mean = (double)mm_ld(x, j) + md;
    float invstd = (float)(1.0 / sqrt(var + (double)eps));
    mean_out[j] = (float)mean;
    scale_out[j] = gamma[j] * invstd;
    save_mean[j] = (float)mean;
    save_invstd[j] = invstd;
    /* PyTorch: running = (1 - momentum) * running + momentum * batch, unbiased variance. */
    double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
    running_mean[j] = (1.0f - momentum) * running_mean[j] + momentum * (float)mean;
    running_var[j] = (1.0f - momentum) * running_var[j] + momentum * (float)unbiased;
}

/* y = (x - mean[j]) * scale[j] + beta[j] with j = i % c, + r (a residual join, fuse_residual.c)
 * when r is given, then max(y, 0) when relu (that join's ReLU, or a BN fused with the ReLU that
 * follows it, fuse.c). r has y's type and is read before y is written (y may alias it). The
 * normalised value is rounded to y's type before r is added, so the join is bitwise this kernel
 * without r followed by the add and ReLU kernels, in bf16 too. */
template <typename TY, typename TX>
struct mm_bn_apply_op {
    TY *y;
    const TX *x;
    const TY *r;
    const float *mean, *scale, *beta;
    int c, relu;
    /* Given, scale is gamma and the coefficient is scale[j] * invstd[j] (the float product the
     * training finish kernel stores), taken here rather than by a kernel of its own. */
    const float *invstd;
    int c4; /* the 4-wide path loads the channel arrays 4 channels at a time (mm_chan4) */
    /* One element from its channel's mean, coefficient and shift: the one formula of both
     * paths, so they give the same bits. */
    __device__ float g(float v, float mu, float k, float b) const { return (v - mu) * k + b; }
    __device__ float f(float v, int j) const
    {
        return g(v, mean[j], invstd ? scale[j] * invstd[j] : scale[j], beta[j]);
    }
    __device__ float finish(float v) const { return relu ? (v > 0.0f ? v : 0.0f) : v; }
    /* Four elements in two halves, so that a thread can have the loads of several in flight
     * before it stores (mm_bn_apply_kernel): load4 reads x[i..i+3] into v and r's into a, store4
     * writes y[i..i+3] from them and leaves in v the values as stored (rounded to y's type). */
    __device__ void load4(int64_t i, float *v, float *a) const
    {
        mm_ld4(x, i, v);
        if (r) mm_ld4(r, i, a);
        else a[0] = a[1] = a[2] = a[3] = 0.0f;
    }
    __device__ void store4(int64_t i, float *v, const float *a) const
    {
        float t[4];
        int j = mm_mod(i, c);
        if (c4) {
            float mu[4], s[4], b[4], inv[4];
            mm_ld4(mean, j, mu);
            mm_ld4(scale, j, s);
            mm_ld4(beta, j, b);
            if (invstd) mm_ld4(invstd, j, inv);
            for (int k = 0; k < 4; k++) t[k] = g(v[k], mu[k], invstd ? s[k] * inv[k] : s[k], b[k]);
        } else {
            for (int k = 0; k < 4; k++) {
                t[k] = f(v[k], j);
                if (++j == c) j = 0;
            }
        }
        for (int k = 0; k < 4; k++) v[k] = finish(r ? mm_round_as(y, t[k]) + a[k] : t[k]);
        mm_st4(y, i, v);
        for (int k = 0; k < 4; k++) v[k] = mm_round_as(y, v[k]);
    }
    /* Element i written to y; returns it as stored. */
    __device__ float run1v(int64_t i) const
    {
        float t = f(mm_ld(x, i), mm_mod(i, c));
        float v = finish(r ? mm_round_as(y, t) + mm_ld(r, i) : t);
        mm_st(y, i, v);
        return mm_round_as(y, v);
    }
    /* With the ReLU mask folded in (mm_graph_fuse_relu_mask), bit k of byte b is y[8b + k] > 0
     * as stored (what mm_cuda_relu_mask reads back); NULL: no mask. */
    uint8_t *bits;

    /* The 4-channel form (cuda_chan.cuh): the same formula on coefficients held in registers. */
    static constexpr int unroll = 4;
    struct coef { float mu[4], k[4], b[4]; };
    struct held4 { float v[4], a[4]; };
    __device__ uint8_t *mask() const { return bits; }
    __device__ void coef_at(int j, coef &q) const
    {
        for (int k = 0; k < 4; k++) {
            q.mu[k] = mean[j + k];
            q.k[k] = invstd ? scale[j + k] * invstd[j + k] : scale[j + k];
            q.b[k] = beta[j + k];
        }
    }
    __device__ void chan_load(int64_t i, held4 &h) const
    {
        mm_ld4(x, i, h.v);
        if (r) mm_ld4(r, i, h.a);
    }
    __device__ uint8_t chan_store(int64_t i, held4 &h, const coef &q) const
    {
        float *v = h.v;
        unsigned nib = 0;
        for (int k = 0; k < 4; k++) {
            float t = g(v[k], q.mu[k], q.k[k], q.b[k]);
            v[k] = finish(r ? mm_round_as(y, t) + h.a[k] : t);
            nib |= (mm_round_as(y, v[k]) > 0.0f ? 1u : 0u) << k;
        }
        mm_st4(y, i, v);
        return (uint8_t)nib;
    }
};

/* The apply where the 4-channel form cannot run (c not divisible by 4, unaligned pointers),
 * eight elements a thread, both 4-wide loads issued before either store (two in flight: a plain
 * element-wise loop stores before its next load, which may read what the store wrote as far as
 * the compiler knows), each thread writing the byte of its eight to op.bits when given. vec:
 * the 4-wide path (16-byte aligned pointers). */
template <typename Op>
__global__ void mm_bn_apply_kernel(Op op, int64_t n, int vec)
{
    uint8_t *bits = op.bits;
    int64_t nb = (n + 7) / 8;
    for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b < nb;
         b += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = 8 * b;
        float v[8];
        int k = 0;
        if (vec && i + 8 <= n) {
            float a[8];
            op.load4(i, v, a);
            op.load4(i + 4, v + 4, a + 4);
            op.store4(i, v, a);
            op.store4(i + 4, v + 4, a + 4);
            k = 8;
        }
        for (; k < 8 && i + k < n; k++) v[k] = op.run1v(i + k);
        if (!bits) continue;
        unsigned byte = 0;
        for (int q = 0; q < k; q++) byte |= (v[q] > 0.0f ? 1u : 0u) << q;
        bits[b] = (uint8_t)byte;
    }
}

/* y from x over m rows of c channels; vec: y, x and the residual 16-byte aligned. */
template <typename Op>
static void mm_bn_apply_launch(const Op &op, int64_t m, int c, bool vec, cudaStream_t st)
{
    int64_t n = m * c;
    if (n <= 0 || mm_chan_held_launch(op, m, c, vec, st)) return;
    mm_bn_apply_kernel<Op><<<mm_blocks_for((n + 7) / 8), MM_THREADS, 0, st>>>(op, n,
                                                                            vec ? 1 : 0);
    MM_CUDA_CHECK_LAUNCH();
}

void mm_cuda_bn_forward_train(void *y, mm_dtype ty, float *save_mean, float *save_invstd,
                              float *running_mean, float *running_var, const void *x, mm_dtype tx,
                              const float *gamma, const float *beta, int64_t m, int c, float eps,
                              float momentum, const void *residual, int relu, void *ws,
                              cudaStream_t st)
{
    if (m <= 0 || c <= 0) return;
    mm_col_split sp = mm_cuda_col_split(m, c);
    mm_bn_ws w = mm_bn_ws_split(ws, m, c);
    if (!save_mean) save_mean = w.save_mean;
    if (!save_invstd) save_invstd = w.save_invstd;
    bool vec = mm_aligned16(y) && mm_aligned16(x) && mm_aligned16(residual);
    mm_dispatch_float(tx, [&](auto xt) {
        using TX = decltype(xt);
        const TX *xp = (const TX *)x;
        if (c % 4 == 0 && mm_aligned16(x))
            mm_bn_stats4_kernel<TX><<<mm_col4_grid(c, sp), mm_col4_block(c), 0, st>>>(
                w.partial, xp, m, c, sp.rows_per_slice);
        else
            mm_bn_stats_kernel<TX><<<sp.grid, sp.block, 0, st>>>(w.partial, xp, m, c,
                                                                  sp.rows_per_slice);
        MM_CUDA_CHECK_LAUNCH();
        mm_bn_finish_train_kernel<TX><<<sp.combine_grid, sp.combine_block, 0, st>>>(
            w.mean, w.scale, save_mean, save_invstd, running_mean, running_var, w.partial, xp,
            gamma, sp.slices, m, c, eps, momentum);
        MM_CUDA_CHECK_LAUNCH();
        mm_dispatch_float(ty, [&](auto yt) {
            using TY = decltype(yt);
            mm_bn_apply_op<TY, TX> op{(TY *)y, xp,   (const TY *)residual, w.mean,
                                      w.scale, beta, c,                    relu,
                                      NULL,    mm_chan4(c, {w.mean, w.scale, beta}),
                                      NULL};
            mm_bn_apply_launch(op, m, c, vec, st);
        });
    });
}

/* ---- forward, evaluation: running statistics ----
 * scale = gamma * (float)(1 / sqrt(running_var + eps)) per channel (in double, as the CPU), then
 * the same element-wise pass as training with shift = running_mean. */
__global__ void mm_bn_eval_coef_kernel(float *scale, const float *gamma, const float *running_var,
                                       int c, float eps)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < c) scale[j] = gamma[j] * (float)(1.0 / sqrt((double)running_var[j] + (double)eps));
}

void mm_cuda_bn_forward_eval(void *y, mm_dtype ty, const void *x, mm_dtype tx,
                             const float *gamma, const float *beta, const float *running_mean,
                             const float *running_var, int64_t m, int c, float eps,
                             const void *residual, int relu, void *ws, cudaStream_t st)
{
    if (m <= 0 || c <= 0) return;
    mm_bn_ws w = mm_bn_ws_split(ws, m, c);
    mm_bn_eval_coef_kernel<<<(c + MM_THREADS - 1) / MM_THREADS, MM_THREADS, 0, st>>>(
        w.scale, gamma, running_var, c, eps);
    MM_CUDA_CHECK_LAUNCH();
    bool vec = mm_aligned16(y) && mm_aligned16(x) && mm_aligned16(residual);
    mm_dispatch_float2(ty, tx, [&](auto yt, auto xt) {
        using TY = decltype(yt);
        using TX = decltype(xt);
        mm_bn_apply_op<TY, TX> op{(TY *)y,      (const TX *)x, (const TY *)residual,
                                  running_mean, w.scale,       beta,
                                  c,            relu,          NULL,
                                  mm_chan4(c, {running_mean, w.scale, beta}),
                                  NULL};
        mm_bn_apply_launch(op, m, c, vec, st);
    });
}

/* ---- a training output again, from the saved statistics (recomputation, MM_OP_BN_APPLY) ----
 * The same element-wise functor with mean = save_mean and the coefficient gamma * save_invstd
 * (the float product the training finish kernel makes): bitwise the forward's y (and relu(y)). */
void mm_cuda_bn_apply(void *y, mm_dtype ty, const void *x, mm_dtype tx, const float *gamma,
                      const float *beta, const float *save_mean, const float *save_invstd,
                      int64_t m, int c, const void *residual, int relu, uint8_t *bits,
                      cudaStream_t st)
{
    if (m <= 0 || c <= 0) return;
    bool vec = mm_aligned16(y) && mm_aligned16(x) && mm_aligned16(residual);
    mm_dispatch_float2(ty, tx, [&](auto yt, auto xt) {
        using TY = decltype(yt);
        using TX = decltype(xt);
        mm_bn_apply_op<TY, TX> op{(TY *)y,   (const TX *)x, (const TY *)residual,
                                  save_mean, gamma,         beta,
                                  c,         relu,          save_invstd,
                                  mm_chan4(c, {save_mean, gamma, beta, save_invstd}),
                                  bits};
        mm_bn_apply_launch(op, m, c, vec, st);
    });
}

/* ---- backward ---- */
/* The gradient the backward uses: dy itself, or, with the backward of a ReLU that followed the
 * batch norm folded in (graph.h fuse_relu_bwd), dy where that ReLU's output > 0 (cuda_gate.cuh). */
template <typename TDY, typename TX, typename Gate>
__global__ void mm_bn_bwd_sums_kernel(float2 *partial /* [G,c] */, const TDY *dy, const TX *x,
                                      Gate gate, const float *mean, int64_t m, int c,
                                      int64_t rows_per_slice)
{
    int j = blockIdx.x * MM_COL_LANES + threadIdx.x;
    int64_t r0, r1, slice = mm_col_slice_reversed(m, rows_per_slice, &r0, &r1);
    float sdy = 0.0f, sdyx = 0.0f;
    if (j < c) {
        float mu = mean[j];
#pragma unroll 4
        for (int64_t r = r0 + threadIdx.y; r < r1; r += MM_COL_ROWS) {
            int64_t i = r * c + j;
            float g = gate.on(i) ? mm_ld(dy, i) : 0.0f;
            sdy += g;
            sdyx += g * (mm_ld(x, i) - mu);
        }
    }
    float2 t = mm_col_block_sum(sdy, sdyx);
    if (threadIdx.y == 0 && j < c) partial[slice * c + j] = t;
}

/* The same sums 4 channels a thread (mm_col4_sums). */
template <typename TDY, typename TX, typename Gate>
__global__ void mm_bn_bwd_sums4_kernel(float2 *partial /* [G,c] */, const TDY *dy, const TX *x,
                                       Gate gate, const float *mean, int64_t m, int c,
                                       int64_t rows_per_slice)
{
    int j = mm_col4_channel();
    float mu[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (j < c)
        for (int q = 0; q < 4; q++) mu[q] = mean[j + q];
    mm_col4_sums(partial, m, c, rows_per_slice, [&](int64_t i, float *sdy, float *sdyx) {
        float g[4], v[4];
        bool on[4];
        mm_ld4(dy, i, g);
        mm_ld4(x, i, v);
        gate.on4(i, on);
        for (int q = 0; q < 4; q++) {
            float e = on[q] ? g[q] : 0.0f;
            sdy[q] += e;
            sdyx[q] += e * (v[q] - mu[q]);
        }
    });
}

/* Per channel: the parameter gradients, and the coefficients of
 * dx = k1 * (dy - k2 - xhat * k3), xhat = (x - mean) * invstd, with k1 = gamma * invstd,
 * k2 = sum dy / m, k3 = sum dy * xhat / m (the CPU reference's formula and rounding). */
__global__ void mm_bn_bwd_finish_kernel(float *k1, float *k2, float *k3, float *dgamma,
                                        float *dbeta, const float2 *partial, const float *gamma,
                                        const float *save_invstd, int slices, int64_t m, int c)
{
    int j = mm_col_combine_column();
    double sum[2];
    if (!mm_col_combine<2>((const float *)partial, slices, c, j, sum)) return;
    double sdy = sum[0], sdyx = sum[1];
    double sg = sdyx * (double)save_invstd[j]; /* sum dy * xhat */
    if (dbeta) dbeta[j] += (float)sdy;
    if (dgamma) dgamma[j] += (float)sg;
    if (k1) {
        k1[j] = gamma[j] * save_invstd[j];
        k2[j] = (float)(sdy / (double)m);
        k3[j] = (float)(sg / (double)m);
    }
}

template <typename TDX, typename TDY, typename TX, typename Gate>
struct mm_bn_dx_op {
    TDX *dx;
    const TDY *dy;
    const TX *x;
    Gate gate;
    const float *mean, *invstd, *k1, *k2, *k3;
    int c;
    int c4; /* the 4-wide path loads the channel arrays 4 channels at a time (mm_chan4) */
    /* The one formula of both paths (the same bits either way). */
    __device__ float h(float g, float v, float mu, float inv, float a1, float a2, float a3) const
    {
        float xhat = (v - mu) * inv;
        return a1 * (g - a2 - xhat * a3);
    }
    __device__ float f(float g, float v, int j) const
    {
        return h(g, v, mean[j], invstd[j], k1[j], k2[j], k3[j]);
    }
    struct held { float g[4], v[4]; bool on[4]; };
    __device__ void load4(int64_t i, held &d) const
    {
        mm_ld4(dy, i, d.g);
        mm_ld4(x, i, d.v);
        gate.on4(i, d.on);
    }
    __device__ void store4(int64_t i, held &d) const
    {
        float *g = d.g;
        const float *v = d.v;
        const bool *on = d.on;
        int j = mm_mod(i, c);
        if (c4) {
            float mu[4], inv[4], a1[4], a2[4], a3[4];
            mm_ld4(mean, j, mu);
            mm_ld4(invstd, j, inv);
            mm_ld4(k1, j, a1);
            mm_ld4(k2, j, a2);
            mm_ld4(k3, j, a3);
            for (int k = 0; k < 4; k++)
                g[k] = h(on[k] ? g[k] : 0.0f, v[k], mu[k], inv[k], a1[k], a2[k], a3[k]);
        } else {
            for (int k = 0; k < 4; k++) {
                g[k] = f(on[k] ? g[k] : 0.0f, v[k], j);
                if (++j == c) j = 0;
            }
        }
        mm_st4(dx, i, g);
    }
    __device__ void run1(int64_t i) const
    {
        float g = gate.on(i) ? mm_ld(dy, i) : 0.0f;
        mm_st(dx, i, f(g, mm_ld(x, i), mm_mod(i, c)));
    }

    /* The 4-channel form (cuda_chan.cuh), with the loads of the 4-wide path. */
    static constexpr int unroll = 2;
    struct coef { float mu[4], inv[4], a1[4], a2[4], a3[4]; };
    typedef held held4;
    __device__ uint8_t *mask() const { return NULL; }
    __device__ void coef_at(int j, coef &q) const
    {
        for (int k = 0; k < 4; k++) {
            q.mu[k] = mean[j + k];
            q.inv[k] = invstd[j + k];
            q.a1[k] = k1[j + k];
            q.a2[k] = k2[j + k];
            q.a3[k] = k3[j + k];
        }
    }
    __device__ void chan_load(int64_t i, held &d) const { load4(i, d); }
    __device__ uint8_t chan_store(int64_t i, held &d, const coef &q) const
    {
        for (int k = 0; k < 4; k++)
            d.g[k] = h(d.on[k] ? d.g[k] : 0.0f, d.v[k], q.mu[k], q.inv[k], q.a1[k], q.a2[k],
                       q.a3[k]);
        mm_st4(dx, i, d.g);
        return 0;
    }
};

template <typename TDY, typename TX, typename Gate>
static void mm_bn_backward_gated(void *dx, mm_dtype tdx, float *dgamma, float *dbeta,
                                 const TDY *dy, const TX *x, Gate gate, const float *gamma,
                                 const float *save_mean, const float *save_invstd, int64_t m,
                                 int c, void *ws, cudaStream_t st)
{
    mm_col_split sp = mm_cuda_col_split(m, c);
    mm_bn_ws w = mm_bn_ws_split(ws, m, c);
    /* The workspace's four channel arrays hold k1, k2, k3 (mean/scale/save_* are unused here). */
    float *k1 = dx ? w.mean : NULL, *k2 = w.scale, *k3 = w.save_mean;
    if (c % 4 == 0 && mm_aligned16(dy) && mm_aligned16(x) && gate.aligned())
        mm_bn_bwd_sums4_kernel<TDY, TX, Gate><<<mm_col4_grid(c, sp), mm_col4_block(c), 0, st>>>(
            w.partial, dy, x, gate, save_mean, m, c, sp.rows_per_slice);
    else
        mm_bn_bwd_sums_kernel<TDY, TX, Gate><<<sp.grid, sp.block, 0, st>>>(
            w.partial, dy, x, gate, save_mean, m, c, sp.rows_per_slice);
    MM_CUDA_CHECK_LAUNCH();
    mm_bn_bwd_finish_kernel<<<sp.combine_grid, sp.combine_block, 0, st>>>(
        k1, k2, k3, dgamma, dbeta, w.partial, gamma, save_invstd, sp.slices, m, c);
    MM_CUDA_CHECK_LAUNCH();
    if (!dx) return;
    bool vec = mm_aligned16(dx) && mm_aligned16(dy) && mm_aligned16(x) && gate.aligned();
    mm_dispatch_float(tdx, [&](auto dxt) {
        using TDX = decltype(dxt);
        mm_bn_dx_op<TDX, TDY, TX, Gate> op{(TDX *)dx, dy, x, gate, save_mean, save_invstd,
                                           k1, k2, k3, c,
                                           mm_chan4(c, {save_mean, save_invstd, k1, k2, k3})};
        if (!mm_chan_held_launch(op, m, c, vec, st)) mm_ew2_launch(op, m * c, vec, st);
    });
}

void mm_cuda_bn_backward(void *dx, mm_dtype tdx, float *dgamma, float *dbeta, const void *dy,
                         mm_dtype tdy, const void *relu_y, mm_dtype ty, const uint8_t *relu_bits,
                         const void *x, mm_dtype tx, const float *gamma, const float *save_mean,
                         const float *save_invstd, int64_t m, int c, void *ws, cudaStream_t st)
{
    if (m <= 0 || c <= 0 || (!dx && !dgamma && !dbeta)) return;
    mm_dispatch_float2(tdy, tx, [&](auto dyt, auto xt) {
        using TDY = decltype(dyt);
        using TX = decltype(xt);
        mm_dispatch_gate(relu_y, ty, relu_bits, [&](auto gate) {
            mm_bn_backward_gated(dx, tdx, dgamma, dbeta, (const TDY *)dy, (const TX *)x, gate,
                                 gamma, save_mean, save_invstd, m, c, ws, st);
        });
    });
}
