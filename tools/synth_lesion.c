/* Synthetic lesions: masses, calcification clusters and asymmetries, with their masks and
 * outlines. See synth.h for what malignant and benign lesions look like.
 *
 * A mass body is a star-shaped region r <= R(theta), R(theta) = r0 exp(sum_k a_k cos(k theta +
 * phi_k)) (de Sisternes et al. 2015 use the same Fourier-perturbed contour): a few low harmonics
 * give round/oval/lobulated benign shapes, many larger ones give irregular malignant shapes. Its
 * profile is a plateau with a slight dome whose edge is blurred by erfc over sigma_e (sharp for
 * circumscribed margins, wide for ill-defined ones). Spicules are tapered lines grown outwards
 * from the boundary along slightly curving random paths, composited with max() so overlaps do
 * not add up. Calcifications are small anti-aliased ellipses (4x4 supersampling). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"
#include "synth_rng.h"

#define PI 3.14159265358979323846
#define NTAB 720

typedef struct layer {
    int x0, y0, w, h; /* placement in the image */
    float *v;         /* [h*w] */
} layer;

static layer layer_make(double cx, double cy, double radius, int img_h, int img_w)
{
    layer L;
    int x0 = (int)floor(cx - radius), y0 = (int)floor(cy - radius);
    int x1 = (int)ceil(cx + radius) + 1, y1 = (int)ceil(cy + radius) + 1;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img_w) x1 = img_w;
    if (y1 > img_h) y1 = img_h;
    L.x0 = x0, L.y0 = y0;
    L.w = x1 > x0 ? x1 - x0 : 0, L.h = y1 > y0 ? y1 - y0 : 0;
    L.v = mm_xcalloc((size_t)(L.w ? L.w : 1) * (L.h ? L.h : 1), sizeof(float));
    return L;
}

static void layer_add_to(float *img, int img_w, const layer *L)
{
    for (int y = 0; y < L->h; y++)
        for (int x = 0; x < L->w; x++) img[(size_t)(y + L->y0) * img_w + x + L->x0] += L->v[(size_t)y * L->w + x];
}

static void set_bbox(mm_synth_lesion *les, const uint8_t *m, const layer *L)
{
    les->x0 = les->y0 = 1 << 30;
    les->x1 = les->y1 = -1;
    les->mask_pixels = 0;
    for (int y = 0; y < L->h; y++)
        for (int x = 0; x < L->w; x++)
            if (m[(size_t)y * L->w + x]) {
                int X = x + L->x0, Y = y + L->y0;
                les->mask_pixels++;
                if (X < les->x0) les->x0 = X;
                if (Y < les->y0) les->y0 = Y;
                if (X + 1 > les->x1) les->x1 = X + 1;
                if (Y + 1 > les->y1) les->y1 = Y + 1;
            }
    if (!les->mask_pixels) les->x0 = les->y0 = les->x1 = les->y1 = 0;
}

static void mask_or(uint8_t *mask, int img_w, const uint8_t *m, const layer *L)
{
    if (!mask) return;
    for (int y = 0; y < L->h; y++)
        for (int x = 0; x < L->w; x++)
            if (m[(size_t)y * L->w + x]) mask[(size_t)(y + L->y0) * img_w + x + L->x0] = 255;
}

/* ---- masses and asymmetries ------------------------------------------------------------- */

/* R(theta) tabulated at NTAB angles. */
static void contour_table(double *tab, double r0, const double *a, const double *ph, int kmax)
{
    for (int i = 0; i < NTAB; i++) {
        double th = 2 * PI * i / NTAB, s = 0;
        for (int k = 2; k <= kmax; k++) s += a[k] * cos(k * th + ph[k]);
        tab[i] = r0 * exp(s);
    }
}

static double contour_at(const double *tab, double th)
{
    double f = th / (2 * PI) * NTAB;
    f -= floor(f / NTAB) * NTAB;
    int i = (int)f;
    double t = f - i;
    return tab[i % NTAB] * (1 - t) + tab[(i + 1) % NTAB] * t;
}

