#!/usr/bin/env python3
"""The CPU anchor for `mammo bench --device cpu`: the same training step in PyTorch on the CPU,
printed as one machine-readable line:

  torch net=resnet50 device=cpu input=224x224 batch=2 images_per_s=1.23 host_peak_bytes=... threads=2

Workload (what `mammo bench` times without --top): the paper's patch classifier, torchvision's
resnet50 (or vgg16 features + global average pooling) with a 5-class dense layer, weighted softmax
cross-entropy (the class-balancing sample weights), Adam; random weights and data. With --top
SPEC, the whole-image classifier with those top blocks and 2 classes (torch_ref.py's model, as
`mammo bench --top SPEC`). Runs with
Debian's python3-torch (CPU), on as many threads as mammo uses (OpenMP: every online CPU) unless
--threads says otherwise. host_peak_bytes is what the process held resident at its fullest over
what it held before the model was built (Linux's VmHWM over VmRSS, the mark reset there), as
`mammo bench` counts its own: weights, gradients, Adam's moments, activations, scratch.
--eval times evaluation forward passes instead (model.eval() under torch.inference_mode(), as
`mammo bench --eval`): weights and activations only.
"""
import argparse
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from torch_ref import WholeImageNet


def model(net, top):
    if top:
        return WholeImageNet(net, top)
    if net == "resnet50":
        return torchvision.models.resnet50(num_classes=5)
    vgg = torchvision.models.vgg16()
    return nn.Sequential(vgg.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 5))


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="resnet50", choices=["resnet50", "vgg16"])
    ap.add_argument("--top", default=None, help="whole-image top blocks (default: the patch "
                    "classifier)")
    ap.add_argument("--input", default="224x224")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--eval", action="store_true", help="evaluation forward passes instead")
    a = ap.parse_args()
    h, w = (int(v) for v in a.input.split("x"))
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    reset_peak()
    base = status_bytes("VmRSS")
    m = model(a.net, a.top).train(not a.eval)
    classes = 2 if a.top else 5
    opt = None if a.eval else torch.optim.Adam(m.parameters(), lr=1e-4)
    x = torch.rand(a.batch, 3, h, w) * 2 - 1
    y = torch.arange(a.batch) % classes
    wt = torch.ones(a.batch)
    t0 = 0.0
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            t0 = time.perf_counter()
        if a.eval:
            with torch.inference_mode():
                m(x)
            continue
        opt.zero_grad(set_to_none=True)
        loss = (F.cross_entropy(m(x), y, reduction="none") * wt).sum() / wt.sum()
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    print(f"torch net={a.net} top={a.top or 'none'} mode={'eval' if a.eval else 'train'} "
          f"device=cpu input={a.input} batch={a.batch} "
          f"images_per_s={a.batch * a.steps / secs:.3f} "
          f"host_peak_bytes={max(status_bytes('VmHWM') - base, 0)} "
          f"threads={torch.get_num_threads()} "
          f"torch={torch.__version__}")


if __name__ == "__main__":
    main()
