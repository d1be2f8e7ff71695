/* DICOM calls in a build without DCMTK (MM_HAVE_DICOM unset): every call fails with one clear
 * tier-1 message. Compiled always; its body exists only when the shim is absent. */
#include "dicom.h"

#ifndef MM_HAVE_DICOM

#include <stdlib.h>

#define MM_NO_DICOM "this build has no DICOM support (DCMTK not found); install libdcmtk-dev and rebuild"

void mm_dicom_init(void) {}

mm_status mm_dicom_read_info(const char *path, mm_dicom_info *info)
{
    (void)info;
    return mm_fail(MM_ERR_UNSUPPORTED, "%s: %s", path, MM_NO_DICOM);
}

mm_status mm_dicom_check_pixels(const char *path, const mm_dicom_info *info)
{
    (void)info;
    return mm_fail(MM_ERR_UNSUPPORTED, "%s: %s", path, MM_NO_DICOM);
}

mm_status mm_dicom_read_u16(const char *path, mm_dicom_info *info, uint16_t **pixels)
{
    (void)info;
    *pixels = NULL;
    return mm_fail(MM_ERR_UNSUPPORTED, "%s: %s", path, MM_NO_DICOM);
}

mm_status mm_dicom_write(const char *path, const void *pixels, int rows, int cols,
                         const mm_dicom_write_opts *opts)
{
    (void)pixels, (void)rows, (void)cols, (void)opts;
    return mm_fail(MM_ERR_UNSUPPORTED, "%s: %s", path, MM_NO_DICOM);
}

#else
/* ISO C forbids an empty translation unit. */
typedef int mm_dicom_absent_unused;
#endif