static void splat_disc_max(layer *L, double px, double py, double width, double amp)
{
    double rad = width;
    int xa = (int)floor(px - rad) - L->x0, xb = (int)ceil(px + rad) - L->x0;
    int ya = (int)floor(py - rad) - L->y0, yb = (int)ceil(py + rad) - L->y0;
    for (int y = ya < 0 ? 0 : ya; y <= yb && y < L->h; y++)
        for (int x = xa < 0 ? 0 : xa; x <= xb && x < L->w; x++) {
            double dx = x + L->x0 - px, dy = y + L->y0 - py;
            double d2 = (dx * dx + dy * dy) / (width * width);
            if (d2 > 1.0) continue;
            float v = (float)(amp * exp(-2.0 * d2));
            float *q = &L->v[(size_t)y * L->w + x];
            if (v > *q) *q = v;
        }
}

static void draw_mass(float *img, uint8_t *mask, mm_synth_lesion *les, int h, int w, double mmpp)
{
    mm_srng r = mm_srng_make(les->seed, MM_TAG_LESION, 0);
    double r0 = fmax(les->size_mm * 0.5 / mmpp, 2.0);
    double a[16] = {0}, ph[16] = {0};
    int kmax, asym = les->kind == MM_SYNTH_ASYMMETRY;
    double sigma_e;
    for (int k = 0; k < 16; k++) ph[k] = mm_srng_range(&r, 0, 2 * PI);
    if (asym) {
        kmax = 3;
        a[2] = mm_srng_range(&r, 0.1, 0.3);
        a[3] = 0.05 * mm_srng_normal(&r);
        sigma_e = 0.3 * r0;
    } else if (les->malignant) {
        kmax = 12;
        a[2] = mm_srng_range(&r, 0.0, 0.15);
        for (int k = 3; k <= kmax; k++) a[k] = mm_srng_normal(&r) * 0.30 / k;
        sigma_e = fmax((les->spiculated ? 0.6 : 1.2) / mmpp, 0.7);
    } else {
        kmax = 4;
        a[2] = mm_srng_range(&r, 0.03, 0.18);
        if (les->lobulated) {
            a[3] = mm_srng_range(&r, 0.04, 0.08);
            a[4] = mm_srng_range(&r, 0.03, 0.06);
        } else {
            a[3] = 0.012 * mm_srng_normal(&r);
        }
        sigma_e = fmax(0.25 / mmpp, 0.35);
    }
    double tab[NTAB], rmax = 0;
    contour_table(tab, r0, a, ph, kmax);
    for (int i = 0; i < NTAB; i++) rmax = fmax(rmax, tab[i]);
    /* spicules (malignant masses) */
    int nsp = 0;
    double lenf_lo = 0, lenf_hi = 0;
    if (!asym && les->malignant) {
        nsp = les->spiculated ? mm_srng_int(&r, 8, 22) : mm_srng_int(&r, 3, 7);
        lenf_lo = les->spiculated ? 0.8 : 0.3;
        lenf_hi = les->spiculated ? 2.2 : 0.7;
    }
    double reach = rmax * (1 + lenf_hi) + 3 * sigma_e + 4;
    layer L = layer_make(les->cx, les->cy, reach, h, w);
    uint8_t *m = mm_xcalloc((size_t)(L.w ? L.w : 1) * (L.h ? L.h : 1), 1);
    for (int y = 0; y < L.h; y++)
        for (int x = 0; x < L.w; x++) {
            double dx = x + L.x0 - les->cx, dy = y + L.y0 - les->cy;
            double rr = sqrt(dx * dx + dy * dy), R = contour_at(tab, atan2(dy, dx));
            double body = 0.5 * erfc((rr - R) / (sqrt(2.0) * sigma_e));
            double dome = asym ? 1.0 : 0.8 + 0.2 * sqrt(fmax(0.0, 1.0 - (rr / R) * (rr / R)));
            L.v[(size_t)y * L.w + x] = (float)(les->contrast * body * dome);
            if (rr <= R) m[(size_t)y * L.w + x] = 1;
        }
    les->n_spicules = nsp;
    les->spicule_reach = rmax;
    double phase0 = mm_srng_range(&r, 0, 2 * PI);
    for (int s = 0; s < nsp; s++) {
        double th = phase0 + 2 * PI * (s + mm_srng_range(&r, -0.35, 0.35)) / nsp;
        double R = contour_at(tab, th), start = 0.85 * R;
        double len = fmax(r0 * mm_srng_range(&r, lenf_lo, lenf_hi), 3.0);
        double w0 = fmax(mm_srng_range(&r, 0.5, 1.1) / mmpp, 1.3);
        double amp = mm_srng_range(&r, 0.45, 0.75) * les->contrast;
        double dir = th + 0.2 * mm_srng_normal(&r), curv = 0.6 * mm_srng_normal(&r) / len;
        double px = les->cx + start * cos(th), py = les->cy + start * sin(th), ds = 0.35;
        double total = (len + R - start);
        for (double t = 0; t < total; t += ds) {
            double f = t / total;
            splat_disc_max(&L, px, py, w0 * (1.0 - 0.7 * f), amp * (1.0 - 0.5 * f));
            px += ds * cos(dir);
            py += ds * sin(dir);
            dir += curv * ds;
        }
        double tip = sqrt((px - les->cx) * (px - les->cx) + (py - les->cy) * (py - les->cy));
        les->spicule_reach = fmax(les->spicule_reach, tip);
    }
    layer_add_to(img, w, &L);
    mask_or(mask, w, m, &L);
    set_bbox(les, m, &L);
    /* outline: the contour sampled about every 1.5 px */
    int n = (int)(2 * PI * r0 / 1.5);
    n = n < 16 ? 16 : n > 256 ? 256 : n;
    les->n_outline = n;
    les->outline = mm_xmalloc(sizeof(double) * 2 * (size_t)n);
    for (int i = 0; i < n; i++) {
        double th = 2 * PI * i / n, R = contour_at(tab, th);
        les->outline[2 * i] = les->cx + R * cos(th);
        les->outline[2 * i + 1] = les->cy + R * sin(th);
    }
    free(m);
    free(L.v);
}

