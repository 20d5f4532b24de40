"""What a Hessian-vector product of a GPT's loss costs, against one training step.

    python benchmarks/bench_hvp.py                    # the baby GPT: step, HVP, HVP / step
    python benchmarks/bench_hvp.py --baseline main    # and the training step of `main`'s code

A training step is forward, backward and AdamW; an HVP is `mg.hvp` over every parameter:
forward, backward with create_graph=True (the fused kernels differentiated through their
readable definitions), and the backward of that gradient. PyTorch's nanoGPT does the same
when it is installed (its attention as the composed formula, as its fused CPU kernel has no
double backward). With `--baseline REV`, the training step of the code at git revision REV
(exported to a scratch directory) is timed too, with backward() through a chain of scalar
ops, where the engine's own cost per op is not hidden by NumPy's work: asking for no second
derivative must cost nothing. Each side runs in its own subprocess and the sides alternate over rounds;
medians, minima and ranges are printed, with the processor and BLAS they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# nanoGPT's CPU recipe for Tiny Shakespeare
BABY = dict(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=True)
BATCH_SIZE, WARMUP = 12, 2


def batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, BABY["vocab_size"], (BATCH_SIZE, BABY["block_size"] + 1))
    return np.ascontiguousarray(idx[:, :-1]), np.ascontiguousarray(idx[:, 1:])


def timed(fn, count: int) -> list[float]:
    """Milliseconds of each of `count` calls, after WARMUP untimed ones."""
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return times


def run_minigrad(steps: int, hvps: int) -> dict:
    import minigrad as mg
    from transformer import GPT, GPTConfig

    model = GPT(GPTConfig(**BABY), rng=np.random.default_rng(0))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    x, y = batch(1)

    def step():
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    result = {"step_ms": timed(step, steps), "chain_us_per_op": chain_backward(steps)}
    if hasattr(mg, "hvp"):  # a baseline may predate it
        params = [p for _, p in model.named_parameters()]
        v = [np.random.default_rng(2).standard_normal(p.shape).astype(p.dtype) for p in params]
        result["hvp_ms"] = timed(lambda: mg.hvp(lambda *_: model(x, y)[1], params, v), hvps)
    return result


def chain_backward(count: int, length: int = 10_000) -> list[float]:
    """Microseconds per op of backward() through a chain of `length` scalar multiplications:
    the engine's own cost, which the NumPy work of a real step hides."""
    from minigrad import Tensor

    times = []
    for _ in range(WARMUP + count):
        x = Tensor(1.0, requires_grad=True)
        y = x
        for _ in range(length):
            y = y * 1.0001
        t0 = time.perf_counter()
        y.backward()
        times.append(1e6 * (time.perf_counter() - t0) / length)
    return times[WARMUP:]


def run_torch(steps: int, hvps: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from reference.nanogpt import GPT, GPTConfig

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(0)
    model = GPT(GPTConfig(**BABY))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    x, y = (torch.from_numpy(a) for a in batch(1))
    params = list(model.parameters())
    v = [torch.randn_like(p) for p in params]

    def step():
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def hvp():
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            _, loss = model(x, y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        torch.autograd.grad(grads, params, v)

    return {"step_ms": timed(step, steps), "hvp_ms": timed(hvp, hvps)}


def spawn(side: str, repo: Path, args) -> dict:
    command = [sys.executable, __file__, "--worker", side, "--steps", str(args.steps), "--hvps", str(args.hvps)]
    env = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, str(args.threads)), PYTHONPATH=str(repo))
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=repo)
    if done.returncode != 0:
        raise SystemExit(f"the {side} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(times: list[float]) -> str:
    """Median and range; on a shared machine the minimum is the least disturbed run."""
    return f"median {statistics.median(times):8.1f} ms, best {min(times):8.1f} (range to {max(times):.1f})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per run")
    parser.add_argument("--hvps", type=int, default=3, help="timed HVPs per run")
    parser.add_argument("--threads", type=int, default=2, help="BLAS / intra-op threads of each side")
    parser.add_argument("--baseline", help="a git revision whose training step to time as well")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--worker", choices=["minigrad", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run = run_minigrad if args.worker == "minigrad" else run_torch
        print(json.dumps(run(args.steps, args.hvps)))
        return

    sides = {"minigrad": ("minigrad", ROOT)}
    scratch = tempfile.TemporaryDirectory()
    if args.baseline:
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", scratch.name], input=archive.stdout, check=True)
        sides[f"minigrad at {args.baseline}"] = ("minigrad", Path(scratch.name))
    if (
        not args.no_torch
        and subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    ):
        sides["PyTorch (nanoGPT)"] = ("torch", ROOT)

    results = {name: {} for name in sides}
    for _ in range(args.rounds):
        for name, (side, repo) in sides.items():
            for key, times in spawn(side, repo, args).items():
                results[name].setdefault(key, []).extend(times)

    print(f"baby GPT (4 layers, 4 heads, 128 wide, block 64, batch 12), {args.threads} threads")
    print(f"on {machine()}")
    print(f"median, best and range over {args.rounds} rounds\n")
    for name, times in results.items():
        print(f"{name}")
        print(f"  training step       {summary(times['step_ms'])}")
        if "chain_us_per_op" in times:
            chain = times["chain_us_per_op"]
            median, best = statistics.median(chain), min(chain)
            print(f"  backward, per op    median {median:6.2f} us, best {best:6.2f} (a 10,000-op chain)")
        if "hvp_ms" in times:
            ratio = min(times["hvp_ms"]) / min(times["step_ms"])
            print(f"  HVP, all parameters {summary(times['hvp_ms'])}   best: {ratio:.1f} training steps")
    scratch.cleanup()


if __name__ == "__main__":
    main()
