/* PyTorch checkpoints (runtime/torch_pth.h): files written by torch.save itself
 * (tests/fixtures/pth, made by make_pth_fixtures.py) in both of its formats and pickle protocols
 * (and one as Python 2 wrote them) read to the values PyTorch holds: views, shared storages,
 * every dtype, parameters; a training checkpoint's state_dict found and DataParallel's prefix
 * removed; what is not a state_dict refused in one line naming the file; every truncation and
 * damaged byte refused or read, never a crash (ASan/UBSan in CI); a torchvision-named net loaded
 * through mm_model_load; what a state_dict is (net, width, kind) read from its tensors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nets/nets.h"
#include "runtime/npy.h"
#include "runtime/torch_pth.h"
#include "tests/harness.h"
#include "tests/io_files.h"
#include "train/checkpoint.h"

#define PTH MM_SOURCE_DIR "/tests/fixtures/pth/"

/* Entry `name` has this dtype and shape; its bytes returned (malloc), or NULL. */
static void *entry(const mm_safetensors *f, const char *name, const char *dtype, int ndim,
                   const int64_t *shape)
{
    const mm_st_entry *e = mm_safetensors_find(f, name);
    CHECK_MSG(e != NULL, "no tensor %s", name);
    if (!e) return NULL;
    CHECK_MSG(!strcmp(e->dtype_name, dtype), "%s: dtype %s, expected %s", name, e->dtype_name,
              dtype);
    CHECK_MSG(mm_shape_equal(e->ndim, e->shape, ndim, shape), "%s: shape", name);
    void *buf = malloc(e->bytes + 1);
    CHECK(mm_safetensors_read(f, e, buf, e->bytes) == MM_OK);
    return buf;
}

/* A float tensor of the fixture formula (i - 7) / 8, as F32. */
static void check_formula(const mm_safetensors *f, const char *name, int ndim,
                          const int64_t *shape)
{
    float *got = entry(f, name, "F32", ndim, shape);
    if (!got) return;
    int64_t n = mm_shape_numel(ndim, shape);
    for (int64_t i = 0; i < n; i++)
        if (got[i] != (float)((double)(i - 7) * 0.125)) {
            CHECK_MSG(0, "%s[%lld] = %g", name, (long long)i, got[i]);
            break;
        }
    free(got);
}

/* A float tensor equal, bit for bit, to PyTorch's contiguous float32 copy in PTH<npy>. */
static void check_npy(const mm_safetensors *f, const char *name, const char *npy)
{
    mm_npy_array want;
    CHECK_MSG(mm_npy_load(&want, npy) == MM_OK, "%s", mm_last_error());
    float *got = entry(f, name, "F32", want.ndim, want.shape);
    if (got) CHECK_MSG(!memcmp(got, want.data, (size_t)want.numel * 4), "%s: values", name);
    free(got);
    mm_npy_array_free(&want);
}

