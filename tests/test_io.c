/* .npy and crash-safe writing: round trips of every dtype and rank; files written by the real
 * numpy package (tests/fixtures/io, made by make_io_fixtures.py) read exactly; our .npy writer
 * produces numpy's exact bytes; every kind of malformed file gives a clear error that names the
 * file (and never a crash: this test runs under ASan/UBSan in CI); runtime/atomic_file leaves the
 * old file in place until commit and no temp file behind. safetensors: test_safetensors.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/atomic_file.h"
#include "runtime/npy.h"
#include "tests/harness.h"
#include "tests/io_files.h"

/* ================================ .npy ================================ */

typedef struct npy_fixture {
    const char *file;
    mm_dtype dtype;
    int ndim;
    int64_t shape[MM_MAX_DIMS];
    int numpy_bytes; /* written by np.save in version 1.0 little-endian: our writer must match */
} npy_fixture;

static const npy_fixture npy_fixtures[] = {
    {"f32_r0.npy", MM_F32, 0, {0}, 1},
    {"f32_r1.npy", MM_F32, 1, {7}, 1},
    {"f32_r2.npy", MM_F32, 2, {3, 5}, 1},
    {"f32_r4.npy", MM_F32, 4, {2, 3, 4, 5}, 1},
    {"f32_r6.npy", MM_F32, 6, {1, 2, 1, 3, 2, 2}, 1},
    {"f32_empty.npy", MM_F32, 2, {0, 3}, 1},
    {"u8_r3.npy", MM_U8, 3, {2, 3, 4}, 1},
    {"u16_r2.npy", MM_U16, 2, {4, 3}, 1},
    {"i32_r1.npy", MM_I32, 1, {10}, 1},
    {"i32_big_dim.npy", MM_I32, 2, {1234567, 0}, 1},
    {"f32_be.npy", MM_F32, 2, {3, 4}, 0},
    {"u16_be.npy", MM_U16, 1, {5}, 0},
    {"i32_be.npy", MM_I32, 2, {2, 3}, 0},
    {"f32_v2.npy", MM_F32, 2, {3, 4}, 0},
    {"f32_v3.npy", MM_F32, 2, {3, 4}, 0},
};
#define N_NPY_FIXTURES (int)(sizeof npy_fixtures / sizeof npy_fixtures[0])

MM_TEST(npy_reads_numpy_files_exactly)
{
    for (int k = 0; k < N_NPY_FIXTURES; k++) {
        const npy_fixture *fx = &npy_fixtures[k];
        char path[600];
        snprintf(path, sizeof path, FIXTURES "%s", fx->file);
        mm_npy_array a;
        mm_status s = mm_npy_load(&a, path);
        CHECK_MSG(s == MM_OK, "%s: %s", fx->file, mm_last_error());
        if (s != MM_OK) continue;
        CHECK_EQ_INT(a.dtype, fx->dtype);
        CHECK_MSG(mm_shape_equal(a.ndim, a.shape, fx->ndim, fx->shape), "%s: shape", fx->file);
        int64_t n = mm_shape_numel(fx->ndim, fx->shape);
        CHECK_EQ_INT(a.numel, n);
        CHECK_EQ_INT(a.bytes, (size_t)n * mm_dtype_size(fx->dtype));
        void *want = malloc(a.bytes + 1);
        fill_expected(want, fx->dtype, n);
        CHECK_MSG(!memcmp(a.data, want, a.bytes), "%s: values differ", fx->file);
        free(want);

        /* The header alone, and the whole file parsed from memory, agree. */
        mm_npy_header h;
        CHECK(mm_npy_read_header(&h, path) == MM_OK);
        CHECK_EQ_INT(h.ndim, fx->ndim);
        CHECK_EQ_INT(h.data_offset % 64, 0);
        size_t size;
        void *file = read_bytes(path, &size);
        mm_npy_array b;
        CHECK(mm_npy_parse(&b, file, size, fx->file) == MM_OK);
        CHECK(b.bytes == a.bytes && !memcmp(a.data, b.data, a.bytes));
        mm_npy_array_free(&b);
        free(file);
        mm_npy_array_free(&a);
    }
}

MM_TEST(npy_versions_and_byte_orders)
{
    mm_npy_header h;
    CHECK(mm_npy_read_header(&h, FIXTURES "f32_r2.npy") == MM_OK && h.version == 1);
    CHECK(mm_npy_read_header(&h, FIXTURES "f32_v2.npy") == MM_OK && h.version == 2);
    CHECK(mm_npy_read_header(&h, FIXTURES "f32_v3.npy") == MM_OK && h.version == 3);
    CHECK(mm_npy_read_header(&h, FIXTURES "f32_be.npy") == MM_OK && h.big_endian);
    CHECK(mm_npy_read_header(&h, FIXTURES "f32_r2.npy") == MM_OK && !h.big_endian);
    /* load_into swaps big-endian data too. */
    int32_t got[6], want[6];
    int64_t shape[2] = {2, 3};
    CHECK(mm_npy_load_into(got, FIXTURES "i32_be.npy", MM_I32, 2, shape) == MM_OK);
    fill_expected(want, MM_I32, 6);
    CHECK(!memcmp(got, want, sizeof got));
}

