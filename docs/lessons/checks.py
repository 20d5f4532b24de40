"""The checker of every exercise in the lessons, by the exercise's name.

    import checks
    checks.softmax(softmax)   # ✓ softmax: right on all 3 inputs.   or   ✗ softmax: ... Hint: ...

Each checker compares the learner's answer with `solutions.py` on a few inputs chosen so that
the typical mistakes listed beside it give different numbers (a ≠ b, no square matrices where
a transpose could hide, ties in the BPE counts). `checking.py` holds the machinery.
"""

from __future__ import annotations

import numpy as np

import solutions as S
from checking import Exercise, Result

__all__ = ["EXERCISES", "Result"]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _normal(*shape: int, seed: int = 0) -> np.ndarray:
    return _rng(seed).standard_normal(shape)


def cube(x):
    return x**3


# ---------------------------------------------------------------- 01 derivatives

numerical_derivative = Exercise(
    "numerical_derivative",
    S.numerical_derivative,
    cases=lambda: [(cube, 2.0), (np.sin, 1.0), (np.exp, 0.5)],
    outputs=["the derivative"],
    mistakes=[
        (
            lambda f, x, h=1e-5: (f(x + h) - f(x)) / h,
            "a one-sided difference (f(x + h) - f(x)) / h is off by about h·f''(x)/2; step both ways, "
            "(f(x + h) - f(x - h)) / 2h, and the error shrinks as h².",
        ),
        (
            lambda f, x, h=1e-5: (f(x + h) - f(x - h)) / h,
            "x + h and x - h are 2h apart: divide by 2h, not h.",
        ),
    ],
)

neuron_grads = Exercise(
    "neuron_grads",
    S.neuron_grads,
    cases=lambda: [(0.5, -1.5, 0.3), (2.0, 0.7, -0.1)],
    outputs=["dy/dx", "dy/dw", "dy/db"],
    mistakes=[
        (
            lambda x, w, b: (
                (1 - np.tanh(w * x + b) ** 2) * x,
                (1 - np.tanh(w * x + b) ** 2) * w,
                1 - np.tanh(w * x + b) ** 2,
            ),
            "did you use x where w belongs? z = w·x + b, so dz/dx = w and dz/dw = x.",
        ),
        (lambda x, w, b: (w, x, 1.0), "the tanh's own derivative is missing: dy/dz = 1 - tanh(z)² multiplies each."),
        (
            lambda x, w, b: ((1 - (w * x + b) ** 2) * w, (1 - (w * x + b) ** 2) * x, 1 - (w * x + b) ** 2),
            "tanh'(z) = 1 - tanh(z)²: square tanh(z), not z.",
        ),
    ],
)

expression_grads = Exercise(
    "expression_grads",
    S.expression_grads,
    cases=lambda: [(2.0, -3.0, 1.5), (0.5, 4.0, -1.0)],
    outputs=["dL/da", "dL/db", "dL/dc"],
    mistakes=[
        (lambda a, b, c: ((a * b + c) * b, (a * b + c) * a, a * b + c), "d(e²)/de = 2e: the factor 2 is missing."),
        (
            lambda a, b, c: (2 * (a * b + c) * a, 2 * (a * b + c) * b, 2 * (a * b + c)),
            "d(a·b)/da is b, the other factor: did you use a where b belongs?",
        ),
        (lambda a, b, c: (b, a, 1.0), "the chain rule: dL/da = dL/de · de/da, and dL/de = 2e is missing."),
    ],
)

# ---------------------------------------------------------------- 02 broadcasting

unbroadcast = Exercise(
    "unbroadcast",
    S.unbroadcast,
    cases=lambda: [
        (_normal(2, 3), (3,)),
        (_normal(4, 3, 5, seed=1), (3, 1)),
        (_normal(2, 3, seed=2), (1, 3)),
        (_normal(2, 3, seed=3), (2, 3)),
    ],
    outputs=["the summed gradient"],
    mistakes=[
        (
            lambda grad, shape: grad.sum(axis=tuple(range(grad.ndim - len(shape)))),
            "also sum (keepdims=True) over each axis where shape has size 1: that axis was stretched too.",
        ),
        (
            lambda grad, shape: grad.mean(axis=tuple(range(grad.ndim - len(shape)))),
            "a broadcast value was used at every position it was copied to, so its gradient is the sum "
            "of theirs, not the mean.",
        ),
    ],
)

