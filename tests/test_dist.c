/* Data parallelism between cpu replicas (runtime/dist.h), the reference of the GPUs' NCCL path
 * (test_dist_cuda.c): the averaged step against one session taking the batches in turn, and the
 * clear errors of what cannot be a group. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nets/nets.h"
#include "runtime/dist.h"
#include "tests/dist_case.h"
#include "tests/harness.h"

static mm_status fail_on_rank_1(int rank, void *arg)
{
    int *ran = arg;
    ran[rank] = 1;
    if (rank == 1) return mm_fail(MM_ERR_IO, "rank %d could not read its batch", rank);
    return MM_OK;
}

/* Every rank of bes[3] runs though rank 1 fails, and its failure comes back with its message. */
static void check_failure_comes_back(mm_backend **bes)
{
    int ran[3] = {0, 0, 0};
    mm_clear_error();
    CHECK(mm_replicas_each(bes, 3, fail_on_rank_1, ran) == MM_ERR_IO);
    CHECK(ran[0] && ran[1] && ran[2]);
    CHECK_MSG(!strcmp(mm_last_error(), "rank 1 could not read its batch"), "%s",
              mm_last_error());
}

/* Which thread ran each rank. */
static mm_status note_thread(int rank, void *arg)
{
    ((pthread_t *)arg)[rank] = pthread_self();
    return MM_OK;
}

/* Whether mm_replicas_each ran ranks 1.. of bes[3] on threads of their own (else all here). */
static bool ran_in_threads(mm_backend **bes)
{
    pthread_t t[3];
    CHECK(mm_replicas_each(bes, 3, note_thread, t) == MM_OK);
    CHECK(pthread_equal(t[0], pthread_self()));
    bool apart = !pthread_equal(t[1], t[0]) && !pthread_equal(t[2], t[0]) &&
                 !pthread_equal(t[1], t[2]);
    CHECK(apart || (pthread_equal(t[1], t[0]) && pthread_equal(t[2], t[0])));
    return apart;
}

MM_TEST(dist_cpu_replicas_match_one_session)
{
    dist_check_against_one_session("cpu", MM_PRECISION_FP32, 2, 1e-6);
    dist_check_against_one_session("cpu", MM_PRECISION_FP32, 3, 1e-6);
}

/* The same with each replica's work from its own thread, as on GPUs (which this machine may
 * not have): sessions and backends side by side, failures carried back across threads. */
MM_TEST(dist_cpu_replicas_in_threads)
{
    setenv("MM_REPLICA_THREADS", "1", 1);
    dist_check_against_one_session("cpu", MM_PRECISION_FP32, 3, 1e-6);
    dist_check_side_by_side("cpu", MM_PRECISION_FP32, 3, 0); /* the cpu's are bitwise */
    mm_backend *bes[3];
    CHECK(mm_replicas_open("cpu", MM_PRECISION_FP32, 3, bes) == MM_OK);
    CHECK(ran_in_threads(bes));
    check_failure_comes_back(bes);
    unsetenv("MM_REPLICA_THREADS");
    CHECK(!ran_in_threads(bes)); /* the cpu's default: in turn */
    for (int r = 0; r < 3; r++) mm_backend_destroy(bes[r]);
}

static mm_status build(mm_backend *be, const char *trainable, mm_model *m, mm_session *s)
{
    mm_model_config cfg = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_RESNET50);
    cfg.width_div = 16;
    cfg.height = cfg.width = 32;
    cfg.training = true;
    cfg.trainable = trainable;
    MM_TRY(mm_model_build(m, &cfg));
    return mm_session_init(s, m->g, be, 2);
}

MM_TEST(dist_comm_refuses_different_models)
{
    mm_backend *bes[2];
    CHECK(mm_replicas_open("cpu", MM_PRECISION_FP32, 2, bes) == MM_OK);
    mm_model m[2];
    mm_session s[2];
    CHECK(build(bes[0], NULL, &m[0], &s[0]) == MM_OK);
    CHECK(build(bes[1], "fc.", &m[1], &s[1]) == MM_OK);
    mm_session *ss[2] = {&s[0], &s[1]};
    mm_comm *c = NULL;
    CHECK(mm_comm_create(ss, 2, &c) == MM_ERR_ARG);
    CHECK(c == NULL);
    CHECK_MSG(strstr(mm_last_error(), "replica 1's model differs"), "%s", mm_last_error());
    for (int r = 0; r < 2; r++) {
        mm_session_free(&s[r]);
        mm_model_free(&m[r]);
        mm_backend_destroy(bes[r]);
    }
}

MM_TEST(dist_each_runs_every_rank_and_returns_the_failure)
{
    mm_backend *bes[3];
    CHECK(mm_replicas_open("cpu", MM_PRECISION_FP32, 3, bes) == MM_OK);
    check_failure_comes_back(bes);
    for (int r = 0; r < 3; r++) mm_backend_destroy(bes[r]);
}

/* Where there are no GPUs (or no CUDA or NCCL in the build), asking for two is one line. */
MM_TEST(dist_replicas_without_gpus_say_so)
{
    if (mm_cuda_available(NULL, 0)) MM_SKIP("a GPU is here");
    mm_backend *bes[2];
    CHECK(mm_replicas_open("cuda", MM_PRECISION_FP32, 2, bes) == MM_ERR_DEVICE);
    CHECK_MSG(strstr(mm_last_error(), "--replicas 2: ") || strstr(mm_last_error(), "--device cuda"),
              "%s", mm_last_error());
}

MM_TEST(dist_replicas_open_errors_name_the_flag)
{
    mm_backend *bes[MM_MAX_REPLICAS];
    struct {
        const char *device;
        int n;
        const char *says;
    } bad[] = {
        {"cpu", 0, "--replicas 0"},
        {"cpu", MM_MAX_REPLICAS + 1, "--replicas"},
        {"meta", 2, "meta"},
        {"cuda:x", 2, "--device cuda:x"},
        {"tpu", 2, "--device tpu"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(mm_replicas_open(bad[i].device, MM_PRECISION_FP32, bad[i].n, bes) == MM_ERR_ARG);
        CHECK_MSG(strstr(mm_last_error(), bad[i].says), "%s %d: %s", bad[i].device, bad[i].n,
                  mm_last_error());
    }
}