MM_TEST(npy_writer_matches_numpy_bytes)
{
    for (int k = 0; k < N_NPY_FIXTURES; k++) {
        const npy_fixture *fx = &npy_fixtures[k];
        if (!fx->numpy_bytes) continue;
        int64_t n = mm_shape_numel(fx->ndim, fx->shape);
        size_t bytes = (size_t)n * mm_dtype_size(fx->dtype);
        void *data = malloc(bytes + 1);
        fill_expected(data, fx->dtype, n);
        const char *out = tmp_path(fx->file);
        CHECK(mm_npy_save(out, fx->dtype, fx->ndim, fx->shape, data) == MM_OK);
        char ref[600];
        snprintf(ref, sizeof ref, FIXTURES "%s", fx->file);
        size_t n_got = 0, n_want = 0;
        void *got = read_bytes(out, &n_got), *want = read_bytes(ref, &n_want);
        CHECK_MSG(got && want && n_got == n_want && !memcmp(got, want, n_got),
                  "%s: our bytes differ from numpy's (%zu vs %zu bytes)", fx->file, n_got, n_want);
        free(got);
        free(want);
        free(data);
    }
}

MM_TEST(npy_round_trip_every_dtype_and_rank)
{
    const mm_dtype dtypes[] = {MM_F32, MM_U8, MM_U16, MM_I32};
    for (int di = 0; di < 4; di++) {
        for (int ndim = 0; ndim <= MM_MAX_DIMS; ndim++) {
            int64_t shape[MM_MAX_DIMS];
            for (int i = 0; i < ndim; i++) shape[i] = 1 + (i * 3 + ndim + di) % 4;
            int64_t n = mm_shape_numel(ndim, shape);
            size_t bytes = (size_t)n * mm_dtype_size(dtypes[di]);
            uint8_t *data = malloc(bytes);
            for (size_t i = 0; i < bytes; i++) data[i] = (uint8_t)(i * 151 + 7 * di + ndim);
            const char *path = tmp_path("rt.npy");
            CHECK(mm_npy_save(path, dtypes[di], ndim, shape, data) == MM_OK);
            mm_npy_array a;
            CHECK(mm_npy_load(&a, path) == MM_OK);
            CHECK(a.dtype == dtypes[di] && mm_shape_equal(a.ndim, a.shape, ndim, shape));
            CHECK(a.bytes == bytes && !memcmp(a.data, data, bytes));
            mm_npy_array_free(&a);
            free(data);
        }
    }
    CHECK_EQ_INT(files_in_tmpdir(), 1); /* no temp files left behind */
}

MM_TEST(npy_refuses_what_it_cannot_read)
{
    mm_npy_array a;
    const char *p = FIXTURES "f32_fortran.npy";
    CHECK_EQ_INT(mm_npy_load(&a, p), MM_ERR_UNSUPPORTED);
    CHECK(message_names(p) && strstr(mm_last_error(), "Fortran"));
    p = FIXTURES "f64.npy";
    CHECK_EQ_INT(mm_npy_load(&a, p), MM_ERR_UNSUPPORTED);
    CHECK(message_names(p) && strstr(mm_last_error(), "'<f8'"));
    p = FIXTURES "no-such-file.npy";
    CHECK_EQ_INT(mm_npy_load(&a, p), MM_ERR_IO);
    CHECK(message_names(p));
    CHECK_EQ_INT(mm_npy_load(&a, mm_test_tmpdir()), MM_ERR_IO); /* a folder */

    /* load_into with the wrong expectations */
    float buf[15];
    int64_t wrong_shape[2] = {5, 3}, right_shape[2] = {3, 5};
    p = FIXTURES "f32_r2.npy";
    CHECK_EQ_INT(mm_npy_load_into(buf, p, MM_F32, 2, wrong_shape), MM_ERR_SHAPE);
    CHECK(message_names(p) && strstr(mm_last_error(), "shape (3, 5), expected (5, 3)"));
    CHECK_EQ_INT(mm_npy_load_into(buf, p, MM_I32, 2, right_shape), MM_ERR_FORMAT);
    CHECK(message_names(p));
    CHECK_EQ_INT(mm_npy_load_into(buf, p, MM_F32, 2, right_shape), MM_OK);

    /* numpy has no bf16 */
    uint16_t bf[2] = {0};
    int64_t two = 2;
    const char *out = tmp_path("bf16.npy");
    CHECK_EQ_INT(mm_npy_save(out, MM_BF16, 1, &two, bf), MM_ERR_UNSUPPORTED);
    CHECK(message_names(out));
    CHECK_EQ_INT(files_in_tmpdir(), 0);
}

