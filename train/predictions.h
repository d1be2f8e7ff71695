/* The predictions file: one row per image with its label and the model's score. `mammo predict`
 * writes it, `mammo eval` and `mammo report` read it.
 *
 * Format (CSV, RFC 4180, UTF-8):
 *   - a header row naming the columns; columns are found by name, in any order:
 *       image    the image's path as given in the index (non-empty, unique in the file)
 *       label    1 = malignant, 0 = not malignant, -1 (or an empty cell) = unknown
 *       score    the probability of malignant in [0, 1] (after test-time augmentation and model
 *                averaging when predict does those)
 *       score_<name>  optional, any number: the score of each model alone (`mammo predict
 *                --model A,B` writes score_1, score_2 in that order); read into model_score
 *     Any other column is allowed and ignored (e.g. patient, view).
 *   - fields holding a comma, a double quote or a line break are quoted "..." with "" for a
 *     quote; LF or CRLF line ends; an optional UTF-8 byte order mark; blank lines are ignored.
 *   - scores are written with 9 significant digits (a float round-trips exactly).
 *
 * Example:
 *   image,label,score,score_1,score_2
 *   Calc-Test_P_00038_LEFT_CC.png,1,0.871234107,0.901,0.841468214
 *   "odd,name.png",-1,0.0312,0.02,0.0424 */
#ifndef MM_PREDICTIONS_H
#define MM_PREDICTIONS_H

#include <stdint.h>

#include "../runtime/error.h"

#define MM_LABEL_UNKNOWN (-1)

typedef struct mm_predictions {
    int64_t n, cap;
    char **image;         /* [n] */
    int *label;           /* [n] 0, 1 or MM_LABEL_UNKNOWN */
    double *score;        /* [n] */
    int n_models;         /* number of per-model score columns (0 if none) */
    char **model_name;    /* [n_models] the <name> of each score_<name> column */
    double *model_score;  /* [n, n_models] row-major: image i, model m at i*n_models + m */
} mm_predictions;

/* An empty table with `n_models` per-model columns named score_<model_names[m]> (model_names
 * may be NULL when n_models == 0). */
void mm_predictions_init(mm_predictions *p, int n_models, const char *const *model_names);
void mm_predictions_free(mm_predictions *p);

/* Appends one image. model_scores: [n_models] (NULL when n_models == 0). Copies the strings. */
void mm_predictions_add(mm_predictions *p, const char *image, int label, double score,
                        const double *model_scores);

/* Reads a predictions CSV into *p (initialised here; free with mm_predictions_free, also after
 * an error). Errors (MM_ERR_IO / MM_ERR_FORMAT), each one line naming the file and line: missing
 * or unreadable file, no rows, a missing image/label/score column, a row with the wrong number
 * of fields, an unterminated quote, a label other than 0/1/-1/empty, a score that is not a
 * number or not in [0, 1], an empty or repeated image. */
mm_status mm_predictions_read(mm_predictions *p, const char *path);

/* Writes *p as CSV atomically (temporary file + rename). */
mm_status mm_predictions_write(const mm_predictions *p, const char *path);

/* The labelled rows (label 0 or 1) as two new arrays (free() them): scores of model `model`
 * (-1 = the `score` column). *n_out may be 0. */
void mm_predictions_labelled(double **scores, int **labels, int64_t *n_out,
                             const mm_predictions *p, int model);

#endif
