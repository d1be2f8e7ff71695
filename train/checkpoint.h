/* Training checkpoints: one safetensors file that PyTorch can read, holding
 *   - every parameter and running statistic under torchvision's names, in PyTorch's layouts
 *     (the same tensors mm_model_save writes, so a checkpoint is also a weights file);
 *   - Adam's moments of the trainable parameters as "optimizer.exp_avg.<name>" and
 *     "optimizer.exp_avg_sq.<name>" (torch.optim.Adam's state names), same layouts;
 *   - metadata: the architecture (kind, trunk, top spec, classes), where training stands (stage,
 *     epochs done in it, optimizer step, global step, best validation metric, epochs without
 *     improvement), the pixel mean, the class names, the seed and the run's configuration.
 * Files are written to a temporary name and renamed, so a process killed while writing leaves the
 * previous checkpoint intact. */
#ifndef MM_CHECKPOINT_H
#define MM_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "../nets/nets.h"

typedef struct mm_train_state {
    int stage;            /* 1-based stage of the schedule */
    int epoch;            /* epochs completed in this stage */
    int64_t adam_step;    /* optimizer steps taken in this stage (bias correction) */
    int64_t global_step;  /* optimizer steps over the whole run */
    double best_metric;   /* best validation metric so far (AUC or accuracy), -1 if none */
    int best_stage, best_epoch;
    int bad_epochs;       /* epochs since the best (early stopping) */
    float pixel_mean;     /* subtracted from the rescaled pixels */
    float rescale;        /* multiplies the raw 16-bit pixels (255/65535 as the reference) */
    int height, width;    /* input size the model was trained at */
    uint64_t seed;
    char class_names[128]; /* comma-separated, in output order */
} mm_train_state;

void mm_train_state_init(mm_train_state *st);

/* Writes the checkpoint (with optimizer moments when the session has Adam slots). `config_json`
 * (may be NULL) is stored as metadata "config". */
mm_status mm_checkpoint_save(const char *path, const mm_model *m, const mm_session *s,
                             const mm_train_state *st, const char *config_json);

/* The architecture and state a checkpoint holds, without loading tensors. */
typedef struct mm_checkpoint_info {
    mm_model_kind kind;
    mm_trunk trunk;
    int classes;
    int width_div; /* reduced-width trunk (nets.h), 1 = torchvision's */
    char top[256];
    bool has_state; /* written by mm_checkpoint_save (not just weights) */
    mm_train_state st;
} mm_checkpoint_info;
/* A PyTorch state_dict (.pth, runtime/torch_pth.h) has no metadata: its kind, trunk, width and
 * classes are read from its tensors' names and shapes (a patch classifier: a dense `fc` of 5
 * outputs), which is all --patch-model needs; a whole-image one is refused (its top blocks are
 * not in it). */
mm_status mm_checkpoint_info_read(const char *path, mm_checkpoint_info *info);
/* The same from a checkpoint already open (messages name mm_safetensors_path(f)). A reader that
 * needs the metadata before it can build the model (resume, predict) opens the file once, reads
 * the metadata with this, builds the model, then loads with mm_checkpoint_load_from or
 * mm_model_load_from, so everything comes from one file even if it is replaced meanwhile. */
mm_status mm_checkpoint_info_from(const mm_safetensors *f, mm_checkpoint_info *info);

/* Checks that the checkpoint's architecture is the model's; a mismatch is one clear error naming
 * the file, what it holds and what the flags ask for. */
mm_status mm_checkpoint_check_arch(const char *path, const mm_checkpoint_info *info,
                                   const mm_model *m);

/* Loads parameters and statistics (all must be present), and the optimizer moments of the
 * session's trainable parameters when `with_optimizer` (missing moments are an error then). */
mm_status mm_checkpoint_load(const char *path, const mm_model *m, mm_session *s,
                             bool with_optimizer);
/* The same from a checkpoint already open (weights and moments from that one handle; it stays
 * open). */
mm_status mm_checkpoint_load_from(const mm_safetensors *f, const mm_model *m, mm_session *s,
                                  bool with_optimizer);

#endif
