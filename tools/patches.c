/* The paper's patch sampler: see patches.h. */
#include "patches.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/atomic_file.h"
#include "csv.h"
#include "fs.h"
#include "parallel.h"
#include "png_io.h"
#include "prep.h"
#include "resize.h"
#include "split.h"

void mm_patch_opts_default(mm_patch_opts *o)
{
    memset(o, 0, sizeof *o);
    o->size = 224;
    o->per_roi = 10;
    o->min_overlap = 0.9;
    o->height = 0; /* sample the images at the size prep wrote them */
    o->width = 0;
    o->breast_threshold = 0.05;
    o->min_breast = 0.5;
    o->max_tries = 1000;
    o->seed = 12345;
}

void mm_integral(int64_t *ii, const uint8_t *m, int h, int w)
{
    size_t s = (size_t)w + 1;
    memset(ii, 0, s * sizeof *ii);
    for (int y = 0; y < h; y++) {
        int64_t row = 0;
        ii[(size_t)(y + 1) * s] = 0;
        for (int x = 0; x < w; x++) {
            row += m[(size_t)y * (size_t)w + (size_t)x] != 0;
            ii[(size_t)(y + 1) * s + (size_t)x + 1] = ii[(size_t)y * s + (size_t)x + 1] + row;
        }
    }
}

/* Flood fill from the seeds already in queue[0..n), marking `mark` in lab where lab == from.
 * Returns the number of pixels filled. */
static int64_t flood(int32_t *lab, int32_t *queue, int64_t n, int32_t from, int32_t mark, int h,
                     int w)
{
    int64_t head = 0;
    while (head < n) {
        int32_t p = queue[head++];
        int y = p / w, x = p % w;
        int32_t nb[4] = {y > 0 ? p - w : -1, y < h - 1 ? p + w : -1, x > 0 ? p - 1 : -1,
                         x < w - 1 ? p + 1 : -1};
        for (int k = 0; k < 4; k++)
            if (nb[k] >= 0 && lab[nb[k]] == from) {
                lab[nb[k]] = mark;
                queue[n++] = nb[k];
            }
    }
    return n;
}

int64_t mm_breast_mask(uint8_t *out, const uint16_t *img, double threshold, int h, int w)
{
    size_t n = (size_t)h * (size_t)w;
    uint16_t mx = 0;
    for (size_t i = 0; i < n; i++)
        if (img[i] > mx) mx = img[i];
    double t = threshold * mx;
    /* lab: 0 background, -1 unvisited foreground, k >= 1 component k */
    int32_t *lab = mm_xmalloc(n * sizeof *lab);
    int32_t *queue = mm_xmalloc(n * sizeof *queue);
    for (size_t i = 0; i < n; i++) lab[i] = mx > 0 && img[i] > t ? -1 : 0;
    int32_t best = 0, next = 1;
    int64_t best_size = 0;
    for (size_t i = 0; i < n; i++) {
        if (lab[i] != -1) continue;
        lab[i] = next;
        queue[0] = (int32_t)i;
        int64_t size = flood(lab, queue, 1, -1, next, h, w);
        if (size > best_size) {
            best_size = size;
            best = next;
        }
        next++;
    }
    /* holes: everything not in the component that the border cannot reach */
    for (size_t i = 0; i < n; i++) lab[i] = best && lab[i] == best ? 1 : 0;
    int64_t q = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (y != 0 && y != h - 1 && x != 0 && x != w - 1) continue;
            int32_t p = y * w + x;
            if (lab[p] == 0) {
                lab[p] = 2;
                queue[q++] = p;
            }
        }
    flood(lab, queue, q, 0, 2, h, w);
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = lab[i] != 2 && best ? 1 : 0;
        count += out[i];
    }
    free(lab);
    free(queue);
    return count;
}

static void add_patch(mm_patch **out, int *n, int *cap, mm_patch p)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 32;
        *out = mm_xrealloc(*out, (size_t)*cap * sizeof **out);
    }
    (*out)[(*n)++] = p;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

