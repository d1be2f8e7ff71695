/* The cpu backend: host memory and the reference kernels of kernels/cpu/. Every node is a direct
 * call into one kernel; the node's inputs and outputs are in the order graph.h documents. */
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/blas.h"
#include "../kernels/cpu/cpu_internal.h"
#include "backend.h"

#define F(t) ((float *)(t).data)
#define CF(t) ((const float *)(t).data)

static void *cpu_alloc(mm_backend *be, size_t bytes)
{
    (void)be;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

static void cpu_free(mm_backend *be, void *p)
{
    (void)be;
    free(p);
}

static void cpu_copy(mm_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (dst != src) memmove(dst, src, bytes);
}

static void cpu_zero(mm_backend *be, void *dst, size_t bytes)
{
    (void)be;
    memset(dst, 0, bytes);
}

/* A summing data gradient (p.conv.accumulate) computes the gradient into scratch after the
 * convolution's own, then adds: bitwise the add node it replaces. */
static size_t grad_sum_offset(const mm_conv_dims *d)
{
    return (mm_cpu_conv2d_backward_data_workspace(d) + 63) / 64 * 64;
}

size_t mm_cpu_node_workspace(const mm_node *nd)
{
    const mm_conv_dims *d = &nd->p.conv;
    switch (nd->op) {
    case MM_OP_CONV2D:
    case MM_OP_CONV2D_BWD_FILTER: return mm_cpu_conv2d_workspace(d);
    case MM_OP_CONV2D_BWD_DATA:
        if (!d->accumulate) return mm_cpu_conv2d_backward_data_workspace(d);
        return grad_sum_offset(d) + (size_t)d->n * d->h * d->w * d->c * sizeof(float);
    default: return 0;
    }
}

static size_t cpu_workspace(mm_backend *be, const mm_graph *g, const mm_node *nd)
{
    (void)be;
    (void)g;
    return mm_cpu_node_workspace(nd);
}

static void cpu_run(mm_backend *be, const mm_graph *g, const mm_node *nd, const mm_tensor *in,
                    const mm_tensor *out, void *ws, size_t ws_bytes)
{
    (void)be;
    (void)g;
    (void)ws_bytes;
    for (int i = 0; i < nd->n_in; i++)
        MM_ASSERT(in[i].data == NULL || in[i].dtype == MM_F32 || in[i].dtype == MM_I32 ||
                  in[i].dtype == MM_U8); /* bf16 is a CUDA storage type */
    const mm_op_params *p = &nd->p;
    switch (nd->op) {
    case MM_OP_CONV2D:
        mm_cpu_conv2d_forward(F(out[0]), CF(in[0]), CF(in[1]), CF(in[2]), &p->conv, ws);
        break;
    case MM_OP_CONV2D_BWD_DATA:
        if (p->conv.accumulate) {
            const mm_conv_dims *d = &p->conv;
            float *q = (float *)((char *)ws + grad_sum_offset(d));
            mm_cpu_conv2d_backward_data(q, CF(in[0]), CF(in[1]), d, ws);
            mm_cpu_add(F(out[0]), CF(in[2]), q, (int64_t)d->n * d->h * d->w * d->c);
        } else {
            mm_cpu_conv2d_backward_data(F(out[0]), CF(in[0]), CF(in[1]), &p->conv, ws);
        }
        break;
    case MM_OP_CONV2D_BWD_FILTER:
        mm_cpu_conv2d_backward_filter(F(out[0]), CF(in[0]), CF(in[1]), &p->conv, ws);
        break;
    case MM_OP_CONV2D_BWD_BIAS:
        mm_cpu_conv2d_backward_bias(F(out[0]), CF(in[0]), &p->conv);
        break;
    case MM_OP_BATCHNORM:
        if (p->bn.training)
            mm_cpu_batchnorm_forward_train(F(out[0]), F(out[1]), F(out[2]), F(in[3]), F(in[4]),
                                           CF(in[0]), CF(in[1]), CF(in[2]), p->bn.m, p->bn.c,
                                           p->bn.eps, p->bn.momentum,
                                           p->bn.add ? CF(in[5]) : NULL, p->bn.relu);
        else
            mm_cpu_batchnorm_forward_eval(F(out[0]), CF(in[0]), CF(in[1]), CF(in[2]), CF(in[3]),
                                          CF(in[4]), p->bn.m, p->bn.c, p->bn.eps,
                                          p->bn.add ? CF(in[5]) : NULL, p->bn.relu);
        break;
    case MM_OP_BATCHNORM_BWD:
        mm_cpu_batchnorm_backward(F(out[0]), F(out[1]), F(out[2]), CF(in[0]),
                                  p->bn.relu_bwd && !p->bn.relu_bits ? CF(in[5]) : NULL,
                                  p->bn.relu_bwd && p->bn.relu_bits ? (const uint8_t *)in[5].data
                                                                    : NULL,
                                  CF(in[1]), CF(in[2]), CF(in[3]), CF(in[4]), p->bn.m, p->bn.c);
        break;
    case MM_OP_BN_APPLY:
        mm_cpu_batchnorm_apply(F(out[0]), CF(in[0]), CF(in[1]), CF(in[2]), CF(in[3]), CF(in[4]),
                               p->bn.m, p->bn.c, p->bn.add ? CF(in[5]) : NULL, p->bn.relu);
        if (nd->n_out > 1 && out[1].data) /* a ReLU mask folded in (mm_graph_fuse_relu_mask) */
            mm_cpu_relu_mask((uint8_t *)out[1].data, CF(out[0]), p->bn.m * p->bn.c);
        break;
    case MM_OP_RELU: mm_cpu_relu_forward(F(out[0]), CF(in[0]), p->elementwise.n); break;
    case MM_OP_RELU_BWD:
        if (p->elementwise.bits)
            mm_cpu_relu_backward_bits(F(out[0]), CF(in[0]), (const uint8_t *)in[1].data,
                                      p->elementwise.n);
        else
            mm_cpu_relu_backward(F(out[0]), CF(in[0]), CF(in[1]), p->elementwise.n);
        if (p->elementwise.colsum_c > 0 && nd->n_out > 1 && out[1].data) /* a bias gradient */
            mm_cpu_bias_grad_add(F(out[1]), CF(out[0]), p->elementwise.n / p->elementwise.colsum_c,
                                 p->elementwise.colsum_c);
        break;
    case MM_OP_RELU_MASK:
        mm_cpu_relu_mask((uint8_t *)out[0].data, CF(in[0]), p->elementwise.n);
        break;
    case MM_OP_ADD: mm_cpu_add(F(out[0]), CF(in[0]), CF(in[1]), p->elementwise.n); break;
    case MM_OP_MAXPOOL:
        mm_cpu_maxpool_forward(F(out[0]), nd->n_out > 1 ? (uint8_t *)out[1].data : NULL,
                               CF(in[0]), &p->pool);
        break;
    case MM_OP_MAXPOOL_BWD:
        mm_cpu_maxpool_backward(F(out[0]), CF(in[0]), (const uint8_t *)in[1].data,
                                p->pool.relu_mask ? CF(in[2]) : NULL, &p->pool);
        break;
    case MM_OP_AVGPOOL: mm_cpu_avgpool_forward(F(out[0]), CF(in[0]), &p->pool); break;
    case MM_OP_AVGPOOL_BWD: mm_cpu_avgpool_backward(F(out[0]), CF(in[0]), &p->pool); break;
    case MM_OP_ADAPTIVE_AVGPOOL:
        mm_cpu_adaptive_avgpool_forward(F(out[0]), CF(in[0]), &p->pool);
        break;
    case MM_OP_ADAPTIVE_AVGPOOL_BWD:
        mm_cpu_adaptive_avgpool_backward(F(out[0]), CF(in[0]), &p->pool);
        break;
    case MM_OP_GLOBAL_AVGPOOL:
        mm_cpu_global_avgpool_forward(F(out[0]), CF(in[0]), p->gap.n, p->gap.hw, p->gap.c);
        break;
    case MM_OP_GLOBAL_AVGPOOL_BWD:
        mm_cpu_global_avgpool_backward(F(out[0]), CF(in[0]), p->gap.n, p->gap.hw, p->gap.c);
        break;
    case MM_OP_DENSE:
        mm_cpu_dense_forward(F(out[0]), CF(in[0]), CF(in[1]), CF(in[2]), p->dense.n, p->dense.k,
                             p->dense.o);
        break;
    case MM_OP_DENSE_BWD_DATA:
        mm_cpu_dense_backward_data(F(out[0]), CF(in[0]), CF(in[1]), p->dense.n, p->dense.k,
                                   p->dense.o);
        break;
    case MM_OP_DENSE_BWD_WEIGHT:
        mm_cpu_dense_backward_weight(F(out[0]), F(out[1]), CF(in[0]), CF(in[1]), p->dense.n,
                                     p->dense.k, p->dense.o);
        break;
    case MM_OP_DROPOUT:
        mm_cpu_dropout_forward(F(out[0]), (uint8_t *)out[1].data, CF(in[0]), p->dropout.n,
                               p->dropout.p, p->dropout.seed);
        break;
    case MM_OP_DROPOUT_BWD:
        mm_cpu_dropout_backward(F(out[0]), CF(in[0]), (const uint8_t *)in[1].data, p->dropout.n,
                                p->dropout.p);
        break;
    case MM_OP_SOFTMAX: mm_cpu_softmax(F(out[0]), CF(in[0]), p->xent.n, p->xent.c); break;
    case MM_OP_SOFTMAX_XENT:
        mm_cpu_softmax_xent_forward(F(out[0]), F(out[1]), CF(in[0]), (const int32_t *)in[1].data,
                                    CF(in[2]), p->xent.n, p->xent.c);
        break;
    case MM_OP_SOFTMAX_XENT_BWD:
        mm_cpu_softmax_xent_backward(F(out[0]), CF(in[0]), (const int32_t *)in[1].data, CF(in[2]),
                                     p->xent.dloss, p->xent.n, p->xent.c);
        break;
    case MM_OP_FLIP:
        mm_cpu_flip(F(out[0]), CF(in[0]), p->flip.n, p->flip.h, p->flip.w, p->flip.c, p->flip.axis);
        break;
    case MM_OP_RESHAPE: break;
    default: MM_ASSERT(!"cpu backend: unknown op");
    }
}

static void cpu_adam(mm_backend *be, float *p, float *m, float *v, const float *g, int64_t n,
                     const mm_adam_params *a)
{
    (void)be;
    mm_cpu_adam(p, m, v, g, n, a);
}

static void cpu_sgd(mm_backend *be, float *p, float *buf, const float *g, int64_t n,
                    const mm_sgd_params *s)
{
    (void)be;
    mm_cpu_sgd(p, buf, g, n, s);
}

static void cpu_accumulate(mm_backend *be, float *acc, float *g, int64_t n, int micro, int steps)
{
    (void)be;
    mm_cpu_grad_accumulate(acc, g, n, micro, steps);
}

static void cpu_sync(mm_backend *be) { (void)be; }

static void cpu_destroy(mm_backend *be) { free(be); }

mm_status mm_backend_cpu_create(mm_backend **out)
{
    char why[512];
    if (mm_blas_load(why, sizeof why)) return mm_fail(MM_ERR_DEVICE, "cpu backend: %s", why);
    mm_cpu_conv_read_env();
    mm_backend *be = mm_xcalloc(1, sizeof *be);
    be->name = "cpu";
    be->device = MM_DEVICE_CPU;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->copy_to_device = cpu_copy;
    be->copy_to_host = cpu_copy;
    be->copy_device = cpu_copy;
    be->zero = cpu_zero;
    be->workspace_bytes = cpu_workspace;
    be->run_node = cpu_run;
    be->adam = cpu_adam;
    be->sgd = cpu_sgd;
    be->accumulate = cpu_accumulate;
    be->sync = cpu_sync;
    be->destroy = cpu_destroy;
    *out = be;
    return MM_OK;
}
