/* Between the parts of the emulator: its launches (cuemu_launch.cc), runtime (cuemu_runtime.cc)
 * and cuDNN (cuemu_cudnn.cc). */
#ifndef MM_CUEMU_INTERNAL_H
#define MM_CUEMU_INTERNAL_H

#include <cuda_bf16.h>
#include <library_types.h>
#include <stdint.h>
#include <string.h>

#include <functional>

#include "tests/cuemu/cuemu.h"

namespace cuemu {

/* Runs every block and thread of one launch now: cudaErrorLaunchFailure when a thread trapped,
 * cudaErrorInvalidConfiguration for a grid or block the device would refuse. */
cudaError_t run_now(const cfg &c, body_fn body, void *state);

/* CUEMU_CLOCK_SCALE=F: the emulated device runs F times slower (its clock advances F times the
 * cost, and the algorithm searches report F times the time), for tests of decisions that weigh
 * absolute times. 1 when unset. */
double clock_scale();

/* Runs op on stream st now, or records it while st is being captured. Each run advances the
 * emulated device's clock (what events measure) by cost_ms times clock_scale(). */
cudaError_t submit(cudaStream_t st, double cost_ms, std::function<cudaError_t()> op);

/* The device current when stream st was made (0 for the default stream), and the current one. */
int stream_device(cudaStream_t st);
int current_device();

/* Whether [p, p + n) lies inside one device allocation. */
bool device_range(const void *p, size_t n);

/* Elements of fp32 or bf16 buffers as float. */
inline size_t elem_size(cudaDataType t) { return t == CUDA_R_16BF ? 2 : 4; }
inline float load(const void *p, cudaDataType t, size_t i)
{
    if (t == CUDA_R_16BF) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}
inline void store(void *p, cudaDataType t, size_t i, float v)
{
    if (t == CUDA_R_16BF) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((float *)p)[i] = v;
}

/* v as a TF32 tensor core reads it: 10 mantissa bits, rounded to nearest (ties away from zero,
 * as cvt.rna.tf32.f32). */
inline float tf32(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return v; /* inf, NaN */
    u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&v, &u, 4);
    return v;
}

} // namespace cuemu

#endif