/* The state fixture's every tensor, read from `path` of format `source` (its metadata). */
static void check_state(const char *path, const char *source)
{
    mm_safetensors *f;
    mm_status st = mm_weights_open(&f, path);
    CHECK_MSG(st == MM_OK, "%s", mm_last_error());
    if (st != MM_OK) return;
    CHECK_EQ_INT(mm_safetensors_count(f), 17);
    /* in the dict's order */
    CHECK(!strcmp(mm_safetensors_entry(f, 0)->name, "conv.weight"));
    CHECK(!strcmp(mm_safetensors_entry(f, 16)->name, "half_special"));
    CHECK(!strcmp(mm_safetensors_meta(f, "format"), "pt"));
    CHECK(!strcmp(mm_safetensors_meta(f, "mammo.source"), source));
    check_formula(f, "conv.weight", 4, (int64_t[]){2, 3, 3, 3});
    check_npy(f, "view.t", PTH "view_t.npy");
    check_npy(f, "expand", PTH "expand.npy");
    check_formula(f, "shared.a", 1, (int64_t[]){4});
    check_npy(f, "shared.b", PTH "shared_b.npy");
    check_formula(f, "half", 2, (int64_t[]){2, 2});
    check_formula(f, "bf16", 2, (int64_t[]){4, 3});
    check_formula(f, "double", 1, (int64_t[]){3});
    check_formula(f, "scalar", 0, NULL);
    check_formula(f, "param", 1, (int64_t[]){3});
    check_npy(f, "half_special", PTH "half_special.npy");
    float *empty = entry(f, "empty", "F32", 2, (int64_t[]){0, 3});
    free(empty);
    int32_t *ints = entry(f, "ints", "I32", 2, (int64_t[]){2, 3});
    for (int i = 0; ints && i < 6; i++) CHECK_EQ_INT(ints[i], i * 1000003 - 5000000);
    free(ints);
    uint8_t *u8 = entry(f, "u8", "U8", 1, (int64_t[]){5});
    for (int i = 0; u8 && i < 5; i++) CHECK_EQ_INT(u8[i], (i * 37) % 256);
    free(u8);
    /* dtypes mammo holds no type for: their entries, which reading refuses */
    const char *names[] = {"bn.num_batches_tracked", "i16", "mask"}, *dtypes[] = {"I64", "I16",
                                                                                   "BOOL"};
    for (int k = 0; k < 3; k++) {
        const mm_st_entry *e = mm_safetensors_find(f, names[k]);
        CHECK_MSG(e && !strcmp(e->dtype_name, dtypes[k]) && !e->supported, "%s", names[k]);
    }
    CHECK(mm_safetensors_find(f, "i16")->numel == 3 && mm_safetensors_find(f, "mask")->numel == 4);
    mm_safetensors_close(f);
}

MM_TEST(zip_format_reads_every_tensor) { check_state(PTH "state.pth", "torch.save"); }

MM_TEST(legacy_format_reads_every_tensor)
{
    check_state(PTH "state_legacy.pth", "torch.save legacy");
}

MM_TEST(pickle_protocol_4_reads_every_tensor) { check_state(PTH "state_p4.pth", "torch.save"); }

/* The legacy format as Python 2 wrote it (torchvision's 2017 files): strings as BINSTRING. */
MM_TEST(python2_strings_read_every_tensor)
{
    check_state(PTH "state_py2.pth", "torch.save legacy");
}

MM_TEST(checkpoint_dict_gives_its_state_dict_without_module_prefix)
{
    const char *paths[] = {PTH "checkpoint.pth", PTH "checkpoint_legacy.pth"};
    for (int k = 0; k < 2; k++) {
        mm_safetensors *f;
        mm_status st = mm_weights_open(&f, paths[k]);
        CHECK_MSG(st == MM_OK, "%s", mm_last_error());
        if (st != MM_OK) continue;
        CHECK_EQ_INT(mm_safetensors_count(f), 2);
        check_formula(f, "a.weight", 2, (int64_t[]){2, 2});
        check_formula(f, "a.bias", 1, (int64_t[]){2});
        mm_safetensors_close(f);
    }
}

static void check_refused(const char *path, mm_status want, const char *says)
{
    mm_safetensors *f = NULL;
    CHECK_EQ_INT(mm_weights_open(&f, path), want);
    CHECK(f == NULL);
    CHECK(message_names(path));
    CHECK_MSG(strstr(mm_last_error(), says) != NULL, "message: %s", mm_last_error());
}

static void check_refused_info(const char *path, const char *says)
{
    mm_checkpoint_info info;
    CHECK(mm_checkpoint_info_read(path, &info) != MM_OK);
    CHECK(message_names(path));
    CHECK_MSG(strstr(mm_last_error(), says) != NULL, "message: %s", mm_last_error());
}

