/* Tests of train/metrics: AUC against a naive pair count, the ROC curve against direct threshold
 * counts, the bootstrap interval against the Hanley-McNeil standard error and the expected number
 * of single-class resamples, threshold metrics and confusion matrices by hand. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/philox.h"
#include "../train/metrics.h"
#include "harness.h"

/* P(positive above negative) + 1/2 P(tie), by looking at every pair. */
static double naive_auc(const double *s, const int *y, int64_t n)
{
    double num = 0, pairs = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            if (y[i] == 1 && y[j] == 0) {
                pairs += 1;
                num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            }
    return num / pairs;
}

/* Random labels (about `prev` positive) and scores with ties: `levels` distinct values, shifted
 * up by `signal` levels for positives. */
static void make_data(double *s, int *y, int64_t n, uint64_t seed, int levels, double prev,
                      int signal)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = mm_philox_uniform(seed, 2 * (uint64_t)i) < prev;
        int v = (int)(mm_philox_uniform(seed, 2 * (uint64_t)i + 1) * levels) + (y[i] ? signal : 0);
        s[i] = v / (double)(levels + signal);
    }
}

/* A standard normal from two uniforms (Box-Muller). */
static double normal(uint64_t seed, uint64_t i)
{
    double u1 = (mm_philox_u32(seed, 2 * i) + 1.0) / 4294967297.0;
    double u2 = mm_philox_uniform(seed, 2 * i + 1);
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

MM_TEST(auc_matches_naive_pair_count_with_ties)
{
    enum { MAXN = 400 };
    double s[MAXN];
    int y[MAXN];
    const int64_t sizes[] = {2, 3, 7, 50, 151, 400};
    const int levels[] = {1, 2, 5, 20, 1000000};
    int trial = 0;
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof levels / sizeof *levels; b++) {
            int64_t n = sizes[a];
            uint64_t seed = 100 + (uint64_t)trial++;
            make_data(s, y, n, seed, levels[b], 0.4, (int)(b % 3));
            int64_t p = 0;
            for (int64_t i = 0; i < n; i++) p += y[i];
            if (p == 0) y[0] = 1;
            if (p == n) y[0] = 0;
            double auc = -1;
            CHECK(mm_auc(&auc, s, y, n) == MM_OK);
            CHECK_CLOSE(auc, naive_auc(s, y, n), 1e-12, 0);
            mm_roc_point *r = NULL;
            int64_t m = 0;
            CHECK(mm_roc_curve(&r, &m, s, y, n) == MM_OK);
            CHECK_CLOSE(mm_roc_area(r, m), auc, 1e-12, 0);
            free(r);
        }
}

MM_TEST(auc_perfect_inverted_constant_random)
{
    enum { N = 20000 };
    double *s = malloc(N * sizeof *s);
    int *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) {
        y[i] = i % 3 == 0;
        s[i] = y[i] ? 0.6 + 0.4 * mm_philox_uniform(1, (uint64_t)i)
                    : 0.5 * mm_philox_uniform(2, (uint64_t)i);
    }
    double auc;
    CHECK(mm_auc(&auc, s, y, N) == MM_OK);
    CHECK_CLOSE(auc, 1.0, 0, 0);
    for (int i = 0; i < N; i++) s[i] = 1 - s[i];
    CHECK(mm_auc(&auc, s, y, N) == MM_OK);
    CHECK_CLOSE(auc, 0.0, 0, 0);
    for (int i = 0; i < N; i++) s[i] = 0.3;
    CHECK(mm_auc(&auc, s, y, N) == MM_OK);
    CHECK_CLOSE(auc, 0.5, 0, 0);
    /* Scores independent of the labels: AUC near 1/2 (its standard error here is about 0.004). */
    for (int i = 0; i < N; i++) s[i] = mm_philox_uniform(3, (uint64_t)i);
    CHECK(mm_auc(&auc, s, y, N) == MM_OK);
    CHECK_CLOSE(auc, 0.5, 0.02, 0);
    free(s);
    free(y);
}

