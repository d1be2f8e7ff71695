/* `mammo dicom info FILE` and `mammo dicom to-png FILE OUT.png`: look inside a DICOM file and
 * export its pixels (the 16-bit values of dicom.h: rescaled, MONOCHROME1 inverted, no window) as a
 * 16-bit grayscale PNG of the same size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "dicom.h"
#include "png_io.h"

static const char *or_dash(const char *s) { return s && s[0] ? s : "-"; }

static int cmd_info(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo dicom info", "FILE",
                 "Prints a DICOM file's size, bits, photometric interpretation, transfer syntax,\n"
                 "patient, laterality and view, and whether its pixels can be read.");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (a.n_pos != 1) {
        mm_fail(MM_ERR_ARG, "mammo dicom info: give exactly one FILE (see --help)");
        return mm_cli_error();
    }
    const char *path = a.pos[0];
    mm_dicom_info in;
    if (mm_dicom_read_info(path, &in) != MM_OK) return mm_cli_error();
    printf("file: %s\n", path);
    printf("size: %d x %d (rows x columns)\n", in.rows, in.cols);
    printf("bits: allocated %d, stored %d, high bit %d, %s\n", in.bits_allocated, in.bits_stored,
           in.high_bit, in.pixel_representation ? "signed" : "unsigned");
    printf("photometric: %s\n", or_dash(in.photometric));
    printf("samples per pixel: %d\nframes: %d\n", in.samples_per_pixel, in.frames);
    printf("rescale: slope %g, intercept %g\n", in.rescale_slope, in.rescale_intercept);
    printf("transfer syntax: %s (%s)\n", or_dash(in.transfer_syntax), or_dash(in.transfer_uid));
    printf("patient: %s\n", or_dash(in.patient_id));
    printf("laterality: %s\nview: %s\n", or_dash(in.laterality), or_dash(in.view));
    printf("modality: %s\n", or_dash(in.modality));
    printf("series: %s (%s)\n", or_dash(in.series_description), or_dash(in.series_uid));
    printf("study: %s\n", or_dash(in.study_uid));
    if (mm_dicom_check_pixels(path, &in) == MM_OK)
        printf("pixels: readable\n");
    else
        printf("pixels: not readable: %s\n", mm_last_error());
    return 0;
}

static int cmd_to_png(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo dicom to-png", "FILE OUT.png",
                 "Writes the DICOM's pixels as a 16-bit grayscale PNG of the same width and height:\n"
                 "rescale slope/intercept applied, MONOCHROME1 inverted, no window (see tools/dicom.h).");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (a.n_pos != 2) {
        mm_fail(MM_ERR_ARG, "mammo dicom to-png: give FILE and OUT.png (see --help)");
        return mm_cli_error();
    }
    mm_dicom_info in;
    uint16_t *px = NULL;
    if (mm_dicom_read_u16(a.pos[0], &in, &px) != MM_OK) return mm_cli_error();
    mm_image img = {.height = in.rows, .width = in.cols, .bit_depth = 16, .pixels = px};
    mm_status s = mm_png_write(a.pos[1], &img);
    free(px);
    if (s != MM_OK) return mm_cli_error();
    return 0;
}

int mm_cmd_dicom(int argc, char **argv)
{
    const char *usage = "usage: mammo dicom info FILE | mammo dicom to-png FILE OUT.png\n";
    if (argc < 2) {
        fputs(usage, stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "to-png")) return cmd_to_png(argc - 1, argv + 1);
    fprintf(stderr, "mammo: dicom: unknown subcommand '%s'\n%s", argv[1], usage);
    return 1;
}
