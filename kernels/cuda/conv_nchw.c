/* NCHW copies of a convolution's operands (conv_nchw.h): their place in the node's scratch and
 * the transposes in and out (layout.cu). */
#include "conv_nchw.h"

#include <stdint.h>

#include "cuda_kernels.h"

static size_t mm_x_bytes(const mm_conv_dims *d)
{
    return (size_t)d->n * d->h * d->w * d->c * sizeof(float);
}
static size_t mm_w_bytes(const mm_conv_dims *d)
{
    return (size_t)d->k * d->r * d->s * d->c * sizeof(float);
}
static size_t mm_y_bytes(const mm_conv_dims *d)
{
    return (size_t)d->n * d->oh * d->ow * d->k * sizeof(float);
}

bool mm_conv_nchw_applies(const mm_conv_dims *d) { return !(d->r == 1 && d->s == 1); }

size_t mm_conv_nchw_scratch(size_t ws_bytes, const mm_conv_dims *d)
{
    return mm_cuda_round256(ws_bytes) + mm_cuda_round256(mm_x_bytes(d)) +
           mm_cuda_round256(mm_w_bytes(d)) + mm_cuda_round256(mm_y_bytes(d));
}

mm_conv_nchw_bufs mm_conv_nchw_carve(void *scratch, size_t ws_bytes, const mm_conv_dims *d)
{
    char *p = (char *)scratch + mm_cuda_round256(ws_bytes);
    mm_conv_nchw_bufs b;
    b.x = (float *)p;
    p += mm_cuda_round256(mm_x_bytes(d));
    b.w = (float *)p;
    p += mm_cuda_round256(mm_w_bytes(d));
    b.y = (float *)p;
    return b;
}

void mm_conv_nchw_in(int dir, const mm_conv_dims *d, const mm_conv_nchw_bufs *b, const float *x,
                     const float *w, const float *y, cudaStream_t st)
{
    if (dir != MM_CONV_NCHW_BWD_DATA) /* [n, h*w, c] -> [n, c, h*w] */
        mm_cuda_transpose(b->x, x, d->n, (int64_t)d->h * d->w, d->c, 0, st);
    if (dir != MM_CONV_NCHW_BWD_FILTER) /* [k, r*s, c] -> [k, c, r*s] */
        mm_cuda_transpose(b->w, w, d->k, (int64_t)d->r * d->s, d->c, 0, st);
    if (dir != MM_CONV_NCHW_FWD) /* [n, oh*ow, k] -> [n, k, oh*ow] */
        mm_cuda_transpose(b->y, y, d->n, (int64_t)d->oh * d->ow, d->k, 0, st);
}

void mm_conv_nchw_out(int dir, const mm_conv_dims *d, const mm_conv_nchw_bufs *b, float *x,
                      float *w, float *y, bool accumulate, cudaStream_t st)
{
    if (dir == MM_CONV_NCHW_FWD)
        mm_cuda_transpose(y, b->y, d->n, d->k, (int64_t)d->oh * d->ow, accumulate, st);
    else if (dir == MM_CONV_NCHW_BWD_DATA)
        mm_cuda_transpose(x, b->x, d->n, d->c, (int64_t)d->h * d->w, accumulate, st);
    else
        mm_cuda_transpose(w, b->w, d->k, d->c, (int64_t)d->r * d->s, accumulate, st);
}
