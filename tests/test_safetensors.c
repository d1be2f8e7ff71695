/* safetensors: round trips of every dtype and rank, the streaming writer; files written by the
 * real safetensors package and by torch (tests/fixtures/io, made by make_io_fixtures.py) read
 * exactly; every kind of malformed header or prefix, and a file that shrinks after it was opened,
 * gives a clear error that names the file (and never a crash: this test runs under ASan/UBSan in
 * CI). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/safetensors.h"
#include "tests/harness.h"
#include "tests/io_files.h"

/* ============================ safetensors ============================ */

static void check_entry(const mm_safetensors *f, const char *name, const char *dtype_name,
                        int supported, int ndim, const int64_t *shape)
{
    const mm_st_entry *e = mm_safetensors_find(f, name);
    CHECK_MSG(e != NULL, "no tensor %s", name);
    if (!e) return;
    CHECK_MSG(!strcmp(e->dtype_name, dtype_name), "%s: dtype %s", name, e->dtype_name);
    CHECK_EQ_INT(e->supported, supported);
    CHECK_MSG(mm_shape_equal(e->ndim, e->shape, ndim, shape), "%s: shape", name);
    if (supported) {
        int64_t n = mm_shape_numel(ndim, shape);
        CHECK_EQ_INT(e->bytes, (size_t)n * mm_dtype_size(e->dtype));
        void *got = malloc(e->bytes + 1), *want = malloc(e->bytes + 1);
        CHECK(mm_safetensors_read(f, e, got, e->bytes) == MM_OK);
        fill_expected(want, e->dtype, n);
        CHECK_MSG(!memcmp(got, want, e->bytes), "%s: values differ", name);
        free(got);
        free(want);
    } else {
        void *got = malloc(e->bytes + 1);
        CHECK_EQ_INT(mm_safetensors_read(f, e, got, e->bytes), MM_ERR_UNSUPPORTED);
        char want[128];
        snprintf(want, sizeof want, "unsupported dtype %s for tensor \"%s\"", dtype_name, name);
        CHECK_MSG(strstr(mm_last_error(), want), "message: %s", mm_last_error());
        CHECK(message_names(mm_safetensors_path(f)));
        free(got);
    }
}

MM_TEST(safetensors_reads_numpy_package_file)
{
    mm_safetensors *f;
    const char *p = FIXTURES "numpy.safetensors";
    mm_status s = mm_safetensors_open(&f, p);
    CHECK_MSG(s == MM_OK, "%s", mm_last_error());
    if (s != MM_OK) return;
    CHECK_EQ_INT(mm_safetensors_count(f), 9);
    check_entry(f, "f32", "F32", 1, 3, (int64_t[]){2, 3, 4});
    check_entry(f, "u8", "U8", 1, 1, (int64_t[]){5});
    check_entry(f, "u16", "U16", 1, 2, (int64_t[]){3, 2});
    check_entry(f, "i32", "I32", 1, 4, (int64_t[]){2, 2, 2, 2});
    check_entry(f, "scalar", "F32", 1, 0, NULL);
    check_entry(f, "empty", "F32", 1, 2, (int64_t[]){0, 3});
    check_entry(f, "f64", "F64", 0, 1, (int64_t[]){3});
    check_entry(f, "f16", "F16", 0, 2, (int64_t[]){2, 2});
    check_entry(f, "i64", "I64", 0, 1, (int64_t[]){4});
    CHECK(mm_safetensors_find(f, "nope") == NULL);
    CHECK(!strcmp(mm_safetensors_meta(f, "format"), "np"));
    CHECK(!strcmp(mm_safetensors_meta(f, "step"), "3"));
    CHECK(mm_safetensors_meta(f, "nope") == NULL);
    CHECK_EQ_INT(mm_safetensors_meta_count(f), 2);
    /* entries come in data order */
    for (int i = 1; i < mm_safetensors_count(f); i++)
        CHECK(mm_safetensors_entry(f, i)->begin >= mm_safetensors_entry(f, i - 1)->end);
    mm_safetensors_close(f);

    /* the same file parsed from memory */
    size_t n;
    void *buf = read_bytes(p, &n);
    CHECK(mm_safetensors_parse(&f, buf, n, "mem") == MM_OK);
    check_entry(f, "i32", "I32", 1, 4, (int64_t[]){2, 2, 2, 2});
    check_entry(f, "f16", "F16", 0, 2, (int64_t[]){2, 2});
    mm_safetensors_close(f);
    free(buf);
}