mul_backward = Exercise(
    "mul_backward",
    S.mul_backward,
    cases=lambda: [
        (_normal(2, 3), _normal(2, 3, seed=1), _normal(3, seed=2)),
        (_normal(2, 3, seed=3), _normal(2, 1, seed=4), _normal(1, 3, seed=5)),
    ],
    outputs=["the gradient of a", "the gradient of b"],
    mistakes=[
        (
            lambda grad, a, b: (S.unbroadcast(grad * a, a.shape), S.unbroadcast(grad * b, b.shape)),
            "did you use a where b belongs? d(a·b)/da = b and d(a·b)/db = a.",
        ),
        (
            lambda grad, a, b: (grad * b, grad * a),
            "an input that was broadcast gets its gradient summed back to its own shape: "
            "pass each through unbroadcast.",
        ),
    ],
)

matmul_backward = Exercise(
    "matmul_backward",
    S.matmul_backward,
    cases=lambda: [(_normal(2, 4), _normal(2, 3, seed=1), _normal(3, 4, seed=2))],
    outputs=["the gradient of a", "the gradient of b"],
    mistakes=[
        (
            lambda grad, a, b: (grad @ b.T, grad.T @ a),
            "the gradient of b must have b's shape (k, m): aᵀ @ grad, not gradᵀ @ a (that is its transpose).",
        ),
        (
            lambda grad, a, b: (grad @ b, a @ grad),
            "line the shapes up: grad is (n, m) and b is (k, m), so only grad @ bᵀ gives a's shape (n, k).",
        ),
    ],
    errors=[
        (ValueError, "line the shapes up: grad is (n, m) and b is (k, m), so only grad @ bᵀ gives a's shape (n, k).")
    ],
)

# ---------------------------------------------------------------- 03 backward


def _run_function(cls, x, upstream):
    """forward(x) and backward(upstream) of a Function subclass, called directly as the engine would."""
    fn = cls()
    out = fn.forward(x)
    if out is None:
        return None
    grad = fn.backward(upstream)
    return None if grad is None else (out, grad)


class _SigmoidWithoutOneMinus(S.Sigmoid):
    def backward(self, grad):
        return grad * self.out


class _SigmoidOfInput(S.Sigmoid):
    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, grad):
        return grad * self.x * (1 - self.x)


class _SigmoidSign(S.Sigmoid):
    def forward(self, x):
        self.out = 1 / (1 + np.exp(x))
        return self.out


sigmoid_function = Exercise(
    "Sigmoid",
    S.Sigmoid,
    cases=lambda: [(_normal(2, 3), _normal(2, 3, seed=1))],
    outputs=["forward", "backward (the gradient of x)"],
    run=_run_function,
    mistakes=[
        (_SigmoidSign, "σ(x) = 1 / (1 + e^-x): mind the sign in the exponent."),
        (_SigmoidWithoutOneMinus, "σ'(x) = σ(x)·(1 - σ(x)): the factor (1 - σ) is missing."),
        (_SigmoidOfInput, "σ' = σ(1 - σ) is written with the output σ (self.out), not the input x."),
    ],
)


def _graph():
    """loss = sum(x·x + x·w): x reaches it along three paths, w along one."""
    from minigrad import Tensor

    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, dtype=np.float64, name="x")
    w = Tensor(np.array([0.5, 4.0, -1.0]), requires_grad=True, dtype=np.float64, name="w")
    loss = (x * x + x * w).sum()
    loss.name = "sum(x·x + x·w)"
    return x, w, loss


def _label(t) -> str:
    return t.name if t.grad_fn is None else f"{t.grad_fn.name}'s output"


