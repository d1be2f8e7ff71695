/* libFuzzer target for the CSV reader (tools/csv.h) and the index reader (tools/index.h); built
 * and run by tests/fuzz/run.sh. Any input must parse or give a tier-1 error naming the file, never
 * crash, read out of bounds, hit undefined behaviour or leak. A table that parses must be written
 * back with mm_csv_put and parse again to the same cells. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/csv.h"
#include "tools/index.h"

static void round_trip(const mm_csv *a, char delim)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) abort();
    for (int r = -1; r < a->n_rows; r++) {
        for (int c = 0; c < a->n_cols; c++) {
            if (c) fputc(delim, f);
            mm_csv_put(f, r < 0 ? a->header[c] : mm_csv_cell(a, r, c), delim);
        }
        fputc('\n', f);
    }
    fclose(f);
    mm_csv b;
    if (mm_csv_parse(&b, buf, len, delim, 0, "again.csv") != MM_OK) abort();
    if (b.n_cols != a->n_cols || b.n_rows != a->n_rows) abort();
    for (int c = 0; c < a->n_cols; c++)
        if (strcmp(a->header[c], b.header[c])) abort();
    for (int r = 0; r < a->n_rows; r++)
        for (int c = 0; c < a->n_cols; c++)
            if (strcmp(mm_csv_cell(a, r, c), mm_csv_cell(&b, r, c))) abort();
    mm_csv_free(&b);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[2] = {',', ';'};
    for (int d = 0; d < 2; d++)
        for (int flags = 0; flags <= MM_CSV_TRIM; flags++) {
            mm_csv csv;
            if (mm_csv_parse(&csv, (const char *)data, size, delims[d], flags, "fuzz.csv") != MM_OK) {
                if (!strstr(mm_last_error(), "fuzz.csv")) abort();
                continue;
            }
            /* a record of one empty field is skipped by design (blank lines), so one-column
             * tables need not come back the same */
            if (!flags && csv.n_cols >= 2) round_trip(&csv, delims[d]);
            mm_csv_free(&csv);
        }
    /* the index reader on the same bytes: valid or a clear error naming the file */
    char path[256];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/mm-fuzz-index-%ld.csv", dir ? dir : "/tmp", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    mm_index idx;
    if (mm_index_read(&idx, path) == MM_OK) {
        for (int i = 0; i < idx.n; i++)
            if (idx.images[i].n_rois && !idx.images[i].rois) abort();
        mm_index_free(&idx);
    } else if (!strstr(mm_last_error(), "mm-fuzz-index")) {
        abort();
    }
    unlink(path);
    return 0;
}