MM_TEST(safetensors_reads_torch_file)
{
    mm_safetensors *f;
    const char *p = FIXTURES "torch.safetensors";
    mm_status s = mm_safetensors_open(&f, p);
    CHECK_MSG(s == MM_OK, "%s", mm_last_error());
    if (s != MM_OK) return;
    check_entry(f, "layer.weight", "BF16", 1, 2, (int64_t[]){4, 3});
    check_entry(f, "conv1.weight", "F32", 1, 4, (int64_t[]){2, 1, 3, 3});
    check_entry(f, "bn1.num_batches_tracked", "I64", 0, 0, NULL);
    CHECK(!strcmp(mm_safetensors_meta(f, "format"), "pt"));

    float w[18], want[18];
    fill_expected(want, MM_F32, 18);
    CHECK(mm_safetensors_load(f, "conv1.weight", MM_F32, 4, (int64_t[]){2, 1, 3, 3}, w) == MM_OK);
    CHECK(!memcmp(w, want, sizeof w));
    CHECK_EQ_INT(mm_safetensors_load(f, "conv1.weight", MM_F32, 4, (int64_t[]){2, 3, 1, 3}, w),
                 MM_ERR_SHAPE);
    CHECK(message_names(p) && strstr(mm_last_error(), "has shape [2, 1, 3, 3], expected "
                                                      "[2, 3, 1, 3]"));
    CHECK_EQ_INT(mm_safetensors_load(f, "conv1.weight", MM_I32, 4, (int64_t[]){2, 1, 3, 3}, w),
                 MM_ERR_FORMAT);
    CHECK(message_names(p) && strstr(mm_last_error(), "dtype F32, expected I32"));
    CHECK_EQ_INT(mm_safetensors_load(f, "fc.weight", MM_F32, 1, (int64_t[]){2}, w),
                 MM_ERR_FORMAT);
    CHECK(message_names(p) && strstr(mm_last_error(), "no tensor \"fc.weight\""));
    mm_safetensors_close(f);
}

/* Weights saved in float16, bfloat16 or float64 (numpy's F16 and F64, torch's BF16) read as
 * float32: the fixtures' values are exact in each, so the float32 formula is what comes back. */
MM_TEST(safetensors_reads_half_bfloat16_and_double_as_float32)
{
    const char *files[] = {FIXTURES "numpy.safetensors", FIXTURES "numpy.safetensors",
                           FIXTURES "torch.safetensors"};
    const char *names[] = {"f16", "f64", "layer.weight"};
    const int64_t shapes[][2] = {{2, 2}, {3, 0}, {4, 3}};
    const int ndims[] = {2, 1, 2};
    for (int k = 0; k < 3; k++) {
        mm_safetensors *f;
        CHECK(mm_safetensors_open(&f, files[k]) == MM_OK);
        float got[12] = {0}, want[12];
        fill_expected(want, MM_F32, 12);
        const mm_st_entry *e = mm_safetensors_find(f, names[k]);
        CHECK(mm_safetensors_is_float(e));
        CHECK(mm_safetensors_read_f32(f, e, got) == MM_OK);
        CHECK_MSG(!memcmp(got, want, (size_t)e->numel * 4), "%s", names[k]);
        memset(got, 0, sizeof got);
        CHECK_MSG(mm_safetensors_load(f, names[k], MM_F32, ndims[k], shapes[k], got) == MM_OK,
                  "%s", mm_last_error());
        CHECK_MSG(!memcmp(got, want, (size_t)e->numel * 4), "%s", names[k]);
        mm_safetensors_close(f);
    }
    /* integers are not floats */
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, FIXTURES "numpy.safetensors") == MM_OK);
    const mm_st_entry *e = mm_safetensors_find(f, "i64");
    float got[4];
    CHECK(!mm_safetensors_is_float(e));
    CHECK_EQ_INT(mm_safetensors_read_f32(f, e, got), MM_ERR_UNSUPPORTED);
    CHECK(strstr(mm_last_error(), "tensor \"i64\" is I64"));
    CHECK_EQ_INT(mm_safetensors_load(f, "i32", MM_F32, 4, (int64_t[]){2, 2, 2, 2}, got),
                 MM_ERR_FORMAT);
    mm_safetensors_close(f);
}

