/* Kernel launches of the CUDA emulator (cuemu.h): blocks one after another, the threads of a
 * block as fibers that run until they finish or reach __syncthreads(); when every live thread
 * waits there, all go on. Even blocks run their threads in index order, odd blocks in reverse,
 * so a kernel that reads shared memory without the barrier it needs computes something else in
 * half its blocks; and every other launch runs its blocks last to first.
 *
 * A fiber is one stack per thread index, made once (makecontext) and kept for every later block
 * and launch: its loop runs the kernel body for one thread, then yields. Switches are the
 * compiler's __builtin_setjmp/__builtin_longjmp: no signal-mask system call (swapcontext makes
 * one) and nothing for AddressSanitizer to intercept (its longjmp interceptor costs about a
 * microsecond). Like all of the emulator this file is built without the sanitizers
 * (cuemu.cmake; instrumented, a switch cost a microsecond) and its switches are not announced to
 * AddressSanitizer: the kernels' instrumented frames poison and unpoison their own redzones on
 * whatever stack they run, and a stack whose frames are left without returning (a trap abandons
 * a block) is unpoisoned before it is reused. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <vector>

#include "tests/cuemu/cuemu.h"
#include "tests/cuemu/cuemu_internal.h"

/* AddressSanitizer's, when the kernels run with it (this file is built without it). */
extern "C" void __asan_unpoison_memory_region(void const volatile *addr, size_t size)
    __attribute__((weak));

namespace cuemu {

uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;

namespace {

/* Generous: sanitizers enlarge frames, and the kernels keep small per-thread arrays. */
const size_t kStack = 256 * 1024;

/* A __builtin_setjmp buffer: frame pointer, resume address, stack pointer and spare words. */
typedef void *jump_buf[5];

struct fiber {
    jump_buf resume;       /* where the suspended fiber goes on */
    ucontext_t boot;       /* its first entry (fiber_loop on its stack) */
    char *stack = nullptr;
    bool started = false;  /* its loop runs (else the next entry boots it) */
    bool done = false, waiting = false;
    uint3 tid;
};

/* The launch in progress (launches do not nest). */
struct launch_state {
    body_fn body = nullptr;
    void *state = nullptr;
    bool trapped = false;
    std::vector<char> smem;
    std::vector<void *> shared_seen; /* static shared arrays this block has reached */
    size_t shared_static;            /* their bytes */
} g_launch;
bool g_running;

/* By linear thread index, kept for the process (never destroyed: threads of the process's last
 * launches may still sit in them at exit). */
std::vector<fiber *> &g_fibers = *new std::vector<fiber *>();
fiber *g_cur;
jump_buf g_sched;              /* where the scheduler goes on */

struct trap_signal {};

/* (__builtin_longjmp may not share a function with the __builtin_setjmp it could return to.) */
__attribute__((noinline, noreturn)) void jump(jump_buf b) { __builtin_longjmp(b, 1); }

/* Back to the scheduler from the running fiber; returns when the fiber is entered again. */
__attribute__((noinline)) void yield_to_scheduler()
{
    fiber *f = g_cur;
    if (__builtin_setjmp(f->resume) == 0) {
        jump(g_sched);
    }
}

/* Every fiber's whole life: one kernel body per entry, forever. */
void fiber_loop()
{
    for (;;) {
        try {
            g_launch.body(g_launch.state);
        } catch (const trap_signal &) {
            g_launch.trapped = true;
        }
        g_cur->done = true;
        yield_to_scheduler();
    }
}

/* From the scheduler into fiber f, until it yields. */
__attribute__((noinline)) void enter(fiber *f)
{
    g_cur = f;
    thread_idx = f->tid;
    if (__builtin_setjmp(g_sched) == 0) {
        if (!f->started) {
            f->started = true;
            setcontext(&f->boot);
        }
        jump(f->resume);
    }
}

fiber *make_fiber()
{
    fiber *f = new fiber();
    void *p = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("cuemu: fiber stack");
        abort();
    }
    f->stack = (char *)p;
    getcontext(&f->boot);
    f->boot.uc_stack.ss_sp = f->stack;
    f->boot.uc_stack.ss_size = kStack;
    f->boot.uc_link = nullptr;
    makecontext(&f->boot, fiber_loop, 0);
    return f;
}

void run_block(unsigned n, bool reverse)
{
    for (unsigned i = 0; i < n; i++) g_fibers[i]->done = g_fibers[i]->waiting = false;
    for (;;) {
        bool any_waiting = false;
        for (unsigned k = 0; k < n && !g_launch.trapped; k++) {
            fiber *f = g_fibers[reverse ? n - 1 - k : k];
            if (f->done) continue;
            f->waiting = false;
            enter(f);
            any_waiting |= f->waiting;
        }
        if (g_launch.trapped) {
            /* A trap stops the grid, as on the device; fibers left inside the kernel start
             * afresh next time. */
            for (unsigned i = 0; i < n; i++) {
                fiber *f = g_fibers[i];
                if (f->done) continue;
                f->started = false;
                if (__asan_unpoison_memory_region) __asan_unpoison_memory_region(f->stack, kStack);
            }
            return;
        }
        if (!any_waiting) return;
    }
}

} // namespace

