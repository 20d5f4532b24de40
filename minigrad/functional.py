"""Composite and fused operations: the building blocks of neural networks.

A *fused* op is a single `Function` whose backward was derived by hand, so a whole formula
costs one graph node and a few NumPy passes. Each fused op has a *composed* twin
(`*_composed`) written with primitive tensor ops only: it is the readable definition, and
the tests check that the two agree in value and gradient.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad.autograd import Function
from minigrad.ops import unbroadcast
from minigrad.tensor import Tensor, _constant

# ---------------------------------------------------------------- erf and GELU

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_vector_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function on an array, without SciPy.

    float64 uses the C library's erf (exact to double precision, for gradient checks);
    other floats use Abramowitz & Stegun 7.1.26, a rational approximation with absolute
    error below 1.5e-7 — under float32's own resolution near 1.
    """
    if x.dtype == np.float64:
        return _vector_erf(x).astype(np.float64)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.copysign(1.0 - poly * np.exp(-a * a), x).astype(x.dtype, copy=False)


class GELU(Function):
    """GELU(x) = x Φ(x), Φ the standard normal CDF; or its tanh approximation."""

    def forward(self, x, approximate="none"):
        if approximate == "none":
            cdf = 0.5 * (1.0 + erf(x * _SQRT_HALF))
            pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
            # d/dx x Φ(x) = Φ(x) + x φ(x)
            self.derivative = cdf + x * pdf
            return x * cdf
        if approximate == "tanh":
            # 0.5 x (1 + tanh u),  u = √(2/π) (x + 0.044715 x³)
            c = math.sqrt(2.0 / math.pi)
            th = np.tanh(c * (x + 0.044715 * x**3))
            du = c * (1.0 + 3 * 0.044715 * x * x)
            self.derivative = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du
            return 0.5 * x * (1.0 + th)
        raise ValueError(f'gelu: approximate must be "none" or "tanh", not {approximate!r}')

    def backward(self, g):
        return g * self.derivative


class Erf(Function):
    def forward(self, x):
        self.x = x
        return erf(x)

    def backward(self, g):
        # d erf(x)/dx = 2/√π · e^(-x²)
        return g * (2.0 / math.sqrt(math.pi)) * np.exp(-self.x * self.x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU, exact (erf) by default as torch.nn.GELU(); approximate="tanh" for GPT-2's form."""
    return GELU.apply(x, approximate=approximate)


def gelu_composed(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1.0 + inner.tanh())
    return 0.5 * x * (1.0 + Erf.apply(x * _SQRT_HALF))


# ---------------------------------------------------------------- linear


class Linear(Function):
    """y = x Wᵀ + b with W of shape (out, in), as torch.nn.functional.linear."""

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        self.has_bias = bias is not None
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, g):
        x, w = self.x, self.weight
        g2 = g.reshape(-1, g.shape[-1])  # fold batch axes: (N, out)
        gx = (g @ w) if self.needs_input_grad[0] else None  # (..., in)
        gw = (g2.T @ x.reshape(-1, x.shape[-1])) if self.needs_input_grad[1] else None  # (out, in)
        gb = g2.sum(axis=0) if self.has_bias and self.needs_input_grad[2] else None
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., in) @ weight (out, in)ᵀ + bias (out,) -> (..., out)."""
    return Linear.apply(x, weight, bias)


def linear_composed(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    y = x @ weight.T
    return y + bias if bias is not None else y


# ---------------------------------------------------------------- layer norm


class LayerNorm(Function):
    """Normalize over the last axis to zero mean and unit variance, then scale and shift."""

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        mean = x.mean(axis=-1, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=-1, keepdims=True)
        self.rstd = 1.0 / np.sqrt(var + eps)
        self.xhat = centered * self.rstd
        self.weight = weight
        self.has_bias = bias is not None
        y = self.xhat * weight if weight is not None else self.xhat.copy()
        if bias is not None:
            y += bias
        return y

    def backward(self, g):
        xhat, rstd, w = self.xhat, self.rstd, self.weight
        needs = self.needs_input_grad + (False,) * (3 - len(self.needs_input_grad))
        batch_axes = tuple(range(g.ndim - 1))
        gw = (g * xhat).sum(axis=batch_axes) if w is not None and needs[1] else None
        gb = g.sum(axis=batch_axes) if self.has_bias and needs[2] else None
        gx = None
        if needs[0]:
            gxhat = g * w if w is not None else g
            # dx = rstd · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂))   (means over the last axis)
            gx = rstd * (
                gxhat - gxhat.mean(axis=-1, keepdims=True) - xhat * (gxhat * xhat).mean(axis=-1, keepdims=True)
            )
        return gx, gw, gb


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalization over the last axis of x (..., C); weight and bias are (C,)."""
    return LayerNorm.apply(x, weight, bias, eps=eps)


