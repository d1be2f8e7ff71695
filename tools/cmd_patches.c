/* `mammo patches --index DIR/index.csv --out PATCHES`: the paper's patch sampler
 * (tools/patches.h); prints one summary line. */
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "patches.h"

static mm_status get_int(const mm_args *a, const char *name, int lo, int *out)
{
    int64_t v;
    MM_TRY(mm_args_get_int(a, name, &v));
    if (v < lo || v > 1 << 20)
        return mm_fail(MM_ERR_ARG, "--%s %lld: must be between %d and %d", name, (long long)v, lo,
                       1 << 20);
    *out = (int)v;
    return MM_OK;
}

static mm_status run(const mm_args *a)
{
    const char *index = mm_args_get(a, "index"), *out = mm_args_get(a, "out");
    if (!index || !out) return mm_fail(MM_ERR_ARG, "mammo patches: --index and --out are required");
    if (a->n_pos) return mm_fail(MM_ERR_ARG, "mammo patches: unexpected argument '%s'", a->pos[0]);
    mm_patch_opts o;
    mm_patch_opts_default(&o);
    int64_t seed;
    MM_TRY(get_int(a, "size", 2, &o.size));
    MM_TRY(get_int(a, "per-roi", 1, &o.per_roi));
    MM_TRY(get_int(a, "height", 0, &o.height));
    MM_TRY(get_int(a, "width", 0, &o.width));
    MM_TRY(get_int(a, "max-tries", 1, &o.max_tries));
    MM_TRY(get_int(a, "threads", 0, &o.threads));
    MM_TRY(mm_args_get_float(a, "min-overlap", &o.min_overlap));
    MM_TRY(mm_args_get_float(a, "breast-threshold", &o.breast_threshold));
    MM_TRY(mm_args_get_float(a, "min-breast", &o.min_breast));
    MM_TRY(mm_args_get_int(a, "seed", &seed));
    o.seed = (uint64_t)seed;
    o.quiet = mm_args_get_bool(a, "quiet");
    mm_patch_stats s;
    MM_TRY(mm_patches_run(&s, index, out, &o));
    int total = 0;
    for (int k = 0; k < 5; k++) total += s.per_class[k];
    printf("mammo patches: %d patches of %dx%d (background %d, calc_ben %d, calc_mal %d, "
           "mass_ben %d, mass_mal %d; train %d / val %d / test %d) from %d images and %d ROIs "
           "(%d ROIs skipped, %d relaxed below %.2f overlap, %d ROI and %d background patches "
           "not found) -> %s\n",
           total, o.size, o.size, s.per_class[0], s.per_class[1], s.per_class[2], s.per_class[3],
           s.per_class[4], s.per_split[0], s.per_split[1], s.per_split[2], s.images, s.rois,
           s.rois_skipped, s.rois_relaxed, o.min_overlap, s.rois_short, s.bkg_short, out);
    return MM_OK;
}

int mm_cmd_patches(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo patches", "--index index.csv --out DIR [flags]",
                 "Samples the patch set of the paper: per ROI --per-roi patches overlapping it by "
                 "at least --min-overlap, and as many\nbackground patches in the breast away from "
                 "every ROI; writes DIR/<split>/<class>/*.png and DIR/patches.csv.");
    mm_args_str(&a, "index", NULL, "an index (normally the one 'mammo prep' writes)");
    mm_args_str(&a, "out", NULL, "output folder (must not exist, or be empty)");
    mm_args_int(&a, "size", "224", "patch side in pixels");
    mm_args_int(&a, "per-roi", "10", "patches per ROI (and background patches per ROI)");
    mm_args_float(&a, "min-overlap", "0.9", "max(intersection/ROI, intersection/patch) to reach");
    mm_args_int(&a, "height", "0", "resize images to this height first (0: as prep wrote them)");
    mm_args_int(&a, "width", "0", "resize images to this width first (0: as prep wrote them)");
    mm_args_float(&a, "breast-threshold", "0.05", "breast = brighter than this share of the max");
    mm_args_float(&a, "min-breast", "0.5", "share of a background patch that must be breast");
    mm_args_int(&a, "max-tries", "1000", "rejections before the overlap threshold drops by 0.05");
    mm_args_int(&a, "seed", "12345", "seed");
    mm_args_int(&a, "threads", "0", "threads (0: one per CPU)");
    mm_args_bool(&a, "quiet", "no progress output");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (run(&a) != MM_OK) return mm_cli_error();
    return 0;
}
