/* The DCMTK shim behind tools/dicom.h: the only C++ file of the project.
 *
 * Reads with the raw dataset path (DcmFileFormat/DcmDataset), not DicomImage: we want the exact
 * stored values and apply the documented mapping (dicom.h) ourselves, with one copy. Compressed
 * transfer syntaxes are decoded by DCMTK's codecs (registered once, before any thread uses them)
 * through chooseRepresentation(). Every entry point catches C++ exceptions and turns every DCMTK
 * failure into a tier-1 mm_fail() message that names the file. */
#if defined(__cplusplus) && !defined(_Noreturn)
#define _Noreturn [[noreturn]]
#endif
extern "C" {
#include "../dicom.h"
#include "../../runtime/atomic_file.h"
#include "../fs.h"
}

#include <dcmtk/config/osconfig.h>

#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpeg/djrploss.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>
#include <dcmtk/oflog/oflog.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

/* ------------------------------------------------------------------------------------------ */
/* Initialisation: codecs and logging, once per process. */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void cleanup_codecs(void)
{
    DJDecoderRegistration::cleanup();
    DJEncoderRegistration::cleanup();
    DJLSDecoderRegistration::cleanup();
    DJLSEncoderRegistration::cleanup();
    DcmRLEDecoderRegistration::cleanup();
    DcmRLEEncoderRegistration::cleanup();
}

static void init_once_fn(void)
{
    const char *lv = getenv("MM_DCMTK_LOG");
    OFLogger::LogLevel level = OFLogger::OFF_LOG_LEVEL;
    if (lv && !strcmp(lv, "warn")) level = OFLogger::WARN_LOG_LEVEL;
    if (lv && !strcmp(lv, "info")) level = OFLogger::INFO_LOG_LEVEL;
    if (lv && !strcmp(lv, "debug")) level = OFLogger::DEBUG_LOG_LEVEL;
    OFLog::configure(level);
    DJDecoderRegistration::registerCodecs();
    /* Encoders: keep the SOP Instance UID for lossless compression (EUC_default makes a new one
     * only for lossy) and no colour conversion (grayscale only). */
    DJEncoderRegistration::registerCodecs(ECC_lossyYCbCr, EUC_default);
    DJLSDecoderRegistration::registerCodecs();
    /* JPEG-LS: the "raw" encoder. DCMTK 3.6.7's default "cooked" one (DicomImage based) writes a
     * byte before its output buffer in fixPaddingIfNecessary() (found with valgrind), which made
     * the first JPEG-LS file of a process undecodable. */
    DJLSEncoderRegistration::registerCodecs(0, 0, 0, 0, OFFalse);
    DcmRLEDecoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
    atexit(cleanup_codecs);
}

extern "C" void mm_dicom_init(void) { pthread_once(&init_once, init_once_fn); }

