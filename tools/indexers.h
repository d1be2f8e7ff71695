/* Building the dataset index (tools/index.h) from the trees users download.
 *
 * CBIS-DDSM (mm_index_cbis_ddsm): ROOT holds the four description CSVs
 * ({mass,calc}_case_description_{train,test}_set.csv, anywhere under ROOT) and the DICOM tree of
 * the NBIA Data Retriever in any of its layouts (optionally its metadata.csv). The CSVs are read
 * by column name (both "breast_density" and "breast density"); quoted paths with embedded
 * newlines are trimmed. A DICOM is found by its header, not by the CSV's path (which never
 * matches the downloaded tree): the CSV path gives (subject = 1st component, SeriesInstanceUID =
 * 3rd); the files under that subject folder are matched on the series UID, else through
 * metadata.csv (Series UID -> File Location), else the subject's only file. The ROI folder holds a
 * mask and a crop, sometimes swapped or in one series: the mask is told by content (the image's
 * rows x columns, 8 bits, "ROI mask images"; the crop is small, 16 bits, "cropped images").
 * Rows of one image (patient, side, view; the mass and calc collections hold separate copies of a
 * view, merged as in the reference code, the copy of the lexicographically first subject used)
 * become one record: label 1 when any ROI is MALIGNANT (BENIGN_WITHOUT_CALLBACK is benign), every
 * ROI kept with its mask, type and pathology. Unreadable DICOMs under a subject the CSVs name are
 * errors; files under other folders are ignored.
 *
 * INbreast (mm_index_inbreast): ROOT holds INbreast.csv (';'-separated: Laterality, View,
 * File Name, ACR, Bi-Rads), the DICOMs <FileName>_<patient hash>_MG_<L|R>_<CC|ML>_ANON.dcm
 * (AllDICOMs/) and the OsiriX XMLs <FileName>.xml (AllXML/), found anywhere under ROOT. BI-RADS
 * 1, 2 -> label 0; 4, 4a, 4b, 4c, 5, 6 -> label 1; 3 -> the image is left out. The patient is the
 * hash in the DICOM name (the CSV says "removed"). The ROIs of each image are rasterised at the
 * DICOM's size (tools/raster.h) into one 0/255 PNG per lesion type present, named
 * <FileName>_<type>.png, numbered 1, 2, ... in the index; ROI names are normalised
 * (mm_inbreast_lesion_type); an unknown name is skipped with a warning. No XML: no ROIs.
 *
 * Both then split by patient (tools/split.h). */
#ifndef MM_INDEXERS_H
#define MM_INDEXERS_H

#include <stdbool.h>
#include <stdint.h>

#include "../runtime/error.h"
#include "index.h"

typedef struct mm_indexer_opts {
    uint64_t seed;          /* split seed */
    double test_frac;       /* held-out patients: CBIS-DDSM 0.15 (test), INbreast 0.30 (val) */
    double val_frac;        /* CBIS-DDSM: validation share of the training patients, 0.10 */
    bool official_split;    /* CBIS-DDSM: keep the collections' own Training/Test split */
    int subset_patients;    /* INbreast: keep this many training patients (0: all) */
    const char *mask_dir;   /* INbreast: the folder the masks are written to (staged, see below) */
    double point_radius;    /* INbreast: radius in pixels of point lesions, 3 */
    int threads;            /* <= 0: one per CPU */
    bool quiet;
} mm_indexer_opts;

void mm_indexer_opts_default(mm_indexer_opts *o);

mm_status mm_index_cbis_ddsm(mm_index *idx, const char *root, const mm_indexer_opts *o);

/* Writes the masks into the staging folder `stage` (created), while the index records the final
 * paths under o->mask_dir (absolute); the caller renames `stage` onto o->mask_dir once the index
 * is ready (mm_fs_replace_dir) or removes it on failure. *n_unknown_names counts skipped ROIs,
 * *n_birads3 the images left out for BI-RADS 3. */
mm_status mm_index_inbreast(mm_index *idx, int *n_unknown_names, int *n_birads3, const char *root,
                            const char *stage, const mm_indexer_opts *o);

#endif
