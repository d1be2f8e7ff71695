/* Nets: ResNet50 and VGG16 exactly as torchvision defines them, the paper's patch classifiers, and
 * the patch-to-whole-image conversion with top blocks from a spec string (Shen et al., Table 2 and
 * Appendix 1).
 *
 * A model is built once per (architecture, input size, batch, training or not, which parameters
 * train) into a graph (runtime/graph.h); the graph is planned and run by a session
 * (runtime/session.h). Then this module initialises the parameters (torchvision's scheme, Philox)
 * and loads/saves them as safetensors with torchvision's names, shapes and layouts.
 *
 *   mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
 *   c.top = "[512-512-1024]x2,[512-512-1024]x2"; c.batch = 2; c.height = 1152; c.width = 896;
 *   c.training = true; c.trainable = "top.";              // stage 1: top layers only
 *   mm_model m;
 *   MM_TRY(mm_model_build(&m, &c));
 *   mm_session s;
 *   MM_TRY(mm_session_init(&s, m.g, be, 2));
 *   mm_model_init(&m, &s, seed);                           // fresh top layers
 *   MM_TRY(mm_model_load(&m, &s, "patch.safetensors", MM_LOAD_TRUNK)); // conversion
 *   ... mm_session_write(&s, m.image, ...); labels, weights; mm_session_run(&s); ...
 *   MM_TRY(mm_model_save(&m, &s, "whole.safetensors"));
 *   mm_session_free(&s); mm_model_free(&m);
 *
 * ---- Architectures ----
 * MM_MODEL_TORCHVISION: torchvision.models.resnet50(num_classes) or vgg16(num_classes), exactly:
 *   ResNet50 v1.5 (the stride of a downsampling bottleneck sits on its 3x3 convolution), VGG16
 *   without batch norm with AdaptiveAvgPool2d(7,7) and the classifier fc4096-ReLU-dropout(0.5)-
 *   fc4096-ReLU-dropout(0.5)-fc(classes). 1000 classes: 25,557,032 and 138,357,544 parameters.
 * MM_MODEL_PATCH: the paper's patch classifier: the trunk, global average pooling, dropout (when
 *   `dropout` > 0), dense `fc` with `classes` outputs (5: background, calcification-benign,
 *   calcification-malignant, mass-benign, mass-malignant). For ResNet50 this is torchvision's
 *   resnet50(num_classes=5); for VGG16 the head `fc` [classes, 512] replaces torchvision's classifier
 *   (Keras' VGG16(include_top=False, pooling='avg') + Dense, as the reference code does).
 * MM_MODEL_WHOLE: the trunk, the top blocks of `top`, global average pooling (unless the spec ends in
 *   fully connected layers), dropout (when > 0), dense `top.fc` with `classes` outputs (2).
 *
 * The trunk: ResNet50 = conv1 .. layer4 (2048 channels, stride 32); VGG16 = features.0 ..
 * features.30, i.e. through the fifth max pool (512 channels, stride 32). A 1152x896 image gives a
 * 36x28 feature map.
 *
 * ---- Top block spec grammar (the --top flag) ----
 *   spec  := "" | "none" | item ("," item)*
 *   item  := "[" M "-" N "-" O "]x" R   residual stage: R bottleneck units conv1x1(M)-BN-ReLU,
 *                                       conv3x3(N)-BN-ReLU, conv1x1(O)-BN, + shortcut, ReLU. The
 *                                       first unit has stride 2 (on its first 1x1 conv, as the
 *                                       reference's bottleneck_org) and a projection shortcut
 *                                       conv1x1(O, stride 2)-BN; the others identity shortcuts.
 *          | M "x" R                    VGG block: R times conv3x3(M, pad 1)-BN-ReLU, then 2x2 max
 *                                       pooling with stride 2 (floor).
 *          | "hm" [K]                   heatmap: KxK (default 7) average pooling with stride 1 (valid)
 *                                       over the trunk's map (K = patch size / 32: 7 is the patch
 *                                       classifier's pooling of a 224-pixel patch at every
 *                                       position, 2 that of a 64-pixel one), then the patch classifier's dense
 *                                       applied at every position as a 1x1 conv with bias
 *                                       (`patch_classes` outputs, initialised from the patch
 *                                       model's fc.weight/fc.bias by MM_LOAD_TRUNK), then ReLU (the
 *                                       reference's add_heatmap; the softmax it names is only used
 *                                       for display). Must come first.
 *          | "maxpool" K                KxK max pooling, stride K (floor).
 *          | "fc" U                     flatten (NHWC order in memory; PyTorch's NCHW order in
 *                                       files), dense(U)-BN-ReLU. After the first fc only fc and
 *                                       shortcut may follow, and the final GAP is skipped.
 *          | "shortcut"                 a dense(classes) from the input of the first fc, added to
 *                                       the logits (the winning DM challenge design). Last item.
 * Integers are 1..65536 (R 1..64). Whitespace is not allowed. Table 2 of the paper:
 *   [512-512-2048]x1,[512-512-2048]x1     [512-512-1024]x2,[512-512-1024]x2
 *   [256-256-512]x3,[128-128-256]x3       512x3,512x3     512x1,512x1     256x1,128x1
 *   hm,[512-512-1024]x2,[512-512-1024]x2  (the reference code also max pools the heatmap:
 *                                          hm,maxpool5,[512-512-1024]x2,[512-512-1024]x2)
 *   hm,maxpool5,fc64,fc32                 (and with the shortcut: hm,maxpool5,fc64,fc32,shortcut)
 *
 * ---- Parameter names (torchvision's, plus torchvision-like names for the new layers) ----
 *   resnet50: conv1.weight, bn1.{weight,bias,running_mean,running_var}, layerL.U.convK.weight,
 *             layerL.U.bnK.*, layerL.0.downsample.0.weight, layerL.0.downsample.1.*, fc.{weight,bias}
 *   vgg16:    features.I.{weight,bias} (I = 0,2,5,7,10,12,14,17,19,21,24,26,28),
 *             classifier.{0,3,6}.{weight,bias} (torchvision head) or fc.{weight,bias} (patch head)
 *   top item i (0-based position in the spec):
 *     residual  top.i.U.conv{1,2,3}.weight, top.i.U.bn{1,2,3}.*, top.i.0.downsample.{0,1}.*
 *     vgg       top.i.U.conv.weight, top.i.U.bn.*
 *     heatmap   top.i.weight [classes, C, 1, 1] (file), top.i.bias
 *     fc        top.i.fc.weight, top.i.bn.*
 *   output      top.fc.{weight,bias}; shortcut top.shortcut.{weight,bias}
 * Every parameter of a whole-image model that is not in its patch classifier starts with "top.",
 * so stage 1 of the whole-image schedule is trainable = "top.". Convolutions in new layers have no
 * bias (a BN follows). BN: eps 1e-5, momentum 0.1 (PyTorch's defaults) everywhere.
 *
 * ---- Layouts ----
 * Activations are NHWC, our conv weights OHWI. Files use PyTorch's layouts: conv weights OIHW, and
 * a dense layer that reads a flattened [h,w,c] map (VGG's classifier.0, fc items) has its columns in
 * NCHW order (c,h,w); import and export permute them. Input images are [n,h,w,3] here; npy files on
 * the command line are NCHW and are transposed by the command. */