MM_TEST(auc_errors_one_class_and_nan)
{
    double s[4] = {0.1, 0.2, 0.3, 0.4};
    int ones[4] = {1, 1, 1, 1}, zeros[4] = {0, 0, 0, 0}, y[4] = {0, 1, 0, 1};
    double auc;
    CHECK(mm_auc(&auc, s, ones, 4) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "both classes") != NULL);
    CHECK(mm_auc(&auc, s, zeros, 4) == MM_ERR_ARG);
    CHECK(mm_auc(&auc, s, y, 0) == MM_ERR_ARG);
    s[2] = NAN;
    CHECK(mm_auc(&auc, s, y, 4) == MM_ERR_NUMERIC);
    mm_roc_point *r;
    int64_t m;
    CHECK(mm_roc_curve(&r, &m, s, y, 4) == MM_ERR_NUMERIC);
    mm_auc_ci ci;
    s[2] = 0.3;
    CHECK(mm_auc_bootstrap(&ci, s, y, 4, 0, 0.95, 1) == MM_ERR_ARG);
    CHECK(mm_auc_bootstrap(&ci, s, y, 4, 10, 1.0, 1) == MM_ERR_ARG);
    CHECK(mm_auc_bootstrap(&ci, s, ones, 4, 10, 0.95, 1) == MM_ERR_ARG);
}

MM_TEST(roc_points_monotone_and_match_threshold_counts)
{
    enum { N = 300 };
    double s[N];
    int y[N];
    make_data(s, y, N, 77, 25, 0.3, 4);
    mm_roc_point *r;
    int64_t m;
    CHECK(mm_roc_curve(&r, &m, s, y, N) == MM_OK);
    /* Distinct scores + 1 points. */
    double sorted[N];
    memcpy(sorted, s, sizeof sorted);
    int64_t distinct = 0;
    for (int i = 0; i < N; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= s[j] == s[i];
        distinct += !seen;
    }
    CHECK_EQ_INT(m, distinct + 1);
    CHECK(r[0].fpr == 0 && r[0].tpr == 0 && isinf(r[0].threshold) && r[0].threshold > 0);
    CHECK(r[m - 1].fpr == 1 && r[m - 1].tpr == 1);
    for (int64_t i = 1; i < m; i++) {
        CHECK(r[i].fpr >= r[i - 1].fpr && r[i].tpr >= r[i - 1].tpr);
        CHECK(r[i].threshold < r[i - 1].threshold);
        /* Each point is what calling score >= threshold positive gives. */
        mm_threshold_metrics t;
        mm_threshold_metrics_compute(&t, s, y, N, r[i].threshold);
        CHECK_CLOSE(r[i].tpr, t.sensitivity, 1e-15, 0);
        CHECK_CLOSE(r[i].fpr, 1 - t.specificity, 1e-15, 0);
    }
    free(r);
}

MM_TEST(roc_small_by_hand)
{
    /* scores 0.9(+) 0.8(-) 0.8(+) 0.3(-): thresholds inf, 0.9, 0.8, 0.3. */
    double s[4] = {0.8, 0.9, 0.3, 0.8};
    int y[4] = {0, 1, 0, 1};
    mm_roc_point *r;
    int64_t m;
    CHECK(mm_roc_curve(&r, &m, s, y, 4) == MM_OK);
    CHECK_EQ_INT(m, 4);
    double want[4][3] = {{0, 0, 0}, {0, 0.5, 0.9}, {0.5, 1, 0.8}, {1, 1, 0.3}};
    for (int i = 0; i < 4; i++) {
        CHECK_CLOSE(r[i].fpr, want[i][0], 0, 0);
        CHECK_CLOSE(r[i].tpr, want[i][1], 0, 0);
        if (i) CHECK_CLOSE(r[i].threshold, want[i][2], 0, 0);
    }
    double auc;
    CHECK(mm_auc(&auc, s, y, 4) == MM_OK);
    CHECK_CLOSE(auc, 0.875, 1e-15, 0); /* pairs: (0.9>0.8, 0.9>0.3, 0.8=0.8, 0.8>0.3) = 3.5/4 */
    free(r);
}

