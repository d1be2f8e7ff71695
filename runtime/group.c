/* Processes on several machines as one training group: see group.h.
 *
 * Wire format (every integer little-endian as the machines are; the nodes run one build): a
 * joining node sends "MMGROUP1", its rank, the group size and its fingerprint (u32 length, then
 * the bytes); node 0 answers each, once all have joined, with a u32 status (0: in) and a message
 * (u32 length, bytes). Afterwards only the raw bytes of the collectives travel. */
#define _GNU_SOURCE /* getaddrinfo, MSG_NOSIGNAL */
#include "group.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "env.h"
#include "tensor.h" /* mm_xmalloc */

#define MAGIC "MMGROUP1"
#define MAX_FINGERPRINT 4096
#define CHUNK_FLOATS ((size_t)1 << 20) /* the average's unit: 4 MiB per buffer */

struct mm_group {
    int rank, nodes;
    int *fd; /* node 0: fd[q] for q = 1 .. nodes-1; others: fd[0], the link to node 0 */
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

mm_status mm_group_parse_master(const char *master, char *host, size_t hn, int *port)
{
    const char *colon = master ? strrchr(master, ':') : NULL;
    const char *h = master, *h_end = colon;
    if (master && master[0] == '[') { /* [v6]:port */
        h = master + 1;
        h_end = strchr(master, ']');
        if (!h_end || h_end[1] != ':') h_end = NULL;
        else colon = h_end + 1;
    }
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || !h_end || h_end == h || (size_t)(h_end - h) >= hn || end == colon + 1 || *end ||
        p < 1 || p > 65535)
        return mm_fail(MM_ERR_ARG, "--master '%s': use HOST:PORT, node 0's address and a free "
                       "port on it (e.g. node0:29500)", master ? master : "");
    memcpy(host, h, (size_t)(h_end - h));
    host[h_end - h] = '\0';
    *port = (int)p;
    return MM_OK;
}

/* Waits until fd is ready for `events` or the deadline (seconds on now_s; < 0: none) passes. */
static bool wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline >= 0) {
            double left = deadline - now_s();
            if (left <= 0) return false;
            ms = (int)(left * 1000) + 1;
        }
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, ms);
        if (r > 0) return true;
        if (r < 0 && errno != EINTR) return false;
    }
}

/* Moves n bytes (send or receive); false with *why set when the peer closed, the link broke
 * or the deadline passed. */
