/* `mammo prep`: DICOM/PNG -> training-size PNGs and an updated index. See prep.h. */
#include "prep.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom.h"
#include "fs.h"
#include "index.h"
#include "parallel.h"
#include "png_io.h"
#include "resize.h"

mm_status mm_load_gray16(uint16_t **pixels, int *h, int *w, const char *path)
{
    *pixels = NULL;
    if (mm_str_ends_with(path, ".png")) {
        mm_image img;
        MM_TRY(mm_png_read(path, &img));
        size_t n = (size_t)img.height * (size_t)img.width;
        *h = img.height;
        *w = img.width;
        if (img.bit_depth == 16) {
            *pixels = img.pixels;
        } else {
            uint16_t *p = mm_xmalloc(n * sizeof *p);
            const uint8_t *s = img.pixels;
            for (size_t i = 0; i < n; i++) p[i] = s[i];
            mm_image_free(&img);
            *pixels = p;
        }
        return MM_OK;
    }
    mm_dicom_info info;
    MM_TRY(mm_dicom_read_u16(path, &info, pixels));
    *h = info.rows;
    *w = info.cols;
    return MM_OK;
}

mm_status mm_load_mask(uint8_t **mask, int *h, int *w, const char *path)
{
    uint16_t *p;
    MM_TRY(mm_load_gray16(&p, h, w, path));
    size_t n = (size_t)*h * (size_t)*w;
    uint8_t *m = mm_xmalloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) m[i] = p[i] != 0;
    free(p);
    *mask = m;
    return MM_OK;
}

bool mm_png_has_shape(const char *path, int height, int width, int bit_depth)
{
    /* signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4) + depth (1) + colour (1) */
    static const unsigned char sig[8] = {137, 'P', 'N', 'G', 13, 10, 26, 10};
    unsigned char b[26];
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    if (got != sizeof b || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return false;
    uint32_t pw = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    uint32_t ph = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    return pw == (uint32_t)width && ph == (uint32_t)height && b[24] == bit_depth && b[25] == 0;
}

typedef struct prep_ctx {
    const mm_index *idx;
    const char *out_dir;
    const mm_prep_opts *o;
    int *img_done, *masks_done; /* [n]: 1 written, 0 skipped; masks: number written */
} prep_ctx;

static mm_status prep_image(void *vctx, int i, int thread)
{
    (void)thread;
    prep_ctx *c = vctx;
    const mm_index_image *im = &c->idx->images[i];
    const int H = c->o->height, W = c->o->width;
    char src[4096], dst[4096], name[1024];
    snprintf(name, sizeof name, "images/%s.png", im->image_id);
    mm_fs_join(dst, sizeof dst, c->out_dir, name);
    if (c->o->force || !mm_png_has_shape(dst, H, W, 16)) {
        uint16_t *px;
        int h, w;
        MM_TRY(mm_load_gray16(&px, &h, &w, mm_index_path(src, sizeof src, c->idx, im->image)));
        mm_image out = {.height = H, .width = W, .bit_depth = 16};
        out.pixels = mm_xmalloc((size_t)H * (size_t)W * sizeof(uint16_t));
        mm_resize_area_u16(out.pixels, px, h, w, H, W);
        free(px);
        mm_status st = mm_png_write(dst, &out);
        free(out.pixels);
        MM_TRY(st);
        c->img_done[i] = 1;
    }
    for (int k = 0; k < im->n_rois; k++) {
        snprintf(name, sizeof name, "masks/%s_%d.png", im->image_id, k);
        mm_fs_join(dst, sizeof dst, c->out_dir, name);
        if (!c->o->force && mm_png_has_shape(dst, H, W, 8)) continue;
        uint8_t *m;
        int h, w;
        MM_TRY(mm_load_mask(&m, &h, &w, mm_index_path(src, sizeof src, c->idx, im->rois[k].mask)));
        mm_image out = {.height = H, .width = W, .bit_depth = 8};
        out.pixels = mm_xmalloc((size_t)H * (size_t)W);
        mm_resize_mask(out.pixels, m, h, w, H, W);
        free(m);
        mm_status st = mm_png_write(dst, &out);
        free(out.pixels);
        MM_TRY(st);
        c->masks_done[i]++;
    }
    return MM_OK;
}

/* An absolute version of a path stored in the index (so the new index can live elsewhere). */
static char *absolute(const mm_index *idx, const char *stored)
{
    char p[4096], r[PATH_MAX];
    mm_index_path(p, sizeof p, idx, stored);
    if (p[0] == '/') return mm_xstrdup(p);
    char dir[4096];
    mm_fs_dirname(dir, sizeof dir, p);
    if (!realpath(dir, r)) return mm_xstrdup(p);
    char out[4096 + PATH_MAX];
    snprintf(out, sizeof out, "%s/%s", r, mm_fs_basename(p));
    return mm_xstrdup(out);
}

mm_status mm_prep_run(mm_prep_stats *stats, const char *index_path, const char *out_dir,
                      const mm_prep_opts *o)
{
    memset(stats, 0, sizeof *stats);
    if (o->height < 8 || o->width < 8 || o->height > 16384 || o->width > 16384)
        return mm_fail(MM_ERR_ARG, "--height/--width %dx%d: the target size must be 8..16384 "
                                   "pixels a side", o->height, o->width);
    mm_index idx;
    MM_TRY(mm_index_read(&idx, index_path));
    char dir[4096];
    mm_status st = mm_fs_mkdirs(mm_fs_join(dir, sizeof dir, out_dir, "images"));
    if (st == MM_OK) st = mm_fs_mkdirs(mm_fs_join(dir, sizeof dir, out_dir, "masks"));
    prep_ctx c = {.idx = &idx, .out_dir = out_dir, .o = o};
    c.img_done = mm_xcalloc((size_t)(idx.n ? idx.n : 1), sizeof *c.img_done);
    c.masks_done = mm_xcalloc((size_t)(idx.n ? idx.n : 1), sizeof *c.masks_done);
    if (st == MM_OK)
        st = mm_parallel_for(idx.n, o->threads, prep_image, &c, o->quiet ? NULL : "prep");
    if (st == MM_OK) {
        mm_index out = {0};
        char name[1024];
        for (int i = 0; i < idx.n; i++) {
            const mm_index_image *im = &idx.images[i];
            mm_index_image *n = mm_index_add(&out);
            *n = *im;
            n->image_id = mm_xstrdup(im->image_id);
            n->dataset = mm_xstrdup(im->dataset);
            n->patient_id = mm_xstrdup(im->patient_id);
            n->source = absolute(&idx, im->source[0] ? im->source : im->image);
            snprintf(name, sizeof name, "images/%s.png", im->image_id);
            n->image = mm_xstrdup(name);
            n->height = o->height;
            n->width = o->width;
            n->rois = mm_xcalloc((size_t)(im->n_rois ? im->n_rois : 1), sizeof *n->rois);
            for (int k = 0; k < im->n_rois; k++) {
                n->rois[k] = im->rois[k];
                snprintf(name, sizeof name, "masks/%s_%d.png", im->image_id, k);
                n->rois[k].mask = mm_xstrdup(name);
            }
            stats->images += c.img_done[i];
            stats->images_skipped += !c.img_done[i];
            stats->masks += c.masks_done[i];
            stats->masks_skipped += im->n_rois - c.masks_done[i];
        }
        st = mm_index_write(&out, mm_fs_join(dir, sizeof dir, out_dir, "index.csv"));
        mm_index_free(&out);
    }
    free(c.img_done);
    free(c.masks_done);
    mm_index_free(&idx);
    return st;
}
