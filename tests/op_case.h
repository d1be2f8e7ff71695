/* The op-table harness of the CUDA tests (tests/test_ops_cuda*.c): one node with its values, run
 * on the CPU backend (the executable specification) and on the CUDA backend, node by node through
 * the backend tables, compared with tolerances per precision: fp32 tight, tf32 ~1e-2 for
 * convolutions and products, bf16 looser (inputs that bf16 mode stores as bf16 are rounded to
 * bf16 for both backends, so only the arithmetic differs). */
#ifndef MM_OP_CASE_H
#define MM_OP_CASE_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/graph.h"
#include "tests/harness.h"

#define REQUIRE_GPU()                                                                      \
    do {                                                                                   \
        if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");                                \
    } while (0)

/* The backends, made once per process; the three CUDA precisions in test order. */
mm_backend *cpu_backend(void);
mm_backend *cuda_backend(mm_precision p);
/* cuda_backend() gives deterministic backends (backend.h deterministic) while this is set: a
 * second set, whose convolutions are chosen in that mode. */
extern bool tc_deterministic;
extern const mm_precision precisions[3];

/* bf16 on the host (round to nearest even, as the device's __float2bfloat16_rn). */
uint16_t f2bf(float f);
float bf2f(uint16_t b);
float round_bf16(float f);

/* ---- one node with its values ---- */
#define MAXV 12

typedef enum tol_kind {
    TOL_EXACT,  /* element-wise: the same float operations */
    TOL_REDUCE, /* sums in another order: batch norm, pooling, losses */
    TOL_GEMM,   /* convolutions and matrix products: TF32 / bf16 tensor cores */
} tol_kind;

typedef enum init_kind {
    INIT_RAND,   /* uniform in [lo, hi) */
    INIT_NAN,    /* outputs that must be written everywhere */
    INIT_LABELS, /* int32 in [0, hi) */
    INIT_TIES,   /* uniform values quantised to quarters: many equal maxima */
    INIT_NANS,   /* INIT_TIES with every 7th value NaN (max pooling's NaN rule) */
    INIT_TAPS,   /* u8 max-pool taps: a random in-image window position per output
                    (node.p.pool's windows) */
} init_kind;

typedef struct tcase {
    mm_value v[MAXV];
    bool act[MAXV]; /* stored as bf16 in bf16 mode (the planner's activations) */
    init_kind init[MAXV];
    float lo[MAXV], hi[MAXV];
    int nv;
    mm_node node;
    bool training;
    /* CUDA in-place runs: output k shares the buffer of input slot alias_out[k] (-1: none) */
    int alias_out[MM_NODE_MAX_OUT];
    tol_kind kind;
    uint64_t seed;
} tcase;

#define SHAPE(...)                                                                         \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

void tc_init(tcase *tc, mm_op op, tol_kind kind, uint64_t seed);
int tc_value(tcase *tc, mm_value_kind kind, mm_dtype dtype, bool act, init_kind init, float lo,
             float hi, int ndim, const int64_t *shape);
/* Shorthands (with SHAPE(...)): an activation (bf16 in bf16 mode), an fp32 parameter or
 * statistic, an output, a parameter gradient (starts non-zero: the op accumulates into it). */
int act_in(tcase *tc, float lo, float hi, int ndim, const int64_t *shape);
int f32_in(tcase *tc, float lo, float hi, int ndim, const int64_t *shape);
int act_out(tcase *tc, int ndim, const int64_t *shape);
int f32_out(tcase *tc, int ndim, const int64_t *shape);
int grad_out(tcase *tc, int ndim, const int64_t *shape);
void tc_in(tcase *tc, int id);
void tc_out(tcase *tc, int id);

/* ---- running cases ---- */
int64_t value_numel(const mm_value *v);
/* Initial contents (as floats) of every value, bf16-rounded where the CUDA run stores bf16. */
float **tc_make_init(const tcase *tc, bool bf16);
void free_arrays(float **a, int n);
mm_dtype stored_dtype(const tcase *tc, int i, bool bf16);
/* Host floats -> the bytes of `dtype`, and back. */
void *pack(const float *h, int64_t n, mm_dtype dtype);
void unpack(float *h, const void *b, int64_t n, mm_dtype dtype);
/* Runs the node on `be` from `init`; returns every value's final contents (see op_case.c). */
float **tc_run(const tcase *tc, mm_backend *be, float **init, bool bf16, bool alias,
               bool *clobbered);
double tolerance(tol_kind kind, mm_precision p, bool stored_bf16);
/* Runs the case on the CPU and on CUDA at every precision and compares every value. */
void tc_check(const tcase *tc, const char *name);

#endif
