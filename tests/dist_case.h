/* The data-parallel check shared by tests/test_dist.c (cpu replicas) and test_dist_cuda.c (GPUs,
 * NCCL; emulated as test_dist_cuda_emu): n replicas of a small ResNet50 patch classifier on
 * `device`, each fed its own batch, trained for a few steps through runtime/dist.h, against one
 * session of the same device that takes the replicas' batches one at a time from replica 0's
 * weights and Adam moments of that step: the averaged gradients must be the mean of that
 * session's gradients (taken from the same weights), the weights after Adam must be that
 * session's after Adam on the same averaged gradients (Adam scales each gradient by its own
 * size, so the mean's rounding would show unevenly), and every replica's weights, moments and
 * gradients must be the same bits as replica 0's. `rtol`: how far the averaged gradients may be
 * from the mean taken in double, relative to their largest magnitude. */
#ifndef MM_TESTS_DIST_CASE_H
#define MM_TESTS_DIST_CASE_H

#include "runtime/backend.h"

void dist_check_against_one_session(const char *device, mm_precision precision, int n,
                                    double rtol);

/* n sessions on backends of the same `device` (one GPU: no group, no NCCL), built and stepped
 * through mm_replicas_each (so from threads of their own on GPUs, or with MM_REPLICA_THREADS=1),
 * each on its own batch: each one's gradients must be one more session's on that batch, taken
 * in turn afterwards, within rtol of their largest magnitude. What it checks is that backends
 * run side by side (their algorithm searches and steps at once) keep to themselves. */
void dist_check_side_by_side(const char *device, mm_precision precision, int n, double rtol);

#endif
