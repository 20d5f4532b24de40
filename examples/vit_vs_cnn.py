"""Do transformers need more data? A small ResNet and a ViT on growing slices of the digits.

A convolution builds in two assumptions about images: what matters is local (a 3×3 window),
and the same pattern means the same thing anywhere (one filter slides everywhere). A Vision
Transformer assumes neither: its patches talk to every other patch from the first layer, and
position is something it must learn. The claim to test: with little data the assumptions
help, so the ResNet wins; as the data grows the ViT catches up.

Both models train on the same random subsets of scikit-learn's 8×8 digits (100, 200, 400,
800 and all 1437 training images), three seeds each, with the same optimiser, schedule,
batch size and number of steps, and are scored on the same 360 held-out digits.

    python examples/vit_vs_cnn.py --out docs/figures   # the full run: ~5 CPU minutes, 16 on a busy machine
    python examples/vit_vs_cnn.py --sizes 100 400 --seeds 1 --steps 100   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen, no window or backend needed
from threadpoolctl import threadpool_limits
from vit_digits import digit_batches, evaluate, load_digits_split, train

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.tensor import Tensor
from transformer.vit import VisionTransformer, ViTConfig


class BasicBlock(nn.Module):
    """He et al. (2016)'s residual block: out = relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)).

    The convolutions are 3×3; the first one strides when the block halves the image, and then
    a 1×1 strided convolution (with its batch norm) brings the shortcut to the new shape.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()  # the identity, when the shape stays
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        h = self.bn1(self.conv1(x)).relu()  # (B, C_out, H / stride, W / stride)
        h = self.bn2(self.conv2(h))
        return (h + self.shortcut(x)).relu()


class ResNet(nn.Module):
    """A ResNet for 8×8 images: a 3×3 stem, residual stages (each after the first halves the image
    and doubles the width), global average pooling, a linear classifier. images (B, 1, 8, 8) ->
    (logits (B, classes), loss or None), as VisionTransformer."""

    def __init__(self, width: int = 16, stages: int = 2, blocks_per_stage: int = 1, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, channels = [], width
        for stage in range(stages):
            out_channels = width * 2**stage
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, images, targets=None) -> tuple[Tensor, Tensor | None]:
        x = images if isinstance(images, Tensor) else Tensor(images)
        x = self.layers(self.stem(x))  # (B, C, 8 / 2^(stages-1), ...)
        logits = self.head(self.pool(x).flatten(1))  # (B, classes)
        loss = None if targets is None else F.cross_entropy(logits, np.asarray(targets))
        return logits, loss


def subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of `size` training images, as even across the classes as the size allows."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    # deal the classes out in turn, then keep the first `size`: 100 images give 10 of each digit
    dealt = [ids[k] for k in range(max(map(len, per_class))) for ids in per_class if k < len(ids)]
    return np.array(dealt[:size])


def build(kind: str, args) -> nn.Module:
    if kind == "resnet":
        return ResNet(width=args.width, stages=2, blocks_per_stage=args.blocks)
    return VisionTransformer(ViTConfig(patch_size=2, n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head))


def run_grid(args, data) -> list[dict]:
    """Train every (model, size, seed) once; a row of results for each."""
    x_train, y_train, x_test, y_test = data
    rows = []
    for size in args.sizes:
        n = min(size, len(x_train))
        for seed in range(args.seeds):
            picked = subset(y_train, n, seed)
            for kind in ("resnet", "vit"):
                mg.manual_seed(seed)
                model = build(kind, args)
                start = time.perf_counter()
                batches = digit_batches(x_train[picked], y_train[picked], args.batch_size, augment=False)
                train(model, batches, args.steps, args.lr, seed=seed)
                accuracy = evaluate(model, x_test, y_test)
                seconds = time.perf_counter() - start
                rows.append(dict(model=kind, size=n, seed=seed, accuracy=accuracy, seconds=seconds))
                print(f"{kind:6s}  n={n:5d}  seed {seed}  test accuracy {accuracy:.4f}  ({seconds:.1f}s)", flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    """(model, size) -> (mean accuracy, standard deviation over seeds, accuracies)."""
    table = {}
    for model in ("resnet", "vit"):
        for size in sorted({r["size"] for r in rows}):
            accuracies = np.array([r["accuracy"] for r in rows if r["model"] == model and r["size"] == size])
            table[model, size] = (accuracies.mean(), accuracies.std(), accuracies)
    return table


def verdict(table: dict) -> str:
    """Where the curves meet: the sizes at which the two means lie within each other's spread."""
    sizes = sorted({size for _, size in table})
    gaps = {n: table["vit", n][0] - table["resnet", n][0] for n in sizes}
    meet = [n for n in sizes if abs(gaps[n]) <= table["vit", n][1] + table["resnet", n][1]]
    trend = ", ".join(f"{n}: {100 * gaps[n]:+.1f}" for n in sizes)
    if not meet:
        return f"the curves do not meet: ViT minus ResNet, in points, by training images: {trend}"
    return f"the curves meet (within one spread of the seeds) at {meet}; ViT minus ResNet, in points: {trend}"


def plot(table: dict, path: Path, steps: int) -> None:
    sizes = sorted({size for _, size in table})
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    for model, label, color in (
        ("resnet", "ResNet (convolutions)", "tab:blue"),
        ("vit", "ViT (2×2 patches)", "tab:orange"),
    ):
        mean = np.array([table[model, n][0] for n in sizes])
        std = np.array([table[model, n][1] for n in sizes])
        ax.plot(sizes, 100 * mean, "o-", color=color, label=label)
        ax.fill_between(sizes, 100 * (mean - std), 100 * (mean + std), color=color, alpha=0.2)
        for n in sizes:  # every seed, so that the spread is visible as points too
            ax.scatter([n] * len(table[model, n][2]), 100 * table[model, n][2], color=color, s=8, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("test accuracy, % (360 digits)")
    ax.set_title(f"digits: mean ± std over seeds, {steps} steps each")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    # small matrices: one BLAS thread is faster than waking a second (see vit_digits.py)
    with threadpool_limits(limits=1, user_api="blas"):
        run()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400, 800, 1437])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600, help="the same for every model and size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=16, help="ResNet: channels of the first stage")
    parser.add_argument("--blocks", type=int, default=1, help="ResNet: residual blocks per stage")
    parser.add_argument("--n-embd", type=int, default=64, help="ViT: token width")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="directory for the figure and the table")
    args = parser.parse_args()

    data = load_digits_split(seed=0)
    for kind in ("resnet", "vit"):
        print(f"{kind}: {build(kind, args).num_parameters():,} parameters")
    table = summarise(run_grid(args, data))
    print("\ntraining images | ResNet accuracy (mean ± std) | ViT accuracy (mean ± std)")
    for size in sorted({size for _, size in table}):
        (rm, rs, _), (vm, vs, _) = table["resnet", size], table["vit", size]
        print(f"{size:15d} | {100 * rm:6.2f} ± {100 * rs:4.2f} | {100 * vm:6.2f} ± {100 * vs:4.2f}")
    print(verdict(table))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot(table, args.out / "vit_vs_cnn.png", args.steps)
        with open(args.out / "vit_vs_cnn.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["model", "size", "seed", "accuracy"])
            for (model, size), (_, _, accuracies) in table.items():
                writer.writerows([model, size, seed, f"{a:.4f}"] for seed, a in enumerate(accuracies))
        print(f"figure and table in {args.out}")


if __name__ == "__main__":
    main()
