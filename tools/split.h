/* Seeded patient-level stratified splits of a dataset index (the paper: CBIS-DDSM 85/15
 * train/test stratified by the patients' cancer status, then 10% of the training patients for
 * validation; INbreast 70/30), and the nested training subsets of the transfer experiment.
 *
 * Everything is a pure function of the seed and the sorted patient ids (the order files were found
 * in does not matter), drawn from Philox (kernels/philox.h). */
#ifndef MM_SPLIT_H
#define MM_SPLIT_H

#include <stdint.h>

#include "../runtime/error.h"
#include "index.h"

/* A sequential stream of Philox numbers: word i of stream (key = seed, counter = base + i/4). */
typedef struct mm_rstream {
    uint64_t seed, base, i;
} mm_rstream;

void mm_rstream_init(mm_rstream *r, uint64_t seed, uint64_t stream_id);
uint32_t mm_rstream_u32(mm_rstream *r);
/* Uniform integer in [0, n) without modulo bias (n >= 1). */
uint32_t mm_rstream_below(mm_rstream *r, uint32_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double mm_rstream_uniform(mm_rstream *r);
/* Fisher-Yates shuffle of perm[0..n). */
void mm_rstream_shuffle(mm_rstream *r, int *perm, int n);

/* Stratified shuffle split of n items: chosen[i] = 1 for round(n*frac) items such that each
 * stratum (strata[i] in 0..n_strata-1) gives floor(n_k*frac) of them plus the leftover seats
 * handed to the strata with the largest remainders. Deterministic in (seed, stream_id). */
void mm_split_stratified(int *chosen /* [n] */, const int *strata /* [n] */, int n, int n_strata,
                         double frac, uint64_t seed, uint64_t stream_id);

/* Orders n items so that every prefix is (as nearly as possible) stratified: each stratum is
 * shuffled, then the next item always comes from the stratum that is furthest behind its share.
 * order[k] = index of the k-th item. */
void mm_stratified_order(int *order /* [n] */, const int *strata /* [n] */, int n, int n_strata,
                         uint64_t seed, uint64_t stream_id);

/* Sets the split of every image: patients (stratified by "any image has label 1") go to the
 * test split with fraction test_frac (the held-out split is named `holdout`: MM_SPLIT_TEST for
 * CBIS-DDSM, MM_SPLIT_VAL for INbreast as in the paper), then val_frac of the remaining ones to
 * validation. With keep_test set, images already marked MM_SPLIT_TEST keep it (the official
 * CBIS-DDSM split): a patient with any such image is a test patient, and only the others are
 * divided between train and val. */
void mm_index_split_patients(mm_index *idx, double test_frac, mm_split holdout, double val_frac,
                             int keep_test, uint64_t seed);

/* Keeps only n_patients of the training patients (a stratified prefix of a seeded order, so
 * smaller subsets are contained in larger ones for one seed) and drops the images of the other
 * training patients. More than there are is MM_ERR_ARG naming --subset-patients. */
mm_status mm_index_subset_train(mm_index *idx, int n_patients, uint64_t seed);

#endif