def _check_order(got, want, args) -> tuple[str, str] | None:
    """Any order that puts every tensor once, after its inputs, is right: check those three."""
    if not isinstance(got, list):
        return f"the order is a {type(got).__name__}", "return a list of the tensors."
    seen, listed = set(), {id(t) for t in got}
    for t in got:
        if id(t) in seen:
            return f"{_label(t)} appears twice", "keep a set of the tensors already visited, and skip those."
        seen.add(id(t))
        for parent in _inputs(t):
            if id(parent) not in listed:
                return f"{_label(parent)} is missing", HINT_EVERY_TENSOR
            if id(parent) not in seen:
                return f"{_label(t)} comes before its input {_label(parent)}", HINT_INPUTS_FIRST
    missing = [t for t in want if id(t) not in seen]
    if missing:
        return f"{_label(missing[0])} is missing", HINT_EVERY_TENSOR
    return None


HINT_INPUTS_FIRST = "append a tensor only after visiting all of its inputs."
HINT_EVERY_TENSOR = "every tensor belongs in the order, the leaves too."


def _inputs(t) -> list:
    return [] if t.grad_fn is None else [p for p in t.grad_fn.parents if p is not None]


def _preorder(root):
    order, stack = [], [root]
    while stack:
        t = stack.pop()
        if all(t is not seen for seen in order):
            order.append(t)
            stack += _inputs(t)
    return order


def _postorder_repeating(root):
    return [t for p in _inputs(root) for t in _postorder_repeating(p)] + [root]


topological_order = Exercise(
    "topological_order",
    S.topological_order,
    cases=lambda: [(_graph()[2],)],
    outputs=["the order"],
    validate=_check_order,
    mistakes=[
        (_preorder, HINT_INPUTS_FIRST),
        (_postorder_repeating, "keep a set of the tensors already visited, and skip those."),
        (lambda root: [t for t in S.topological_order(root) if t.grad_fn is not None], HINT_EVERY_TENSOR),
    ],
)


def _run_backward(answer, loss):
    x, w = (t for t in S.topological_order(loss) if t.grad_fn is None)
    grads = answer(loss)
    if grads is None:
        return None
    if not isinstance(grads, dict):
        raise TypeError(f"return a dict from id(tensor) to its gradient, got a {type(grads).__name__}")
    return grads.get(id(x)), grads.get(id(w))


def _sent(t, grad) -> list:
    """(input, gradient) pairs that t's op sends back."""
    grads = t.grad_fn.backward(grad)
    return list(zip(t.grad_fn.parents, grads if isinstance(grads, tuple) else (grads,)))


def _backward_replacing(root):
    grads = {id(root): np.ones_like(root.data)}
    for t in reversed(S.topological_order(root)):
        if t.grad_fn is not None:
            for parent, g in _sent(t, grads[id(t)]):
                grads[id(parent)] = g
    return grads


def _backward_forwards(root):
    grads = {id(root): np.ones_like(root.data)}
    for t in S.topological_order(root):
        if t.grad_fn is not None:
            for parent, g in _sent(t, grads[id(t)]):
                grads[id(parent)] = grads.get(id(parent), 0) + g
    return grads


backward = Exercise(
    "backward",
    S.backward,
    cases=lambda: [(_graph()[2],)],
    outputs=["the gradient of x", "the gradient of w"],
    run=_run_backward,
    mistakes=[
        (
            _backward_replacing,
            "x reaches the loss along several paths: add what arrives to what it already got, do not replace it.",
        ),
        (_backward_forwards, "walk the order in reverse: an op's backward needs its output's gradient first."),
    ],
    errors=[(KeyError, "walk the order in reverse: an op's backward needs its output's gradient first.")],
)

# ---------------------------------------------------------------- 04 gradient checking, optimisers


def _bumpy(x):
    """A function whose slope along x[1, 1] depends strongly on x[0, 0]: a nudge left behind shows."""
    return float((x**3).sum() + 100 * x[0, 0] * x[1, 1])