MM_TEST(threshold_metrics_by_hand)
{
    double s[8] = {0.9, 0.7, 0.5, 0.2, 0.6, 0.4, 0.1, 0.5};
    int y[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    mm_threshold_metrics t;
    mm_threshold_metrics_compute(&t, s, y, 8, 0.5);
    /* positives called (>= 0.5): 0.9 0.7 0.5 -> tp 3, fn 1; negatives called: 0.6 0.5 -> fp 2. */
    CHECK_EQ_INT(t.tp, 3);
    CHECK_EQ_INT(t.fn, 1);
    CHECK_EQ_INT(t.fp, 2);
    CHECK_EQ_INT(t.tn, 2);
    CHECK_CLOSE(t.sensitivity, 0.75, 1e-15, 0);
    CHECK_CLOSE(t.specificity, 0.5, 1e-15, 0);
    CHECK_CLOSE(t.accuracy, 5.0 / 8, 1e-15, 0);
    mm_threshold_metrics_compute(&t, s, y, 4, 0.8);
    CHECK_CLOSE(t.sensitivity, 0.25, 1e-15, 0);
    CHECK(isnan(t.specificity));
    mm_threshold_metrics_compute(&t, s, y, 0, 0.5);
    CHECK(isnan(t.accuracy));
}

/* Hanley & McNeil (1982) standard error of the AUC. */
static double hanley_mcneil_se(double a, double p, double q)
{
    double q1 = a / (2 - a), q2 = 2 * a * a / (1 + a);
    return sqrt((a * (1 - a) + (p - 1) * (q1 - a * a) + (q - 1) * (q2 - a * a)) / (p * q));
}

static void binormal(double *s, int *y, int64_t n, uint64_t seed, double shift)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = i % 2;
        s[i] = 1 / (1 + exp(-(normal(seed, (uint64_t)i) + (y[i] ? shift : 0))));
    }
}

MM_TEST(bootstrap_contains_estimate_matches_se_and_narrows)
{
    enum { BIG = 2000 };
    double *s = malloc(BIG * sizeof *s);
    int *y = malloc(BIG * sizeof *y);
    double width[2];
    const int64_t ns[2] = {100, BIG};
    for (int k = 0; k < 2; k++) {
        binormal(s, y, ns[k], 5, 1.2);
        mm_auc_ci ci;
        CHECK(mm_auc_bootstrap(&ci, s, y, ns[k], 2000, 0.95, 42) == MM_OK);
        double auc;
        CHECK(mm_auc(&auc, s, y, ns[k]) == MM_OK);
        CHECK_CLOSE(ci.auc, auc, 0, 0);
        CHECK(ci.lo < auc && auc < ci.hi);
        CHECK_EQ_INT(ci.used + ci.skipped, 2000);
        CHECK_EQ_INT(ci.skipped, 0);
        width[k] = ci.hi - ci.lo;
        /* A 95% normal interval is 2 * 1.96 SE wide; the percentile bootstrap agrees within
         * sampling noise of the 2000 resamples and of the approximation itself. */
        double want = 2 * 1.96 * hanley_mcneil_se(auc, (double)ns[k] / 2, (double)ns[k] / 2);
        CHECK_CLOSE(width[k], want, 0, 0.2);
        /* Same seed, same interval; another seed, another one. */
        mm_auc_ci again, other;
        CHECK(mm_auc_bootstrap(&again, s, y, ns[k], 2000, 0.95, 42) == MM_OK);
        CHECK(again.lo == ci.lo && again.hi == ci.hi);
        CHECK(mm_auc_bootstrap(&other, s, y, ns[k], 2000, 0.95, 43) == MM_OK);
        CHECK(other.lo != ci.lo || other.hi != ci.hi);
        /* A 50% interval lies inside the 95% one. */
        mm_auc_ci half;
        CHECK(mm_auc_bootstrap(&half, s, y, ns[k], 2000, 0.5, 42) == MM_OK);
        CHECK(half.lo >= ci.lo && half.hi <= ci.hi && half.hi - half.lo < width[k] / 2);
    }
    CHECK(width[1] < width[0] / 3); /* sqrt(20) = 4.5 times narrower in theory */
    free(s);
    free(y);
}

