/* NCCL for the emulator (cuemu.h): communicators among the emulated devices (CUEMU_DEVICES) made
 * by ncclCommInitAll, and all-reduce of float buffers (sum or mean) as one thread drives several
 * devices: inside ncclGroupStart / ncclGroupEnd, every rank of a communicator called once, with
 * the same count and operation, each on a stream of its own device. What would hang or fail on
 * GPUs fails here with NCCL's status: a collective of several ranks outside a group, a rank
 * missing or twice in the group, a buffer that is not device memory, a stream of another device,
 * the same device twice in one communicator. The sum runs in rank order in float; every rank
 * receives the same values, as NCCL's ranks do.
 *
 * Communicators of several processes (ncclGetUniqueId, ncclCommInitRank: mammo's --nodes) meet
 * in the folder the unique id names: each all-reduce writes each local rank's buffer to
 * "<seq>.<rank>" (renamed into place when whole), waits for every rank's, and sums them in rank
 * order, so the same values come out as from one process. A rank deletes its file of the
 * collective before once all of this one's are there (every rank has read it then); the last
 * rank to destroy its communicator removes the folder. A rank that does not come within
 * CUEMU_NCCL_TIMEOUT_S (default 120) seconds makes the collective fail instead of hang. */
#include <dirent.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/cuemu/cuemu_internal.h"

struct clique {
    int n;           /* ranks in all */
    std::string dir; /* across processes: the meeting folder; "" within this one */
    int local = 0;   /* ranks of it in this process */
};

struct ncclComm {
    std::shared_ptr<clique> group;
    int rank, device;
    long seq = 0; /* collectives this rank has run (across processes) */
};

namespace {

struct pending {
    const float *send;
    float *recv;
    size_t count;
    ncclRedOp_t op;
    ncclComm_t comm;
};

int g_group_depth;
std::vector<pending> g_pending;
std::map<std::string, std::weak_ptr<clique>> g_cliques; /* across processes, by folder */

double now_s()
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

std::string rank_file(const clique *c, long seq, int rank)
{
    return c->dir + "/" + std::to_string(seq) + "." + std::to_string(rank);
}

bool write_file(const std::string &path, const void *p, size_t bytes)
{
    std::string tmp = path + ".tmp";
    FILE *f = fopen(tmp.c_str(), "wb");
    if (!f) return false;
    bool ok = fwrite(p, 1, bytes, f) == bytes;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

/* The sum over every process's ranks of one collective: this process's ops (by_rank, its local
 * ranks) are written, the others' read when they are there. */
ncclResult_t reduce_across(const clique *c, const std::vector<const pending *> &local,
                           std::vector<float> &sum)
{
    long seq = local[0]->comm->seq;
    size_t bytes = sum.size() * sizeof(float);
    for (const pending *p : local)
        if (p->comm->seq != seq || !write_file(rank_file(c, seq, p->comm->rank), p->send, bytes))
            return ncclSystemError;
    const char *env = getenv("CUEMU_NCCL_TIMEOUT_S");
    double deadline = now_s() + (env && atof(env) > 0 ? atof(env) : 120.0);
    std::vector<float> theirs(sum.size());
    for (int r = 0; r < c->n; r++) {
        std::string path = rank_file(c, seq, r);
        struct stat st;
        while (stat(path.c_str(), &st) != 0) {
            if (now_s() > deadline) {
                fprintf(stderr, "cuemu: NCCL rank %d never joined collective %ld\n", r, seq);
                return ncclSystemError; /* a GPU would wait forever */
            }
            usleep(1000);
        }
        FILE *f = fopen(path.c_str(), "rb");
        bool ok = f && (size_t)st.st_size == bytes && fread(theirs.data(), 1, bytes, f) == bytes;
        if (f) fclose(f);
        if (!ok) return ncclInvalidUsage; /* another count on that rank */
        for (size_t k = 0; k < sum.size(); k++) sum[k] = r == 0 ? theirs[k] : sum[k] + theirs[k];
    }
    for (const pending *p : local) {
        if (seq > 0) remove(rank_file(c, seq - 1, p->comm->rank).c_str());
        p->comm->seq++;
    }
    return ncclSuccess;
}

ncclResult_t reduce(const std::vector<pending> &ops)
{
    /* per communicator group: its ranks in order, each exactly once */
    std::vector<bool> done(ops.size(), false);
    for (size_t i = 0; i < ops.size(); i++) {
        if (done[i]) continue;
        const clique *c = ops[i].comm->group.get();
        std::vector<const pending *> by_rank(c->n, nullptr);
        for (size_t j = i; j < ops.size(); j++) {
            if (ops[j].comm->group.get() != c) continue;
            if (by_rank[ops[j].comm->rank]) return ncclInvalidUsage; /* a rank twice */
            if (ops[j].count != ops[i].count || ops[j].op != ops[i].op) return ncclInvalidUsage;
            by_rank[ops[j].comm->rank] = &ops[j];
            done[j] = true;
        }
        std::vector<const pending *> local;
        for (const pending *p : by_rank)
            if (p) local.push_back(p);
        if ((int)local.size() != (c->dir.empty() ? c->n : c->local))
            return ncclInvalidUsage; /* a rank missing: a GPU would wait forever */
        std::vector<float> out(ops[i].count);
        if (!c->dir.empty()) {
            ncclResult_t res = reduce_across(c, local, out);
            if (res != ncclSuccess) return res;
        } else {
            for (size_t k = 0; k < out.size(); k++) {
                float sum = by_rank[0]->send[k];
                for (int r = 1; r < c->n; r++) sum += by_rank[r]->send[k];
                out[k] = sum;
            }
        }
        if (ops[i].op == ncclAvg)
            for (float &v : out) v /= (float)c->n;
        for (const pending *p : local) memcpy(p->recv, out.data(), out.size() * sizeof(float));
    }
    return ncclSuccess;
}

} // namespace

extern "C" {

ncclResult_t ncclGetVersion(int *version)
{
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument (emulated)";
    case ncclInvalidUsage: return "invalid usage (emulated)";
    default: return "NCCL error (emulated)";
    }
}

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int ndev, const int *devlist)
{
    int count = 0;
    cudaGetDeviceCount(&count);
    if (ndev < 1) return ncclInvalidArgument;
    for (int r = 0; r < ndev; r++) {
        int d = devlist ? devlist[r] : r;
        if (d < 0 || d >= count) return ncclInvalidArgument;
        for (int q = 0; q < r; q++)
            if ((devlist ? devlist[q] : q) == d) return ncclInvalidUsage; /* duplicate GPU */
    }
    auto c = std::make_shared<clique>();
    c->n = ndev;
    for (int r = 0; r < ndev; r++) comms[r] = new ncclComm{c, r, devlist ? devlist[r] : r};
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    const char *tmp = getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/cuemu-nccl-XXXXXX";
    if (dir.size() >= sizeof id->internal || !mkdtemp(&dir[0])) return ncclSystemError;
    memcpy(id->internal, dir.c_str(), dir.size());
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)
{
    std::string dir(id.internal, strnlen(id.internal, sizeof id.internal));
    struct stat st;
    if (nranks < 1 || rank < 0 || rank >= nranks || stat(dir.c_str(), &st) != 0)
        return ncclInvalidArgument;
    std::shared_ptr<clique> c = g_cliques[dir].lock();
    if (!c) {
        c = std::make_shared<clique>();
        c->n = nranks;
        c->dir = dir;
        g_cliques[dir] = c;
    }
    if (c->n != nranks) return ncclInvalidUsage;
    c->local++;
    int device = 0;
    cudaGetDevice(&device);
    *comm = new ncclComm{c, rank, device};
    return ncclSuccess;
}

