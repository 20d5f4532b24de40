"""Does the caption match the picture? Two streams, an image and a sentence, talk by co-attention.

The picture is a row of handwritten digits (scikit-learn's 8×8 digits, each one an image
region); the caption is a sequence of digit symbols. Half the captions are right; in the
other half one symbol is wrong. Neither stream can tell alone: the image stream does not know
the caption, the text stream cannot see the digits. Only co-attention lets a word look at the
region it names (transformer/coattention.py), and the picture this example draws shows where
it looks.

    python examples/coattention_digits.py                  # prints accuracy and time
    python examples/coattention_digits.py --out figures    # also draws the cross-stream attention
    python examples/coattention_digits.py --steps 100      # a quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen, no window or backend needed
from threadpoolctl import threadpool_limits
from vit_digits import load_digits_split, plot_losses, train

import minigrad as mg
from transformer.coattention import CoAttentionConfig, CoAttentionTransformer


def make_pairs(images: np.ndarray, labels: np.ndarray, count: int, length: int, rng: np.random.Generator):
    """count (picture, caption, match) triples drawn from the given digits.

    -> regions (count, length, 64) flattened digit images, captions (count, length) symbols,
    targets (count,) 1 where the caption is right. A wrong caption differs in one symbol only,
    so the model has to check every position, not just guess from a few.
    """
    picks = rng.integers(0, len(images), size=(count, length))  # (count, length) which digit goes where
    regions = images[picks].reshape(count, length, -1)  # (count, length, 64)
    captions = labels[picks].copy()  # (count, length)
    targets = rng.integers(0, 2, size=count)  # half match, half do not
    wrong = np.flatnonzero(targets == 0)
    where = rng.integers(0, length, size=len(wrong))
    captions[wrong, where] = (captions[wrong, where] + rng.integers(1, 10, size=len(wrong))) % 10  # another digit
    return regions.astype(np.float32), captions, targets


def accuracy(model: CoAttentionTransformer, regions, captions, targets) -> float:
    model.eval()
    with mg.no_grad():
        logits, _ = model(regions, captions)  # (N, 2)
    model.train()
    return float((logits.data.argmax(axis=-1) == targets).mean())


def plot_cross_attention(model: CoAttentionTransformer, regions, captions, targets, path: Path) -> None:
    """For a few pairs: the picture and caption, and where each word looks in the image (per layer)."""
    maps = model.cross_attention_maps(regions, captions)  # per layer: (B, 1+Nv, 1+Nt), (B, 1+Nt, 1+Nv)
    B, length = captions.shape
    n_layer = len(maps)
    fig = Figure(figsize=(2.4 + 2.2 * n_layer * 2, 2.3 * B), dpi=100)
    axes = fig.subplots(B, 1 + 2 * n_layer, squeeze=False, width_ratios=[1.6] + [1] * (2 * n_layer))
    words = ["[CLS]", *[str(d) for d in range(10)]]
    for b in range(B):
        strip = regions[b].reshape(length, 8, 8).transpose(1, 0, 2).reshape(8, 8 * length)  # digits side by side
        caption = " ".join(str(d) for d in captions[b])
        axes[b, 0].imshow(strip, cmap="gray_r")
        axes[b, 0].set_title(f'"{caption}": {"match" if targets[b] else "no match"}', fontsize=9)
        axes[b, 0].set_xticks([])
        axes[b, 0].set_yticks([])
        text_labels = [words[0], *[words[1 + d] for d in captions[b]]]
        region_labels = ["<IMG>", *[f"r{i}" for i in range(length)]]
        for layer, (image_to_text, text_to_image) in enumerate(maps):
            for k, (weights, rows, cols, name) in enumerate(
                [
                    (text_to_image[b], text_labels, region_labels, "words → regions"),
                    (image_to_text[b], region_labels, text_labels, "regions → words"),
                ]
            ):
                ax = axes[b, 1 + 2 * layer + k]
                ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
                ax.set_xticks(range(len(cols)), cols, fontsize=7)
                ax.set_yticks(range(len(rows)), rows, fontsize=7)
                if b == 0:
                    ax.set_title(f"layer {layer}: {name}", fontsize=8)
    fig.suptitle("co-attention between the streams (row: query, column: key)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    # small matrices: one BLAS thread is faster than two handing work back and forth
    with threadpool_limits(limits=1, user_api="blas"):
        run()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--digits", type=int, default=3, help="digits per picture and caption")
    parser.add_argument("--n-embd", type=int, default=32)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="directory for the pictures")
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = load_digits_split(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    # the test pairs use only test digits: images the model has never seen, in new combinations
    test_regions, test_captions, test_targets = make_pairs(x_test, y_test, 2000, args.digits, rng)
    mg.manual_seed(args.seed)
    config = CoAttentionConfig(max_regions=args.digits, max_words=args.digits, n_embd=args.n_embd, n_layer=args.n_layer)
    model = CoAttentionTransformer(config)
    print(f"two-stream model: {model.num_parameters():,} parameters; chance is 50%")

    def report(step: int, loss: float) -> None:
        if (step + 1) % max(1, args.steps // 10) == 0:
            print(f"step {step + 1:5d}  loss {loss:.4f}  {time.perf_counter() - start:6.1f}s", flush=True)

    start = time.perf_counter()

    def next_batch(rng: np.random.Generator):
        return make_pairs(x_train, y_train, args.batch_size, args.digits, rng)  # fresh pairs every step

    losses = train(model, next_batch, args.steps, args.lr, seed=args.seed, on_step=report)
    seconds = time.perf_counter() - start
    test_accuracy = accuracy(model, test_regions, test_captions, test_targets)
    print(f"test accuracy {test_accuracy:.4f} ({len(test_targets)} pairs of unseen digits), trained in {seconds:.1f}s")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_cross_attention(model, test_regions[:4], test_captions[:4], test_targets[:4], args.out / "coattention.png")
        plot_losses(losses, args.out / "coattention_loss.png", "caption matching by co-attention")
        print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
