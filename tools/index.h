/* The dataset index: one CSV file that lists every image of a dataset with its labels, split and
 * ROIs. `mammo index` writes it from a CBIS-DDSM or INbreast tree, `mammo prep` reads it and writes
 * an updated one that points at the preprocessed PNGs, `mammo patches` and the trainer read it.
 *
 * ## Format (index.csv)
 * RFC 4180 CSV (tools/csv.h), comma-separated, UTF-8, one header line, then one record per image.
 * The header names these columns, in this order (the reader checks every name and the order):
 *
 *   image_id         unique name of the image, also the base name of its prepped files:
 *                    CBIS-DDSM "P_00001_LEFT_CC", INbreast the 8-digit file name "20586908"
 *   dataset          cbis-ddsm | inbreast
 *   patient_id       the woman: CBIS-DDSM "P_00001", INbreast the 16-hex hash of the file name;
 *                    splits never separate the images of one patient
 *   side             L | R
 *   view             CC | MLO
 *   label            0 (negative/benign) | 1 (positive/malignant): CBIS-DDSM 1 when any ROI is
 *                    MALIGNANT; INbreast 1 for BI-RADS 4a/4b/4c/5/6, 0 for 1/2
 *   split            train | val | test
 *   height, width    pixel size of `image` (positive integers)
 *   density          breast density / ACR 1-4, or empty when unknown
 *   birads           BI-RADS assessment: CBIS-DDSM the highest "assessment" of the image's ROIs,
 *                    INbreast the "Bi-Rads" string (1, 2, 4a, ...); empty when unknown
 *   source           the original file the image came from (the DICOM; same as `image` in the
 *                    index that `mammo index` writes)
 *   image            the image file: a DICOM (.dcm) or a grayscale PNG (.png)
 *   n_rois           number of ROIs, 0 or more
 *   roi_ids          the ROIs' ids (CBIS-DDSM "abnormality id"; INbreast 1, 2, ...: one ROI per
 *                    lesion type present, all outlines of that type merged into one mask)
 *   roi_types        mass | calc | distortion | asymmetry | spiculated | cluster
 *   roi_pathologies  MALIGNANT | BENIGN | BENIGN_WITHOUT_CALLBACK | empty (unknown: INbreast)
 *   roi_masks        the ROIs' binary masks (DICOM or PNG; nonzero = inside the ROI)
 * The four roi_* fields hold n_rois entries each, joined by '|' (empty when n_rois is 0); a mask
 * path therefore must not contain '|' (the writer refuses one).
 * A path that is not absolute is relative to the folder that holds the index file.
 * The reader rejects: a missing file, a header that differs from the list above (the message
 * names the first wrong or missing column), a record with a bad value (naming the line and the
 * column), duplicate image_ids, and a patient whose images sit in different splits.
 *
 * ## Image-level semantics
 * BENIGN_WITHOUT_CALLBACK counts as benign. An ROI of type mass/calc with a known pathology is one
 * of the four lesion classes of the patch classifier (class order: background, calc benign, calc
 * malignant, mass benign, mass malignant; see mm_roi_class). */
#ifndef MM_INDEX_H
#define MM_INDEX_H

#include <stdbool.h>

#include "../runtime/error.h"

typedef enum mm_split { MM_SPLIT_TRAIN, MM_SPLIT_VAL, MM_SPLIT_TEST, MM_SPLIT_COUNT } mm_split;

typedef enum mm_roi_type {
    MM_ROI_MASS,
    MM_ROI_CALC,
    MM_ROI_DISTORTION,
    MM_ROI_ASYMMETRY,
    MM_ROI_SPICULATED,
    MM_ROI_CLUSTER,
    MM_ROI_TYPE_COUNT
} mm_roi_type;

typedef enum mm_pathology {
    MM_PATH_UNKNOWN,
    MM_PATH_BENIGN,
    MM_PATH_BENIGN_WITHOUT_CALLBACK,
    MM_PATH_MALIGNANT,
    MM_PATH_COUNT
} mm_pathology;

/* The five classes of the patch classifier, in the order of the paper's released models. */
typedef enum mm_patch_class {
    MM_CLASS_BACKGROUND,
    MM_CLASS_CALC_BENIGN,
    MM_CLASS_CALC_MALIGNANT,
    MM_CLASS_MASS_BENIGN,
    MM_CLASS_MASS_MALIGNANT,
    MM_CLASS_COUNT
} mm_patch_class;

typedef struct mm_roi {
    int id;
    mm_roi_type type;
    mm_pathology pathology;
    char *mask; /* path as written in the file (see mm_index_path to open it) */
} mm_roi;

typedef struct mm_index_image {
    char *image_id, *dataset, *patient_id;
    char side;       /* 'L' or 'R' */
    char view[4];    /* "CC" or "MLO" */
    int label;       /* 0 or 1 */
    mm_split split;
    int height, width;
    int density;     /* 1..4, 0 unknown */
    char birads[8];  /* "" unknown */
    char *source, *image;
    int n_rois;
    mm_roi *rois;    /* [n_rois] */
} mm_index_image;

typedef struct mm_index {
    int n, cap;
    mm_index_image *images; /* [n] */
    char *dir;              /* folder of the index file: base of relative paths ("." if none) */
} mm_index;

/* Names of the enum values as written in the file. */
const char *mm_split_name(mm_split s);
const char *mm_roi_type_name(mm_roi_type t);
const char *mm_pathology_name(mm_pathology p);
const char *mm_patch_class_name(mm_patch_class c); /* background, calc_ben, calc_mal, ... */
bool mm_pathology_is_malignant(mm_pathology p);
/* The patch class of an ROI, or -1 when it has none (not mass/calc, or unknown pathology). */
int mm_roi_class(const mm_roi *r);

/* Reads and validates an index file (see the rules above). */
mm_status mm_index_read(mm_index *idx, const char *path);
/* Writes the index through a temporary file renamed into place; paths are written as stored. */
mm_status mm_index_write(const mm_index *idx, const char *path);
void mm_index_free(mm_index *idx);

/* Appends a zeroed image record and returns it (the index owns every string set in it, which
 * must be malloc'ed). */
mm_index_image *mm_index_add(mm_index *idx);
mm_roi *mm_index_add_roi(mm_index_image *im);
void mm_index_image_free(mm_index_image *im);

/* The path to open for a path stored in the index: absolute paths as they are, others joined to
 * idx->dir. Returns out. */
char *mm_index_path(char *out, unsigned long size, const mm_index *idx, const char *stored);

/* Counts for the summary line. */
typedef struct mm_index_counts {
    int images, patients, malignant, benign, rois;
    int split_images[MM_SPLIT_COUNT], split_patients[MM_SPLIT_COUNT];
} mm_index_counts;
void mm_index_count(mm_index_counts *c, const mm_index *idx);

/* Sorts the images by (patient_id, side, view, image_id), the order the writers use. */
void mm_index_sort(mm_index *idx);

#endif
