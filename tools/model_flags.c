/* Model selection flags shared by forward, summary and plan (see model_flags.h). */
#include "model_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/group.h"
#include "fs.h"

void mm_model_flags_add(mm_args *a, bool with_size)
{
    mm_args_str(a, "net", "resnet50", "trunk: resnet50 or vgg16");
    mm_args_int(a, "classes", "0", "outputs (default 1000 torchvision, 5 --patch, 2 --top)");
    mm_args_bool(a, "patch", "the paper's patch classifier: trunk, global average pooling, fc");
    mm_args_str(a, "top", NULL, "whole-image classifier with these top blocks, e.g. "
                "'[512-512-1024]x2,[512-512-1024]x2', '512x1,512x1', 'hm,maxpool5,fc64,fc32'");
    if (with_size) {
        mm_args_str(a, "input", NULL, "input size HxW (default 224x224; 1152x896 with --top)");
        mm_args_int(a, "batch", "1", "batch size");
    }
}

void mm_width_div_flag_add(mm_args *a)
{
    mm_args_int(a, "width-div", "1",
                "divide the trunk's channel counts (a reduced-width net for small machines)");
}

mm_status mm_width_div_flag_get(const mm_args *a, int *width_div)
{
    int64_t v;
    MM_TRY(mm_args_get_int(a, "width-div", &v));
    if (v < 1 || v > 64 || 64 % v != 0)
        return mm_fail(MM_ERR_ARG, "--width-div %lld: must divide 64 (1, 2, 4, ... 64)",
                       (long long)v);
    *width_div = (int)v;
    return MM_OK;
}

void mm_scratch_flag_add(mm_args *a)
{
    mm_args_str(a, "scratch-mb", "auto",
                "MiB the convolutions' scratch may add to the step's peak for faster algorithms "
                "(cuda; auto: scratch fills the gaps the activations leave, and raises the peak "
                "only for a convolution that would run over 10% slower in less; N: at most N "
                "MiB, whatever it costs)");
}

mm_status mm_scratch_flag_get(const mm_args *a, size_t *bytes, bool *strict)
{
    const char *v = mm_args_get(a, "scratch-mb");
    *bytes = 0;
    *strict = false;
    if (!v || strcmp(v, "auto") == 0) return MM_OK;
    char *end;
    long long mb = strtoll(v, &end, 10);
    if (end == v || *end || mb < 0 || mb > (1 << 20))
        return mm_fail(MM_ERR_ARG, "--scratch-mb %s: must be auto or 0..1048576 (MiB)", v);
    *bytes = (size_t)mb << 20;
    *strict = true;
    return MM_OK;
}

void mm_deterministic_flag_add(mm_args *a)
{
    mm_args_bool(a, "deterministic",
                 "the same bits every run (cuda: cuDNN's heuristic choice among its deterministic "
                 "algorithms instead of the fastest by timing)");
}

void mm_deterministic_flag_set(const mm_args *a, mm_backend *be)
{
    be->deterministic = mm_args_get_bool(a, "deterministic");
}

void mm_algo_cache_flag_add(mm_args *a)
{
    mm_args_str(a, "algo-cache", "auto",
                "folder that keeps the convolution algorithms chosen for each shape between runs "
                "(cuda; a shape found there is not timed again), or off (auto: $MM_ALGO_CACHE, "
                "else $XDG_CACHE_HOME/mammo, else ~/.cache/mammo)");
}

