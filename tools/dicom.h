/* DICOM through DCMTK: a C API over a small C++ shim (tools/dicom/dicom_shim.cpp).
 *
 * Grayscale pixel data comes back as 16-bit values with rescale slope/intercept applied,
 * MONOCHROME1 inverted, bits above BitsStored masked and signed data handled; compressed transfer
 * syntaxes are decoded by DCMTK's registered codecs (JPEG baseline/lossless, JPEG-LS, RLE,
 * deflated). Anything unsupported (JPEG 2000, colour, multi-frame), truncated or non-DICOM files
 * give a tier-1 error naming the file and the reason. Where the build has no DCMTK
 * (MM_HAVE_DICOM unset) every call fails with a message saying so. */
#ifndef MM_DICOM_H
#define MM_DICOM_H

#include <stdint.h>

#include "../runtime/error.h"

typedef struct mm_dicom_info {
    int rows, cols;
    int bits_allocated, bits_stored, pixel_representation; /* 0 unsigned, 1 signed */
    int frames, samples_per_pixel;
    double rescale_slope, rescale_intercept;
    char photometric[32];      /* MONOCHROME1, MONOCHROME2, ... */
    char transfer_syntax[128]; /* DCMTK's name of the transfer syntax */
    char transfer_uid[72];
    char patient_id[128];
    char laterality[8];        /* ImageLaterality, else Laterality; "" if absent */
    char view[32];             /* ViewPosition; "" if absent */
    char series_uid[72];
    char series_description[128];
    char modality[16];
} mm_dicom_info;

/* Registers the codecs once (thread-safe; called implicitly by the functions below). */
void mm_dicom_init(void);

/* Reads the header only (stops before the pixel data). */
mm_status mm_dicom_read_info(const char *path, mm_dicom_info *info);

/* Reads the pixel data as 16-bit values (see above). *pixels is malloc'ed [rows*cols], row-major;
 * the caller frees it. info may be NULL. */
mm_status mm_dicom_read_u16(const char *path, mm_dicom_info *info, uint16_t **pixels);

/* Writes a MONOCHROME2 16-bit (bits_stored <= 16) or 8-bit single-frame uncompressed DICOM with the
 * given tags (any may be NULL/empty); used by the synthetic dataset generator and tests. The file
 * is written to a temporary name and renamed. */
typedef struct mm_dicom_write_opts {
    int bits_allocated;  /* 8 or 16 */
    int bits_stored;
    const char *patient_id, *laterality, *view, *series_uid, *study_uid, *series_description;
    const char *photometric; /* default MONOCHROME2 */
    const char *transfer_syntax_uid; /* NULL: explicit little endian; or an RLE/JPEG-LS/lossless UID */
} mm_dicom_write_opts;
mm_status mm_dicom_write(const char *path, const void *pixels, int rows, int cols,
                         const mm_dicom_write_opts *opts);

#endif
