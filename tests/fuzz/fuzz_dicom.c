/* libFuzzer target for the DICOM reader (tools/dicom.h, DCMTK underneath) as the indexers and
 * prep use it; built and run by tests/fuzz/run.sh. Any file must read or give a tier-1 error
 * naming it, never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/dicom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[256];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/mm-fuzz-dicom-%ld.dcm", dir ? dir : "/tmp", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    mm_dicom_info info;
    if (mm_dicom_read_info(path, &info) != MM_OK) {
        if (!strstr(mm_last_error(), "mm-fuzz-dicom")) abort();
    } else if (info.rows <= 0 || info.cols <= 0) {
        abort();
    }
    uint16_t *px = NULL;
    mm_dicom_info full;
    if (mm_dicom_read_u16(path, &full, &px) == MM_OK) {
        if (!px || full.rows <= 0 || full.cols <= 0) abort();
        /* touch every pixel: the buffer must really be rows * cols */
        uint32_t sum = 0;
        for (size_t i = 0; i < (size_t)full.rows * (size_t)full.cols; i++) sum += px[i];
        (void)sum;
        free(px);
    } else if (!strstr(mm_last_error(), "mm-fuzz-dicom")) {
        abort();
    }
    unlink(path);
    return 0;
}
