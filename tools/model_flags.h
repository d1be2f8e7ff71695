/* The flags that choose a model, shared by `mammo forward`, `mammo summary` and `mammo plan`:
 *   --net resnet50|vgg16   --classes N   --patch   --top SPEC   --input HxW   --batch B
 * With neither --patch nor --top the model is torchvision's classifier (ImageNet head); --patch
 * gives the paper's patch classifier (GAP + fc), --top SPEC a whole-image classifier (nets/nets.h
 * has the spec grammar). --classes defaults to 1000, 5 or 2 accordingly. */
#ifndef MM_MODEL_FLAGS_H
#define MM_MODEL_FLAGS_H

#include "../nets/nets.h"
#include "args.h"

/* Declares the flags; with_size adds --input and --batch. */
void mm_model_flags_add(mm_args *a, bool with_size);
/* Fills a config from the parsed flags (tier-1 errors name the flag). */
mm_status mm_model_flags_get(mm_model_config *c, const mm_args *a, bool with_size);
/* --width-div N: the trunk's channel counts divided by N (1, 2, 4, ... 64: it must divide 64). */
void mm_width_div_flag_add(mm_args *a);
mm_status mm_width_div_flag_get(const mm_args *a, int *width_div);
/* --scratch-mb auto|N: memory the convolutions' scratch may add to a step's peak so that faster
 * algorithms fit (graph.h scratch_budget and scratch_strict): auto (the default) adds it only
 * where keeping a convolution's scratch in the gaps would slow it down much; N MiB is a hard
 * bound (*strict). */
void mm_scratch_flag_add(mm_args *a);
mm_status mm_scratch_flag_get(const mm_args *a, size_t *bytes, bool *strict);
/* --deterministic: the same bits every run (backend.h deterministic); _set applies it to be. */
void mm_deterministic_flag_add(mm_args *a);
void mm_deterministic_flag_set(const mm_args *a, mm_backend *be);
/* --algo-cache auto|DIR|off: the folder where a cuda backend keeps its convolution algorithm
 * choices between runs (backend.h algo_cache_dir). _get writes it to dir (n bytes), "" when off
 * or `device` (the --device value) is not cuda, and makes the folder: one named on the command
 * line that cannot be made is a tier-1 error, the automatic one a warning (nothing is kept).
 * _apply sets it on be. */
void mm_algo_cache_flag_add(mm_args *a);
mm_status mm_algo_cache_flag_get(const mm_args *a, const char *device, char *dir, size_t n);
mm_status mm_algo_cache_flag_apply(const mm_args *a, const char *device, mm_backend *be);
/* --recompute-conv N: with recomputation, also recompute convolutions of at most N multiply-adds
 * per output (graph.h recompute_conv_macs); -1 (the default, *macs = -1) leaves the device's
 * (none on the cpu; mm_recompute_conv_cuda on cuda). */
void mm_recompute_conv_flag_add(mm_args *a);
mm_status mm_recompute_conv_flag_get(const mm_args *a, int64_t *macs);
/* --recompute-slack auto|PCT: how far (percent) recomputation may let the activation arena grow
 * over its smallest to recompute less (graph.h recompute_slack, as a fraction): auto (the
 * default, *slack = -1) leaves the device's (mm_recompute_slack_cuda on cuda). */
void mm_recompute_slack_flag_add(mm_args *a);
mm_status mm_recompute_slack_flag_get(const mm_args *a, double *slack);
/* --nodes N --node-rank R --master HOST:PORT: data parallel across machines (runtime/group.h);
 * --nodes env takes N and R from the launcher (mpirun's OMPI_COMM_WORLD_*, PMI_*, srun's
 * SLURM_NTASKS / SLURM_PROCID). _get checks them (N 1 to MM_MAX_NODES, R below N, --master
 * given and well formed when N > 1; *master NULL otherwise). */
void mm_nodes_flags_add(mm_args *a);
mm_status mm_nodes_flags_get(const mm_args *a, int *nodes, int *rank, const char **master);
/* Parses "HxW" (e.g. 1152x896); errors name `flag`. */
mm_status mm_parse_hw(const char *s, const char *flag, int *h, int *w);

#endif
