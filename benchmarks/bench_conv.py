"""Time conv2d forward + backward against PyTorch's, at the size of a ResNet layer.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_conv.py     # batch 32, 64 -> 64 channels, 3×3, 32×32

minigrad's conv2d is im2col (every 3×3×64 receptive field copied out as a row), one matrix
product with the filters, and col2im in the backward (minigrad/conv.py); PyTorch runs its own
convolution kernels. Each time is the best of several repeats, in CPU seconds of this process,
so a busy machine disturbs it less than wall-clock time (it still disturbs caches: compare
ratios from one run). torch runs with one thread, as NumPy's BLAS does under
OPENBLAS_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing it

from bench_kernels import best_ms, forward_backward  # noqa: E402
from machine import machine  # noqa: E402

import minigrad.functional as F  # noqa: E402


def torch_forward_backward(torch, arrays: list):
    TF = torch.nn.functional
    grad_out = None

    def run():
        nonlocal grad_out
        x, w = (torch.tensor(a, requires_grad=True) for a in arrays)
        out = TF.conv2d(x, w, padding=1)
        if grad_out is None:
            grad_out = torch.from_numpy(np.random.default_rng(1).standard_normal(out.shape).astype(np.float32))
        out.backward(grad_out)

    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    B, C, S = args.batch, args.channels, args.size
    arrays = [
        rng.standard_normal((B, C, S, S)).astype(np.float32),
        rng.standard_normal((C, C, 3, 3)).astype(np.float32),
    ]
    print(machine())
    print(f"conv2d forward + backward, batch {B}, {C} -> {C} channels, 3×3, padding 1, {S}×{S}, float32")
    print(f"CPU ms, best of 3 (OpenBLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'all')})")
    ours = best_ms(forward_backward(lambda x, w: F.conv2d(x, w, padding=1), *arrays), repeats=3, number=1)
    print(f"  minigrad  {ours:8.1f}")
    try:
        import torch
    except ImportError:
        print("  torch     (not installed)")
        return
    torch.set_num_threads(1)
    theirs = best_ms(torch_forward_backward(torch, arrays), repeats=3, number=1)
    print(f"  torch     {theirs:8.1f}   minigrad / torch = {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
