"""Pictures of the four ways to tell attention where tokens are (transformer/positional.py).

Attention compares every query with every key and is blind to their order, so position must
be added. This script draws one heatmap per method, each computed by the project's own code:

- sinusoidal: the paper's fixed table PE (positions x features) of sines and cosines;
- learned: GPT's trained table wpe (from a checkpoint, or freshly initialised without one);
- RoPE: the score q·k between one query vector placed at position m and one key vector
  placed at position n, after rotation: constant along every diagonal, i.e. a function of n - m;
- ALiBi: the bias added to the scores of two heads, -slope·|i - j|, under a causal mask.

    python examples/positional_encodings.py --out figures
    python examples/positional_encodings.py --out figures --checkpoint runs/shakespeare-char/ckpt.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen, no window or backend needed

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor
from transformer.positional import ALiBi, LearnedPositionalEmbedding, RotaryEmbedding, sinusoidal_table


def heatmap(matrix: np.ndarray, title: str, xlabel: str, ylabel: str, path: Path, cmap: str = "RdBu_r") -> None:
    """One matrix as a heatmap with a colour bar, saved to `path`."""
    fig = Figure(figsize=(5.2, 3.8), dpi=100)
    ax = fig.subplots()
    limit = np.abs(matrix[np.isfinite(matrix)]).max()
    image = ax.imshow(matrix, aspect="auto", cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path)


def sinusoidal(max_len: int, d_model: int, out: Path) -> None:
    table = sinusoidal_table(max_len, d_model)  # (T, E)
    heatmap(
        table, "sinusoidal: PE(pos, 2i) = sin(pos / 10000^(2i/d))", "feature", "position", out / "pe_sinusoidal.png"
    )
    # Fast-turning features on the left tell near positions apart, slow ones on the right far ones.
    print(f"sinusoidal: table {table.shape}, values in [{table.min():.2f}, {table.max():.2f}]")


def learned(max_len: int, d_model: int, checkpoint: Path | None, out: Path) -> None:
    if checkpoint is None:
        table = LearnedPositionalEmbedding(max_len, d_model).weight.data  # (T, E) N(0, 0.02²) noise
        title = "learned: wpe at initialisation (random)"
    else:
        from safetensors.numpy import load_file

        table = load_file(str(checkpoint))["transformer.wpe.weight"]  # (block_size, n_embd)
        title = f"learned: GPT's wpe after training ({checkpoint.parent.name})"
    heatmap(table, title, "feature", "position", out / "pe_learned.png")
    print(f"learned: table {table.shape}, std {table.std():.3f}")


def rope(max_len: int, head_dim: int, out: Path) -> None:
    rotary = RotaryEmbedding(head_dim)
    q, k = mg.default_rng().standard_normal((2, head_dim))  # one query vector and one key vector
    # The same vector at every position 0..T-1, rotated by its position's angles.
    queries = rotary(Tensor(np.tile(q, (max_len, 1)))).data  # (T, D) R_m q
    keys = rotary(Tensor(np.tile(k, (max_len, 1)))).data  # (T, D) R_n k
    scores = queries @ keys.T  # (T, T) score[m, n] = (R_m q)·(R_n k) = q·R_{n-m} k
    heatmap(
        scores, "RoPE: score of q at position m with k at n", "key position n", "query position m", out / "pe_rope.png"
    )
    # Every diagonal (fixed n - m) holds one value: RoPE scores see relative positions only.
    spread = max(np.ptp(np.diagonal(scores, offset)) for offset in range(-max_len + 1, max_len))
    print(f"RoPE: largest spread of a score along a diagonal n - m = const: {spread:.1e}")


def alibi(max_len: int, num_heads: int, out: Path) -> None:
    bias = ALiBi(num_heads)(max_len, max_len)  # (H, T, T) -slope_h·|i - j|
    future = ~F.causal_mask(max_len, max_len)
    fig = Figure(figsize=(8, 3.6), dpi=100)
    axes = fig.subplots(1, 2)
    for ax, head in zip(axes, (0, num_heads - 1)):
        shown = np.where(future, np.nan, bias[head])  # the causal mask hides the future
        image = ax.imshow(shown, cmap="viridis", interpolation="nearest")
        slope = ALiBi(num_heads).slopes[head]
        ax.set(title=f"ALiBi head {head}: slope {slope:.3g}", xlabel="key position j", ylabel="query position i")
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "pe_alibi.png")
    print(f"ALiBi: slopes {np.round(ALiBi(num_heads).slopes, 4).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Heatmaps of sinusoidal, learned, rotary and ALiBi positions.")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="folder for the PNG files")
    parser.add_argument("--max-len", type=int, default=64, help="positions shown")
    parser.add_argument("--d-model", type=int, default=128, help="features of the sinusoidal and learned tables")
    parser.add_argument("--head-dim", type=int, default=32, help="features of one RoPE head")
    parser.add_argument("--num-heads", type=int, default=8, help="ALiBi heads (the first and last are drawn)")
    parser.add_argument("--checkpoint", type=Path, help="a trained GPT's ckpt.safetensors, for its learned wpe")
    parser.add_argument("--seed", type=int, default=0, help="seeds the untrained tables and the RoPE vectors")
    args = parser.parse_args()
    mg.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    sinusoidal(args.max_len, args.d_model, args.out)
    learned(args.max_len, args.d_model, args.checkpoint, args.out)
    rope(args.max_len, args.head_dim, args.out)
    alibi(args.max_len, args.num_heads, args.out)
    print(f"wrote pe_sinusoidal.png, pe_learned.png, pe_rope.png, pe_alibi.png to {args.out}")


if __name__ == "__main__":
    main()
