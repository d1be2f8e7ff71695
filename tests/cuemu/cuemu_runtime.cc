/* The CUDA runtime and cuBLAS calls the backend makes, for the emulator (cuemu.h): one device
 * (or CUEMU_DEVICES of them, which share memory and clock; a launch or GEMM into a stream of
 * another device than the current one is refused, as on GPUs); "device memory" is host memory
 * (exact-size heap blocks, so AddressSanitizer sees overruns; 80 GiB of it, or CUEMU_DEVICE_MB,
 * beyond which cudaMalloc fails as the device's would); everything a stream is given runs at
 * once, except while the stream is captured into a CUDA graph: then launches, copies and fills
 * are recorded and run at each cudaGraphLaunch, as a real graph replays them (so host-side work
 * done during capture is not replayed, as on the device).
 *
 * Errors follow the device's rules where the backend depends on them: a trap in a kernel is a
 * sticky cudaErrorLaunchFailure that every later call returns; a bad launch configuration or copy
 * is an ordinary error that cudaGetLastError returns once. Events read the emulated device's
 * clock, which each operation advances by a cost of its own (kernels a nanosecond per thread,
 * GEMMs and convolutions by their FLOPs), so timed choices are deterministic. cuBLAS: handles and
 * the GEMMs, computed naively in double. cuDNN: cuemu_cudnn.cc. */
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "tests/cuemu/cuemu.h"
#include "tests/cuemu/cuemu_internal.h"

struct CUgraph_st {
    std::vector<std::function<cudaError_t()>> ops;
};
struct CUgraphExec_st {
    std::vector<std::function<cudaError_t()>> ops;
};
struct CUstream_st {
    CUgraph_st *capture = nullptr; /* recording into this graph */
    int device = 0;                /* the device current when it was made */
};
struct cublasContext {
    cudaStream_t stream;
    cublasMath_t math;
};

namespace {

std::map<const char *, size_t> g_allocs; /* device allocations: start -> bytes */
/* Allocations from this size on are mapped pages: the convolution search asks for up to 1 GiB of
 * workspace it hardly touches, which the sanitizer's allocator would poison and quarantine at
 * every search. Smaller ones are exact-size heap blocks with redzones. */
const size_t kMapFrom = (size_t)64 << 20;
cudaError_t g_sticky = cudaSuccess;     /* a kernel trapped: the context is lost */
cudaError_t g_last = cudaSuccess;       /* the last ordinary error */
int g_capturing;                        /* streams being captured */
double g_clock_ms;                      /* the emulated device's clock (what events read) */
int g_device;                           /* cudaSetDevice's */

cudaError_t fail(cudaError_t e)
{
    if (e != cudaSuccess) g_last = e;
    return e;
}

} // namespace

namespace cuemu {

int stream_device(cudaStream_t st) { return st ? st->device : g_device; }
int current_device() { return g_device; }

bool device_range(const void *p, size_t n)
{
    const char *c = (const char *)p;
    auto it = g_allocs.upper_bound(c);
    if (it == g_allocs.begin()) return false;
    --it;
    return c >= it->first && c + n <= it->first + it->second;
}

double clock_scale()
{
    const char *f = getenv("CUEMU_CLOCK_SCALE");
    double v = f ? atof(f) : 1.0;
    return v > 0 ? v : 1.0;
}

cudaError_t submit(cudaStream_t st, double cost_ms, std::function<cudaError_t()> op)
{
    if (g_sticky) return g_sticky;
    cost_ms *= clock_scale();
    auto timed = [cost_ms, op]() {
        g_clock_ms += cost_ms;
        return op();
    };
    if (st && st->capture) {
        st->capture->ops.push_back(timed);
        return cudaSuccess;
    }
    cudaError_t e = timed();
    if (e == cudaErrorLaunchFailure) g_sticky = e;
    return fail(e);
}

void launch(const cfg &c, body_fn body, void *state, void (*free_state)(void *))
{
    std::shared_ptr<void> owned(state, free_state);
    /* as on the device: a launch into another device's stream is refused */
    if (c.stream && c.stream->device != g_device) {
        fail(cudaErrorInvalidResourceHandle);
        return;
    }
    cfg cc = c;
    /* a nanosecond per thread: kernels cost something on the emulated clock */
    double threads = (double)c.grid.x * c.grid.y * c.grid.z * c.block.x * c.block.y * c.block.z;
    submit(c.stream, threads * 1e-6,
           [cc, body, owned]() { return run_now(cc, body, owned.get()); });
}

} // namespace cuemu

