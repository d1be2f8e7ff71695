/* The index file format (write, read, validation) and the seeded patient-level stratified splits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"
#include "tools/index.h"
#include "tools/split.h"

/* A synthetic index: n_pat patients, each with 4 views; patient p is malignant when p % 3 == 0. */
static void make_index(mm_index *idx, int n_pat)
{
    memset(idx, 0, sizeof *idx);
    static const char *const views[2] = {"CC", "MLO"};
    char buf[256];
    for (int p = 0; p < n_pat; p++)
        for (int v = 0; v < 4; v++) {
            mm_index_image *im = mm_index_add(idx);
            snprintf(buf, sizeof buf, "P_%05d_%s_%s", p, v < 2 ? "LEFT" : "RIGHT", views[v & 1]);
            im->image_id = strdup(buf);
            im->dataset = strdup("cbis-ddsm");
            snprintf(buf, sizeof buf, "P_%05d", p);
            im->patient_id = strdup(buf);
            im->side = v < 2 ? 'L' : 'R';
            snprintf(im->view, sizeof im->view, "%s", views[v & 1]);
            im->label = (p % 3 == 0) && v == 0;
            im->height = 40 + v;
            im->width = 30;
            im->density = v == 3 ? 0 : 1 + v;
            snprintf(im->birads, sizeof im->birads, "%d", v);
            snprintf(buf, sizeof buf, "/data/dicom dir/%s, \"x\".dcm", im->image_id);
            im->source = strdup(buf);
            im->image = strdup(buf);
            for (int k = 0; k < v; k++) {
                mm_roi *r = mm_index_add_roi(im);
                r->id = k + 1;
                r->type = k & 1 ? MM_ROI_CALC : MM_ROI_MASS;
                r->pathology = (mm_pathology)(1 + k % 3);
                snprintf(buf, sizeof buf, "masks/%s_%d.png", im->image_id, k);
                r->mask = strdup(buf);
            }
        }
}

static int same_image(const mm_index_image *a, const mm_index_image *b)
{
    if (strcmp(a->image_id, b->image_id) || strcmp(a->dataset, b->dataset) ||
        strcmp(a->patient_id, b->patient_id) || a->side != b->side || strcmp(a->view, b->view) ||
        a->label != b->label || a->split != b->split || a->height != b->height ||
        a->width != b->width || a->density != b->density || strcmp(a->birads, b->birads) ||
        strcmp(a->source, b->source) || strcmp(a->image, b->image) || a->n_rois != b->n_rois)
        return 0;
    for (int k = 0; k < a->n_rois; k++)
        if (a->rois[k].id != b->rois[k].id || a->rois[k].type != b->rois[k].type ||
            a->rois[k].pathology != b->rois[k].pathology || strcmp(a->rois[k].mask, b->rois[k].mask))
            return 0;
    return 1;
}

MM_TEST(index_round_trip)
{
    mm_index idx, back;
    make_index(&idx, 7);
    idx.images[5].split = MM_SPLIT_TRAIN;
    char path[600];
    snprintf(path, sizeof path, "%s/index.csv", mm_test_tmpdir());
    CHECK(mm_index_write(&idx, path) == MM_OK);
    CHECK(mm_index_read(&back, path) == MM_OK);
    CHECK_EQ_INT(back.n, idx.n);
    for (int i = 0; i < idx.n && i < back.n; i++)
        CHECK_MSG(same_image(&idx.images[i], &back.images[i]), "image %d differs", i);
    CHECK(!strcmp(back.dir, mm_test_tmpdir()));
    char p[700];
    CHECK(!strcmp(mm_index_path(p, sizeof p, &back, "masks/a.png") + strlen(mm_test_tmpdir()),
                  "/masks/a.png"));
    CHECK(!strcmp(mm_index_path(p, sizeof p, &back, "/abs/a.png"), "/abs/a.png"));
    mm_index_counts c;
    mm_index_count(&c, &back);
    CHECK_EQ_INT(c.images, 28);
    CHECK_EQ_INT(c.patients, 7);
    CHECK_EQ_INT(c.malignant, 3); /* patients 0, 3, 6 */
    CHECK_EQ_INT(c.benign, 25);
    CHECK_EQ_INT(c.rois, 7 * (0 + 1 + 2 + 3));
    mm_index_free(&back);
    mm_index_free(&idx);
}

