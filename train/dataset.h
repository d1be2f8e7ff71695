/* Training data for the trainer: the loader items (PNG path, label) of one split, read from
 *  - an index (tools/index.h) prepped to PNGs: whole images, label 0 negative / 1 positive;
 *  - a patch set (`mammo patches`, OUT/patches.csv): label 0..4 in the patch class order.
 * Paths in both files are relative to the file's folder; the items hold resolved paths. */
#ifndef MM_DATASET_H
#define MM_DATASET_H

#include "../tools/index.h"
#include "loader.h"

typedef struct mm_dataset {
    int n;
    mm_loader_item *items; /* [n], paths owned by the dataset */
    int n_classes;
    int64_t class_count[8];
} mm_dataset;

/* Whole images of `split` from an index whose images are PNGs (run `mammo prep` first: a DICOM
 * image is a clear error naming the index). `subset_patients` > 0 keeps every image of the first that
 * many patients of the split in index order (the indexer's seeded split already shuffled them). */
mm_status mm_dataset_from_index(mm_dataset *d, const char *index_path, mm_split split,
                                int subset_patients);
/* Patches of `split` ("train", "val", "test") from OUT/patches.csv. */
mm_status mm_dataset_from_patches(mm_dataset *d, const char *csv_path, const char *split);
void mm_dataset_free(mm_dataset *d);

#endif
