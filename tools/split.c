/* Seeded patient-level stratified splits: see split.h. */
#include "split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/philox.h"

void mm_rstream_init(mm_rstream *r, uint64_t seed, uint64_t stream_id)
{
    r->seed = seed;
    r->base = stream_id << 40; /* 2^42 words per stream, far more than any split draws */
    r->i = 0;
}

uint32_t mm_rstream_u32(mm_rstream *r) { return mm_philox_u32(r->seed, (r->base << 2) + r->i++); }

uint32_t mm_rstream_below(mm_rstream *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection of the biased low range. */
    uint64_t m = (uint64_t)mm_rstream_u32(r) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (lo < threshold) {
            m = (uint64_t)mm_rstream_u32(r) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double mm_rstream_uniform(mm_rstream *r)
{
    uint64_t hi = mm_rstream_u32(r) >> 5, lo = mm_rstream_u32(r) >> 6; /* 27 + 26 bits */
    return (double)(hi * 67108864u + lo) * (1.0 / 9007199254740992.0);
}

void mm_rstream_shuffle(mm_rstream *r, int *perm, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)mm_rstream_below(r, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void mm_split_stratified(int *chosen, const int *strata, int n, int n_strata, double frac,
                         uint64_t seed, uint64_t stream_id)
{
    memset(chosen, 0, (size_t)n * sizeof *chosen);
    if (n == 0) return;
    int *size = mm_xcalloc((size_t)n_strata, sizeof *size);
    int *take = mm_xcalloc((size_t)n_strata, sizeof *take);
    double *rem = mm_xcalloc((size_t)n_strata, sizeof *rem);
    for (int i = 0; i < n; i++) size[strata[i]]++;
    int total = (int)floor(n * frac + 0.5), given = 0;
    for (int k = 0; k < n_strata; k++) {
        double want = size[k] * frac;
        take[k] = (int)floor(want);
        rem[k] = want - take[k];
        given += take[k];
    }
    /* leftover seats: largest remainder first, then the larger stratum, then the lower index */
    while (given < total) {
        int best = -1;
        for (int k = 0; k < n_strata; k++) {
            if (take[k] >= size[k]) continue;
            if (best < 0 || rem[k] > rem[best] ||
                (rem[k] == rem[best] && size[k] > size[best]))
                best = k;
        }
        if (best < 0) break;
        take[best]++;
        rem[best] = -1;
        given++;
    }
    int *members = mm_xmalloc((size_t)n * sizeof *members);
    for (int k = 0; k < n_strata; k++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (strata[i] == k) members[m++] = i;
        mm_rstream r;
        mm_rstream_init(&r, seed, stream_id * 64 + (uint64_t)k);
        mm_rstream_shuffle(&r, members, m);
        for (int j = 0; j < take[k]; j++) chosen[members[j]] = 1;
    }
    free(members);
    free(size);
    free(take);
    free(rem);
}

void mm_stratified_order(int *order, const int *strata, int n, int n_strata, uint64_t seed,
                         uint64_t stream_id)
{
    int *size = mm_xcalloc((size_t)n_strata, sizeof *size);
    int *used = mm_xcalloc((size_t)n_strata, sizeof *used);
    int **members = mm_xcalloc((size_t)n_strata, sizeof *members);
    for (int i = 0; i < n; i++) size[strata[i]]++;
    for (int k = 0; k < n_strata; k++) {
        members[k] = mm_xmalloc((size_t)(size[k] ? size[k] : 1) * sizeof **members);
        int m = 0;
        for (int i = 0; i < n; i++)
            if (strata[i] == k) members[k][m++] = i;
        mm_rstream r;
        mm_rstream_init(&r, seed, stream_id * 64 + (uint64_t)k);
        mm_rstream_shuffle(&r, members[k], m);
    }
    for (int pos = 0; pos < n; pos++) {
        /* The stratum furthest behind its share after pos+1 items: largest (pos+1)*share - used. */
        int best = -1;
        double best_deficit = 0;
        for (int k = 0; k < n_strata; k++) {
            if (used[k] >= size[k]) continue;
            double deficit = (double)(pos + 1) * size[k] / n - used[k];
            if (best < 0 || deficit > best_deficit) {
                best = k;
                best_deficit = deficit;
            }
        }
        order[pos] = members[best][used[best]++];
    }
    for (int k = 0; k < n_strata; k++) free(members[k]);
    free(members);
    free(size);
    free(used);
}

/* The distinct patients of an index, sorted, with their stratum and image-to-patient map. */
typedef struct patients {
    int n;
    const char **id;  /* [n] */
    int *stratum;     /* [n] 1 when any image has label 1 */
    int *of_image;    /* [idx->n] */
} patients;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void patients_init(patients *p, const mm_index *idx)
{
    int n = idx->n;
    p->id = mm_xmalloc((size_t)(n ? n : 1) * sizeof *p->id);
    for (int i = 0; i < n; i++) p->id[i] = idx->images[i].patient_id;
    qsort(p->id, (size_t)n, sizeof *p->id, cmp_str);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || strcmp(p->id[i], p->id[m - 1])) p->id[m++] = p->id[i];
    p->n = m;
    p->stratum = mm_xcalloc((size_t)(m ? m : 1), sizeof *p->stratum);
    p->of_image = mm_xmalloc((size_t)(n ? n : 1) * sizeof *p->of_image);
    for (int i = 0; i < n; i++) {
        const char *key = idx->images[i].patient_id;
        const char **hit = bsearch(&key, p->id, (size_t)m, sizeof *p->id, cmp_str);
        MM_ASSERT(hit);
        int k = (int)(hit - p->id);
        p->of_image[i] = k;
        if (idx->images[i].label == 1) p->stratum[k] = 1;
    }
}

static void patients_free(patients *p)
{
    free(p->id);
    free(p->stratum);
    free(p->of_image);
}

void mm_index_split_patients(mm_index *idx, double test_frac, mm_split holdout, double val_frac,
                             int keep_test, uint64_t seed)
{
    patients p;
    patients_init(&p, idx);
    int m = p.n;
    int *is_test = mm_xcalloc((size_t)(m ? m : 1), sizeof *is_test);
    if (keep_test) {
        for (int i = 0; i < idx->n; i++)
            if (idx->images[i].split == MM_SPLIT_TEST) is_test[p.of_image[i]] = 1;
    } else {
        mm_split_stratified(is_test, p.stratum, m, 2, test_frac, seed, 1);
    }
    /* validation patients from the rest */
    int *rest = mm_xmalloc((size_t)(m ? m : 1) * sizeof *rest);
    int *rest_strata = mm_xmalloc((size_t)(m ? m : 1) * sizeof *rest_strata);
    int *is_val_rest = mm_xmalloc((size_t)(m ? m : 1) * sizeof *is_val_rest);
    int n_rest = 0;
    for (int k = 0; k < m; k++)
        if (!is_test[k]) {
            rest[n_rest] = k;
            rest_strata[n_rest++] = p.stratum[k];
        }
    mm_split_stratified(is_val_rest, rest_strata, n_rest, 2, val_frac, seed, 2);
    mm_split *ps = mm_xmalloc((size_t)(m ? m : 1) * sizeof *ps);
    for (int k = 0; k < m; k++) ps[k] = is_test[k] ? holdout : MM_SPLIT_TRAIN;
    for (int j = 0; j < n_rest; j++)
        if (is_val_rest[j]) ps[rest[j]] = MM_SPLIT_VAL;
    for (int i = 0; i < idx->n; i++) idx->images[i].split = ps[p.of_image[i]];
    free(ps);
    free(rest);
    free(rest_strata);
    free(is_val_rest);
    free(is_test);
    patients_free(&p);
}

mm_status mm_index_subset_train(mm_index *idx, int n_patients, uint64_t seed)
{
    patients p;
    patients_init(&p, idx);
    int m = p.n;
    int *train = mm_xmalloc((size_t)(m ? m : 1) * sizeof *train);
    int *strata = mm_xmalloc((size_t)(m ? m : 1) * sizeof *strata);
    int *in_train = mm_xcalloc((size_t)(m ? m : 1), sizeof *in_train);
    for (int i = 0; i < idx->n; i++)
        if (idx->images[i].split == MM_SPLIT_TRAIN) in_train[p.of_image[i]] = 1;
    int n_train = 0;
    for (int k = 0; k < m; k++)
        if (in_train[k]) {
            train[n_train] = k;
            strata[n_train++] = p.stratum[k];
        }
    mm_status st = MM_OK;
    if (n_patients < 1 || n_patients > n_train) {
        st = mm_fail(MM_ERR_ARG, "--subset-patients %d: the training split has %d patients; "
                                 "pick 1 to %d", n_patients, n_train, n_train);
    } else {
        int *order = mm_xmalloc((size_t)n_train * sizeof *order);
        mm_stratified_order(order, strata, n_train, 2, seed, 3);
        int *keep = mm_xcalloc((size_t)(m ? m : 1), sizeof *keep);
        for (int k = 0; k < m; k++) keep[k] = !in_train[k];
        for (int j = 0; j < n_patients; j++) keep[train[order[j]]] = 1;
        int w = 0;
        for (int i = 0; i < idx->n; i++) {
            if (keep[p.of_image[i]])
                idx->images[w++] = idx->images[i];
            else
                mm_index_image_free(&idx->images[i]);
        }
        idx->n = w;
        free(order);
        free(keep);
    }
    free(train);
    free(strata);
    free(in_train);
    patients_free(&p);
    return st;
}
