/* Shared by the dataset layouts of `mammo synth` (synth_cbis.c, synth_inbreast.c): exam images
 * and their rendering, UIDs, text buffers, the deterministic parallel loop. Internal. */
#ifndef MM_SYNTH_LAYOUT_H
#define MM_SYNTH_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/strbuf.h"
#include "synth.h"
#include "synth_rng.h"

#define MM_SYNTH_MAX_LESIONS 4

/* A lesion of one breast, in breast-normalised coordinates so that its CC and MLO views show it
 * at corresponding places (mm_synth_breast_point). */
typedef struct mm_synth_finding {
    mm_synth_kind kind;
    int malignant;
    double u, v, size_mm, contrast;
    int spiculated, lobulated;
    uint64_t seed;
} mm_synth_finding;

/* One mammogram to render. */
typedef struct mm_synth_exam {
    int h, w;
    double mm_per_px;
    int chest_right, mlo, density, film;
    int bits; /* 16 (CBIS-DDSM) or 14 (INbreast) */
    uint64_t seed;
    int n_findings;
    mm_synth_finding findings[MM_SYNTH_MAX_LESIONS];
} mm_synth_exam;

/* The rendered exam: pixels [h*w] quantised to `bits`, one mask [h*w] (0/255) per finding (if
 * want_masks), the float image [h*w] before quantisation is freed. les[i] holds the drawn lesions
 * (bounding boxes, outlines, specks). */
typedef struct mm_synth_rendered {
    uint16_t *pixels;
    uint8_t *masks[MM_SYNTH_MAX_LESIONS];
    mm_synth_lesion les[MM_SYNTH_MAX_LESIONS];
} mm_synth_rendered;

void mm_synth_render(mm_synth_rendered *out, const mm_synth_exam *ex, int want_masks);
void mm_synth_rendered_free(mm_synth_rendered *r);

/* A DICOM UID: root + "." + decimal digits drawn from stream (seed, MM_TAG_UID, index), no more
 * than 64 characters, no leading zero in a component. */
void mm_synth_uid(char *out, size_t cap, const char *root, uint64_t seed, uint64_t index);

/* Writes a text buffer (CSV, XML) to dir/name through temp + rename, making the folders. */
mm_status mm_synth_write_text(const mm_strbuf *b, const char *dir, const char *name);

/* Runs fn(ctx, i) for i in [0, n) on `threads` OpenMP threads (0: default). On failure returns
 * the error of the lowest failing i (so the message does not depend on scheduling); later items
 * may be skipped once something failed. */
mm_status mm_synth_parallel(int n, int threads, mm_status (*fn)(void *ctx, int i), void *ctx);

/* The two layouts (synth_cbis.c, synth_inbreast.c), called by mm_synth_generate. */
mm_status mm_synth_cbis(const mm_synth_opts *o, mm_synth_summary *sum);
mm_status mm_synth_inbreast(const mm_synth_opts *o, mm_synth_summary *sum);

/* "dir/rel" into out (aborts if it does not fit). */
void mm_synth_join(char *out, size_t cap, const char *dir, const char *rel);

#endif
