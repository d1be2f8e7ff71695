/* `mammo forward`: an evaluation-mode forward pass of a model with weights from a safetensors file
 * or a PyTorch checkpoint (runtime/torch_pth.h; torchvision's names and layouts either way) on an
 * NCHW float32 .npy input; writes the logits [N, classes] as float32 .npy. Used for parity checks
 * against PyTorch and for scoring images by hand. */
#include <stdio.h>
#include <stdlib.h>

#include "../nets/nets.h"
#include "../runtime/backend.h"
#include "../runtime/npy.h"
#include "../runtime/session.h"
#include "commands.h"
#include "model_flags.h"

/* Reads the input and checks it is float32 [N, 3, H, W]; returns it as NHWC. */
static mm_status read_input(const char *path, float **out, int *n, int *h, int *w)
{
    mm_npy_array a;
    MM_TRY(mm_npy_load(&a, path));
    if (a.dtype != MM_F32 || a.ndim != 4 || a.shape[1] != 3 || a.shape[0] < 1) {
        char sh[96];
        mm_shape_str(sh, sizeof sh, a.ndim, a.shape);
        mm_status st = mm_fail(MM_ERR_SHAPE, "%s: input is %s %s; expected float32 [N, 3, H, W] "
                               "(PyTorch's NCHW order)", path, mm_dtype_name(a.dtype), sh);
        mm_npy_array_free(&a);
        return st;
    }
    int64_t N = a.shape[0], H = a.shape[2], W = a.shape[3];
    const float *src = a.data;
    float *dst = mm_xmalloc((size_t)(N * H * W * 3) * sizeof *dst);
    for (int64_t i = 0; i < N; i++)
        for (int64_t c = 0; c < 3; c++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++)
                    dst[((i * H + y) * W + x) * 3 + c] = src[((i * 3 + c) * H + y) * W + x];
    mm_npy_array_free(&a);
    *out = dst;
    *n = (int)N;
    *h = (int)H;
    *w = (int)W;
    return MM_OK;
}

static mm_status run(const mm_args *a)
{
    mm_model_config c;
    MM_TRY(mm_model_flags_get(&c, a, false));
    const char *weights = mm_args_get(a, "weights"), *input = mm_args_get(a, "input");
    const char *output = mm_args_get(a, "output");
    if (!weights)
        return mm_fail(MM_ERR_ARG, "--weights: missing; give a .safetensors or PyTorch .pth file");
    if (!input) return mm_fail(MM_ERR_ARG, "--input: missing; give an NCHW float32 .npy file");
    if (!output) return mm_fail(MM_ERR_ARG, "--output: missing; give the .npy file to write");

    float *x = NULL;
    MM_TRY(read_input(input, &x, &c.batch, &c.height, &c.width));
    mm_backend *be = NULL;
    mm_model m;
    mm_session s;
    bool built = false, session = false;
    float *logits = NULL;
    mm_status st = mm_backend_create(mm_args_get(a, "device"), &be);
    if (st == MM_OK) mm_deterministic_flag_set(a, be);
    if (st == MM_OK) st = mm_algo_cache_flag_apply(a, mm_args_get(a, "device"), be);
    if (st == MM_OK) st = mm_model_build(&m, &c);
    built = st == MM_OK;
    if (st == MM_OK) st = mm_session_init(&s, m.g, be, 0);
    session = built && st == MM_OK;
    if (st == MM_OK) st = mm_model_load(&m, &s, weights, MM_LOAD_ALL);
    if (st == MM_OK)
        st = mm_session_write(&s, m.image, x, mm_value_bytes(mm_graph_value(m.g, m.image)));
    if (st == MM_OK) {
        mm_session_forward(&s);
        const mm_value *lv = mm_graph_value(m.g, m.logits);
        logits = mm_xmalloc(mm_value_bytes(lv));
        st = mm_session_read(&s, m.logits, logits, mm_value_bytes(lv));
        if (st == MM_OK) st = mm_npy_save(output, MM_F32, 2, lv->shape, logits);
    }
    free(logits);
    free(x);
    if (session) mm_session_free(&s);
    if (built) mm_model_free(&m);
    if (be) mm_backend_destroy(be);
    return st;
}

int mm_cmd_forward(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo forward",
                 "--net resnet50|vgg16 --weights W.safetensors|W.pth --input X.npy --output Y.npy",
                 "Evaluation-mode forward pass: weights with torchvision's names and layouts, input\n"
                 "float32 [N, 3, H, W] (NCHW), output the logits float32 [N, classes].");
    mm_model_flags_add(&a, false);
    mm_args_str(&a, "weights", NULL,
                "the model's weights: safetensors, or a PyTorch checkpoint (torch.save of a "
                "state_dict, e.g. torchvision's .pth)");
    mm_args_str(&a, "input", NULL, "input images, float32 .npy [N, 3, H, W]");
    mm_args_str(&a, "output", NULL, "logits to write, float32 .npy [N, classes]");
    mm_args_str(&a, "device", "cpu", "cpu, cuda or cuda:N (GPU N)");
    mm_deterministic_flag_add(&a);
    mm_algo_cache_flag_add(&a);
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (run(&a) != MM_OK) return mm_cli_error();
    return 0;
}