#ifndef MM_NETS_H
#define MM_NETS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../runtime/error.h"
#include "../runtime/graph.h"
#include "../runtime/planner.h"
#include "../runtime/safetensors.h"
#include "../runtime/session.h"

typedef enum mm_trunk {
    MM_TRUNK_RESNET50 = 0,
    MM_TRUNK_VGG16,
} mm_trunk;

typedef enum mm_model_kind {
    MM_MODEL_TORCHVISION = 0, /* torchvision's ImageNet-style classifier */
    MM_MODEL_PATCH,           /* trunk + GAP + fc: the paper's patch classifier */
    MM_MODEL_WHOLE,           /* trunk + top blocks + GAP + top.fc: the whole-image classifier */
} mm_model_kind;

/* "resnet50" / "vgg16"; an unknown name is a tier-1 error naming `flag`. */
mm_status mm_trunk_parse(mm_trunk *out, const char *name, const char *flag);
const char *mm_trunk_name(mm_trunk t);
int mm_trunk_channels(mm_trunk t); /* 2048 / 512 */
const char *mm_model_kind_name(mm_model_kind k); /* "torchvision", "patch", "whole" */

/* ---- top block specs ---- */
typedef enum mm_top_kind {
    MM_TOP_RESNET = 0, /* [m-n-o]xreps */
    MM_TOP_VGG,        /* m x reps */
    MM_TOP_HEATMAP,    /* hm */
    MM_TOP_MAXPOOL,    /* maxpool m */
    MM_TOP_FC,         /* fc m */
    MM_TOP_SHORTCUT,   /* shortcut */
} mm_top_kind;