MM_TEST(index_classes_and_names)
{
    mm_roi r = {.type = MM_ROI_CALC, .pathology = MM_PATH_BENIGN_WITHOUT_CALLBACK};
    CHECK_EQ_INT(mm_roi_class(&r), MM_CLASS_CALC_BENIGN);
    r.pathology = MM_PATH_MALIGNANT;
    CHECK_EQ_INT(mm_roi_class(&r), MM_CLASS_CALC_MALIGNANT);
    r.type = MM_ROI_MASS;
    CHECK_EQ_INT(mm_roi_class(&r), MM_CLASS_MASS_MALIGNANT);
    r.pathology = MM_PATH_BENIGN;
    CHECK_EQ_INT(mm_roi_class(&r), MM_CLASS_MASS_BENIGN);
    r.pathology = MM_PATH_UNKNOWN;
    CHECK_EQ_INT(mm_roi_class(&r), -1);
    r.type = MM_ROI_DISTORTION;
    r.pathology = MM_PATH_MALIGNANT;
    CHECK_EQ_INT(mm_roi_class(&r), -1);
    CHECK(!strcmp(mm_patch_class_name(MM_CLASS_BACKGROUND), "background"));
    CHECK(!strcmp(mm_patch_class_name(MM_CLASS_MASS_MALIGNANT), "mass_mal"));
}

/* Writes text to <tmp>/name and returns the path. */
static const char *write_file(const char *name, const char *text)
{
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", mm_test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    return path;
}

#define HEADER "image_id,dataset,patient_id,side,view,label,split,height,width,density,birads," \
               "source,image,n_rois,roi_ids,roi_types,roi_pathologies,roi_masks\n"

static void expect_error(const char *text, const char *needle)
{
    mm_index idx;
    const char *path = write_file("bad.csv", text);
    mm_status st = mm_index_read(&idx, path);
    CHECK_MSG(st != MM_OK, "accepted a bad index (want '%s')", needle);
    CHECK_MSG(strstr(mm_last_error(), needle) != NULL, "message '%s' lacks '%s'", mm_last_error(),
              needle);
    CHECK_MSG(strstr(mm_last_error(), "bad.csv") != NULL, "message '%s' lacks the file",
              mm_last_error());
}

MM_TEST(index_reader_rejects_bad_files)
{
    const char *good = "a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s.dcm,a.dcm,2,1|2,mass|calc,"
                       "MALIGNANT|BENIGN,m1.dcm|m2.dcm\n";
    mm_index idx;
    char text[2048];
    snprintf(text, sizeof text, HEADER "%s", good);
    CHECK(mm_index_read(&idx, write_file("good.csv", text)) == MM_OK);
    CHECK_EQ_INT(idx.n, 1);
    CHECK_EQ_INT(idx.images[0].n_rois, 2);
    CHECK(!strcmp(idx.images[0].rois[1].mask, "m2.dcm"));
    mm_index_free(&idx);

    /* a CBIS description CSV passed as an index */
    expect_error("patient_id,breast_density,left or right breast\nP_1,3,LEFT\n",
                 "column 1 is 'patient_id' where the index format has 'image_id'");
    expect_error("image_id,dataset\nx,y\n", "column 3 should be 'patient_id'");
    snprintf(text, sizeof text, "%.*s,extra\n", (int)strlen(HEADER) - 1, HEADER);
    expect_error(text, "extra column 'extra'");
    static const struct {
        const char *row, *needle;
    } bad[] = {
        {"a,cbis-ddsm,P1,X,CC,1,train,10,8,,4,s,a.dcm,0,,,,\n", "line 2: column side"},
        {"a,cbis-ddsm,P1,L,ML,1,train,10,8,,4,s,a.dcm,0,,,,\n", "column view"},
        {"a,cbis-ddsm,P1,L,CC,2,train,10,8,,4,s,a.dcm,0,,,,\n", "column label"},
        {"a,cbis-ddsm,P1,L,CC,1,dev,10,8,,4,s,a.dcm,0,,,,\n", "column split"},
        {"a,cbis-ddsm,P1,L,CC,1,train,0,8,,4,s,a.dcm,0,,,,\n", "column height"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,x,,4,s,a.dcm,0,,,,\n", "column width"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,8,5,4,s,a.dcm,0,,,,\n", "column density"},
        {"a,other,P1,L,CC,1,train,10,8,,4,s,a.dcm,0,,,,\n", "column dataset"},
        {"a,cbis-ddsm,,L,CC,1,train,10,8,,4,s,a.dcm,0,,,,\n", "column patient_id"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,,0,,,,\n", "column image"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,a.dcm,1,1|2,mass,BENIGN,m\n", "column roi_ids"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,a.dcm,1,1,tumor,BENIGN,m\n", "column roi_types"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,a.dcm,1,1,mass,benign,m\n", "roi_pathologies"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,a.dcm,1,1,mass,BENIGN,\n", "column roi_masks"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,a.dcm,-1,,,,\n", "column n_rois"},
        {"a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,a.dcm,0,,,\n", "fields where the header has"},
        {"a/b,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,a.dcm,0,,,,\n", "column image_id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, HEADER "%s", bad[i].row);
        expect_error(text, bad[i].needle);
    }
    snprintf(text, sizeof text, HEADER "%s%s", good, good);
    expect_error(text, "image_id a appears twice");
    snprintf(text, sizeof text,
             HEADER "a,cbis-ddsm,P1,L,CC,1,train,10,8,,4,s,a.dcm,0,,,,\n"
                    "b,cbis-ddsm,P1,L,MLO,1,test,10,8,,4,s,b.dcm,0,,,,\n");
    expect_error(text, "patient P1 has images in both the train and the test split");
    CHECK(mm_index_read(&idx, "/nonexistent/index.csv") == MM_ERR_IO);
}

MM_TEST(index_writer_refuses_bar_in_mask_path)
{
    mm_index idx;
    make_index(&idx, 1);
    free(idx.images[3].rois[0].mask);
    idx.images[3].rois[0].mask = strdup("a|b.png");
    char path[600];
    snprintf(path, sizeof path, "%s/index.csv", mm_test_tmpdir());
    CHECK(mm_index_write(&idx, path) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "a|b.png") != NULL);
    FILE *f = fopen(path, "rb");
    CHECK(f == NULL); /* nothing written */
    if (f) fclose(f);
    mm_index_free(&idx);
}

