/* Parameter initialisation, torchvision's schemes (see mm_init_kind), from Philox.
 *
 * Every tensor has its own stream: key = FNV-1a(name) ^ (seed * golden ratio), element i of the
 * tensor (in our layout) uses the stream's words 2i and 2i+1. So a tensor's values depend only on
 * the seed, its name and its shape, not on the graph's order or on which other layers exist, and
 * they are the same on every machine. Normal draws use Box-Muller on the two words. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/philox.h"
#include "layers.h"

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Standard normal draw i of stream `key`. */
static float normal_at(uint64_t key, int64_t i)
{
    /* u1 in (0, 1] keeps the log finite; u2 in [0, 1). */
    double u1 = ((double)(mm_philox_u32(key, 2 * (uint64_t)i) >> 8) + 1.0) * (1.0 / 16777216.0);
    double u2 = (double)(mm_philox_u32(key, 2 * (uint64_t)i + 1) >> 8) * (1.0 / 16777216.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Uniform draw in [-1, 1). */
static float symmetric_at(uint64_t key, int64_t i)
{
    return 2.0f * mm_philox_uniform(key, 2 * (uint64_t)i) - 1.0f;
}

void mm_model_init_tensor(const mm_model *m, int value, uint64_t seed, float *out)
{
    const mm_value *v = mm_graph_value(m->g, value);
    MM_ASSERT(value < m->info_cap && m->info[value].used);
    const mm_param_info *pi = &m->info[value];
    int64_t n = mm_shape_numel(v->ndim, v->shape);
    uint64_t key = fnv1a64(v->name) ^ (seed * 0x9E3779B97F4A7C15ULL);
    switch (pi->init) {
    case MM_INIT_ZERO: memset(out, 0, (size_t)n * sizeof *out); break;
    case MM_INIT_ONE:
        for (int64_t i = 0; i < n; i++) out[i] = 1.0f;
        break;
    case MM_INIT_KAIMING_FAN_OUT: {
        /* kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out), where
         * fan_out = out_channels * kh * kw (OHWI: shape[0] * shape[1] * shape[2]). */
        MM_ASSERT(v->ndim == 4);
        double std = sqrt(2.0 / (double)(v->shape[0] * v->shape[1] * v->shape[2]));
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = (float)(std * normal_at(key, i));
        break;
    }
    case MM_INIT_LINEAR_DEFAULT: {
        /* nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) gives the weight bound
         * sqrt(6 / ((1 + 5) * fan_in)) = 1/sqrt(fan_in); the bias uses the same bound. */
        int fan_in = pi->fan_in > 0 ? pi->fan_in : (int)(v->ndim >= 2 ? n / v->shape[0] : n);
        float bound = (float)(1.0 / sqrt((double)fan_in));
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = bound * symmetric_at(key, i);
        break;
    }
    case MM_INIT_NORMAL_001:
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = 0.01f * normal_at(key, i);
        break;
    }
}

void mm_model_init(const mm_model *m, mm_session *s, uint64_t seed)
{
    size_t cap = 0;
    float *buf = NULL;
    for (int id = 0; id < m->g->n_values; id++) {
        const mm_value *v = mm_graph_value(m->g, id);
        if (v->kind != MM_VALUE_PARAM && v->kind != MM_VALUE_STATE) continue;
        if (id >= m->info_cap || !m->info[id].used) continue;
        size_t bytes = mm_value_bytes(v);
        if (bytes > cap) {
            free(buf);
            buf = mm_xmalloc(bytes);
            cap = bytes;
        }
        mm_model_init_tensor(m, id, seed, buf);
        mm_status st = mm_session_write(s, id, buf, bytes);
        MM_ASSERT(st == MM_OK);
    }
    free(buf);
}
