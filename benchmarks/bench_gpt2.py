"""GPT-2 small (124M parameters) on minigrad beside transformers' GPT2LMHeadModel: load, memory, sampling.

    python benchmarks/bench_gpt2.py                        # GPT-2 small's shape, random weights
    python benchmarks/bench_gpt2.py --model path/to/gpt2   # a real GPT-2 directory instead

Without a directory, transformers builds GPT-2 small's shape with random weights (the speed and
memory of a model do not depend on its values) and saves it in the Hugging Face layout. Each
side then runs in its own subprocess, alternating over `--rounds`, and reports the medians:

- load: seconds from the files to a model ready to run (minigrad's GPT.from_pretrained,
  transformers' GPT2LMHeadModel.from_pretrained);
- memory: the process's resident memory after loading, and its peak after sampling;
- sampling: greedy tokens per second, KV cache on both sides, from a prompt of `--prompt-len`
  tokens, `--new-tokens` long;
- agreement: the largest difference between the two sides' logits for the prompt.

Both sides use `--threads` BLAS threads (OPENBLAS_NUM_THREADS for NumPy, torch.set_num_threads).
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


def memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB (Linux's /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def run_minigrad(model_dir: str, prompt: np.ndarray, new_tokens: int, logits_path: str) -> dict:
    from transformer import GPT
    from transformer.sample import generate

    started = time.perf_counter()
    model = GPT.from_pretrained(model_dir)
    load = time.perf_counter() - started
    after_load, _ = memory_mb()
    np.save(logits_path, model(prompt)[0].data)
    started = time.perf_counter()
    generate(model, prompt, new_tokens, temperature=0)
    return {
        "load_s": load,
        "rss_after_load_mb": after_load,
        "tokens_per_s": new_tokens / (time.perf_counter() - started),
    }


def run_transformers(model_dir: str, prompt: np.ndarray, new_tokens: int, threads: int, logits_path: str) -> dict:
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    load = time.perf_counter() - started
    after_load, _ = memory_mb()
    ids = torch.tensor(prompt)
    with torch.no_grad():
        np.save(logits_path, model(ids).logits.numpy())
    started = time.perf_counter()
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, use_cache=True, pad_token_id=0)  # fmt: skip
    return {
        "load_s": load,
        "rss_after_load_mb": after_load,
        "tokens_per_s": new_tokens / (time.perf_counter() - started),
    }


def side(args: argparse.Namespace) -> None:
    """One measurement in this process; prints its JSON."""
    prompt = np.random.default_rng(0).integers(0, 50257, (1, args.prompt_len))
    logits_path = f"{args.logits}.{args.side}.npy"
    if args.side == "minigrad":
        result = run_minigrad(args.model, prompt, args.new_tokens, logits_path)
    else:
        result = run_transformers(args.model, prompt, args.new_tokens, args.threads, logits_path)
    result["peak_rss_mb"] = memory_mb()[1]
    print(json.dumps(result))


def random_gpt2_small(directory: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(bos_token_id=None, eos_token_id=None)).save_pretrained(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a GPT-2 directory (default: GPT-2 small's shape, random weights)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--side", choices=["minigrad", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--logits", help=argparse.SUPPRESS)  # where a side saves the prompt's logits
    args = parser.parse_args()
    if args.side:
        return side(args)

    with tempfile.TemporaryDirectory() as scratch:
        if args.model is None:
            args.model = scratch
            random_gpt2_small(Path(scratch))
        logits = str(Path(scratch) / "logits")
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
        results: dict[str, list[dict]] = {"minigrad": [], "transformers": []}
        for _ in range(args.rounds):
            for name in results:
                flags = ["--model", args.model, "--side", name, "--threads", str(args.threads), "--logits", logits,
                         "--prompt-len", str(args.prompt_len), "--new-tokens", str(args.new_tokens)]  # fmt: skip
                out = subprocess.run([sys.executable, __file__, *flags], env=env, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{name} failed:\n{out.stderr}")
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
        ours, theirs = np.load(f"{logits}.minigrad.npy"), np.load(f"{logits}.transformers.npy")
    print(machine())
    print(f"GPT-2 small's shape from {args.model}; {args.threads} threads; median of {args.rounds} rounds")
    print(f"logits of the prompt: max |minigrad - transformers| = {np.abs(ours - theirs).max():.2e} "
          f"(max |logit| {np.abs(theirs).max():.1f})")  # fmt: skip
    print(f"{'':14}{'load s':>8}{'RSS after load MiB':>20}{'peak RSS MiB':>14}{'tokens/s':>10}")
    for name, runs in results.items():
        med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(
            f"{name:14}{med['load_s']:8.2f}{med['rss_after_load_mb']:20.0f}{med['peak_rss_mb']:14.0f}"
            f"{med['tokens_per_s']:10.1f}"
        )


if __name__ == "__main__":
    main()
