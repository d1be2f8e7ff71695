/* libFuzzer target for the safetensors reader (runtime/safetensors.h); built and run by
 * tests/fuzz/run.sh. Any input must give MM_OK or a tier-1 error, never a crash, an out-of-bounds
 * read, undefined behaviour or a leak. A file that parses must read back in full (its floating
 * entries as float32 too), and writing its tensors and metadata again must give a file that reads
 * back to the same bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/safetensors.h"

static const char *scratch_path(void)
{
    static char path[256];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/mm-fuzz-safetensors-%ld.safetensors", dir ? dir : "/tmp",
                 (long)getpid());
    }
    return path;
}

/* Writes every tensor of f to a new file and checks it reads back identically. */
static void round_trip(const mm_safetensors *f, void **blobs)
{
    int n = mm_safetensors_count(f), n_meta = mm_safetensors_meta_count(f);
    mm_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
    mm_st_meta *meta = calloc((size_t)n_meta + 1, sizeof *meta);
    for (int i = 0; i < n; i++) {
        const mm_st_entry *e = mm_safetensors_entry(f, i);
        t[i].name = e->name;
        t[i].dtype = e->dtype;
        t[i].ndim = e->ndim;
        memcpy(t[i].shape, e->shape, sizeof e->shape);
        t[i].data = blobs[i];
    }
    for (int i = 0; i < n_meta; i++) mm_safetensors_meta_at(f, i, &meta[i].key, &meta[i].value);
    const char *path = scratch_path();
    if (mm_safetensors_write(path, t, n, meta, n_meta) != MM_OK) abort();
    mm_safetensors *g;
    if (mm_safetensors_open(&g, path) != MM_OK) abort();
    if (mm_safetensors_count(g) != n || mm_safetensors_meta_count(g) != n_meta) abort();
    for (int i = 0; i < n; i++) {
        const mm_st_entry *e = mm_safetensors_entry(g, i);
        if (strcmp(e->name, t[i].name) != 0 || e->bytes != mm_safetensors_entry(f, i)->bytes)
            abort();
        void *buf = malloc(e->bytes + 1);
        if (mm_safetensors_read(g, e, buf, e->bytes) != MM_OK) abort();
        if (e->bytes && memcmp(buf, blobs[i], e->bytes) != 0) abort();
        free(buf);
    }
    for (int i = 0; i < n_meta; i++) {
        const char *v = mm_safetensors_meta(g, meta[i].key);
        if (!v || strcmp(v, meta[i].value) != 0) abort();
    }
    mm_safetensors_close(g);
    unlink(path);
    free(t);
    free(meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_safetensors *f;
    if (mm_safetensors_parse(&f, data, size, "fuzz.safetensors") != MM_OK) {
        if (!strstr(mm_last_error(), "fuzz.safetensors")) abort(); /* messages name the file */
        return 0;
    }
    int n = mm_safetensors_count(f), all_supported = 1;
    void **blobs = calloc((size_t)n + 1, sizeof *blobs);
    for (int i = 0; i < n; i++) {
        const mm_st_entry *e = mm_safetensors_entry(f, i);
        if (mm_safetensors_find(f, e->name) != e) abort();
        blobs[i] = malloc(e->bytes + 1);
        mm_status s = mm_safetensors_read(f, e, blobs[i], e->bytes);
        if ((s == MM_OK) != (e->supported != 0)) abort();
        all_supported &= e->supported;
        /* floating entries (F16 and F64 too) read as float32 */
        float *f32 = malloc((size_t)e->numel * sizeof(float) + 1);
        bool is_float = mm_safetensors_is_float(e) && e->ndim <= MM_MAX_DIMS;
        if ((mm_safetensors_read_f32(f, e, f32) == MM_OK) != is_float) abort();
        free(f32);
    }
    for (int i = 0; i < mm_safetensors_meta_count(f); i++) {
        const char *k, *v;
        mm_safetensors_meta_at(f, i, &k, &v);
        if (mm_safetensors_meta(f, k) != v) abort();
    }
    if (all_supported) round_trip(f, blobs);
    for (int i = 0; i < n; i++) free(blobs[i]);
    free(blobs);
    mm_safetensors_close(f);
    return 0;
}
