/* VGG16 as torchvision defines it (torchvision.models.vgg16, configuration "D", no batch norm):
 * `features` = 13 conv3x3(pad 1, bias)-ReLU layers in five blocks of 2, 2, 3, 3, 3 with 64, 128,
 * 256, 512, 512 channels, each block ending in a 2x2/2 max pool; the Sequential indices count the
 * ReLUs and pools, so the convolutions are features.0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28.
 * The ImageNet head: AdaptiveAvgPool2d(7,7), flatten (PyTorch's c,h,w order), classifier.0 =
 * Linear(25088, 4096), ReLU, Dropout(0.5), classifier.3 = Linear(4096, 4096), ReLU, Dropout(0.5),
 * classifier.6 = Linear(4096, classes). torchvision initialises the convs kaiming normal (fan_out),
 * their biases 0, the linears normal(0, 0.01) with biases 0. */
#include <stdio.h>

#include "layers.h"

int mm_vgg16_trunk(mm_model *m, int x)
{
    /* Channels per layer, 0 = max pool; the index in `features` advances by 2 per conv (conv,
     * ReLU) and by 1 per pool. */
    static const int cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0,
                              512, 512, 512, 0};
    int y = x, index = 0;
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0] && y >= 0; i++) {
        if (cfg[i] == 0) {
            y = mm_maxpool(m->g, y, 2, 2, 0);
            index += 1;
        } else {
            char name[32];
            snprintf(name, sizeof name, "features.%d", index);
            y = mm_layer_conv(m, y, name, cfg[i], 3, 1, 1, true);
            if (y >= 0) y = mm_relu(m->g, y);
            index += 2;
        }
    }
    return y;
}

int mm_vgg16_classifier(mm_model *m, int feat, int classes)
{
    if (feat < 0) return -1;
    int y = mm_adaptive_avgpool(m->g, feat, 7, 7);
    int c = mm_layer_channels(m, feat);
    y = y < 0 ? -1 : mm_flatten(m->g, y);
    y = mm_layer_dense(m, y, "classifier.0", 4096, true, MM_INIT_NORMAL_001);
    if (y < 0) return -1;
    /* classifier.0 reads a flattened 7x7xC map: its columns are permuted on import/export. */
    int w = mm_graph_find(m->g, "classifier.0.weight");
    mm_param_info *pi = mm_layer_info(m, w);
    pi->flat_h = 7;
    pi->flat_w = 7;
    pi->flat_c = c;
    y = mm_relu(m->g, y);
    y = mm_layer_dropout(m, y, 0.5f);
    y = mm_layer_dense(m, y, "classifier.3", 4096, true, MM_INIT_NORMAL_001);
    y = y < 0 ? -1 : mm_relu(m->g, y);
    y = mm_layer_dropout(m, y, 0.5f);
    return mm_layer_dense(m, y, "classifier.6", classes, true, MM_INIT_NORMAL_001);
}
