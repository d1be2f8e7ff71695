/* INbreast OsiriX plist ROI reader over libxml2's tree API: see plist.h. In a build without
 * libxml2 (MM_HAVE_LIBXML2 unset) parsing fails with a message saying what to install. */
#include "plist.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MM_HAVE_LIBXML2
#include <libxml/parser.h>
#include <libxml/tree.h>
#endif

#include "index.h"

#ifdef MM_HAVE_LIBXML2

/* Coordinates beyond this are nonsense for a mammogram; rejecting them keeps the rasteriser's
 * arithmetic finite. */
#define MAX_COORD 1.0e7

static int is_elem(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static const xmlNode *next_elem(const xmlNode *n)
{
    for (n = n ? n->next : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE) return n;
    return NULL;
}

static const xmlNode *first_elem(const xmlNode *n)
{
    for (n = n ? n->children : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE) return n;
    return NULL;
}

/* The text of an element (malloc'ed, trimmed of surrounding whitespace). */
static char *text_of(const xmlNode *n)
{
    xmlChar *t = xmlNodeGetContent(n);
    const char *s = t ? (const char *)t : "";
    while (isspace((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1])) len--;
    char *out = mm_xmalloc(len + 1);
    memcpy(out, s, len);
    out[len] = '\0';
    if (t) xmlFree(t);
    return out;
}

/* The value element that follows <key>name</key> in a <dict>; NULL if the key is absent. */
static const xmlNode *dict_get(const xmlNode *dict, const char *name)
{
    for (const xmlNode *k = first_elem(dict); k; k = next_elem(k)) {
        if (!is_elem(k, "key")) continue;
        char *t = text_of(k);
        int hit = !strcmp(t, name);
        free(t);
        if (hit) return next_elem(k);
    }
    return NULL;
}

/* Parses "(x, y)" (spaces allowed anywhere between the tokens). */
static int parse_point(const char *s, double *x, double *y)
{
    char *end;
    while (isspace((unsigned char)*s)) s++;
    if (*s++ != '(') return 0;
    errno = 0;
    *x = strtod(s, &end);
    if (end == s) return 0;
    s = end;
    while (isspace((unsigned char)*s)) s++;
    if (*s++ != ',') return 0;
    *y = strtod(s, &end);
    if (end == s || errno == ERANGE) return 0;
    s = end;
    while (isspace((unsigned char)*s)) s++;
    if (*s++ != ')') return 0;
    while (isspace((unsigned char)*s)) s++;
    return *s == '\0' && isfinite(*x) && isfinite(*y) && fabs(*x) <= MAX_COORD &&
           fabs(*y) <= MAX_COORD;
}

static mm_status parse_roi(mm_xml_roi *roi, const xmlNode *dict, const char *name, int index)
{
    if (!is_elem(dict, "dict"))
        return mm_fail(MM_ERR_FORMAT, "%s: ROI %d is not a <dict>; is this an INbreast XML file?",
                       name, index + 1);
    const xmlNode *nm = dict_get(dict, "Name"), *pts = dict_get(dict, "Point_px");
    if (!is_elem(nm, "string"))
        return mm_fail(MM_ERR_FORMAT, "%s: ROI %d has no <key>Name</key> with a <string>", name,
                       index + 1);
    if (!is_elem(pts, "array"))
        return mm_fail(MM_ERR_FORMAT, "%s: ROI %d has no <key>Point_px</key> with an <array>",
                       name, index + 1);
    char *t = text_of(nm);
    snprintf(roi->name, sizeof roi->name, "%s", t);
    free(t);
    int n = 0;
    for (const xmlNode *p = first_elem(pts); p; p = next_elem(p)) n++;
    roi->x = mm_xmalloc((size_t)(n ? n : 1) * sizeof *roi->x);
    roi->y = mm_xmalloc((size_t)(n ? n : 1) * sizeof *roi->y);
    for (const xmlNode *p = first_elem(pts); p; p = next_elem(p)) {
        char *s = is_elem(p, "string") ? text_of(p) : NULL;
        int ok = s && parse_point(s, &roi->x[roi->n_points], &roi->y[roi->n_points]);
        if (!ok) {
            mm_status st = mm_fail(MM_ERR_FORMAT,
                                   "%s: ROI %d (%s): Point_px entry %d is not \"(x, y)\" with "
                                   "finite numbers: '%.40s'",
                                   name, index + 1, roi->name, roi->n_points + 1, s ? s : "");
            free(s);
            return st;
        }
        free(s);
        roi->n_points++;
    }
    if (roi->n_points == 0)
        return mm_fail(MM_ERR_FORMAT, "%s: ROI %d (%s) has no points in Point_px", name,
                       index + 1, roi->name);
    return MM_OK;
}

static void add_roi(mm_xml_rois *out, int *cap)
{
    if (out->n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        out->rois = mm_xrealloc(out->rois, (size_t)*cap * sizeof *out->rois);
    }
    memset(&out->rois[out->n++], 0, sizeof *out->rois);
}

static mm_status walk_doc(mm_xml_rois *out, const xmlDoc *doc, const char *name)
{
    const xmlNode *root = xmlDocGetRootElement((xmlDoc *)doc);
    if (!is_elem(root, "plist"))
        return mm_fail(MM_ERR_FORMAT, "%s: the root element is not <plist>; is this an INbreast "
                                      "XML file?", name);
    const xmlNode *top = first_elem(root);
    if (!is_elem(top, "dict"))
        return mm_fail(MM_ERR_FORMAT, "%s: <plist> does not hold a <dict>", name);
    const xmlNode *images = dict_get(top, "Images");
    if (!is_elem(images, "array"))
        return mm_fail(MM_ERR_FORMAT, "%s: no <key>Images</key> with an <array>", name);
    int cap = 0, index = 0;
    for (const xmlNode *im = first_elem(images); im; im = next_elem(im)) {
        if (!is_elem(im, "dict"))
            return mm_fail(MM_ERR_FORMAT, "%s: an Images entry is not a <dict>", name);
        const xmlNode *rois = dict_get(im, "ROIs");
        if (!rois) continue; /* an image entry without ROIs */
        if (!is_elem(rois, "array"))
            return mm_fail(MM_ERR_FORMAT, "%s: <key>ROIs</key> is not followed by an <array>",
                           name);
        for (const xmlNode *r = first_elem(rois); r; r = next_elem(r), index++) {
            add_roi(out, &cap);
            MM_TRY(parse_roi(&out->rois[out->n - 1], r, name, index));
        }
    }
    return MM_OK;
}

void mm_inbreast_xml_init(void) { xmlInitParser(); }

mm_status mm_inbreast_xml_parse(mm_xml_rois *out, const char *data, size_t len, const char *name)
{
    memset(out, 0, sizeof *out);
    if (len > (size_t)1 << 30)
        return mm_fail(MM_ERR_FORMAT, "%s: larger than 1 GB; not an INbreast XML file", name);
    xmlParserCtxtPtr ctx = xmlNewParserCtxt();
    if (!ctx) mm_die_at(__FILE__, __LINE__, "out of host memory", "xmlNewParserCtxt", NULL);
    xmlDocPtr doc = xmlCtxtReadMemory(ctx, data, (int)len, name, NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    mm_status st;
    if (!doc) {
        const xmlError *e = xmlCtxtGetLastError(ctx);
        char msg[200];
        snprintf(msg, sizeof msg, "%s", e && e->message ? e->message : "not well-formed");
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
        st = mm_fail(MM_ERR_FORMAT, "%s: line %d: XML error: %s", name, e ? e->line : 0, msg);
    } else {
        st = walk_doc(out, doc, name);
        xmlFreeDoc(doc);
    }
    xmlFreeParserCtxt(ctx);
    if (st != MM_OK) mm_xml_rois_free(out);
    return st;
}

#else

void mm_inbreast_xml_init(void) {}

mm_status mm_inbreast_xml_parse(mm_xml_rois *out, const char *data, size_t len, const char *name)
{
    (void)data;
    (void)len;
    memset(out, 0, sizeof *out);
    return mm_fail(MM_ERR_UNSUPPORTED, "%s: this build has no libxml2 to read INbreast's XML ROIs; "
                                       "install libxml2-dev and rebuild", name);
}

#endif

mm_status mm_inbreast_xml_read(mm_xml_rois *out, const char *path)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return mm_fail(MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *data = mm_xmalloc(cap);
    for (;;) {
        if (n == cap) data = mm_xrealloc(data, cap *= 2);
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    mm_status st = err ? mm_fail(MM_ERR_IO, "%s: read error", path)
                       : mm_inbreast_xml_parse(out, data, n, path);
    free(data);
    return st;
}

void mm_xml_rois_free(mm_xml_rois *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->rois[i].x);
        free(r->rois[i].y);
    }
    free(r->rois);
    memset(r, 0, sizeof *r);
}

static int prefix_nocase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (tolower((unsigned char)*s) != *prefix) return 0;
    return 1;
}

int mm_inbreast_lesion_type(const char *name)
{
    while (isspace((unsigned char)*name)) name++;
    static const struct {
        const char *prefix;
        int type;
    } table[] = {
        {"mass", MM_ROI_MASS},          {"calc", MM_ROI_CALC},
        {"cluster", MM_ROI_CLUSTER},    {"distortion", MM_ROI_DISTORTION},
        {"asym", MM_ROI_ASYMMETRY},     {"assym", MM_ROI_ASYMMETRY},
        {"spicul", MM_ROI_SPICULATED},  {"espicul", MM_ROI_SPICULATED},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (prefix_nocase(name, table[i].prefix)) return table[i].type;
    return -1;
}
