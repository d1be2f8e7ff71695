/* Backends: a table of functions plus an opaque context. cpu, meta and cuda implement it.
 *
 * The session (session.h) owns the plan and the buffers; a backend only allocates device memory,
 * copies, and runs one recorded node at a time on tensor views that point into those buffers.
 * Copies between host and device are explicit. */
#ifndef MM_BACKEND_H
#define MM_BACKEND_H

#include <stddef.h>

#include "../kernels/cpu/cpu_kernels.h"
#include "error.h"
#include "graph.h"
#include "tensor.h"

typedef struct mm_backend mm_backend;

/* Arithmetic of a backend (--precision). fp32: plain fp32 everywhere (no TF32 anywhere);
 * tf32: fp32 storage, convolutions and matrix products on TF32 tensor cores;
 * bf16: activations stored as MM_BF16 (the planner marks them), bf16 tensor-core convolutions,
 * fp32 master weights, gradients, optimizer state and batch-norm statistics.
 * Only the CUDA backend offers tf32 and bf16; cpu and meta are fp32. */
typedef enum mm_precision {
    MM_PRECISION_FP32 = 0,
    MM_PRECISION_TF32,
    MM_PRECISION_BF16,
} mm_precision;

/* "fp32" | "tf32" | "bf16" -> precision; tier 1 error naming --precision otherwise. */
mm_status mm_precision_parse(const char *s, mm_precision *out);
const char *mm_precision_name(mm_precision p);

struct mm_backend {
    const char *name;          /* "cpu", "meta", "cuda" */
    mm_device_kind device;
    void *ctx;

