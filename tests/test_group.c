/* The process group across machines (runtime/group.h), as processes on this machine: each node a
 * forked child that joins over TCP on a free local port and checks its own part, against values
 * it computes itself (the gradient average against the sum in global rank order of one
 * process). A child that hangs is killed by its alarm; a failing child prints why. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/philox.h"
#include "runtime/group.h"
#include "tests/free_port.h"
#include "tests/harness.h"

typedef int (*node_fn)(int rank, mm_status joined, mm_group *g, void *arg);

/* Runs nodes 0 .. started-1 of a group of `size` as children, node k joining with fps[k]
 * (NULL: "same") and then calling fn; returns how many failed (each said why on stderr). */
static int run_group_of(int size, int started, const char *const *fps, node_fn fn, void *arg)
{
    char master[64];
    snprintf(master, sizeof master, "127.0.0.1:%d", free_port());
    pid_t pids[8];
    fflush(NULL);
    for (int k = 0; k < started; k++) {
        pids[k] = fork();
        if (pids[k] == 0) {
            alarm(60);
            mm_group *g = NULL;
            mm_status st = mm_group_join(master, size, k, fps ? fps[k] : "same", &g);
            int rc = fn(k, st, g, arg);
            mm_group_leave(g);
            fflush(NULL);
            _exit(rc);
        }
    }
    int failed = 0;
    for (int k = 0; k < started; k++) {
        int status = 0;
        waitpid(pids[k], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "    node %d failed (status %d)\n", k, status);
            failed++;
        }
    }
    return failed;
}

static int run_group(int nodes, const char *const *fps, node_fn fn, void *arg)
{
    return run_group_of(nodes, nodes, fps, fn, arg);
}

/* A child's check: prints what failed and makes its exit status 1. */
#define NODE_CHECK(cond, ...)                                                          \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "    node %d: ", rank);                                    \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);                         \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

/* ---- the gradient average ---- */

enum { LOCAL = 2, NODES = 3, COUNT = (1 << 20) + 1001 }; /* over one 4 MiB chunk */

/* Global rank q's gradient: magnitudes from 1e-3 to 1e3, so that the order of the sum shows. */
static float grad_value(int q, size_t i)
{
    double u = mm_philox_uniform(77 + (uint64_t)q, i) - 0.5;
    static const double scale[3] = {1e-3, 1.0, 1e3};
    return (float)(u * scale[(i + (size_t)q) % 3]);
}

static int average_node(int rank, mm_status joined, mm_group *g, void *arg)
{
    (void)arg;
    NODE_CHECK(joined == MM_OK, "join: %s", mm_last_error());
    float *mine[LOCAL];
    for (int r = 0; r < LOCAL; r++) {
        mine[r] = malloc(COUNT * sizeof(float));
        for (size_t i = 0; i < COUNT; i++) mine[r][i] = grad_value(rank * LOCAL + r, i);
    }
    NODE_CHECK(mm_group_average(g, mine, LOCAL, COUNT) == MM_OK, "%s", mm_last_error());
    size_t differ = 0, other_order = 0;
    for (size_t i = 0; i < COUNT; i++) {
        float sum = grad_value(0, i), reversed = grad_value(NODES * LOCAL - 1, i);
        for (int q = 1; q < NODES * LOCAL; q++) sum += grad_value(q, i);
        for (int q = NODES * LOCAL - 2; q >= 0; q--) reversed += grad_value(q, i);
        float mean = sum / (float)(NODES * LOCAL);
        for (int r = 0; r < LOCAL; r++) differ += memcmp(&mine[r][i], &mean, sizeof mean) != 0;
        other_order += reversed / (float)(NODES * LOCAL) != mean;
    }
    for (int r = 0; r < LOCAL; r++) free(mine[r]);
    NODE_CHECK(differ == 0, "%zu of %d values are not the rank-order mean", differ,
               LOCAL * COUNT);
    NODE_CHECK(other_order > 1000, "only %zu values depend on the order: the check is blind",
               other_order);
    return 0;
}

MM_TEST(average_is_the_sum_in_global_rank_order)
{
    CHECK_EQ_INT(run_group(NODES, NULL, average_node, NULL), 0);
}

/* ---- broadcast and gather ---- */