mm_status mm_patches_sample(mm_patch **out, int *n_out, mm_patch_stats *stats,
                            const uint16_t *img, uint8_t *const *masks, const mm_index_image *im,
                            const mm_patch_opts *o, uint64_t key, int h, int w)
{
    *out = NULL;
    *n_out = 0;
    const int P = o->size;
    if (P > h || P > w)
        return mm_fail(MM_ERR_ARG, "--size %d: the patch is larger than image %s (%dx%d)", P,
                       im->image_id, h, w);
    int cap = 0;
    size_t s = (size_t)(h + 1) * (size_t)(w + 1), npx = (size_t)h * (size_t)w;
    int64_t *ii = mm_xmalloc(s * sizeof *ii);
    uint8_t *uni = mm_xcalloc(npx, 1);
    mm_rstream r;
    mm_rstream_init(&r, key, 0);
    const double patch_area = (double)P * P;
    int sampled_rois = 0;

    for (int k = 0; k < im->n_rois; k++) {
        const uint8_t *m = masks[k];
        for (size_t i = 0; i < npx; i++) uni[i] |= m[i] != 0;
        int cls = mm_roi_class(&im->rois[k]);
        int y0 = h, y1 = -1, x0 = w, x1 = -1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (m[(size_t)y * (size_t)w + (size_t)x]) {
                    if (y < y0) y0 = y;
                    if (y > y1) y1 = y;
                    if (x < x0) x0 = x;
                    if (x > x1) x1 = x;
                }
        if (cls < 0 || y1 < 0) {
            stats->rois_skipped++;
            continue;
        }
        stats->rois++;
        mm_integral(ii, m, h, w);
        double area = (double)mm_integral_sum(ii, w, 0, 0, h, w);
        double cutoff = o->min_overlap;
        int got = 0, tries = 0, relaxed = 0;
        while (got < o->per_roi && cutoff > 0.05 - 1e-9) {
            int cy = y0 + (int)mm_rstream_below(&r, (uint32_t)(y1 - y0 + 1));
            int cx = x0 + (int)mm_rstream_below(&r, (uint32_t)(x1 - x0 + 1));
            int py = clampi(cy - P / 2, 0, h - P), px = clampi(cx - P / 2, 0, w - P);
            double inter = (double)mm_integral_sum(ii, w, py, px, py + P, px + P);
            double ov = inter / area > inter / patch_area ? inter / area : inter / patch_area;
            if (ov >= cutoff - 1e-12) {
                add_patch(out, n_out, &cap, (mm_patch){cls, k, py, px, ov});
                got++;
                tries = 0;
            } else if (++tries >= o->max_tries) {
                cutoff -= 0.05;
                tries = 0;
                relaxed = 1;
            }
        }
        stats->rois_relaxed += relaxed;
        stats->rois_short += o->per_roi - got;
        if (got) sampled_rois++;
    }

    /* background: in the breast, touching no ROI */
    int need = sampled_rois * o->per_roi;
    if (need > 0) {
        uint8_t *breast = mm_xmalloc(npx);
        mm_breast_mask(breast, img, o->breast_threshold, h, w);
        int64_t *bi = mm_xmalloc(s * sizeof *bi);
        mm_integral(bi, breast, h, w);
        mm_integral(ii, uni, h, w);
        int got = 0;
        int64_t budget = (int64_t)o->max_tries * need;
        for (int64_t t = 0; t < budget && got < need; t++) {
            int py = (int)mm_rstream_below(&r, (uint32_t)(h - P + 1));
            int px = (int)mm_rstream_below(&r, (uint32_t)(w - P + 1));
            if (!breast[(size_t)(py + P / 2) * (size_t)w + (size_t)(px + P / 2)]) continue;
            if ((double)mm_integral_sum(bi, w, py, px, py + P, px + P) < o->min_breast * patch_area)
                continue;
            if (mm_integral_sum(ii, w, py, px, py + P, px + P) != 0) continue;
            add_patch(out, n_out, &cap, (mm_patch){MM_CLASS_BACKGROUND, -1, py, px, 0});
            got++;
        }
        stats->bkg_short += need - got;
        free(breast);
        free(bi);
    }
    free(ii);
    free(uni);
    return MM_OK;
}

/* ---- the command ---- */

typedef struct patch_ctx {
    const mm_index *idx;
    const mm_patch_opts *o;
    const char *stage;          /* staging output folder */
    mm_patch **patches;         /* [n] per image */
    int *n_patches;             /* [n] */
    mm_patch_stats *stats;      /* [n] per image, summed at the end */
} patch_ctx;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Loads image i and its masks at the sampling size. */
static mm_status load_image(uint16_t **img, uint8_t ***masks, int *h, int *w, const patch_ctx *c,
                            const mm_index_image *im)
{
    char path[4096];
    int ih, iw;
    uint16_t *raw;
    MM_TRY(mm_load_gray16(&raw, &ih, &iw, mm_index_path(path, sizeof path, c->idx, im->image)));
    int H = c->o->height > 0 ? c->o->height : ih, W = c->o->width > 0 ? c->o->width : iw;
    if (H != ih || W != iw) {
        *img = mm_xmalloc((size_t)H * (size_t)W * sizeof **img);
        mm_resize_area_u16(*img, raw, ih, iw, H, W);
        free(raw);
    } else {
        *img = raw;
    }
    *h = H;
    *w = W;
    *masks = mm_xcalloc((size_t)(im->n_rois ? im->n_rois : 1), sizeof **masks);
    for (int k = 0; k < im->n_rois; k++) {
        uint8_t *m;
        int mh, mw;
        mm_status st = mm_load_mask(&m, &mh, &mw, mm_index_path(path, sizeof path, c->idx,
                                                                 im->rois[k].mask));
        if (st != MM_OK) return st;
        if (mh != H || mw != W) {
            (*masks)[k] = mm_xmalloc((size_t)H * (size_t)W);
            mm_resize_mask((*masks)[k], m, mh, mw, H, W);
            free(m);
        } else {
            (*masks)[k] = m;
        }
        for (size_t i = 0; i < (size_t)H * (size_t)W; i++) (*masks)[k][i] = (*masks)[k][i] != 0;
    }
    return MM_OK;
}

