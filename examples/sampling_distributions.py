"""What temperature, top-k and top-p do to the next-token distribution (transformer/gpt.py).

A language model ends in logits, one score per vocabulary entry; sampling turns them into a
token. Three knobs reshape the distribution first, all implemented in `transformer.gpt`:

- temperature T divides the logits: T < 1 sharpens the distribution, T > 1 flattens it,
  T = 0 means always the most likely token (greedy);
- top-k keeps the k most likely tokens and renormalises (`filter_logits`);
- top-p (nucleus) keeps the smallest set of most likely tokens whose probability reaches p.

The plot shows each on one set of illustrative logits for the character after "Th", and
checks the exact probabilities against the frequencies of tokens drawn by `sample`:

    python examples/sampling_distributions.py --out figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen, no window or backend needed

from transformer.sample import filter_logits, sample

# Illustrative logits for the next character after "Th" (the model's raw scores, any scale).
CHARACTERS = list("eaiory uwhs'lnt.")
LOGITS = np.array([4.0, 2.6, 2.2, 1.9, 1.4, 1.1, 0.6, 0.5, 0.2, 0.0, -0.3, -0.6, -0.9, -1.2, -1.6, -2.0])


def distribution(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """The probabilities (V,) that `sample` draws from with these settings."""
    if temperature == 0:
        return np.eye(len(LOGITS))[np.argmax(LOGITS)]  # greedy: all mass on the argmax
    scaled = filter_logits(LOGITS[None, :] / temperature, top_k, top_p)[0]  # (V,) -inf outside the support
    probs = np.exp(scaled - scaled.max())
    return probs / probs.sum()


def frequencies(draws: int, rng: np.random.Generator, **settings) -> np.ndarray:
    """How often `sample` picks each token in `draws` independent draws, as fractions (V,)."""
    logits = np.tile(LOGITS, (draws, 1))  # (draws, V): one row per draw
    tokens = sample(logits, rng=rng, **settings)  # (draws,)
    return np.bincount(tokens, minlength=len(LOGITS)) / draws


def main() -> None:
    parser = argparse.ArgumentParser(description="Plot temperature, top-k and top-p on one distribution.")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="folder for sampling.png")
    parser.add_argument("--draws", type=int, default=20000, help="tokens sampled to check each distribution")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    panels = [
        ("temperature", [{"temperature": t} for t in (0.0, 0.5, 1.0, 2.0)]),
        ("top-k (temperature 1)", [{}] + [{"top_k": k} for k in (8, 3, 1)]),
        ("top-p (temperature 1)", [{}] + [{"top_p": p} for p in (0.95, 0.8, 0.6)]),
    ]
    x = np.arange(len(CHARACTERS))
    fig = Figure(figsize=(12, 3.6), dpi=100)
    for ax, (title, settings_list) in zip(fig.subplots(1, 3, sharey=True), panels):
        for settings in settings_list:
            probs = distribution(**settings)
            label = ", ".join(f"{key.replace('_', '-')} {value:g}" for key, value in settings.items()) or "unchanged"
            # a log scale shows the tail; tokens outside the support (probability 0) are not drawn
            ax.semilogy(x, np.where(probs > 0, probs, np.nan), "o-", markersize=4, label=label)
            if settings.get("temperature", 1.0) > 0:
                seen = frequencies(args.draws, rng, **settings)
                error = np.abs(seen - probs).max()
                print(
                    f"{label:>16}: support {int((probs > 0).sum()):2d} tokens, "
                    f"largest |sampled - exact| {error:.3f} over {args.draws} draws"
                )
        ax.set_xticks(x, [repr(c)[1:-1] if c != " " else "␣" for c in CHARACTERS])
        ax.set(title=title, xlabel='next character after "Th"', ylim=(1e-4, 1.5))
        ax.legend(fontsize=8)
    fig.axes[0].set_ylabel("probability")
    fig.tight_layout()
    fig.savefig(args.out / "sampling.png")
    print(f"wrote {args.out / 'sampling.png'}")


if __name__ == "__main__":
    main()