using cuemu::device_range;
using cuemu::submit;

extern "C" {

/* ---- device and errors ---- */
/* One emulated GPU, or CUEMU_DEVICES of them (1 to 8; data-parallel replicas' tests). They
 * share the one memory and clock: a device only says which one is current. */
static int device_count()
{
    const char *n = getenv("CUEMU_DEVICES");
    int v = n ? atoi(n) : 1;
    return v >= 1 && v <= 8 ? v : 1;
}

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = device_count();
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
    g_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    *device = g_device;
    return cudaSuccess;
}

/* The emulated cards: what the convolution choices kept on disk are filed under. */
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "cuemu emulated GPU");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    if (g_sticky) return g_sticky;
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return g_sticky ? g_sticky : g_last; }

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    default: return "cudaError (emulated)";
    }
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure (a kernel trapped)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    default: return "error (emulated)";
    }
}

/* ---- memory ---- */
/* The device's memory: 80 GiB, or CUEMU_DEVICE_MB megabytes (tests of running out use it). */
static size_t device_total()
{
    const char *mb = getenv("CUEMU_DEVICE_MB");
    return mb && atoll(mb) > 0 ? (size_t)atoll(mb) << 20 : (size_t)80 << 30;
}

static size_t device_used()
{
    size_t used = 0;
    for (const auto &a : g_allocs) used += a.second;
    return used;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    if (g_sticky) return g_sticky;
    /* the capture mode the backend uses forbids allocating while this thread captures */
    if (g_capturing) return fail(cudaErrorStreamCaptureUnsupported);
    if (bytes > device_total() - device_used()) return fail(cudaErrorMemoryAllocation);
    void *q = nullptr;
    if (bytes >= kMapFrom) {
        q = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (q == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
    } else if (posix_memalign(&q, 256, bytes ? bytes : 1) != 0) {
        return fail(cudaErrorMemoryAllocation);
    }
    g_allocs[(const char *)q] = bytes ? bytes : 1;
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    auto it = g_allocs.find((const char *)p);
    if (it == g_allocs.end()) return fail(cudaErrorInvalidValue);
    if (it->second >= kMapFrom) munmap(p, it->second);
    else free(p);
    g_allocs.erase(it);
    return cudaSuccess;
}

/* Free is what the allocations leave. */
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    *total = device_total();
    *free_bytes = *total - device_used();
    return g_sticky;
}

/* Page-locked host memory: ordinary heap blocks, remembered so that cudaPointerGetAttributes
 * says what they are (the backend waits for copies from them, as it must on the device). */