static mm_status check_dictionary(const char *path)
{
    if (!dcmDataDict.isDictionaryLoaded())
        return mm_fail(MM_ERR_IO,
                       "%s: DCMTK's data dictionary is not loaded (dicom.dic); install DCMTK's "
                       "data files or set DCMDICTPATH",
                       path);
    return MM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading. */

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void get_str(DcmItem *ds, const DcmTagKey &tag, char *dst, size_t cap)
{
    OFString s;
    if (ds->findAndGetOFString(tag, s).good())
        copy_str(dst, cap, s.c_str());
    else
        dst[0] = '\0';
}

/* Checks that the file starts like a DICOM Part 10 file: a 128-byte preamble then "DICM". Files
 * without it (raw ACR-NEMA datasets) are refused; both datasets we read are Part 10 files. */
static mm_status check_magic(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mm_fail(MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[132];
    size_t n = fread(head, 1, sizeof head, f);
    int err = ferror(f);
    fclose(f);
    if (err) return mm_fail(MM_ERR_IO, "%s: cannot read (is it a folder?)", path);
    if (n < sizeof head)
        return mm_fail(MM_ERR_FORMAT, "%s: not a DICOM file: only %zu bytes long", path, n);
    if (memcmp(head + 128, "DICM", 4) != 0)
        return mm_fail(MM_ERR_FORMAT,
                       "%s: not a DICOM file (no 'DICM' marker after the 128-byte preamble)", path);
    return MM_OK;
}

static mm_status load_error(const char *path, const OFCondition &c)
{
    if (c == EC_StreamNotifyClient || c == EC_EndOfStream)
        return mm_fail(MM_ERR_FORMAT, "%s: the DICOM file ends early (truncated download?)", path);
    return mm_fail(MM_ERR_FORMAT, "%s: cannot parse the DICOM file (corrupt or truncated?): %s", path, c.text());
}

static mm_status fill_info(const char *path, DcmFileFormat &ff, mm_dicom_info *info)
{
    DcmDataset *ds = ff.getDataset();
    memset(info, 0, sizeof *info);
    Uint16 v16 = 0;
    if (ds->findAndGetUint16(DCM_Rows, v16).bad() || v16 == 0)
        return mm_fail(MM_ERR_FORMAT, "%s: no Rows (0028,0010) tag: not an image", path);
    info->rows = v16;
    if (ds->findAndGetUint16(DCM_Columns, v16).bad() || v16 == 0)
        return mm_fail(MM_ERR_FORMAT, "%s: no Columns (0028,0011) tag: not an image", path);
    info->cols = v16;
    if (ds->findAndGetUint16(DCM_BitsAllocated, v16).bad())
        return mm_fail(MM_ERR_FORMAT, "%s: no BitsAllocated (0028,0100) tag", path);
    info->bits_allocated = v16;
    info->bits_stored = ds->findAndGetUint16(DCM_BitsStored, v16).good() ? v16 : info->bits_allocated;
    info->high_bit = ds->findAndGetUint16(DCM_HighBit, v16).good() ? v16 : info->bits_stored - 1;
    info->pixel_representation = ds->findAndGetUint16(DCM_PixelRepresentation, v16).good() ? v16 : 0;
    info->samples_per_pixel = ds->findAndGetUint16(DCM_SamplesPerPixel, v16).good() ? v16 : 1;
    Sint32 frames = 1;
    if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
    info->frames = (int)frames;
    Float64 f64;
    info->rescale_slope = ds->findAndGetFloat64(DCM_RescaleSlope, f64).good() ? f64 : 1.0;
    info->rescale_intercept = ds->findAndGetFloat64(DCM_RescaleIntercept, f64).good() ? f64 : 0.0;
    if (!(info->rescale_slope == info->rescale_slope) || info->rescale_slope == 0.0 ||
        !isfinite(info->rescale_slope) || !isfinite(info->rescale_intercept))
        return mm_fail(MM_ERR_FORMAT, "%s: RescaleSlope/Intercept (%g, %g) are not usable", path,
                       info->rescale_slope, info->rescale_intercept);
    get_str(ds, DCM_PhotometricInterpretation, info->photometric, sizeof info->photometric);
    if (!info->photometric[0] && info->samples_per_pixel == 1)
        copy_str(info->photometric, sizeof info->photometric, "MONOCHROME2");
    DcmXfer xfer(ds->getOriginalXfer());
    copy_str(info->transfer_syntax, sizeof info->transfer_syntax, xfer.getXferName());
    copy_str(info->transfer_uid, sizeof info->transfer_uid, xfer.getXferID());
    /* The meta header names the syntax even when DCMTK does not know it (EXS_Unknown). */
    if (!info->transfer_uid[0])
        get_str(ff.getMetaInfo(), DCM_TransferSyntaxUID, info->transfer_uid, sizeof info->transfer_uid);
    info->encapsulated = xfer.isEncapsulated() ? 1 : 0;
    get_str(ds, DCM_PatientID, info->patient_id, sizeof info->patient_id);
    get_str(ds, DCM_ImageLaterality, info->laterality, sizeof info->laterality);
    if (!info->laterality[0]) get_str(ds, DCM_Laterality, info->laterality, sizeof info->laterality);
    get_str(ds, DCM_ViewPosition, info->view, sizeof info->view);
    get_str(ds, DCM_SeriesInstanceUID, info->series_uid, sizeof info->series_uid);
    get_str(ds, DCM_SeriesDescription, info->series_description, sizeof info->series_description);
    get_str(ds, DCM_Modality, info->modality, sizeof info->modality);
    get_str(ds, DCM_StudyInstanceUID, info->study_uid, sizeof info->study_uid);
    get_str(ds, DCM_SOPInstanceUID, info->sop_instance_uid, sizeof info->sop_instance_uid);
    get_str(ds, DCM_SOPClassUID, info->sop_class_uid, sizeof info->sop_class_uid);
    if ((long long)info->rows * info->cols > MM_DICOM_MAX_PIXELS)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: %d x %d pixels is larger than we accept (%lld)",
                       path, info->rows, info->cols, MM_DICOM_MAX_PIXELS);
    return MM_OK;
}

static int is_jpeg2000(const char *uid)
{
    static const char *const j2k[] = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                                      "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
                                      "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                                      "1.2.840.10008.1.2.4.203"};
    for (size_t i = 0; i < sizeof j2k / sizeof j2k[0]; i++)
        if (!strcmp(uid, j2k[i])) return 1;
    return 0;
}

extern "C" mm_status mm_dicom_check_pixels(const char *path, const mm_dicom_info *in)
{
    if (in->samples_per_pixel != 1)
        return mm_fail(MM_ERR_UNSUPPORTED,
                       "%s: colour image (SamplesPerPixel %d, %s); only grayscale mammograms are "
                       "supported",
                       path, in->samples_per_pixel, in->photometric);
    if (in->frames != 1)
        return mm_fail(MM_ERR_UNSUPPORTED,
                       "%s: multi-frame image (%d frames); only single-frame mammograms are "
                       "supported",
                       path, in->frames);
    if (strcmp(in->photometric, "MONOCHROME1") && strcmp(in->photometric, "MONOCHROME2"))
        return mm_fail(MM_ERR_UNSUPPORTED,
                       "%s: photometric interpretation '%s' is not grayscale (MONOCHROME1/2)", path,
                       in->photometric);
    if (in->bits_allocated != 8 && in->bits_allocated != 16)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: BitsAllocated %d is not supported (8 or 16)", path,
                       in->bits_allocated);
    if (in->bits_stored < 1 || in->bits_stored > in->bits_allocated)
        return mm_fail(MM_ERR_FORMAT, "%s: BitsStored %d does not fit BitsAllocated %d", path,
                       in->bits_stored, in->bits_allocated);
    if (in->high_bit < in->bits_stored - 1 || in->high_bit >= in->bits_allocated)
        return mm_fail(MM_ERR_FORMAT, "%s: HighBit %d does not fit BitsStored %d / BitsAllocated %d",
                       path, in->high_bit, in->bits_stored, in->bits_allocated);
    if (in->pixel_representation != 0 && in->pixel_representation != 1)
        return mm_fail(MM_ERR_FORMAT, "%s: PixelRepresentation %d is neither 0 nor 1", path,
                       in->pixel_representation);
    if (is_jpeg2000(in->transfer_uid))
        return mm_fail(MM_ERR_UNSUPPORTED,
                       "%s: JPEG 2000 transfer syntax (%s) is not supported: DCMTK's free edition "
                       "has no JPEG 2000 codec; convert the file to an uncompressed syntax first "
                       "(e.g. 'gdcmconv --raw')",
                       path, in->transfer_uid);
    DcmXfer x(in->transfer_uid);
    if (x.getXfer() == EXS_Unknown)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: unknown transfer syntax '%s'", path,
                       in->transfer_uid);
    if (x.isEncapsulated() && !DcmCodecList::canChangeCoding(x.getXfer(), EXS_LittleEndianExplicit))
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: transfer syntax %s (%s) is not supported (no codec)",
                       path, x.getXferName(), in->transfer_uid);
    return MM_OK;
}