typedef struct mm_top_item {
    mm_top_kind kind;
    int m, n, o; /* resnet: the three widths; vgg: m = width; maxpool: m = size; fc: m = units */
    int reps;    /* resnet and vgg */
} mm_top_item;

#define MM_TOP_MAX_ITEMS 16

typedef struct mm_top_spec {
    int n;
    mm_top_item item[MM_TOP_MAX_ITEMS];
} mm_top_spec;

/* Parses the grammar above. Errors are tier 1 and name `flag` (e.g. "--top") and the bad item. */
mm_status mm_top_parse(mm_top_spec *out, const char *spec, const char *flag);
/* Writes the canonical spec string ("none" for an empty spec). */
void mm_top_format(char *buf, size_t n, const mm_top_spec *spec);
bool mm_top_has_heatmap(const mm_top_spec *spec);

/* ---- models ---- */
typedef struct mm_model_config {
    mm_model_kind kind;
    mm_trunk trunk;
    int classes;          /* outputs; mm_model_config_default gives 1000, 5 or 2 */
    const char *top;      /* MM_MODEL_WHOLE: the spec (copied by mm_model_build) */
    int patch_classes;    /* heatmap outputs (the patch classifier's classes, 5) */
    int batch, height, width; /* input [batch, height, width, 3] */
    float dropout;        /* patch/whole: dropout before the output dense and, whole, after every
                             ReLU of the top blocks (the reference's hidden dropout); 0 = none.
                             torchvision VGG16 always has its own two dropouts of 0.5. */
    bool training;        /* batch statistics, active dropout, loss and backward */
    /* Comma-separated name prefixes of the parameters that train (e.g. "top." or "layer4.2.,fc.");
     * NULL or "" = all. Others are frozen (no gradient memory, no weight-gradient kernels). */
    const char *trainable;
    uint64_t dropout_seed;
    /* Storage type of the activations (graph.h act_dtype): MM_F32, or MM_BF16 for the CUDA
     * backend's bf16 precision. */
    mm_dtype act_dtype;
    /* Divides every trunk channel count (1 = torchvision's nets). A reduced-width trunk runs the
     * very same code on small machines (the CPU demo); names stay torchvision's. Must divide 64. */
    int width_div;
    /* Keep every activation the backward pass reads instead of recomputing the cheap ones and
     * keeping ReLU masks as bits (graph.h recompute, relu_mask_bits; false, the default, saves
     * that memory). Same gradients either way. */
    bool no_recompute;
    /* With recomputation, keep the ReLU outputs its backward reads rather than their signs as bits
     * (graph.h relu_mask_bits; the cpu's choice: its ReLU backward reading bits took VGG16's step
     * 5-20% longer to save 1% of its memory, 3 of 363 MB at 224x224). */
    bool no_relu_mask;
    /* With recomputation, also recompute the outputs of convolutions costing at most this many
     * multiply-adds per output element (graph.h recompute_conv_macs; 0, the default: none;
     * mm_recompute_conv_cuda on the cuda backend). */
    int64_t recompute_conv_macs;
    /* With recomputation, how far the activation arena may grow over its smallest to recompute
     * less (graph.h recompute_slack; 0, the default: the smallest; mm_recompute_slack_cuda on
     * the cuda backend). */
    double recompute_slack;
    /* Fuse each ReLU's backward into the batch-norm backward before it (graph.h fuse_relu_bwd;
     * on by default, every backend; bitwise the same gradients). */
    bool fuse_relu_bwd;
    /* Finish each residual join (add, ReLU) inside the batch norm before it
     * (mm_graph_fuse_residual; on by default; bitwise the same step). */
    bool fuse_residual;
    /* Take each convolution's bias gradient in the ReLU backward that writes its dy
     * (mm_graph_fuse_bias_grad; on by default; bitwise the same step). */
    bool fuse_bias_grad;
    /* Let a convolution's data gradient add itself to the gradient it joins
     * (mm_graph_fuse_grad_add; on by default; bitwise the same step on the CPU). */
    bool fuse_grad_add;
    /* Let a batch-norm apply write the ReLU mask of its output (mm_graph_fuse_relu_mask; on by
     * default; bitwise the same step). */
    bool fuse_relu_mask;
    /* graph.h scratch_budget and scratch_strict: how much the convolutions' scratch may add to
     * the step's peak for faster algorithms (0 and not strict, the default: only where keeping it
     * in the gaps would slow a convolution down much). */
    size_t scratch_budget;
    bool scratch_strict;
} mm_model_config;

