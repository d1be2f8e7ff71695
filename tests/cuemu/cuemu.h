/* A CUDA emulator, so that CI (which has the CUDA toolkit but no GPU) runs the CUDA backend: its
 * own kernels (kernels/cuda, the .cu files) and its C code (backend_cuda.c, conv_cudnn.c, ...)
 * unchanged, on the CPU, against the CPU backend. The CUDA tests run twice: on a GPU when there
 * is one, and emulated always (the *_emu executables; mammo_emu is the command line).
 *
 * How: each .cu file is rewritten by cuemu.sed (the launch syntax `k<<<g, b, s, st>>>(args)`
 * becomes `k << cuemu::cfg(g, b, s, st) << cuemu::args(args)`, `extern __shared__` arrays become
 * the launch's dynamic shared memory) and compiled as C++ by the host compiler with this header
 * included first. A launch runs block after block; the threads of a block are fibers
 * (cuemu_launch.cc) that switch at __syncthreads(), so shared memory and barriers behave as on
 * the device. Odd blocks run their threads in reverse order, so a missing barrier changes results;
 * every other launch runs its blocks last to first, so blocks that depend on their order do too;
 * shared memory starts each block as NaN (all bits set), so a read before the write shows.
 * The CUDA runtime, cuBLAS and cuDNN calls the backend makes are emulated too (cuemu_runtime.cc;
 * cuemu_cudnn.cc and cuemu_cudnn_graph.cc, whose convolutions cuemu_conv.cc computes directly):
 * device memory is exact-size heap blocks and the emulator is built with AddressSanitizer and
 * UBSan where the compiler has them, so an out-of-bounds or misaligned access in a kernel stops
 * the test with a report. cuDNN's two APIs offer menus of algorithms and engines (workspaces,
 * notes, costs on the emulated clock) made so that the backend's search takes each of its paths;
 * some are reported nondeterministic, and with CUEMU_NONDETERMINISTIC=1 they are (cuemu_conv.h).
 *
 * Not emulated: warp shuffles and atomics (our kernels use neither), fast-math approximations
 * (the emulation is IEEE), real timing (an emulated clock instead), and what real cuDNN engines
 * do beyond the API's documented contract. */
#ifndef MM_CUEMU_H
#define MM_CUEMU_H

#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#include <tuple>
#include <type_traits>
#include <utility>

/* The device qualifiers mean nothing on the host. */
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* One copy per kernel or device function: blocks run one at a time, so that is one per block
 * (cuemu.sed rewrites the declarations; this is for any it does not). */
#define __shared__ static

namespace cuemu {

/* The running thread's coordinates (one fiber runs at a time, so globals suffice). */
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;

struct cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    cfg(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = 0) : grid(g), block(b), smem(s), stream(st)
    {
    }
};

/* The launch: runs body() once per thread of every block now, or records it when the stream is
 * being captured into a CUDA graph (then it runs at each cudaGraphLaunch). body must copy what it
 * needs (it may run later). */
typedef void (*body_fn)(void *state);
void launch(const cfg &c, body_fn body, void *state, void (*free_state)(void *));

void syncthreads();
[[noreturn]] void trap();
void *dyn_smem();
/* A static shared array reached by a thread: the first thread of a block sets all its bits. */
void shared_begin(void *p, size_t bytes);

/* The rewritten launch `kernel << cfg(...) << args(...)`: the first << pairs the kernel with its
 * configuration, the second converts the arguments to the kernel's parameters and launches. */
template <typename... P>
struct kernel_ref {
    void (*f)(P...);
    cfg c;
};
template <typename... A>
struct arg_pack {
    std::tuple<A...> t;
};
template <typename... A>
arg_pack<std::decay_t<A>...> args(A &&...a)
{
    return arg_pack<std::decay_t<A>...>{std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
}

template <typename... P>
kernel_ref<P...> operator<<(void (*f)(P...), const cfg &c)
{
    return kernel_ref<P...>{f, c};
}

/* The kernel and its arguments converted to its parameter types, as a launch passes them. */
template <typename... P>
struct bound {
    void (*f)(P...);
    std::tuple<std::decay_t<P>...> a;
    static void run(void *s)
    {
        bound *b = static_cast<bound *>(s);
        std::apply(b->f, b->a);
    }
    static void destroy(void *s) { delete static_cast<bound *>(s); }
};

template <typename... P, typename... A>
void operator<<(const kernel_ref<P...> &k, const arg_pack<A...> &p)
{
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong argument count");
    auto *b = new bound<P...>{k.f, std::apply(
                                       [](const A &...x) {
                                           return std::tuple<std::decay_t<P>...>(x...);
                                       },
                                       p.t)};
    launch(k.c, &bound<P...>::run, b, &bound<P...>::destroy);
}

} // namespace cuemu

#define threadIdx (cuemu::thread_idx)
#define blockIdx (cuemu::block_idx)
#define blockDim (cuemu::block_dim)
#define gridDim (cuemu::grid_dim)
#define __syncthreads() cuemu::syncthreads()
#define __trap() cuemu::trap()

/* Device intrinsics with their exact IEEE meaning. */
static inline float __frcp_rn(float x) { return 1.0f / x; }

/* CUDA's device min and max take mixed integer types; the host has none. */
template <typename A, typename B>
static inline typename std::common_type<A, B>::type min(A a, B b)
{
    return b < a ? b : a;
}
template <typename A, typename B>
static inline typename std::common_type<A, B>::type max(A a, B b)
{
    return a < b ? b : a;
}

#endif /* __cplusplus */
#endif
