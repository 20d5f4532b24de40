"""What BPE learns from Tiny Shakespeare, and how the number of tokens falls as the vocabulary grows.

    python examples/bpe_vocabulary.py --out docs/figures          # draws bpe_compression.png
    python examples/bpe_vocabulary.py --data my.txt --max-vocab-size 1024

The tokenizer learns its merges from the training split (the first 90%, as the trainer does)
up to the largest vocabulary; each smaller vocabulary is a prefix of the same merge list, so one
training run gives them all. Tokens per character are counted on the validation split, text
the merges never saw. Printed: the first merges, the longest tokens, how many tokens are a
whole chunk of the text (such as " the" with its leading space), and the first whole words.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformer.data import resolve_corpus, split_train_val
from transformer.tokenizer import BPETokenizer

SIZES = (256, 320, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)


def tokens_per_character(tokenizer: BPETokenizer, text: str) -> float:
    return len(tokenizer.encode(text)) / len(text)


def draw(path: Path, sizes: list[int], ratios: list[float], chars: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(sizes, ratios, marker="o", label="byte-level BPE (256 bytes + merges)")
    ax.plot([chars], [1.0], marker="s", linestyle="none", color="C3", label=f"characters ({chars} tokens)")
    for size, ratio in zip(sizes, ratios):
        ax.annotate(f"{ratio:.2f}", (size, ratio), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xscale("log", base=2)
    ticks = [chars, *(s for s in sizes if s & (s - 1) == 0)]  # the characters, then the powers of two
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("vocabulary size")
    ax.set_ylabel("tokens per character")
    ax.set_ylim(0, 1.15)
    ax.set_title("Tiny Shakespeare, validation split", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="a UTF-8 text (default: Tiny Shakespeare)")
    parser.add_argument("--max-vocab-size", type=int, default=SIZES[-1])
    parser.add_argument("--out", type=Path, help="a folder for bpe_compression.png")
    args = parser.parse_args(argv)

    corpus = resolve_corpus(args.data)
    train_text, val_text = split_train_val(corpus.text)
    tokenizer = BPETokenizer.train(train_text, args.max_vocab_size)
    print(f"{len(tokenizer.merges)} merges learned from {len(train_text):,} characters of {corpus.source}")

    def show(token: int) -> str:
        return repr(tokenizer.decode([token]))

    print("first merges:", ", ".join(show(t) for t in range(256, min(276, tokenizer.vocab_size))))
    longest = sorted(range(256, tokenizer.vocab_size), key=lambda t: (-len(tokenizer.vocab[t]), t))[:16]
    print("longest tokens:", ", ".join(show(t) for t in longest))
    chunks = set(tokenizer.split(train_text))
    whole = [t for t in range(256, tokenizer.vocab_size) if tokenizer.decode([t]) in chunks]
    print(f"{len(whole)} of the {len(tokenizer.merges)} merged tokens are whole chunks of the text")
    words = [t for t in whole if len(tokenizer.decode([t]).strip()) >= 4 and tokenizer.decode([t]).strip().isalpha()]
    print("the first whole words of four letters or more:", ", ".join(map(show, words[:30])))

    sizes = [s for s in SIZES if s < args.max_vocab_size] + [args.max_vocab_size]
    ratios = []
    for size in sizes:
        prefix = BPETokenizer(tokenizer.merges[: size - 256], tokenizer.pattern)
        ratios.append(tokens_per_character(prefix, val_text))
        print(f"vocab {size:5d}: {ratios[-1]:.3f} tokens per character ({1 / ratios[-1]:.2f} characters per token)")
    if args.out:
        draw(args.out / "bpe_compression.png", sizes, ratios, len(set(corpus.text)))
        print(f"wrote {args.out / 'bpe_compression.png'}")


if __name__ == "__main__":
    main()
