/* INbreast OsiriX plist ROIs: parsing, lesion-name normalisation, errors; the rasteriser against
 * a naive per-pixel point-in-polygon reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "tests/harness.h"
#include "tools/index.h"
#include "tools/plist.h"
#include "tools/raster.h"

#ifndef MM_HAVE_LIBXML2
#define NEED_XML() MM_SKIP("no libxml2 in this build")
#else
#define NEED_XML() ((void)0)
#endif

static const char *const sample =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!DOCTYPE plist PUBLIC \"-//Apple Computer//DTD PLIST 1.0//EN\" "
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
    "<plist version=\"1.0\">\n<dict>\n\t<key>Images</key>\n\t<array>\n\t\t<dict>\n"
    "\t\t\t<key>ImageHeight</key><integer>4084</integer>\n"
    "\t\t\t<key>ImageIndex</key>\n\t\t\t<integer>0</integer>\n"
    "\t\t\t<key>NumberOfROIs</key>\n\t\t\t<integer>2</integer>\n"
    "\t\t\t<key>ROIs</key>\n\t\t\t<array>\n"
    "\t\t\t\t<dict>\n\t\t\t\t\t<key>Area</key><real>0.5</real>\n"
    "\t\t\t\t\t<key>Center</key><string>(10, 10, 0)</string>\n"
    "\t\t\t\t\t<key>Name</key>\n\t\t\t\t\t<string>Calcification</string>\n"
    "\t\t\t\t\t<key>NumberOfPoints</key><integer>1</integer>\n"
    "\t\t\t\t\t<key>Point_mm</key><array><string>(1.0, 2.0, 3.0)</string></array>\n"
    "\t\t\t\t\t<key>Point_px</key>\n\t\t\t\t\t<array>\n"
    "\t\t\t\t\t\t<string>(1520.5, 2210.25)</string>\n\t\t\t\t\t</array>\n"
    "\t\t\t\t</dict>\n"
    "\t\t\t\t<dict>\n\t\t\t\t\t<key>Name</key><string> Espiculated Region </string>\n"
    "\t\t\t\t\t<!-- a comment -->\n"
    "\t\t\t\t\t<key>Point_px</key><array><string>(1,2)</string><string> ( 3.5 , -4e1 ) "
    "</string><string>(5, 6)</string></array>\n"
    "\t\t\t\t</dict>\n\t\t\t</array>\n\t\t</dict>\n\t</array>\n</dict>\n</plist>\n";

MM_TEST(plist_parses_inbreast_rois)
{
    NEED_XML();
    mm_xml_rois r;
    CHECK(mm_inbreast_xml_parse(&r, sample, strlen(sample), "20586908.xml") == MM_OK);
    CHECK_EQ_INT(r.n, 2);
    if (r.n != 2) return;
    CHECK(!strcmp(r.rois[0].name, "Calcification"));
    CHECK_EQ_INT(r.rois[0].n_points, 1);
    CHECK_CLOSE(r.rois[0].x[0], 1520.5, 0, 0);
    CHECK_CLOSE(r.rois[0].y[0], 2210.25, 0, 0);
    CHECK(!strcmp(r.rois[1].name, "Espiculated Region"));
    CHECK_EQ_INT(r.rois[1].n_points, 3);
    CHECK_CLOSE(r.rois[1].x[1], 3.5, 0, 0);
    CHECK_CLOSE(r.rois[1].y[1], -40, 0, 0);
    CHECK_EQ_INT(mm_inbreast_lesion_type(r.rois[1].name), MM_ROI_SPICULATED);
    mm_xml_rois_free(&r);
}

MM_TEST(plist_lesion_names)
{
    static const struct {
        const char *name;
        int type;
    } t[] = {
        {"Mass", MM_ROI_MASS},           {"mass ", MM_ROI_MASS},
        {"Calcification", MM_ROI_CALC},  {"Calcifications", MM_ROI_CALC},
        {"Cluster", MM_ROI_CLUSTER},     {"Distortion", MM_ROI_DISTORTION},
        {"Asymmetry", MM_ROI_ASYMMETRY}, {"Assymetry", MM_ROI_ASYMMETRY},
        {"Spiculated Region", MM_ROI_SPICULATED}, {"Espiculated Region", MM_ROI_SPICULATED},
        {"Unknown", -1},                 {"", -1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        CHECK_MSG(mm_inbreast_lesion_type(t[i].name) == t[i].type, "%s", t[i].name);
}

static void expect_error(const char *xml, const char *needle)
{
    mm_xml_rois r;
    mm_status st = mm_inbreast_xml_parse(&r, xml, strlen(xml), "bad.xml");
    CHECK_MSG(st != MM_OK, "accepted bad XML (want '%s')", needle);
    CHECK_MSG(strstr(mm_last_error(), needle) && strstr(mm_last_error(), "bad.xml"),
              "message '%s' lacks '%s'", mm_last_error(), needle);
}

#define WRAP(rois) \
    "<plist><dict><key>Images</key><array><dict><key>ROIs</key><array>" rois \
    "</array></dict></array></dict></plist>"

MM_TEST(plist_errors)
{
    NEED_XML();
    expect_error("", "XML error");
    expect_error("<plist><dict>", "XML error");
    expect_error("\x01\x02garbage", "XML error");
    expect_error("<html/>", "root element is not <plist>");
    expect_error("<plist><array/></plist>", "does not hold a <dict>");
    expect_error("<plist><dict><key>Other</key><array/></dict></plist>", "no <key>Images</key>");
    expect_error(WRAP("<dict><key>Point_px</key><array/></dict>"), "no <key>Name</key>");
    expect_error(WRAP("<dict><key>Name</key><string>Mass</string></dict>"), "no <key>Point_px</key>");
    expect_error(WRAP("<dict><key>Name</key><string>Mass</string><key>Point_px</key><array>"
                      "<string>(1, 2</string></array></dict>"),
                 "Point_px entry 1");
    expect_error(WRAP("<dict><key>Name</key><string>Mass</string><key>Point_px</key><array>"
                      "<string>(nan, 2)</string></array></dict>"),
                 "finite numbers");
    expect_error(WRAP("<dict><key>Name</key><string>Mass</string><key>Point_px</key><array>"
                      "<string>(1e300, 2)</string></array></dict>"),
                 "finite numbers");
    expect_error(WRAP("<dict><key>Name</key><string>Mass</string><key>Point_px</key><array>"
                      "</array></dict>"),
                 "no points");
    expect_error(WRAP("<string/>"), "ROI 1 is not a <dict>");
    /* an image entry without ROIs is fine */
    mm_xml_rois r;
    const char *ok = "<plist><dict><key>Images</key><array><dict><key>ImageIndex</key>"
                     "<integer>0</integer></dict></array></dict></plist>";
    CHECK(mm_inbreast_xml_parse(&r, ok, strlen(ok), "ok.xml") == MM_OK);
    CHECK_EQ_INT(r.n, 0);
    mm_xml_rois_free(&r);
    CHECK(mm_inbreast_xml_read(&r, "/nonexistent/a.xml") == MM_ERR_IO);
}

