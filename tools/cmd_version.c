/* `mammo version` and `mammo devices`. */
#include <stdio.h>

#include "../kernels/cpu/blas.h"
#include "../runtime/backend.h"
#include "../runtime/dist.h"
#include "args.h"
#include "commands.h"

#define MM_VERSION "0.1.0"

int mm_cmd_version(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo version", "", "Prints the version and the backends and libraries compiled in.");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
#ifdef MM_HAVE_DICOM
    const char *dicom = "DCMTK";
#else
    const char *dicom = "none";
#endif
    printf("mammo %s (backends: cpu, meta%s; NCCL: %s; DICOM: %s)\n", MM_VERSION,
           mm_cuda_compiled() ? ", cuda" : "", mm_nccl_compiled(NULL, 0) ? "yes" : "none",
           dicom);
    char why[512];
    if (mm_blas_load(why, sizeof why)) {
        fprintf(stderr, "mammo: %s\n", why);
        return 1;
    }
    printf("CPU GEMM: %s\n", mm_blas_describe());
    return 0;
}

int mm_cmd_devices(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo devices", "", "Lists the devices this build can use here.");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    char why[256];
    printf("cpu   available\nmeta  available (shapes and memory plans only)\n");
    if (mm_cuda_available(why, sizeof why))
        printf("cuda  available\n");
    else
        printf("cuda  not available: %s\n", why);
    return 0;
}