MM_TEST(safetensors_round_trip_every_dtype_and_rank)
{
    const mm_dtype dtypes[] = {MM_F32, MM_U8, MM_U16, MM_I32, MM_BF16};
    enum { N = 5 * (MM_MAX_DIMS + 1) + 1 };
    mm_st_tensor t[N];
    char names[N][32];
    int k = 0;
    for (int di = 0; di < 5; di++) {
        for (int ndim = 0; ndim <= MM_MAX_DIMS; ndim++, k++) {
            snprintf(names[k], sizeof names[k], "t.%s.r%d", mm_dtype_name(dtypes[di]), ndim);
            t[k].name = names[k];
            t[k].dtype = dtypes[di];
            t[k].ndim = ndim;
            for (int i = 0; i < ndim; i++) t[k].shape[i] = 1 + (i * 5 + ndim + di) % 3;
            size_t bytes = (size_t)mm_shape_numel(ndim, t[k].shape) * mm_dtype_size(dtypes[di]);
            uint8_t *d = malloc(bytes);
            for (size_t i = 0; i < bytes; i++) d[i] = (uint8_t)(i * 13 + k);
            t[k].data = d;
        }
    }
    t[k] = (mm_st_tensor){.name = "empty", .dtype = MM_F32, .ndim = 2, .shape = {3, 0}};
    k++;
    mm_st_meta meta[] = {{"step", "12"}, {"config", "{\"net\": \"resnet50\"}"}, {"ünï", "cödé"}};
    const char *path = tmp_path("rt.safetensors");
    mm_status s = mm_safetensors_write(path, t, N, meta, 3);
    CHECK_MSG(s == MM_OK, "%s", mm_last_error());

    /* The layout the reference writer uses: header padded with spaces to 8 bytes. */
    size_t n;
    uint8_t *raw = read_bytes(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    CHECK_EQ_INT(hlen % 8, 0);
    CHECK(raw[8] == '{');
    size_t end = 8 + (size_t)hlen;
    while (end > 8 && raw[end - 1] == ' ') end--;
    CHECK(raw[end - 1] == '}' && 8 + hlen - end < 8);
    free(raw);

    mm_safetensors *f;
    s = mm_safetensors_open(&f, path);
    CHECK_MSG(s == MM_OK, "%s", mm_last_error());
    if (s != MM_OK) return;
    CHECK_EQ_INT(mm_safetensors_count(f), N);
    for (int i = 0; i < N; i++) {
        const mm_st_entry *e = mm_safetensors_entry(f, i);
        CHECK(!strcmp(e->name, t[i].name)); /* laid out in the order given */
        CHECK(e->supported && e->dtype == t[i].dtype);
        CHECK(mm_shape_equal(e->ndim, e->shape, t[i].ndim, t[i].shape));
        void *got = malloc(e->bytes + 1);
        CHECK(mm_safetensors_load(f, t[i].name, t[i].dtype, t[i].ndim, t[i].shape, got) == MM_OK);
        CHECK(e->bytes == 0 || !memcmp(got, t[i].data, e->bytes));
        free(got);
    }
    CHECK(!strcmp(mm_safetensors_meta(f, "step"), "12"));
    CHECK(!strcmp(mm_safetensors_meta(f, "config"), "{\"net\": \"resnet50\"}"));
    CHECK(!strcmp(mm_safetensors_meta(f, "ünï"), "cödé"));
    mm_safetensors_close(f);
    for (int i = 0; i < N; i++) free((void *)t[i].data);
    CHECK_EQ_INT(files_in_tmpdir(), 1);

    /* no tensors and no metadata is a valid file too */
    CHECK(mm_safetensors_write(path, NULL, 0, NULL, 0) == MM_OK);
    CHECK(mm_safetensors_open(&f, path) == MM_OK);
    CHECK_EQ_INT(mm_safetensors_count(f), 0);
    mm_safetensors_close(f);
}

MM_TEST(safetensors_streaming_writer)
{
    float a[10], b[7];
    mm_test_fill_uniform(a, 10, 1, -1, 1);
    mm_test_fill_uniform(b, 7, 2, -1, 1);
    mm_st_tensor t[] = {{.name = "a", .dtype = MM_F32, .ndim = 1, .shape = {10}},
                        {.name = "z", .dtype = MM_F32, .ndim = 1, .shape = {0}},
                        {.name = "b", .dtype = MM_F32, .ndim = 2, .shape = {7, 1}}};
    const char *path = tmp_path("s.safetensors");
    mm_st_writer *w;
    CHECK(mm_st_writer_open(&w, path, t, 3, NULL, 0) == MM_OK);
    /* pieces that straddle the boundary between tensors */
    CHECK(mm_st_writer_put(w, a, 12) == MM_OK);
    CHECK(mm_st_writer_put(w, (uint8_t *)a + 12, 28) == MM_OK);
    CHECK(mm_st_writer_put(w, b, 28) == MM_OK);
    CHECK(mm_st_writer_finish(w) == MM_OK);
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, path) == MM_OK);
    float ga[10], gb[7];
    CHECK(mm_safetensors_load(f, "a", MM_F32, 1, (int64_t[]){10}, ga) == MM_OK);
    CHECK(mm_safetensors_load(f, "b", MM_F32, 2, (int64_t[]){7, 1}, gb) == MM_OK);
    CHECK(!memcmp(ga, a, sizeof a) && !memcmp(gb, b, sizeof b));
    mm_safetensors_close(f);

    /* Too few bytes: finish() fails and the previous file is intact; too many: put() fails. */
    CHECK(mm_st_writer_open(&w, path, t, 3, NULL, 0) == MM_OK);
    CHECK(mm_st_writer_put(w, a, 40) == MM_OK);
    CHECK_EQ_INT(mm_st_writer_finish(w), MM_ERR_ARG);
    CHECK(mm_st_writer_open(&w, path, t, 3, NULL, 0) == MM_OK);
    CHECK(mm_st_writer_put(w, a, 40) == MM_OK);
    CHECK_EQ_INT(mm_st_writer_put(w, b, 32), MM_ERR_ARG);
    CHECK(mm_st_writer_open(&w, path, t, 3, NULL, 0) == MM_OK);
    CHECK(mm_st_writer_put(w, a, 40) == MM_OK);
    mm_st_writer_abort(w); /* a crash half-way through */
    CHECK(mm_safetensors_open(&f, path) == MM_OK);
    CHECK(mm_safetensors_load(f, "b", MM_F32, 2, (int64_t[]){7, 1}, gb) == MM_OK);
    CHECK(!memcmp(gb, b, sizeof b));
    mm_safetensors_close(f);
    CHECK_EQ_INT(files_in_tmpdir(), 1);
}