extern "C" mm_status mm_dicom_read_info(const char *path, mm_dicom_info *info)
{
    mm_dicom_init();
    try {
        MM_TRY(check_dictionary(path));
        MM_TRY(check_magic(path));
        DcmFileFormat ff;
        OFCondition c = ff.loadFileUntilTag(path, EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                                            ERM_autoDetect, DCM_PixelData);
        if (c.bad()) return load_error(path, c);
        return fill_info(path, ff, info);
    } catch (const std::bad_alloc &) {
        return mm_fail(MM_ERR_NOMEM, "%s: out of memory while reading the DICOM header", path);
    } catch (...) {
        return mm_fail(MM_ERR_FORMAT, "%s: DCMTK failed on this file", path);
    }
}

/* The map of dicom.h step 3/4 as a table over all 2^BitsStored stored values. */
static void build_lut(uint16_t *lut, const mm_dicom_info *in)
{
    int bs = in->bits_stored;
    long long n = 1ll << bs;
    long long smin = in->pixel_representation ? -(n / 2) : 0, smax = in->pixel_representation ? n / 2 - 1 : n - 1;
    double a = in->rescale_slope, b = in->rescale_intercept;
    double m0 = a * (double)smin + b, m1 = a * (double)smax + b;
    double mlo = m0 < m1 ? m0 : m1, mhi = m0 < m1 ? m1 : m0;
    double off = 0.0, scale = 1.0;
    if (mlo >= 0.0 && mhi <= 65535.0) {
        off = 0.0;
    } else if (mhi - mlo <= 65535.0) {
        off = -mlo;
    } else {
        off = -mlo;
        scale = 65535.0 / (mhi - mlo);
    }
    double vlo = floor((mlo + off) * scale + 0.5), vhi = floor((mhi + off) * scale + 0.5);
    int invert = !strcmp(in->photometric, "MONOCHROME1");
    for (long long raw = 0; raw < n; raw++) {
        long long s = raw;
        if (in->pixel_representation && raw >= n / 2) s = raw - n;
        double v = floor((a * (double)s + b + off) * scale + 0.5);
        if (invert) v = vlo + vhi - v;
        if (v < 0) v = 0;
        if (v > 65535) v = 65535;
        lut[raw] = (uint16_t)v;
    }
}