/* A v1.0 .npy file with the given header text (padded the way numpy does) and `data` zero bytes
 * after it. */
static void write_npy_header(const char *path, const char *dict, size_t data)
{
    size_t len = strlen(dict), total = 10 + len + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = len + pad + 1, n = 10 + hlen + data;
    uint8_t *b = calloc(1, n);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)(hlen & 0xff);
    b[9] = (uint8_t)(hlen >> 8);
    memcpy(b + 10, dict, len);
    memset(b + 10 + len, ' ', pad);
    b[10 + len + pad] = '\n';
    write_bytes(path, b, n);
    free(b);
}

MM_TEST(npy_malformed_headers)
{
    static const struct {
        const char *dict;
        size_t data;
        mm_status want;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, MM_OK},
        {"{\"shape\":(2,3),\"fortran_order\":False,\"descr\":\"<f4\"}", 24, MM_OK}, /* any order */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", 24, MM_OK},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (5), }", 20, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3.5), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (9999999999, 9999999999, "
         "9999999999), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0,
         MM_ERR_FORMAT},
        /* empty, but the other dimensions' product leaves int64 (found by fuzz_npy) */
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (2009594683, 4, 3, 111111122, 4, "
         "0), }", 0, MM_ERR_FORMAT},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296), }", 0,
         MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4), }", 0, MM_OK},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1), }", 4,
         MM_ERR_UNSUPPORTED},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, MM_ERR_UNSUPPORTED},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48, MM_ERR_UNSUPPORTED},
        {"{'descr': 'xyz', 'fortran_order': False, 'shape': (2, 3), }", 48, MM_ERR_UNSUPPORTED},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8,
         MM_ERR_UNSUPPORTED},
        {"{'descr': '<f4', 'shape': (2, 3), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, }", 24, MM_ERR_FORMAT},
        {"{'fortran_order': False, 'shape': (2, 3), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24,
         MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1, }", 24,
         MM_ERR_FORMAT},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", 24, MM_ERR_FORMAT},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }", 24, MM_ERR_FORMAT},
        {"{'descr': '<f\\4', 'fortran_order': False, 'shape': (2, 3), }", 24, MM_ERR_FORMAT},
        {"['descr', '<f4']", 24, MM_ERR_FORMAT},
        {"", 24, MM_ERR_FORMAT},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char name[32];
        snprintf(name, sizeof name, "case%zu.npy", k);
        const char *path = tmp_path(name);
        write_npy_header(path, cases[k].dict, cases[k].data);
        mm_npy_array a;
        mm_clear_error();
        mm_status s = mm_npy_load(&a, path);
        CHECK_MSG(s == cases[k].want, "case %zu (%s): status %d, want %d: %s", k, cases[k].dict,
                  (int)s, (int)cases[k].want, mm_last_error());
        if (s == MM_OK) mm_npy_array_free(&a);
        else CHECK_MSG(message_names(path), "case %zu", k);
    }
}

MM_TEST(npy_malformed_prefixes)
{
    uint8_t good[128];
    size_t n;
    void *f = read_bytes(FIXTURES "f32_r2.npy", &n);
    MM_ASSERT(f && n <= sizeof good + 64);
    memcpy(good, f, 128);
    free(f);
    const char *path = tmp_path("bad.npy");
    mm_npy_array a;
    /* truncated at every length inside the header */
    for (size_t len = 0; len < 128; len++) {
        write_bytes(path, good, len);
        CHECK_MSG(mm_npy_load(&a, path) != MM_OK, "truncated to %zu bytes", len);
        CHECK(message_names(path));
    }
    uint8_t b[128];
    memcpy(b, good, 128);
    b[1] = 'X'; /* bad magic */
    write_bytes(path, b, 128);
    CHECK_EQ_INT(mm_npy_load(&a, path), MM_ERR_FORMAT);
    CHECK(message_names(path));
    memcpy(b, good, 128);
    b[6] = 4; /* version 4.0 */
    write_bytes(path, b, 128);
    CHECK_EQ_INT(mm_npy_load(&a, path), MM_ERR_UNSUPPORTED);
    CHECK(message_names(path));
    memcpy(b, good, 128);
    b[8] = 0xff; /* header length past the end */
    b[9] = 0xff;
    write_bytes(path, b, 128);
    CHECK_EQ_INT(mm_npy_load(&a, path), MM_ERR_FORMAT);
    CHECK(message_names(path));
    memcpy(b, good, 128);
    b[6] = 2; /* version 2.0 reads a u32 length: absurd */
    b[10] = 0xff;
    b[11] = 0x7f;
    write_bytes(path, b, 128);
    CHECK_EQ_INT(mm_npy_load(&a, path), MM_ERR_FORMAT);
    CHECK(message_names(path));
    /* the same bytes from memory */
    CHECK_EQ_INT(mm_npy_parse(&a, b, 128, "mem.npy"), MM_ERR_FORMAT);
    CHECK(message_names("mem.npy"));
    CHECK_EQ_INT(mm_npy_parse(&a, b, 0, "mem.npy"), MM_ERR_FORMAT);
}

