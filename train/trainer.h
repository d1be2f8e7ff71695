/* The trainer: the paper's staged fine-tuning as one loop, for the patch classifier (3 stages:
 * last layer, top layers, all layers) and the whole-image classifier (2 stages: new top layers,
 * then all), with Adam, class-balanced sample weights, on-the-fly augmentation, validation every
 * epoch, checkpoints every epoch, the best model kept, early stopping and exact resumption.
 *
 * Run folder (RUN_DIR):
 *   last.safetensors   checkpoint after the latest epoch (weights, BN statistics, Adam moments,
 *                      train state); --resume continues from it
 *   best.safetensors   the checkpoint of the best validation epoch (the model to predict with)
 *   metrics.jsonl      the event log (runtime/jsonl.h); config.json the run's configuration
 * Every file is written to a temporary name and renamed.
 *
 * Stages rebuild the graph (other parameters train, so the plan differs) and carry the weights
 * over; each stage starts with fresh Adam moments, as the reference recompiles its Keras model. A
 * loss that stops being finite ends the run with a clear error; last.safetensors keeps the last
 * good epoch. On the cpu backend a resumed run reproduces the uninterrupted run's losses bitwise:
 * the loader's order and augmentation are functions of (seed, epoch, position), dropout masks of
 * (seed, step), and the checkpoint holds every number the next step reads.
 *
 * Across nodes (--nodes N) every node trains its replicas on its own share of each step's
 * batches and node 0 alone reads the starting weights or the checkpoint, validates, logs and
 * writes the run folder: the other nodes get its training state, weights and decisions through
 * the group (runtime/group.h), and train step for step as one process with N times the replicas
 * (on the cpu bitwise). */
#ifndef MM_TRAINER_H
#define MM_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "../nets/nets.h"
#include "../runtime/backend.h"
#include "augment.h"
#include "dataset.h"

#define MM_MAX_STAGES 4

typedef struct mm_stage {
    int epochs;
    double lr;
    const char *trainable; /* comma-separated name prefixes; NULL = all */
} mm_stage;

typedef struct mm_train_config {
    const char *command;     /* "train-patch" / "train-image", for the log */
    mm_model_kind kind;      /* MM_MODEL_PATCH or MM_MODEL_WHOLE */
    mm_trunk trunk;
    const char *top;         /* whole: top block spec */
    int classes;             /* 5 / 2 */
    int width_div;           /* reduced-width trunk (nets.h); 1 = torchvision's */
    const char *class_names; /* comma-separated */
    int height, width, batch, eval_batch;
    float dropout;
    int n_stages;
    mm_stage stages[MM_MAX_STAGES];
    double beta1, beta2, eps, weight_decay;
    bool decoupled_wd;
    bool class_balanced;
    bool augment;
    mm_augment_params aug;
    float rescale;           /* 255/65535 for 16-bit PNGs */
    uint64_t seed;
    int threads;             /* decoding threads, 0 = all */
    int patience;            /* early stopping: epochs without improvement, 0 = off */
    const char *device, *precision;
    bool deterministic;      /* the same bits every run (backend.h; --deterministic) */
    char algo_cache_dir[1024]; /* where cuda keeps its convolution choices ("": nowhere) */
    bool cuda_graph;         /* replay each training step as one CUDA graph (--cuda-graph) */
    int replicas;            /* data parallel (--replicas, runtime/dist.h): this many replicas,
                                each on its own GPU from `device` on with `batch` images a step,
                                gradients averaged; 0 or 1: one device */
    int accumulate;          /* --accumulate: micro-batches of `batch` images per optimizer step,
                                their gradients averaged as replicas' are; 0 or 1: one */
    int nodes;               /* data parallel across machines (--nodes, runtime/group.h): this
                                many processes, each with `replicas` replicas; 0 or 1: one */
    int node_rank;           /* this process's place among them (--node-rank); 0 writes the run */
    const char *master;      /* node 0's HOST:PORT (--master) when nodes > 1 */
    size_t scratch_budget;   /* bytes scratch may add to the peak (--scratch-mb; graph.h) */
    bool scratch_strict;     /* scratch_budget is a hard bound (--scratch-mb N, not auto) */
    bool no_recompute;       /* keep every activation backward reads (--no-recompute; nets.h) */
    int64_t recompute_conv;  /* --recompute-conv: nets.h recompute_conv_macs; -1: the device's */
    double recompute_slack;  /* --recompute-slack as a fraction: nets.h; -1: the device's */
    const char *run_dir;
    const char *init;        /* weights to start from (or NULL) */
    mm_load_mode init_mode;  /* MM_LOAD_TRUNK: patch-to-whole conversion / ImageNet trunk;
                                MM_LOAD_ALL: transfer a whole-image model */
    bool resume;
    const mm_dataset *train, *val;
    const char *config_json; /* stored in checkpoints and config.json */
} mm_train_config;

/* Defaults shared by both commands: Adam (0.9, 0.999, 1e-8), no weight decay, class-balanced
 * weights, augmentation on with the paper's parameters, rescale 255/65535, seed 0, patience 0,
 * the device's recomputation. */
void mm_train_config_defaults(mm_train_config *c);

/* Trains; prints progress; returns the first error (tier 1) or MM_OK. The best validation metric
 * (AUC for 2 classes, accuracy otherwise) is returned in *best when not NULL. */
mm_status mm_train_run(const mm_train_config *c, double *best);

#endif
