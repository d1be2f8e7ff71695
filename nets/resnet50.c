/* ResNet50 as torchvision defines it (torchvision.models.resnet50, "v1.5"): conv1 7x7/2, BN, ReLU,
 * max pool 3x3/2 pad 1, then four stages of bottleneck units (3, 4, 6, 3 units of widths 64, 128,
 * 256, 512, expansion 4). The first unit of every stage has a projection shortcut
 * (downsample.0 = conv1x1 with the stage's stride, downsample.1 = BN); stages 2-4 halve the map with
 * stride 2 on the 3x3 convolution (v1.5; the original paper put it on the first 1x1). */
#include <stdio.h>

#include "layers.h"

int mm_resnet50_trunk(mm_model *m, int x)
{
    static const int units[4] = {3, 4, 6, 3};
    static const int widths[4] = {64, 128, 256, 512};
    int y = mm_layer_conv_bn(m, x, "", "conv1", "bn1", 64, 7, 2, 3, true);
    if (y < 0) return -1;
    y = mm_maxpool(m->g, y, 3, 2, 1);
    for (int stage = 0; stage < 4; stage++) {
        for (int u = 0; u < units[stage]; u++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, u);
            int stride = (u == 0 && stage > 0) ? 2 : 1;
            int w = widths[stage];
            y = mm_layer_bottleneck(m, y, prefix, w, w, 4 * w, stride, u == 0, true, 0.0f);
        }
    }
    return y;
}