MM_TEST(bootstrap_skips_and_counts_single_class_resamples)
{
    /* 1 positive among 4: a resample misses it with probability (3/4)^4 and draws only it
     * with probability (1/4)^4; those resamples are skipped. */
    double s[4] = {0.9, 0.1, 0.4, 0.3};
    int y[4] = {1, 0, 0, 0};
    const int R = 4000;
    mm_auc_ci ci;
    CHECK(mm_auc_bootstrap(&ci, s, y, 4, R, 0.95, 9) == MM_OK);
    double p = pow(0.75, 4) + pow(0.25, 4), mean = R * p, sd = sqrt(R * p * (1 - p));
    CHECK_MSG(fabs(ci.skipped - mean) < 4 * sd, "skipped %d, expected %.0f +- %.0f", ci.skipped,
              mean, sd);
    CHECK_EQ_INT(ci.used + ci.skipped, R);
    /* The positive always outranks every negative, so every used resample has AUC 1. */
    CHECK(ci.lo == 1 && ci.hi == 1 && ci.auc == 1);
    /* Two images, one of each: half the resamples have a single class. */
    double s2[2] = {0.2, 0.8};
    int y2[2] = {0, 1};
    CHECK(mm_auc_bootstrap(&ci, s2, y2, 2, R, 0.95, 3) == MM_OK);
    CHECK(fabs(ci.skipped - R / 2.0) < 4 * sqrt(R / 4.0));
}

MM_TEST(multiclass_accuracy_and_confusion)
{
    /* 6 rows of 3 classes. */
    float sc[6 * 3] = {
        0.7f, 0.2f, 0.1f, /* -> 0 */
        0.1f, 0.8f, 0.1f, /* -> 1 */
        0.3f, 0.3f, 0.4f, /* -> 2 */
        0.5f, 0.5f, 0.0f, /* tie -> first, 0 */
        0.0f, 0.1f, 0.9f, /* -> 2 */
        0.2f, 0.6f, 0.2f, /* -> 1 */
    };
    int y[6] = {0, 1, 1, 1, 2, 0};
    CHECK_CLOSE(mm_accuracy_multiclass(sc, y, 6, 3), 3.0 / 6, 1e-15, 0);
    int64_t cm[9] = {0};
    mm_confusion_add(cm, sc, y, 3, 3);
    mm_confusion_add(cm, sc + 9, y + 3, 3, 3);
    int64_t want[9] = {1, 1, 0, /* true 0 */ 1, 1, 1, /* true 1 */ 0, 0, 1 /* true 2 */};
    for (int i = 0; i < 9; i++) CHECK_EQ_INT(cm[i], want[i]);
    CHECK_CLOSE(mm_confusion_accuracy(cm, 3), 0.5, 1e-15, 0);
    float nanrow[3] = {NAN, 0.1f, 0.2f};
    CHECK_EQ_INT(mm_argmax(nanrow, 3), 2);
    int64_t empty[4] = {0};
    CHECK(isnan(mm_confusion_accuracy(empty, 2)));
    const char *names[3] = {"background", "calc-benign", "mass"};
    FILE *f = tmpfile();
    mm_confusion_fprint(f, cm, 3, names);
    rewind(f);
    char text[2048];
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = 0;
    fclose(f);
    CHECK(strstr(text, "calc-benign") && strstr(text, "accuracy 0.5000"));
    CHECK(strstr(text, "0.3333") != NULL); /* recall of class 1: 1 of 3 */
}

MM_TEST(scores_list_grows)
{
    mm_scores sc;
    mm_scores_init(&sc);
    for (int i = 0; i < 1000; i++) mm_scores_push(&sc, i / 1000.0, i >= 500);
    CHECK_EQ_INT(sc.n, 1000);
    double auc;
    CHECK(mm_auc(&auc, sc.score, sc.label, sc.n) == MM_OK);
    CHECK_CLOSE(auc, 1, 0, 0);
    mm_scores_clear(&sc);
    CHECK_EQ_INT(sc.n, 0);
    mm_scores_free(&sc);
}

/* ---- predictions CSV ---- */

#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../train/evaluate.h"
#include "../train/predictions.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

/* Runs the built mammo binary with `args`; stdout and stderr go to *out (malloc'd). Returns the
 * exit status. */
