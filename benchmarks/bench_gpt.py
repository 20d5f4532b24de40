"""Train and sample the same GPT in minigrad and in PyTorch, side by side, and compare.

    python benchmarks/bench_gpt.py                      # the baby GPT (nanoGPT's CPU recipe)
    python benchmarks/bench_gpt.py --size gpu --steps 3 # nanoGPT's GPU-recipe sizes, a few steps

Both sides start from the same weights (minigrad's initialisation, loaded into nanoGPT's
PyTorch `GPT` with `strict=True`), see the same batches, and take AdamW steps with the same
hyper-parameters and parameter groups. Each side runs in its own subprocess, so neither
pays for the other's imports, threads or memory; the sides alternate over several rounds and
the medians are reported, because a shared machine's speed drifts while a benchmark runs.

Printed per side: milliseconds per training step (forward, backward, AdamW), the ratio
minigrad / PyTorch, the peak resident memory of the training process and how much it grew
during training, and tokens per second when sampling: minigrad's KV-cached `generate`
(transformer/sample.py, which `GPT.generate` runs), minigrad recomputing the whole context every token
(nanoGPT's loop, written out below for the comparison), and nanoGPT's
`generate` in PyTorch. Sampling is timed three times: for `--sample-tokens` tokens from one
start token (past the block size the context window slides, every token changes position,
and any exact sampler recomputes the window, cache or not), for as many tokens after a prompt
that fills the block (every one of them past it: the steady cost of a long text), and for
block_size - 1 tokens from one start token, the KV cache's range.
PyTorch is optional: without it only minigrad's numbers appear. With mpi4py installed a third
side, minigrad-mpi, trains as `--ranks` MPI ranks (2 by default) that share the same threads:
each takes its rows of every batch, one reduce-scatter sums the gradients, and each rank
updates its share of the parameters before an all-gather shares them, as the trainer does under
mpiexec.

minigrad's side keeps freed memory in the process for reuse (minigrad/memory.py), as the
trainer does, instead of letting glibc return every large array to the kernel and fault its
pages in again the next step.
PyTorch's process gets the same malloc settings by default, through glibc's environment
variables, so both sides allocate alike; `--torch-malloc default` runs PyTorch with glibc's
defaults instead, as it runs out of the box.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing it
from machine import machine  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

# Both libraries get the same threads (2 by default, --threads): OpenBLAS for NumPy, intra-op
# threads for PyTorch, set in each side's environment before it starts.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# glibc's environment spelling of what minigrad.memory.keep_freed_memory() sets: no mmap for
# large blocks, and a heap that is never trimmed.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**62)}

SIZES = {
    # nanoGPT's config/train_shakespeare_char.py with its CPU overrides
    "baby": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, steps=30),
    # the same file as written for a GPU
    "gpu": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, steps=3),
}
VOCAB_SIZE = 65  # Tiny Shakespeare's characters
LEARNING_RATE, BETAS, WEIGHT_DECAY = 1e-3, (0.9, 0.99), 0.1
WARMUP_STEPS = 3


def token_stream(n_tokens: int, seed: int) -> np.ndarray:
    """The corpus as character ids (sorted characters, as nanoGPT's prepare.py), or random ids."""
    if CORPUS.exists():
        text = CORPUS.read_text(encoding="utf-8")
        chars = sorted(set(text))
        lookup = np.zeros(max(map(ord, chars)) + 1, dtype=np.int64)
        lookup[[ord(c) for c in chars]] = np.arange(len(chars))
        return lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]
    return np.random.default_rng(seed).integers(0, VOCAB_SIZE, n_tokens)


