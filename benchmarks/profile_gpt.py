"""Profile minigrad's GPT training step: where does the time go?

    python benchmarks/profile_gpt.py                 # cProfile, top functions by own time
    python benchmarks/profile_gpt.py --size gpu --steps 2
    python benchmarks/profile_gpt.py --by-op         # wall time of each op's forward and backward

Runs the same model, batches and AdamW as bench_gpt.py, a few warm-up steps first. Times are
CPU seconds of this process as well as wall-clock, so a busy machine disturbs them less.
`--by-op` times every op's forward and backward by the wall clock instead (mg.profile), so
that time lands on the op that spent it.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpt import (  # noqa: E402
    BETAS,
    LEARNING_RATE,
    SIZES,
    WARMUP_STEPS,
    WEIGHT_DECAY,
    batches,
    model_config,
)
from machine import machine  # noqa: E402

import minigrad as mg  # noqa: E402
from transformer import GPT, GPTConfig  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="baby")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=25, help="how many functions to list")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by-op", action="store_true", help="wall time per op instead of cProfile")
    args = parser.parse_args(argv)
    size = SIZES[args.size]

    model = GPT(GPTConfig(**model_config(size)), rng=np.random.default_rng(args.seed))
    optimizer = model.configure_optimizers(WEIGHT_DECAY, LEARNING_RATE, BETAS)
    data = batches(size, WARMUP_STEPS + args.steps, args.seed)

    def step(x, y) -> None:
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for x, y in data[:WARMUP_STEPS]:
        step(x, y)
    print(f"machine: {machine()}")
    if args.by_op:
        wall = time.perf_counter()
        with mg.profile() as prof:
            for x, y in data[WARMUP_STEPS:]:
                step(x, y)
        wall = (time.perf_counter() - wall) / args.steps
        print(f"{args.steps} steps: {1000 * wall:.1f} ms/step wall")
        prof.table(top=args.top)
        return
    wall, cpu = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile()
    profiler.enable()
    for x, y in data[WARMUP_STEPS:]:
        step(x, y)
    profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{args.steps} steps: {1000 * wall / args.steps:.1f} ms/step wall, {1000 * cpu / args.steps:.1f} ms/step CPU")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
