"""Newton's method against gradient descent, on logistic regression: second derivatives at work.

Gradient descent steps against the gradient, w ← w − η ∇L, with one step size η for every
direction; it must be small enough for the most curved direction, so it crawls along the flat
ones. Newton's method uses the curvature itself: near the minimum L is almost the quadratic
L(w + d) ≈ L + ∇Lᵀ d + ½ dᵀ H d, whose minimum is at d = −H⁻¹ ∇L. Its steps shrink the error
quadratically (the number of correct digits doubles each step), at the price of the Hessian
H, here computed by `mg.hessian`: the gradient recorded with `mg.grad(..., create_graph=True)`
and differentiated once more, one row per parameter.

The problem: L2-regularised logistic regression on a synthetic, correlated data set, which
makes the curvature very different from one direction to another.

    python examples/newton.py                        # 400 samples, 8 features
    python examples/newton.py --samples 50 --features 3
"""

from __future__ import annotations

import argparse

import numpy as np

import minigrad as mg
from minigrad import Tensor


def make_data(samples: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs X (N, D) with correlated, unevenly scaled columns, and labels y (N,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((features, features)) * np.logspace(0, 1, features)  # column scales 1 to 10
    X = rng.standard_normal((samples, features)) @ mixing / features
    true_w = rng.standard_normal(features)
    y = (rng.random(samples) < 1 / (1 + np.exp(-X @ true_w))).astype(np.float64)
    return X, y


def loss_function(X: np.ndarray, y: np.ndarray, l2: float):
    """w (D,) -> mean binary cross-entropy of sigmoid(X w) against y, plus ½ l2 ‖w‖²."""
    inputs, labels = Tensor(X, dtype=np.float64), Tensor(y, dtype=np.float64)

    def loss(w: Tensor) -> Tensor:
        z = inputs @ w  # (N,) logits, a few units at most here, so e^z stays finite
        # -[y log σ(z) + (1 - y) log(1 - σ(z))] = log(1 + e^z) - y z: smooth, so Newton applies
        return ((1 + z.exp()).log() - labels * z).mean() + 0.5 * l2 * (w * w).sum()

    return loss


def gradient(loss, w: np.ndarray) -> np.ndarray:
    x = Tensor(w, dtype=np.float64, requires_grad=True)
    return mg.grad(loss(x), x)[0].data


def gradient_descent(loss, w: np.ndarray, step_size: float, tolerance: float, max_steps: int) -> tuple:
    for steps in range(max_steps + 1):
        g = gradient(loss, w)
        if np.linalg.norm(g) < tolerance:
            return w, steps
        w = w - step_size * g
    return w, None


def newton(loss, w: np.ndarray, tolerance: float, max_steps: int) -> tuple:
    for steps in range(max_steps + 1):
        g = gradient(loss, w)
        if np.linalg.norm(g) < tolerance:
            return w, steps
        H = mg.hessian(loss, Tensor(w, dtype=np.float64)).data  # (D, D)
        w = w - np.linalg.solve(H, g)  # the minimum of the local quadratic model
    return w, None


def main() -> None:
    parser = argparse.ArgumentParser(description="Newton's method against gradient descent on logistic regression.")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--l2", type=float, default=1e-2, help="weight of ½‖w‖²")
    parser.add_argument("--tolerance", type=float, default=1e-8, help="stop when ‖∇L‖ is below this")
    parser.add_argument("--max-steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    X, y = make_data(args.samples, args.features, args.seed)
    loss = loss_function(X, y, args.l2)
    w0 = np.zeros(args.features)

    # The largest curvature bounds the safe step size: η = 1 / λ_max(H) at the start, where
    # σ'(0) = 1/4 makes the Hessian Xᵀ X / (4N) + l2.
    H0 = mg.hessian(loss, Tensor(w0, dtype=np.float64)).data
    low, high = np.linalg.eigvalsh(H0)[[0, -1]]
    print(f"curvature at the start: from {low:.3g} to {high:.3g} (ratio {high / low:.0f})")
    expected = X.T @ X / (4 * len(X)) + args.l2 * np.eye(args.features)
    assert np.allclose(H0, expected), "mg.hessian disagrees with the formula"

    w_gd, gd_steps = gradient_descent(loss, w0, 1 / high, args.tolerance, args.max_steps)
    w_newton, newton_steps = newton(loss, w0, args.tolerance, 50)
    print(f"gradient descent: {gd_steps if gd_steps is not None else f'more than {args.max_steps}'} steps")
    print(f"Newton's method: {newton_steps} steps")
    if gd_steps is not None:
        print(f"the same minimum: max |w_gd - w_newton| = {np.abs(w_gd - w_newton).max():.2e}")


if __name__ == "__main__":
    main()
