/* PyTorch parity of the nets, against fixtures made by tests/fixtures/make_net_fixtures.py with
 * torch 1.13 / torchvision 0.14 on the CPU (the script's docstring documents every file).
 *
 * The full-size weights are not committed: this test computes them with the same formula as the
 * script (Philox per tensor name, PyTorch layout), writes them as a safetensors file with
 * torchvision's names from the committed manifest (so the names and shapes come from torchvision,
 * not from our builder, and the file holds num_batches_tracked as I64 like a real torchvision
 * checkpoint), and loads that file through the real paths: `mammo forward` for the logits of
 * ResNet50 and VGG16, mm_model_load for one training step of a whole-image model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "kernels/philox.h"
#include "nets/nets.h"
#include "runtime/backend.h"
#include "runtime/npy.h"
#include "runtime/safetensors.h"
#include "runtime/session.h"
#include "tests/harness.h"

#define FIX MM_SOURCE_DIR "/tests/fixtures/nets/"
#define WEIGHT_SALT 0x6D616D6D6F6E6574ULL
#define SAMPLE_SALT 0x73616D706C657321ULL
#define PROJ_SALT 0x70726F6A65637421ULL
#define N_SAMPLES 512

typedef struct man_entry {
    char name[MM_NAME_MAX];
    char kind[16];
    int ndim;
    int64_t shape[MM_MAX_DIMS];
    int64_t numel;
} man_entry;

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Reads "name kind d0xd1x.." lines; returns the count (-1 on error). */
static int read_manifest(const char *path, man_entry **out)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, cap = 64;
    man_entry *e = malloc((size_t)cap * sizeof *e);
    char shape[128];
    while (1) {
        if (n == cap) e = realloc(e, (size_t)(cap *= 2) * sizeof *e);
        man_entry *m = &e[n];
        if (fscanf(f, "%95s %15s %127s", m->name, m->kind, shape) != 3) break;
        m->ndim = 0;
        m->numel = 1;
        if (strcmp(shape, "-") != 0) {
            char *p = shape;
            while (*p) {
                m->shape[m->ndim] = strtoll(p, &p, 10);
                m->numel *= m->shape[m->ndim++];
                if (*p == 'x') p++;
            }
        }
        n++;
    }
    fclose(f);
    *out = e;
    return n;
}

/* The script's formula weights (see its docstring), PyTorch layout. */
static void formula_fill(float *v, const man_entry *e)
{
    uint64_t key = fnv1a64(e->name) ^ WEIGHT_SALT;
    int64_t fan_in = e->ndim > 0 ? e->numel / e->shape[0] : 1;
    float bound = (float)sqrt(6.0 / (double)fan_in);
    const char *k = e->kind;
    size_t len = strlen(e->name);
    bool residual_end = (len >= 8 && !strcmp(e->name + len - 8, "bn3.bias")) ||
                        (len >= 17 && !strcmp(e->name + len - 17, "downsample.1.bias"));
    for (int64_t i = 0; i < e->numel; i++) {
        float u = mm_philox_uniform(key, (uint64_t)i), s = 2.0f * u - 1.0f;
        if (!strcmp(k, "weight"))
            v[i] = s * bound;
        else if (!strcmp(k, "bias"))
            v[i] = s * 0.1f;
        else if (!strcmp(k, "bn_weight"))
            v[i] = 0.25f + 0.25f * u;
        else if (!strcmp(k, "running_var"))
            v[i] = 0.5f + u;
        else if (!strcmp(k, "bn_bias"))
            v[i] = (s < 0.0f && !residual_end) ? -(2.0f + fabsf(s)) : 2.0f + fabsf(s);
        else if (!strcmp(k, "running_mean"))
            v[i] = s * 0.1f;
        else
            MM_ASSERT(0 && "unknown manifest kind");
    }
}

/* Writes a safetensors file by hand (a second writer, independent of runtime/safetensors.c):
 * formula weights for the manifest's entries, running statistics from `stats` when given, I64
 * zeros for "count" entries. `skip` leaves one tensor out; `bad_shape` writes one with its first
 * dimension one larger. Returns 0 on success. */