static std::map<const void *, size_t> g_pinned;

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    if (g_sticky) return g_sticky;
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return fail(cudaErrorMemoryAllocation);
    g_pinned[*p] = bytes;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
    if (!p) return cudaSuccess;
    if (!g_pinned.erase(p)) return fail(cudaErrorInvalidValue);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p)
{
    memset(a, 0, sizeof *a);
    a->type = device_range(p, 1) ? cudaMemoryTypeDevice
              : g_pinned.count(p) ? cudaMemoryTypeHost
                                  : cudaMemoryTypeUnregistered;
    if (a->type == cudaMemoryTypeDevice) a->devicePointer = (void *)p;
    if (a->type == cudaMemoryTypeHost) a->hostPointer = (void *)p;
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                            cudaStream_t st)
{
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (n && ((dst_dev && !device_range(dst, n)) || (src_dev && !device_range(src, n)) ||
              kind == cudaMemcpyHostToHost || kind == cudaMemcpyDefault))
        return fail(cudaErrorInvalidValue);
    if (st && st->capture && (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToHost))
        return fail(cudaErrorStreamCaptureUnsupported); /* pageable host memory in a graph */
    return submit(st, (double)n * 1e-9, [=]() {
        memmove(dst, src, n);
        return cudaSuccess;
    });
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t st)
{
    if (n && !device_range(dst, n)) return fail(cudaErrorInvalidValue);
    return submit(st, (double)n * 1e-9, [=]() {
        memset(dst, value, n);
        return cudaSuccess;
    });
}

/* ---- streams and graphs ---- */
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned int)
{
    *st = new CUstream_st();
    (*st)->device = g_device;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t st)
{
    delete st;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t st)
{
    if (st && st->capture) return fail(cudaErrorStreamCaptureUnsupported);
    return g_sticky;
}

cudaError_t cudaStreamQuery(cudaStream_t st) /* launches ran when queued: never busy */
{
    if (st && st->capture) return fail(cudaErrorStreamCaptureUnsupported);
    return g_sticky;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t st, enum cudaStreamCaptureMode)
{
    if (!st || st->capture) return fail(cudaErrorIllegalState);
    st->capture = new CUgraph_st();
    g_capturing++;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t st, cudaGraph_t *g)
{
    if (!st || !st->capture) return fail(cudaErrorIllegalState);
    *g = st->capture;
    st->capture = nullptr;
    g_capturing--;
    return g_sticky;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long)
{
    *exec = new CUgraphExec_st{g->ops};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t st)
{
    if (st && st->capture) return fail(cudaErrorStreamCaptureUnsupported);
    for (auto &op : exec->ops) {
        cudaError_t e = submit(st, 0.0, op);
        if (e) return e;
    }
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    delete g;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e)
{
    delete e;
    return cudaSuccess;
}

