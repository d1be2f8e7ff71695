/* DICOM through DCMTK: a C API over a small C++ shim (tools/dicom/dicom_shim.cpp).
 *
 * Grayscale pixel data comes back as 16-bit values with rescale slope/intercept applied,
 * MONOCHROME1 inverted, bits above BitsStored masked and signed data handled; compressed transfer
 * syntaxes are decoded by DCMTK's registered codecs (JPEG baseline/lossless, JPEG-LS, RLE,
 * deflated). Anything unsupported (JPEG 2000, colour, multi-frame), truncated or non-DICOM files
 * give a tier-1 error naming the file and the reason. Where the build has no DCMTK
 * (MM_HAVE_DICOM unset) every call fails with a message saying so (tools/dicom_absent.c).
 *
 * How stored values become uint16 (mm_dicom_read_u16), for every pixel:
 *   1. s = (word >> (HighBit + 1 - BitsStored)) & (2^BitsStored - 1): bits above BitsStored (overlay
 *      bits, garbage) are dropped; with PixelRepresentation 1, s is sign-extended from BitsStored bits.
 *   2. m = RescaleSlope * s + RescaleIntercept (slope 1, intercept 0 when the tags are absent).
 *   3. m is mapped into [0, 65535] by a map fixed by the header alone (never by the image content,
 *      so values are comparable between images). [mlo, mhi] is the range m can take over every
 *      possible stored value s:
 *        - mlo >= 0 and mhi <= 65535 (unsigned data, no or harmless rescale): v = round(m), the
 *          values as they are (a 14-bit INbreast image stays 0..16383, CBIS-DDSM 0..65535);
 *        - else if mhi - mlo <= 65535 (signed data, negative intercepts): v = round(m - mlo), shifted
 *          so the smallest possible value is 0 (signed 16-bit s gives s + 32768);
 *        - else: v = round((m - mlo) * 65535 / (mhi - mlo)), scaled linearly onto 0..65535.
 *      round() is floor(x + 0.5).
 *   4. MONOCHROME1 (low = bright): v = vlo + vhi - v where [vlo, vhi] is the image of [mlo, mhi],
 *      so that larger always means brighter/denser, as with MONOCHROME2 (14-bit: v = 16383 - s).
 * No VOI window is applied. */
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
    /* Added after the first version of this header (zero/empty when absent). */
    int high_bit;
    int encapsulated;          /* the transfer syntax is compressed (encapsulated pixel data) */
    char study_uid[72];
    char sop_instance_uid[72];
    char sop_class_uid[72];
} mm_dicom_info;

/* The largest image the readers accept (rows * cols), so a corrupt header cannot make them
 * allocate gigabytes: 2^28 pixels (16384 x 16384); a full-field mammogram is ~2^24. */
#define MM_DICOM_MAX_PIXELS (1ll << 28)

/* Registers the codecs once (thread-safe; called implicitly by the functions below). Silences
 * DCMTK's own logging (set MM_DCMTK_LOG=warn|info|debug to see it). */
void mm_dicom_init(void);

/* Reads the header only (stops before the pixel data). Needs Rows and Columns; succeeds for
 * colour, multi-frame and JPEG 2000 files too (see mm_dicom_check_pixels). */
mm_status mm_dicom_read_info(const char *path, mm_dicom_info *info);

/* MM_OK if mm_dicom_read_u16 can decode this file's pixels; otherwise a tier-1 error naming
 * `path` and the reason (colour, multi-frame, not grayscale, unsupported transfer syntax such as
 * JPEG 2000, unsupported BitsAllocated). Looks at the header only. */
mm_status mm_dicom_check_pixels(const char *path, const mm_dicom_info *info);

/* Reads the pixel data as 16-bit values (see above). *pixels is malloc'ed [rows*cols], row-major;
 * the caller frees it. info may be NULL. */
mm_status mm_dicom_read_u16(const char *path, mm_dicom_info *info, uint16_t **pixels);

/* Writes a single-frame grayscale DICOM with the given tags (any may be NULL/empty); used by the
 * synthetic dataset generator and tests. `pixels` is uint8_t [rows*cols] for bits_allocated 8,
 * uint16_t (or int16_t when pixel_representation is 1) [rows*cols] for 16, stored as given. The
 * file is written to a temporary name and renamed. Compressed transfer syntaxes (RLE, JPEG-LS
 * lossless/near-lossless, JPEG lossless SV1, JPEG baseline for 8-bit, deflated) go through DCMTK's
 * encoders. The fields after `transfer_syntax_uid` are optional: zero/NULL means the default. */
typedef struct mm_dicom_write_opts {
    int bits_allocated;  /* 8 or 16 */
    int bits_stored;
    const char *patient_id, *laterality, *view, *series_uid, *study_uid, *series_description;
    const char *photometric; /* default MONOCHROME2 */
    const char *transfer_syntax_uid; /* NULL: explicit little endian; or an RLE/JPEG-LS/lossless UID */
    /* Added after the first version of this header. */
    int pixel_representation;     /* 0 unsigned, 1 signed (two's complement) */
    double rescale_slope;         /* 0: no Rescale Slope/Intercept/Type written */
    double rescale_intercept;
    const char *sop_instance_uid; /* NULL: a fresh unique UID (not reproducible) */
    const char *sop_class_uid;    /* NULL: Secondary Capture Image Storage */
    const char *modality;         /* NULL: "OT" */
    const char *conversion_type;  /* Secondary Capture's (0008,0064); NULL: "SYN" */
    const char *manufacturer;
    const char *patient_name;
    const char *study_date;       /* YYYYMMDD */
    double pixel_spacing_mm;      /* > 0: PixelSpacing and ImagerPixelSpacing */
    int series_number, instance_number;
    /* Test fixtures only, to check that the reader refuses them: 3 writes an RGB image
     * (pixels [rows*cols*3], interleaved), frames > 1 a multi-frame image (pixels
     * [frames*rows*cols]). */
    int samples_per_pixel;
    int frames;
} mm_dicom_write_opts;
mm_status mm_dicom_write(const char *path, const void *pixels, int rows, int cols,
                         const mm_dicom_write_opts *opts);

/* Transfer syntax UIDs for mm_dicom_write_opts.transfer_syntax_uid. */
#define MM_DICOM_TS_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define MM_DICOM_TS_IMPLICIT_LE "1.2.840.10008.1.2"
#define MM_DICOM_TS_EXPLICIT_BE "1.2.840.10008.1.2.2"
#define MM_DICOM_TS_DEFLATED "1.2.840.10008.1.2.1.99"
#define MM_DICOM_TS_RLE "1.2.840.10008.1.2.5"
#define MM_DICOM_TS_JPEG_BASELINE "1.2.840.10008.1.2.4.50"
#define MM_DICOM_TS_JPEG_LOSSLESS_SV1 "1.2.840.10008.1.2.4.70"
#define MM_DICOM_TS_JPEGLS_LOSSLESS "1.2.840.10008.1.2.4.80"
#define MM_DICOM_TS_JPEGLS_NEAR "1.2.840.10008.1.2.4.81"
#define MM_DICOM_TS_JPEG2000_LOSSLESS "1.2.840.10008.1.2.4.90"
#define MM_DICOM_TS_JPEG2000 "1.2.840.10008.1.2.4.91"

/* SOP classes the generator uses. */
#define MM_DICOM_SOP_SECONDARY_CAPTURE "1.2.840.10008.5.1.4.1.1.7"
#define MM_DICOM_SOP_MAMMO_PRESENTATION "1.2.840.10008.5.1.4.1.1.1.2"

#endif
