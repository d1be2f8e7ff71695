"""How far bf16 moves the gradients of a tiny net in PyTorch itself: the reference for the bf16
tolerance of tests/test_step_cuda.c (CPU fp32 step against the CUDA bf16 step of the same model).

The model is that test's: a 7x7/2 stem with batch norm, ReLU and 3x3/2 max pooling, a projection
bottleneck (stride 2) and an identity bottleneck, a VGG block (3x3 conv with bias, batch norm,
ReLU, 2x2 max pooling), a 3x3 conv with bias and ReLU, global average pooling, a dense layer and
the weighted cross-entropy, on a [2, 3, 64, 48] batch. One backward pass in fp32 and one under
torch.autocast(bfloat16); prints the relative L2 difference ||g_bf16 - g_fp32|| / ||g_fp32|| of
every parameter gradient and the largest (leaving out the bias of the convolution before a batch
norm, zero in exact arithmetic).

Measured on 2026-11-25 (Debian's torch 1.13, CPU autocast, torch's default initialisation):
0.003-0.42, largest 0.42 (the first bottleneck's bn1 bias), most of the trunk's gradients
0.2-0.4. mammo's CUDA bf16 step measured 0.36 at most against its CPU fp32 step (H100), and the
test allows 0.4: the same size as PyTorch's own bf16 noise on this net, where batch norm over a
batch of 2 amplifies the rounding of bf16 activations.

Usage: /usr/bin/python3 bench/torch_bf16_noise.py   (needs torch; CPU is enough)
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def bottleneck(cin, mid, cout, stride):
    m = nn.ModuleDict(dict(
        c1=nn.Conv2d(cin, mid, 1, stride, bias=False), b1=nn.BatchNorm2d(mid),
        c2=nn.Conv2d(mid, mid, 3, 1, 1, bias=False), b2=nn.BatchNorm2d(mid),
        c3=nn.Conv2d(mid, cout, 1, 1, bias=False), b3=nn.BatchNorm2d(cout)))
    if stride != 1 or cin != cout:
        m["dc"] = nn.Conv2d(cin, cout, 1, stride, bias=False)
        m["db"] = nn.BatchNorm2d(cout)
    return m


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 7, 2, 3, bias=False)
        self.b1 = nn.BatchNorm2d(16)
        self.t0 = bottleneck(16, 8, 32, 2)
        self.t1 = bottleneck(32, 8, 32, 1)
        self.vc = nn.Conv2d(32, 16, 3, 1, 1)
        self.vb = nn.BatchNorm2d(16)
        self.vt = nn.Conv2d(16, 16, 3, 1, 1)
        self.fc = nn.Linear(16, 2)

    @staticmethod
    def block(m, x):
        y = F.relu(m["b1"](m["c1"](x)))
        y = F.relu(m["b2"](m["c2"](y)))
        y = m["b3"](m["c3"](y))
        sc = m["db"](m["dc"](x)) if "dc" in m else x
        return F.relu(y + sc)

    def forward(self, x):
        y = F.max_pool2d(F.relu(self.b1(self.c1(x))), 3, 2, 1)
        y = self.block(self.t1, self.block(self.t0, y))
        y = F.max_pool2d(F.relu(self.vb(self.vc(y))), 2, 2)
        y = F.relu(self.vt(y)).mean((2, 3))
        return self.fc(y)


def main():
    torch.manual_seed(0)
    net = Tiny()
    x = torch.rand(2, 3, 64, 48) * 3 - 1.5
    labels = torch.tensor([1, 0])
    weights = torch.tensor([0.7, 1.6])

    def grads(bf16):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = (F.cross_entropy(out.float(), labels, reduction="none") * weights).sum()
        (loss / weights.sum()).backward()
        return {n: p.grad.detach().clone() for n, p in net.named_parameters()}

    g32, g16 = grads(False), grads(True)
    worst = 0.0
    for name, a in g32.items():
        rel = ((g16[name] - a).norm() / a.norm().clamp_min(1e-30)).item()
        exact_zero = name == "vc.bias"  # a conv bias before batch norm
        print(f"{name:14s} rel L2 {rel:8.3f}{'  (zero in exact arithmetic)' if exact_zero else ''}")
        if not exact_zero:
            worst = max(worst, rel)
    print(f"largest relative L2 difference, bf16 against fp32: {worst:.3f}")


if __name__ == "__main__":
    main()
