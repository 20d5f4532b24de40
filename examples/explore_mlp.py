"""Watch backward run through a tiny multi-layer perceptron, op by op, in the browser.

A 2 -> 4 -> 4 -> 1 network scores four points and takes the mean squared error against their
targets. `minigrad.viz.explore(loss, model)` runs the backward pass (as `loss.backward()`
would) while recording every op's vector-Jacobian product, and writes one HTML page that
opens offline: click any box to see its values and its gradient, press → to run the next
op of the backward walk, space to play it all, R to start again.

    python examples/explore_mlp.py --out runs/explore_mlp.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from minigrad import Tensor, nn
from minigrad.viz import explore


class MLP(nn.Module):
    def __init__(self, rng: np.random.Generator):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(2, 4, rng=rng), nn.ReLU(), nn.Linear(4, 4, rng=rng), nn.ReLU())
        self.head = nn.Linear(4, 1, rng=rng)

    def forward(self, x):  # x (B, 2) -> (B, 1)
        return self.head(self.hidden(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="explore_mlp.html", help="the page to write (default: explore_mlp.html)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    model = MLP(rng)
    x = Tensor(rng.standard_normal((4, 2)), name="x")  # (B, 2) points
    y = Tensor([[1.0], [-1.0], [1.0], [-1.0]], name="y")  # (B, 1) targets
    loss = ((model(x) - y) ** 2).mean()

    explorer = explore(loss, model=model)  # runs backward: the weights now hold their gradients
    path = explorer.save(Path(args.out))
    steps = len(explorer.data["backward_order"])
    print(f"loss {loss.item():.4f}; backward runs {steps} ops")
    print(f"d loss / d head.weight = {np.round(model.head.weight.grad.astype(np.float64), 4).tolist()}")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): open it in a browser")


if __name__ == "__main__":
    main()