static int run_mammo(const char *args, char **out)
{
    char log[600], cmd[4096];
    snprintf(log, sizeof log, "%s/cmd-output.txt", mm_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s > '%s' 2>&1", MM_MAMMO_EXE, args, log);
    int st = system(cmd);
    *out = read_text(log);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

MM_TEST(predictions_write_read_roundtrip)
{
    const char *names[2] = {"1", "b,2"};
    mm_predictions p, q;
    mm_predictions_init(&p, 2, names);
    double ms[2] = {0.25, 0.125};
    mm_predictions_add(&p, "a.png", 1, 0.875, ms);
    mm_predictions_add(&p, "dir/with,comma.png", 0, 0.1, ms);
    mm_predictions_add(&p, "quote\"and\nnewline.png", -1, 1.0 / 3, ms);
    mm_predictions_add(&p, "z.png", 0, 0.0f + 1e-7, ms);
    char path[600];
    snprintf(path, sizeof path, "%s/pred.csv", mm_test_tmpdir());
    CHECK(mm_predictions_write(&p, path) == MM_OK);
    char *text = read_text(path);
    CHECK(text && !strncmp(text, "image,label,score,score_1,\"score_b,2\"\n", 38));
    free(text);
    CHECK(mm_predictions_read(&q, path) == MM_OK);
    CHECK_EQ_INT(q.n, 4);
    CHECK_EQ_INT(q.n_models, 2);
    CHECK(!strcmp(q.model_name[1], "b,2"));
    for (int64_t i = 0; i < p.n && i < q.n; i++) {
        CHECK(!strcmp(p.image[i], q.image[i]));
        CHECK_EQ_INT(p.label[i], q.label[i]);
        CHECK((float)p.score[i] == (float)q.score[i]); /* 9 digits: a float round-trips */
        for (int m = 0; m < 2; m++)
            CHECK_CLOSE(q.model_score[i * 2 + m], ms[m], 0, 0);
    }
    double *s;
    int *y;
    int64_t n;
    mm_predictions_labelled(&s, &y, &n, &q, 1);
    CHECK_EQ_INT(n, 3);
    CHECK(y[0] == 1 && y[1] == 0 && y[2] == 0 && s[0] == 0.125);
    free(s);
    free(y);
    mm_predictions_free(&p);
    mm_predictions_free(&q);
}

MM_TEST(predictions_reader_accepts_bom_crlf_any_order_extra_columns)
{
    char path[600];
    snprintf(path, sizeof path, "%s/p.csv", mm_test_tmpdir());
    write_file(path, "\xEF\xBB\xBFpatient,score,label,image\r\nP1, 0.5 ,1,a.png\r\n\r\n"
                     "P2,0.25,,\"b \"\"x\"\".png\"\r\n");
    mm_predictions p;
    CHECK(mm_predictions_read(&p, path) == MM_OK);
    CHECK_EQ_INT(p.n, 2);
    CHECK_EQ_INT(p.n_models, 0);
    if (p.n == 2) {
        CHECK(!strcmp(p.image[1], "b \"x\".png"));
        CHECK(p.label[1] == MM_LABEL_UNKNOWN && p.label[0] == 1);
        CHECK(p.score[0] == 0.5 && p.score[1] == 0.25);
    }
    mm_predictions_free(&p);
}

MM_TEST(predictions_reader_errors)
{
    struct {
        const char *text, *want;
    } cases[] = {
        {"", "empty file"},
        {"image,label,score\n", "no rows"},
        {"image,label,prob\na.png,1,0.5\n", "no 'score' column"},
        {"name,label,score\na.png,1,0.5\n", "no 'image' column"},
        {"image,score\na.png,0.5\n", "no 'label' column"},
        {"image,label,score\na.png,1\n", "line 2: 2 fields, but the header has 3"},
        {"image,label,score\na.png,1,0.5\nb.png,0,high\n", "line 3: score 'high' is not a number"},
        {"image,label,score\na.png,1,nan\n", "score 'nan' is not a number"},
        {"image,label,score\na.png,1,1.5\n", "not a probability in [0, 1]"},
        {"image,label,score\na.png,2,0.5\n", "label '2' is not 0, 1 or -1"},
        {"image,label,score\na.png,1,0.5\na.png,0,0.2\n", "'a.png' appears more than once"},
        {"image,label,score\n\"a.png,1,0.5\n", "line 2: a quoted field is not closed"},
        {"image,label,score\n\"a\"x,1,0.5\n", "text after a closing quote"},
        {"image,label,score\n,1,0.5\n", "empty image path"},
        {"image,label,score,score_1\na.png,1,0.5,x\n", "score_1 'x' is not a number"},
    };
    char path[600];
    snprintf(path, sizeof path, "%s/bad.csv", mm_test_tmpdir());
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_file(path, cases[i].text);
        mm_predictions p;
        mm_status st = mm_predictions_read(&p, path);
        CHECK_MSG(st == MM_ERR_FORMAT, "case %zu: status %d", i, (int)st);
        CHECK_MSG(strstr(mm_last_error(), cases[i].want) && strstr(mm_last_error(), path),
                  "case %zu: message '%s' lacks '%s'", i, mm_last_error(), cases[i].want);
        mm_predictions_free(&p);
    }
    mm_predictions p;
    snprintf(path, sizeof path, "%s/missing.csv", mm_test_tmpdir());
    CHECK(mm_predictions_read(&p, path) == MM_ERR_IO);
    CHECK(strstr(mm_last_error(), "missing.csv") != NULL);
    mm_predictions_free(&p);
}

/* A predictions file of n images with signal, written through the library's writer; returns
 * the exact AUC computed here. */
static double make_predictions_file(const char *path, int64_t n, uint64_t seed, int unlabelled)
{
    double *s = malloc((size_t)n * sizeof *s);
    int *y = malloc((size_t)n * sizeof *y);
    make_data(s, y, n, seed, 40, 0.35, 12);
    mm_predictions p;
    const char *names[1] = {"1"};
    mm_predictions_init(&p, 1, names);
    for (int64_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "img_%03lld.png", (long long)i);
        double ms = s[i] * 0.9;
        mm_predictions_add(&p, name, y[i], s[i], &ms);
    }
    for (int i = 0; i < unlabelled; i++) {
        char name[64];
        double ms = 0.5;
        snprintf(name, sizeof name, "unlabelled_%d.png", i);
        mm_predictions_add(&p, name, -1, 0.5, &ms);
    }
    CHECK(mm_predictions_write(&p, path) == MM_OK);
    mm_predictions_free(&p);
    double auc = NAN;
    CHECK(mm_auc(&auc, s, y, n) == MM_OK);
    free(s);
    free(y);
    return auc;
}

