/* Shared pieces of the synthetic dataset layouts: rendering an exam image with its lesions, UIDs,
 * text buffers, the deterministic parallel loop. See synth_layout.h. */
#include <omp.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/strbuf.h"
#include "fs.h"
#include "synth_layout.h"

void mm_synth_render(mm_synth_rendered *out, const mm_synth_exam *ex, int want_masks)
{
    memset(out, 0, sizeof *out);
    int h = ex->h, w = ex->w;
    size_t n = (size_t)h * w;
    mm_synth_breast b;
    mm_synth_breast_init(&b, h, w, ex->mm_per_px, ex->chest_right, ex->mlo, ex->density, ex->film, ex->seed);
    float *img = mm_xmalloc(sizeof(float) * n);
    mm_synth_draw_breast(img, NULL, &b);
    for (int i = 0; i < ex->n_findings; i++) {
        const mm_synth_finding *f = &ex->findings[i];
        mm_synth_lesion *les = &out->les[i];
        memset(les, 0, sizeof *les);
        les->kind = f->kind;
        les->malignant = f->malignant;
        les->size_mm = f->size_mm;
        les->contrast = f->contrast;
        les->spiculated = f->spiculated;
        les->lobulated = f->lobulated;
        les->seed = f->seed ^ (ex->mlo ? 0x5bd1e995ull : 0); /* each view its own projection */
        /* Place it at (u, v); if that falls outside the usable breast (pectoral, skin), walk
         * towards the breast centre until it fits. If it then overlaps an earlier lesion, try
         * other random places (from the finding's own stream, so both views agree mostly). */
        mm_srng alt = mm_srng_make(f->seed, MM_TAG_LESION, 99);
        double margin = 0.12 + 0.5 * f->size_mm / (ex->mm_per_px * b.depth);
        if (margin > 0.45) margin = 0.45;
        double x = 0, y = 0;
        for (int attempt = 0; attempt < 40; attempt++) {
            double u = attempt ? mm_srng_range(&alt, 0.2, 0.8) : f->u;
            double v = attempt ? mm_srng_range(&alt, -0.6, 0.6) : f->v;
            for (int k = 0; k < 40; k++) {
                mm_synth_breast_point(&b, u, v, &x, &y);
                if (mm_synth_breast_inside(&b, x, y, margin)) break;
                u = 0.5 + (u - 0.5) * 0.9 + 0.02;
                v *= 0.9;
            }
            int apart = 1;
            for (int j = 0; j < i && apart; j++) {
                double need = (0.5 * (f->size_mm + ex->findings[j].size_mm) + 3.0) / ex->mm_per_px;
                if (hypot(x - out->les[j].cx, y - out->les[j].cy) < need) apart = 0;
            }
            if (apart) break;
        }
        les->cx = x, les->cy = y;
        if (want_masks) out->masks[i] = mm_xcalloc(n, 1);
        mm_synth_draw_lesion(img, out->masks[i], les, h, w, ex->mm_per_px);
    }
    mm_synth_finish(img, &b);
    out->pixels = mm_xmalloc(sizeof(uint16_t) * n);
    mm_synth_quantize(out->pixels, img, (long long)n, (1 << ex->bits) - 1);
    free(img);
}

void mm_synth_rendered_free(mm_synth_rendered *r)
{
    free(r->pixels);
    for (int i = 0; i < MM_SYNTH_MAX_LESIONS; i++) {
        free(r->masks[i]);
        mm_synth_lesion_free(&r->les[i]);
    }
    memset(r, 0, sizeof *r);
}

void mm_synth_uid(char *out, size_t cap, const char *root, uint64_t seed, uint64_t index)
{
    mm_srng r = mm_srng_make(seed, MM_TAG_UID, index);
    size_t len = strlen(root);
    int digits = 64 - (int)len - 1;
    if (digits > 38) digits = 38;
    MM_ASSERT(digits >= 8 && cap > len + 1 + (size_t)digits);
    memcpy(out, root, len);
    out[len++] = '.';
    for (int i = 0; i < digits; i++) {
        int d = (int)(mm_srng_u32(&r) % 10);
        if (i == 0 && d == 0) d = 1 + (int)(mm_srng_u32(&r) % 9);
        out[len++] = (char)('0' + d);
    }
    out[len] = '\0';
}

void mm_synth_join(char *out, size_t cap, const char *dir, const char *rel)
{
    int k = snprintf(out, cap, "%s/%s", dir, rel);
    MM_ASSERT(k > 0 && (size_t)k < cap);
}

mm_status mm_synth_write_text(const mm_strbuf *b, const char *dir, const char *name)
{
    char path[4096];
    mm_synth_join(path, sizeof path, dir, name);
    MM_TRY(mm_fs_mkdirs_for(path));
    return mm_write_text_atomic(path, mm_strbuf_str(b), b->len);
}

mm_status mm_synth_parallel(int n, int threads, mm_status (*fn)(void *ctx, int i), void *ctx)
{
    mm_status *st = mm_xcalloc((size_t)(n ? n : 1), sizeof(mm_status));
    char **msg = mm_xcalloc((size_t)(n ? n : 1), sizeof(char *));
    int failed = 0;
    int nt = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int i = 0; i < n; i++) {
        int stop;
#pragma omp atomic read
        stop = failed;
        if (stop) continue;
        mm_status s = fn(ctx, i);
        if (s != MM_OK) {
            st[i] = s;
            msg[i] = mm_xstrdup(mm_last_error());
#pragma omp atomic write
            failed = 1;
        }
    }
    mm_status result = MM_OK;
    for (int i = 0; i < n; i++)
        if (st[i] != MM_OK && result == MM_OK) result = mm_fail(st[i], "%s", msg[i]);
    for (int i = 0; i < n; i++) free(msg[i]);
    free(msg);
    free(st);
    return result;
}
