"""Reference solutions to the lessons' exercises, one function (or class) per exercise.

Try the exercise first: each checker in `checks.py` says what is wrong and why. These are what
the checkers compare with, and what the tests prove every checker accepts.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

import minigrad as mg
from minigrad import Function, Tensor
from transformer.tokenizer import merge_pair

# ---------------------------------------------------------------- 01 derivatives


def numerical_derivative(f, x: float, h: float = 1e-5) -> float:
    """f'(x) by the central difference (f(x + h) - f(x - h)) / 2h: its error shrinks as h²."""
    return (f(x + h) - f(x - h)) / (2 * h)


def neuron_grads(x: float, w: float, b: float) -> tuple[float, float, float]:
    """y = tanh(w·x + b): (dy/dx, dy/dw, dy/db) by the chain rule, tanh' = 1 - tanh²."""
    t = np.tanh(w * x + b)
    local = 1 - t**2  # dy/dz at z = w·x + b
    return local * w, local * x, local


def expression_grads(a: float, b: float, c: float) -> tuple[float, float, float]:
    """L = (a·b + c)²: (dL/da, dL/db, dL/dc)."""
    e = a * b + c
    de = 2 * e  # dL/de
    return de * b, de * a, de


# ---------------------------------------------------------------- 02 broadcasting


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`: over the leading axes broadcasting added, and over every axis
    where `shape` has size 1 (kept, so the result has exactly `shape`)."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def mul_backward(grad: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """out = a * b (broadcasting): (d/da, d/db), each of its input's shape."""
    return unbroadcast(grad * b, a.shape), unbroadcast(grad * a, b.shape)


def matmul_backward(grad: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """out = a @ b with a (n, k), b (k, m), grad (n, m): (grad @ bᵀ, aᵀ @ grad)."""
    return grad @ b.T, a.T @ grad


# ---------------------------------------------------------------- 03 backward


class Sigmoid(Function):
    """σ(x) = 1 / (1 + e^-x), and its backward from the saved output: σ' = σ(1 - σ)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * self.out * (1 - self.out)


def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor `root` was computed from (leaves too), each after all of its inputs, each once."""
    order, visited = [], set()

    def visit(t: Tensor) -> None:
        if id(t) in visited:
            return
        visited.add(id(t))
        if t.grad_fn is not None:
            for parent in t.grad_fn.parents:
                if parent is not None:
                    visit(parent)
        order.append(t)

    visit(root)
    return order


def backward(root: Tensor) -> dict[int, np.ndarray]:
    """d root / d t for every tensor t of the graph, keyed by id(t): walk the order in reverse,
    let each op turn the gradient of its output into gradients of its inputs, and sum what
    reaches a tensor along several paths."""
    grads = {id(root): np.ones_like(root.data)}
    for t in reversed(topological_order(root)):
        if t.grad_fn is None:
            continue
        input_grads = t.grad_fn.backward(grads[id(t)])
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, g in zip(t.grad_fn.parents, input_grads):
            if parent is not None and g is not None:
                grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
    return grads


# ---------------------------------------------------------------- 04 gradient checking, an optimiser


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f(x) / dx for a scalar f of an array x, one central difference per element; x is left as found."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        kept = x[i]
        x[i] = kept + eps
        up = f(x)
        x[i] = kept - eps
        down = f(x)
        x[i] = kept
        grad[i] = (up - down) / (2 * eps)
    return grad


def sgd_momentum_step(param, grad, velocity, lr: float, momentum: float):
    """torch.optim.SGD with momentum: v ← μ·v + g, p ← p - lr·v. Returns (param, velocity)."""
    velocity = momentum * velocity + grad
    return param - lr * velocity, velocity


def adam_step(param, grad, m, v, t: int, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
    """One Adam step (t counts from 1), as torch.optim.Adam. Returns (param, m, v)."""
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat = m / (1 - beta1**t)  # the moments start at zero: undo that bias
    v_hat = v / (1 - beta2**t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


# ---------------------------------------------------------------- 05 attention


def softmax(x: np.ndarray) -> np.ndarray:
    """softmax over the last axis, shifted by the row's maximum so that exp never overflows."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def causal_mask(T: int) -> np.ndarray:
    """(T, T) boolean, True where query i may attend to key j: j <= i."""
    return np.tril(np.ones((T, T), dtype=bool))


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """softmax(q kᵀ / √d) v, q (..., Tq, d), k and v (..., Tk, d); mask True where attention may happen."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return softmax(scores) @ v  # (..., Tq, d)


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """(B, T, C) -> (B, n_head, T, C // n_head): head h holds features h·hs ... (h+1)·hs - 1."""
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)


# ---------------------------------------------------------------- 06 positions


def sinusoidal(T: int, d: int) -> np.ndarray:
    """(T, d): PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)); d even."""
    angle = np.arange(T)[:, None] / 10000.0 ** (np.arange(0, d, 2) / d)  # (T, d/2)
    table = np.zeros((T, d))
    table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)
    return table


def rope(x: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Rotate each pair (x_2i, x_2i+1) of x (T, d) at position m by m·θ_i, θ_i = base^(-2i/d)."""
    T, d = x.shape
    angle = np.arange(T)[:, None] * base ** (-np.arange(0, d, 2) / d)  # (T, d/2)
    even, odd = x[:, 0::2], x[:, 1::2]
    out = np.empty_like(x)
    out[:, 0::2] = even * np.cos(angle) - odd * np.sin(angle)
    out[:, 1::2] = even * np.sin(angle) + odd * np.cos(angle)
    return out


def alibi_bias(slopes: np.ndarray, T: int) -> np.ndarray:
    """(H, T, T): -slope_h · |i - j|, added to head h's scores."""
    distance = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :])
    return -slopes[:, None, None] * distance


# ---------------------------------------------------------------- 07 the GPT block


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Normalise the last axis to mean 0 and variance 1 (the population variance), then scale and shift."""
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """The mean over rows of -log softmax(logits)[target]: logits (N, C), targets (N,) ints."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def block(x, attn, mlp, ln_1, ln_2):
    """The pre-norm block: x + attn(ln_1(x)), then that + mlp(ln_2(that))."""
    x = x + attn(ln_1(x))
    return x + mlp(ln_2(x))


# ---------------------------------------------------------------- 08 BPE


def pair_counts(ids: list[int]) -> Counter:
    """How often each pair of neighbours occurs: [1, 2, 1, 2] -> {(1, 2): 2, (2, 1): 1}."""
    return Counter(zip(ids, ids[1:]))


# The merge step is the project's own: [1, 1, 1], (1, 1), 9 -> [9, 1].
merge = merge_pair


def best_pair(ids: list[int]) -> tuple[int, int]:
    """The most frequent pair; among equally frequent ones, the one that occurs first."""
    counts = pair_counts(ids)  # a Counter remembers the order pairs were first seen
    return max(counts, key=counts.get)  # max keeps the first of equal counts


# ---------------------------------------------------------------- 09 gradients of gradients


def tanh_second_derivative(x: np.ndarray) -> np.ndarray:
    """d²/dx² tanh(x) = -2·tanh(x)·(1 - tanh²(x)), by hand."""
    t = np.tanh(x)
    return -2 * t * (1 - t**2)


def second_derivative(f, x: Tensor) -> Tensor:
    """d²f/dx² elementwise for an elementwise f: differentiate the gradient, which needs its graph."""
    (first,) = mg.grad(f(x).sum(), x, create_graph=True)
    (second,) = mg.grad(first.sum(), x)
    return second


# ---------------------------------------------------------------- 10 making it fast


def softmax_backward(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The vector-Jacobian product of out = softmax(x) over the last axis: out·(grad − Σ grad·out)."""
    return out * (grad - (grad * out).sum(axis=-1, keepdims=True))


def cross_entropy_backward(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d mean cross-entropy / d logits (N, C): (softmax(logits) − onehot(targets)) / N."""
    grad = softmax(logits)
    grad[np.arange(len(targets)), targets] -= 1
    return grad / len(targets)
