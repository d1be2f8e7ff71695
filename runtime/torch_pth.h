/* PyTorch checkpoints (torch.save's .pth / .pt files) read without Python, into a safetensors
 * handle held in memory, so that whatever loads weights (--init, --patch-model, forward
 * --weights) takes torchvision's downloads (~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth)
 * and a PyTorch run's checkpoints as they are.
 *
 * Both formats of torch.save: the zip archive of PyTorch 1.6 and later (<name>/data.pkl, each
 * storage's bytes in <name>/data/<key>, <name>/byteorder), and the sequence of pickles before it
 * (`_use_new_zipfile_serialization=False`: the magic number, protocol 1001, the system's sizes
 * and byte order, the object, its storages' keys, then each storage as an int64 element count
 * and its bytes). The object's pickle is read by runtime/pickle.h, which runs nothing: a pickle
 * cannot make mammo execute code.
 *
 * What is taken: a dict of tensors (model.state_dict()), or the one under "state_dict",
 * "model_state_dict", "model" or "net" in a checkpoint dict whose other entries (epoch, optimizer,
 * arguments) are left alone; the prefix "module." that DataParallel adds to every name is
 * removed. Tensors may be views (offsets, strides, shared storages); each becomes a contiguous
 * row-major tensor of the handle, named as in the dict, in the dict's order. Floating-point
 * tensors (float32, float16, bfloat16, float64) become F32; integer and bool tensors keep their
 * dtype (I64, I32, I16, I8, U8, BOOL: torchvision's num_batches_tracked is I64, which weight
 * loading skips). The handle's metadata holds "format": "pt" and "mammo.source": "torch.save"
 * (zip) or "torch.save legacy".
 *
 * Tier-1 errors name the file and what is wrong: a pickled module instead of its state_dict (with
 * its class), a dict with no tensors (with its keys), a compressed archive, a big-endian file,
 * quantized or sparse tensors, a storage shorter than its tensors, and anything truncated. */
#ifndef MM_TORCH_PTH_H
#define MM_TORCH_PTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "safetensors.h"

/* Whether the file's first bytes (n >= 16 read where the file has them) are torch.save's: a zip
 * archive, or a pickle starting with the legacy format's magic number. */
bool mm_pth_sniff(const uint8_t *head, size_t n);

/* A whole file in memory (not kept: the handle holds its own copy of the tensors). */
mm_status mm_pth_parse(mm_safetensors **out, const uint8_t *data, size_t size, const char *label);
mm_status mm_pth_open(mm_safetensors **out, const char *path);

/* Weights of either kind: a PyTorch checkpoint by its first bytes, else a safetensors file. */
mm_status mm_weights_open(mm_safetensors **out, const char *path);

#endif
