/* Convolutions on NCHW copies of the backend's NHWC operands.
 *
 * cuDNN's fp32 algorithms without tensor cores are not the same in both layouts: in NCHW it
 * offers Winograd (fused, and non-fused F(4x4,3x3)) and FFT-tiling, which do fewer multiply-adds
 * than the implicit GEMMs that NHWC fp32 gets, and NVIDIA's own frameworks found NCHW faster for
 * fp32 in some cases. So conv_search.c also times a legacy algorithm on NCHW copies, the
 * transposes included, and keeps it where the whole is faster. The copies live in the node's
 * scratch after cuDNN's workspace:
 *
 *   scratch: [ cuDNN workspace | x copy [n,c,h,w] | w copy [k,c,r,s] | y copy [n,k,oh,ow] ]
 *
 * Operands by role, as everywhere in conv_entry.h: forward y = conv(x, w); backward data
 * x (+)= conv^T(y, w); backward filter w (+)= dW(x, y). All fp32. */
#ifndef MM_CONV_NCHW_H
#define MM_CONV_NCHW_H

#include <cuda_runtime.h>
#include <stdbool.h>
#include <stddef.h>

#include "../dims.h"

/* Directions, as conv_entry.h and conv_graph.h number them. */
enum { MM_CONV_NCHW_FWD = 1, MM_CONV_NCHW_BWD_DATA = 2, MM_CONV_NCHW_BWD_FILTER = 3 };

/* Whether the NCHW copies are worth a try for d: not for 1x1 kernels, which are GEMMs in both
 * layouts (the transposes would only add to them). */
bool mm_conv_nchw_applies(const mm_conv_dims *d);

/* Bytes of scratch for a cuDNN workspace of ws_bytes followed by the three copies. */
size_t mm_conv_nchw_scratch(size_t ws_bytes, const mm_conv_dims *d);

/* The copies inside scratch (laid out as above). */
typedef struct mm_conv_nchw_bufs {
    float *x, *w, *y;
} mm_conv_nchw_bufs;
mm_conv_nchw_bufs mm_conv_nchw_carve(void *scratch, size_t ws_bytes, const mm_conv_dims *d);

/* Copies the inputs of direction dir into b (the operand that is the output is not read). */
void mm_conv_nchw_in(int dir, const mm_conv_dims *d, const mm_conv_nchw_bufs *b,
                     const float *x /* [n,h,w,c] */, const float *w /* [k,r,s,c] */,
                     const float *y /* [n,oh,ow,k] */, cudaStream_t st);

/* Writes the output of direction dir from its copy back into x, w or y, or adds it there with
 * accumulate. */
void mm_conv_nchw_out(int dir, const mm_conv_dims *d, const mm_conv_nchw_bufs *b,
                      float *x /* [n,h,w,c] */, float *w /* [k,r,s,c] */,
                      float *y /* [n,oh,ow,k] */, bool accumulate, cudaStream_t st);

#endif
