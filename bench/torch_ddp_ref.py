#!/usr/bin/env python3
"""The PyTorch anchor for `mammo bench --replicas N`: bench/torch_ref.py's whole-image training
step under DistributedDataParallel, one process per GPU, started by torchrun:

  torchrun --standalone --nproc_per_node N bench/torch_ddp_ref.py --net resnet50 --precision bf16

Each rank trains on its own random batch of --batch images (so N x --batch images a step, as
mammo's replicas), gradients averaged by DDP's NCCL all-reduce, batch norm per GPU (no
SyncBatchNorm, as mammo). Rank 0 prints one line, the figures over every rank:

  torch net=resnet50 precision=bf16 replicas=N images_per_s=... peak_mem_bytes=...

images_per_s counts every rank's images; peak_mem_bytes is the largest rank's peak allocated
memory over the timed steps. Settings (channels_last, cudnn.benchmark, TF32 pinned, autocast for
bf16) are torch_ref.py's.
"""
import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import (DEFAULT_TOP, WholeImageNet, add_workload_args, input_hw,  # noqa: E402
                       pin_math, workload)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_workload_args(ap)  # --batch: images per GPU and step
    args = ap.parse_args()

    if "LOCAL_RANK" not in os.environ:
        sys.exit("torch_ddp_ref.py: start it with torchrun --nproc_per_node N")
    h, w = input_hw(args, "torch_ddp_ref.py")
    top = args.top if args.top is not None else DEFAULT_TOP[args.net]
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    pin_math(args.precision)
    torch.manual_seed(0)  # the same weights everywhere (DDP also sends rank 0's)
    dev = torch.device("cuda", local)
    model = WholeImageNet(args.net, top).to(dev).to(memory_format=torch.channels_last).train()
    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local])
    torch.manual_seed(1 + rank)  # each rank its own batch
    step = workload(model, args, h, w, dev)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    dist.barrier()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    dist.barrier()
    t1 = time.perf_counter()
    peak = torch.tensor([torch.cuda.max_memory_allocated()], device=dev, dtype=torch.int64)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    finite = torch.tensor([int(bool(torch.isfinite(loss)))], device=dev)
    dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if rank == 0:
        if not finite.item():
            print("torch_ddp_ref.py: the loss is not finite", file=sys.stderr, flush=True)
        else:
            ips = world * args.steps * args.batch / (t1 - t0)
            print(f"torch net={args.net} precision={args.precision} replicas={world} "
                  f"images_per_s={ips:.3f} peak_mem_bytes={peak.item()} input={h}x{w} "
                  f"batch={args.batch} steps={args.steps} "
                  f"device=\"{torch.cuda.get_device_name()}\" torch={torch.__version__}",
                  flush=True)
    dist.destroy_process_group()
    if not finite.item():
        sys.exit(1)


if __name__ == "__main__":
    main()