MM_TEST(safetensors_writer_rejects_bad_lists)
{
    float x[4] = {0};
    const char *path = tmp_path("w.safetensors");
    mm_st_tensor dup[] = {{.name = "a", .dtype = MM_F32, .ndim = 1, .shape = {4}, .data = x},
                          {.name = "a", .dtype = MM_F32, .ndim = 1, .shape = {4}, .data = x}};
    CHECK_EQ_INT(mm_safetensors_write(path, dup, 2, NULL, 0), MM_ERR_ARG);
    CHECK(message_names(path) && strstr(mm_last_error(), "used twice"));
    mm_st_tensor reserved[] = {
        {.name = "__metadata__", .dtype = MM_F32, .ndim = 1, .shape = {4}, .data = x}};
    CHECK_EQ_INT(mm_safetensors_write(path, reserved, 1, NULL, 0), MM_ERR_ARG);
    mm_st_tensor utf[] = {{.name = "\xff\xfe", .dtype = MM_F32, .ndim = 1, .shape = {4}, .data = x}};
    CHECK_EQ_INT(mm_safetensors_write(path, utf, 1, NULL, 0), MM_ERR_ARG);
    mm_st_tensor neg[] = {{.name = "n", .dtype = MM_F32, .ndim = 1, .shape = {-4}, .data = x}};
    CHECK_EQ_INT(mm_safetensors_write(path, neg, 1, NULL, 0), MM_ERR_ARG);
    mm_st_tensor huge[] = {{.name = "h", .dtype = MM_U8, .ndim = 3,
                            .shape = {(int64_t)1 << 62, 3, 0}, .data = x}};
    CHECK_EQ_INT(mm_safetensors_write(path, huge, 1, NULL, 0), MM_ERR_ARG);
    mm_st_tensor rank[] = {{.name = "r", .dtype = MM_F32, .ndim = 7, .data = x}};
    CHECK_EQ_INT(mm_safetensors_write(path, rank, 1, NULL, 0), MM_ERR_ARG);
    mm_st_meta meta_dup[] = {{"k", "1"}, {"k", "2"}};
    CHECK_EQ_INT(mm_safetensors_write(path, NULL, 0, meta_dup, 2), MM_ERR_ARG);
    CHECK_EQ_INT(files_in_tmpdir(), 0);
    CHECK_EQ_INT(mm_safetensors_write("/nonexistent-dir/x.safetensors", NULL, 0, NULL, 0),
                 MM_ERR_IO);
    CHECK(message_names("/nonexistent-dir/x.safetensors"));
}

