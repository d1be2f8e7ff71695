/* A parallel for-loop over independent jobs (images) on POSIX threads, with tier-1 error
 * propagation: the first job that fails stops the hand-out of new jobs, the running ones finish,
 * and its status and message come back to the caller's thread. */
#ifndef MM_PARALLEL_H
#define MM_PARALLEL_H

#include "../runtime/error.h"

/* One job: i in [0, n); `thread` in [0, threads) identifies the worker (for per-thread buffers). */
typedef mm_status (*mm_job_fn)(void *ctx, int i, int thread);

/* Runs fn for every i on min(threads, n) threads (threads <= 0: one per online CPU). With
 * `progress` non-NULL and stderr a terminal, prints "<progress>: k/n" as jobs complete. */
mm_status mm_parallel_for(int n, int threads, mm_job_fn fn, void *ctx, const char *progress);

/* The number of online CPUs (at least 1). */
int mm_cpu_count(void);

#endif
