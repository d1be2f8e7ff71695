/* Nets: ResNet50, VGG16, top blocks, whole-image conversion, weights I/O, PyTorch parity. */
#include <stdlib.h>
#include <string.h>

#include "nets/nets.h"
#include "runtime/backend.h"
#include "tests/harness.h"

static int64_t count_params(mm_model_kind kind, mm_trunk t, int classes)
{
    mm_model_config c = mm_model_config_default(kind, t);
    c.classes = classes;
    mm_model m;
    if (mm_model_build(&m, &c) != MM_OK) return -1;
    int64_t n = mm_model_totals_of(&m).params;
    mm_model_free(&m);
    return n;
}

MM_TEST(param_counts_torchvision)
{
    CHECK_EQ_INT(count_params(MM_MODEL_TORCHVISION, MM_TRUNK_RESNET50, 1000), 25557032);
    CHECK_EQ_INT(count_params(MM_MODEL_TORCHVISION, MM_TRUNK_VGG16, 1000), 138357544);
}