def _gradient_not_restored(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        x[i] += eps
        up = f(x)
        x[i] -= 2 * eps
        grad[i] = (up - f(x)) / (2 * eps)
    return grad


def _gradient_whole_array(f, x, eps=1e-6):
    return np.full_like(x, (f(x + eps) - f(x - eps)) / (2 * eps))


numerical_gradient = Exercise(
    "numerical_gradient",
    S.numerical_gradient,
    cases=lambda: [(_bumpy, _normal(2, 2)), (_bumpy, _normal(2, 3, seed=1))],
    outputs=["the gradient"],
    mistakes=[
        (_gradient_not_restored, "put each element back to its value after its two evaluations (x[i] = kept)."),
        (_gradient_whole_array, "nudge one element at a time: moving the whole array gives the sum of all slopes."),
    ],
)

sgd_momentum_step = Exercise(
    "sgd_momentum_step",
    S.sgd_momentum_step,
    cases=lambda: [(_normal(3), _normal(3, seed=1), _normal(3, seed=2), 0.1, 0.9)],
    outputs=["param", "velocity"],
    mistakes=[
        (
            lambda param, grad, velocity, lr, momentum: (
                param + lr * (momentum * velocity + grad),
                momentum * velocity + grad,
            ),
            "step against the gradient: p - lr·v.",
        ),
        (
            lambda param, grad, velocity, lr, momentum: (
                param - lr * (momentum * velocity + (1 - momentum) * grad),
                momentum * velocity + (1 - momentum) * grad,
            ),
            "torch's SGD adds the gradient itself, v = μ·v + g, with no (1 - μ) factor (that is an average).",
        ),
        (
            lambda param, grad, velocity, lr, momentum: (param - lr * grad, momentum * velocity + grad),
            "the step moves along the new velocity, p - lr·v, not the bare gradient.",
        ),
    ],
)


def _adam_uncorrected(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m, v = betas[0] * m + (1 - betas[0]) * grad, betas[1] * v + (1 - betas[1]) * grad**2
    return param - lr * m / (np.sqrt(v) + eps), m, v


def _adam_eps_inside(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m, v = betas[0] * m + (1 - betas[0]) * grad, betas[1] * v + (1 - betas[1]) * grad**2
    return param - lr * (m / (1 - betas[0] ** t)) / np.sqrt(v / (1 - betas[1] ** t) + eps), m, v


def _adam_unsquared(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m, v = betas[0] * m + (1 - betas[0]) * grad, betas[1] * v + (1 - betas[1]) * grad
    return param - lr * (m / (1 - betas[0] ** t)) / (np.sqrt(np.abs(v) / (1 - betas[1] ** t)) + eps), m, v


adam_step = Exercise(
    "adam_step",
    S.adam_step,
    cases=lambda: [
        (_normal(3), _normal(3, seed=1), np.zeros(3), np.zeros(3), 1, 0.1, (0.9, 0.999), 1e-2),
        (_normal(3), _normal(3, seed=1), _normal(3, seed=2), np.abs(_normal(3, seed=3)), 5, 0.1, (0.9, 0.999), 1e-2),
    ],
    outputs=["param", "m", "v"],
    mistakes=[
        (_adam_uncorrected, "the moments start at zero: divide m by (1 - β1^t) and v by (1 - β2^t) (bias correction)."),
        (_adam_eps_inside, "eps is added after the square root: √v̂ + eps."),
        (_adam_unsquared, "v averages the squared gradient: (1 - β2)·g²."),
    ],
)

# ---------------------------------------------------------------- 05 attention

softmax = Exercise(
    "softmax",
    S.softmax,
    cases=lambda: [(_normal(2, 3),), (np.array([[1000.0, 1001.0, 1002.0], [-5.0, 0.0, 5.0]]),), (_normal(2, 2, 4),)],
    outputs=["the softmax"],
    mistakes=[
        (
            lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True),
            "exp(1000) overflows to inf, and inf / inf is NaN: subtract each row's maximum first "
            "(x - x.max(axis=-1, keepdims=True)); softmax does not change.",
        ),
        (
            lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum(),
            "normalise each row on its own: sum over the last axis with keepdims=True, not over everything.",
        ),
        (
            lambda x: (
                np.exp(x - x.max(axis=0, keepdims=True))
                / np.exp(x - x.max(axis=0, keepdims=True)).sum(axis=0, keepdims=True)
            ),
            "softmax runs along the last axis (axis=-1), over the keys, not down the first.",
        ),
    ],
)

causal_mask = Exercise(
    "causal_mask",
    S.causal_mask,
    cases=lambda: [(4,), (1,), (6,)],
    outputs=["the mask"],
    mistakes=[
        (
            lambda T: np.triu(np.ones((T, T), dtype=bool)),
            "query i may see keys j ≤ i, the past: that is the lower triangle (np.tril).",
        ),
        (lambda T: np.tril(np.ones((T, T), dtype=bool), k=-1), "a token may attend to itself: keep the diagonal."),
        (
            lambda T: np.triu(np.ones((T, T), dtype=bool), k=1),
            "True marks where attention MAY happen (F.scaled_dot_product_attention's convention); "
            "you marked where it may not.",
        ),
    ],
)


def _attention_variant(scale: str = "sqrt", mask: str = "apply", axis: int = -1):
    def attend(q, k, v, m=None):
        d = q.shape[-1]
        scores = q @ np.swapaxes(k, -1, -2) / {"sqrt": np.sqrt(d), "none": 1.0, "d": d}[scale]
        if m is not None and mask != "ignore":
            scores = np.where(m if mask == "apply" else ~m, scores, -np.inf)
        e = np.exp(scores - scores.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True) @ v

    return attend


attention = Exercise(
    "attention",
    S.attention,
    cases=lambda: [
        (_normal(2, 3, 4), _normal(2, 5, 4, seed=1), _normal(2, 5, 4, seed=2), None),
        (_normal(4, 4, seed=3), _normal(4, 4, seed=4), _normal(4, 4, seed=5), S.causal_mask(4)),
    ],
    outputs=["the attention output"],
    mistakes=[
        (_attention_variant(scale="none"), "scale the scores by 1/√d, d the size of a query."),
        (_attention_variant(scale="d"), "scale by 1/√d, not 1/d: that keeps the scores' variance near 1."),
        (_attention_variant(axis=-2), "softmax over the keys, the last axis of the scores (Tq, Tk)."),
        (
            _attention_variant(mask="ignore"),
            "the mask changed nothing: set the scores where it is False to -inf before the softmax.",
        ),
        (
            _attention_variant(mask="invert"),
            "the mask is True where attention MAY happen: keep those scores, -inf the others.",
        ),
    ],
)

split_heads = Exercise(
    "split_heads",
    S.split_heads,
    cases=lambda: [(_normal(2, 3, 8), 2), (_normal(1, 4, 6, seed=1), 3)],
    outputs=["the split"],
    mistakes=[
        (
            lambda x, n_head: x.reshape(x.shape[0], n_head, x.shape[1], x.shape[2] // n_head),
            "reshape to (B, T, n_head, hs) first (a head is a slice of each token's features), then swap T and "
            "the head axis with transpose(0, 2, 1, 3).",
        ),
        (
            lambda x, n_head: x.reshape(x.shape[0], x.shape[1], n_head, x.shape[2] // n_head).transpose(0, 2, 3, 1),
            "transpose(0, 2, 1, 3) moves only the head axis forward: (B, n_head, T, hs).",
        ),
    ],
)

# ---------------------------------------------------------------- 06 positions


def _sinusoidal_variant(swap: bool = False, exponent_i: bool = False):
    def table(T, d):
        i = np.arange(0, d, 2) / 2 if exponent_i else np.arange(0, d, 2)
        angle = np.arange(T)[:, None] / 10000.0 ** (i / d)
        out = np.zeros((T, d))
        out[:, 0::2], out[:, 1::2] = (np.cos(angle), np.sin(angle)) if swap else (np.sin(angle), np.cos(angle))
        return out

    return table


sinusoidal = Exercise(
    "sinusoidal",
    S.sinusoidal,
    cases=lambda: [(6, 8), (3, 4)],
    outputs=["the table"],
    mistakes=[
        (_sinusoidal_variant(swap=True), "the even columns (2i) take the sine, the odd ones (2i+1) the cosine."),
        (_sinusoidal_variant(exponent_i=True), "the exponent is 2i/d, with 2i the even column's index (0, 2, 4, ...)."),
    ],
)


def _rope_variant(sign: float = 1.0, halves: bool = False, positions: bool = True):
    def rotate(x, base=10000.0):
        T, d = x.shape
        theta = base ** (-np.arange(0, d, 2) / d)
        angle = (np.arange(T)[:, None] if positions else np.ones((T, 1))) * theta * sign
        first, second = (x[:, : d // 2], x[:, d // 2 :]) if halves else (x[:, 0::2], x[:, 1::2])
        a, b = first * np.cos(angle) - second * np.sin(angle), first * np.sin(angle) + second * np.cos(angle)
        out = np.empty_like(x)
        if halves:
            out[:, : d // 2], out[:, d // 2 :] = a, b
        else:
            out[:, 0::2], out[:, 1::2] = a, b
        return out

    return rotate


rope = Exercise(
    "rope",
    S.rope,
    cases=lambda: [(_normal(5, 8),), (_normal(3, 4, seed=1), 100.0)],
    outputs=["the rotated x"],
    mistakes=[
        (_rope_variant(sign=-1.0), "rotate by +m·θ: (x cos − y sin, x sin + y cos); yours turns the other way."),
        (
            _rope_variant(halves=True),
            "this project rotates neighbouring pairs (x_2i, x_2i+1), as transformer/positional.py does, "
            "not the first half against the second.",
        ),
        (_rope_variant(positions=False), "the angle grows with the position: m·θ_i, m = 0, 1, 2, ..."),
    ],
)

alibi_bias = Exercise(
    "alibi_bias",
    S.alibi_bias,
    cases=lambda: [(np.array([0.5, 0.25, 0.125]), 4), (np.array([0.5, 0.25]), 3)],
    outputs=["the bias"],
    mistakes=[
        (
            lambda slopes, T: slopes[:, None, None] * np.abs(np.arange(T)[:, None] - np.arange(T)),
            "it is a penalty: minus slope·distance, so far keys score lower.",
        ),
        (
            lambda slopes, T: -slopes[:, None, None] * (np.arange(T)[:, None] - np.arange(T)),
            "the penalty grows with the distance |i - j|, whichever side the key is on.",
        ),
        (
            lambda slopes, T: -slopes[None, None, :] * np.abs(np.arange(T)[:, None] - np.arange(T))[:, :, None],
            "one table per head, heads first: slopes[:, None, None] has shape (H, 1, 1).",
        ),
    ],
)

# ---------------------------------------------------------------- 07 the GPT block


def _layer_norm_variant(ddof: int = 0, eps_inside: bool = True, axis: int = -1):
    def norm(x, weight, bias, eps=1e-5):
        mean, var = x.mean(axis=axis, keepdims=True), x.var(axis=axis, ddof=ddof, keepdims=True)
        scale = np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps
        return (x - mean) / scale * weight + bias

    return norm


layer_norm = Exercise(
    "layer_norm",
    S.layer_norm,
    cases=lambda: [
        (_normal(2, 3, 4), _normal(4, seed=1), _normal(4, seed=2), 1e-5),
        (_normal(3, 4, seed=3), _normal(4, seed=4), _normal(4, seed=5), 0.5),
    ],
    outputs=["the normalised x"],
    mistakes=[
        (_layer_norm_variant(ddof=1), "layer norm divides by the population variance (ddof=0, np.var's default)."),
        (_layer_norm_variant(eps_inside=False), "eps goes inside the square root: √(var + eps)."),
        (_layer_norm_variant(axis=0), "normalise each position over its features: the last axis."),
    ],
)


def _cross_entropy_probabilities(logits, targets):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return float(-(e / e.sum(axis=-1, keepdims=True))[np.arange(len(targets)), targets].mean())


cross_entropy = Exercise(
    "cross_entropy",
    S.cross_entropy,
    cases=lambda: [(_normal(4, 5), np.array([0, 3, 1, 4])), (100 * _normal(2, 3, seed=1), np.array([2, 0]))],
    outputs=["the loss"],
    mistakes=[
        (
            lambda logits, targets: S.cross_entropy(logits, targets) * len(targets),
            "the loss is the mean over rows, not the sum.",
        ),
        (_cross_entropy_probabilities, "take the log: the loss is -log p(target), not -p(target)."),
        (
            lambda logits, targets: float(-logits[np.arange(len(targets)), targets].mean()),
            "-logits[target] leaves out the normaliser: take log_softmax of the logits first.",
        ),
    ],
)


def _block_case(seed: int):
    rng = _rng(seed)
    weights = [rng.standard_normal((4, 4)) / 2 for _ in range(2)]
    norms = [(rng.standard_normal(4), rng.standard_normal(4)) for _ in range(2)]

    def attn(x):
        return np.tanh(x @ weights[0])

    def mlp(x):
        return np.maximum(x @ weights[1], 0)

    def ln_1(x):
        return S.layer_norm(x, *norms[0])

    def ln_2(x):
        return S.layer_norm(x, *norms[1])

    return (rng.standard_normal((2, 3, 4)), attn, mlp, ln_1, ln_2)


def _post_norm(x, attn, mlp, ln_1, ln_2):
    x = ln_1(x + attn(x))
    return ln_2(x + mlp(x))


block = Exercise(
    "block",
    S.block,
    cases=lambda: [_block_case(0), _block_case(1)],
    outputs=["the block's output"],
    mistakes=[
        (_post_norm, "GPT-2's block is pre-norm: each sublayer reads ln(x), and x itself is added back, unnormalised."),
        (
            lambda x, attn, mlp, ln_1, ln_2: mlp(ln_2(attn(ln_1(x)))),
            "keep the residual stream: x = x + attn(ln_1(x)), then x + mlp(ln_2(x)).",
        ),
        (
            lambda x, attn, mlp, ln_1, ln_2: x + attn(ln_1(x)) + mlp(ln_2(x)),
            "the MLP reads the stream after attention has added to it: update x first, then add mlp(ln_2(x)).",
        ),
    ],
)

# ---------------------------------------------------------------- 08 BPE

pair_counts = Exercise(
    "pair_counts",
    S.pair_counts,
    cases=lambda: [([1, 2, 1, 2, 3],), ([5, 5, 5, 5],), ([7],)],
    outputs=["the counts"],
    mistakes=[
        (
            lambda ids: {p: n for p, n in S.pair_counts(ids[:-1]).items()},
            "the last pair is missing: a list of n tokens has n - 1 neighbouring pairs.",
        ),
        (lambda ids: dict.fromkeys(zip(ids, ids[1:]), 1), "count every occurrence, not just whether a pair occurs."),
    ],
)


def _merge_without_skip(ids, pair, new_id):
    merged = []
    for i in range(len(ids)):
        merged.append(new_id if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair else ids[i])
    return merged


def _merge_stopping_early(ids, pair, new_id):
    merged, skip = [], False
    for i in range(len(ids) - 1):  # never looks at the last token on its own
        if skip:
            skip = False
        elif (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            skip = True
        else:
            merged.append(ids[i])
    return merged


merge = Exercise(
    "merge",
    S.merge,
    cases=lambda: [([1, 2, 3, 1, 2], (1, 2), 9), ([1, 1, 1], (1, 1), 9), ([4, 1, 2, 5], (1, 2), 9)],
    outputs=["the merged list"],
    mistakes=[
        (_merge_without_skip, "after a merge, skip both tokens of the pair (i += 2): the second one is used up."),
        (
            _merge_stopping_early,
            "the last token went missing: keep a token that ends the list when no pair starts there.",
        ),
    ],
)


def _best_pair_smallest(ids):
    counts = S.pair_counts(ids)
    top = max(counts.values())
    return min(p for p, n in counts.items() if n == top)


best_pair = Exercise(
    "best_pair",
    S.best_pair,
    cases=lambda: [([5, 6, 1, 2, 5, 6, 1, 2],), ([3, 3, 1, 2, 3, 3],)],
    outputs=["the pair"],
    mistakes=[
        (_best_pair_smallest, "ties go to the pair seen first in the text, not the smallest pair."),
        (
            lambda ids: min(S.pair_counts(ids), key=S.pair_counts(ids).get),
            "merge the MOST frequent pair (max, not min).",
        ),
    ],
)

# ---------------------------------------------------------------- 09 gradients of gradients

tanh_second_derivative = Exercise(
    "tanh_second_derivative",
    S.tanh_second_derivative,
    cases=lambda: [(np.linspace(-2, 2, 5),)],
    outputs=["the second derivative"],
    mistakes=[
        (lambda x: -np.tanh(x) * (1 - np.tanh(x) ** 2), "d/dx (1 - t²) = -2t·t': the factor 2 is missing."),
        (lambda x: -2 * np.tanh(x), "the chain rule: t' = 1 - t² multiplies, d/dx t² = 2t·(1 - t²)."),
        (lambda x: 2 * np.tanh(x) * (1 - np.tanh(x) ** 2), "d/dx (1 - t²) is minus 2t·t'."),
    ],
)


def _run_second_derivative(answer, f, x):
    from minigrad import Tensor

    return answer(f, Tensor(x, requires_grad=True, dtype=np.float64))


def _mg_tanh(x):
    return x.tanh()


def _mg_sin_square(x):
    return x.sin() * x


def _first_derivative_only(f, x):
    import minigrad as mg

    return mg.grad(f(x).sum(), x)[0]


def _without_create_graph(f, x):
    import minigrad as mg

    (first,) = mg.grad(f(x).sum(), x)
    return mg.grad(first.sum(), x)[0]


_NEEDS_GRAPH = "the first gradient must carry a graph to be differentiated again: mg.grad(..., create_graph=True)."

second_derivative = Exercise(
    "second_derivative",
    S.second_derivative,
    cases=lambda: [(_mg_tanh, np.linspace(-2, 2, 5)), (_mg_sin_square, np.linspace(-1, 3, 4))],
    outputs=["the second derivative"],
    run=_run_second_derivative,
    mistakes=[
        (_first_derivative_only, "that is the first derivative: differentiate it once more."),
        (_without_create_graph, _NEEDS_GRAPH),
    ],
    errors=[(RuntimeError, _NEEDS_GRAPH)],
)

# ---------------------------------------------------------------- 10 making it fast


def _softmax_backward_case(seed: int):
    out = S.softmax(_normal(2, 4, seed=seed))
    return (_normal(2, 4, seed=seed + 1), out)


softmax_backward = Exercise(
    "softmax_backward",
    S.softmax_backward,
    cases=lambda: [_softmax_backward_case(0), (_normal(2, 3, 5, seed=2), S.softmax(_normal(2, 3, 5, seed=3)))],
    outputs=["the gradient of x"],
    mistakes=[
        (
            lambda grad, out: grad * out * (1 - out),
            "that is only the Jacobian's diagonal: every output of a softmax depends on every input, "
            "so subtract the weighted sum, out·(grad − Σ grad·out).",
        ),
        (
            lambda grad, out: out * (grad - (grad * out).sum(axis=0, keepdims=True)),
            "sum over the last axis, the one softmax normalised (axis=-1, keepdims=True).",
        ),
    ],
)


def _onehot_forgotten(logits, targets):
    return S.softmax(logits) / len(targets)


def _cross_entropy_summed(logits, targets):
    return S.cross_entropy_backward(logits, targets) * len(targets)


cross_entropy_backward = Exercise(
    "cross_entropy_backward",
    S.cross_entropy_backward,
    cases=lambda: [(_normal(4, 5), np.array([0, 3, 1, 4])), (_normal(3, 3, seed=1), np.array([2, 2, 0]))],
    outputs=["the gradient of the logits"],
    mistakes=[
        (_cross_entropy_summed, "the loss is the mean over the N rows, so each row's gradient is divided by N."),
        (_onehot_forgotten, "subtract 1 at each row's target: d(-log p_t)/dz = softmax(z) − onehot(t)."),
        (
            lambda logits, targets: (S.softmax(logits) - np.eye(logits.shape[1])[targets]) * -1 / len(targets),
            "mind the sign: the loss falls as the target's logit rises, so its gradient there is negative.",
        ),
    ],
)

EXERCISES = {name: value for name, value in dict(globals()).items() if isinstance(value, Exercise)}