static int write_weights(const char *path, const man_entry *e, int n, mm_safetensors *stats,
                         const char *skip, const char *bad_shape)
{
    size_t cap = 1 << 16, len = 0;
    char *h = malloc(cap);
    uint64_t off = 0;
    len += (size_t)snprintf(h + len, cap - len, "{");
    int64_t *numel = calloc((size_t)n, sizeof *numel);
    for (int i = 0; i < n; i++) {
        if (skip && !strcmp(e[i].name, skip)) continue;
        bool count = !strcmp(e[i].kind, "count");
        int64_t shape0 = e[i].ndim ? e[i].shape[0] + (bad_shape && !strcmp(e[i].name, bad_shape))
                                   : 0;
        numel[i] = e[i].ndim ? e[i].numel / e[i].shape[0] * shape0 : 1;
        uint64_t bytes = (uint64_t)numel[i] * (count ? 8 : 4);
        if (cap - len < 512) h = realloc(h, cap *= 2);
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                len > 1 ? "," : "", e[i].name, count ? "I64" : "F32");
        for (int d = 0; d < e[i].ndim; d++)
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "",
                                    (long long)(d ? e[i].shape[d] : shape0));
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    if (cap - len < 16) h = realloc(h, cap += 16);
    h[len++] = '}';
    while (len % 8) h[len++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(h, 1, len, f);
    for (int i = 0; i < n; i++) {
        if (skip && !strcmp(e[i].name, skip)) continue;
        if (!strcmp(e[i].kind, "count")) {
            int64_t zero = 0;
            fwrite(&zero, 8, 1, f);
            continue;
        }
        float *v = calloc((size_t)(numel[i] > e[i].numel ? numel[i] : e[i].numel), sizeof *v);
        const mm_st_entry *se = stats ? mm_safetensors_find(stats, e[i].name) : NULL;
        if (se)
            MM_ASSERT(mm_safetensors_read(stats, se, v, se->bytes) == MM_OK);
        else
            formula_fill(v, &e[i]);
        fwrite(v, 4, (size_t)numel[i], f);
        free(v);
    }
    int rc = fclose(f);
    free(h);
    free(numel);
    return rc;
}

static int run_cmd(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void check_forward(const char *net, const char *device)
{
    char manifest[512], path[512], out[512], cmd[2048], input[512], logits[512];
    snprintf(manifest, sizeof manifest, FIX "%s_manifest.txt", net);
    man_entry *e;
    int n = read_manifest(manifest, &e);
    CHECK(n > 0);
    if (n <= 0) return;
    mm_safetensors *stats = NULL;
    if (!strcmp(net, "resnet50"))
        CHECK(mm_safetensors_open(&stats, FIX "resnet50_bn_stats.safetensors") == MM_OK);
    snprintf(path, sizeof path, "%s/w.safetensors", mm_test_tmpdir());
    snprintf(out, sizeof out, "%s/logits.npy", mm_test_tmpdir());
    CHECK(write_weights(path, e, n, stats, NULL, NULL) == 0);
    if (stats) mm_safetensors_close(stats);
    snprintf(input, sizeof input, FIX "%s_input.npy", net);
    snprintf(logits, sizeof logits, FIX "%s_logits.npy", net);
    snprintf(cmd, sizeof cmd, "'%s' forward --net %s --classes 1000 --weights '%s' --input '%s' "
             "--output '%s' --device %s", MM_MAMMO_EXE, net, path, input, out, device);
    CHECK_EQ_INT(run_cmd(cmd), 0);
    mm_npy_array got, want;
    CHECK(mm_npy_load(&want, logits) == MM_OK);
    if (mm_npy_load(&got, out) != MM_OK) {
        CHECK_MSG(0, "no output: %s", mm_last_error());
        mm_npy_array_free(&want);
        free(e);
        return;
    }
    CHECK_EQ_INT(got.ndim, 2);
    CHECK_EQ_INT(got.shape[0], 2);
    CHECK_EQ_INT(got.shape[1], 1000);
    if (got.numel == want.numel) {
        double r = mm_test_rel_max_err(got.data, want.data, got.numel);
        printf("    %s logits on %s: max error %.3g of max |logit|\n", net, device, r);
        CHECK_MSG(r < 1e-4, "%s logits on %s differ from PyTorch: %g relative", net, device, r);
    }
    mm_npy_array_free(&got);
    mm_npy_array_free(&want);
    remove(path);
    free(e);
}

MM_TEST(resnet50_logits_match_pytorch) { check_forward("resnet50", "cpu"); }

MM_TEST(vgg16_logits_match_pytorch) { check_forward("vgg16", "cpu"); }

/* The same on the GPU (fp32); test_nets_parity_emu runs these on the emulated one. */
MM_TEST(resnet50_logits_on_cuda_match_pytorch)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    check_forward("resnet50", "cuda");
}