MM_TEST(rstream_below_is_unbiased_and_shuffle_is_a_permutation)
{
    mm_rstream r;
    mm_rstream_init(&r, 5, 0);
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) hist[mm_rstream_below(&r, 7)]++;
    for (int k = 0; k < 7; k++) CHECK_CLOSE(hist[k], 10000, 400, 0);
    int perm[100], seen[100] = {0};
    for (int i = 0; i < 100; i++) perm[i] = i;
    mm_rstream_shuffle(&r, perm, 100);
    int moved = 0;
    for (int i = 0; i < 100; i++) {
        seen[perm[i]]++;
        moved += perm[i] != i;
    }
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(seen[i], 1);
    CHECK(moved > 80);
    double s = 0;
    for (int i = 0; i < 10000; i++) {
        double u = mm_rstream_uniform(&r);
        CHECK(u >= 0 && u < 1);
        s += u;
    }
    CHECK_CLOSE(s / 10000, 0.5, 0.02, 0);
}

MM_TEST(split_stratified_counts)
{
    enum { N = 203 };
    int strata[N], chosen[N], chosen2[N];
    int n1 = 0;
    for (int i = 0; i < N; i++) n1 += strata[i] = (i % 5 == 0); /* 41 positives, 162 negatives */
    mm_split_stratified(chosen, strata, N, 2, 0.15, 123, 1);
    int tot = 0, pos = 0;
    for (int i = 0; i < N; i++) {
        tot += chosen[i];
        pos += chosen[i] && strata[i];
    }
    CHECK_EQ_INT(tot, 30);               /* round(203 * 0.15) = round(30.45) */
    CHECK(pos == 6 || pos == 7);         /* 41 * 0.15 = 6.15 */
    CHECK(tot - pos == 24 || tot - pos == 25); /* 162 * 0.15 = 24.3 */
    /* deterministic in the seed, different for another seed */
    mm_split_stratified(chosen2, strata, N, 2, 0.15, 123, 1);
    CHECK(!memcmp(chosen, chosen2, sizeof chosen));
    mm_split_stratified(chosen2, strata, N, 2, 0.15, 124, 1);
    CHECK(memcmp(chosen, chosen2, sizeof chosen) != 0);
}