/* The widest recompute_conv_macs of the cuda backend: ResNet50's stem (7x7x3 = 147) and 1x1
 * convolutions from 64 and 128 channels, VGG16's first convolution (27). At 1152x896, batch 2,
 * fp32 (mammo plan --recompute-conv): ResNet50's activations fall from 1803 to 898 MiB for 10%
 * more step FLOPs (64: 1272 MiB, +3.3%); VGG16's from 1508 to 1166 MiB for 0.2%. */
#define MM_RECOMPUTE_CONV_MACS_CUDA 147
/* The same without ResNet50's stem, whose three input channels make it slow for its FLOPs
 * (0.49 ms of a 46 ms fp32 step on an H200, recomputed at full resolution). */
#define MM_RECOMPUTE_CONV_MACS_NO_STEM 128

/* The cuda backend's recompute_conv_macs and recompute_slack for a precision. In fp32 and tf32,
 * where the element-wise passes move four bytes an element and the step is furthest from its
 * speed target, the stem is kept and the slack is 20% (ResNet50 at 1152x896, batch 2: planned
 * peak 1.92 GB, 0.45x PyTorch's 4.24, for one batch-norm apply per batch norm, 67 instead of
 * the 105 of no slack, three convolutions fewer recomputed, and 17.2 GB of traffic outside the
 * convolutions instead of 21.3 with no slack, the ReLUs cuda applies with their batch norms not
 * counted). In bf16, whose passes move half that and whose step is already near half of
 * PyTorch's memory (1.17 GB of 2.55), the stem is recomputed and there is no slack. */
int64_t mm_recompute_conv_cuda(mm_precision precision);
double mm_recompute_slack_cuda(mm_precision precision);

/* The choices that follow from the device a model runs on: activations stored in bf16 for the
 * bf16 precision; recomputation everywhere; on the cpu of no convolution and without ReLU bit
 * masks (recomputing ResNet50's batch-norm outputs took its 224x224 batch-2 step from 546 to
 * 476 MB at the same speed, and bits cost the cpu time), on cuda of cheap convolutions too
 * (mm_recompute_conv_cuda), with bit masks. */