MM_TEST(vgg16_logits_on_cuda_match_pytorch)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    check_forward("vgg16", "cuda");
}

/* ResNet50 with every convolution larger than 1x1 (the 7x7 stem, the 3x3s) on NCHW copies of
 * its operands (MM_CONV_NCHW=1, kernels/cuda/conv_nchw.h), with torchvision's weights: the
 * copies and transposes of real layer shapes, batch norm and residuals around them. */
MM_TEST(resnet50_logits_on_cuda_nchw_copies_match_pytorch)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    setenv("MM_CONV_NCHW", "1", 1);
    check_forward("resnet50", "cuda");
    unsetenv("MM_CONV_NCHW");
}

/* Our model's parameters and statistics are exactly torchvision's state_dict (names, shapes in
 * PyTorch layout, nothing more, nothing less but num_batches_tracked). */
static void check_names(mm_model_config c, const char *manifest)
{
    man_entry *e;
    int n = read_manifest(manifest, &e);
    CHECK(n > 0);
    mm_model m;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    int matched = 0, expected = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(e[i].kind, "count")) continue;
        expected++;
        int id = mm_graph_find(m.g, e[i].name);
        CHECK_MSG(id >= 0, "%s: torchvision has it, we do not", e[i].name);
        if (id < 0) continue;
        int nd;
        int64_t shape[MM_MAX_DIMS];
        mm_model_torch_shape(&m, id, &nd, shape);
        CHECK_MSG(mm_shape_equal(nd, shape, e[i].ndim, e[i].shape), "%s: shape differs",
                  e[i].name);
        matched++;
    }
    int ours = 0;
    for (int id = 0; id < m.g->n_values; id++) {
        mm_value_kind k = mm_graph_value(m.g, id)->kind;
        ours += k == MM_VALUE_PARAM || k == MM_VALUE_STATE;
    }
    CHECK_EQ_INT(ours, expected);
    CHECK_EQ_INT(matched, expected);
    mm_model_free(&m);
    free(e);
}

MM_TEST(names_and_shapes_are_torchvision)
{
    check_names(mm_model_config_default(MM_MODEL_TORCHVISION, MM_TRUNK_RESNET50),
                FIX "resnet50_manifest.txt");
    check_names(mm_model_config_default(MM_MODEL_TORCHVISION, MM_TRUNK_VGG16),
                FIX "vgg16_manifest.txt");
    mm_model_config w = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    w.top = "[128-64-256]x2";
    check_names(w, FIX "whole_manifest.txt");
}

/* Reads fixture npy `name` into a new buffer of `n` floats/ints (checked). */
static void *load_npy(const char *name, int64_t n)
{
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    mm_npy_array a;
    if (mm_npy_load(&a, path) != MM_OK || a.numel != n) {
        CHECK_MSG(0, "%s: %s", path, mm_last_error());
        return calloc((size_t)n, 4);
    }
    return a.data;
}

/* Checks gradient `name` (ours, converted to PyTorch layout) against the fixture: every compared
 * entry within 1e-3 of the tensor's largest gradient entry (the criterion the logits use too),
 * with a floor of 1e-6 for tensors whose exact gradient is 0 (BN biases followed only by 1x1 convs
 * and BN: both sides give rounding noise of ~1e-7 there). */
/* Largest |ours - want| / (1e-3 tolerance unit) seen, for the report line. */
static double worst_grad;

static void note_worst(const float *got, const float *want, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++)
        worst_grad = fmax(worst_grad, fabs((double)got[i] - want[i]) / fmax(scale, 1e-3));
}