static mm_status read_pixels(const char *path, mm_dicom_info *in, uint16_t **out)
{
    MM_TRY(check_dictionary(path));
    MM_TRY(check_magic(path));
    DcmFileFormat ff;
    OFCondition c = ff.loadFile(path, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
    if (c.bad()) return load_error(path, c);
    MM_TRY(fill_info(path, ff, in));
    MM_TRY(mm_dicom_check_pixels(path, in));
    DcmDataset *ds = ff.getDataset();
    if (in->encapsulated) {
        c = ds->chooseRepresentation(EXS_LittleEndianExplicit, NULL);
        if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
            return mm_fail(MM_ERR_FORMAT, "%s: cannot decode the %s pixel data: %s", path,
                           in->transfer_syntax, c.bad() ? c.text() : "codec failed");
    }
    DcmElement *elem = NULL;
    if (ds->findAndGetElement(DCM_PixelData, elem).bad() || !elem)
        return mm_fail(MM_ERR_FORMAT, "%s: no PixelData (7FE0,0010) element", path);
    size_t npix = (size_t)in->rows * (size_t)in->cols;
    size_t have = 0;
    const Uint8 *p8 = NULL;
    Uint16 *p16 = NULL;
    if (in->bits_allocated == 16) {
        c = elem->getUint16Array(p16);
        have = p16 ? elem->getLength() / 2 : 0;
    } else {
        Uint8 *q = NULL;
        c = elem->getUint8Array(q);
        p8 = q;
        have = p8 ? elem->getLength() : 0;
    }
    if (c.bad() || have == 0)
        return mm_fail(MM_ERR_FORMAT, "%s: the pixel data cannot be read: %s", path,
                       c.bad() ? c.text() : "empty");
    if (have < npix)
        return mm_fail(MM_ERR_FORMAT,
                       "%s: the pixel data holds %zu values, fewer than Rows x Columns = %d x %d "
                       "(truncated file?)",
                       path, have, in->rows, in->cols);
    uint16_t *lut = (uint16_t *)malloc(sizeof(uint16_t) << in->bits_stored);
    uint16_t *px = (uint16_t *)malloc(npix * sizeof(uint16_t));
    if (!lut || !px) {
        free(lut);
        free(px);
        return mm_fail(MM_ERR_NOMEM, "%s: out of memory for %d x %d pixels", path, in->rows, in->cols);
    }
    build_lut(lut, in);
    unsigned shift = (unsigned)(in->high_bit + 1 - in->bits_stored);
    unsigned mask = (1u << in->bits_stored) - 1u;
    if (p16)
        for (size_t i = 0; i < npix; i++) px[i] = lut[(p16[i] >> shift) & mask];
    else
        for (size_t i = 0; i < npix; i++) px[i] = lut[(p8[i] >> shift) & mask];
    free(lut);
    *out = px;
    return MM_OK;
}

extern "C" mm_status mm_dicom_read_u16(const char *path, mm_dicom_info *info, uint16_t **pixels)
{
    mm_dicom_init();
    *pixels = NULL;
    mm_dicom_info local;
    mm_dicom_info *in = info ? info : &local;
    try {
        return read_pixels(path, in, pixels);
    } catch (const std::bad_alloc &) {
        return mm_fail(MM_ERR_NOMEM, "%s: out of memory while reading the DICOM file", path);
    } catch (...) {
        return mm_fail(MM_ERR_FORMAT, "%s: DCMTK failed on this file", path);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Writing. */

static int nonempty(const char *s) { return s && s[0]; }

/* putAndInsertString with the result checked; an empty value writes an empty (type 2) element. */
static mm_status put(DcmDataset *ds, const DcmTagKey &tag, const char *value, const char *path)
{
    OFCondition c = ds->putAndInsertString(tag, value ? value : "");
    if (c.bad())
        return mm_fail(MM_ERR_ARG, "%s: cannot set tag (%04x,%04x) to '%s': %s", path,
                       tag.getGroup(), tag.getElement(), value ? value : "", c.text());
    return MM_OK;
}

static mm_status put_u16(DcmDataset *ds, const DcmTagKey &tag, int value, const char *path)
{
    OFCondition c = ds->putAndInsertUint16(tag, (Uint16)value);
    if (c.bad())
        return mm_fail(MM_ERR_ARG, "%s: cannot set tag (%04x,%04x): %s", path, tag.getGroup(),
                       tag.getElement(), c.text());
    return MM_OK;
}

static mm_status build_dataset(DcmDataset *ds, const char *path, const void *pixels, int rows,
                               int cols, const mm_dicom_write_opts *o)
{
    char uid[100], buf[64];
    int spp = o->samples_per_pixel > 1 ? o->samples_per_pixel : 1;
    int frames = o->frames > 1 ? o->frames : 1;
    const char *sop_class = nonempty(o->sop_class_uid) ? o->sop_class_uid : UID_SecondaryCaptureImageStorage;
    MM_TRY(put(ds, DCM_SOPClassUID, sop_class, path));
    MM_TRY(put(ds, DCM_SOPInstanceUID,
               nonempty(o->sop_instance_uid) ? o->sop_instance_uid
                                             : dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT),
               path));
    MM_TRY(put(ds, DCM_StudyInstanceUID,
               nonempty(o->study_uid) ? o->study_uid : dcmGenerateUniqueIdentifier(uid, SITE_STUDY_UID_ROOT),
               path));
    MM_TRY(put(ds, DCM_SeriesInstanceUID,
               nonempty(o->series_uid) ? o->series_uid
                                       : dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT),
               path));
    MM_TRY(put(ds, DCM_Modality, nonempty(o->modality) ? o->modality : "OT", path));
    if (!strcmp(sop_class, UID_SecondaryCaptureImageStorage))
        MM_TRY(put(ds, DCM_ConversionType, nonempty(o->conversion_type) ? o->conversion_type : "SYN", path));
    /* Type 2 attributes: present, possibly empty. */
    MM_TRY(put(ds, DCM_PatientName, o->patient_name, path));
    MM_TRY(put(ds, DCM_PatientID, o->patient_id, path));
    MM_TRY(put(ds, DCM_PatientBirthDate, "", path));
    MM_TRY(put(ds, DCM_PatientSex, "F", path));
    MM_TRY(put(ds, DCM_StudyDate, o->study_date, path));
    MM_TRY(put(ds, DCM_StudyTime, "", path));
    MM_TRY(put(ds, DCM_ReferringPhysicianName, "", path));
    MM_TRY(put(ds, DCM_StudyID, "", path));
    MM_TRY(put(ds, DCM_AccessionNumber, "", path));
    snprintf(buf, sizeof buf, "%d", o->series_number > 0 ? o->series_number : 1);
    MM_TRY(put(ds, DCM_SeriesNumber, buf, path));
    snprintf(buf, sizeof buf, "%d", o->instance_number > 0 ? o->instance_number : 1);
    MM_TRY(put(ds, DCM_InstanceNumber, buf, path));
    MM_TRY(put(ds, DCM_PatientOrientation, "", path));
    if (nonempty(o->manufacturer)) MM_TRY(put(ds, DCM_Manufacturer, o->manufacturer, path));
    if (nonempty(o->laterality)) MM_TRY(put(ds, DCM_ImageLaterality, o->laterality, path));
    if (nonempty(o->view)) MM_TRY(put(ds, DCM_ViewPosition, o->view, path));
    if (nonempty(o->series_description)) MM_TRY(put(ds, DCM_SeriesDescription, o->series_description, path));
    if (!strcmp(sop_class, UID_DigitalMammographyXRayImageStorageForPresentation)) {
        /* The mammography IOD's image attributes that the real INbreast files carry. */
        MM_TRY(put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY", path));
        MM_TRY(put(ds, DCM_PresentationIntentType, "FOR PRESENTATION", path));
        MM_TRY(put(ds, DCM_PositionerType, "MAMMOGRAPHIC", path));
        MM_TRY(put(ds, DCM_BodyPartExamined, "BREAST", path));
        MM_TRY(put(ds, DCM_BurnedInAnnotation, "NO", path));
        MM_TRY(put(ds, DCM_PixelIntensityRelationship, "LOG", path));
        MM_TRY(put(ds, DCM_PresentationLUTShape,
                   o->photometric && !strcmp(o->photometric, "MONOCHROME1") ? "INVERSE" : "IDENTITY", path));
    }
    if (o->pixel_spacing_mm > 0) {
        snprintf(buf, sizeof buf, "%.6g\\%.6g", o->pixel_spacing_mm, o->pixel_spacing_mm);
        MM_TRY(put(ds, DCM_PixelSpacing, buf, path));
        MM_TRY(put(ds, DCM_ImagerPixelSpacing, buf, path));
    }
    /* Image Pixel module. */
    MM_TRY(put_u16(ds, DCM_SamplesPerPixel, spp, path));
    MM_TRY(put(ds, DCM_PhotometricInterpretation,
               spp == 3 ? "RGB" : (nonempty(o->photometric) ? o->photometric : "MONOCHROME2"), path));
    if (spp > 1) MM_TRY(put_u16(ds, DCM_PlanarConfiguration, 0, path));
    if (frames > 1) {
        snprintf(buf, sizeof buf, "%d", frames);
        MM_TRY(put(ds, DCM_NumberOfFrames, buf, path));
    }
    MM_TRY(put_u16(ds, DCM_Rows, rows, path));
    MM_TRY(put_u16(ds, DCM_Columns, cols, path));
    MM_TRY(put_u16(ds, DCM_BitsAllocated, o->bits_allocated, path));
    MM_TRY(put_u16(ds, DCM_BitsStored, o->bits_stored, path));
    MM_TRY(put_u16(ds, DCM_HighBit, o->bits_stored - 1, path));
    MM_TRY(put_u16(ds, DCM_PixelRepresentation, o->pixel_representation ? 1 : 0, path));
    if (o->rescale_slope != 0.0) {
        snprintf(buf, sizeof buf, "%.10g", o->rescale_intercept);
        MM_TRY(put(ds, DCM_RescaleIntercept, buf, path));
        snprintf(buf, sizeof buf, "%.10g", o->rescale_slope);
        MM_TRY(put(ds, DCM_RescaleSlope, buf, path));
        MM_TRY(put(ds, DCM_RescaleType, "US", path));
    }
    unsigned long n = (unsigned long)rows * (unsigned long)cols * (unsigned long)spp * (unsigned long)frames;
    OFCondition c = o->bits_allocated == 16
                        ? ds->putAndInsertUint16Array(DCM_PixelData, (const Uint16 *)pixels, n)
                        : ds->putAndInsertUint8Array(DCM_PixelData, (const Uint8 *)pixels, n);
    if (c.bad()) return mm_fail(MM_ERR_NOMEM, "%s: cannot store the pixel data: %s", path, c.text());
    return MM_OK;
}

static mm_status write_file(const char *path, const void *pixels, int rows, int cols,
                            const mm_dicom_write_opts *o)
{
    if (rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535)
        return mm_fail(MM_ERR_ARG, "%s: image size %d x %d is not writable as DICOM", path, rows, cols);
    if (o->bits_allocated != 8 && o->bits_allocated != 16)
        return mm_fail(MM_ERR_ARG, "%s: bits_allocated %d (must be 8 or 16)", path, o->bits_allocated);
    if (o->bits_stored < 1 || o->bits_stored > o->bits_allocated)
        return mm_fail(MM_ERR_ARG, "%s: bits_stored %d does not fit bits_allocated %d", path,
                       o->bits_stored, o->bits_allocated);
    const char *ts = nonempty(o->transfer_syntax_uid) ? o->transfer_syntax_uid : MM_DICOM_TS_EXPLICIT_LE;
    DcmXfer xfer(ts);
    if (xfer.getXfer() == EXS_Unknown)
        return mm_fail(MM_ERR_ARG, "%s: unknown transfer syntax UID '%s'", path, ts);
    E_TransferSyntax xs = xfer.getXfer();

    DcmFileFormat ff;
    DcmDataset *ds = ff.getDataset();
    MM_TRY(build_dataset(ds, path, pixels, rows, cols, o));
    if (xfer.isEncapsulated()) {
        OFCondition c;
        if (xs == EXS_JPEGProcess14SV1) {
            DJ_RPLossless rp(1, 0);
            c = ds->chooseRepresentation(xs, &rp);
        } else if (xs == EXS_JPEGProcess1) {
            DJ_RPLossy rp(95);
            c = ds->chooseRepresentation(xs, &rp);
        } else if (xs == EXS_JPEGLSLossless) {
            DJLSRepresentationParameter rp(0, OFTrue);
            c = ds->chooseRepresentation(xs, &rp);
        } else if (xs == EXS_JPEGLSLossy) {
            DJLSRepresentationParameter rp(2, OFFalse);
            c = ds->chooseRepresentation(xs, &rp);
        } else {
            c = ds->chooseRepresentation(xs, NULL);
        }
        if (c.bad() || !ds->canWriteXfer(xs))
            return mm_fail(MM_ERR_UNSUPPORTED, "%s: cannot encode the pixels as %s: %s", path,
                           xfer.getXferName(), c.bad() ? c.text() : "no encoder");
    }
    MM_TRY(mm_fs_mkdirs_for(path));
    /* DCMTK writes to a file name: take the temp name, let saveFile() create it, then commit. */
    mm_atomic_file af;
    mm_atomic_file_reserve(&af, path);
    OFCondition c = ff.saveFile(af.tmp_path, xs, EET_ExplicitLength, EGL_recalcGL, EPD_noChange,
                                0, 0, EWM_createNewMeta);
    if (c.bad()) {
        mm_atomic_file_abort(&af);
        return mm_fail(MM_ERR_IO, "%s: cannot write the DICOM file: %s", path, c.text());
    }
    return mm_atomic_file_commit(&af);
}

extern "C" mm_status mm_dicom_write(const char *path, const void *pixels, int rows, int cols,
                                    const mm_dicom_write_opts *opts)
{
    mm_dicom_init();
    try {
        MM_TRY(check_dictionary(path));
        return write_file(path, pixels, rows, cols, opts);
    } catch (const std::bad_alloc &) {
        return mm_fail(MM_ERR_NOMEM, "%s: out of memory while writing the DICOM file", path);
    } catch (...) {
        return mm_fail(MM_ERR_IO, "%s: DCMTK failed while writing this file", path);
    }
}