/* A safetensors file with the given header (unpadded) and `data` bytes after it. */
static void write_st(const char *path, const char *json, size_t data)
{
    size_t len = strlen(json), n = 8 + len + data;
    uint8_t *b = calloc(1, n + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(b + 8, json, len);
    write_bytes(path, b, n);
    free(b);
}

MM_TEST(safetensors_malformed_headers)
{
    static const struct {
        const char *json;
        size_t data;
        mm_status want;
        const char *says; /* part of the message */
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MM_OK, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ", 8, MM_OK, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, MM_OK,
         ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, MM_ERR_FORMAT,
         "not valid JSON"},
        {"not json at all", 8, MM_ERR_FORMAT, "not valid JSON"},
        {"[1, 2, 3]", 0, MM_ERR_FORMAT, "not a JSON object"},
        {"\"str\"", 0, MM_ERR_FORMAT, "not valid JSON"},
        {"{\"a\":5}", 0, MM_ERR_FORMAT, "not a JSON object"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT, "no \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT, "no \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, MM_ERR_FORMAT, "no \"data_offsets\""},
        {"{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "dtype is not a string"},
        {"{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "unknown dtype"},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "shape is not a JSON array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
         8, MM_ERR_FORMAT, "absurdly large"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4611686018427387904,3,0],\"data_offsets\":[0,0]}}",
         0, MM_ERR_FORMAT, "absurdly large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,0],\"data_offsets\":[0,0]}}", 0,
         MM_OK, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}",
         8, MM_ERR_FORMAT, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, MM_ERR_FORMAT,
         "not an array [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"b\":0}}}", 8,
         MM_ERR_FORMAT, "not an array [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.5]}}", 8, MM_ERR_FORMAT,
         "not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, MM_ERR_FORMAT,
         "end before they begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7, MM_ERR_FORMAT,
         "past the end of the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, MM_ERR_FORMAT,
         "negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "need 12"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
         8, MM_ERR_FORMAT, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         8, MM_ERR_FORMAT, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, MM_ERR_FORMAT,
         "unused bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, MM_ERR_FORMAT,
         "after the last tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, MM_ERR_FORMAT, "duplicate"},
        {"{\"__metadata__\":[\"x\"]}", 0, MM_ERR_FORMAT, "__metadata__"},
        {"{\"__metadata__\":{\"step\":3}}", 0, MM_ERR_FORMAT, "not a string"},
        {"{\"__metadata__\":{\"step\":\"3\"}}", 0, MM_OK, ""},
        {"{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MM_ERR_FORMAT,
         "not valid JSON"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         MM_ERR_FORMAT, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         MM_OK, ""}, /* opens; reading it says rank 7 is unsupported */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char name[32];
        snprintf(name, sizeof name, "case%zu.safetensors", k);
        const char *path = tmp_path(name);
        write_st(path, cases[k].json, cases[k].data);
        mm_safetensors *f = NULL;
        mm_clear_error();
        mm_status s = mm_safetensors_open(&f, path);
        CHECK_MSG(s == cases[k].want, "case %zu (%s): status %d, want %d: %s", k, cases[k].json,
                  (int)s, (int)cases[k].want, mm_last_error());
        if (s != MM_OK) {
            CHECK(f == NULL);
            CHECK_MSG(message_names(path), "case %zu", k);
            CHECK_MSG(strstr(mm_last_error(), cases[k].says), "case %zu: message \"%s\" lacks "
                      "\"%s\"", k, mm_last_error(), cases[k].says);
        } else {
            mm_safetensors_close(f);
        }
        /* The in-memory parser says the same. */
        size_t n;
        void *buf = read_bytes(path, &n);
        s = mm_safetensors_parse(&f, buf, n, "mem");
        CHECK_MSG(s == cases[k].want, "case %zu from memory: %s", k, mm_last_error());
        if (s == MM_OK) mm_safetensors_close(f);
        free(buf);
    }
    /* a tensor of rank 7 opens but cannot be read */
    const char *path = tmp_path("rank7.safetensors");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
             8);
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, path) == MM_OK);
    const mm_st_entry *e = mm_safetensors_entry(f, 0);
    float x[2];
    CHECK(!e->supported && e->ndim == 7);
    CHECK_EQ_INT(mm_safetensors_read(f, e, x, 8), MM_ERR_UNSUPPORTED);
    CHECK(message_names(path) && strstr(mm_last_error(), "7 dimensions"));
    mm_safetensors_close(f);
}