static int broadcast_node(int rank, mm_status joined, mm_group *g, void *arg)
{
    (void)arg;
    NODE_CHECK(joined == MM_OK, "join: %s", mm_last_error());
    NODE_CHECK(mm_group_rank(g) == rank && mm_group_size(g) == 3, "rank/size");
    size_t n = 3 << 20;
    unsigned char *buf = calloc(n, 1);
    if (rank == 0)
        for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(i * 7 + 1);
    NODE_CHECK(mm_group_broadcast(g, buf, n) == MM_OK, "%s", mm_last_error());
    for (size_t i = 0; i < n; i++) NODE_CHECK(buf[i] == (unsigned char)(i * 7 + 1), "byte %zu", i);
    free(buf);
    int mine[2] = {rank * 100 + 1, rank * 100 + 2}, all[6] = {0};
    NODE_CHECK(mm_group_gather(g, mine, all, sizeof mine) == MM_OK, "%s", mm_last_error());
    if (rank == 0)
        for (int q = 0; q < 3; q++)
            NODE_CHECK(all[2 * q] == q * 100 + 1 && all[2 * q + 1] == q * 100 + 2, "node %d", q);
    return 0;
}

MM_TEST(broadcast_and_gather_reach_every_node)
{
    CHECK_EQ_INT(run_group(3, NULL, broadcast_node, NULL), 0);
}

/* ---- refusals and failures ---- */

static int refused_node(int rank, mm_status joined, mm_group *g, void *arg)
{
    (void)g;
    (void)arg;
    NODE_CHECK(joined == MM_ERR_ARG, "joined %d: %s", (int)joined, mm_last_error());
    NODE_CHECK(strstr(mm_last_error(), "node 1 runs with batch=4, node 0 with batch=2"),
               "message: %s", mm_last_error());
    return 0;
}

MM_TEST(nodes_that_disagree_are_refused_naming_the_difference)
{
    const char *fps[2] = {"command=train net=vgg16 batch=2 seed=1",
                          "command=train net=vgg16 batch=4 seed=1"};
    CHECK_EQ_INT(run_group(2, fps, refused_node, NULL), 0);
}

/* A node started with another --nodes is refused, and hears why as node 0 says it. */
MM_TEST(a_node_of_another_group_size_is_refused)
{
    char master[64];
    snprintf(master, sizeof master, "127.0.0.1:%d", free_port());
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        mm_group *g = NULL;
        mm_status st = mm_group_join(master, 3, 1, "same", &g);
        bool ok = st == MM_ERR_ARG && strstr(mm_last_error(), "node 0 runs --nodes 2");
        if (!ok) fprintf(stderr, "    node 1 of 3: %d %s\n", (int)st, mm_last_error());
        _exit(ok ? 0 : 1);
    }
    mm_group *g = NULL;
    CHECK(mm_group_join(master, 2, 0, "same", &g) == MM_ERR_ARG);
    CHECK_MSG(strstr(mm_last_error(), "--node-rank 1 of --nodes 3, node 0 runs --nodes 2"),
              "message: %s", mm_last_error());
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Something else that connects to node 0's port (a port scanner, a web request) is dropped and
 * the group still forms: node 1 joins after it. */
MM_TEST(a_stranger_at_the_port_is_ignored)
{
    int port = free_port();
    char master[64];
    snprintf(master, sizeof master, "127.0.0.1:%d", port);
    fflush(NULL);
    pid_t stranger = fork();
    if (stranger == 0) {
        alarm(60);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (int tries = 0; tries < 500; tries++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
                static const char junk[] = "GET / HTTP/1.0\r\n\r\n";
                bool sent = write(fd, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1);
                close(fd);
                _exit(sent ? 0 : 1);
            }
            close(fd);
            usleep(10000);
        }
        _exit(1);
    }
    pid_t member = fork();
    if (member == 0) {
        alarm(60);
        usleep(300000); /* after the stranger */
        mm_group *g = NULL;
        mm_status st = mm_group_join(master, 2, 1, "same", &g);
        char x = 0;
        if (st == MM_OK) st = mm_group_broadcast(g, &x, 1);
        mm_group_leave(g);
        _exit(st == MM_OK && x == 7 ? 0 : 1);
    }
    mm_group *g = NULL;
    CHECK_MSG(mm_group_join(master, 2, 0, "same", &g) == MM_OK, "%s", mm_last_error());
    char x = 7;
    if (g) CHECK(mm_group_broadcast(g, &x, 1) == MM_OK);
    mm_group_leave(g);
    int s1 = 0, s2 = 0;
    waitpid(stranger, &s1, 0);
    waitpid(member, &s2, 0);
    CHECK(WIFEXITED(s1) && WEXITSTATUS(s1) == 0);
    CHECK(WIFEXITED(s2) && WEXITSTATUS(s2) == 0);
}