static void check_grad(mm_safetensors *f, const char *name, const float *g, int64_t n)
{
    char key[160];
    snprintf(key, sizeof key, "grad/%s", name);
    const mm_st_entry *full = mm_safetensors_find(f, key);
    if (full) {
        float *want = malloc(full->bytes);
        CHECK(full->numel == n && mm_safetensors_read(f, full, want, full->bytes) == MM_OK);
        double scale = 0;
        for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
        CHECK_ARRAYS(name, g, want, n, 1e-3 * fmax(scale, 1e-3), 0);
        note_worst(g, want, n, scale);
        free(want);
        return;
    }
    float sample[N_SAMPLES], got[N_SAMPLES], sumsq, proj;
    snprintf(key, sizeof key, "sample/%s", name);
    CHECK_MSG(mm_safetensors_load(f, key, MM_F32, 1, (int64_t[]){N_SAMPLES}, sample) == MM_OK,
              "%s", mm_last_error());
    uint64_t skey = fnv1a64(name) ^ SAMPLE_SALT;
    double scale = 0;
    for (int j = 0; j < N_SAMPLES; j++) {
        got[j] = g[(int64_t)(mm_philox_u32(skey, (uint64_t)j) % (uint64_t)n)];
        scale = fmax(scale, fabs(sample[j]));
    }
    CHECK_ARRAYS(name, got, sample, N_SAMPLES, 1e-3 * fmax(scale, 1e-3), 0);
    note_worst(got, sample, N_SAMPLES, scale);
    snprintf(key, sizeof key, "sumsq/%s", name);
    CHECK(mm_safetensors_load(f, key, MM_F32, 1, (int64_t[]){1}, &sumsq) == MM_OK);
    snprintf(key, sizeof key, "proj/%s", name);
    CHECK(mm_safetensors_load(f, key, MM_F32, 1, (int64_t[]){1}, &proj) == MM_OK);
    uint64_t pkey = fnv1a64(name) ^ PROJ_SALT;
    double ss = 0, pr = 0;
    for (int64_t i = 0; i < n; i++) {
        ss += (double)g[i] * g[i];
        pr += (double)g[i] * (2.0f * mm_philox_uniform(pkey, (uint64_t)i) - 1.0f);
    }
    /* Whole-tensor checks: the squared norm, and the projection on random signs (a sum of n terms
     * of both signs, of scale sqrt(sumsq / 3)). */
    CHECK_MSG(fabs(ss - sumsq) <= 2e-3 * sumsq + 1e-12, "%s: sum of squares %g vs %g", name, ss,
              sumsq);
    CHECK_MSG(fabs(pr - proj) <= 1e-3 * sqrt(sumsq) + 1e-6, "%s: projection %g vs %g", name, pr,
              proj);
}

/* One training step of the whole-image fixture's model on `device` (fp32, with the device's own
 * model choices: recomputation, fusions) against PyTorch's logits, loss, gradients and
 * batch-norm statistics. */
