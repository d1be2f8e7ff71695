/* File helpers shared by the file-format tests (test_io.c: .npy and atomic files;
 * test_safetensors.c): the fixture formulas of tests/fixtures/make_io_fixtures.py, reading and
 * writing raw bytes, paths in the test's temp folder, and checking that a message names a file.
 * Header-only (static functions): each test executable includes it. */
#ifndef MM_TEST_IO_FILES_H
#define MM_TEST_IO_FILES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/tensor.h"
#include "tests/harness.h"

#define FIXTURES MM_SOURCE_DIR "/tests/fixtures/io/"

/* The formulas of make_io_fixtures.py, element i of the flattened array, as raw bytes of `dtype`
 * ("bf16" is MM_BF16: the top half of the float's bits, exact for these values). */
static inline void fill_expected(void *dst, mm_dtype dtype, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float f = (float)((double)(i - 7) * 0.125);
        switch (dtype) {
        case MM_F32: ((float *)dst)[i] = f; break;
        case MM_U8: ((uint8_t *)dst)[i] = (uint8_t)((i * 37) % 256); break;
        case MM_U16: ((uint16_t *)dst)[i] = (uint16_t)((i * 4099) % 65536); break;
        case MM_I32: ((int32_t *)dst)[i] = (int32_t)(i * 1000003 - 5000000); break;
        case MM_BF16: {
            uint32_t bits;
            memcpy(&bits, &f, 4);
            ((uint16_t *)dst)[i] = (uint16_t)(bits >> 16);
            break;
        }
        default: MM_ASSERT(0);
        }
    }
}

static inline int message_names(const char *path)
{
    const char *msg = mm_last_error();
    if (strstr(msg, path)) return 1;
    printf("    message does not name %s: %s\n", path, msg);
    return 0;
}

static inline void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    MM_ASSERT(f);
    if (n) MM_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static inline void *read_bytes(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)size + 1);
    *n = fread(buf, 1, (size_t)size, f);
    fclose(f);
    return buf;
}

static inline char *tmp_path(const char *name)
{
    static char buf[8][600];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 600, "%s/%s", mm_test_tmpdir(), name);
    return p;
}

/* Number of entries in the test's temp folder (to see that no temp files are left behind). */
static inline int files_in_tmpdir(void)
{
    DIR *d = opendir(mm_test_tmpdir());
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

#endif
