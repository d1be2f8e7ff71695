/* NCCL for the emulator (cuemu.h): communicators among the emulated devices (CUEMU_DEVICES) made
 * by ncclCommInitAll, and all-reduce of float buffers (sum or mean) as one thread drives several
 * devices: inside ncclGroupStart / ncclGroupEnd, every rank of a communicator called once, with
 * the same count and operation, each on a stream of its own device. What would hang or fail on
 * GPUs fails here with NCCL's status: a collective of several ranks outside a group, a rank
 * missing or twice in the group, a buffer that is not device memory, a stream of another device,
 * the same device twice in one communicator. The sum runs in rank order in float; every rank
 * receives the same values, as NCCL's ranks do. */
#include <nccl.h>
#include <stdio.h>

#include <memory>
#include <vector>

#include "tests/cuemu/cuemu_internal.h"

struct clique {
    int n;
};

struct ncclComm {
    std::shared_ptr<clique> group;
    int rank, device;
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
        for (const pending *p : by_rank)
            if (!p) return ncclInvalidUsage; /* a rank missing: a GPU would wait forever */
        std::vector<float> out(ops[i].count);
        for (size_t k = 0; k < out.size(); k++) {
            float sum = by_rank[0]->send[k];
            for (int r = 1; r < c->n; r++) sum += by_rank[r]->send[k];
            out[k] = ops[i].op == ncclAvg ? sum / (float)c->n : sum;
        }
        for (const pending *p : by_rank) memcpy(p->recv, out.data(), out.size() * sizeof(float));
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

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    delete comm;
    return ncclSuccess;
}

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
    if (comm->group->n > 1) return ncclInvalidUsage; /* one thread cannot wait for the others */
    return reduce({p});
}

} // extern "C"
