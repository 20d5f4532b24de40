"""Look inside a trained GPT: where each head of each layer attends, for one line of text.

The heatmaps are the softmax(q kᵀ / √hs) weights of every head (transformer/gpt.py,
`CausalSelfAttention`), recomputed here from the model's own layers and checked against the
block's output, so the picture is exactly what the model computes. Rows are query positions
(the character being read), columns the keys it may look at; the causal mask leaves the upper
triangle empty.

    python examples/attention_maps.py --run runs/shakespeare-char --out figures
    python examples/attention_maps.py --out figures                  # trains a small GPT briefly first
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen, no window or backend needed

import minigrad as mg
import minigrad.functional as F
from transformer import GPT


def attention_maps(model: GPT, idx: np.ndarray) -> np.ndarray:
    """The attention weights of every layer and head for one sequence idx (1, T) -> (n_layer, n_head, T, T)."""
    maps = []
    with mg.no_grad():
        T = idx.shape[1]
        x = model.transformer.wte(idx) + model.transformer.wpe(np.arange(T))  # (1, T, C)
        for block in model.transformer.h:
            attn = block.attn
            h = block.ln_1(x)  # (1, T, C) the attention's input
            q, k, v = attn.heads(h)  # (1, nh, T, hs) each, as CausalSelfAttention splits them
            weights = F.attention_weights(q, k, is_causal=True)  # (1, nh, T, T)
            y = (weights @ v).transpose(0, 2, 1, 3).reshape(h.shape)  # (1, T, C) the heads side by side
            # the recomputation must be the model's own attention, or the picture would lie
            assert np.allclose(attn.c_proj(y).data, attn(h).data, atol=1e-4), "recomputed attention differs"
            maps.append(weights.data[0])
            x = block(x)  # (1, T, C) on to the next layer
    return np.stack(maps)  # (n_layer, n_head, T, T)


def plot(maps: np.ndarray, text: str, path: Path) -> None:
    """One heatmap per head: layers down, heads across, characters on both axes."""
    n_layer, n_head, T, _ = maps.shape
    labels = ["␣" if c == " " else "\\n" if c == "\n" else c for c in text]
    fig = Figure(figsize=(2.6 * n_head, 2.6 * n_layer + 0.4), dpi=90, layout="constrained")
    axes = fig.subplots(n_layer, n_head, squeeze=False)
    future = ~F.causal_mask(T, T)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer, head]
            ax.imshow(np.where(future, np.nan, maps[layer, head]), cmap="viridis", vmin=0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xticks(range(T), labels, fontsize=6)
            ax.set_yticks(range(T), labels, fontsize=6)
    fig.suptitle(f"attention weights for {text!r} (row: query, column: key)", fontsize=10)
    fig.savefig(path)


def train_briefly(args: argparse.Namespace) -> Path:
    """A small GPT trained for a few hundred steps with the project's trainer; returns its run folder."""
    from transformer.train import TrainConfig, train

    config = TrainConfig(
        data=args.data,
        out=str(args.train_dir),
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        block_size=args.block_size,
        max_iters=args.max_iters,
        warmup_iters=min(100, args.max_iters // 10),
        eval_interval=max(1, args.max_iters // 15),  # enough points for a readable loss.png
        eval_iters=10,
    )
    summary = train(config, sample_chars=0)
    print(f"trained {summary['iter']} steps, validation loss {summary['val_loss']:.3f}")
    return args.train_dir


def main() -> None:
    parser = argparse.ArgumentParser(description="Heatmaps of every attention head of a trained GPT for one text.")
    parser.add_argument("--run", type=Path, help="a run folder written by `minigrad-gpt train` (else: train briefly)")
    parser.add_argument("--text", default="ROMEO:\nTo be, or not to be", help="the text to read")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="folder for attention_maps.png")
    brief = parser.add_argument_group("brief training, when no --run is given")
    brief.add_argument("--data", help="text corpus (default: Tiny Shakespeare, found or downloaded)")
    brief.add_argument("--train-dir", type=Path, default=Path("runs/attention-maps"), help="where the run is kept")
    brief.add_argument("--max-iters", type=int, default=1500)
    brief.add_argument("--n-layer", type=int, default=2)
    brief.add_argument("--n-head", type=int, default=4)
    brief.add_argument("--n-embd", type=int, default=128)
    brief.add_argument("--block-size", type=int, default=64)
    args = parser.parse_args()

    from transformer.checkpoint import load_run

    model, tokenizer = load_run(args.run if args.run is not None else train_briefly(args))
    text = args.text[-model.config.block_size :]  # the model sees at most block_size characters
    maps = attention_maps(model, tokenizer.encode(text)[None, :])  # (n_layer, n_head, T, T)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(maps, text, args.out / "attention_maps.png")
    # How far back each head looks on average: a "previous character" head sits near 1.
    T = len(text)
    distance = np.arange(T)[:, None] - np.arange(T)[None, :]  # (T, T) query minus key position
    for layer, heads in enumerate(maps):
        reach = (heads * np.maximum(distance, 0)).sum(axis=-1).mean(axis=-1)  # (n_head,)
        print(f"layer {layer}: mean distance attended, per head: {np.round(reach, 1).tolist()}")
    print(f"wrote {args.out / 'attention_maps.png'}")


if __name__ == "__main__":
    main()