static mm_status write_patch(const patch_ctx *c, const mm_index_image *im, const uint16_t *img,
                             int w, const mm_patch *p, int j)
{
    const int P = c->o->size;
    char rel[1200], path[4096];
    if (p->roi >= 0)
        snprintf(rel, sizeof rel, "%s/%s/%s_r%d_%d.png", mm_split_name(im->split),
                 mm_patch_class_name((mm_patch_class)p->cls), im->image_id, p->roi, j);
    else
        snprintf(rel, sizeof rel, "%s/%s/%s_bg_%d.png", mm_split_name(im->split),
                 mm_patch_class_name(MM_CLASS_BACKGROUND), im->image_id, j);
    mm_image out = {.height = P, .width = P, .bit_depth = 16};
    uint16_t *px = mm_xmalloc((size_t)P * (size_t)P * sizeof *px);
    for (int y = 0; y < P; y++)
        memcpy(px + (size_t)y * (size_t)P, img + (size_t)(p->y + y) * (size_t)w + (size_t)p->x,
               (size_t)P * sizeof *px);
    out.pixels = px;
    mm_status st = mm_png_write(mm_fs_join(path, sizeof path, c->stage, rel), &out);
    free(px);
    return st;
}

static mm_status patch_image(void *vctx, int i, int thread)
{
    (void)thread;
    patch_ctx *c = vctx;
    const mm_index_image *im = &c->idx->images[i];
    uint16_t *img = NULL;
    uint8_t **masks = NULL;
    int h = 0, w = 0;
    mm_status st = load_image(&img, &masks, &h, &w, c, im);
    if (st == MM_OK) {
        uint64_t key = c->o->seed ^ (hash_str(im->image_id) * 0x9E3779B97F4A7C15ull);
        st = mm_patches_sample(&c->patches[i], &c->n_patches[i], &c->stats[i], img, masks, im,
                               c->o, key, h, w);
    }
    /* j numbers the patches of one ROI (or the background of the image) from 0 */
    int *per_roi = mm_xcalloc((size_t)im->n_rois + 1, sizeof *per_roi);
    for (int p = 0; st == MM_OK && p < c->n_patches[i]; p++) {
        const mm_patch *pt = &c->patches[i][p];
        st = write_patch(c, im, img, w, pt, per_roi[pt->roi + 1]++);
    }
    free(per_roi);
    free(img);
    if (masks)
        for (int k = 0; k < im->n_rois; k++) free(masks[k]);
    free(masks);
    return st;
}

/* The output folder must be missing or an empty folder (replaced by the staging folder at the
 * end). */
static mm_status check_out(const char *out_dir)
{
    if (!mm_fs_is_dir(out_dir)) {
        if (access(out_dir, F_OK) == 0)
            return mm_fail(MM_ERR_ARG, "--out %s: exists and is not a folder", out_dir);
        return MM_OK;
    }
    DIR *d = opendir(out_dir);
    if (!d) return mm_fail(MM_ERR_IO, "--out %s: cannot open: %s", out_dir, strerror(errno));
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    if (entries)
        return mm_fail(MM_ERR_ARG, "--out %s: the folder exists and is not empty; choose a new "
                                   "--out or remove it", out_dir);
    return MM_OK;
}

