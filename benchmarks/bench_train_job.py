"""The whole training job, `make train` against nanoGPT's train.py, side by side on one machine.

    python benchmarks/bench_train_job.py                    # 2000 iterations, 3 rounds (about 10 minutes)
    python benchmarks/bench_train_job.py --max-iters 250 --rounds 2   # a quick indication

Each round runs every side once, as its own process from start to exit (imports, data,
training, evaluations, checkpoints), alternating the order between rounds because a shared
machine's speed drifts. The sides:

    minigrad N ranks   what `make train` runs: mpiexec -n <cores> minigrad-gpt train
    minigrad 1 process minigrad-gpt train, one process with every core for its BLAS
    nanoGPT            benchmarks/nanogpt_train.py, nanoGPT's train.py loop on PyTorch, its
                       CPU recipe, PyTorch's default threads

Printed: the processor and BLAS kernel, each run's wall time, the CPU time of all its
processes and its final validation loss, then the medians of each side and the ratio of its
wall time to nanoGPT's. On a machine busy with other work the wall times say little: the
scheduler shares the cores among processes, so a job of N processes gets up to N shares. Both trainers run the
same recipe on the same corpus (Tiny Shakespeare, split 90/10), each with its own defaults
otherwise (nanoGPT's bias=False; minigrad's GPT-2 biases) and its own random batches.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_gpt import machine

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
BIN = Path(sys.executable).parent
WARMUP_ITERS = 100  # the recipe's, both trainers' default


def prepare_nanogpt_data(corpus: Path, data_dir: Path) -> int:
    """train.bin and val.bin as nanoGPT's shakespeare_char/prepare.py writes them; returns the vocabulary size."""
    text = corpus.read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(0.9 * len(ids))
    ids[:n].tofile(data_dir / "train.bin")
    ids[n:].tofile(data_dir / "val.bin")
    return len(chars)


def minigrad_command(ranks: int, corpus: Path, out: Path, args) -> list[str]:
    launch = [str(BIN / "mpiexec"), "-n", str(ranks)] if ranks > 1 else []
    flags = ["--data", str(corpus), "--out", str(out), "--max-iters", str(args.max_iters)]
    return launch + [str(BIN / "minigrad-gpt"), "train", *flags, "--eval-interval", str(args.eval_interval)]


def nanogpt_command(data_dir: Path, out: Path, vocab_size: int, args) -> list[str]:
    script = str(ROOT / "benchmarks" / "nanogpt_train.py")
    flags = ["--data-dir", str(data_dir), "--out-dir", str(out), "--vocab-size", str(vocab_size)]
    flags += ["--max-iters", str(args.max_iters), "--eval-interval", str(args.eval_interval)]
    return [sys.executable, script, *flags]


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_job(command: list[str], out: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of all its processes, final validation loss) of one job started afresh."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    started, cpu_before = time.perf_counter(), cpu_seconds_of_children()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - started, cpu_seconds_of_children() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    if (out / "log.csv").exists():
        with open(out / "log.csv", newline="") as f:
            val = float(list(csv.DictReader(f))[-1]["val_loss"])
    else:
        val = float(re.findall(r"val loss ([0-9.]+)", done.stdout)[-1])
    return wall, cpu, val


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-iters", type=int, default=2000)
    parser.add_argument("--eval-interval", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=os.cpu_count(), help="minigrad's ranks (default: every core)")
    parser.add_argument("--data", type=Path, default=CORPUS, help="the corpus (default: Tiny Shakespeare)")
    parser.add_argument("--sides", default="mpi,one,nanogpt", help="which of mpi, one, nanogpt to run")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"no corpus at {args.data}; pass --data PATH")
    if args.max_iters <= WARMUP_ITERS:  # nanoGPT's cosine would divide by zero at the end of the warm-up
        raise SystemExit(f"--max-iters must exceed the recipe's {WARMUP_ITERS} warm-up iterations")
    if args.max_iters % args.eval_interval:
        raise SystemExit("--max-iters must be a multiple of --eval-interval: both trainers then evaluate at the end")

    print(f"machine: {machine()}")
    print(f"job: {args.max_iters} iterations, evaluation every {args.eval_interval}; {args.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        vocab_size = prepare_nanogpt_data(args.data, tmp / "data")
        jobs = {  # side: (command, run directory)
            f"minigrad {args.ranks} ranks": (minigrad_command(args.ranks, args.data, tmp / "mpi", args), tmp / "mpi"),
            "minigrad 1 process": (minigrad_command(1, args.data, tmp / "one", args), tmp / "one"),
            "nanoGPT (PyTorch)": (nanogpt_command(tmp / "data", tmp / "nano", vocab_size, args), tmp / "nano"),
        }
        chosen = dict(zip(["mpi", "one", "nanogpt"], jobs))
        sides = [chosen[name] for name in args.sides.split(",")]
        results: dict[str, list[tuple[float, float, float]]] = {side: [] for side in sides}
        for r in range(args.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                wall, cpu, val = run_job(*jobs[side])
                results[side].append((wall, cpu, val))
                print(f"  round {r + 1}  {side:20s} {wall:7.1f} s  ({cpu:6.1f} CPU s)  val loss {val:.4f}", flush=True)

    rival = "nanoGPT (PyTorch)"
    rival_wall = statistics.median(run[0] for run in results[rival]) if rival in results else None
    print()
    print(f"| job, {args.max_iters} iterations | wall s (median) | range | / nanoGPT | CPU s | final val loss |")
    print("|---|---:|---:|---:|---:|---:|")
    for side, runs in results.items():
        walls = [wall for wall, _, _ in runs]
        median = statistics.median(walls)
        ratio = f"{median / rival_wall:.2f}x" if rival_wall else "-"
        cpu = statistics.median(cpu for _, cpu, _ in runs)
        vals = ", ".join(f"{val:.3f}" for _, _, val in runs)
        print(f"| {side} | {median:.1f} | {min(walls):.1f}-{max(walls):.1f} | {ratio} | {cpu:.1f} | {vals} |")
    print(f"\nmeasured on: {machine()}")


if __name__ == "__main__":
    main()
