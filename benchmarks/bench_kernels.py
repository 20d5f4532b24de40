"""Time each fused kernel against its readable definition, forward + backward, at the baby GPT's shapes.

    python benchmarks/bench_kernels.py            # baby GPT shapes (batch 12, block 64, 128 wide)
    python benchmarks/bench_kernels.py --size gpu # nanoGPT's GPU-recipe shapes

The definitions (minigrad/functional.py) build each formula from primitive ops (one graph
node, and one NumPy pass or more, per primitive); the kernels (minigrad/kernels.py) are single
nodes with hand-derived backward.
Each time is the best of several repeats, in CPU milliseconds of this process (single-threaded
NumPy work is counted exactly; a busy machine disturbs it less than wall-clock time).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing it
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

import minigrad.functional as F  # noqa: E402
from minigrad import Tensor  # noqa: E402
from minigrad import kernels as K  # noqa: E402

SHAPES = {
    "baby": dict(B=12, T=64, C=128, n_head=4, vocab=65),
    "gpu": dict(B=64, T=256, C=384, n_head=6, vocab=65),
}


def best_ms(fn, repeats: int = 5, number: int = 5) -> float:
    fn()  # warm up: caches, allocator
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - start) / number)
    return 1000 * best


def forward_backward(op, *arrays):
    """A closure that runs op forward on fresh leaves and backward with a fixed gradient."""
    grad_out = None

    def run():
        nonlocal grad_out
        leaves = [Tensor(a, requires_grad=True) for a in arrays]
        out = op(*leaves)
        if grad_out is None:
            grad_out = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
        out.backward(grad_out)

    return run


def cases(s: dict) -> dict:
    rng = np.random.default_rng(0)
    B, T, C, nh, V = s["B"], s["T"], s["C"], s["n_head"], s["vocab"]

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x, hidden = rand(B, T, C), rand(B, T, 4 * C)
    q, k, v = (rand(B, nh, T, C // nh) for _ in range(3))
    targets = rng.integers(0, V, B * T)
    ids = rng.integers(0, V, (B, T))
    return {
        f"gelu ({B}, {T}, {4 * C})": (K.gelu, F.gelu, (hidden,)),
        f"linear {C} -> {4 * C}": (K.linear, F.linear, (x, rand(4 * C, C), rand(4 * C))),
        f"layer_norm ({B}, {T}, {C})": (K.layer_norm, F.layer_norm, (x, rand(C), rand(C))),
        f"attention ({B}, {nh}, {T}, {C // nh}) causal": (
            lambda q, k, v: K.scaled_dot_product_attention(q, k, v, is_causal=True),
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            (q, k, v),
        ),
        f"cross_entropy ({B * T}, {V})": (
            lambda z: K.cross_entropy(z, targets),
            lambda z: F.cross_entropy(z, targets),
            (rand(B * T, V),),
        ),
        f"embedding ({V}, {C})[({B}, {T})]": (
            lambda w: K.embedding(ids, w),
            lambda w: F.embedding(ids, w),
            (rand(V, C),),
        ),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SHAPES), default="baby")
    args = parser.parse_args(argv)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "all")
    print(f"machine: {machine()}")
    print(f"forward + backward, CPU ms (best of 5), OpenBLAS threads: {threads}")
    print("| kernel | fused | definition | speed-up |")
    print("|---|---:|---:|---:|")
    for name, (fused, composed, arrays) in cases(SHAPES[args.size]).items():
        t_fused = best_ms(forward_backward(fused, *arrays))
        t_composed = best_ms(forward_backward(composed, *arrays))
        print(f"| {name} | {t_fused:.2f} | {t_composed:.2f} | {t_composed / t_fused:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
