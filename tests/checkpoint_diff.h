/* Bitwise comparison of two checkpoints' tensors, for tests that train two ways and expect the
 * same weights (the metadata, which holds the command line, is not compared). Header-only
 * (static functions): each test executable includes it. */
#ifndef MM_TEST_CHECKPOINT_DIFF_H
#define MM_TEST_CHECKPOINT_DIFF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/safetensors.h"

/* Elements of the tensors of checkpoints a and b that differ bitwise (-1: unreadable, or not the
 * same tensors). When names is not NULL it gets the first three tensors that differ ("" when
 * none). */
static int64_t checkpoint_elements_differ(const char *a, const char *b, char *names, size_t n)
{
    mm_safetensors *fa = NULL, *fb = NULL;
    int64_t differ = -1;
    int listed = 0;
    if (names) snprintf(names, n, "(cannot open both, or not the same tensors)");
    if (mm_safetensors_open(&fa, a) != MM_OK || mm_safetensors_open(&fb, b) != MM_OK ||
        mm_safetensors_count(fa) != mm_safetensors_count(fb))
        goto done;
    differ = 0;
    if (names) names[0] = '\0';
    for (int i = 0; i < mm_safetensors_count(fa) && differ >= 0; i++) {
        const mm_st_entry *ea = mm_safetensors_entry(fa, i);
        const mm_st_entry *eb = mm_safetensors_find(fb, ea->name);
        if (!eb || eb->bytes != ea->bytes || ea->numel == 0) {
            differ = eb && eb->bytes == ea->bytes ? differ : -1;
            continue;
        }
        unsigned char *x = malloc(ea->bytes), *y = malloc(eb->bytes);
        size_t el = ea->bytes / (size_t)ea->numel;
        int64_t before = differ;
        if (mm_safetensors_read(fa, ea, x, ea->bytes) == MM_OK &&
            mm_safetensors_read(fb, eb, y, eb->bytes) == MM_OK)
            for (size_t j = 0; j < ea->bytes; j += el) differ += memcmp(x + j, y + j, el) != 0;
        else
            differ = -1;
        free(x);
        free(y);
        if (names && differ > before && listed++ < 3) {
            size_t len = strlen(names);
            snprintf(names + len, n - len, "%s ", ea->name);
        }
    }
done:
    if (fa) mm_safetensors_close(fa);
    if (fb) mm_safetensors_close(fb);
    return differ;
}

#endif