static void check_whole_step(const char *device)
{
    worst_grad = 0;
    man_entry *e;
    int n = read_manifest(FIX "whole_manifest.txt", &e);
    CHECK(n > 0);
    if (n <= 0) return;
    char path[512];
    snprintf(path, sizeof path, "%s/whole.safetensors", mm_test_tmpdir());
    CHECK(write_weights(path, e, n, NULL, NULL, NULL) == 0);
    free(e);

    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    c.top = "[128-64-256]x2";
    c.batch = 2;
    c.height = 128;
    c.width = 96;
    c.training = true;
    mm_model m;
    mm_backend *be;
    mm_session s;
    CHECK_MSG(mm_backend_create(device, &be) == MM_OK, "%s", mm_last_error());
    mm_model_config_for_backend(&c, be);
    CHECK(mm_model_build(&m, &c) == MM_OK);
    CHECK(mm_session_init(&s, m.g, be, 0) == MM_OK);
    CHECK_MSG(mm_model_load(&m, &s, path, MM_LOAD_ALL) == MM_OK, "%s", mm_last_error());

    int64_t npx = 2 * 3 * 128 * 96;
    float *nchw = load_npy("whole_input.npy", npx), *nhwc = malloc((size_t)npx * 4);
    for (int i = 0; i < 2; i++)
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 128; y++)
                for (int x = 0; x < 96; x++)
                    nhwc[((i * 128 + y) * 96 + x) * 3 + ch] = nchw[((i * 3 + ch) * 128 + y) * 96 + x];
    int32_t *labels = load_npy("whole_labels.npy", 2);
    float *weights = load_npy("whole_weights.npy", 2);
    CHECK(mm_session_write(&s, m.image, nhwc, (size_t)npx * 4) == MM_OK);
    CHECK(mm_session_write(&s, m.labels, labels, 8) == MM_OK);
    CHECK(mm_session_write(&s, m.weights, weights, 8) == MM_OK);
    mm_session_run(&s);

    float logits[4], loss;
    float *want_logits = load_npy("whole_logits.npy", 4), *want_loss = load_npy("whole_loss.npy", 1);
    CHECK(mm_session_read(&s, m.logits, logits, sizeof logits) == MM_OK);
    CHECK(mm_session_read(&s, m.loss, &loss, 4) == MM_OK);
    CHECK_ARRAYS("logits", logits, want_logits, 4, 1e-4, 1e-4);
    CHECK_CLOSE(loss, want_loss[0], 1e-5, 1e-4);

    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, FIX "whole_grads.safetensors") == MM_OK);
    int n_grads = 0, n_stats = 0;
    for (int id = 0; id < m.g->n_values; id++) {
        const mm_value *v = mm_graph_value(m.g, id);
        if (v->kind != MM_VALUE_PARAM && v->kind != MM_VALUE_STATE) continue;
        size_t bytes = mm_value_bytes(v);
        float *ours = malloc(bytes), *torch = malloc(bytes);
        int64_t numel = (int64_t)(bytes / 4);
        if (v->kind == MM_VALUE_PARAM) {
            CHECK(v->grad >= 0);
            CHECK(mm_session_read(&s, v->grad, ours, bytes) == MM_OK);
            mm_model_to_torch(&m, id, torch, ours);
            check_grad(f, v->name, torch, numel);
            n_grads++;
        } else {
            char key[160];
            snprintf(key, sizeof key, "bn_after/%s", v->name);
            float *want = malloc(bytes);
            CHECK(mm_session_read(&s, id, ours, bytes) == MM_OK);
            CHECK(mm_safetensors_load(f, key, MM_F32, 1, v->shape, want) == MM_OK);
            CHECK_ARRAYS(key, ours, want, numel, 1e-5, 1e-4);
            free(want);
            n_stats++;
        }
        free(ours);
        free(torch);
    }
    printf("    gradients on %s: largest error %.2g of the tensor's largest entry\n", device,
           worst_grad);
    CHECK_EQ_INT(n_grads, 159 + 2 * 9 + 3 + 2); /* trunk, 2 units (+ downsample), top.fc */
    CHECK(n_stats > 0);
    mm_safetensors_close(f);
    free(nchw);
    free(nhwc);
    free(labels);
    free(weights);
    free(want_logits);
    free(want_loss);
    mm_session_free(&s);
    mm_model_free(&m);
    mm_backend_destroy(be);
    remove(path);
}

MM_TEST(whole_image_training_step_matches_pytorch) { check_whole_step("cpu"); }

MM_TEST(whole_image_training_step_on_cuda_matches_pytorch)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    check_whole_step("cuda");
}

/* A missing or misshaped tensor is named by `mammo forward` (exit 1), the file untouched. */
MM_TEST(forward_names_missing_and_misshaped_tensors)
{
    man_entry *e;
    int n = read_manifest(FIX "resnet50_manifest.txt", &e);
    CHECK(n > 0);
    if (n <= 0) return;
    const char *dir = mm_test_tmpdir();
    char path[512], out[512], err[512], cmd[2048], msg[1024];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    snprintf(out, sizeof out, "%s/y.npy", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    const char *cases[2][2] = {{"layer3.2.bn2.running_var", NULL},
                               {NULL, "layer2.0.downsample.0.weight"}};
    const char *expect[2] = {"'layer3.2.bn2.running_var' is missing",
                             "'layer2.0.downsample.0.weight' is F32 [513, 256, 1, 1], expected F32 "
                             "[512, 256, 1, 1]"};
    for (int k = 0; k < 2; k++) {
        CHECK(write_weights(path, e, n, NULL, cases[k][0], cases[k][1]) == 0);
        snprintf(cmd, sizeof cmd, "'%s' forward --net resnet50 --weights '%s' --input '%s' "
                 "--output '%s' 2> '%s'", MM_MAMMO_EXE, path, FIX "resnet50_input.npy", out, err);
        CHECK_EQ_INT(run_cmd(cmd), 1);
        FILE *f = fopen(err, "r");
        size_t len = f ? fread(msg, 1, sizeof msg - 1, f) : 0;
        msg[len] = '\0';
        if (f) fclose(f);
        CHECK_MSG(strstr(msg, expect[k]) != NULL, "message '%s' lacks '%s'", msg, expect[k]);
        FILE *o = fopen(out, "rb");
        CHECK(o == NULL); /* nothing written */
        if (o) fclose(o);
    }
    remove(path);
    free(e);
}