MM_TEST(eval_command_prints_and_writes_metrics)
{
    char pred[600], out[600], args[2000];
    snprintf(pred, sizeof pred, "%s/pred.csv", mm_test_tmpdir());
    snprintf(out, sizeof out, "%s/metrics.json", mm_test_tmpdir());
    double auc = make_predictions_file(pred, 300, 11, 3);
    snprintf(args, sizeof args,
             "eval --pred '%s' --threshold 0.4 --bootstrap 500 --seed 5 --out '%s'", pred, out);
    char *text;
    int rc = run_mammo(args, &text);
    CHECK_EQ_INT(rc, 0);
    char want[64];
    snprintf(want, sizeof want, "AUC          %.4f", auc);
    CHECK_MSG(text && strstr(text, want), "output lacks '%s':\n%s", want, text ? text : "");
    CHECK(text && strstr(text, "3 unlabelled") && strstr(text, "500 resamples"));
    free(text);

    /* The JSON: the same numbers, recomputed here from the file. */
    json_error_t err;
    json_t *j = json_load_file(out, 0, &err);
    CHECK(j != NULL);
    mm_predictions p;
    CHECK(mm_predictions_read(&p, pred) == MM_OK);
    double *s;
    int *y;
    int64_t n;
    mm_predictions_labelled(&s, &y, &n, &p, -1);
    mm_threshold_metrics t;
    mm_threshold_metrics_compute(&t, s, y, n, 0.4);
    mm_roc_point *roc;
    int64_t m;
    CHECK(mm_roc_curve(&roc, &m, s, y, n) == MM_OK);
    CHECK_CLOSE(json_real_value(json_object_get(j, "auc")), auc, 1e-9, 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "images")), 303);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "labelled")), 300);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "tp")), t.tp);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "fp")), t.fp);
    CHECK_CLOSE(json_real_value(json_object_get(j, "sensitivity")), t.sensitivity, 1e-9, 0);
    CHECK_CLOSE(json_real_value(json_object_get(j, "specificity")), t.specificity, 1e-9, 0);
    json_t *ci = json_object_get(j, "auc_ci");
    double lo = json_real_value(json_object_get(ci, "lo"));
    double hi = json_real_value(json_object_get(ci, "hi"));
    CHECK(lo < auc && auc < hi && hi - lo < 0.3);
    CHECK_EQ_INT(json_integer_value(json_object_get(ci, "resamples")), 500);
    json_t *r = json_object_get(j, "roc");
    CHECK_EQ_INT(json_array_size(json_object_get(r, "fpr")), m);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "tpr")), m);
    CHECK(json_is_null(json_array_get(json_object_get(r, "threshold"), 0)));
    CHECK_CLOSE(json_real_value(json_array_get(json_object_get(r, "fpr"), m - 1)), 1, 0, 0);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "models")), 1);
    /* Reading it back gives the same evaluation. */
    mm_eval e;
    CHECK(mm_eval_read_json(&e, out) == MM_OK);
    CHECK_EQ_INT(e.n_roc, m);
    CHECK_CLOSE(e.ci.lo, lo, 0, 0);
    CHECK(isinf(e.roc[0].threshold));
    CHECK_CLOSE(mm_roc_area(e.roc, e.n_roc), auc, 1e-9, 0);
    CHECK_EQ_INT(e.n_models, 1);
    mm_eval_free(&e);
    free(roc);
    free(s);
    free(y);
    mm_predictions_free(&p);
    json_decref(j);
}