static bool io_all(int fd, void *buf, size_t n, bool out, double deadline, const char **why)
{
    char *p = buf;
    while (n > 0) {
        if (deadline >= 0 && !wait_fd(fd, out ? POLLOUT : POLLIN, deadline)) {
            *why = "timed out";
            return false;
        }
        ssize_t k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            *why = k == 0 ? "connection closed" : strerror(errno);
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static mm_status lost(const mm_group *g, int peer, const char *why)
{
    if (g->rank != 0)
        return mm_fail(MM_ERR_IO, "--nodes: lost node 0 (%s); its own output says why", why);
    return mm_fail(MM_ERR_IO, "--nodes: node %d of %d left the group (%s); its own output says "
                   "why", peer, g->nodes, why);
}

/* Data transfer with a member of the group: node 0 with node q, the others with node 0. */
static mm_status xfer(mm_group *g, int peer, void *buf, size_t n, bool out)
{
    const char *why = "";
    int fd = g->rank == 0 ? g->fd[peer] : g->fd[0];
    return io_all(fd, buf, n, out, -1, &why) ? MM_OK : lost(g, peer, why);
}

/* A peer that stops answering (its machine lost power) is noticed in about two minutes. */
static void tune_socket(int fd)
{
    int one = 1, idle = 60, intvl = 10, cnt = 6;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

static double join_deadline(void)
{
    int64_t s = 600;
    mm_env_int("MM_GROUP_TIMEOUT_S", 1, 86400 * 7, &s);
    return now_s() + (double)s;
}

/* Listens on every interface: [::] first, which takes IPv4 connections too on a dual-stack
 * machine, then 0.0.0.0 where the machine has no IPv6. */
static int listen_on(int port, char *why, size_t wn)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    snprintf(why, wn, "no address to listen on");
    const int families[2] = {AF_INET6, AF_INET};
    int fd = -1;
    for (int f = 0; f < 2 && fd < 0; f++) {
        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_family = families[f];
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        if (getaddrinfo(NULL, service, &hints, &res) != 0) continue;
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd < 0) continue;
            int one = 1, zero = 0;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (a->ai_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
            if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
                snprintf(why, wn, "%s", strerror(errno));
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(res);
    }
    return fd;
}

/* One connection attempt that gives up after `wait_s` (a host that drops the packets would
 * otherwise hold connect() for the kernel's two minutes); the socket is blocking again after. */
static int connect_once(const struct addrinfo *a, double wait_s, char *why, size_t wn)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
        snprintf(why, wn, "%s", strerror(errno));
        return -1;
    }
    int err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
        socklen_t len = sizeof err;
        err = ETIMEDOUT;
        if (wait_fd(fd, POLLOUT, now_s() + wait_s) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
    }
    if (err != 0) {
        snprintf(why, wn, "%s", strerror(err));
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* Connects to host:port, retrying while nothing listens there yet; -2 when the host name is
 * unknown (a typo does not wait out the deadline). */
static int connect_to(const char *host, int port, double deadline, char *why, size_t wn)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    for (;;) {
        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int gr = getaddrinfo(host, service, &hints, &res);
        if (gr == EAI_NONAME) {
            snprintf(why, wn, "%s", gai_strerror(gr));
            return -2;
        }
        if (gr != 0) snprintf(why, wn, "%s", gai_strerror(gr));
        for (struct addrinfo *a = gr == 0 ? res : NULL; a; a = a->ai_next) {
            int fd = connect_once(a, 5.0, why, wn);
            if (fd >= 0) {
                freeaddrinfo(res);
                return fd;
            }
        }
        if (gr == 0) freeaddrinfo(res);
        if (now_s() >= deadline) return -1;
        usleep(200 * 1000);
    }
}

typedef struct {
    char magic[8];
    uint32_t rank, nodes, fp_len;
} hello;

/* The first "key=value" of a that b lacks (to name what differs); "" when none. */
static void first_difference(const char *a, const char *b, char *out, size_t n)
{
    out[0] = '\0';
    for (const char *p = a; *p;) {
        size_t len = strcspn(p, " ");
        bool found = false;
        for (const char *q = b; *q && !found;) {
            size_t ql = strcspn(q, " ");
            found = ql == len && !memcmp(p, q, len);
            q += ql + (q[ql] == ' ');
        }
        if (!found && len > 0) {
            snprintf(out, n, "%.*s", (int)len, p);
            return;
        }
        p += len + (p[len] == ' ');
    }
}

/* Node 0's answer to a joining node: status 0 (in) for an empty message, else the refusal. */
static bool send_reply(int fd, const char *msg, double deadline)
{
    uint32_t status = msg[0] != '\0', len = (uint32_t)strlen(msg);
    const char *why;
    return io_all(fd, &status, 4, true, deadline, &why) &&
           io_all(fd, &len, 4, true, deadline, &why) &&
           io_all(fd, (void *)msg, len, true, deadline, &why);
}

/* Node 0: takes the other nodes' hellos; *msg is "" when all are in, else the refusal. */
static void gather_hellos(mm_group *g, int lfd, const char *fp, double deadline, char *msg,
                          size_t mn)
{
    int joined = 0;
    msg[0] = '\0';
    while (joined < g->nodes - 1) {
        if (!wait_fd(lfd, POLLIN, deadline)) {
            snprintf(msg, mn, "--nodes %d: %d of %d nodes joined within MM_GROUP_TIMEOUT_S; "
                     "start every node with the same --master and its own --node-rank", g->nodes,
                     joined + 1, g->nodes);
            return;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        hello h;
        const char *why;
        char peer_fp[MAX_FINGERPRINT + 1];
        double hello_deadline = now_s() + 30 < deadline ? now_s() + 30 : deadline;
        if (!io_all(fd, &h, sizeof h, false, hello_deadline, &why) ||
            memcmp(h.magic, MAGIC, 8) != 0 || h.fp_len > MAX_FINGERPRINT ||
            !io_all(fd, peer_fp, h.fp_len, false, hello_deadline, &why)) {
            close(fd); /* not one of ours (or it broke off): the slot stays open */
            continue;
        }
        peer_fp[h.fp_len] = '\0';
        int q = (int)h.rank;
        if (q < 1 || q >= g->nodes || (int)h.nodes != g->nodes || g->fd[q] >= 0) {
            char why_not[256];
            snprintf(why_not, sizeof why_not, "--nodes: a node joined as --node-rank %d of "
                     "--nodes %u, node 0 runs --nodes %d (each rank 1 .. %d once)", q, h.nodes,
                     g->nodes, g->nodes - 1);
            if (!msg[0]) snprintf(msg, mn, "%s", why_not);
            send_reply(fd, why_not, hello_deadline); /* it hears why before the others */
            close(fd);
            joined++;
            continue;
        }
        g->fd[q] = fd;
        joined++;
        char mine[512], theirs[512];
        if (!msg[0] && strcmp(peer_fp, fp) != 0) {
            first_difference(fp, peer_fp, mine, sizeof mine);
            first_difference(peer_fp, fp, theirs, sizeof theirs);
            snprintf(msg, mn, "--nodes: node %d runs with %.300s, node 0 with %.300s; start "
                     "every node with the same flags but --node-rank", q,
                     theirs[0] ? theirs : "(other)", mine[0] ? mine : "(other)");
        }
    }
}

static mm_status join_as_master(mm_group *g, int port, const char *fp, double deadline)
{
    char why[256] = "";
    int lfd = listen_on(port, why, sizeof why);
    if (lfd < 0)
        return mm_fail(MM_ERR_IO, "--master: node 0 cannot listen on port %d (%s); choose a free "
                       "port", port, why);
    char msg[1024];
    gather_hellos(g, lfd, fp, deadline, msg, sizeof msg);
    close(lfd);
    double reply_deadline = now_s() + 30; /* the joining's may be over: a refusal still goes */
    for (int q = 1; q < g->nodes; q++) {
        if (g->fd[q] < 0) continue;
        if (!send_reply(g->fd[q], msg, reply_deadline) && !msg[0])
            return lost(g, q, "it broke off the joining");
        tune_socket(g->fd[q]);
    }
    return msg[0] ? mm_fail(MM_ERR_ARG, "%s", msg) : MM_OK;
}

static mm_status join_as_member(mm_group *g, const char *host, int port, const char *fp,
                                double deadline)
{
    char why[256] = "no answer";
    int fd = connect_to(host, port, deadline, why, sizeof why);
    if (fd == -2)
        return mm_fail(MM_ERR_ARG, "--master %s:%d: unknown host (%s); give node 0's host name "
                       "or address", host, port, why);
    if (fd < 0)
        return mm_fail(MM_ERR_IO, "--master %s:%d: node 0 did not answer within "
                       "MM_GROUP_TIMEOUT_S (%s); start node 0 with the same --master", host, port,
                       why);
    g->fd[0] = fd;
    hello h = {{0}, (uint32_t)g->rank, (uint32_t)g->nodes, (uint32_t)strlen(fp)};
    memcpy(h.magic, MAGIC, 8);
    const char *w = "";
    uint32_t status = 1, len = 0;
    char msg[1025];
    if (!io_all(fd, &h, sizeof h, true, deadline, &w) ||
        !io_all(fd, (void *)fp, h.fp_len, true, deadline, &w) ||
        !io_all(fd, &status, 4, false, deadline, &w) || !io_all(fd, &len, 4, false, deadline, &w)
        || len > 1024 || !io_all(fd, msg, len, false, deadline, &w)) {
        if (!strcmp(w, "timed out")) /* node 0 answers once every node has joined */
            return mm_fail(MM_ERR_IO, "--master %s:%d: the group did not form within "
                           "MM_GROUP_TIMEOUT_S; start every node with the same --master and "
                           "its own --node-rank", host, port);
        return mm_fail(MM_ERR_IO, "--master %s:%d: node 0 broke off the joining (%s); its own "
                       "output says why", host, port, w);
    }
    msg[len] = '\0';
    if (status != 0) return mm_fail(MM_ERR_ARG, "%s (node 0 refused the group)", msg);
    tune_socket(fd);
    return MM_OK;
}

mm_status mm_group_join(const char *master, int nodes, int rank, const char *fingerprint,
                        mm_group **out)
{
    *out = NULL;
    if (nodes < 1 || nodes > MM_MAX_NODES)
        return mm_fail(MM_ERR_ARG, "--nodes %d: use 1 to %d", nodes, MM_MAX_NODES);
    if (rank < 0 || rank >= nodes)
        return mm_fail(MM_ERR_ARG, "--node-rank %d: use 0 to %d (node 0 listens at --master)",
                       rank, nodes - 1);
    if (strlen(fingerprint) > MAX_FINGERPRINT)
        return mm_fail(MM_ERR_ARG, "--nodes: the run's description is over %d bytes",
                       MAX_FINGERPRINT);
    char host[256];
    int port;
    MM_TRY(mm_group_parse_master(master, host, sizeof host, &port));
    mm_group *g = mm_xcalloc(1, sizeof *g);
    g->rank = rank;
    g->nodes = nodes;
    g->fd = mm_xmalloc((size_t)nodes * sizeof *g->fd);
    for (int q = 0; q < nodes; q++) g->fd[q] = -1;
    double deadline = join_deadline();
    mm_status st = nodes == 1 ? MM_OK
                 : rank == 0  ? join_as_master(g, port, fingerprint, deadline)
                              : join_as_member(g, host, port, fingerprint, deadline);
    if (st != MM_OK) {
        mm_group_leave(g);
        return st;
    }
    *out = g;
    return MM_OK;
}

void mm_group_leave(mm_group *g)
{
    if (!g) return;
    for (int q = 0; q < g->nodes; q++)
        if (g->fd[q] >= 0) close(g->fd[q]);
    free(g->fd);
    free(g);
}

int mm_group_rank(const mm_group *g) { return g->rank; }
int mm_group_size(const mm_group *g) { return g->nodes; }

mm_status mm_group_broadcast(mm_group *g, void *buf, size_t bytes)
{
    if (g->rank != 0) return xfer(g, 0, buf, bytes, false);
    for (int q = 1; q < g->nodes; q++) MM_TRY(xfer(g, q, buf, bytes, true));
    return MM_OK;
}

mm_status mm_group_gather(mm_group *g, const void *mine, void *all, size_t bytes)
{
    if (g->rank != 0) return xfer(g, 0, (void *)mine, bytes, true);
    memcpy(all, mine, bytes);
    for (int q = 1; q < g->nodes; q++) MM_TRY(xfer(g, q, (char *)all + q * bytes, bytes, false));
    return MM_OK;
}

mm_status mm_group_barrier(mm_group *g)
{
    char here = 1, all[MM_MAX_NODES];
    MM_TRY(mm_group_gather(g, &here, all, 1));
    return mm_group_broadcast(g, &here, 1);
}

/* Node 0's part of one chunk [i0, i0 + n) (a process alone: g NULL): the sum in global rank
 * order, then the mean, sent. */
static mm_status average_chunk_master(mm_group *g, float *const *local, int n_local, size_t i0,
                                      size_t n, float *acc, float *theirs)
{
    int nodes = g ? g->nodes : 1;
    memcpy(acc, local[0] + i0, n * sizeof(float));
    for (int r = 1; r < n_local; r++)
        for (size_t i = 0; i < n; i++) acc[i] += local[r][i0 + i];
    for (int q = 1; q < nodes; q++) {
        MM_TRY(xfer(g, q, theirs, (size_t)n_local * n * sizeof(float), false));
        for (int r = 0; r < n_local; r++)
            for (size_t i = 0; i < n; i++) acc[i] += theirs[(size_t)r * n + i];
    }
    float world = (float)(n_local * nodes);
    for (size_t i = 0; i < n; i++) acc[i] /= world;
    for (int q = 1; q < nodes; q++) MM_TRY(xfer(g, q, acc, n * sizeof(float), true));
    return MM_OK;
}

mm_status mm_group_average(mm_group *g, float *const *local, int n_local, size_t count)
{
    size_t chunk = count < CHUNK_FLOATS ? count : CHUNK_FLOATS;
    if (chunk == 0) return MM_OK;
    bool master = !g || g->rank == 0;
    float *acc = mm_xmalloc(chunk * sizeof(float));
    float *theirs = master && g ? mm_xmalloc((size_t)n_local * chunk * sizeof(float)) : NULL;
    mm_status st = MM_OK;
    for (size_t i0 = 0; i0 < count && st == MM_OK; i0 += chunk) {
        size_t n = count - i0 < chunk ? count - i0 : chunk;
        if (master) {
            st = average_chunk_master(g, local, n_local, i0, n, acc, theirs);
        } else {
            for (int r = 0; r < n_local && st == MM_OK; r++)
                st = xfer(g, 0, local[r] + i0, n * sizeof(float), true);
            if (st == MM_OK) st = xfer(g, 0, acc, n * sizeof(float), false);
        }
        for (int r = 0; r < n_local && st == MM_OK; r++)
            memcpy(local[r] + i0, acc, n * sizeof(float));
    }
    free(acc);
    free(theirs);
    return st;
}
