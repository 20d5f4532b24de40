"""What watching costs: mg.profile()'s overhead on a GPT training step, and the backward explorer's
page size and load time for a two-layer GPT.

    python benchmarks/bench_explorer.py                  # both
    python benchmarks/bench_explorer.py --rounds 5 --steps 10

Profiling: the same model, batches and AdamW step, timed alternately without and with
`with mg.profile()` around each step (warm-up steps first); medians and the range over
rounds. Explorer: `minigrad-gpt graph --html`'s GPT (two blocks, 16 wide), the time of
`explore()` and the page's size, then its load in headless Chromium (the Navigation Timing
load event) when one is installed. Prints the processor and the BLAS library with the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

from machine import machine  # noqa: E402

import minigrad as mg  # noqa: E402
from minigrad.optim import AdamW  # noqa: E402
from minigrad.viz import explore  # noqa: E402
from transformer.gpt import GPT, GPTConfig  # noqa: E402


def profiling_overhead(rounds: int, steps: int) -> None:
    config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)  # the trainer's default
    rng = np.random.default_rng(0)
    model = GPT(config, rng=rng)
    optimizer = AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    data = [rng.integers(0, config.vocab_size, size=(12, config.block_size + 1)) for _ in range(steps)]

    def step(tokens: np.ndarray) -> None:
        _, loss = model(tokens[:, :-1], tokens[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def run(profiled: bool) -> list[float]:
        times = []
        for tokens in data:
            start = time.perf_counter()
            if profiled:
                with mg.profile():
                    step(tokens)
            else:
                step(tokens)
            times.append(1e3 * (time.perf_counter() - start))
        return times

    for tokens in data[:2]:  # warm-up
        step(tokens)
    medians = {"plain": [], "profiled": []}
    for r in range(rounds):
        for side in ("plain", "profiled") if r % 2 == 0 else ("profiled", "plain"):
            medians[side].append(statistics.median(run(side == "profiled")))
    with mg.profile() as prof:
        step(data[0])
    ops = sum(e.cat == "forward" for e in prof.events)
    plain, profiled = statistics.median(medians["plain"]), statistics.median(medians["profiled"])
    print(f"training step, GPT 4 layers x 128 wide, batch 12 x 64, {ops} ops forward; {rounds} rounds x {steps} steps")
    for side, values in medians.items():
        spread = f"rounds {min(values):.1f} to {max(values):.1f}"
        print(f"  {side:9s} median {statistics.median(values):7.1f} ms/step ({spread})")
    print(f"  overhead of mg.profile() on the step: {100 * (profiled / plain - 1):+.1f} %")
    # The step's noise hides the cost, so measure it where it is all there is: a tiny op.
    per_op = recording_cost_us()
    events = len(prof.events)
    print(
        f"  recording costs {per_op:.1f} us per op run (forward or backward, a 4-element op); "
        f"{events} per step: {events * per_op / 1e3:.2f} ms, {100 * events * per_op / 1e3 / plain:.2f} % of the step"
    )


def recording_cost_us(repeats: int = 20000, rounds: int = 7) -> float:
    """Median over rounds of (time with mg.profile - time without) per forward and backward of x * 2."""
    x = mg.Tensor(np.ones(4), requires_grad=True)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            (x * 2).sum().backward()
        return time.perf_counter() - start

    differences = []
    for _ in range(rounds):
        plain = run()
        with mg.profile():
            profiled = run()
        differences.append((profiled - plain) / (4 * repeats) * 1e6)  # Mul and Sum, forward and backward
    return statistics.median(differences)


def explorer_page() -> None:
    config = GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=16)  # as `minigrad-gpt graph`
    rng = np.random.default_rng(0)
    model = GPT(config, rng=rng)
    idx = rng.integers(0, config.vocab_size, size=(2, config.block_size))
    _, loss = model(idx, np.roll(idx, -1, axis=1))
    start = time.perf_counter()
    explorer = explore(loss, model=model)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = explorer.save(Path(tmp) / "step.html")
        size = path.stat().st_size
        nodes, steps = len(explorer.data["nodes"]), len(explorer.data["backward_order"])
        print(f"explorer, GPT 2 layers x 16 wide: {nodes} nodes, {steps} backward steps")
        print(f"  explore() incl. Graphviz layout {seconds:.2f} s; page {size / 1024:.0f} KiB")
        load_in_browser(path)


def load_in_browser(path: Path, rounds: int = 5) -> None:
    from headless_browser import browser_paths, open_file, start_chromium

    if browser_paths() is None:
        print("  (no chromium and chromedriver: load time not measured)")
        return
    browser = start_chromium()
    try:
        loads = []
        for _ in range(rounds):
            open_file(browser, path)
            loads.append(browser.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd"))
        walk = browser.execute_script(
            "const t = performance.now(); while (window.minigradExplorer.step() !== null) {}"
            " return performance.now() - t"
        )
    finally:
        browser.quit()
    print(
        f"  load in headless Chromium: median {statistics.median(loads):.0f} ms ({min(loads):.0f} to {max(loads):.0f})"
    )
    print(f"  stepping through the whole backward: {walk:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="alternating runs of each side")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run")
    args = parser.parse_args()
    print(machine())
    explorer_page()
    profiling_overhead(args.rounds, args.steps)


if __name__ == "__main__":
    main()
