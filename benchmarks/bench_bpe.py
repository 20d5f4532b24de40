"""Time BPE training: `BPETokenizer.train` against minbpe's recount-every-merge loop, side by side.

    python benchmarks/bench_bpe.py                    # 200,000 characters to 400 tokens, the corpus to 1,024
    python benchmarks/bench_bpe.py --chars 50000 --vocab-size 300 --rounds 5
    python benchmarks/bench_bpe.py --full-reference   # also time the reference on the whole corpus (minutes)

minbpe (karpathy/minbpe) is not an installable package, so the reference is its training
algorithm re-created in tests/reference/minbpe.py, as slow as the original: every merge
recounts every pair of the whole text and rewrites every chunk. `BPETokenizer.train` counts
the pairs once over the distinct chunks and then updates only the chunks each merge touches.
Both learn the same merges (checked here on every round, and in tests/test_bpe.py).

The two sides alternate over several rounds on one process, and the range over the rounds is
printed with the median, because a shared machine's speed drifts while a benchmark runs.
Tiny Shakespeare is read from the copy beside the checkout (../shared/data), or found by the
trainer's own rules.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing it
sys.path.insert(0, str(ROOT / "tests"))
CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

from machine import processor  # noqa: E402
from reference import minbpe  # noqa: E402

from transformer.data import resolve_corpus  # noqa: E402
from transformer.tokenizer import SPLIT_PATTERNS, BPETokenizer  # noqa: E402


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def spread(seconds: list[float]) -> str:
    low, high = min(seconds), max(seconds)
    return f"median {statistics.median(seconds):.2f} s (range {low:.2f}-{high:.2f}, {len(seconds)} rounds)"


def side_by_side(text: str, vocab_size: int, pattern: str, rounds: int) -> None:
    print(f"\n{len(text):,} characters to {vocab_size} tokens ({vocab_size - 256} merges), {rounds} rounds:")
    ours, reference = [], []
    for r in range(rounds):
        for side in ("reference", "ours") if r % 2 == 0 else ("ours", "reference"):
            if side == "ours":
                seconds, tokenizer = timed(BPETokenizer.train, text, vocab_size, pattern)
                ours.append(seconds)
                merges = tokenizer.merges
            else:
                regex_text = SPLIT_PATTERNS.get(pattern, pattern)
                seconds, (reference_merges, _) = timed(minbpe.train, text, vocab_size, regex_text)
                reference.append(seconds)
            print(f"  round {r + 1} {side:9s} {seconds:8.2f} s", flush=True)
        if merges != reference_merges:
            raise SystemExit("the merges differ from the reference's: the benchmark compares different work")
    print(f"  minbpe re-created  {spread(reference)}")
    print(f"  BPETokenizer.train {spread(ours)}")
    print(f"  speed-up {statistics.median(reference) / statistics.median(ours):.0f}x (medians); same merges: yes")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=200_000, help="characters of the corpus for the side by side")
    parser.add_argument("--vocab-size", type=int, default=400, help="vocabulary for the side by side")
    parser.add_argument("--full-vocab-size", type=int, default=1024, help="vocabulary for the whole corpus")
    parser.add_argument("--pattern", default="gpt4", help="split pattern: gpt4, gpt2 or a regular expression")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full-reference", action="store_true", help="time the reference on the whole corpus too")
    args = parser.parse_args(argv)

    corpus = resolve_corpus(CORPUS if CORPUS.exists() else None, warn=print)
    print(f"processor: {processor()}; Python {platform.python_version()}; one thread (pure Python and regex)")
    print(f"corpus: {corpus.source}, {len(corpus.text):,} characters; split pattern {args.pattern}")
    side_by_side(corpus.text[: args.chars], args.vocab_size, args.pattern, args.rounds)

    if args.full_reference:
        side_by_side(corpus.text, args.full_vocab_size, args.pattern, 1)
        return
    print(f"\nthe whole corpus to {args.full_vocab_size} tokens, BPETokenizer.train alone:")
    seconds = []
    for r in range(args.rounds):
        elapsed, tokenizer = timed(BPETokenizer.train, corpus.text, args.full_vocab_size, args.pattern)
        seconds.append(elapsed)
        print(f"  round {r + 1} {elapsed:8.2f} s", flush=True)
    print(f"  train  {spread(seconds)}")
    elapsed, ids = timed(tokenizer.encode, corpus.text)
    print(f"  encode {elapsed:.2f} s: {len(ids):,} tokens, {len(corpus.text) / len(ids):.2f} characters per token")


if __name__ == "__main__":
    main()
