/* libFuzzer target for the PyTorch checkpoint reader (runtime/torch_pth.h: zip archives, pickles,
 * torch's storages and tensors); built and run by tests/fuzz/run.sh. Any input must give MM_OK or
 * a tier-1 error naming the file, never a crash, an out-of-bounds read, undefined behaviour or a
 * leak; a file that reads gives a handle whose every supported tensor reads back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/torch_pth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_safetensors *f;
    if (mm_pth_parse(&f, data, size, "fuzz.pth") != MM_OK) {
        if (!strstr(mm_last_error(), "fuzz.pth")) abort(); /* messages name the file */
        return 0;
    }
    for (int i = 0; i < mm_safetensors_count(f); i++) {
        const mm_st_entry *e = mm_safetensors_entry(f, i);
        void *buf = malloc(e->bytes + 1);
        if ((mm_safetensors_read(f, e, buf, e->bytes) == MM_OK) != (e->supported != 0)) abort();
        free(buf);
    }
    mm_safetensors_close(f);
    return 0;
}