static mm_status write_csv(const patch_ctx *c, const char *stage)
{
    char path[4096];
    mm_atomic_file af;
    MM_TRY(mm_atomic_file_open(&af, mm_fs_join(path, sizeof path, stage, "patches.csv")));
    FILE *f = af.file;
    fprintf(f, "path,split,class,label,image_id,patient_id,roi,y,x,size,overlap\n");
    for (int i = 0; i < c->idx->n; i++) {
        const mm_index_image *im = &c->idx->images[i];
        int *per_roi = mm_xcalloc((size_t)im->n_rois + 1, sizeof *per_roi);
        for (int p = 0; p < c->n_patches[i]; p++) {
            const mm_patch *pt = &c->patches[i][p];
            const char *cls = mm_patch_class_name((mm_patch_class)pt->cls);
            char rel[1200];
            int j = per_roi[pt->roi + 1]++;
            if (pt->roi >= 0)
                snprintf(rel, sizeof rel, "%s/%s/%s_r%d_%d.png", mm_split_name(im->split), cls,
                         im->image_id, pt->roi, j);
            else
                snprintf(rel, sizeof rel, "%s/%s/%s_bg_%d.png", mm_split_name(im->split), cls,
                         im->image_id, j);
            mm_csv_put(f, rel, ',');
            fprintf(f, ",%s,%s,%d,", mm_split_name(im->split), cls, pt->cls);
            mm_csv_put(f, im->image_id, ',');
            fputc(',', f);
            mm_csv_put(f, im->patient_id, ',');
            fprintf(f, ",%d,%d,%d,%d,%.6f\n", pt->roi, pt->y, pt->x, c->o->size, pt->overlap);
        }
        free(per_roi);
    }
    return mm_atomic_file_commit(&af);
}

mm_status mm_patches_run(mm_patch_stats *stats, const char *index_path, const char *out_dir,
                         const mm_patch_opts *o)
{
    memset(stats, 0, sizeof *stats);
    if (o->size < 2 || o->per_roi < 1 || !(o->min_overlap > 0 && o->min_overlap <= 1) ||
        o->max_tries < 1 || !(o->breast_threshold >= 0 && o->breast_threshold < 1) ||
        !(o->min_breast >= 0 && o->min_breast <= 1) || o->height < 0 || o->width < 0)
        return mm_fail(MM_ERR_ARG, "mammo patches: need --size >= 2, --per-roi >= 1, 0 < "
                                   "--min-overlap <= 1, 0 <= --breast-threshold < 1, 0 <= "
                                   "--min-breast <= 1");
    if ((o->height > 0) != (o->width > 0))
        return mm_fail(MM_ERR_ARG, "--height %d --width %d: give both or neither", o->height,
                       o->width);
    mm_index idx;
    MM_TRY(mm_index_read(&idx, index_path));
    mm_status st = check_out(out_dir);
    char stage[4200];
    snprintf(stage, sizeof stage, "%s.partial.%d", out_dir, (int)getpid());
    patch_ctx c = {.idx = &idx, .o = o, .stage = stage};
    int n = idx.n ? idx.n : 1;
    c.patches = mm_xcalloc((size_t)n, sizeof *c.patches);
    c.n_patches = mm_xcalloc((size_t)n, sizeof *c.n_patches);
    c.stats = mm_xcalloc((size_t)n, sizeof *c.stats);
    char dir[4500];
    for (int s = 0; s < MM_SPLIT_COUNT && st == MM_OK; s++)
        for (int k = 0; k < MM_CLASS_COUNT && st == MM_OK; k++) {
            snprintf(dir, sizeof dir, "%s/%s/%s", stage, mm_split_name((mm_split)s),
                     mm_patch_class_name((mm_patch_class)k));
            st = mm_fs_mkdirs(dir);
        }
    if (st == MM_OK) st = mm_parallel_for(idx.n, o->threads, patch_image, &c, o->quiet ? NULL : "patches");
    if (st == MM_OK) st = write_csv(&c, stage);
    if (st == MM_OK && mm_fs_is_dir(out_dir) && rmdir(out_dir) != 0)
        st = mm_fail(MM_ERR_IO, "--out %s: cannot replace the empty folder: %s", out_dir,
                     strerror(errno));
    if (st == MM_OK && rename(stage, out_dir) != 0)
        st = mm_fail(MM_ERR_IO, "--out %s: cannot rename %s into place: %s", out_dir, stage,
                     strerror(errno));
    if (st != MM_OK) mm_fs_rmtree(stage);
    for (int i = 0; i < idx.n; i++) {
        const mm_patch_stats *s = &c.stats[i];
        stats->images++;
        stats->rois += s->rois;
        stats->rois_skipped += s->rois_skipped;
        stats->rois_relaxed += s->rois_relaxed;
        stats->rois_short += s->rois_short;
        stats->bkg_short += s->bkg_short;
        for (int p = 0; p < c.n_patches[i]; p++) {
            stats->per_class[c.patches[i][p].cls]++;
            stats->per_split[idx.images[i].split]++;
        }
        free(c.patches[i]);
    }
    free(c.patches);
    free(c.n_patches);
    free(c.stats);
    mm_index_free(&idx);
    return st;
}
