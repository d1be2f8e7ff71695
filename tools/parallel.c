/* Parallel for-loop over jobs with first-error propagation: see parallel.h. */
#include "parallel.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct pool {
    int n, next, done, failed;
    mm_job_fn fn;
    void *ctx;
    const char *progress;
    int show;
    mm_status status;
    char message[1024];
    pthread_mutex_t lock;
} pool;

typedef struct worker {
    pool *p;
    int thread;
} worker;

static void *run(void *arg)
{
    worker *w = arg;
    pool *p = w->p;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        int i = p->failed || p->next >= p->n ? -1 : p->next++;
        pthread_mutex_unlock(&p->lock);
        if (i < 0) break;
        mm_status st = p->fn(p->ctx, i, w->thread);
        pthread_mutex_lock(&p->lock);
        if (st != MM_OK && !p->failed) {
            p->failed = 1;
            p->status = st;
            snprintf(p->message, sizeof p->message, "%s", mm_last_error());
        }
        p->done++;
        if (p->show && (p->done == p->n || p->done % 16 == 0))
            fprintf(stderr, "\r%s: %d/%d", p->progress, p->done, p->n);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

int mm_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

mm_status mm_parallel_for(int n, int threads, mm_job_fn fn, void *ctx, const char *progress)
{
    if (n <= 0) return MM_OK;
    if (threads <= 0) threads = mm_cpu_count();
    if (threads > n) threads = n;
    if (threads > 256) threads = 256;
    pool p = {.n = n, .fn = fn, .ctx = ctx, .progress = progress};
    p.show = progress && isatty(2);
    pthread_mutex_init(&p.lock, NULL);
    worker w[256];
    pthread_t tid[256];
    int started = 0;
    for (int t = 0; t < threads; t++) {
        w[t].p = &p;
        w[t].thread = t;
        if (t == 0) continue; /* the calling thread is worker 0 */
        if (pthread_create(&tid[t], NULL, run, &w[t]) != 0) break;
        started = t;
    }
    run(&w[0]);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&p.lock);
    if (p.show) fprintf(stderr, "\n");
    if (p.failed) return mm_fail(p.status, "%s", p.message);
    return MM_OK;
}