MM_TEST(split_index_by_patient)
{
    mm_index idx;
    make_index(&idx, 90); /* 30 malignant patients, 60 benign */
    mm_index_split_patients(&idx, 0.15, MM_SPLIT_TEST, 0.10, 0, 2017);
    mm_index_counts c;
    mm_index_count(&c, &idx);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_TEST], 14); /* round(13.5) */
    /* 76 patients left, 10% = 7.6 -> 8 */
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_VAL], 8);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_TRAIN], 68);
    /* stratification: malignant patients in test = 30 * 0.15 = 4.5 -> 4 or 5 */
    int mal_test = 0;
    for (int i = 0; i < idx.n; i++)
        mal_test += idx.images[i].label == 1 && idx.images[i].split == MM_SPLIT_TEST;
    CHECK(mal_test == 4 || mal_test == 5);
    /* every patient in one split: the reader's consistency check agrees */
    char path[600];
    snprintf(path, sizeof path, "%s/index.csv", mm_test_tmpdir());
    CHECK(mm_index_write(&idx, path) == MM_OK);
    mm_index back;
    CHECK(mm_index_read(&back, path) == MM_OK);
    mm_index_free(&back);
    /* the split does not depend on the order of the images */
    mm_index idx2;
    make_index(&idx2, 90);
    for (int i = 0; i < idx2.n / 2; i++) {
        mm_index_image t = idx2.images[i];
        idx2.images[i] = idx2.images[idx2.n - 1 - i];
        idx2.images[idx2.n - 1 - i] = t;
    }
    mm_index_split_patients(&idx2, 0.15, MM_SPLIT_TEST, 0.10, 0, 2017);
    mm_index_sort(&idx);
    mm_index_sort(&idx2);
    int same = 1;
    for (int i = 0; i < idx.n; i++) same &= idx.images[i].split == idx2.images[i].split;
    CHECK(same);
    mm_index_free(&idx2);
    mm_index_free(&idx);
}

MM_TEST(split_keep_official_test)
{
    mm_index idx;
    make_index(&idx, 40);
    for (int i = 0; i < idx.n; i++)
        idx.images[i].split = (i / 4) % 4 == 1 ? MM_SPLIT_TEST : MM_SPLIT_TRAIN;
    mm_index_split_patients(&idx, 0, MM_SPLIT_TEST, 0.10, 1, 1);
    mm_index_counts c;
    mm_index_count(&c, &idx);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_TEST], 10);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_VAL], 3);
    for (int i = 0; i < idx.n; i++)
        CHECK_EQ_INT(idx.images[i].split == MM_SPLIT_TEST, (i / 4) % 4 == 1);
    mm_index_free(&idx);
}

MM_TEST(subset_train_patients_is_nested_and_stratified)
{
    mm_index a, b;
    make_index(&a, 100);
    mm_index_split_patients(&a, 0.3, MM_SPLIT_VAL, 0, 0, 9);
    make_index(&b, 100);
    mm_index_split_patients(&b, 0.3, MM_SPLIT_VAL, 0, 0, 9);
    mm_index_counts c0;
    mm_index_count(&c0, &a);
    CHECK_EQ_INT(c0.split_patients[MM_SPLIT_VAL], 30);
    CHECK_EQ_INT(c0.split_patients[MM_SPLIT_TRAIN], 70);
    CHECK(mm_index_subset_train(&a, 20, 9) == MM_OK);
    CHECK(mm_index_subset_train(&b, 40, 9) == MM_OK);
    mm_index_counts ca, cb;
    mm_index_count(&ca, &a);
    mm_index_count(&cb, &b);
    CHECK_EQ_INT(ca.split_patients[MM_SPLIT_TRAIN], 20);
    CHECK_EQ_INT(ca.split_patients[MM_SPLIT_VAL], 30);
    CHECK_EQ_INT(cb.split_patients[MM_SPLIT_TRAIN], 40);
    CHECK_EQ_INT(ca.split_images[MM_SPLIT_VAL], 120);
    /* nested: every training patient of the 20-subset is in the 40-subset */
    int nested = 1, mal = 0;
    for (int i = 0; i < a.n; i++) {
        if (a.images[i].split != MM_SPLIT_TRAIN) continue;
        int found = 0;
        for (int j = 0; j < b.n && !found; j++)
            found = b.images[j].split == MM_SPLIT_TRAIN &&
                    !strcmp(a.images[i].patient_id, b.images[j].patient_id);
        nested &= found;
        mal += a.images[i].label;
    }
    CHECK(nested);
    /* 34 of 100 patients are malignant: a 20-patient stratified subset has 6 or 7 */
    CHECK_MSG(mal == 6 || mal == 7, "malignant patients in the subset: %d", mal);
    CHECK(mm_index_subset_train(&a, 21, 9) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "--subset-patients") != NULL);
    mm_index_free(&a);
    mm_index_free(&b);
}