    /* Device memory. alloc returns NULL when it cannot (the caller reports tier 1). On meta,
     * alloc returns a non-NULL dummy and nothing is touched. */
    void *(*alloc)(mm_backend *be, size_t bytes);
    void (*free)(mm_backend *be, void *ptr);
    void (*copy_to_device)(mm_backend *be, void *dst, const void *src, size_t bytes);
    void (*copy_to_host)(mm_backend *be, void *dst, const void *src, size_t bytes);
    void (*copy_device)(mm_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(mm_backend *be, void *dst, size_t bytes);

    /* Optional: refuses (tier 1, before any planning) a graph this backend cannot run, such as
     * a tensor larger than its libraries take. NULL: every graph is fine. */
    mm_status (*check_graph)(mm_backend *be, const mm_graph *g);
    /* Scratch bytes node `node` needs while it runs (0 for most ops). Called at plan time with
     * the node's value shapes; a backend may choose algorithms here (cuDNN) and remember them. */
    size_t (*workspace_bytes)(mm_backend *be, const mm_graph *g, const mm_node *node);
    /* Optional: from now on node `node` of g should need at most `bytes` of scratch (the planner
     * asks where a node's scratch raises the arena above what the activations need; a backend
     * may pick a slower algorithm that needs less). Returns the node's scratch bytes now (more
     * than asked when nothing smaller exists). NULL: the backend cannot. */
    size_t (*limit_workspace)(mm_backend *be, const mm_graph *g, const mm_node *node,
                              size_t bytes);
    /* Runs one node. ins/outs are views (data NULL where the node's id is -1). */
    void (*run_node)(mm_backend *be, const mm_graph *g, const mm_node *node, const mm_tensor *ins,
                     const mm_tensor *outs, void *ws, size_t ws_bytes);

    /* Fused optimizer updates over flat buffers. */
    void (*adam)(mm_backend *be, float *p, float *m, float *v, const float *g, int64_t n,
                 const mm_adam_params *a);
    void (*sgd)(mm_backend *be, float *p, float *buf, const float *g, int64_t n,
                const mm_sgd_params *s);
    /* Gradient accumulation, micro-batch `micro` of `steps` (kernels/optim_math.h): acc keeps
     * the sum; the last writes the mean into g. */
    void (*accumulate)(mm_backend *be, float *acc, float *g, int64_t n, int micro, int steps);

    void (*sync)(mm_backend *be);
    void (*destroy)(mm_backend *be);

    /* The arithmetic this backend runs (FP32 on cpu and meta). The planner marks activations
     * MM_BF16 when it is MM_PRECISION_BF16. */
    mm_precision precision;
    /* Deterministic arithmetic (--deterministic; set before the first plan): the same inputs give
     * the same bits every run. The cpu backend always is. The cuda backend's own kernels are
     * (fixed-order reductions, no atomics); its convolutions then take cuDNN's heuristic order
     * among the algorithms it reports deterministic instead of the fastest by timing (which can
     * differ between runs), and 1x1 stride-1 ones cuBLAS's GEMM, as PyTorch's
     * cudnn.deterministic with benchmark off. */
    bool deterministic;
    /* Where the backend keeps what it measured of the device between runs (set before the first
     * plan, mm_backend_set_algo_cache; "" keeps nothing): the cuda backend's convolution
     * algorithm choices by shape (kernels/cuda/conv_disk.h), not used when deterministic. */
    char algo_cache_dir[1024];

    /* Optional (NULL where the backend has none; CUDA has them): record everything the backend
     * is asked to do between begin_capture and end_capture (run_node, copy_device, zero, adam,
     * sgd on device buffers) as one CUDA graph, then replay() reruns it with one launch. Run the
     * same work once without capture first (it loads kernels and lets the libraries finish
     * their lazy initialisation, which a capture cannot record). While capturing, nothing may
     * touch the host (no copy_to_host, copy_to_device or sync) and the kernels' scalar arguments
     * are frozen: capture the forward and backward pass and call adam (whose step count
     * changes) outside the graph. Dropout's seed is frozen too, so a graph with dropout replays
     * the same mask. end_capture returns MM_ERR_DEVICE with a message when the driver refused
     * the graph. */
    size_t (*memory_in_use)(mm_backend *be); /* optional; see mm_backend_memory_in_use */
    /* Optional: host memory the device copies from faster (CUDA: page-locked), for buffers
     * copied to the device every step; NULL when it cannot (use malloc then). mm_host_alloc /
     * mm_host_free pick. */
    void *(*host_alloc)(mm_backend *be, size_t bytes);
    void (*host_free)(mm_backend *be, void *p);
    /* Optional: key=value words on what the backend chose so far (CUDA: how many convolution
     * shapes run on each kind of algorithm), for the line `mammo bench` prints. */
    void (*describe)(mm_backend *be, char *buf, size_t n);
    /* Optional: the milliseconds the backend measured for node `node` of planned graph g when it
     * chose how to run it (CUDA: a convolution's algorithms, as their searches timed them); -1
     * when it timed nothing for it. `mammo bench` sums them to set against a profile. */
    double (*chosen_ms)(mm_backend *be, const mm_graph *g, const mm_node *node);
    mm_status (*begin_capture)(mm_backend *be);
    mm_status (*end_capture)(mm_backend *be);
    void (*replay)(mm_backend *be);
    /* Optional (CUDA: cudaSetDevice): makes this backend's device the calling thread's current
     * one. A backend runs its work on the current device: call it (mm_backend_bind) before using
     * a backend from another thread than the one that created it, or after using a backend of
     * another GPU on this thread (runtime/dist.h does so for its replicas). */
    void (*bind)(mm_backend *be);
};

/* be->bind where it has one. */
void mm_backend_bind(mm_backend *be);

/* Scratch bytes the cpu backend's kernel of this node needs (the meta backend plans with it too). */
size_t mm_cpu_node_workspace(const mm_node *nd);

/* Sets be->algo_cache_dir (NULL or "": nothing kept); false when the path is too long. */
bool mm_backend_set_algo_cache(mm_backend *be, const char *dir);

/* Backend constructors. They return MM_ERR_DEVICE with a message when the device is absent. */
mm_status mm_backend_cpu_create(mm_backend **out);
mm_status mm_backend_meta_create(mm_backend **out);
mm_status mm_backend_cuda_create(mm_backend **out); /* "no GPU" where there is none */
/* The CUDA backend on device `device` (0 = the first visible GPU) with the given precision.
 * mm_backend_cuda_create(out) is mm_backend_cuda_create_ex(out, MM_PRECISION_FP32, 0). */
mm_status mm_backend_cuda_create_ex(mm_backend **out, mm_precision precision, int device);
/* The GPU a device name names: "cuda" 0, "cuda:N" N; -1 for any other name; -2 (a tier-1 error
 * naming --device) for a malformed "cuda:..." */
int mm_backend_gpu_index(const char *name);
/* What a device name names, checked with the precision but not opened: *kind, and for cuda the
 * GPU in *gpu (-1 otherwise). Tier 1 naming --device for an unknown or malformed name, naming
 * --precision for tf32 or bf16 on cpu or meta, which run fp32 only. */
mm_status mm_device_resolve(const char *name, mm_precision precision, mm_device_kind *kind,
                            int *gpu);
/* By name ("cpu", "meta", "cuda" = "cuda:0", "cuda:N" for GPU N) with a precision, as
 * mm_device_resolve checks them. */
mm_status mm_backend_open(const char *name, mm_precision precision, mm_backend **out);
/* The peak of the device bytes held through the backend (CUDA: its allocations and cuBLAS's
 * fixed workspace, comparable with torch.cuda.max_memory_allocated; the CUDA context is in
 * neither); 0 where it is not measured (cpu, meta). */
size_t mm_backend_memory_in_use(mm_backend *be);
/* Host buffers for per-step copies: the backend's host_alloc where it has one and it succeeds,
 * else the heap (mm_xmalloc); free with mm_host_free on the same backend. */
void *mm_host_alloc(mm_backend *be, size_t bytes);
void mm_host_free(mm_backend *be, void *p);
/* By name, as mm_backend_open in fp32. */
mm_status mm_backend_create(const char *name, mm_backend **out);
void mm_backend_destroy(mm_backend *be);

/* Whether this build has the CUDA backend compiled in, and whether a GPU is usable now
 * (fills `why` with the reason when not). */
bool mm_cuda_compiled(void);
bool mm_cuda_available(char *why, size_t n);
/* Whether this executable's CUDA backend is the CPU emulation of tests/cuemu (the op tests'
 * twins): its own kernels run, cuDNN's convolutions do not exist. */
bool mm_cuda_emulated(void);

#endif