/* The folder "auto" means ("" when there is none). */
static void mm_algo_cache_auto(char *dir, size_t n)
{
    const char *env = getenv("MM_ALGO_CACHE"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    if (env && *env) snprintf(dir, n, "%s", env);
    else if (xdg && *xdg) snprintf(dir, n, "%s/mammo", xdg);
    else if (home && *home) snprintf(dir, n, "%s/.cache/mammo", home);
    else snprintf(dir, n, "off");
}

mm_status mm_algo_cache_flag_get(const mm_args *a, const char *device, char *dir, size_t n)
{
    const char *v = mm_args_get(a, "algo-cache");
    bool chosen = v && strcmp(v, "auto") != 0; /* named on the command line */
    if (chosen) {
        if (!*v || strlen(v) >= n)
            return mm_fail(MM_ERR_ARG, "--algo-cache '%s': give a folder (at most %zu characters) "
                           "or off", v, n - 1);
        snprintf(dir, n, "%s", v);
    } else {
        mm_algo_cache_auto(dir, n);
    }
    if (strcmp(dir, "off") == 0 || strncmp(device, "cuda", 4) != 0) {
        dir[0] = '\0';
        return MM_OK;
    }
    mm_status made = mm_fs_is_dir(dir) ? MM_OK : mm_fs_mkdirs(dir);
    if (made == MM_OK && !mm_fs_is_dir(dir)) made = mm_fail(MM_ERR_IO, "%s: not a folder", dir);
    if (made != MM_OK) {
        char why[512]; /* mm_fail writes the buffer mm_last_error reads */
        snprintf(why, sizeof why, "%s", mm_last_error());
        if (chosen)
            return mm_fail(MM_ERR_ARG, "--algo-cache: %s; give another folder or off", why);
        fprintf(stderr, "mammo: warning: convolution choices not kept between runs: %s\n", why);
        mm_clear_error();
        dir[0] = '\0';
    }
    return MM_OK;
}

mm_status mm_algo_cache_flag_apply(const mm_args *a, const char *device, mm_backend *be)
{
    char dir[sizeof be->algo_cache_dir];
    MM_TRY(mm_algo_cache_flag_get(a, device, dir, sizeof dir));
    mm_backend_set_algo_cache(be, dir); /* fits: dir is as long */
    return MM_OK;
}

void mm_recompute_conv_flag_add(mm_args *a)
{
    mm_args_int(a, "recompute-conv", "-1",
                "with recomputation, also recompute convolutions of at most this many "
                "multiply-adds per output (0: none; -1: the device's, none on the cpu, on cuda "
                "128 in fp32 and tf32, 147 in bf16)");
}

mm_status mm_recompute_conv_flag_get(const mm_args *a, int64_t *macs)
{
    MM_TRY(mm_args_get_int(a, "recompute-conv", macs));
    if (*macs < -1)
        return mm_fail(MM_ERR_ARG, "--recompute-conv %lld: must be >= 0 (or -1: the device's)",
                       (long long)*macs);
    return MM_OK;
}

void mm_recompute_slack_flag_add(mm_args *a)
{
    mm_args_str(a, "recompute-slack", "auto",
                "percent the activation memory may grow over its smallest to recompute less: "
                "residual-chain links kept where each byte saves 8 of memory traffic (auto: on "
                "cuda 20 in fp32 and tf32, 0 in bf16; 0 on the cpu)");
}

mm_status mm_recompute_slack_flag_get(const mm_args *a, double *slack)
{
    const char *v = mm_args_get(a, "recompute-slack");
    *slack = -1.0;
    if (!v || strcmp(v, "auto") == 0) return MM_OK;
    char *end;
    double pct = strtod(v, &end);
    if (end == v || *end || !(pct >= 0 && pct <= 1000))
        return mm_fail(MM_ERR_ARG, "--recompute-slack %s: must be auto or a percentage 0..1000",
                       v);
    *slack = pct / 100.0;
    return MM_OK;
}

mm_status mm_parse_hw(const char *s, const char *flag, int *h, int *w)
{
    char *end;
    long hv = strtol(s, &end, 10);
    if (end == s || *end != 'x') goto bad;
    const char *p = end + 1;
    long wv = strtol(p, &end, 10);
    if (end == p || *end != '\0' || hv < 1 || wv < 1 || hv > 65536 || wv > 65536) goto bad;
    *h = (int)hv;
    *w = (int)wv;
    return MM_OK;
bad:
    return mm_fail(MM_ERR_ARG, "%s: '%s' is not a size HxW such as 1152x896", flag, s);
}

mm_status mm_model_flags_get(mm_model_config *c, const mm_args *a, bool with_size)
{
    mm_trunk trunk;
    MM_TRY(mm_trunk_parse(&trunk, mm_args_get(a, "net"), "--net"));
    bool patch = mm_args_get_bool(a, "patch");
    const char *top = mm_args_get(a, "top");
    if (patch && top)
        return mm_fail(MM_ERR_ARG, "--patch and --top: choose one (a patch classifier or a "
                       "whole-image classifier)");
    mm_model_kind kind = top ? MM_MODEL_WHOLE : patch ? MM_MODEL_PATCH : MM_MODEL_TORCHVISION;
    *c = mm_model_config_default(kind, trunk);
    if (top) c->top = top;
    int64_t classes;
    MM_TRY(mm_args_get_int(a, "classes", &classes));
    if (classes < 0 || classes > 1000000)
        return mm_fail(MM_ERR_ARG, "--classes: %lld is not a number of classes", (long long)classes);
    if (classes > 0) c->classes = (int)classes;
    if (with_size) {
        const char *input = mm_args_get(a, "input");
        if (input) MM_TRY(mm_parse_hw(input, "--input", &c->height, &c->width));
        int64_t batch;
        MM_TRY(mm_args_get_int(a, "batch", &batch));
        if (batch < 1 || batch > 65536)
            return mm_fail(MM_ERR_ARG, "--batch: %lld must be in 1..65536", (long long)batch);
        c->batch = (int)batch;
    }
    return MM_OK;
}

void mm_nodes_flags_add(mm_args *a)
{
    mm_args_str(a, "nodes", "1",
                "data parallel across machines: this many processes (one per machine), each "
                "with --replicas GPUs, started alike but for --node-rank; or env: the count and "
                "this process's rank from its launcher (mpirun, srun)");
    mm_args_int(a, "node-rank", "0",
                "this process's place among --nodes (node 0 listens at --master and reports)");
    mm_args_str(a, "master", NULL, "HOST:PORT where node 0 listens for the others (--nodes > 1)");
}

/* --nodes env: the size and rank a launcher gives its processes, the first one set of Open
 * MPI's mpirun, MPICH's and Intel MPI's (PMI) and Slurm's srun. */
static mm_status nodes_from_launcher(int64_t *n, int64_t *r)
{
    static const char *const vars[][2] = {{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
                                          {"PMI_SIZE", "PMI_RANK"},
                                          {"SLURM_NTASKS", "SLURM_PROCID"}};
    for (size_t k = 0; k < sizeof vars / sizeof *vars; k++) {
        const char *size = getenv(vars[k][0]), *rank = getenv(vars[k][1]);
        if (!size || !rank) continue;
        char *e1, *e2;
        *n = strtoll(size, &e1, 10);
        *r = strtoll(rank, &e2, 10);
        if (e1 == size || *e1 || e2 == rank || *e2)
            return mm_fail(MM_ERR_ARG, "--nodes env: %s=%s and %s=%s are not numbers", vars[k][0],
                           size, vars[k][1], rank);
        return MM_OK;
    }
    return mm_fail(MM_ERR_ARG, "--nodes env: no launcher's rank in the environment "
                   "(OMPI_COMM_WORLD_RANK, PMI_RANK or SLURM_PROCID); start it with mpirun or "
                   "srun, or give --nodes N --node-rank R");
}

mm_status mm_nodes_flags_get(const mm_args *a, int *nodes, int *rank, const char **master)
{
    int64_t n = 1, r = 0;
    const char *given = mm_args_get(a, "nodes");
    if (!strcmp(given, "env")) {
        if (mm_args_given(a, "node-rank"))
            return mm_fail(MM_ERR_ARG, "--nodes env takes the rank from the launcher; leave "
                           "--node-rank out");
        MM_TRY(nodes_from_launcher(&n, &r));
    } else {
        char *end;
        n = strtoll(given, &end, 10);
        if (end == given || *end)
            return mm_fail(MM_ERR_ARG, "--nodes %s: give a count (1 to %d) or env", given,
                           MM_MAX_NODES);
        MM_TRY(mm_args_get_int(a, "node-rank", &r));
    }
    if (n < 1 || n > MM_MAX_NODES)
        return mm_fail(MM_ERR_ARG, "--nodes %lld: use 1 to %d", (long long)n, MM_MAX_NODES);
    if (r < 0 || r >= n)
        return mm_fail(MM_ERR_ARG, "--node-rank %lld: use 0 to %lld, one per node", (long long)r,
                       (long long)n - 1);
    *master = n > 1 ? mm_args_get(a, "master") : NULL;
    if (n > 1 && !*master)
        return mm_fail(MM_ERR_ARG, "--nodes %lld: give --master HOST:PORT, where node 0 listens",
                       (long long)n);
    if (n > 1) {
        char host[256];
        int port;
        MM_TRY(mm_group_parse_master(*master, host, sizeof host, &port));
    }
    *nodes = (int)n;
    *rank = (int)r;
    return MM_OK;
}
