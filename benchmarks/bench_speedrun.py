"""The speedrun's ablation table: the whole recipe, each idea taken out, and nanoGPT, in one run.

    python benchmarks/bench_speedrun.py                       # every variant, 3 seeds (about an hour, quiet 2 cores)
    python benchmarks/bench_speedrun.py --seeds 1 --variants recipe,adamw   # a quick indication

Each variant is `minigrad-gpt train --recipe speedrun` with one or two flags given again, so
one idea is out (docs/training.md, "The speedrun"); each runs as `make speedrun` does, on every
core (`--ranks`), one process from start to exit, for every seed. nanoGPT's train.py at its
own recipe (benchmarks/nanogpt_train.py, 2000 iterations) runs once per seed between them,
so both sides meet the same drift of a shared machine. Printed: the processor and BLAS kernel,
each run, then per variant the mean and range over seeds of the wall time, of the
iterations and the characters of training text it took to stop (load-independent measures
of the recipe, with `step_flops`'s count of the arithmetic they cost), and of the final
validation bits per character (measured over the whole split), and the wall time's ratio to nanoGPT's.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_train_job import BIN, CORPUS, nanogpt_command, prepare_nanogpt_data, run_job
from machine import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from transformer.speedrun import RECIPES, TARGET_BPC  # noqa: E402

RECIPE = RECIPES["speedrun"]
BATCH_12_ITERS = round(RECIPE["max_iters"] * RECIPE["batch_size"] / 12)  # the same characters in batches of 12
VARIANTS = {  # name: (what is taken out, the flags that take it out)
    "recipe": ("nothing: the whole recipe", []),
    "adamw": ("Muon: AdamW for every weight", ["--optimizer", "adamw"]),
    "cosine": ("the trapezoid: nanoGPT's cosine decay", ["--lr-schedule", "cosine"]),
    "learned-pos": ("rotary: learned position embeddings", ["--no-rotary"]),
    "layernorm": ("RMSNorm: LayerNorm", ["--norm", "layernorm"]),
    "no-qk-norm": ("QK-norm", ["--no-qk-norm"]),
    "relu2": ("GELU: ReLU²", ["--activation", "relu2"]),
    "untied": ("(an idea added) an untied head", ["--no-tie-embeddings"]),
    "biases": ("no biases: GPT-2's biases", ["--bias"]),
    "batch-12": ("batch 32: batch 12, as many characters", ["--batch-size", "12", "--max-iters", str(BATCH_12_ITERS)]),
    "softcap": ("(an idea added) logit soft-cap 15", ["--logit-softcap", "15"]),
}
NANOGPT = "nanoGPT train.py, its recipe"


def step_flops(batch: int, muon: bool, C: int = 128, L: int = 4, T: int = 64, V: int = 65, ns_steps: int = 5) -> float:
    """Floating-point operations of one training step: a load-independent cost per iteration.

    Forward: 2 per multiply-add of every matrix product, the blocks' 12·C² weights and the
    head's V·C per token, and attention's q kᵀ and weights·v, 2·T·C per token and layer each;
    the backward pass costs twice the forward. Muon adds, per matrix (r, c) with r <= c, five
    Newton–Schulz steps of X Xᵀ (2r²c), its square (2r³) and the product with X (2r²c).
    """
    tokens = batch * T
    forward = 2 * tokens * (L * 12 * C * C + V * C) + 2 * 2 * L * tokens * T * C
    shapes = [(C, 3 * C), (C, C), (C, 4 * C), (C, 4 * C)]  # per block, the shorter side first
    newton_schulz = L * sum(ns_steps * (4 * r * r * c + 2 * r**3) for r, c in shapes) if muon else 0
    return 3 * forward + newton_schulz


def speedrun_command(ranks: int, corpus: Path, out: Path, seed: int, flags: list[str]) -> list[str]:
    launch = [str(BIN / "mpiexec"), "-n", str(ranks)] if ranks > 1 else []
    own = ["--recipe", "speedrun", "--data", str(corpus), "--out", str(out), "--seed", str(seed)]
    return launch + [str(BIN / "minigrad-gpt"), "train", *own, *flags]


def last_row(run_dir: Path) -> dict[str, str]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))[-1]


def spread(values: list[float], digits: int) -> str:
    """mean (min-max) of values."""
    return f"{statistics.mean(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def ratio(wall: float, rival: float) -> str:
    """wall / rival as "0.42x", or "-" when nanoGPT did not run."""
    return f"{wall / rival:.2f}x" if math.isfinite(rival) else "-"


def print_table(results: dict[str, list[dict[str, float]]], nanogpt_walls: list[float]) -> None:
    rival = statistics.mean(nanogpt_walls) if nanogpt_walls else math.nan
    print(
        f"\n| taken out | reached {TARGET_BPC:.4f} | wall s | / nanoGPT | iterations | characters (M) | "
        "training GFLOP | val bits/char |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        walls = [r["wall"] for r in runs]
        reached = sum(r["bpc"] <= TARGET_BPC for r in runs)
        print(
            f"| {VARIANTS[name][0] if name in VARIANTS else name} | {reached}/{len(runs)} | {spread(walls, 1)} | "
            f"{ratio(statistics.mean(walls), rival)} | {spread([r['iters'] for r in runs], 0)} | "
            f"{spread([r['chars'] / 1e6 for r in runs], 2)} | {spread([r['gflops'] for r in runs], 0)} | "
            f"{spread([r['bpc'] for r in runs], 4)} |"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"some of {', '.join(VARIANTS)}")
    parser.add_argument("--ranks", type=int, default=os.cpu_count(), help="ranks per run (default: every core)")
    parser.add_argument("--data", type=Path, default=CORPUS, help="the corpus (default: Tiny Shakespeare)")
    parser.add_argument("--nanogpt-iters", type=int, default=2000, help="nanoGPT's iterations (0: leave it out)")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose among {', '.join(VARIANTS)}")

    print(f"machine: {machine()}")
    print(f"{len(variants)} variants x {args.seeds} seeds on {args.ranks} ranks; target {TARGET_BPC:.4f} bits/char")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    nanogpt_walls: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        vocab_size = prepare_nanogpt_data(args.data, tmp / "data")
        for seed in range(args.seeds):
            if args.nanogpt_iters:
                nano_args = argparse.Namespace(max_iters=args.nanogpt_iters, eval_interval=250)
                wall, cpu, val = run_job(
                    nanogpt_command(tmp / "data", tmp / "nano", vocab_size, nano_args), tmp / "nano"
                )
                nanogpt_walls.append(wall)
                print(
                    f"  seed {seed}  {NANOGPT:32s} {wall:7.1f} s ({cpu:6.1f} CPU s)  "
                    f"val {val / math.log(2):.4f} bits/char (20 batches)"
                )
            for name in variants if seed % 2 == 0 else variants[::-1]:
                out = tmp / name
                wall, cpu, _ = run_job(
                    speedrun_command(args.ranks, args.data, out, 1337 + seed, VARIANTS[name][1]), out
                )
                row = last_row(out)
                flags = VARIANTS[name][1]
                batch = int(flags[flags.index("--batch-size") + 1]) if "--batch-size" in flags else RECIPE["batch_size"]
                iters = int(row["iter"])
                gflops = iters * step_flops(batch, muon="--optimizer" not in flags) / 1e9
                result = dict(
                    wall=wall, iters=iters, chars=iters * batch * 64, gflops=gflops, bpc=float(row["val_bpc"])
                )
                results[name].append(result)
                print(
                    f"  seed {seed}  {name:32s} {wall:7.1f} s ({cpu:6.1f} CPU s)  "
                    f"stopped at {iters}, val {result['bpc']:.4f} bits/char (whole split)",
                    flush=True,
                )
    print_table(results, nanogpt_walls)
    if nanogpt_walls:
        nano_chars, nano_gflops = args.nanogpt_iters * 12 * 64 / 1e6, args.nanogpt_iters * step_flops(12, False) / 1e9
        print(
            f"| {NANOGPT} | | {spread(nanogpt_walls, 1)} | 1.00x | {args.nanogpt_iters} | {nano_chars:.2f} | "
            f"{nano_gflops:.0f} | |"
        )
    print(f"\nmeasured on: {machine()}")


if __name__ == "__main__":
    main()
