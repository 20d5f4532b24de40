"""Train a Vision Transformer on scikit-learn's 8×8 handwritten digits, and look inside it.

Each 8×8 image is cut into 2×2 patches (16 tokens), a learned class token goes in front, two
pre-norm encoder layers mix them, and the class token is read out as 10 logits
(transformer/vit.py). The digits ship with scikit-learn, so nothing is downloaded.

    python examples/vit_digits.py                      # the full run: prints accuracy and time
    python examples/vit_digits.py --out figures        # also draws patches, attention, curves
    python examples/vit_digits.py --steps 100 --n-embd 16 --n-layer 1   # a quick look

The training loop, the data split and the evaluation here are shared with swin_digits.py.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen, no window or backend needed
from threadpoolctl import threadpool_limits

import minigrad as mg
from minigrad.optim import AdamW, CosineWithWarmup, clip_grad_norm_
from transformer.vit import VisionTransformer, ViTConfig, patchify


def load_digits_split(test_fraction: float = 0.2, seed: int = 0):
    """The 1797 digits as float images in [0, 1], split per class into train and test.

    -> (x_train (N, 1, 8, 8), y_train (N,), x_test (M, 1, 8, 8), y_test (M,)).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) pixel values 0..16 -> 0..1
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def shift_augment(images: np.ndarray, rng: np.random.Generator, max_shift: int = 1) -> np.ndarray:
    """Move each image (B, C, H, W) by up to max_shift pixels in each direction, filling with 0.

    Handwriting sits a pixel or so left or right of the centre; showing the model shifted
    copies teaches it that a digit's class does not depend on where it sits, which a small
    data set cannot teach on its own.
    """
    B, _, H, W = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, B))  # where each image's crop starts
    return np.stack([padded[b, :, dy[b] : dy[b] + H, dx[b] : dx[b] + W] for b in range(B)])  # (B, C, H, W)


def evaluate(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> float:
    """The fraction of images whose largest logit is the true class."""
    model.eval()
    correct = 0
    with mg.no_grad():
        for i in range(0, len(images), batch_size):
            logits, _ = model(images[i : i + batch_size])  # (b, classes)
            correct += int((logits.data.argmax(axis=-1) == labels[i : i + batch_size]).sum())
    model.train()
    return correct / len(images)


def digit_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, augment: bool = True) -> Callable:
    """A function rng -> (images (B, 1, 8, 8), labels (B,)): a random minibatch, shifted if augment."""

    def next_batch(rng: np.random.Generator):
        pick = rng.integers(0, len(images), size=batch_size)
        return (shift_augment(images[pick], rng) if augment else images[pick]), labels[pick]

    return next_batch


def train(
    model,
    next_batch: Callable[[np.random.Generator], tuple],
    steps: int,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """AdamW with warm-up and cosine decay; returns the loss of every step.

    next_batch(rng) gives the model's arguments for one step, targets last: model(*batch)
    must return (logits, loss).
    """
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    # weight decay on the weights of linear and convolution layers (matrices, and filter banks of
    # 4 axes); biases, norms and tokens keep their size
    decayed = [p for p in params if p.ndim >= 2 and p.shape[0] > 1]
    kept = [p for p in params if not any(p is q for q in decayed)]
    optimizer = AdamW([{"params": decayed, "weight_decay": weight_decay}, {"params": kept, "weight_decay": 0.0}], lr=lr)
    schedule = CosineWithWarmup(optimizer, lr, lr / 20, warmup_iters=max(1, steps // 20), lr_decay_iters=steps)
    losses = []
    for step in range(steps):
        _, loss = model(*next_batch(rng))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    return losses


def plot_patches(image: np.ndarray, patch_size: int, path: Path) -> None:
    """The image, the grid that cuts it, and the patches as the rows of the token matrix."""
    patches = patchify(image[None], patch_size).data[0]  # (N, P·P)
    fig = Figure(figsize=(9, 3.2), dpi=100)
    ax_img, ax_tok = fig.subplots(1, 2, width_ratios=[1, 2.2])
    ax_img.imshow(image[0], cmap="gray_r")
    for edge in np.arange(0, image.shape[-1] + 1, patch_size) - 0.5:
        ax_img.axhline(edge, color="tab:red", lw=1)
        ax_img.axvline(edge, color="tab:red", lw=1)
    ax_img.set_title(f"an 8×8 digit, {patch_size}×{patch_size} patches")
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    ax_tok.imshow(patches.T, cmap="gray_r", aspect="auto")
    ax_tok.set_title(f"{len(patches)} patches as tokens (columns), before the linear embedding")
    ax_tok.set_xticks(range(len(patches)))
    ax_tok.set_yticks(range(patches.shape[1]))
    ax_tok.set_xlabel("token (patch in reading order)")
    ax_tok.set_ylabel("pixel in patch")
    fig.tight_layout()
    fig.savefig(path)


def plot_attention(model: VisionTransformer, images: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """For a few test digits: the image, then where the class token attends in each layer."""
    maps = model.attention_maps(images)  # (B, n_layer, N)
    B, n_layer, N = maps.shape
    side = int(round(np.sqrt(N)))
    fig = Figure(figsize=(1.6 * (n_layer + 1), 1.7 * B), dpi=100)
    axes = fig.subplots(B, n_layer + 1, squeeze=False)
    for b in range(B):
        axes[b, 0].imshow(images[b, 0], cmap="gray_r")
        axes[b, 0].set_ylabel(f"digit {labels[b]}")
        for layer in range(n_layer):
            axes[b, layer + 1].imshow(maps[b, layer].reshape(side, side), cmap="viridis")
            if b == 0:
                axes[b, layer + 1].set_title(f"layer {layer}", fontsize=9)
        for ax in axes[b]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("class token → patches", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def plot_losses(losses: list[float], path: Path, title: str) -> None:
    fig = Figure(figsize=(5, 3), dpi=100)
    ax = fig.subplots()
    smooth = np.convolve(losses, np.ones(20) / 20, mode="valid") if len(losses) >= 20 else losses
    ax.plot(losses, color="0.8", lw=0.8, label="minibatch")
    ax.plot(np.arange(len(smooth)) + len(losses) - len(smooth), smooth, label="mean of 20")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    # The matrices here are small (64 images × 17 tokens × 64 wide): one BLAS thread finishes
    # each product before a second thread would have been woken, and on a busy machine the
    # hand-off can cost twenty times the product itself.
    with threadpool_limits(limits=1, user_api="blas"):
        run()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--patch-size", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="directory for the pictures")
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = load_digits_split(seed=args.seed)
    mg.manual_seed(args.seed)
    config = ViTConfig(patch_size=args.patch_size, n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head)
    model = VisionTransformer(config)
    print(f"ViT: {model.num_parameters():,} parameters, {config.num_patches} patches + class token")

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
        plot_patches(x_test[0], args.patch_size, args.out / "vit_patches.png")
        plot_attention(model, x_test[:6], y_test[:6], args.out / "vit_attention.png")
        plot_losses(losses, args.out / "vit_loss.png", "ViT on 8×8 digits")
        print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