/* ---- cuBLAS: handles and the single-precision GEMM ---- */
cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value)
{
    *value = type == MAJOR_VERSION ? CUBLAS_VER_MAJOR : type == MINOR_VERSION ? CUBLAS_VER_MINOR
                                                                              : CUBLAS_VER_PATCH;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasCreate_v2(cublasHandle_t *h)
{
    *h = new cublasContext();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t st)
{
    h->stream = st;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void *ws, size_t bytes)
{
    return !bytes || device_range(ws, bytes) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t math)
{
    h->math = math;
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "cuBLAS error (emulated)";
}

/* C = alpha op(A) op(B) + beta C, column-major: op(A) m x k, op(B) k x n, C m x n, elements of
 * types ta/tb/tc (fp32 or bf16), computed in double and rounded once; with tf32, the products'
 * fp32 operands are first rounded to TF32 as the tensor cores read them. */
static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t opa, cublasOperation_t opb, int m,
                           int n, int k, float alpha, const void *A, cudaDataType ta, int lda,
                           const void *B, cudaDataType tb, int ldb, float beta, void *C,
                           cudaDataType tc, int ldc, bool tf32)
{
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (h->stream && h->stream->device != g_device) return CUBLAS_STATUS_EXECUTION_FAILED;
    for (cudaDataType t : {ta, tb, tc})
        if (t != CUDA_R_32F && t != CUDA_R_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;
    bool at = opa != CUBLAS_OP_N, bt = opb != CUBLAS_OP_N;
    if (lda < (at ? k : m) || ldb < (bt ? n : k) || ldc < m || lda < 1 || ldb < 1 || ldc < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    /* Every element the call may touch must be device memory (host pointers fault there). */
    auto spans = [](const void *p, cudaDataType t, size_t cols, size_t ld, size_t rows) {
        return device_range(p, ((cols - 1) * ld + rows) * cuemu::elem_size(t));
    };
    if ((k && (!spans(A, ta, at ? m : k, lda, at ? k : m) ||
               !spans(B, tb, bt ? k : n, ldb, bt ? n : k))) ||
        !spans(C, tc, n, ldc, m))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    cudaError_t e = submit(h->stream, 2e-9 * m * n * k, [=]() {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double s = 0.0;
                for (int p = 0; p < k; p++) {
                    size_t ia = at ? (size_t)i * lda + p : (size_t)p * lda + i;
                    size_t ib = bt ? (size_t)p * ldb + j : (size_t)j * ldb + p;
                    float a = cuemu::load(A, ta, ia), b = cuemu::load(B, tb, ib);
                    if (tf32) a = cuemu::tf32(a), b = cuemu::tf32(b);
                    s += (double)a * b;
                }
                size_t ic = (size_t)j * ldc + i;
                /* beta == 0: C is not read (it may hold NaN), as cuBLAS documents */
                double c = beta == 0.0f ? 0.0 : (double)beta * cuemu::load(C, tc, ic);
                cuemu::store(C, tc, ic, (float)(alpha * s + c));
            }
        return cudaSuccess;
    });
    return e ? CUBLAS_STATUS_EXECUTION_FAILED : CUBLAS_STATUS_SUCCESS;
}

/* Host pointer mode: alpha and beta are read at the call. */
cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                              int n, int k, const float *alpha, const float *A, int lda,
                              const float *B, int ldb, const float *beta, float *C, int ldc)
{
    return gemm(h, ta, tb, m, n, k, *alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, *beta, C,
                CUDA_R_32F, ldc, h->math == CUBLAS_TF32_TENSOR_OP_MATH);
}

/* Compute types with fp32 scaling factors only (what conv_gemm.c passes). */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                            int lda, const void *B, cudaDataType Btype, int ldb, const void *beta,
                            void *C, cudaDataType Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t)
{
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32 &&
        compute != CUBLAS_COMPUTE_32F_FAST_16BF)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32 ||
                (compute == CUBLAS_COMPUTE_32F && h->math == CUBLAS_TF32_TENSOR_OP_MATH);
    return gemm(h, ta, tb, m, n, k, *(const float *)alpha, A, Atype, lda, B, Btype, ldb,
                *(const float *)beta, C, Ctype, ldc, tf32 && Atype == CUDA_R_32F);
}

/* `batch` GEMMs of cublasGemmEx, matrix i at A + i * sa elements (likewise B, C). */
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long sa, const void *B,
                                          cudaDataType Btype, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long sc, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo)
{
    if (batch < 0 || sa < 0 || sb < 0 || sc < 0) return CUBLAS_STATUS_INVALID_VALUE;
    for (int i = 0; i < batch; i++) {
        cublasStatus_t s = cublasGemmEx(
            h, ta, tb, m, n, k, alpha, (const char *)A + i * sa * cuemu::elem_size(Atype), Atype,
            lda, (const char *)B + i * sb * cuemu::elem_size(Btype), Btype, ldb, beta,
            (char *)C + i * sc * cuemu::elem_size(Ctype), Ctype, ldc, compute, algo);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- events: read the emulated clock ---- */
struct CUevent_st {
    double ms = -1;
};

cudaError_t cudaEventCreate(cudaEvent_t *ev)
{
    *ev = new CUevent_st();
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t ev)
{
    delete ev;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t st)
{
    return submit(st, 0.0, [ev]() {
        ev->ms = g_clock_ms;
        return cudaSuccess;
    });
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return g_sticky; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    if (a->ms < 0 || b->ms < 0) return fail(cudaErrorInvalidResourceHandle);
    *ms = (float)(b->ms - a->ms);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return g_sticky; }

} /* extern "C" */