/* The folder goes with the last rank of all processes: each leaves "done.<rank>" when it has read
 * everything it will read. */
static void leave_folder(const ncclComm *comm)
{
    const std::string &dir = comm->group->dir;
    std::string mark = dir + "/done." + std::to_string(comm->rank);
    if (!write_file(mark, "", 0)) return;
    for (int r = 0; r < comm->group->n; r++) {
        struct stat st;
        if (stat((dir + "/done." + std::to_string(r)).c_str(), &st) != 0) return;
    }
    DIR *d = opendir(dir.c_str());
    if (!d) return;
    while (struct dirent *e = readdir(d))
        if (e->d_name[0] != '.') remove((dir + "/" + e->d_name).c_str());
    closedir(d);
    rmdir(dir.c_str());
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    if (!comm->group->dir.empty()) leave_folder(comm);
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *error)
{
    *error = ncclSuccess; /* a collective that fails here fails when it is called */
    return comm ? ncclSuccess : ncclInvalidArgument;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) { return ncclCommDestroy(comm); }

ncclResult_t ncclGroupStart()
{
    g_group_depth++;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd()
{
    if (g_group_depth == 0) return ncclInvalidUsage;
    if (--g_group_depth > 0) return ncclSuccess;
    std::vector<pending> ops;
    ops.swap(g_pending);
    return reduce(ops);
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream)
{
    if (!comm || datatype != ncclFloat32 || (op != ncclSum && op != ncclAvg))
        return ncclInvalidArgument;
    if (!cuemu::device_range(sendbuff, count * sizeof(float)) ||
        !cuemu::device_range(recvbuff, count * sizeof(float)))
        return ncclInvalidArgument;
    if (cuemu::stream_device(stream) != comm->device) return ncclInvalidArgument;
    pending p = {(const float *)sendbuff, (float *)recvbuff, count, op, comm};
    if (g_group_depth > 0) {
        g_pending.push_back(p);
        return ncclSuccess;
    }
    /* one thread cannot wait for its own other ranks (other processes' it can) */
    if (comm->group->dir.empty() ? comm->group->n > 1 : comm->group->local > 1)
        return ncclInvalidUsage;
    return reduce({p});
}

} // extern "C"
