/* INbreast ROI annotations: the OsiriX XML property lists in AllXML/<FileName>.xml.
 *
 * Structure (Apple plist 1.0):
 *   <plist><dict>
 *     <key>Images</key><array>
 *       <dict> <key>ImageIndex</key><integer>0</integer> <key>NumberOfROIs</key><integer>n</integer>
 *              <key>ROIs</key><array>
 *                <dict> ... <key>Name</key><string>Mass</string> ...
 *                       <key>Point_px</key><array><string>(1520.5, 2210.25)</string> ...</array>
 *                </dict> ...
 * Point_px entries are "(x, y)" with x the column and y the row, in pixels. Other keys (Area,
 * Center, Dev, IndexInImage, Max, Mean, Min, NumberOfPoints, Point_mm, Total, Type) are skipped.
 * Parsed with libxml2 with network access and entity expansion off; a malformed file is a tier-1
 * error naming it and what is wrong. */
#ifndef MM_PLIST_H
#define MM_PLIST_H

#include <stddef.h>

#include "../runtime/error.h"

typedef struct mm_xml_roi {
    char name[64];   /* the Name string as written (may be a typo: see mm_inbreast_lesion_type) */
    int n_points;
    double *x, *y;   /* [n_points] column, row */
} mm_xml_roi;

typedef struct mm_xml_rois {
    int n;
    mm_xml_roi *rois; /* [n]: the ROIs of every Images entry, in file order */
} mm_xml_rois;

/* Sets up libxml2's global state; call it from one thread before parsing from several (the
 * INbreast indexer's mask jobs). libxml2 otherwise initialises itself on first use, and two
 * threads doing that at once can race: under AddressSanitizer test_dataset's INbreast index
 * failed about one run in five, a mutex of libxml2 leaked. Calling it again does nothing. */
void mm_inbreast_xml_init(void);

mm_status mm_inbreast_xml_parse(mm_xml_rois *out, const char *data, size_t len, const char *name);
mm_status mm_inbreast_xml_read(mm_xml_rois *out, const char *path);
void mm_xml_rois_free(mm_xml_rois *r);

/* Normalised lesion type of an ROI name (mm_roi_type from index.h), matching by case-insensitive
 * prefix and known typos: Mass; Calcification(s) -> calc; Cluster; Distortion; Asymmetry and
 * "Assymetry" -> asymmetry; Spiculated Region and "Espiculated Region" -> spiculated. Returns -1
 * for a name it does not know. */
int mm_inbreast_lesion_type(const char *name);

#endif
