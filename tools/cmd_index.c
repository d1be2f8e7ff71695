/* `mammo index --cbis-ddsm ROOT | --inbreast ROOT --out index.csv`: builds the dataset index
 * (tools/index.h) and prints one summary line. Nothing is left behind on failure: the index and
 * INbreast's mask folder are written under temporary names and renamed at the very end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "fs.h"
#include "indexers.h"

static void print_summary(const mm_index *idx, const char *dataset, const char *extra,
                          const char *out)
{
    mm_index_counts c;
    mm_index_count(&c, idx);
    printf("mammo index: %s: %d images (%d malignant, %d benign), %d patients, %d ROIs; split "
           "train %d / val %d / test %d images (%d / %d / %d patients)%s -> %s\n",
           dataset, c.images, c.malignant, c.benign, c.patients, c.rois,
           c.split_images[MM_SPLIT_TRAIN], c.split_images[MM_SPLIT_VAL],
           c.split_images[MM_SPLIT_TEST], c.split_patients[MM_SPLIT_TRAIN],
           c.split_patients[MM_SPLIT_VAL], c.split_patients[MM_SPLIT_TEST], extra, out);
}

static mm_status get_frac(const mm_args *a, const char *name, double def, double *out)
{
    *out = def;
    if (!mm_args_given(a, name)) return MM_OK;
    MM_TRY(mm_args_get_float(a, name, out));
    if (!(*out >= 0 && *out < 1))
        return mm_fail(MM_ERR_ARG, "--%s %g: must be in [0, 1)", name, *out);
    return MM_OK;
}

static mm_status run(const mm_args *a)
{
    const char *cbis = mm_args_get(a, "cbis-ddsm"), *inbreast = mm_args_get(a, "inbreast");
    const char *out = mm_args_get(a, "out");
    if (!!cbis == !!inbreast)
        return mm_fail(MM_ERR_ARG, "mammo index: give exactly one of --cbis-ddsm ROOT and "
                                   "--inbreast ROOT");
    if (!out) return mm_fail(MM_ERR_ARG, "mammo index: --out index.csv is required");
    if (a->n_pos)
        return mm_fail(MM_ERR_ARG, "mammo index: unexpected argument '%s'", a->pos[0]);
    mm_indexer_opts o;
    mm_indexer_opts_default(&o);
    int64_t v;
    MM_TRY(mm_args_get_int(a, "seed", &v));
    o.seed = (uint64_t)v;
    MM_TRY(mm_args_get_int(a, "threads", &v));
    if (v < 0 || v > 4096)
        return mm_fail(MM_ERR_ARG, "--threads %lld: must be 0 (one per CPU) to 4096", (long long)v);
    o.threads = (int)v;
    MM_TRY(mm_args_get_int(a, "subset-patients", &v));
    if (v < 0) return mm_fail(MM_ERR_ARG, "--subset-patients %lld: must be >= 0", (long long)v);
    o.subset_patients = (int)v;
    MM_TRY(mm_args_get_float(a, "point-radius", &o.point_radius));
    if (!(o.point_radius > 0 && o.point_radius < 100))
        return mm_fail(MM_ERR_ARG, "--point-radius %g: must be in (0, 100) pixels", o.point_radius);
    o.quiet = mm_args_get_bool(a, "quiet");
    const char *split = mm_args_get(a, "split");
    if (strcmp(split, "paper") && strcmp(split, "official"))
        return mm_fail(MM_ERR_ARG, "--split %s: must be paper or official", split);
    o.official_split = !strcmp(split, "official");
    MM_TRY(get_frac(a, "test-frac", cbis ? 0.15 : 0.30, &o.test_frac));
    MM_TRY(get_frac(a, "val-frac", 0.10, &o.val_frac));
    if (inbreast && (o.official_split || mm_args_given(a, "val-frac")))
        return mm_fail(MM_ERR_ARG, "--split official and --val-frac are for --cbis-ddsm; INbreast "
                                   "is split train/val only (--test-frac sets the val share)");
    if (cbis && o.subset_patients)
        return mm_fail(MM_ERR_ARG, "--subset-patients is for --inbreast (the transfer experiment)");

    char out_dir[4096];
    mm_fs_dirname(out_dir, sizeof out_dir, out);
    mm_index idx;
    if (cbis) {
        MM_TRY(mm_index_cbis_ddsm(&idx, cbis, &o));
        mm_status st = mm_fs_mkdirs(out_dir);
        if (st == MM_OK) st = mm_index_write(&idx, out);
        if (st == MM_OK) print_summary(&idx, "cbis-ddsm", "", out);
        mm_index_free(&idx);
        return st;
    }

    char masks[4096], stage[4300], tmp_index[4300];
    if (mm_args_given(a, "masks"))
        snprintf(masks, sizeof masks, "%s", mm_args_get(a, "masks"));
    else
        mm_fs_join(masks, sizeof masks, out_dir, "inbreast_masks");
    size_t n = strlen(masks);
    while (n > 1 && masks[n - 1] == '/') masks[--n] = '\0';
    o.mask_dir = masks;
    MM_TRY(mm_fs_mkdirs(out_dir));
    {
        char parent[4096];
        MM_TRY(mm_fs_mkdirs(mm_fs_dirname(parent, sizeof parent, masks)));
    }
    snprintf(stage, sizeof stage, "%s.partial.%d", masks, (int)getpid());
    snprintf(tmp_index, sizeof tmp_index, "%s.partial.%d", out, (int)getpid());
    int unknown = 0, birads3 = 0;
    mm_status st = mm_index_inbreast(&idx, &unknown, &birads3, inbreast, stage, &o);
    if (st == MM_OK) {
        st = mm_index_write(&idx, tmp_index);
        if (st == MM_OK) st = mm_fs_replace_dir(stage, masks, "--masks");
        if (st == MM_OK && rename(tmp_index, out) != 0)
            st = mm_fail(MM_ERR_IO, "--out %s: cannot rename %s into place: %s", out, tmp_index,
                         strerror(errno));
        if (st == MM_OK) {
            if (unknown)
                fprintf(stderr, "mammo: warning: %d ROIs with an unknown Name were skipped\n",
                        unknown);
            char extra[64];
            snprintf(extra, sizeof extra, "; %d BI-RADS 3 images left out", birads3);
            print_summary(&idx, "inbreast", extra, out);
        }
        mm_index_free(&idx);
    }
    if (st != MM_OK) {
        unlink(tmp_index);
        mm_fs_rmtree(stage);
    }
    return st;
}

int mm_cmd_index(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo index", "(--cbis-ddsm ROOT | --inbreast ROOT) --out index.csv [flags]",
                 "Indexes a CBIS-DDSM or INbreast download: labels, ROIs, a seeded patient-level "
                 "stratified split.\nWrites index.csv (format in tools/index.h) and, for INbreast, "
                 "the rasterised ROI masks.");
    mm_args_str(&a, "cbis-ddsm", NULL, "CBIS-DDSM folder: the four description CSVs and the DICOM tree");
    mm_args_str(&a, "inbreast", NULL, "INbreast folder: INbreast.csv, AllDICOMs/, AllXML/");
    mm_args_str(&a, "out", NULL, "the index file to write");
    mm_args_int(&a, "seed", "12345", "seed of the split");
    mm_args_str(&a, "split", "paper", "paper: own 85/15 split, 10% val; official: CBIS-DDSM's Training/Test, 10% val");
    mm_args_float(&a, "test-frac", NULL, "held-out share of the patients (CBIS-DDSM 0.15 test, INbreast 0.30 val)");
    mm_args_float(&a, "val-frac", NULL, "validation share of the training patients (CBIS-DDSM, 0.10)");
    mm_args_int(&a, "subset-patients", "0", "INbreast: keep this many training patients (0: all)");
    mm_args_str(&a, "masks", NULL, "INbreast: mask folder (default: inbreast_masks beside --out)");
    mm_args_float(&a, "point-radius", "3", "INbreast: disk radius in pixels for 1-2 point ROIs");
    mm_args_int(&a, "threads", "0", "threads (0: one per CPU)");
    mm_args_bool(&a, "quiet", "no progress output");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (run(&a) != MM_OK) return mm_cli_error();
    return 0;
}
