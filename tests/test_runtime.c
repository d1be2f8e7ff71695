/* Runtime basics: tensor views, errors, Philox against the Random123 known answers. */
#include <string.h>

#include "kernels/philox.h"
#include "runtime/error.h"
#include "runtime/tensor.h"
#include "tests/harness.h"

MM_TEST(philox_known_answers)
{
    /* Random123's kat_vectors for philox4x32_10: counter 0, key 0. */
    mm_philox_out o = mm_philox4x32(0, 0);
    CHECK_EQ_INT(o.v[0], 0x6627e8d5u);
    CHECK_EQ_INT(o.v[1], 0xe169c58du);
    CHECK_EQ_INT(o.v[2], 0xbc57ac4cu);
    CHECK_EQ_INT(o.v[3], 0x9b00dbd8u);
}

MM_TEST(philox_uniform_is_uniform)
{
    double sum = 0, sum2 = 0;
    int n = 100000, below_half = 0;
    for (int i = 0; i < n; i++) {
        float u = mm_philox_uniform(42, (uint64_t)i);
        CHECK(u >= 0.0f && u < 1.0f);
        sum += u;
        sum2 += (double)u * u;
        below_half += u < 0.5f;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK_CLOSE(mean, 0.5, 0.01, 0);
    CHECK_CLOSE(var, 1.0 / 12, 0.005, 0);
    CHECK_CLOSE(below_half, n / 2, n * 0.01, 0);
    CHECK(mm_philox_u32(1, 0) != mm_philox_u32(2, 0));
}

MM_TEST(tensor_view_strides)
{
    int64_t shape[4] = {2, 3, 4, 5};
    mm_tensor t = mm_tensor_view(NULL, MM_F32, 4, shape);
    CHECK_EQ_INT(t.stride[3], 1);
    CHECK_EQ_INT(t.stride[2], 5);
    CHECK_EQ_INT(t.stride[1], 20);
    CHECK_EQ_INT(t.stride[0], 60);
    CHECK_EQ_INT(mm_tensor_numel(&t), 120);
    CHECK_EQ_INT(mm_tensor_bytes(&t), 480);
    char buf[64];
    CHECK(!strcmp(mm_shape_str(buf, sizeof buf, 4, shape), "[2, 3, 4, 5]"));
}

MM_TEST(shape_numel_checked_refuses_what_overflows_in_any_order)
{
    int64_t n = -1;
    CHECK(mm_shape_numel_checked(2, (const int64_t[]){2, 3}, &n));
    CHECK_EQ_INT(n, 6);
    CHECK(mm_shape_numel_checked(0, NULL, &n));
    CHECK_EQ_INT(n, 1);
    const int64_t big = (int64_t)1 << 31;
    CHECK(mm_shape_numel_checked(3, (const int64_t[]){big, big, 0}, &n)); /* 2^62 fits */
    CHECK_EQ_INT(n, 0);
    CHECK(mm_shape_numel_checked(2, (const int64_t[]){INT64_MAX, 1}, &n));
    CHECK_EQ_INT(n, INT64_MAX);
    CHECK(!mm_shape_numel_checked(3, (const int64_t[]){2 * big, 2 * big, 0}, &n));
    CHECK(!mm_shape_numel_checked(3, (const int64_t[]){0, 2 * big, 2 * big}, &n));
    CHECK(!mm_shape_numel_checked(2, (const int64_t[]){INT64_MAX, 2}, &n));
    CHECK(!mm_shape_numel_checked(2, (const int64_t[]){3, -1}, &n));
}

MM_TEST(error_message_kept)
{
    mm_status s = mm_fail(MM_ERR_IO, "%s: cannot open", "x.npy");
    CHECK_EQ_INT(s, MM_ERR_IO);
    CHECK(!strcmp(mm_last_error(), "x.npy: cannot open"));
    mm_clear_error();
    CHECK(!strcmp(mm_last_error(), ""));
}