MM_TEST(eval_command_bad_input_one_line_exit_1)
{
    const char *dir = mm_test_tmpdir();
    char good[600], one[600], cols[600], nonnum[600], out[600];
    snprintf(good, sizeof good, "%s/good.csv", dir);
    snprintf(one, sizeof one, "%s/one.csv", dir);
    snprintf(cols, sizeof cols, "%s/cols.csv", dir);
    snprintf(nonnum, sizeof nonnum, "%s/nonnum.csv", dir);
    snprintf(out, sizeof out, "%s/never.json", dir);
    make_predictions_file(good, 50, 3, 0);
    write_file(one, "image,label,score\na.png,1,0.9\nb.png,1,0.2\nc.png,-1,0.5\n");
    write_file(cols, "image,truth,score\na.png,1,0.9\n");
    write_file(nonnum, "image,label,score\na.png,1,0.9\nb.png,0,abc\n");
    struct {
        const char *args, *want;
    } cases[] = {
        {"eval --pred '%s/missing.csv' --out '%s'", "missing.csv: cannot open"},
        {"eval --pred '%s/one.csv' --out '%s'", "AUC needs both classes"},
        {"eval --pred '%s/cols.csv' --out '%s'", "no 'label' column"},
        {"eval --pred '%s/nonnum.csv' --out '%s'", "line 3: score 'abc' is not a number"},
        {"eval --pred '%s/good.csv' --bootstrap 0 --out '%s'", "--bootstrap 0"},
        {"eval --pred '%s/good.csv' --threshold x --out '%s'", "--threshold x: not a number"},
        {"eval --pred '%s/good.csv' --level 1.5 --out '%s'", "--level 1.5"},
        {"eval '%s' --out '%s'", "--pred"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[2000];
        snprintf(args, sizeof args, cases[i].args, dir, out);
        char *text;
        int rc = run_mammo(args, &text);
        CHECK_MSG(rc == 1, "case %zu: exit %d", i, rc);
        CHECK_MSG(text && !strncmp(text, "mammo: ", 7) && count_lines(text) == 1 &&
                      strstr(text, cases[i].want),
                  "case %zu: output '%s' lacks '%s' on one line", i, text ? text : "",
                  cases[i].want);
        free(text);
        struct stat st;
        CHECK_MSG(stat(out, &st) != 0, "case %zu: wrote %s", i, out);
    }
}
