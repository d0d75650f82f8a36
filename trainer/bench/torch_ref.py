# SPDX-License-Identifier: MIT OR Apache-2.0
"""PyTorch reference for `odm-train bench`: the same post-activation WRN-d-k, batch, all-pairs contrastive loss and
Adam on fixed random batches, on the CPU. Run by trainer/bench/run.sh only (never by the tests).
Prints one line: `pytorch <img/s> <s/step> <peak MiB>`.
Usage: torch_ref.py DEPTH WIDTH INPUT DIM BATCH STEPS WARMUP THREADS [cl]"""
import resource
import sys
import time

import torch
import torch.nn as nn


class ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k, stride):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a, self.b = ConvBn(cin, cout, 3, stride), ConvBn(cout, cout, 3, 1)
        self.short = ConvBn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.b(torch.relu(self.a(x)))
        return torch.relu(y + (self.short(x) if self.short is not None else x))


class Wrn(nn.Module):
    def __init__(self, depth, width, dim):
        super().__init__()
        n, k = (depth - 4) // 6, width
        self.stem = ConvBn(3, 16, 3, 1)
        blocks, cin = [], 16
        for cout, stride in [(16 * k, 1), (32 * k, 2), (64 * k, 2)]:
            for i in range(n):
                blocks.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.embed = nn.Linear(cin, dim)

    def forward(self, x):
        y = self.blocks(torch.relu(self.stem(x)))
        return self.embed(y.mean(dim=(2, 3)))


def pair_loss(e, labels, margin=10.0, w_same=0.25):
    d2 = (e.unsqueeze(1) - e.unsqueeze(0)).pow(2).sum(-1)
    d = (d2 + 1e-9).sqrt()
    b = len(labels)
    upper = torch.triu(torch.ones(b, b), 1)
    same = (labels.unsqueeze(1) == labels.unsqueeze(0)).float() * upper
    diff = (labels.unsqueeze(1) != labels.unsqueeze(0)).float() * upper
    hinge = 0.5 * (margin - d).clamp_min(0).pow(2)
    return w_same * (0.5 * d2 * same).sum() / same.sum() + (1 - w_same) * (hinge * diff).sum() / diff.sum()


def main():
    depth, width, inp, dim, batch, steps, warmup, threads = map(int, sys.argv[1:9])
    # An optional 9th argument `cl`: channels-last tensors (odm's layout) instead of PyTorch's default.
    extra = sys.argv[9:]
    if extra not in ([], ["cl"]):
        sys.exit(f"torch_ref.py: unknown arguments {extra} (the 9th may only be `cl`)")
    layout = torch.channels_last if extra == ["cl"] else torch.contiguous_format
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = Wrn(depth, width, dim).to(memory_format=layout)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(batch, 3, inp, inp).to(memory_format=layout)
    labels = torch.arange(batch) // 4
    for s in range(warmup + steps):
        if s == warmup:
            t0 = time.perf_counter()
        loss = pair_loss(net(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pytorch {steps * batch / secs:.1f} {secs / steps:.4f} {peak:.0f}")


if __name__ == "__main__":
    main()