/* Node `*leaver` leaves at once; the other's next collective fails naming it. */
static int left_node(int rank, mm_status joined, mm_group *g, void *arg)
{
    int leaver = *(int *)arg;
    NODE_CHECK(joined == MM_OK, "join: %s", mm_last_error());
    if (rank == leaver) return 0;
    float x[4] = {0};
    mm_status st = rank == 0 ? mm_group_gather(g, x, (float[8]){0}, sizeof x)
                             : mm_group_broadcast(g, x, sizeof x);
    NODE_CHECK(st == MM_ERR_IO, "a lost node gave status %d", (int)st);
    const char *want = rank == 0 ? "node 1 of 2 left the group" : "lost node 0";
    NODE_CHECK(strstr(mm_last_error(), want), "message: %s", mm_last_error());
    return 0;
}

MM_TEST(a_node_that_leaves_is_an_error_not_a_hang)
{
    int leaver = 1;
    CHECK_EQ_INT(run_group(2, NULL, left_node, &leaver), 0);
    leaver = 0;
    CHECK_EQ_INT(run_group(2, NULL, left_node, &leaver), 0);
}

static int alone_node(int rank, mm_status joined, mm_group *g, void *arg)
{
    (void)g;
    (void)arg;
    NODE_CHECK(joined != MM_OK, "joined a group of 2 alone");
    const char *want = rank == 0 ? "1 of 2 nodes joined" : "node 0 did not answer";
    NODE_CHECK(strstr(mm_last_error(), want), "message: %s", mm_last_error());
    return 0;
}

/* Node 0 or node 1 of 2 alone: each gives up after MM_GROUP_TIMEOUT_S. */
MM_TEST(a_missing_node_times_out_with_a_message)
{
    setenv("MM_GROUP_TIMEOUT_S", "1", 1);
    char master[64];
    snprintf(master, sizeof master, "127.0.0.1:%d", free_port());
    for (int which = 0; which < 2; which++) {
        mm_group *g = NULL;
        mm_status st = mm_group_join(master, 2, which, "same", &g);
        CHECK(alone_node(which, st, g, NULL) == 0);
        CHECK(g == NULL);
    }
    unsetenv("MM_GROUP_TIMEOUT_S");
}

/* Two of a group of three: both give up after MM_GROUP_TIMEOUT_S, saying the group did not
 * form (node 1 hears node 0's count, or gives up itself, whichever deadline comes first). */
static int two_of_three_node(int rank, mm_status joined, mm_group *g, void *arg)
{
    (void)g;
    (void)arg;
    NODE_CHECK(joined != MM_OK, "a group of 3 formed with 2");
    const char *e = mm_last_error();
    NODE_CHECK(strstr(e, "2 of 3 nodes joined") || strstr(e, "the group did not form"),
               "message: %s", e);
    return 0;
}

MM_TEST(a_group_short_of_a_node_times_out_on_every_node)
{
    setenv("MM_GROUP_TIMEOUT_S", "2", 1);
    CHECK_EQ_INT(run_group_of(3, 2, NULL, two_of_three_node, NULL), 0);
    unsetenv("MM_GROUP_TIMEOUT_S");
}

/* A --master host that does not exist is said at once where the resolver knows (a machine
 * without a name server may only time out, which says so too). */
MM_TEST(an_unknown_master_host_is_named)
{
    setenv("MM_GROUP_TIMEOUT_S", "3", 1);
    mm_group *g = NULL;
    CHECK(mm_group_join("no-such-host.invalid:29500", 2, 1, "same", &g) != MM_OK);
    const char *e = mm_last_error();
    CHECK_MSG(strstr(e, "--master no-such-host.invalid:29500: unknown host") ||
                  strstr(e, "--master no-such-host.invalid:29500: node 0 did not answer"),
              "message: %s", e);
    unsetenv("MM_GROUP_TIMEOUT_S");
}

MM_TEST(master_addresses_parse_or_are_refused)
{
    char host[64];
    int port = 0;
    CHECK(mm_group_parse_master("node0.cluster:29500", host, sizeof host, &port) == MM_OK);
    CHECK(!strcmp(host, "node0.cluster") && port == 29500);
    CHECK(mm_group_parse_master("[fe80::1]:7", host, sizeof host, &port) == MM_OK);
    CHECK(!strcmp(host, "fe80::1") && port == 7);
    const char *bad[] = {"node0", "node0:", ":29500", "node0:0", "node0:65536", "node0:29500x",
                         "[::1]29500", ""};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        CHECK_MSG(mm_group_parse_master(bad[k], host, sizeof host, &port) == MM_ERR_ARG,
                  "'%s' was taken", bad[k]);
        CHECK(strstr(mm_last_error(), "--master") != NULL);
    }
    mm_group *g = NULL;
    CHECK(mm_group_join("h:1", 2, 2, "x", &g) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "--node-rank 2: use 0 to 1") != NULL);
}