MM_TEST(what_is_not_a_state_dict_is_refused_in_one_line)
{
    check_refused(PTH "module.pth", MM_ERR_UNSUPPORTED,
                  "holds a pickled torch.nn.modules.linear.Linear object, not a state_dict");
    check_refused(PTH "no_tensors.pth", MM_ERR_FORMAT, "the file's dict has the keys: epoch, lr");
    check_refused(PTH "deflated.pth", MM_ERR_UNSUPPORTED, "is compressed (zip method 8)");
    check_refused(PTH "expanded_huge.pth", MM_ERR_UNSUPPORTED, "expanded views (stride 0)?");
}

/* Every prefix of the file is refused (naming it); every byte changed reads or is refused. */
static void check_damage(const char *fixture)
{
    size_t n;
    uint8_t *data = read_bytes(fixture, &n);
    CHECK(data != NULL && n > 100);
    if (!data) return;
    int accepted = 0;
    for (size_t len = 0; len < n; len++) {
        mm_safetensors *f = NULL;
        uint8_t *copy = malloc(len + 1); /* exactly len bytes readable, for ASan */
        memcpy(copy, data, len);
        if (mm_pth_parse(&f, copy, len, "cut.pth") == MM_OK) {
            accepted++;
            mm_safetensors_close(f);
        } else if (!strstr(mm_last_error(), "cut.pth")) {
            CHECK_MSG(0, "message does not name the file: %s", mm_last_error());
        }
        free(copy);
    }
    CHECK_EQ_INT(accepted, 0);
    for (size_t at = 0; at < n; at++) {
        mm_safetensors *f = NULL;
        data[at] ^= 0x5a;
        if (mm_pth_parse(&f, data, n, "bad.pth") == MM_OK)
            mm_safetensors_close(f);
        else if (!strstr(mm_last_error(), "bad.pth"))
            CHECK_MSG(0, "byte %zu: message does not name the file: %s", at, mm_last_error());
        data[at] ^= 0x5a;
    }
    free(data);
}

MM_TEST(truncated_and_damaged_files_are_refused_never_a_crash)
{
    check_damage(PTH "state.pth");
    check_damage(PTH "state_legacy.pth");
    check_damage(PTH "checkpoint_legacy.pth");
}

MM_TEST(weights_open_takes_either_format_by_its_bytes)
{
    mm_safetensors *f;
    /* safetensors as before */
    CHECK(mm_weights_open(&f, FIXTURES "torch.safetensors") == MM_OK);
    CHECK(mm_safetensors_find(f, "conv1.weight") != NULL);
    mm_safetensors_close(f);
    /* a PyTorch file under any name */
    char *renamed = tmp_path("weights.safetensors");
    size_t n;
    void *bytes = read_bytes(PTH "checkpoint.pth", &n);
    write_bytes(renamed, bytes, n);
    free(bytes);
    CHECK(mm_weights_open(&f, renamed) == MM_OK);
    CHECK(mm_safetensors_find(f, "a.weight") != NULL);
    mm_safetensors_close(f);
    /* neither: the safetensors reader's message; a missing file: an I/O error naming it */
    char *text = tmp_path("notes.txt");
    write_bytes(text, "just some text, not weights\n", 28);
    CHECK_EQ_INT(mm_weights_open(&f, text), MM_ERR_FORMAT);
    CHECK(message_names(text));
    /* PyTorch 0.1's tar archives: said so */
    char *tar = tmp_path("old.pth");
    char block[512] = "tensors";
    memcpy(block + 257, "ustar", 5);
    write_bytes(tar, block, sizeof block);
    CHECK_EQ_INT(mm_weights_open(&f, tar), MM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(mm_last_error(), "a tar archive, as PyTorch 0.1 saved"), "%s",
              mm_last_error());
    CHECK_EQ_INT(mm_weights_open(&f, "/nonexistent/w.pth"), MM_ERR_IO);
    CHECK(message_names("/nonexistent/w.pth"));
}