/* ============================ atomic files ============================ */

MM_TEST(atomic_file_keeps_old_file_until_commit)
{
    const char *path = tmp_path("a.txt");
    write_bytes(path, "old", 3);
    mm_atomic_file af;
    CHECK(mm_atomic_file_open(&af, path) == MM_OK);
    CHECK(mm_atomic_file_write(&af, "new!", 4) == MM_OK);
    size_t n;
    char *got = read_bytes(path, &n);
    CHECK(n == 3 && !memcmp(got, "old", 3)); /* not yet */
    free(got);
    CHECK_EQ_INT(files_in_tmpdir(), 2);
    mm_atomic_file_abort(&af);
    got = read_bytes(path, &n);
    CHECK(n == 3 && !memcmp(got, "old", 3));
    free(got);
    CHECK_EQ_INT(files_in_tmpdir(), 1);
    CHECK(mm_atomic_file_open(&af, path) == MM_OK);
    CHECK(mm_atomic_file_write(&af, "new!", 4) == MM_OK);
    CHECK(mm_atomic_file_commit(&af) == MM_OK);
    got = read_bytes(path, &n);
    CHECK(n == 4 && !memcmp(got, "new!", 4));
    free(got);
    CHECK_EQ_INT(files_in_tmpdir(), 1);
}

/* Two writers of one path in one process (threads of the loader or prep) get their own temp files;
 * the one that commits last wins, whole. */
MM_TEST(atomic_file_unique_temp_names)
{
    const char *path = tmp_path("b.txt");
    mm_atomic_file a, b;
    CHECK(mm_atomic_file_open(&a, path) == MM_OK);
    CHECK(mm_atomic_file_open(&b, path) == MM_OK);
    CHECK(strcmp(a.tmp_path, b.tmp_path) != 0);
    CHECK_EQ_INT(files_in_tmpdir(), 2);
    fprintf(a.file, "first writer");
    fprintf(b.file, "second");
    CHECK(mm_atomic_file_commit(&a) == MM_OK);
    CHECK(mm_atomic_file_commit(&b) == MM_OK);
    size_t n;
    char *got = read_bytes(path, &n);
    CHECK(got && n == 6 && !memcmp(got, "second", 6));
    free(got);
    CHECK_EQ_INT(files_in_tmpdir(), 1);
}

/* reserve(): the caller creates the temp file by name (as DCMTK does); commit renames it, and a
 * temp file that was never made is an error naming the final path. */
MM_TEST(atomic_file_reserved_name)
{
    const char *path = tmp_path("c.dcm");
    mm_atomic_file af;
    mm_atomic_file_reserve(&af, path);
    CHECK(af.file == NULL);
    CHECK_EQ_INT(files_in_tmpdir(), 0);
    write_bytes(af.tmp_path, "DICM", 4);
    CHECK(mm_atomic_file_commit(&af) == MM_OK);
    size_t n;
    char *got = read_bytes(path, &n);
    CHECK(got && n == 4 && !memcmp(got, "DICM", 4));
    free(got);
    mm_atomic_file_reserve(&af, tmp_path("never.dcm"));
    CHECK_EQ_INT(mm_atomic_file_commit(&af), MM_ERR_IO);
    CHECK(message_names(tmp_path("never.dcm")));
    CHECK_EQ_INT(files_in_tmpdir(), 1);
}

/* A write error that only the stream's flush reveals (fprintf reports none) fails the commit,
 * names the file and leaves the old one; /dev/full stands in for a full disk. */
MM_TEST(atomic_file_write_error_at_commit)
{
    FILE *full = fopen("/dev/full", "wb");
    if (!full) MM_SKIP("no /dev/full");
    const char *path = tmp_path("d.txt");
    write_bytes(path, "old", 3);
    mm_atomic_file af;
    CHECK(mm_atomic_file_open(&af, path) == MM_OK);
    fclose(af.file);
    af.file = full;
    CHECK(fprintf(af.file, "new contents") > 0); /* buffered: no error yet */
    CHECK_EQ_INT(mm_atomic_file_commit(&af), MM_ERR_IO);
    CHECK(message_names(path));
    size_t n;
    char *got = read_bytes(path, &n);
    CHECK(got && n == 3 && !memcmp(got, "old", 3));
    free(got);
    CHECK_EQ_INT(files_in_tmpdir(), 1);
}
