/* The RFC 4180 CSV reader: quoting, embedded newlines, CRLF, BOM, trimming, errors, and a
 * write-then-read round trip of random fields. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "tests/harness.h"
#include "tools/csv.h"

static int parse(mm_csv *c, const char *text, char delim, int flags)
{
    return mm_csv_parse(c, text, strlen(text), delim, flags, "t.csv") == MM_OK;
}

MM_TEST(csv_plain_and_quoted)
{
    mm_csv c;
    const char *t = "a,b,c\n1,\"x,y\",3\n\"he said \"\"hi\"\"\",,\"\"\n";
    CHECK(parse(&c, t, ',', 0));
    CHECK_EQ_INT(c.n_cols, 3);
    CHECK_EQ_INT(c.n_rows, 2);
    CHECK(!strcmp(mm_csv_cell(&c, 0, 1), "x,y"));
    CHECK(!strcmp(mm_csv_cell(&c, 1, 0), "he said \"hi\""));
    CHECK(!strcmp(mm_csv_cell(&c, 1, 1), ""));
    CHECK(!strcmp(mm_csv_cell(&c, 1, 2), ""));
    CHECK_EQ_INT(mm_csv_col(&c, "B"), 1);
    CHECK_EQ_INT(mm_csv_col(&c, "d"), -1);
    mm_csv_free(&c);
    /* an empty very first field (found by fuzzing: no buffer allocated yet) */
    CHECK(parse(&c, ",a\n,2\n", ',', 0));
    CHECK(!strcmp(c.header[0], "") && !strcmp(mm_csv_cell(&c, 0, 0), ""));
    mm_csv_free(&c);
}

MM_TEST(csv_embedded_newlines_crlf_bom_and_line_numbers)
{
    /* The CBIS-DDSM quirk: a quoted path with a trailing newline inside the quotes. */
    mm_csv c;
    const char *t = "\xEF\xBB\xBFid,path\r\n1,\"Mass-Training_P_1/a/b/000000.dcm\n\"\r\n\r\n"
                    "2,\"two\r\nlines\"\r\n3,last";
    CHECK(parse(&c, t, ',', 0));
    CHECK(!strcmp(c.header[0], "id"));
    CHECK_EQ_INT(c.n_rows, 3);
    CHECK(!strcmp(mm_csv_cell(&c, 0, 1), "Mass-Training_P_1/a/b/000000.dcm\n"));
    CHECK(!strcmp(mm_csv_cell(&c, 1, 1), "two\r\nlines"));
    CHECK(!strcmp(mm_csv_cell(&c, 2, 1), "last"));
    CHECK_EQ_INT(c.lines[0], 2);
    CHECK_EQ_INT(c.lines[1], 5);
    CHECK_EQ_INT(c.lines[2], 7);
    mm_csv_free(&c);
    CHECK(parse(&c, t, ',', MM_CSV_TRIM));
    CHECK(!strcmp(mm_csv_cell(&c, 0, 1), "Mass-Training_P_1/a/b/000000.dcm"));
    mm_csv_free(&c);
}

MM_TEST(csv_semicolons_and_padding)
{
    /* INbreast.csv: ';' separated, a whitespace-padded blank ACR. */
    mm_csv c;
    const char *t = "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n"
                    "removed;removed;R;CC;201001;20586908;  ;4a\n";
    CHECK(parse(&c, t, ';', MM_CSV_TRIM));
    CHECK_EQ_INT(c.n_cols, 8);
    CHECK_EQ_INT(mm_csv_col(&c, "bi-rads"), 7);
    CHECK(!strcmp(mm_csv_cell(&c, 0, 6), ""));
    CHECK(!strcmp(mm_csv_cell(&c, 0, 7), "4a"));
    mm_csv_free(&c);
}

