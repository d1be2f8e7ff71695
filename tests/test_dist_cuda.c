/* Data parallelism between GPUs (runtime/dist.h, kernels/cuda/nccl.c): replicas' NCCL-averaged
 * steps against one session that takes their batches in turn (tests/dist_case.h), in fp32 and
 * bf16; a group of one GPU (NCCL's all-reduce of one); backends of one GPU stepped from threads
 * at once against each alone; two replicas on one GPU refused.
 *
 * Without a GPU every test prints SKIPPED (no GPU); on one GPU the two-GPU test prints SKIPPED
 * (needs 2 GPUs). test_dist_cuda_emu runs them on two emulated GPUs (tests/cuemu, whose NCCL
 * refuses what would hang or fail on GPUs, and whose launches check the current device). */
#include <stdlib.h>
#include <string.h>

#include "nets/nets.h"
#include "runtime/dist.h"
#include "tests/dist_case.h"
#include "tests/harness.h"

/* Two emulated GPUs (the emulator reads CUEMU_DEVICES at every call). */
__attribute__((constructor)) static void two_emulated_gpus(void)
{
    if (mm_cuda_emulated()) setenv("CUEMU_DEVICES", "2", 1);
}

static bool have_gpus(int n)
{
    mm_backend *be = NULL;
    char name[32];
    snprintf(name, sizeof name, "cuda:%d", n - 1);
    if (mm_backend_open(name, MM_PRECISION_FP32, &be) != MM_OK) return false;
    mm_backend_destroy(be);
    return true;
}

MM_TEST(dist_cuda_one_gpu_group)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    if (!mm_nccl_compiled(NULL, 0)) MM_SKIP("built without NCCL");
    dist_check_against_one_session("cuda", MM_PRECISION_FP32, 1, 1e-4);
}

MM_TEST(dist_cuda_two_gpus_match_one_session)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    if (!mm_nccl_compiled(NULL, 0)) MM_SKIP("built without NCCL");
    if (!have_gpus(2)) MM_SKIP("needs 2 GPUs");
    dist_check_against_one_session("cuda", MM_PRECISION_FP32, 2, 1e-4);
    /* bf16: the one session may pick other convolution algorithms than the replicas on a GPU */
    dist_check_against_one_session("cuda", MM_PRECISION_BF16, 2, 3e-2);
}

/* Backends of one GPU used from threads at once (as replicas on several GPUs are; the emulator
 * runs them in turn): their searches and steps keep to themselves. */
MM_TEST(dist_cuda_backends_side_by_side)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    setenv("MM_REPLICA_THREADS", "1", 1);
    /* each backend times its own searches, so they may choose other algorithms: on an H200
     * (2026-11-27) a replica's fp32 gradients came 1.1e-4 of the largest from its batch's alone
     * so; another replica's data or scratch mixed in would be far more */
    dist_check_side_by_side("cuda", MM_PRECISION_FP32, 3, 5e-4);
    unsetenv("MM_REPLICA_THREADS");
}

MM_TEST(dist_cuda_two_replicas_on_one_gpu_refused)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    if (!mm_nccl_compiled(NULL, 0)) MM_SKIP("built without NCCL");
    mm_backend *bes[2];
    mm_model m[2];
    mm_session s[2];
    mm_model_config cfg = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_RESNET50);
    cfg.width_div = 16;
    cfg.height = cfg.width = 32;
    cfg.training = true;
    for (int r = 0; r < 2; r++) {
        CHECK(mm_backend_open("cuda:0", MM_PRECISION_FP32, &bes[r]) == MM_OK);
        mm_model_config_for_backend(&cfg, bes[r]);
        CHECK(mm_model_build(&m[r], &cfg) == MM_OK);
        CHECK(mm_session_init(&s[r], m[r].g, bes[r], 2) == MM_OK);
    }
    mm_session *ss[2] = {&s[0], &s[1]};
    mm_comm *c = NULL;
    CHECK(mm_comm_create(ss, 2, &c) == MM_ERR_ARG);
    CHECK_MSG(strstr(mm_last_error(), "both on GPU 0"), "%s", mm_last_error());
    for (int r = 0; r < 2; r++) {
        mm_session_free(&s[r]);
        mm_model_free(&m[r]);
        mm_backend_destroy(bes[r]);
    }
}
