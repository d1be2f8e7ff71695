#!/usr/bin/env python3
"""The PyTorch anchor for `mammo bench`: one whole-image training step of the paper's nets
(Shen et al., end2end-all-conv), timed the same way, printed as one machine-readable line:

  torch net=resnet50 precision=bf16 images_per_s=12.34 peak_mem_bytes=... peak_reserved_bytes=...

Model: torchvision resnet50 trunk (children[:-2]) or vgg16 `features`, then the top blocks of
--top, global average pooling and a 2-class dense layer; weighted softmax cross-entropy (the
sample weights of class balancing); Adam. Top blocks, as the reference Keras code builds them:
  [M-N-O]xR  a stage of R bottleneck units (original ResNet v1: conv1x1(M, stride s) BN ReLU,
             conv3x3(N) BN ReLU, conv1x1(O) BN, shortcut conv1x1(O, stride s) + BN on the first
             unit of the stage, add, ReLU); the first unit of each stage has stride 2;
  MxR        a VGG block: R x (conv3x3(M) BN ReLU), then 2x2 max pooling.

Settings pinned so that the comparison is like for like: channels_last, cudnn.benchmark on,
TF32 set explicitly both ways (fp32: off for matmul and cuDNN; tf32: on for both; bf16: autocast
to bfloat16 with TF32 off for what stays fp32), random weights (no download), random data.
Timing: --warmup steps, then --windows windows of --steps steps, each between two cuda
synchronisations; images_per_s is the best window's rate (eager PyTorch's rate moved by up to a
half between runs on an H200, mammo's CUDA-graph step by 0.1%: the anchor at its best),
images_per_s_median the median window's. Peak memory: the caching allocator's peak over the
timed steps (allocated, and reserved), reset after warmup.
--eval times evaluation forward passes instead (model.eval() under torch.inference_mode(), bf16
by autocast; no optimizer), as `mammo bench --eval`.
"""
import argparse
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class Bottleneck(nn.Module):
    """Original ResNet v1 bottleneck (stride on the first 1x1), as the reference's top blocks."""

    def __init__(self, cin, m, n, o, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, m, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(m)
        self.conv2 = nn.Conv2d(m, n, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(n)
        self.conv3 = nn.Conv2d(n, o, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(o)
        self.shortcut = None
        if stride != 1 or cin != o:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, o, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(o))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = F.relu(self.bn2(self.conv2(y)), inplace=True)
        y = self.bn3(self.conv3(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s, inplace=True)


def vgg_block(cin, m, reps):
    layers = []
    for _ in range(reps):
        layers += [nn.Conv2d(cin, m, 3, padding=1), nn.BatchNorm2d(m), nn.ReLU(inplace=True)]
        cin = m
    layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers), m


def build_top(spec, cin):
    """Parses --top ("[512-512-1024]x2,[512-512-1024]x2" or "512x1,512x1") into modules."""
    mods = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        r = re.fullmatch(r"\[(\d+)-(\d+)-(\d+)\]x(\d+)", item)
        v = re.fullmatch(r"(\d+)x(\d+)", item)
        if r:
            m, n, o, reps = map(int, r.groups())
            for u in range(reps):
                mods.append(Bottleneck(cin, m, n, o, 2 if u == 0 else 1))
                cin = o
        elif v:
            m, reps = map(int, v.groups())
            blk, cin = vgg_block(cin, m, reps)
            mods.append(blk)
        else:
            sys.exit(f"torch_ref.py: --top {spec}: cannot read '{item}'; "
                     "use [M-N-O]xR or MxR items separated by commas")
    return nn.Sequential(*mods), cin


class WholeImageNet(nn.Module):
    def __init__(self, net, top):
        super().__init__()
        if net == "resnet50":
            r = torchvision.models.resnet50(weights=None)
            self.trunk = nn.Sequential(*list(r.children())[:-2])
            cin = 2048
        elif net == "vgg16":
            self.trunk = torchvision.models.vgg16(weights=None).features
            cin = 512
        else:
            sys.exit(f"torch_ref.py: --net {net}: use resnet50 or vgg16")
        self.top, cin = build_top(top, cin)
        self.fc = nn.Linear(cin, 2)

    def forward(self, x):
        x = self.top(self.trunk(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


DEFAULT_TOP = {"resnet50": "[512-512-1024]x2,[512-512-1024]x2", "vgg16": "512x1,512x1"}


def add_workload_args(ap):
    """The flags of the workload (shared with torch_ddp_ref.py)."""
    ap.add_argument("--net", default="resnet50", choices=["resnet50", "vgg16"])
    ap.add_argument("--top", default=None, help="top blocks (default: the paper's best per net)")
    ap.add_argument("--input", default="1152x896", help="HxW")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-4)


def input_hw(args, prog):
    m = re.fullmatch(r"(\d+)x(\d+)", args.input)
    if not m:
        sys.exit(f"{prog}: --input {args.input}: use HxW, e.g. 1152x896")
    return int(m.group(1)), int(m.group(2))


def pin_math(precision):
    """TF32 set explicitly both ways, cuDNN's benchmark mode on."""
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def workload(model, args, h, w, dev):
    """Adam on `model` and a random batch on dev; returns step(), one training step (with
    --eval, one evaluation forward pass, returning the logits' sum)."""
    x = torch.randn(args.batch, 3, h, w, device=dev).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 2, (args.batch,), device=dev)
    weights = torch.rand(args.batch, device=dev) + 0.5
    use_autocast = args.precision == "bf16"
    if getattr(args, "eval", False):
        def forward():
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                        enabled=use_autocast):
                return model(x).float().sum()

        return forward
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
            logits = model(x)
        nll = F.cross_entropy(logits.float(), labels, reduction="none")
        loss = (weights * nll).sum() / weights.sum()
        loss.backward()
        opt.step()
        return loss

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_workload_args(ap)
    ap.add_argument("--eval", action="store_true",
                    help="evaluation forward passes instead of training steps")
    ap.add_argument("--windows", type=int, default=1,
                    help="timed windows of --steps steps each; the best one's rate is printed")
    ap.add_argument("--profile", type=int, default=0,
                    help="then N more steps under torch.profiler: the costliest CUDA kernels")
    args = ap.parse_args()
    if args.steps < 1 or args.windows < 1:
        sys.exit("torch_ref.py: --steps and --windows must be at least 1")

    if not torch.cuda.is_available():
        sys.exit("torch_ref.py: no CUDA device visible to PyTorch")
    h, w = input_hw(args, "torch_ref.py")
    top = args.top if args.top is not None else DEFAULT_TOP[args.net]
    pin_math(args.precision)
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = WholeImageNet(args.net, top).to(dev).to(memory_format=torch.channels_last)
    model.train(not args.eval)
    step = workload(model, args, h, w, dev)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(args.windows):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        torch.cuda.synchronize()
        rates.append(args.steps * args.batch / (time.perf_counter() - t0))
        if not torch.isfinite(loss):
            sys.exit("torch_ref.py: the loss is not finite")

    ips = max(rates)
    median = sorted(rates)[len(rates) // 2]
    print(f"torch net={args.net} precision={args.precision} "
          f"mode={'eval' if args.eval else 'train'} images_per_s={ips:.3f} "
          f"images_per_s_median={median:.3f} windows={args.windows} "
          f"peak_mem_bytes={torch.cuda.max_memory_allocated()} "
          f"peak_reserved_bytes={torch.cuda.max_memory_reserved()} "
          f"input={h}x{w} batch={args.batch} steps={args.steps} "
          f"device=\"{torch.cuda.get_device_name()}\" torch={torch.__version__}", flush=True)
    if args.profile > 0:
        print_profile(step, args.profile)


def print_profile(step, n):
    """n steps under torch.profiler; the 25 CUDA kernels with the most time of their own (to set
    beside `mammo bench --profile`)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            step()
        torch.cuda.synchronize()
    table = None
    for key in ("self_device_time_total", "self_cuda_time_total"):  # the name changed in 2.x
        try:
            table = prof.key_averages().table(sort_by=key, row_limit=25)
            break
        except (KeyError, AttributeError, ValueError):
            continue
    print(table if table is not None else "torch_ref.py: the profiler gave no table", flush=True)


if __name__ == "__main__":
    main()