def layer_norm_composed(x: Tensor, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    y = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """x / sqrt(mean(x²) + eps) over the last axis, then scaled by weight (C,)."""
    y = x / ((x * x).mean(axis=-1, keepdims=True) + eps).sqrt()
    return y * weight if weight is not None else y


# ---------------------------------------------------------------- cross-entropy


class CrossEntropy(Function):
    """Mean over kept rows of -log softmax(logits)[target]; rows with ignore_index are skipped."""

    def forward(self, logits, targets, ignore_index=-1):
        targets = np.asarray(targets).reshape(-1)
        logits2 = logits.reshape(-1, logits.shape[-1])
        if logits2.shape[0] != targets.shape[0]:
            raise ValueError(
                f"cross_entropy: logits of shape {logits.shape} need {logits2.shape[0]} targets, "
                f"got {targets.shape[0]}"
            )
        kept = targets != ignore_index
        safe_targets = np.where(kept, targets, 0)
        if kept.any() and (safe_targets.min() < 0 or safe_targets.max() >= logits2.shape[1]):
            raise ValueError(f"cross_entropy: targets must lie in [0, {logits2.shape[1]}) or equal ignore_index")
        shifted = logits2 - logits2.max(axis=1, keepdims=True)
        log_sum_exp = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_sum_exp
        rows = np.arange(len(targets))
        self.in_shape, self.log_probs = logits.shape, log_probs
        self.rows, self.targets, self.kept = rows, safe_targets, kept
        self.count = kept.sum()
        picked = log_probs[rows, safe_targets] * kept
        return np.asarray(-picked.sum() / self.count, dtype=logits.dtype) if self.count else np.asarray(np.nan, dtype=logits.dtype)

    def backward(self, g):
        # dL/dlogits = (softmax(logits) - onehot(target)) / count, on kept rows only
        grad = np.exp(self.log_probs)
        grad[self.rows, self.targets] -= 1.0
        grad *= (g / self.count) * self.kept[:, None]
        return grad.reshape(self.in_shape), None


def cross_entropy(logits: Tensor, targets, ignore_index: int = -1) -> Tensor:
    """logits (N, C) (or (..., C)), integer targets (N,) (or (...)) -> scalar mean loss."""
    return CrossEntropy.apply(logits, _constant(targets), ignore_index=ignore_index)


def cross_entropy_composed(logits: Tensor, targets, ignore_index: int = -1) -> Tensor:
    targets = _constant(targets).reshape(-1)
    log_probs = logits.reshape(-1, logits.shape[-1]).log_softmax(axis=-1)
    kept = targets != ignore_index
    picked = log_probs[np.arange(len(targets)), np.where(kept, targets, 0)]
    return -(picked * kept.astype(logits.dtype)).sum() / float(kept.sum())


# ---------------------------------------------------------------- dropout and embedding


def dropout(x: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    rng = np.random.default_rng() if rng is None else rng
    keep = (rng.random(x.shape) >= p).astype(x.dtype) * (1.0 / (1.0 - p))
    return x * Tensor._wrap(keep.astype(x.dtype, copy=False))


def embedding(ids, weight: Tensor) -> Tensor:
    """Rows of weight (V, C) picked by integer ids (...) -> (..., C)."""
    ids = _constant(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding ids must be integers, not {ids.dtype}")
    return weight[ids]


# ---------------------------------------------------------------- attention


def attention_bias(mask, is_causal: bool, q_len: int, k_len: int, dtype) -> np.ndarray | None:
    """Turn the masks into one additive bias: 0 where attention is allowed, -inf where not.

    A boolean mask is True where attention is NOT allowed (PyTorch's convention for
    nn.MultiheadAttention); a float mask is added to the scores as it is.
    """
    bias = None
    if is_causal:
        # position i may look at positions j <= i
        bias = np.triu(np.full((q_len, k_len), -np.inf, dtype=dtype), k=1)
    if mask is not None:
        mask = _constant(mask)
        extra = np.where(mask, -np.inf, 0).astype(dtype) if mask.dtype == bool else mask.astype(dtype)
        bias = extra if bias is None else bias + extra
    return bias


class ScaledDotProductAttention(Function):
    """softmax(q kᵀ / √d + bias) v in one node; saves only the attention weights for backward."""

    def forward(self, q, k, v, bias=None, dropout_p=0.0, rng=None):
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        scores = (q @ np.swapaxes(k, -1, -2)) * self.scale  # (..., Tq, Tk)
        if bias is not None:
            scores = scores + bias
        scores -= scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        self.keep = None
        if dropout_p > 0.0:
            rng = np.random.default_rng() if rng is None else rng
            self.keep = (rng.random(weights.shape) >= dropout_p).astype(weights.dtype) / (1.0 - dropout_p)
        self.q, self.k, self.v, self.weights = q, k, v, weights
        dropped = weights * self.keep if self.keep is not None else weights
        self.dropped = dropped
        return dropped @ v

    def backward(self, g):
        q, k, v, weights, dropped = self.q, self.k, self.v, self.weights, self.dropped
        gv = np.swapaxes(dropped, -1, -2) @ g  # (..., Tk, dv)
        gweights = g @ np.swapaxes(v, -1, -2)  # (..., Tq, Tk)
        if self.keep is not None:
            gweights = gweights * self.keep
        # softmax backward: ds = w ⊙ (dw - Σ dw ⊙ w)
        gscores = weights * (gweights - (gweights * weights).sum(axis=-1, keepdims=True))
        gscores *= self.scale
        gq = gscores @ k
        gk = np.swapaxes(gscores, -1, -2) @ q
        return (
            unbroadcast(gq, q.shape),
            unbroadcast(gk, k.shape),
            unbroadcast(gv, v.shape),
            None,
        )


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask=None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Tensor:
    """Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv). `mask` broadcasts to
    (..., Tq, Tk): boolean True = not allowed, or float added to the scores. `is_causal`
    lets query i see keys j <= i only. Dropout on the weights needs `dropout_p` > 0.
    """
    bias = attention_bias(mask, is_causal, q.shape[-2], k.shape[-2], q.dtype)
    return ScaledDotProductAttention.apply(q, k, v, bias, dropout_p=dropout_p, rng=rng)


def scaled_dot_product_attention_composed(q, k, v, mask=None, is_causal=False, return_weights=False):
    bias = attention_bias(mask, is_causal, q.shape[-2], k.shape[-2], q.dtype)
    scores = (q @ k.transpose(*range(k.ndim - 2), k.ndim - 1, k.ndim - 2)) * (1.0 / math.sqrt(q.shape[-1]))
    if bias is not None:
        scores = scores + bias
    weights = scores.softmax(axis=-1)
    out = weights @ v
    return (out, weights) if return_weights else out


__all__ = [
    "cross_entropy",
    "dropout",
    "embedding",
    "erf",
    "gelu",
    "layer_norm",
    "linear",
    "rms_norm",
    "scaled_dot_product_attention",
]