/* ---- calcification clusters ------------------------------------------------------------- */

/* Adds one anti-aliased ellipse (semi-axes a >= b, angle ang) with max compositing; rim != 0 makes
 * a lucent centre (benign "eggshell" calcifications). */
static void draw_speck(layer *L, double cx, double cy, double a, double b, double ang, double amp, int rim)
{
    double ca = cos(ang), sa = sin(ang), ext = a + 1.0;
    int xa = (int)floor(cx - ext) - L->x0, xb = (int)ceil(cx + ext) - L->x0;
    int ya = (int)floor(cy - ext) - L->y0, yb = (int)ceil(cy + ext) - L->y0;
    for (int y = ya < 0 ? 0 : ya; y <= yb && y < L->h; y++)
        for (int x = xa < 0 ? 0 : xa; x <= xb && x < L->w; x++) {
            double cov = 0;
            for (int sy = 0; sy < 4; sy++)
                for (int sx = 0; sx < 4; sx++) {
                    double dx = x + L->x0 + (sx + 0.5) / 4 - 0.5 - cx, dy = y + L->y0 + (sy + 0.5) / 4 - 0.5 - cy;
                    double u = (dx * ca + dy * sa) / a, v = (-dx * sa + dy * ca) / b;
                    double q = u * u + v * v;
                    if (q <= 1.0) cov += (rim && q < 0.3) ? 0.35 : 1.0;
                }
            float val = (float)(amp * cov / 16.0);
            float *p = &L->v[(size_t)y * L->w + x];
            if (val > *p) *p = val;
        }
}

