/* libFuzzer target for the .npy reader (runtime/npy.h); built and run by tests/fuzz/run.sh. Any
 * input must give MM_OK or a tier-1 error naming the file, never a crash, an out-of-bounds read,
 * undefined behaviour or a leak. An array that parses must save and load back to the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/npy.h"

static const char *scratch_path(void)
{
    static char path[256];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/mm-fuzz-npy-%ld.npy", dir ? dir : "/tmp", (long)getpid());
    }
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_npy_header h;
    mm_status hs = mm_npy_parse_header(&h, data, size, 0, "fuzz.npy");
    mm_npy_array a;
    if (mm_npy_parse(&a, data, size, "fuzz.npy") != MM_OK) {
        if (!strstr(mm_last_error(), "fuzz.npy")) abort();
        return 0;
    }
    /* A whole array that parses has a header that parses. */
    if (hs != MM_OK || h.numel != a.numel || h.bytes != a.bytes) abort();
    const char *path = scratch_path();
    if (mm_npy_save(path, a.dtype, a.ndim, a.shape, a.data) != MM_OK) abort();
    mm_npy_array b;
    if (mm_npy_load(&b, path) != MM_OK) abort();
    if (b.dtype != a.dtype || !mm_shape_equal(b.ndim, b.shape, a.ndim, a.shape) ||
        b.bytes != a.bytes || (a.bytes && memcmp(a.data, b.data, a.bytes) != 0))
        abort();
    mm_npy_array_free(&b);
    mm_npy_array_free(&a);
    unlink(path);
    return 0;
}
