"""Train a small Swin Transformer on scikit-learn's 8×8 digits, and draw its windows.

Each 2×2 patch of pixels is a token: a 4×4 grid. Stage 1 attends inside 2×2 windows of
tokens, first regular, then shifted by one token with the masks that keep the rolled-around
pieces apart; patch merging then halves the grid to 2×2 tokens twice as wide, where one
window covers everything (transformer/swin.py). The data split, training loop and
evaluation are vit_digits.py's.

    python examples/swin_digits.py                     # prints accuracy and time
    python examples/swin_digits.py --out figures       # also draws windows, masks, curves
    python examples/swin_digits.py --steps 100 --embed-dim 8    # a quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen, no window or backend needed
from threadpoolctl import threadpool_limits
from vit_digits import digit_batches, evaluate, load_digits_split, plot_losses, train

import minigrad as mg
from transformer.swin import SwinConfig, SwinTransformer, shifted_window_mask


def plot_windows(image: np.ndarray, patch_size: int, window_size: int, path: Path) -> None:
    """Regular windows, shifted windows on the image, the rolled grid's regions, and its masks.

    image (H, W) in pixels; patch_size pixels per token side; window_size M in tokens.
    """
    P, M, s = patch_size, window_size, window_size // 2
    side = image.shape[0] // P  # tokens per side
    fig = Figure(figsize=(13, 3.4), dpi=100)
    ax_regular, ax_shifted, ax_rolled, ax_mask = fig.subplots(1, 4, width_ratios=[1, 1, 1, 1.6])

    def grid(ax, offset: int, color: str) -> None:
        for edge in np.arange(0, image.shape[0] + 1, P) - 0.5:  # token borders, thin
            ax.axhline(edge, color="0.7", lw=0.5)
            ax.axvline(edge, color="0.7", lw=0.5)
        for edge in np.arange(offset * P, image.shape[0] + 1, M * P) - 0.5:  # window borders, thick
            ax.axhline(edge, color=color, lw=2.5)
            ax.axvline(edge, color=color, lw=2.5)
        ax.set_xticks([])
        ax.set_yticks([])

    ax_regular.imshow(image, cmap="gray_r")
    grid(ax_regular, 0, "tab:blue")
    ax_regular.set_title(f"block 1: {M}×{M}-token windows")
    ax_shifted.imshow(image, cmap="gray_r")
    grid(ax_shifted, s, "tab:orange")
    ax_shifted.set_title(f"block 2: windows shifted by {s}")
    # rolled, the shifted windows are regular again, but the last row and column of windows
    # hold pieces from opposite edges of the image: the colours mark the regions kept apart
    region = np.zeros((side, side), dtype=int)
    bands = (slice(0, -M), slice(-M, -s), slice(-s, None))
    for i, rows in enumerate(bands):
        for j, cols in enumerate(bands):
            region[rows, cols] = 3 * i + j
    ax_rolled.imshow(np.roll(image, (-s * P, -s * P), axis=(0, 1)), cmap="gray_r")
    ax_rolled.imshow(np.kron(region, np.ones((P, P))), cmap="tab10", alpha=0.4, vmin=0, vmax=9)
    grid(ax_rolled, 0, "tab:orange")
    ax_rolled.set_title(f"rolled by {s}: regions in colour")
    masks = shifted_window_mask(side, side, M, s)  # (nW, M², M²)
    ax_mask.imshow(np.concatenate([np.pad(~m, ((0, 0), (0, 1))) for m in masks], axis=1), cmap="Greens", vmin=0)
    ax_mask.set_xticks(
        [(M * M + 1) * (w + 0.5) - 1 for w in range(len(masks))], [f"window {w}" for w in range(len(masks))]
    )
    ax_mask.set_yticks([])
    ax_mask.set_title("allowed pairs in each rolled window (query row, key column)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def plot_relative_bias(model: SwinTransformer, path: Path) -> None:
    """The learned relative position bias of stage 1, as a (2M-1)×(2M-1) map of offsets per head."""
    attn = model.layers[0].blocks[0].attn
    M, heads = attn.window_size, attn.num_heads
    # row r of the table is the offset (Δrow, Δcol) with r = (Δrow + M-1)·(2M-1) + (Δcol + M-1)
    table = attn.relative_position_bias_table.data.reshape(2 * M - 1, 2 * M - 1, heads)  # (Δrow, Δcol, head)
    fig = Figure(figsize=(2.6 * heads, 2.8), dpi=100)
    axes = fig.subplots(1, heads, squeeze=False)[0]
    offsets = np.arange(-(M - 1), M)
    for h, ax in enumerate(axes):
        image = ax.imshow(table[:, :, h], cmap="coolwarm")
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set_xticks(range(2 * M - 1), offsets)
        ax.set_yticks(range(2 * M - 1), offsets)
        ax.set_xlabel("Δ column (query − key)")
        ax.set_title(f"head {h}")
    axes[0].set_ylabel("Δ row")
    fig.suptitle("learned relative position bias, stage 1", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    # small matrices: one BLAS thread is faster than two handing work back and forth
    with threadpool_limits(limits=1, user_api="blas"):
        run()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--window-size", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="directory for the pictures")
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = load_digits_split(seed=args.seed)
    mg.manual_seed(args.seed)
    config = SwinConfig(embed_dim=args.embed_dim, window_size=args.window_size)
    model = SwinTransformer(config)
    side = config.image_size // config.patch_size
    M = config.window_size
    print(f"Swin: {model.num_parameters():,} parameters, {side}×{side} tokens, {M}×{M} windows")

    def report(step: int, loss: float) -> None:
        if (step + 1) % max(1, args.steps // 10) == 0:
            print(f"step {step + 1:5d}  loss {loss:.4f}  {time.perf_counter() - start:6.1f}s", flush=True)

    start = time.perf_counter()
    batches = digit_batches(x_train, y_train, args.batch_size)
    losses = train(model, batches, args.steps, args.lr, seed=args.seed, on_step=report)
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, x_test, y_test)
    print(f"test accuracy {accuracy:.4f} ({len(x_test)} images), trained in {seconds:.1f}s")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_windows(x_test[0, 0], config.patch_size, config.window_size, args.out / "swin_windows.png")
        plot_relative_bias(model, args.out / "swin_relative_bias.png")
        plot_losses(losses, args.out / "swin_loss.png", "Swin on 8×8 digits")
        print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