MM_TEST(safetensors_malformed_prefixes)
{
    const char *path = tmp_path("p.safetensors");
    mm_safetensors *f;
    /* empty and shorter than the 8-byte length */
    for (size_t len = 0; len < 8; len++) {
        write_bytes(path, "\x10\0\0\0\0\0\0\0", len);
        CHECK_EQ_INT(mm_safetensors_open(&f, path), MM_ERR_FORMAT);
        CHECK(message_names(path) && strstr(mm_last_error(), "too short"));
    }
    /* header length past the end of the file */
    uint8_t b[64] = {60, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(path, b, 10);
    CHECK_EQ_INT(mm_safetensors_open(&f, path), MM_ERR_FORMAT);
    CHECK(message_names(path) && strstr(mm_last_error(), "past the end"));
    /* absurd lengths, including ones that overflow 8 + N */
    const uint64_t absurd[] = {(uint64_t)1 << 40, ~(uint64_t)0, ~(uint64_t)0 - 7, MM_ST_MAX_HEADER + 1};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(absurd[k] >> (8 * i));
        write_bytes(path, b, 64);
        CHECK_EQ_INT(mm_safetensors_open(&f, path), MM_ERR_FORMAT);
        CHECK(message_names(path) && strstr(mm_last_error(), "absurdly large"));
    }
    /* zero-length and one-byte headers */
    memset(b, 0, 8);
    write_bytes(path, b, 8);
    CHECK_EQ_INT(mm_safetensors_open(&f, path), MM_ERR_FORMAT);
    b[0] = 1;
    b[8] = '{';
    write_bytes(path, b, 9);
    CHECK_EQ_INT(mm_safetensors_open(&f, path), MM_ERR_FORMAT);
    /* a real file truncated anywhere is refused */
    size_t n;
    uint8_t *good = read_bytes(FIXTURES "torch.safetensors", &n);
    for (size_t len = 0; len < n; len += 7) {
        write_bytes(path, good, len);
        CHECK_MSG(mm_safetensors_open(&f, path) != MM_OK, "truncated to %zu of %zu", len, n);
        CHECK(message_names(path));
    }
    free(good);
    CHECK_EQ_INT(mm_safetensors_open(&f, "/nonexistent/x.safetensors"), MM_ERR_IO);
    CHECK(message_names("/nonexistent/x.safetensors"));
    CHECK_EQ_INT(mm_safetensors_open(&f, mm_test_tmpdir()), MM_ERR_IO);
}

MM_TEST(safetensors_file_shrinking_after_open)
{
    float x[64];
    mm_test_fill_uniform(x, 64, 3, 0, 1);
    mm_st_tensor t[] = {{.name = "x", .dtype = MM_F32, .ndim = 1, .shape = {64}, .data = x}};
    const char *path = tmp_path("shrink.safetensors");
    CHECK(mm_safetensors_write(path, t, 1, NULL, 0) == MM_OK);
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, path) == MM_OK);
    CHECK(truncate(path, 100) == 0);
    float y[64];
    CHECK_EQ_INT(mm_safetensors_read(f, mm_safetensors_entry(f, 0), y, sizeof y), MM_ERR_IO);
    CHECK(message_names(path));
    mm_safetensors_close(f);
}