MM_TEST(csv_errors_name_file_and_line)
{
    mm_csv c;
    CHECK(!parse(&c, "a,b\n1,2\n3\n", ',', 0));
    CHECK(strstr(mm_last_error(), "t.csv: line 3") != NULL);
    CHECK(strstr(mm_last_error(), "1 fields where the header has 2") != NULL);
    CHECK(!parse(&c, "a,b\n1,\"open\n2,3\n", ',', 0));
    CHECK(strstr(mm_last_error(), "line 2: quoted field is never closed") != NULL);
    CHECK(!parse(&c, "a,b\n\"x\"y,2\n", ',', 0));
    CHECK(strstr(mm_last_error(), "after a closing quote") != NULL);
    CHECK(!parse(&c, "", ',', 0));
    CHECK(strstr(mm_last_error(), "empty file") != NULL);
    CHECK(mm_csv_parse(&c, "a,b\n1,\0", 7, ',', 0, "bin.csv") != MM_OK);
    CHECK(strstr(mm_last_error(), "NUL byte") != NULL);
    CHECK(mm_csv_read(&c, "/nonexistent/x.csv", ',', 0) == MM_ERR_IO);
    CHECK(strstr(mm_last_error(), "/nonexistent/x.csv") != NULL);
    /* a lenient literal quote inside an unquoted field */
    CHECK(parse(&c, "a\n5\"6\n", ',', 0));
    CHECK(!strcmp(mm_csv_cell(&c, 0, 0), "5\"6"));
    mm_csv_free(&c);
}

MM_TEST(csv_write_read_round_trip)
{
    /* Random fields over an alphabet full of the characters that need quoting. */
    const char alphabet[] = "ab ,;\"\n\r\t|x";
    enum { ROWS = 50, COLS = 4 };
    char *want[ROWS + 1][COLS];
    char path[600];
    snprintf(path, sizeof path, "%s/rt.csv", mm_test_tmpdir());
    uint64_t k = 0;
    for (int r = 0; r <= ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            int len = r == 0 ? 1 : (int)(mm_philox_u32(7, k++) % 9);
            want[r][c] = malloc((size_t)len + 1);
            for (int i = 0; i < len; i++)
                want[r][c][i] = r == 0 ? (char)('h' + c)
                                       : alphabet[mm_philox_u32(7, k++) % (sizeof alphabet - 1)];
            want[r][c][len] = '\0';
        }
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    for (int r = 0; r <= ROWS; r++) {
        for (int c = 0; c < COLS; c++) {
            if (c) fputc(',', f);
            mm_csv_put(f, want[r][c], ',');
        }
        fputc('\n', f);
    }
    fclose(f);
    mm_csv csv;
    CHECK(mm_csv_read(&csv, path, ',', 0) == MM_OK);
    /* with 4 columns no record is one lone empty field (skipped by design), so all come back */
    CHECK_EQ_INT(csv.n_rows, ROWS);
    for (int r = 0; r < csv.n_rows && r < ROWS; r++)
        for (int c = 0; c < COLS; c++)
            CHECK_MSG(!strcmp(mm_csv_cell(&csv, r, c), want[r + 1][c]), "row %d col %d", r, c);
    mm_csv_free(&csv);
    for (int r = 0; r <= ROWS; r++)
        for (int c = 0; c < COLS; c++) free(want[r][c]);
}

/* A field that starts with a byte order mark, written first in a file, is not taken for the
 * file's BOM (found by fuzz_csv: a header cell whose BOM followed tabs that the reader trims). */
MM_TEST(csv_field_starting_with_a_bom_round_trips)
{
    char path[600];
    snprintf(path, sizeof path, "%s/bom.csv", mm_test_tmpdir());
    const char *cells[2][2] = {{"\xEF\xBB\xBFid", "x"}, {"\xEF\xBB\xBF", "1"}};
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    for (int r = 0; r < 2; r++) {
        mm_csv_put(f, cells[r][0], ';');
        fputc(';', f);
        mm_csv_put(f, cells[r][1], ';');
        fputc('\n', f);
    }
    fclose(f);
    mm_csv csv;
    CHECK(mm_csv_read(&csv, path, ';', 0) == MM_OK);
    CHECK_EQ_INT(csv.n_cols, 2);
    CHECK_EQ_INT(csv.n_rows, 1);
    if (csv.n_cols == 2 && csv.n_rows == 1) {
        CHECK(!strcmp(csv.header[0], cells[0][0]));
        CHECK(!strcmp(mm_csv_cell(&csv, 0, 0), cells[1][0]));
    }
    mm_csv_free(&csv);
}