void mm_model_config_for_backend(mm_model_config *c, const mm_backend *be);
/* The same for a device and precision without a backend (`mammo plan --device`). */
void mm_model_config_for_device(mm_model_config *c, mm_device_kind device,
                                mm_precision precision);
/* The command line's recomputation switches over those choices, as bench, plan and training take
 * them: keep_all (--no-recompute) keeps every activation; conv_macs (--recompute-conv) and slack
 * (--recompute-slack, a fraction) replace the device's where >= 0 (-1: the device's stay). */
void mm_model_config_recompute(mm_model_config *c, bool keep_all, int64_t conv_macs,
                               double slack);

/* Defaults: classes 1000 / 5 / 2 by kind, patch_classes 5, batch 1, 224x224 (whole: 1152x896),
 * dropout 0, evaluation, all trainable, top "[512-512-1024]x2,[512-512-1024]x2" for whole. */
mm_model_config mm_model_config_default(mm_model_kind kind, mm_trunk trunk);

/* How each parameter is initialised (torchvision's schemes). */
typedef enum mm_init_kind {
    MM_INIT_KAIMING_FAN_OUT = 0, /* conv: normal(0, sqrt(2 / (out*kh*kw))) */
    MM_INIT_ONE,                 /* BN weight, running_var */
    MM_INIT_ZERO,                /* BN bias, running_mean, VGG biases */
    MM_INIT_LINEAR_DEFAULT,      /* nn.Linear's default: weight and bias U(-1/sqrt(fan_in), +) */
    MM_INIT_NORMAL_001,          /* VGG's linear weights: normal(0, 0.01) */
} mm_init_kind;

/* What the nets know about each parameter/state value beyond the graph (indexed by value id). */
typedef struct mm_param_info {
    bool used;            /* a parameter or state value created by the nets */
    mm_init_kind init;
    int fan_in;           /* for MM_INIT_LINEAR_DEFAULT biases: the layer's fan-in */
    int flat_h, flat_w, flat_c; /* dense weight reading a flattened [h,w,c] map, else 0 */
} mm_param_info;

typedef struct mm_model {
    mm_model_config cfg; /* cfg.top and cfg.trainable point into the model's own copies */
    mm_top_spec top;
    mm_graph *g;
    int image;   /* input "image" f32 [n,h,w,3] */
    int labels;  /* training: input "label" i32 [n]; else -1 */
    int weights; /* training: input "weight" f32 [n] (per-sample weights); else -1 */
    int feature; /* the trunk's output map [n,h/32,w/32,C] */
    int logits;  /* [n, classes] */
    int probs;   /* [n, classes]: the loss's softmax (training) or a softmax node (evaluation) */
    int loss;    /* training: [1] weighted mean cross-entropy; else -1 */
    mm_param_info *info; /* [info_cap] by value id */
    int info_cap;
    char *top_str, *trainable_str;
} mm_model;

/* Builds the graph (forward; in training also the loss and backward for the trainable params).
 * A bad config (spec, sizes too small for the net, ...) is a tier-1 error; *m is then freed. */
mm_status mm_model_build(mm_model *m, const mm_model_config *cfg);
void mm_model_free(mm_model *m);

/* Whether parameter `name` trains under the comma-separated prefixes (NULL or "": all). */
bool mm_name_trainable(const char *name, const char *prefixes);
/* The trainable prefixes of the paper's schedules. Patch classifier (3 stages): 1 = "fc." (the
 * last layer), 2 = the top layers ("layer4.2.,fc." for ResNet50: Keras' layers[162:] = res5c and
 * the head; "features.24.,features.26.,features.28.,fc." for VGG16: block5 and the head), 3 = NULL
 * (all). Whole image (2 stages): 1 = "top.", 2 = NULL. Torchvision models: NULL. */