def batches(size: dict, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` random (x, y) windows of the corpus, y shifted by one, each (batch, block)."""
    B, T = size["batch_size"], size["block_size"]
    data = token_stream(100_000, seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        starts = rng.integers(0, len(data) - T - 1, B)
        x = np.stack([data[s : s + T] for s in starts])  # (B, T)
        y = np.stack([data[s + 1 : s + T + 1] for s in starts])  # (B, T)
        out.append((x, y))
    return out


def memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc (Linux) or getrusage."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak


# ---------------------------------------------------------------- the two sides (subprocesses)


def model_config(size: dict) -> dict:
    keys = ("n_layer", "n_head", "n_embd", "block_size")
    return dict({k: size[k] for k in keys}, vocab_size=VOCAB_SIZE, dropout=0.0, bias=True)


def run_minigrad(size: dict, weights: str, steps: int, seed: int, sample_tokens: int) -> dict:
    from safetensors.numpy import load_file

    from minigrad.memory import keep_freed_memory
    from transformer import GPT, GPTConfig
    from transformer.distributed import world

    keep_freed_memory()  # as the trainer does: freed arrays' memory is reused, not faulted in again
    model = GPT(GPTConfig(**model_config(size)))
    model.load_state_dict(load_file(weights))
    optimizer = model.configure_optimizers(WEIGHT_DECAY, LEARNING_RATE, BETAS)
    data = batches(size, WARMUP_STEPS + steps, seed)
    # under mpiexec each rank takes its rows of every batch and updates its share of the parameters, as the trainer
    ranks, params = world(), list(model.parameters())
    rows = ranks.shard(size["batch_size"])
    share = (rows.stop - rows.start) / size["batch_size"]

    def step(x, y) -> float:
        _, loss = model(x[rows], y[rows])
        optimizer.zero_grad()
        loss.backward()
        (batch_loss,) = ranks.sum_gradients(params, share, [share * loss.item()])
        optimizer.step()  # this rank's parameters
        ranks.share_parameters(params)
        return batch_loss

    in_block = size["block_size"] - 1  # from one token to a full context: the KV cache's range
    full = full_prompt(size, seed)
    samplers = {
        "tokens_per_s": lambda: sample_minigrad(model, sample_tokens, seed, use_cache=True),
        "past_block_tokens_per_s": lambda: sample_minigrad(model, sample_tokens, seed, use_cache=True, start=full),
        "tokens_per_s_no_cache": lambda: sample_minigrad(model, sample_tokens, seed, use_cache=False),
        "in_block_tokens_per_s": lambda: sample_minigrad(model, in_block, seed, use_cache=True),
        "in_block_tokens_per_s_no_cache": lambda: sample_minigrad(model, in_block, seed, use_cache=False),
    }
    return measure(step, data, samplers if ranks.size == 1 else {})


def full_prompt(size: dict, seed: int) -> np.ndarray:
    """A prompt of block_size random token ids (1, block_size): every token sampled after it is past the block."""
    return np.random.default_rng(seed).integers(0, VOCAB_SIZE, (1, size["block_size"]))


def sample_minigrad(model, n_tokens: int, seed: int, use_cache: bool, start: np.ndarray | None = None) -> float:
    from transformer import sample  # imported before the clock starts: PyTorch's side times no import either

    start = np.zeros((1, 1), dtype=np.int64) if start is None else start
    t0 = time.perf_counter()
    generate = sample.generate if use_cache else generate_without_cache  # the KV cache, or nanoGPT's loop
    generate(model, start, n_tokens, rng=np.random.default_rng(seed))
    return n_tokens / (time.perf_counter() - t0)


def generate_without_cache(model, idx: np.ndarray, n_tokens: int, rng: np.random.Generator) -> np.ndarray:
    """nanoGPT's loop, the rival of the KV cache: the whole (cropped) context through the model per token."""
    from minigrad import no_grad
    from transformer.sample import sample

    model.eval()
    with no_grad():
        for _ in range(n_tokens):
            logits, _ = model(idx[:, -model.config.block_size :])  # (1, T, V)
            idx = np.concatenate([idx, sample(logits.data[:, -1, :], rng=rng)[:, None]], axis=1)  # (1, T + 1)
    model.train()
    return idx


def run_torch(size: dict, weights: str, steps: int, seed: int, sample_tokens: int) -> dict:
    import torch
    from safetensors.numpy import load_file

    sys.path.insert(0, str(ROOT / "tests"))
    from reference.nanogpt import GPT, GPTConfig

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**model_config(size)))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in load_file(weights).items()}, strict=True)
    optimizer = model.configure_optimizers(WEIGHT_DECAY, LEARNING_RATE, BETAS)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches(size, WARMUP_STEPS + steps, seed)]

    def step(x, y) -> float:
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    def sample(n_tokens: int, start=None) -> float:
        model.eval()
        start = torch.zeros((1, 1), dtype=torch.long) if start is None else torch.from_numpy(start)
        t0 = time.perf_counter()
        model.generate(start, n_tokens)
        model.train()
        return n_tokens / (time.perf_counter() - t0)

    in_block = size["block_size"] - 1
    full = full_prompt(size, seed)
    samplers = {
        "tokens_per_s": lambda: sample(sample_tokens),
        "past_block_tokens_per_s": lambda: sample(sample_tokens, full),
        "in_block_tokens_per_s": lambda: sample(in_block),
    }
    return measure(step, data, samplers)


def measure(step, data: list, samplers: dict) -> dict:
    """Time each training step after a warm-up; report memory around training; then sample."""
    rss_before, _ = memory_mb()
    losses = [step(x, y) for x, y in data[:WARMUP_STEPS]]
    times = []
    for x, y in data[WARMUP_STEPS:]:
        t0 = time.perf_counter()
        losses.append(step(x, y))
        times.append(time.perf_counter() - t0)
    _, peak = memory_mb()
    result = {"ms": [1000 * t for t in times], "losses": losses, "peak_mb": peak, "grown_mb": peak - rss_before}
    for name, sample in samplers.items():
        result[name] = sample()
    return result


# ---------------------------------------------------------------- the driver


def spawn(side: str, args, weights: str) -> dict:
    worker = "torch" if side == "torch" else "minigrad"
    command = [sys.executable, __file__, "--worker", worker, "--weights", weights, "--size", args.size]
    command += ["--steps", str(args.steps), "--seed", str(args.seed), "--sample-tokens", str(args.sample_tokens)]
    threads = args.threads
    if side == RANKS_SIDE:  # the same cores, shared by the ranks
        command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(args.ranks), *command]
        threads = max(1, args.threads // args.ranks)
    env = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads)))
    if side == "torch" and args.torch_malloc == "minigrad":
        env.update(KEEP_FREED_MEMORY)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {side} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_weights(size: dict, seed: int, path: str) -> None:
    """minigrad's initial weights in nanoGPT's names, for both sides to load."""
    from safetensors.numpy import save_file

    from transformer import GPT, GPTConfig

    model = GPT(GPTConfig(**model_config(size)), rng=np.random.default_rng(seed))
    save_file({name: np.ascontiguousarray(array) for name, array in model.state_dict().items()}, path)


RANKS_SIDE = "minigrad-mpi"


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def mpi_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None and (Path(sys.executable).parent / "mpiexec").exists()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="baby")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--steps", type=int, help="timed training steps per run (default: by size)")
    parser.add_argument("--sample-tokens", type=int, default=500, help="tokens to sample for tokens/s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="BLAS / intra-op threads of each side")
    parser.add_argument("--no-torch", action="store_true", help="time minigrad only")
    parser.add_argument(
        "--ranks", type=int, default=2, help="also time minigrad as this many MPI ranks sharing the threads (1: not)"
    )
    parser.add_argument(
        "--torch-malloc",
        choices=["minigrad", "default"],
        default="minigrad",
        help="PyTorch's malloc settings: minigrad's (default) or glibc's defaults",
    )
    parser.add_argument("--worker", choices=["minigrad", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    args.steps = args.steps or size["steps"]

    if args.worker:
        from transformer.distributed import launched_rank

        run = run_minigrad if args.worker == "minigrad" else run_torch
        result = run(size, args.weights, args.steps, args.seed, args.sample_tokens)
        if launched_rank() == 0:
            print(json.dumps(result))
        return

    sides = ["minigrad"] + ([RANKS_SIDE] if args.ranks > 1 and mpi_available() else [])
    sides += ["torch"] if torch_available() and not args.no_torch else []
    print(f"machine: {machine()}", flush=True)
    shape = ", ".join(f"{k} {v}" for k, v in size.items() if k != "steps")
    print(f"GPT {args.size}: {shape}; {args.steps} steps x {args.rounds} rounds, {args.threads} threads", flush=True)
    if RANKS_SIDE in sides:
        print(f"{RANKS_SIDE}: {args.ranks} ranks under mpiexec, {max(1, args.threads // args.ranks)} threads each")
    print(f"PyTorch's malloc settings: {args.torch_malloc}", flush=True)
    results = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "weights.safetensors")
        write_weights(size, args.seed, weights)
        for r in range(args.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                results[side].append(spawn(side, args, weights))
                print(
                    f"  round {r + 1} {side:8s} {statistics.median(results[side][-1]['ms']):8.1f} ms/step", flush=True
                )
    report(results, args.sample_tokens, size["block_size"])


SAMPLING = [
    "tokens_per_s",
    "tokens_per_s_no_cache",
    "past_block_tokens_per_s",
    "in_block_tokens_per_s",
    "in_block_tokens_per_s_no_cache",
]


def report(results: dict, sample_tokens: int, block_size: int) -> None:
    """Medians over every timed step of every round; the worst peak memory of any round; sampling's
    median over the rounds with their range, and minigrad's medians over PyTorch's with the range of
    the rounds' own ratios."""
    summary = {}
    for side, runs in results.items():
        summary[side] = {
            "ms": statistics.median([ms for run in runs for ms in run["ms"]]),
            "peak_mb": max(run["peak_mb"] for run in runs),
            "grown_mb": max(run["grown_mb"] for run in runs),
            "first_loss": runs[0]["losses"][0],
        }
        for key in SAMPLING:
            if key in runs[0]:
                summary[side][key] = [run[key] for run in runs]  # one per round
    torch_ms = summary["torch"]["ms"] if "torch" in summary else None

    def cell(s: dict, key: str) -> str:
        """The median over the rounds, and their range."""
        if key not in s:
            return "-"
        rounds = s[key]
        spread = f" ({min(rounds):.0f}-{max(rounds):.0f})" if len(rounds) > 1 else ""
        return f"{statistics.median(rounds):.0f}{spread}"

    def sampling_ratio(key: str) -> str:
        """minigrad's median over PyTorch's, then the range of the rounds' own ratios: the two sides of
        one round run next to each other, so a round's ratio sees one state of the host."""
        if key not in summary.get("minigrad", {}) or key not in summary.get("torch", {}):
            return "-"
        ours, theirs = summary["minigrad"][key], summary["torch"][key]
        per_round = [a / b for a, b in zip(ours, theirs)]
        spread = f" ({min(per_round):.2f}-{max(per_round):.2f})" if len(per_round) > 1 else ""
        return f"{statistics.median(ours) / statistics.median(theirs):.2f}x{spread}"

    print()
    print("| training | ms/step | / PyTorch | peak RSS MB | RSS growth in training MB |")
    print("|---|---:|---:|---:|---:|")
    for side, s in summary.items():
        ratio = f"{s['ms'] / torch_ms:.2f}x" if torch_ms else "-"
        print(f"| {side} | {s['ms']:.1f} | {ratio} | {s['peak_mb']:.0f} | {s['grown_mb']:.0f} |")
    print()
    print(
        f"| sampling, tokens/s | {sample_tokens} tokens | no cache | {sample_tokens} after a full block "
        f"| {block_size - 1} tokens | no cache |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for side, s in summary.items():
        print("| " + " | ".join([side] + [cell(s, key) for key in SAMPLING]) + " |")
    if "torch" in summary:
        print("| " + " | ".join(["minigrad / torch"] + [sampling_ratio(key) for key in SAMPLING]) + " |")
    print()
    print("first training loss: " + ", ".join(f"{side} {s['first_loss']:.4f}" for side, s in summary.items()))


if __name__ == "__main__":
    main()
