/* Kernel launches of the CUDA emulator (cuemu.h): blocks one after another, the threads of a
 * block as fibers (ucontext) that run until they finish or reach __syncthreads(); when every
 * live thread waits there, all go on. Even blocks run their threads in index order, odd blocks in
 * reverse, so a kernel that reads shared memory without the barrier it needs computes something
 * else in half its blocks. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <vector>

#include "tests/cuemu/cuemu.h"
#include "tests/cuemu/cuemu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUEMU_ASAN 1
#endif
#endif
#ifdef CUEMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuemu {

uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;

namespace {

/* Generous: sanitizers enlarge frames, and the kernels keep small per-thread arrays. */
const size_t kStack = 256 * 1024;

struct fiber {
    ucontext_t ctx;
    char *stack = nullptr;
    uint3 tid;
    bool done = false, waiting = false;
};

struct block_run {
    std::vector<fiber> fibers;
    ucontext_t sched;
    fiber *cur = nullptr;
    body_fn body = nullptr;
    void *state = nullptr;
    bool trapped = false;
    std::vector<char> smem;
#ifdef CUEMU_ASAN
    void *sched_fake = nullptr;
    const void *sched_bottom = nullptr;
    size_t sched_size = 0;
#endif
};

block_run *g_run; /* the launch in progress (launches do not nest) */

struct trap_signal {};

/* Switches from the scheduler into fiber f, and back when it yields or ends. */
void enter(block_run &r, fiber &f)
{
    r.cur = &f;
    thread_idx = f.tid;
#ifdef CUEMU_ASAN
    __sanitizer_start_switch_fiber(&r.sched_fake, f.stack, kStack);
#endif
    swapcontext(&r.sched, &f.ctx);
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(r.sched_fake, nullptr, nullptr);
#endif
    r.cur = nullptr;
}

/* From the running fiber back to the scheduler; `ending`: the fiber will not run again. */
void leave(block_run &r, bool ending)
{
#ifdef CUEMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(ending ? nullptr : &fake, r.sched_bottom, r.sched_size);
#endif
    fiber *f = r.cur;
    swapcontext(&f->ctx, &r.sched);
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(fake, &r.sched_bottom, &r.sched_size);
#endif
}

void fiber_main()
{
    block_run &r = *g_run;
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &r.sched_bottom, &r.sched_size);
#endif
    try {
        r.body(r.state);
    } catch (const trap_signal &) {
        r.trapped = true;
    }
    r.cur->done = true;
    leave(r, true);
    abort(); /* a finished fiber is never resumed */
}

/* (Apart: getcontext returns twice, which would pin the caller's loop variables.) */
__attribute__((noinline)) void fiber_reset(fiber &f)
{
    f.done = f.waiting = false;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
}

void run_block(block_run &r, bool reverse)
{
    int n = (int)r.fibers.size();
    for (int i = 0; i < n; i++) fiber_reset(r.fibers[i]);
    for (;;) {
        bool any_waiting = false;
        for (int k = 0; k < n && !r.trapped; k++) {
            fiber &f = r.fibers[reverse ? n - 1 - k : k];
            if (f.done) continue;
            f.waiting = false;
            enter(r, f);
            any_waiting |= f.waiting;
        }
        /* A trap stops the grid, as on the device; the other fibers are dropped where they wait. */
        if (r.trapped || !any_waiting) return;
    }
}

} // namespace

void syncthreads()
{
    block_run &r = *g_run;
    r.cur->waiting = true;
    leave(r, false);
}

void trap() { throw trap_signal(); }

void *dyn_smem() { return g_run->smem.empty() ? nullptr : g_run->smem.data(); }

cudaError_t run_now(const cfg &c, body_fn body, void *state)
{
    if (g_run) {
        fprintf(stderr, "cuemu: a kernel launched a kernel (not supported)\n");
        abort();
    }
    unsigned nthreads = c.block.x * c.block.y * c.block.z;
    if (nthreads == 0 || nthreads > 1024 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 ||
        c.grid.y > 65535 || c.grid.z > 65535 || c.smem > 227 * 1024)
        return cudaErrorInvalidConfiguration;
    static std::vector<char *> stacks;
    while (stacks.size() < nthreads) {
        void *p = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("cuemu: fiber stack");
            abort();
        }
        stacks.push_back((char *)p);
    }
    block_run r;
    r.fibers.resize(nthreads);
    for (unsigned i = 0; i < nthreads; i++) {
        r.fibers[i].stack = stacks[i];
        r.fibers[i].tid = make_uint3(i % c.block.x, i / c.block.x % c.block.y,
                                     i / (c.block.x * c.block.y));
    }
    r.body = body;
    r.state = state;
    g_run = &r;
    block_dim = c.block;
    grid_dim = c.grid;
    uint64_t nblock = 0;
    for (unsigned z = 0; z < c.grid.z && !r.trapped; z++)
        for (unsigned y = 0; y < c.grid.y && !r.trapped; y++)
            for (unsigned x = 0; x < c.grid.x && !r.trapped; x++) {
                block_idx = make_uint3(x, y, z);
                /* shared memory starts as garbage on the device: poison it */
                r.smem.assign(c.smem, (char)0xA5);
                run_block(r, (nblock++ & 1) != 0);
            }
    g_run = nullptr;
    return r.trapped ? cudaErrorLaunchFailure : cudaSuccess;
}

} // namespace cuemu
