/* `mammo synth`: writes a synthetic CBIS-DDSM or INbreast dataset (see tools/synth.h and the
 * layout files tools/synth_cbis.c and tools/synth_inbreast.c for what is written where). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "synth.h"

int mm_cmd_synth(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo synth", "--layout cbis-ddsm|inbreast --out DIR [flags]",
                 "Writes a synthetic mammography dataset in the real layout of CBIS-DDSM or INbreast:\n"
                 "real DICOM files (through DCMTK), the datasets' CSV/XML files with their quirks, and\n"
                 "an answer key (synth-truth-images.csv, synth-truth-rois.csv). Images are small by\n"
                 "default (CBIS ~320 x 256, INbreast 320 x 261 / 261 x 201); --full-size gives the real\n"
                 "sizes (CBIS ~4000 x 3000, INbreast 4084 x 3328 / 3328 x 2560). The same seed gives\n"
                 "byte-identical files whatever --threads is.");
    mm_args_str(&a, "layout", NULL, "cbis-ddsm or inbreast");
    mm_args_str(&a, "out", NULL, "output folder (created if missing)");
    mm_args_int(&a, "patients", "20", "number of patients");
    mm_args_int(&a, "seed", "1", "random seed");
    mm_args_bool(&a, "full-size", "real image sizes instead of the small default");
    mm_args_int(&a, "height", "0", "every image exactly this many rows (with --width)");
    mm_args_int(&a, "width", "0", "every image exactly this many columns (with --height)");
    mm_args_int(&a, "threads", "0", "worker threads (0: all cores)");
    mm_args_str(&a, "tree", "descriptive", "CBIS-DDSM download tree: descriptive, old or classic");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (a.n_pos) {
        mm_fail(MM_ERR_ARG, "mammo synth: unexpected argument '%s' (see --help)", a.pos[0]);
        return mm_cli_error();
    }
    mm_synth_opts o = {0};
    const char *layout = mm_args_get(&a, "layout"), *tree = mm_args_get(&a, "tree");
    if (!layout || (strcmp(layout, "cbis-ddsm") && strcmp(layout, "inbreast"))) {
        mm_fail(MM_ERR_ARG, "mammo synth: --layout must be cbis-ddsm or inbreast");
        return mm_cli_error();
    }
    o.layout = strcmp(layout, "cbis-ddsm") ? MM_SYNTH_INBREAST : MM_SYNTH_CBIS_DDSM;
    if (!strcmp(tree, "descriptive")) o.tree = MM_SYNTH_TREE_DESCRIPTIVE;
    else if (!strcmp(tree, "old")) o.tree = MM_SYNTH_TREE_OLD;
    else if (!strcmp(tree, "classic")) o.tree = MM_SYNTH_TREE_CLASSIC;
    else {
        mm_fail(MM_ERR_ARG, "mammo synth: --tree must be descriptive, old or classic");
        return mm_cli_error();
    }
    int64_t patients, seed, height, width, threads;
    if (mm_args_get_int(&a, "patients", &patients) != MM_OK || mm_args_get_int(&a, "seed", &seed) != MM_OK ||
        mm_args_get_int(&a, "height", &height) != MM_OK || mm_args_get_int(&a, "width", &width) != MM_OK ||
        mm_args_get_int(&a, "threads", &threads) != MM_OK)
        return mm_cli_error();
    if (patients < 1 || patients > 100000 || height < 0 || width < 0 || threads < 0 || threads > 1024) {
        mm_fail(MM_ERR_ARG, "mammo synth: --patients, --height, --width or --threads out of range");
        return mm_cli_error();
    }
    o.out_dir = mm_args_get(&a, "out");
    o.patients = (int)patients;
    o.seed = (uint64_t)seed;
    o.full_size = mm_args_get_bool(&a, "full-size");
    o.height = (int)height, o.width = (int)width;
    o.threads = (int)threads;
    mm_synth_summary s;
    if (mm_synth_generate(&o, &s) != MM_OK) return mm_cli_error();
    printf("mammo synth: %s: %d patients, %d images (%d malignant, %d benign, %d normal), %d ROIs, %d files "
           "in %s\n",
           layout, s.patients, s.images, s.malignant_images, s.benign_images, s.normal_images, s.rois, s.files,
           o.out_dir);
    return 0;
}
