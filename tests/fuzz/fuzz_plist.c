/* libFuzzer target for the INbreast OsiriX plist reader (tools/plist.h) and the ROI rasteriser
 * (tools/raster.h); built and run by tests/fuzz/run.sh. Any input must parse or give a tier-1
 * error naming the file, never crash; every ROI that parses is rasterised into a small frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/plist.h"
#include "tools/raster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_xml_rois r;
    if (mm_inbreast_xml_parse(&r, (const char *)data, size, "fuzz.xml") != MM_OK) {
        if (!strstr(mm_last_error(), "fuzz.xml")) abort();
        return 0;
    }
    enum { H = 48, W = 40 };
    static uint8_t mask[H * W];
    for (int i = 0; i < r.n; i++) {
        memset(mask, 0, sizeof mask);
        int64_t n = mm_raster_roi(mask, r.rois[i].x, r.rois[i].y, 1, 3, r.rois[i].n_points, H, W);
        int64_t count = 0;
        for (int k = 0; k < H * W; k++) count += mask[k];
        if (n < 0 || count > n) abort(); /* covered counts every pixel set (some twice) */
        (void)mm_inbreast_lesion_type(r.rois[i].name);
    }
    mm_xml_rois_free(&r);
    return 0;
}
