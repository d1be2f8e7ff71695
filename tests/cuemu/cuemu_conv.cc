/* The emulator's convolutions (cuemu_conv.h). */
#include "tests/cuemu/cuemu_conv.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vector>

#include "tests/cuemu/cuemu_internal.h"

namespace cuemu {

void conv_packed_strides(conv_view *v, bool nhwc)
{
    const int64_t *d = v->d;
    if (nhwc) {
        v->s[1] = 1;
        v->s[3] = d[1];
        v->s[2] = d[3] * d[1];
        v->s[0] = d[2] * d[3] * d[1];
    } else {
        v->s[3] = 1;
        v->s[2] = d[3];
        v->s[1] = d[2] * d[3];
        v->s[0] = d[1] * d[2] * d[3];
    }
}

size_t conv_view_bytes(const conv_view &v)
{
    int64_t last = 0;
    for (int i = 0; i < 4; i++) {
        if (v.d[i] < 1) return 0;
        last += (v.d[i] - 1) * v.s[i];
    }
    return (size_t)(last + 1) * elem_size(v.t);
}

bool conv_consistent(const conv_problem &p)
{
    const conv_view &x = p.x, &w = p.w, &y = p.y;
    for (const conv_view *v : {&x, &w, &y}) {
        if (v->t != x.t || (v->t != CUDA_R_32F && v->t != CUDA_R_16BF)) return false;
        for (int i = 0; i < 4; i++)
            if (v->d[i] < 1 || v->s[i] < 1) return false;
    }
    for (int i = 0; i < 2; i++)
        if (p.pad[i] < 0 || p.stride[i] < 1 || p.dil[i] < 1) return false;
    int64_t oh = (x.d[2] + 2 * p.pad[0] - p.dil[0] * (w.d[2] - 1) - 1) / p.stride[0] + 1;
    int64_t ow = (x.d[3] + 2 * p.pad[1] - p.dil[1] * (w.d[3] - 1) - 1) / p.stride[1] + 1;
    return y.d[0] == x.d[0] && y.d[1] == w.d[0] && w.d[1] == x.d[1] && y.d[2] == oh &&
           y.d[3] == ow;
}

double conv_macs(const conv_problem &p)
{
    return (double)p.y.d[0] * p.y.d[1] * p.y.d[2] * p.y.d[3] * p.w.d[1] * p.w.d[2] * p.w.d[3];
}

namespace {

int64_t at(const conv_view &v, int64_t a, int64_t b, int64_t i, int64_t j)
{
    return a * v.s[0] + b * v.s[1] + i * v.s[2] + j * v.s[3];
}

/* The elements of an operand's span as double, TF32-rounded first when asked (fp32 only). */
std::vector<double> widen(const void *ptr, const conv_view &v, bool tf32)
{
    size_t n = conv_view_bytes(v) / elem_size(v.t);
    std::vector<double> out(n);
    for (size_t i = 0; i < n; i++) {
        float f = load(ptr, v.t, i);
        out[i] = tf32 && v.t == CUDA_R_32F ? cuemu::tf32(f) : f;
    }
    return out;
}

/* The three directions are one sum over the same terms: every output pixel (b, oi, oj), filter
 * tap (r, q) inside the image, output channel k and input channel c pair x[b,c,i,j],
 * w[k,c,r,q] and y[b,k,oi,oj]; direction 0 sums x * w into y, 1 sums dy * w into dx, 2 sums
 * x * dy into dw. acc is indexed like the output. */
template <int Dir>
void accumulate(std::vector<double> &acc, const conv_problem &p, const std::vector<double> &xv,
                const std::vector<double> &wv, const std::vector<double> &yv)
{
    const conv_view &x = p.x, &w = p.w, &y = p.y;
    const int64_t xc = x.s[1], wc = w.s[1];
    for (int64_t b = 0; b < y.d[0]; b++)
        for (int64_t oi = 0; oi < y.d[2]; oi++)
            for (int64_t oj = 0; oj < y.d[3]; oj++)
                for (int64_t r = 0; r < w.d[2]; r++)
                    for (int64_t q = 0; q < w.d[3]; q++) {
                        int64_t i = oi * p.stride[0] - p.pad[0] + r * p.dil[0];
                        int64_t j = oj * p.stride[1] - p.pad[1] + q * p.dil[1];
                        if (i < 0 || i >= x.d[2] || j < 0 || j >= x.d[3]) continue;
                        const int64_t x0 = at(x, b, 0, i, j);
                        for (int64_t k = 0; k < w.d[0]; k++) {
                            const int64_t w0 = at(w, k, 0, r, q), yi = at(y, b, k, oi, oj);
                            if (Dir == 0) {
                                double s = 0;
                                for (int64_t c = 0; c < w.d[1]; c++)
                                    s += xv[x0 + c * xc] * wv[w0 + c * wc];
                                acc[yi] += s;
                            } else if (Dir == 1) {
                                for (int64_t c = 0; c < w.d[1]; c++)
                                    acc[x0 + c * xc] += yv[yi] * wv[w0 + c * wc];
                            } else {
                                for (int64_t c = 0; c < w.d[1]; c++)
                                    acc[w0 + c * wc] += xv[x0 + c * xc] * yv[yi];
                            }
                        }
                    }
}

bool same(const conv_view &a, const conv_view &b)
{
    for (int i = 0; i < 4; i++)
        if (a.d[i] != b.d[i] || a.s[i] != b.s[i]) return false;
    return a.t == b.t;
}

uint64_t fnv1a(const void *p, size_t n, uint64_t h = 1469598103934665603ull)
{
    const unsigned char *c = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

/* The sums of the last convolution computed. When the next is the same one (problem, direction,
 * operands, rounding) on inputs whose bytes hash the same, its sums are these: the algorithm
 * search times one convolution several times on the same operands, which the emulator need not
 * sum again (the output is still written, with the scaling of each call). */
struct memo {
    bool valid = false;
    conv_problem p;
    int dir;
    void *x, *w, *y;
    bool tf32;
    uint64_t in_hash;
    std::vector<double> acc;
} g_memo;

bool memo_key(const memo &m, const conv_problem &p, int dir, void *x, void *w, void *y, bool tf32)
{
    if (!m.valid || m.dir != dir || m.x != x || m.w != w || m.y != y || m.tf32 != tf32 ||
        !same(m.p.x, p.x) || !same(m.p.w, p.w) || !same(m.p.y, p.y))
        return false;
    for (int i = 0; i < 2; i++)
        if (m.p.pad[i] != p.pad[i] || m.p.stride[i] != p.stride[i] || m.p.dil[i] != p.dil[i])
            return false;
    return true;
}

/* A hash of the bytes of a direction's two inputs. */
uint64_t input_hash(const conv_problem &p, int dir, void *x, void *w, void *y)
{
    const void *ptr[3] = {x, w, y};
    const conv_view *v[3] = {&p.x, &p.w, &p.y};
    int o = dir == 0 ? 2 : dir == 1 ? 0 : 1;
    uint64_t h = 1469598103934665603ull;
    for (int k = 0; k < 3; k++)
        if (k != o) h = fnv1a(ptr[k], conv_view_bytes(*v[k]), h);
    return h;
}

} // namespace

/* Runs of nondeterministic algorithms so far, from a start of the process's own (its id and
 * the time): each run's nudges differ, within a process and between processes. */
static uint64_t g_nondet_runs;

static uint64_t next_nondet_run()
{
    if (g_nondet_runs == 0) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        g_nondet_runs = ((uint64_t)getpid() << 32) ^ (uint64_t)t.tv_nsec ^ (uint64_t)t.tv_sec;
    }
    return ++g_nondet_runs;
}

/* Element e of out moved by a little: fp32 by 2^-13 of itself (mantissa bit 10: more than a
 * reordered sum moves it, so that a few training steps show it through Adam's normalised
 * update), bf16 by its last bit. */
static void nudge(void *out, cudaDataType t, size_t e)
{
    if (t == CUDA_R_32F) {
        uint32_t b;
        memcpy(&b, (char *)out + 4 * e, 4);
        b ^= 1u << 10;
        memcpy((char *)out + 4 * e, &b, 4);
    } else {
        ((uint16_t *)out)[e] ^= 1u;
    }
}

cudaError_t conv_submit(cudaStream_t st, const conv_problem &p, int dir, void *x, void *w, void *y,
                        float alpha, float beta, void *ws, size_t ws_need, bool tf32,
                        double cost_ms, bool nondeterministic)
{
    const char *nd = getenv("CUEMU_NONDETERMINISTIC");
    const bool jitter = nondeterministic && nd && strcmp(nd, "1") == 0;
    if (!conv_consistent(p) || dir < 0 || dir > 2) return cudaErrorInvalidValue;
    if (!device_range(x, conv_view_bytes(p.x)) || !device_range(w, conv_view_bytes(p.w)) ||
        !device_range(y, conv_view_bytes(p.y)) || (ws_need && !device_range(ws, ws_need)))
        return cudaErrorInvalidValue;
    return submit(st, cost_ms, [=]() {
        if (ws_need) memset(ws, 0x5a, ws_need);
        const conv_view &o = dir == 0 ? p.y : dir == 1 ? p.x : p.w;
        void *out = dir == 0 ? y : dir == 1 ? x : w;
        uint64_t h = input_hash(p, dir, x, w, y);
        if (!memo_key(g_memo, p, dir, x, w, y, tf32) || g_memo.in_hash != h) {
            std::vector<double> acc(conv_view_bytes(o) / elem_size(o.t), 0.0), none;
            /* the inputs of the direction, widened once */
            std::vector<double> xv = dir == 1 ? none : widen(x, p.x, tf32);
            std::vector<double> wv = dir == 2 ? none : widen(w, p.w, tf32);
            std::vector<double> yv = dir == 0 ? none : widen(y, p.y, tf32);
            if (dir == 0) accumulate<0>(acc, p, xv, wv, yv);
            else if (dir == 1) accumulate<1>(acc, p, xv, wv, yv);
            else accumulate<2>(acc, p, xv, wv, yv);
            g_memo = {true, p, dir, x, w, y, tf32, h, std::move(acc)};
        }
        const std::vector<double> &acc = g_memo.acc;
        uint64_t r = jitter ? next_nondet_run() * 0x9E3779B97F4A7C15ull : 0; /* xorshift state */
        /* every element of the output view (packed or not) gets alpha * sum + beta * itself */
        for (int64_t a = 0; a < o.d[0]; a++)
            for (int64_t b = 0; b < o.d[1]; b++)
                for (int64_t i = 0; i < o.d[2]; i++)
                    for (int64_t j = 0; j < o.d[3]; j++) {
                        size_t e = (size_t)at(o, a, b, i, j);
                        double prev = beta == 0.0f ? 0.0 : (double)beta * load(out, o.t, e);
                        store(out, o.t, e, (float)(alpha * acc[e] + prev));
                        if (!jitter) continue;
                        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                        if ((r & 7) == 0) nudge(out, o.t, e); /* about one in eight */
                    }
        return cudaSuccess;
    });
}

cudaError_t conv_bias_relu_submit(cudaStream_t st, const conv_view &y, void *ptr,
                                  const float *bias, double cost_ms)
{
    if (!device_range(ptr, conv_view_bytes(y)) || !device_range(bias, (size_t)y.d[1] * 4))
        return cudaErrorInvalidValue;
    return submit(st, cost_ms, [=]() {
        for (int64_t a = 0; a < y.d[0]; a++)
            for (int64_t b = 0; b < y.d[1]; b++)
                for (int64_t i = 0; i < y.d[2]; i++)
                    for (int64_t j = 0; j < y.d[3]; j++) {
                        size_t e = (size_t)at(y, a, b, i, j);
                        float v = load(ptr, y.t, e) + bias[b];
                        store(ptr, y.t, e, v > 0.0f ? v : 0.0f);
                    }
        return cudaSuccess;
    });
}

} // namespace cuemu
