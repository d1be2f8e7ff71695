/* `mammo prep --index index.csv --out DIR`: DICOMs to training-size 16-bit PNGs, masks alike, and
 * DIR/index.csv pointing at them (tools/prep.h). Resumable; prints one summary line. */
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "prep.h"

static mm_status run(const mm_args *a)
{
    const char *index = mm_args_get(a, "index"), *out = mm_args_get(a, "out");
    if (!index || !out) return mm_fail(MM_ERR_ARG, "mammo prep: --index and --out are required");
    if (a->n_pos) return mm_fail(MM_ERR_ARG, "mammo prep: unexpected argument '%s'", a->pos[0]);
    mm_prep_opts o = {0};
    int64_t h, w, t;
    MM_TRY(mm_args_get_int(a, "height", &h));
    MM_TRY(mm_args_get_int(a, "width", &w));
    MM_TRY(mm_args_get_int(a, "threads", &t));
    if (t < 0 || t > 4096)
        return mm_fail(MM_ERR_ARG, "--threads %lld: must be 0 (one per CPU) to 4096", (long long)t);
    o.height = h > 1 << 20 ? 0 : (int)h;
    o.width = w > 1 << 20 ? 0 : (int)w;
    o.threads = (int)t;
    o.force = mm_args_get_bool(a, "force");
    o.quiet = mm_args_get_bool(a, "quiet");
    mm_prep_stats s;
    MM_TRY(mm_prep_run(&s, index, out, &o));
    printf("mammo prep: %d images written, %d already done; %d masks written, %d already done; "
           "%dx%d -> %s/index.csv\n",
           s.images, s.images_skipped, s.masks, s.masks_skipped, o.height, o.width, out);
    return MM_OK;
}

int mm_cmd_prep(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo prep", "--index index.csv --out DIR [flags]",
                 "Converts every image of an index to a 16-bit PNG at the training size (area "
                 "averaging) and every ROI mask to an 8-bit PNG,\nthen writes DIR/index.csv. "
                 "Finished outputs are kept, so an interrupted run can be started again.");
    mm_args_str(&a, "index", NULL, "the index written by 'mammo index'");
    mm_args_str(&a, "out", NULL, "output folder (images/, masks/, index.csv)");
    mm_args_int(&a, "height", "1152", "target height in pixels");
    mm_args_int(&a, "width", "896", "target width in pixels");
    mm_args_int(&a, "threads", "0", "threads (0: one per CPU)");
    mm_args_bool(&a, "force", "redo outputs that already exist");
    mm_args_bool(&a, "quiet", "no progress output");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (run(&a) != MM_OK) return mm_cli_error();
    return 0;
}