/* The net fixture's formula: element i of tensor `name` (make_pth_fixtures.py). */
static float net_value(const char *name, int64_t i)
{
    return (float)((double)((i * 7 + (int64_t)strlen(name) * 13) % 17 - 8) / 64.0);
}

MM_TEST(model_loads_torchvision_named_checkpoint)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_VGG16);
    c.width_div = 16;
    c.height = c.width = 32;
    mm_backend *cpu;
    CHECK(mm_backend_create("cpu", &cpu) == MM_OK);
    mm_model m;
    mm_session s;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    CHECK(mm_session_init(&s, m.g, cpu, 0) == MM_OK);
    mm_model_init(&m, &s, 5);
    mm_status st = mm_model_load(&m, &s, PTH "vgg16_patch_w16.pth", MM_LOAD_ALL);
    CHECK_MSG(st == MM_OK, "%s", mm_last_error());
    /* saved again in PyTorch's layout, every tensor is the fixture's */
    char *path = tmp_path("vgg16_w16.safetensors");
    CHECK(mm_model_save(&m, &s, path) == MM_OK);
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, path) == MM_OK);
    CHECK_EQ_INT(mm_safetensors_count(f), 28);
    for (int k = 0; k < mm_safetensors_count(f); k++) {
        const mm_st_entry *e = mm_safetensors_entry(f, k);
        float *w = malloc(e->bytes + 1);
        CHECK(mm_safetensors_read(f, e, w, e->bytes) == MM_OK);
        for (int64_t i = 0; i < e->numel; i++)
            if (w[i] != net_value(e->name, i)) {
                CHECK_MSG(0, "%s[%lld] = %g, expected %g", e->name, (long long)i, w[i],
                          net_value(e->name, i));
                break;
            }
        free(w);
    }
    mm_safetensors_close(f);
    /* a file of another net is refused by name, as a safetensors file is */
    mm_model r;
    mm_session rs;
    mm_model_config rc = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_RESNET50);
    rc.width_div = 16;
    rc.height = rc.width = 32;
    CHECK(mm_model_build(&r, &rc) == MM_OK);
    CHECK(mm_session_init(&rs, r.g, cpu, 0) == MM_OK);
    CHECK_EQ_INT(mm_model_load(&r, &rs, PTH "vgg16_patch_w16.pth", MM_LOAD_ALL), MM_ERR_FORMAT);
    CHECK_MSG(strstr(mm_last_error(), "tensor 'features.0.weight' is not part of the resnet50"),
              "%s", mm_last_error());
    mm_session_free(&rs);
    mm_model_free(&r);
    mm_session_free(&s);
    mm_model_free(&m);
    mm_backend_destroy(cpu);
}

MM_TEST(checkpoint_info_reads_what_a_state_dict_is_from_its_tensors)
{
    mm_checkpoint_info info;
    mm_status st = mm_checkpoint_info_read(PTH "vgg16_patch_w16.pth", &info);
    CHECK_MSG(st == MM_OK, "%s", mm_last_error());
    CHECK_EQ_INT(info.kind, MM_MODEL_PATCH);
    CHECK_EQ_INT(info.trunk, MM_TRUNK_VGG16);
    CHECK_EQ_INT(info.width_div, 16);
    CHECK_EQ_INT(info.classes, 5);
    st = mm_checkpoint_info_read(PTH "resnet50_w16_names.pth", &info);
    CHECK_MSG(st == MM_OK, "%s", mm_last_error());
    CHECK_EQ_INT(info.kind, MM_MODEL_TORCHVISION);
    CHECK_EQ_INT(info.trunk, MM_TRUNK_RESNET50);
    CHECK_EQ_INT(info.width_div, 16);
    CHECK_EQ_INT(info.classes, 1000);
    check_refused_info(PTH "whole_names.pth", "its top blocks are not written in it");
    check_refused_info(PTH "state.pth", "neither torchvision's ResNet50 nor its VGG16");
}
