"""What noting each op's source lines (minigrad/source_lines.py) costs a GPT training step.

    python benchmarks/bench_source_lines.py               # the baby GPT, nanoGPT's CPU recipe
    python benchmarks/bench_source_lines.py --steps 40

Trains one model and alternates steps with the note on and off (so both see the same drift of
a shared machine), and prints the median step of each; then the time a step spends inside the
note itself, timed call by call, as a fraction of a step: the same cost, without the noise of
comparing whole steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one thread: steps comparable on a shared machine

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing it
from machine import machine  # noqa: E402

import minigrad as mg  # noqa: E402
from minigrad import source_lines  # noqa: E402
from transformer.gpt import GPT, GPTConfig  # noqa: E402


def step(model: GPT, optimizer, x: np.ndarray, y: np.ndarray) -> int:
    """One training step; returns how many ops it recorded."""
    _, loss = model(x, y)
    ops = count_ops(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return ops


def count_ops(loss) -> int:
    seen, stack = set(), [loss]
    while stack:
        t = stack.pop()
        if t.grad_fn is None or id(t) in seen:
            continue
        seen.add(id(t))
        stack += [p for p in t.grad_fn.parents if p is not None]
    return len(seen)


def time_spent_noting(model: GPT, optimizer, x: np.ndarray, y: np.ndarray) -> float:
    """Seconds one training step spends in `source_lines.caller()`, timed around each call.

    The timing wrapper is compiled as if it were part of minigrad, so that the walk up the
    stack skips it as it skips minigrad's own frames and sees exactly the stack it sees in
    training. Each call also pays for two clock reads: an upper bound.
    """
    spent = [0.0]
    wrapper = (
        "def timed():\n    start = clock()\n    where = note()\n    spent[0] += clock() - start\n    return where\n"
    )
    namespace = {"clock": time.perf_counter, "note": source_lines.caller, "spent": spent}
    exec(compile(wrapper, source_lines.__file__, "exec"), namespace)
    source_lines.caller = namespace["timed"]
    try:
        step(model, optimizer, x, y)
    finally:
        source_lines.caller = namespace["note"]
    return spent[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="steps with the note on, and as many off")
    parser.add_argument("--readable", action="store_true", help="the readable definitions (fused=False): more ops")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    config = GPTConfig(
        vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, fused=not args.readable
    )
    model = GPT(config, rng=rng)
    optimizer = mg.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    x = rng.integers(0, 65, size=(12, 64))
    y = np.roll(x, -1, axis=1)
    times = {True: [], False: []}
    step(model, optimizer, x, y)  # warm up
    for k in range(2 * args.steps):
        on = k % 2 == 0
        source_lines.record(on)
        start = time.perf_counter()
        ops = step(model, optimizer, x, y)
        times[on].append(time.perf_counter() - start)
    source_lines.record(True)
    noting = statistics.median(time_spent_noting(model, optimizer, x, y) for _ in range(5))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    kind = "readable definitions" if args.readable else "fused kernels"
    print(machine())
    print(f"GPT step (4 layers, 128 wide, batch 12 x 64, {kind}), median of {args.steps} each:")
    print(f"  noting lines: {on * 1e3:.1f} ms   not noting: {off * 1e3:.1f} ms   ratio {on / off:.3f}")
    print(
        f"  {ops} ops recorded per step, {noting * 1e6:.0f} us noting them ({noting / ops * 1e6:.1f} us per op): "
        f"{noting / off:.2%} of a step"
    )


if __name__ == "__main__":
    main()
