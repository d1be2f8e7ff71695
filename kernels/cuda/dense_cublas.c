/* Dense layers through cuBLAS, row-major as PyTorch's Linear: y[n,o] = x[n,k] W[o,k]^T + b[o].
 *
 * cuBLAS is column-major, and a row-major [r,q] matrix is the column-major [q,r] matrix, its
 * transpose. So with X = x^T (k x n), Wc = W^T (k x o) and Y = y^T (o x n) in cuBLAS's view:
 *   forward          Y  = Wc^T X          gemm(T, N, o, n, k; W lda k, x ldb k; y ldc o)
 *   backward data    dX = Wc dY           gemm(N, N, k, n, o; W lda k, dy ldb o; dx ldc k)
 *   backward weight  dWc += X dY^T        gemm(N, T, k, o, n; x lda k, dy ldb o; dw ldc k)
 * The bias is broadcast into y first and the product added with beta = 1; db is a column sum.
 * Dense layers run on fp32 data in every precision (the planner keeps them fp32); a bf16 view is
 * cast into the workspace. Math: fp32 and bf16 modes use CUBLAS_DEFAULT_MATH (no TF32), tf32 mode
 * CUBLAS_TF32_TENSOR_OP_MATH (set once on the handle). */
#include "cuda_backend.h"
#include "cuda_check.h"
#include "cuda_kernels.h"

static const float mm_one = 1.0f, mm_zero = 0.0f;

void mm_cuda_op_dense(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                      const mm_tensor *outs, mm_cuda_ws *ws)
{
    int n = node->p.dense.n, k = node->p.dense.k, o = node->p.dense.o;
    const float *x = mm_cuda_stage_input(ctx, ws, &ins[0], MM_F32);
    const float *w = mm_cuda_stage_input(ctx, ws, &ins[1], MM_F32);
    const float *b = node->n_in > 2 && ins[2].data ? ins[2].data : NULL;
    float *y = mm_cuda_stage_output(ws, &outs[0], MM_F32);
    if (ws->measure) return;
    if (b) mm_cuda_bias_fill(y, b, n, o, ctx->stream);
    MM_CUBLAS_CHECK(cublasSgemm(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, o, n, k, &mm_one, w, k, x,
                                k, b ? &mm_one : &mm_zero, y, o));
    mm_cuda_finish_output(ctx, &outs[0], y, MM_F32);
}

void mm_cuda_op_dense_bwd_data(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                               const mm_tensor *outs, mm_cuda_ws *ws)
{
    int n = node->p.dense.n, k = node->p.dense.k, o = node->p.dense.o;
    const float *dy = mm_cuda_stage_input(ctx, ws, &ins[0], MM_F32);
    const float *w = mm_cuda_stage_input(ctx, ws, &ins[1], MM_F32);
    float *dx = mm_cuda_stage_output(ws, &outs[0], MM_F32);
    if (ws->measure) return;
    MM_CUBLAS_CHECK(cublasSgemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, k, n, o, &mm_one, w, k, dy,
                                o, &mm_zero, dx, k));
    mm_cuda_finish_output(ctx, &outs[0], dx, MM_F32);
}

void mm_cuda_op_dense_bwd_weight(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                 const mm_tensor *outs, mm_cuda_ws *ws)
{
    int n = node->p.dense.n, k = node->p.dense.k, o = node->p.dense.o;
    const float *dy = mm_cuda_stage_input(ctx, ws, &ins[0], MM_F32);
    const float *x = mm_cuda_stage_input(ctx, ws, &ins[1], MM_F32);
    float *db = node->n_out > 1 ? outs[1].data : NULL;
    void *cws = db ? mm_cuda_ws_take(ws, mm_cuda_colsum_workspace(n, o)) : NULL;
    if (ws->measure) return;
    float *dw = outs[0].data;
    MM_ASSERT(outs[0].dtype == MM_F32 && (!db || outs[1].dtype == MM_F32));
    if (dw)
        MM_CUBLAS_CHECK(cublasSgemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, k, o, n, &mm_one, x, k,
                                    dy, o, &mm_one, dw, k));
    if (db) mm_cuda_colsum_accumulate(db, dy, MM_F32, n, o, cws, ctx->stream);
}