const char *mm_model_stage_trainable(mm_model_kind kind, mm_trunk trunk, int stage);

/* Whether a parameter/state name belongs to the trunk (everything but the heads and top.*). */
bool mm_name_in_trunk(mm_trunk t, const char *name);

/* ---- initialisation (torchvision's): convs kaiming normal (fan_out, ReLU gain), BN weight 1 and
 * bias 0, running mean 0 and var 1; ResNet's fc and every new dense nn.Linear's default; VGG's
 * conv biases 0, classifier weights normal(0, 0.01) and biases 0. Each tensor draws from its own
 * Philox stream keyed by (seed, name), so a tensor's values do not depend on the graph's order. */
void mm_model_init(const mm_model *m, mm_session *s, uint64_t seed);
/* The same into a host buffer in our layout (for one value; used by mm_model_init). */
void mm_model_init_tensor(const mm_model *m, int value, uint64_t seed, float *out);

/* ---- weights as safetensors with torchvision names and layouts ---- */
typedef enum mm_load_mode {
    /* Every parameter and running statistic of the model must be in the file with its PyTorch
     * shape (F32). Tensors named *.num_batches_tracked are ignored; any other tensor the model
     * does not have is an error (a file of another architecture). */
    MM_LOAD_ALL = 0,
    /* Only the trunk is loaded (each trunk tensor must be present); everything else in the file
     * (a patch classifier's or ImageNet head) is ignored and the model's other tensors keep their
     * values. When the model has a heatmap item, its 1x1 conv takes the file's fc.weight/fc.bias
     * (which must then have patch_classes rows). This is the patch-to-whole-image conversion, and
     * the ImageNet-to-patch start. */
    MM_LOAD_TRUNK,
} mm_load_mode;

mm_status mm_model_load(const mm_model *m, mm_session *s, const char *path, mm_load_mode mode);
/* The same from a file already open, for readers that take more from it than the weights (a
 * checkpoint's optimizer moments and metadata) and so open it once; the file stays open. */
mm_status mm_model_load_from(const mm_model *m, mm_session *s, const mm_safetensors *f,
                             mm_load_mode mode);
/* Writes every parameter and running statistic in PyTorch layout (F32), atomically (temp file +
 * rename). PyTorch's load_state_dict(strict=False) reads it; num_batches_tracked is not written. */
mm_status mm_model_save(const mm_model *m, const mm_session *s, const char *path);

/* Copies every parameter and running statistic that both models have (same name and shape) from
 * one session to the other, e.g. when the trainer rebuilds the graph for the next stage of a
 * schedule (other trainable parameters, so another plan). Returns the number of tensors copied in
 * *copied (may be NULL). */
mm_status mm_model_copy_weights(const mm_model *dst, mm_session *ds, const mm_model *src,
                                const mm_session *ss, int *copied);

/* Per-tensor layout conversion between our layout and PyTorch's, for any value of the model (other
 * checkpoint writers use these for optimizer moments too). torch_shape gets PyTorch's shape. */
void mm_model_torch_shape(const mm_model *m, int value, int *ndim, int64_t *shape);
void mm_model_to_torch(const mm_model *m, int value, float *dst /* torch layout */,
                       const float *src /* ours */);
void mm_model_from_torch(const mm_model *m, int value, float *dst /* ours */,
                         const float *src /* torch layout */);

/* ---- summary ---- */
typedef struct mm_model_totals {
    int64_t params, trainable, state; /* element counts */
    double flops_forward_per_image, flops_step_per_image; /* step = forward + backward */
} mm_model_totals;
mm_model_totals mm_model_totals_of(const mm_model *m);

/* Prints a table of the forward layers (layer, op, output shape, parameters, FLOPs), the totals,
 * and, when plan is given, its memory breakdown (mm_plan_print, last line "peak_bytes=N"). */
void mm_model_summary(const mm_model *m, const mm_plan *plan, FILE *f);

#endif