/* Convex hull (Andrew's monotone chain) of n points (x,y pairs); returns the count, hull in out. */
static int convex_hull(double *out, const double *pts, int n)
{
    int *idx = mm_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort by (x, y): n is small */
        for (int j = i; j > 0; j--) {
            const double *p = pts + 2 * idx[j], *q = pts + 2 * idx[j - 1];
            if (p[0] < q[0] || (p[0] == q[0] && p[1] < q[1])) {
                int t = idx[j];
                idx[j] = idx[j - 1];
                idx[j - 1] = t;
            } else break;
        }
    int *hull = mm_xmalloc(sizeof(int) * (size_t)(2 * n + 1)), k = 0;
    for (int pass = 0; pass < 2; pass++) {
        int start = k;
        for (int ii = 0; ii < n; ii++) {
            int i = pass == 0 ? idx[ii] : idx[n - 1 - ii];
            while (k >= start + 2) {
                const double *o = pts + 2 * hull[k - 2], *a = pts + 2 * hull[k - 1], *b = pts + 2 * i;
                double cross = (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
                if (cross <= 0) k--;
                else break;
            }
            hull[k++] = i;
        }
        k--; /* the last point of each chain starts the other */
    }
    for (int i = 0; i < k; i++) out[2 * i] = pts[2 * hull[i]], out[2 * i + 1] = pts[2 * hull[i] + 1];
    free(idx);
    free(hull);
    return k;
}

/* Even-odd polygon fill into m (layer coordinates). */
static void fill_polygon(uint8_t *m, const layer *L, const double *poly, int n)
{
    for (int y = 0; y < L->h; y++) {
        double py = y + L->y0;
        for (int x = 0; x < L->w; x++) {
            double px = x + L->x0;
            int in = 0;
            for (int i = 0, j = n - 1; i < n; j = i++) {
                double xi = poly[2 * i], yi = poly[2 * i + 1], xj = poly[2 * j], yj = poly[2 * j + 1];
                if ((yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi) in = !in;
            }
            if (in) m[(size_t)y * L->w + x] = 1;
        }
    }
}

static void draw_calc(float *img, uint8_t *mask, mm_synth_lesion *les, int h, int w, double mmpp)
{
    mm_srng r = mm_srng_make(les->seed, MM_TAG_LESION, 0);
    int n = les->malignant ? mm_srng_int(&r, 10, 28) : mm_srng_int(&r, 4, 10);
    double ext = les->size_mm / mmpp; /* cluster extent, pixels */
    double *c = mm_xmalloc(sizeof(double) * 2 * (size_t)n), *rad = mm_xmalloc(sizeof(double) * (size_t)n);
    double *sa = mm_xmalloc(sizeof(double) * (size_t)n), *sb = mm_xmalloc(sizeof(double) * (size_t)n);
    double *ang = mm_xmalloc(sizeof(double) * (size_t)n), *amp = mm_xmalloc(sizeof(double) * (size_t)n);
    int *rim = mm_xcalloc((size_t)n, sizeof(int));
    if (les->malignant) {
        /* fine pleomorphic specks along 1-3 branching ductal curves */
        int nb = mm_srng_int(&r, 1, 3);
        double bx[3], by[3], ba[3], bk[3];
        for (int b = 0; b < nb; b++) {
            bx[b] = les->cx + 0.12 * ext * mm_srng_normal(&r);
            by[b] = les->cy + 0.12 * ext * mm_srng_normal(&r);
            ba[b] = mm_srng_range(&r, 0, 2 * PI);
            bk[b] = mm_srng_normal(&r) * 1.2 / fmax(ext, 1.0);
        }
        for (int i = 0; i < n; i++) {
            int b = i % nb;
            double s = mm_srng_range(&r, -0.5, 0.5) * ext, t = ba[b] + bk[b] * s;
            double mid = ba[b] + bk[b] * s * 0.5, jit = 0.06 * ext * mm_srng_normal(&r);
            c[2 * i] = bx[b] + s * cos(mid) - jit * sin(t);
            c[2 * i + 1] = by[b] + s * sin(mid) + jit * cos(t);
            sb[i] = fmax(mm_srng_range(&r, 0.08, 0.2) / mmpp, 0.5);
            sa[i] = fmax(mm_srng_range(&r, 0.12, 0.35) / mmpp, 0.6) * mm_srng_range(&r, 1.0, 2.4);
            if (sa[i] < sb[i]) sa[i] = sb[i];
            ang[i] = t + 0.3 * mm_srng_normal(&r);
            amp[i] = les->contrast * mm_srng_range(&r, 0.55, 1.0);
        }
    } else {
        /* larger round specks scattered over a wider region, kept apart */
        double R = 0.5 * ext, sep = fmax(2.0 / mmpp, 3.0);
        for (int i = 0; i < n; i++) {
            double x = les->cx, y = les->cy;
            for (int tries = 0; tries < 60; tries++) {
                double rr = R * sqrt(mm_srng_unif(&r)), th = mm_srng_range(&r, 0, 2 * PI);
                x = les->cx + rr * cos(th), y = les->cy + rr * sin(th);
                int ok = 1;
                for (int j = 0; j < i && ok; j++)
                    if (hypot(x - c[2 * j], y - c[2 * j + 1]) < sep) ok = 0;
                if (ok) break;
            }
            c[2 * i] = x, c[2 * i + 1] = y;
            sb[i] = fmax(mm_srng_range(&r, 0.35, 0.9) / mmpp, 1.2);
            sa[i] = sb[i] * mm_srng_range(&r, 1.0, 1.15);
            ang[i] = mm_srng_range(&r, 0, PI);
            amp[i] = les->contrast * mm_srng_range(&r, 0.8, 1.0);
            rim[i] = mm_srng_bern(&r, 0.3) && sb[i] >= 1.5;
        }
    }
    /* mask: convex hull of the specks grown by a margin */
    double margin = fmax(1.5 / mmpp, 2.5);
    double *pts = mm_xmalloc(sizeof(double) * 8 * (size_t)n);
    for (int i = 0; i < n; i++) /* each speck's extreme points, so the hull covers the specks */
        for (int k = 0; k < 4; k++) {
            double th = k * PI / 2;
            pts[8 * i + 2 * k] = c[2 * i] + sa[i] * cos(th);
            pts[8 * i + 2 * k + 1] = c[2 * i + 1] + sa[i] * sin(th);
        }
    double *hull = mm_xmalloc(sizeof(double) * 2 * (size_t)(4 * n + 1));
    int nh = convex_hull(hull, pts, 4 * n);
    double gx = 0, gy = 0;
    for (int i = 0; i < nh; i++) gx += hull[2 * i], gy += hull[2 * i + 1];
    gx /= nh, gy /= nh;
    for (int i = 0; i < nh; i++) {
        double dx = hull[2 * i] - gx, dy = hull[2 * i + 1] - gy, d = fmax(hypot(dx, dy), 1e-9);
        hull[2 * i] += margin * dx / d;
        hull[2 * i + 1] += margin * dy / d;
    }
    double reach = 0;
    for (int i = 0; i < nh; i++) reach = fmax(reach, hypot(hull[2 * i] - les->cx, hull[2 * i + 1] - les->cy));
    layer L = layer_make(les->cx, les->cy, reach + 3, h, w);
    for (int i = 0; i < n; i++) draw_speck(&L, c[2 * i], c[2 * i + 1], sa[i], sb[i], ang[i], amp[i], rim[i]);
    uint8_t *m = mm_xcalloc((size_t)(L.w ? L.w : 1) * (L.h ? L.h : 1), 1);
    fill_polygon(m, &L, hull, nh);
    layer_add_to(img, w, &L);
    mask_or(mask, w, m, &L);
    set_bbox(les, m, &L);
    les->n_outline = nh;
    les->outline = hull;
    les->n_specks = n;
    les->specks = c;
    les->speck_r = rad;
    for (int i = 0; i < n; i++) rad[i] = 0.5 * (sa[i] + sb[i]);
    free(m);
    free(L.v);
    free(pts);
    free(sa);
    free(sb);
    free(ang);
    free(amp);
    free(rim);
}

void mm_synth_draw_lesion(float *img, uint8_t *mask, mm_synth_lesion *les, int h, int w, double mm_per_px)
{
    les->outline = les->specks = les->speck_r = NULL;
    les->n_outline = les->n_specks = les->n_spicules = 0;
    les->spicule_reach = 0;
    if (les->kind == MM_SYNTH_CALC)
        draw_calc(img, mask, les, h, w, mm_per_px);
    else
        draw_mass(img, mask, les, h, w, mm_per_px);
}

void mm_synth_lesion_free(mm_synth_lesion *les)
{
    free(les->outline);
    free(les->specks);
    free(les->speck_r);
    les->outline = les->specks = les->speck_r = NULL;
    les->n_outline = les->n_specks = 0;
}
