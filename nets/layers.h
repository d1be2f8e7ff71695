/* Internal building blocks of the nets (not part of the public API): named parameters with their
 * init kind, conv-BN-ReLU, the bottleneck unit, dense layers. Every helper takes the model being
 * built, reads the input's shape from the graph, creates its parameters under torchvision-style
 * names `<prefix>.<name>` and returns the output value id, or -1 once the graph has failed (errors
 * are sticky in the graph; the caller checks mm_graph_status at the end). */
#ifndef MM_NETS_LAYERS_H
#define MM_NETS_LAYERS_H

#include <stdbool.h>

#include "nets.h"

/* PyTorch's BatchNorm defaults, used by every BN of the nets. */
#define MM_BN_EPS 1e-5f
#define MM_BN_MOMENTUM 0.1f

/* Channels (last dim) of an NHWC or [n,k] value; 0 when x < 0. */
int mm_layer_channels(const mm_model *m, int x);

/* The info record of value `id` (grown on demand). */
mm_param_info *mm_layer_info(mm_model *m, int id);

/* A parameter named "<prefix>.<leaf>" (prefix may be "") recorded with its init kind. */
int mm_layer_param(mm_model *m, const char *prefix, const char *leaf, mm_init_kind init, int ndim,
                   const int64_t *shape);
/* "<prefix>.<leaf>" into buf ("<leaf>" when prefix is empty). */
const char *mm_layer_name(char *buf, size_t n, const char *prefix, const char *leaf);

/* Convolution `<name>.weight` [out,k,k,in] (OHWI), optional `<name>.bias` (init zero), square
 * kernel, equal stride and padding on both axes. */
int mm_layer_conv(mm_model *m, int x, const char *name, int out, int k, int stride, int pad,
                  bool bias);
/* BatchNorm `<name>.{weight,bias,running_mean,running_var}` over the last dim. */
int mm_layer_bn(mm_model *m, int x, const char *name);
/* Dense `<name>.weight` [out,in] (+ `<name>.bias` when bias), with its init kind. */
int mm_layer_dense(mm_model *m, int x, const char *name, int out, bool bias, mm_init_kind init);
/* Dropout when p > 0 and the model trains; else x unchanged. */
int mm_layer_dropout(mm_model *m, int x, float p);

/* conv (no bias) `<prefix>.<conv>` -> BN `<prefix>.<bn>` [-> ReLU]. */
int mm_layer_conv_bn(mm_model *m, int x, const char *prefix, const char *conv, const char *bn,
                     int out, int k, int stride, int pad, bool relu);

/* A bottleneck unit: conv1x1(c1)-BN-ReLU, conv3x3(c2)-BN-ReLU, conv1x1(c3)-BN, plus the shortcut
 * (identity, or conv1x1(c3, stride)-BN named downsample.0/.1 when `project`), ReLU.
 * stride_on_3x3: torchvision's v1.5 (true) or the original v1 / the reference's bottleneck_org
 * (false: the stride sits on the first 1x1). `dropout` > 0 adds dropout after each ReLU (the
 * reference's top blocks). */
int mm_layer_bottleneck(mm_model *m, int x, const char *prefix, int c1, int c2, int c3,
                        int stride, bool project, bool stride_on_3x3, float dropout);

/* ---- the nets' pieces, built on input x [n,h,w,3] or a feature map ---- */
/* ResNet50 trunk conv1 .. layer4: [n,h,w,3] -> [n,h/32,w/32,2048] (PyTorch's floor rules). */
int mm_resnet50_trunk(mm_model *m, int x);
/* VGG16 features.0 .. features.30: [n,h,w,3] -> [n,h/32,w/32,512]. */
int mm_vgg16_trunk(mm_model *m, int x);
/* torchvision's VGG head: AdaptiveAvgPool2d(7,7), flatten, classifier.0..6 -> [n,classes]. */
int mm_vgg16_classifier(mm_model *m, int feat, int classes);
/* The whole-image top of m->top on the trunk's map, then GAP (unless fc items) and top.fc. */
int mm_top_build(mm_model *m, int feat);

#endif
