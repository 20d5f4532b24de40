"""A small neural network learns to separate two interleaved half-moons — micrograd's demo,
with tensors instead of scalars.

The data: two noisy half circles in the plane, one per class. The model: a multi-layer
perceptron 2 -> 16 -> 16 -> 1 whose sign is the predicted class. The loss, as in micrograd's
demo, is the support-vector "max-margin" loss mean(relu(1 - y·score)) plus a small L2 penalty
on the weights. Plain SGD with a learning rate decaying from 1.0 to 0.1 fits it in 100 steps.

It writes, into --out:
    decision_boundary.png   the plane coloured by the model's decision, with the data on top
    graph.svg               the computation graph of one forward pass and loss (Graphviz),
                            with each Linear layer in its own cluster and gradient norms on
                            the weights; graph.dot holds the same picture as DOT text

    python examples/two_moons.py --out runs/two_moons
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from minigrad import Tensor, nn, no_grad
from minigrad.optim import SGD, LRScheduler
from minigrad.viz import draw_graph, render


def make_moons(n_samples: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points X (n, 2) on two interleaved half circles plus Gaussian noise; labels y (n,) in {-1, +1}.

    The upper moon is the unit half circle; the lower one is the same arc flipped and shifted
    by (1, 0.5), so that each moon's tips reach into the other's hollow (scikit-learn's layout).
    """
    n_upper = n_samples // 2
    n_lower = n_samples - n_upper
    angle_upper = np.linspace(0, np.pi, n_upper)
    angle_lower = np.linspace(0, np.pi, n_lower)
    upper = np.stack([np.cos(angle_upper), np.sin(angle_upper)], axis=1)
    lower = np.stack([1 - np.cos(angle_lower), 0.5 - np.sin(angle_lower)], axis=1)
    X = np.concatenate([upper, lower]) + rng.normal(0.0, noise, (n_samples, 2))
    y = np.concatenate([-np.ones(n_upper), np.ones(n_lower)])
    order = rng.permutation(n_samples)
    return X[order], y[order]


def mlp(hidden: int, rng: np.random.Generator) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2, hidden, rng=rng),
        nn.ReLU(),
        nn.Linear(hidden, hidden, rng=rng),
        nn.ReLU(),
        nn.Linear(hidden, 1, rng=rng),
    )


def loss_and_accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[Tensor, float]:
    """Max-margin loss with L2 regularisation, and the fraction of points on the right side."""
    scores = model(Tensor(X, name="X")).reshape(-1)  # (n,)
    margins = (1 - Tensor(y, name="y") * scores).relu()  # zero once a point is beyond the margin
    penalty = sum((p * p).sum() for p in model.parameters())
    loss = margins.mean() + alpha * penalty
    accuracy = float(((scores.data > 0) == (y > 0)).mean())
    return loss, accuracy


def plot_decision_boundary(model: nn.Module, X: np.ndarray, y: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = 0.05
    xx, yy = np.meshgrid(
        np.arange(X[:, 0].min() - 1, X[:, 0].max() + 1, h), np.arange(X[:, 1].min() - 1, X[:, 1].max() + 1, h)
    )
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)  # (G, 2)
    with no_grad():
        scores = model(Tensor(grid)).data.reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(xx, yy, scores > 0, cmap="Spectral", alpha=0.8)
    ax.scatter(X[:, 0], X[:, 1], c=y, s=30, cmap="Spectral", edgecolors="k")
    ax.set(xlim=(xx.min(), xx.max()), ylim=(yy.min(), yy.max()), title="decision boundary")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/two_moons"), help="directory for the pictures")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty weight")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    X, y = make_moons(args.samples, args.noise, rng)
    model = mlp(args.hidden, rng)
    print(f"{model.num_parameters()} parameters")
    optimizer = SGD(model.parameters(), lr=1.0)
    schedule = LRScheduler(optimizer, lambda k: 1.0 - 0.9 * k / args.steps)  # micrograd's decay, 1.0 -> 0.1

    args.out.mkdir(parents=True, exist_ok=True)
    accuracy = 0.0
    for k in range(args.steps):
        loss, accuracy = loss_and_accuracy(model, X, y, args.alpha)
        optimizer.zero_grad()
        last = k == args.steps - 1
        loss.backward(retain_graph=last)  # keep the last graph, to draw it with gradient norms
        optimizer.step()
        schedule.step()
        if k % 10 == 0 or last:
            print(f"step {k:3d} loss {loss.item():.4f} accuracy {accuracy:.0%}")

    graph = draw_graph(loss, model=model)  # before the next forward: the drawing shows the last step
    with no_grad():
        accuracy = loss_and_accuracy(model, X, y, args.alpha)[1]
    plot_decision_boundary(model, X, y, args.out / "decision_boundary.png")
    (args.out / "graph.dot").write_text(graph.source)
    if shutil.which("dot"):
        render(graph, args.out / "graph.svg")
        print(f"wrote {args.out / 'decision_boundary.png'} and {args.out / 'graph.svg'}")
    else:
        print(f"wrote {args.out / 'decision_boundary.png'} and {args.out / 'graph.dot'} (install Graphviz for SVG)")
    print(f"final accuracy {accuracy:.0%}")
    return accuracy


if __name__ == "__main__":
    main()
