/* A real RFC 4180 CSV reader and a matching field writer.
 *
 * The datasets' description files are CSV with quirks: CBIS-DDSM quotes some fields and puts a
 * newline inside quoted path fields; INbreast separates with ';' and pads blank fields with
 * spaces. The reader takes the whole file into memory (the biggest of them is a few MB):
 *   - fields are separated by `delim`; records end with LF, CRLF or CR;
 *   - a field that starts with '"' is quoted: it runs to the matching '"', may hold the delimiter,
 *     newlines and doubled quotes ("" stands for one "); after the closing quote only the
 *     delimiter, the end of the record or trailing spaces/tabs may follow;
 *   - a '"' inside an unquoted field is kept literally (lenient, as most writers mean it);
 *   - a UTF-8 byte-order mark at the start is skipped; records that are entirely empty are skipped;
 *   - every record must have as many fields as the header, else it is an error naming the file and
 *     the line; an unterminated quoted field is an error naming the line it opened on.
 * With MM_CSV_TRIM every field loses its leading and trailing whitespace (space, tab, CR, LF),
 * quoted or not, and so do the header names in every case. */
#ifndef MM_CSV_H
#define MM_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "../runtime/error.h"

enum { MM_CSV_TRIM = 1 };

typedef struct mm_csv {
    int n_cols, n_rows;   /* columns of the header; data records (the header not counted) */
    char **header;        /* [n_cols] column names */
    char **cells;         /* [n_rows * n_cols] row-major; cells[r * n_cols + c] */
    int *lines;           /* [n_rows] line number (1-based) where each record starts */
    char *name;           /* the file name used in messages */
} mm_csv;

/* Parses `len` bytes of CSV text; `name` is used in error messages. On error *csv is left empty. */
mm_status mm_csv_parse(mm_csv *csv, const char *text, size_t len, char delim, int flags,
                       const char *name);
/* Reads and parses a file (a missing or unreadable file is MM_ERR_IO naming it). */
mm_status mm_csv_read(mm_csv *csv, const char *path, char delim, int flags);
void mm_csv_free(mm_csv *csv);

/* The column whose (trimmed) name equals `name`, ASCII case-insensitively; -1 if none. */
int mm_csv_col(const mm_csv *csv, const char *name);
static inline const char *mm_csv_cell(const mm_csv *csv, int row, int col)
{
    return csv->cells[(size_t)row * (size_t)csv->n_cols + (size_t)col];
}

/* Writes one field, quoted when it holds the delimiter, a quote, CR, LF or leading/trailing
 * spaces, or starts with a UTF-8 byte order mark (which the reader drops at the start of a file),
 * so the reader gives it back unchanged. */
void mm_csv_put(FILE *f, const char *field, char delim);

/* Removes leading and trailing whitespace (space, tab, CR, LF) in place; returns s. */
char *mm_str_trim(char *s);

#endif