/* Naive reference: crossing-number test of every pixel centre against every edge. */
static int inside_ref(const double *x, const double *y, int n, double px, double py)
{
    int in = 0;
    for (int i = 0, j = n - 1; i < n; j = i++)
        if ((y[i] > py) != (y[j] > py) && px < (x[j] - x[i]) * (py - y[i]) / (y[j] - y[i]) + x[i])
            in = !in;
    return in;
}

MM_TEST(raster_polygon_matches_naive_reference)
{
    enum { H = 37, W = 29 };
    uint8_t got[H * W], want[H * W];
    uint64_t k = 0;
    for (int trial = 0; trial < 60; trial++) {
        int n = 3 + (int)(mm_philox_u32(11, k++) % 10);
        double x[13], y[13];
        /* vertices spread beyond the frame so clipping is exercised; self-intersections too */
        for (int i = 0; i < n; i++) {
            x[i] = -10 + (W + 20) * mm_philox_uniform(11, k++);
            y[i] = -10 + (H + 20) * mm_philox_uniform(11, k++);
        }
        memset(got, 0, sizeof got);
        int64_t cov = mm_raster_polygon(got, x, y, 255, n, H, W);
        int64_t cnt = 0;
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++) {
                want[r * W + c] = inside_ref(x, y, n, c, r) ? 255 : 0;
                cnt += want[r * W + c] != 0;
            }
        int diff = 0;
        for (int i = 0; i < H * W; i++) diff += got[i] != want[i];
        CHECK_MSG(diff == 0, "trial %d: %d pixels differ", trial, diff);
        CHECK_EQ_INT(cov, cnt);
    }
}

MM_TEST(raster_square_disk_and_point_lesions)
{
    enum { H = 20, W = 16 };
    uint8_t m[H * W];
    /* square with corners on pixel centres: half-open, so rows 2..5 and columns 3..7 */
    double x[4] = {3, 8, 8, 3}, y[4] = {2, 2, 6, 6};
    memset(m, 0, sizeof m);
    CHECK_EQ_INT(mm_raster_polygon(m, x, y, 1, 4, H, W), 4 * 5);
    CHECK_EQ_INT(m[2 * W + 3], 1);
    CHECK_EQ_INT(m[5 * W + 7], 1);
    CHECK_EQ_INT(m[6 * W + 3], 0);
    CHECK_EQ_INT(m[2 * W + 8], 0);
    /* disk of radius 2 at a pixel centre: 13 pixels */
    memset(m, 0, sizeof m);
    CHECK_EQ_INT(mm_raster_disk(m, 5, 5, 2, 1, H, W), 13);
    /* a disk in the corner is clipped, not dropped */
    memset(m, 0, sizeof m);
    CHECK_EQ_INT(mm_raster_disk(m, 0, 0, 2, 1, H, W), 6);
    /* the INbreast rule: one point -> disk; two points -> two disks; a degenerate polygon -> disk */
    double px[3] = {4, 12, 8}, py[3] = {4, 4, 4.0001};
    memset(m, 0, sizeof m);
    CHECK_EQ_INT(mm_raster_roi(m, px, py, 1, 2, 1, H, W), 13);
    memset(m, 0, sizeof m);
    CHECK_EQ_INT(mm_raster_roi(m, px, py, 1, 2, 2, H, W), 26);
    memset(m, 0, sizeof m);
    double tx[3] = {4.1, 12.2, 8.3}, ty[3] = {4.2, 4.25, 4.3}; /* covers no pixel centre */
    CHECK(mm_raster_roi(m, tx, ty, 1, 2, 3, H, W) > 0);
    CHECK_EQ_INT(m[4 * W + 8], 1);
    /* entirely outside the frame: nothing */
    double ox[3] = {-50, -40, -45}, oy[3] = {-5, -5, -1};
    memset(m, 0, sizeof m);
    CHECK_EQ_INT(mm_raster_roi(m, ox, oy, 1, 2, 3, H, W), 0);
}