void syncthreads()
{
    g_cur->waiting = true;
    yield_to_scheduler();
}

void trap() { throw trap_signal(); }

void *dyn_smem() { return g_launch.smem.empty() ? nullptr : g_launch.smem.data(); }

void shared_begin(void *p, size_t bytes)
{
    for (void *q : g_launch.shared_seen)
        if (q == p) return;
    g_launch.shared_seen.push_back(p);
    memset(p, 0xFF, bytes); /* NaN in every float and double */
    /* A block may take 48 KiB of shared memory, static and dynamic together, unless the kernel
     * was allowed more with cudaFuncSetAttribute (which no kernel of ours asks for). */
    g_launch.shared_static += bytes;
    if (g_launch.shared_static + g_launch.smem.size() > 48 * 1024) {
        fprintf(stderr, "cuemu: a block takes %zu bytes of shared memory, over the 48 KiB a GPU "
                "gives a kernel without cudaFuncSetAttribute\n",
                g_launch.shared_static + g_launch.smem.size());
        trap();
    }
}

cudaError_t run_now(const cfg &c, body_fn body, void *state)
{
    if (g_running) {
        fprintf(stderr, "cuemu: a kernel launched a kernel (not supported)\n");
        abort();
    }
    unsigned nthreads = c.block.x * c.block.y * c.block.z;
    if (nthreads == 0 || nthreads > 1024 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 ||
        c.grid.y > 65535 || c.grid.z > 65535 || c.smem > 48 * 1024)
        return cudaErrorInvalidConfiguration;
    while (g_fibers.size() < nthreads) g_fibers.push_back(make_fiber());
    for (unsigned i = 0; i < nthreads; i++)
        g_fibers[i]->tid = make_uint3(i % c.block.x, i / c.block.x % c.block.y,
                                      i / (c.block.x * c.block.y));
    g_running = true;
    g_launch.body = body;
    g_launch.state = state;
    g_launch.trapped = false;
    block_dim = c.block;
    grid_dim = c.grid;
    /* Blocks run in index order in even launches and in reverse in odd ones: a kernel whose
     * blocks depend on each other's order (they may run in any order, or at once) computes
     * something else in one of them. */
    static uint64_t launches;
    bool backwards = (launches++ & 1) != 0;
    uint64_t nblocks = (uint64_t)c.grid.x * c.grid.y * c.grid.z;
    for (uint64_t b = 0; b < nblocks && !g_launch.trapped; b++) {
        uint64_t i = backwards ? nblocks - 1 - b : b;
        block_idx = make_uint3((unsigned)(i % c.grid.x), (unsigned)(i / c.grid.x % c.grid.y),
                               (unsigned)(i / ((uint64_t)c.grid.x * c.grid.y)));
        /* shared memory starts as garbage on the device: NaN here */
        g_launch.smem.assign(c.smem, (char)0xFF);
        g_launch.shared_seen.clear();
        g_launch.shared_static = 0;
        run_block(nthreads, (i & 1) != 0);
    }
    g_running = false;
    return g_launch.trapped ? cudaErrorLaunchFailure : cudaSuccess;
}

} // namespace cuemu
