"""Fast twins of the definitions in minigrad/functional.py, and the one switch between the two.

Each kernel is one `Function` whose backward was derived by hand, so a whole formula costs
one graph node and a few NumPy passes instead of a dozen nodes, each keeping its inputs for
backward. Each says which definition it replaces and carries it as `definition` (called with
the same arguments); the tests hold every pair equal in value and gradient.

The layers and models call the functions of this file (`kernels.linear`, ...). Whether such a
call runs the kernel or its readable definition is decided in one place, `use_kernels`: on by
default, off inside `with use_kernels(False):`, and a Module with `fused` set (a layer built
with `fused=`, a GPT built from `GPTConfig(fused=...)`) runs its forward under its own setting.
With kernels off, `minigrad.viz.draw_graph` shows every op of every definition.

Three habits make the kernels fast on a CPU, where NumPy runs every elementwise operation as
its own pass over memory:
- long elementwise chains (GELU, erf) run in chunks small enough to stay in the CPU cache,
  writing into preallocated buffers (`out=`), so each pass reads cache instead of RAM;
- sums along the last axis are matrix–vector products with a vector of ones (`x @ ones`),
  which BLAS runs vectorised, faster than `x.sum(axis=-1)` on short rows;
- matrix products work on 2-D views, one big product instead of a batch of small ones.
Attention also never keeps its (..., Tq, Tk) weights when they are large: it works in
cache-sized blocks of the batch and recomputes the weights in backward.
Every kernel keeps the dtype it was given: float32 in, float32 out, nothing in float64.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable

import numpy as np

from minigrad import functional as F
from minigrad.autograd import Function
from minigrad.ops import constant_vector, lane_sums, softmax_array, unbroadcast
from minigrad.tensor import Tensor

# ---------------------------------------------------------------- the switch: kernel or definition


class _Switch:
    kernels = True  # what a call of a function below runs: its kernel (True) or its definition


_switch = _Switch()


class use_kernels(contextlib.ContextDecorator):
    """Run the fused kernels (True, the default) or the readable definitions of functional.py (False).

    As torch.nn.attention.sdpa_kernel picks an attention backend: a context manager or a
    decorator, and settings nest. The numbers are the same either way (to rounding);
    use_kernels(False) makes every op of every definition visible to `minigrad.viz`.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = bool(enabled)
        self.previous: list[bool] = []

    def __enter__(self):
        self.previous.append(_switch.kernels)
        _switch.kernels = self.enabled
        return self

    def __exit__(self, *exc):
        _switch.kernels = self.previous.pop()
        return False


def kernels_enabled() -> bool:
    """Whether the functions of this file run their kernels now (see `use_kernels`)."""
    return _switch.kernels


def twin_of(definition: Callable) -> Callable:
    """Decorator: the decorated kernel runs while kernels are enabled, `definition` otherwise.

    Both take the same arguments. This is the only place that acts on the switch; the result
    keeps the two as `.kernel` and `.definition`.
    """

    def decorate(kernel: Callable) -> Callable:
        @functools.wraps(kernel)
        def kernel_or_definition(*args, **kwargs):
            return (kernel if _switch.kernels else definition)(*args, **kwargs)

        kernel_or_definition.kernel, kernel_or_definition.definition = kernel, definition
        return kernel_or_definition

    return decorate


# ---------------------------------------------------------------- chunks and fast sums

# Elements per chunk of an elementwise chain: a few 256 KB float32 buffers fit in L2 cache.
_CHUNK = 1 << 16


def _ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of n ones, cached: `_ones(n) @ x` sums the columns of x (n, ...)."""
    return constant_vector(n, 1.0, dtype)


def _column_sums(x: np.ndarray) -> np.ndarray:
    """Σ over every axis but the last: (..., n) -> (n,). A BLAS vector–matrix product."""
    rows = x.reshape(-1, x.shape[-1])
    return _ones(rows.shape[0], x.dtype) @ rows


# ---------------------------------------------------------------- erf and GELU

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_LOG2_E = 1.0 / math.log(2.0)  # e^x = 2^(x log₂e)
_vector_erf = np.frompyfunc(math.erf, 1, 1)

# Abramowitz & Stegun 7.1.26: erfc z = t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-z²) for z >= 0,
# t = 1 / (1 + p z), absolute error below 1.5e-7 — under float32's own resolution near 1.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@functools.lru_cache(maxsize=4)
def _erfc_form(scale: float, amplitude: float) -> tuple[float, float, tuple[float, ...]]:
    """amplitude · erfc(scale · a) of 7.1.26 rewritten for the fewest passes: (κ, λ, (d4, d3, d2, d1)).

    With z = scale · a, t = 1 / (1 + p z) = κ u where κ = 1 / (p · scale) and u = 1 / (a + κ),
    so amplitude · t P(t) = Σ b_i u^i with b_i = amplitude · a_i κ^i. With w = λ u and
    λ = b5^(1/5) the polynomial is monic: Σ b_i u^i = w (d1 + w (d2 + w (d3 + w (d4 + w)))),
    d_i = b_i / λ^i. Scale and amplitude then cost no pass, and neither does the leading coefficient.
    """
    kappa = 1.0 / (_AS_P * scale)
    b = [amplitude * a * kappa ** (i + 1) for i, a in enumerate(_AS_A)]
    lam = b[4] ** 0.2
    d = [b_i / lam ** (i + 1) for i, b_i in enumerate(b)]
    return kappa, lam, tuple(d[3::-1])


def _erfc_chunk(a: np.ndarray, scale: float, amplitude: float, out: np.ndarray, scratch: np.ndarray) -> None:
    """amplitude · erfc(scale · a) for a >= 0 into out (Abramowitz & Stegun 7.1.26, see `_erfc_form`).

    All three arrays 1-D of one length; nothing is allocated. 14 passes, e^x the only costly one,
    taken as 2^(x log₂e): NumPy's 2^x is nearly twice as fast as its e^x, and log₂e costs no
    pass, folded into the constant the square is multiplied by. Where e^(-z²) falls below the
    normal floats (z > 9.3, so |x| > 13.2 in GELU) NumPy's 2^x takes a slow path, many times
    slower per number; activations of the usual size never get there.
    """
    kappa, lam, coefficients = _erfc_form(scale, amplitude)
    w = np.add(a, kappa, out=scratch)
    np.divide(lam, w, out=w)  # w = λ / (a + κ)
    poly = np.add(w, coefficients[0], out=out)  # Horner, the monic term first
    poly *= w
    for coefficient in coefficients[1:]:
        poly += coefficient
        poly *= w
    gauss = np.square(a, out=scratch)
    gauss *= -scale * scale * _LOG2_E
    np.exp2(gauss, out=gauss)  # e^(-z²)
    poly *= gauss


def _chunk_buffers(n: int, dtype, count: int) -> np.ndarray:
    """`count` scratch vectors long enough for one chunk of an n-element chain, as the rows of one array."""
    return np.empty((count, min(n, _CHUNK)), dtype=dtype)


def erf_array(x: np.ndarray) -> np.ndarray:
    """The error function on a NumPy array, without SciPy (`functional.erf` is the Tensor op).

    float64 uses the C library's erf (exact to double precision, for gradient checks);
    other floats use Abramowitz & Stegun 7.1.26 (error below 1.5e-7) in cache-sized chunks:
    erf z = sign(z) (1 - erfc |z|).
    """
    if x.dtype == np.float64:
        return np.asarray(_vector_erf(x), dtype=np.float64)  # a 0-d input gives a Python float
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    magnitude, scratch = _chunk_buffers(flat.size, flat.dtype, 2)
    for start in range(0, flat.size, _CHUNK):
        z = flat[start : start + _CHUNK]
        n = z.size
        erf_z = out[start : start + n]
        _erfc_chunk(np.abs(z, out=magnitude[:n]), 1.0, 1.0, erf_z, scratch[:n])
        np.subtract(1.0, erf_z, out=erf_z)
        np.copysign(erf_z, z, out=erf_z)  # erf is odd
    return out.reshape(x.shape)


def _gelu_erf_float64(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GELU and its derivative in double precision (the path gradient checks take)."""
    cdf = 0.5 * (1.0 + erf_array(x * _SQRT_HALF))  # Φ(x)
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)  # φ(x)
    return x * cdf, cdf + x * pdf


# Past this, a · q(a) of GELU is 0 in float32: e^(-16²/2) is below its smallest number.
_TAIL_ENDS = 16.0


@functools.lru_cache(maxsize=8)
def _gelu_bounds(n: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """n zeros and n copies of _TAIL_ENDS, read-only: max and min against a vector run vectorised,
    against a scalar NumPy's float32 loop does not (2.4 against 11 µs on 32K numbers). Both are
    `constant_vector`s, cached there too; one lookup here instead of two calls there saves GELU
    1.3 µs of its 49 at (64, 512)."""
    return constant_vector(n, 0.0, dtype), constant_vector(n, _TAIL_ENDS, dtype)


def _gelu_erf_chunked(x: np.ndarray) -> np.ndarray:
    """GELU x Φ(x), one cache-sized chunk at a time, 19 elementwise passes, no sign to mend.

    With a = |x| and q(a) = 1 - Φ(a) = ½ erfc(a / √2), both signs read x Φ(x) = max(x, 0) - a q(a):
    x >= 0 gives x - x q(x) = x Φ(x), and x < 0 gives -|x| q(|x|) = x Φ(x), since Φ(x) = q(|x|)
    there. No sign to put on, and negative x lose no digits to cancellation. a is taken of
    min(x, 16): past 16, a q(a) is 0 in float32 either way, and +∞ gives ∞ - 0 = ∞ as the
    definition does, not ∞ - ∞ · 0 (-∞ still gives 0 - ∞ · 0 = NaN, as there).
    """
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    magnitude, tail, scratch = _chunk_buffers(flat.size, flat.dtype, 3)
    zeros, tail_ends = _gelu_bounds(magnitude.size, flat.dtype)
    for start in range(0, flat.size, _CHUNK):
        xc = flat[start : start + _CHUNK]
        n = xc.size
        a = np.minimum(xc, tail_ends[:n], out=magnitude[:n])
        np.abs(a, out=a)
        q = tail[:n]
        _erfc_chunk(a, _SQRT_HALF, 0.5, q, scratch[:n])  # q(a) = ½ erfc(a / √2)
        q *= a
        out_c = np.maximum(xc, zeros[:n], out=out[start : start + n])
        out_c -= q
    return out.reshape(x.shape)


def _gelu_erf_backward_chunked(g: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """g · (Φ(x) + x φ(x)), chunked in 9 passes; Φ(x) = out / x is read back from the forward's output.

    Dividing out the forward's result costs one pass where recomputing erfc would cost fourteen,
    and keeping x and out (which the graph and the next layer keep anyway) instead of a
    stored derivative saves an activation-sized array per layer. Φ(x) = ½ where |x| < 1e-15.
    """
    flat_g, flat_x, flat_out = (np.ascontiguousarray(a).reshape(-1) for a in (g, x, out))
    grad = np.empty_like(flat_x)
    cdf, pdf = _chunk_buffers(flat_x.size, flat_x.dtype, 2)
    for start in range(0, flat_x.size, _CHUNK):
        xc = flat_x[start : start + _CHUNK]
        n = xc.size
        p = np.square(xc, out=pdf[:n])
        # rare: where x² < 1e-30, x Φ(x) may have lost x's digits (0/0 at x = 0), and Φ(x) = ½ to
        # float32 precision. fmin skips NaN, so a NaN elsewhere in the chunk hides no zero.
        near_zero = p < 1e-30 if np.fmin.reduce(p) < 1e-30 else None
        p *= -0.5 * _LOG2_E
        np.exp2(p, out=p)  # e^(-x²/2), as 2^x: see `_erfc_chunk`
        p *= _INV_SQRT_2PI  # φ(x)
        c = cdf[:n]
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(flat_out[start : start + n], xc, out=c)  # Φ(x)
        if near_zero is not None:
            c[near_zero] = 0.5
        d = np.multiply(xc, p, out=grad[start : start + n])
        d += c  # d/dx x Φ(x) = Φ(x) + x φ(x)
        d *= flat_g[start : start + n]
    return grad.reshape(x.shape)


class GELU(Function):
    """Replaces `functional.gelu`: GELU(x) = x Φ(x), or its tanh approximation, in one node."""

    definition = staticmethod(F.gelu)

    def forward(self, x, approximate="none"):
        self.approximate = approximate
        if approximate == "none":
            out = _gelu_erf_float64(x)[0] if x.dtype == np.float64 else _gelu_erf_chunked(x)
            self.x, self.out = x, out
            return out
        if approximate == "tanh":
            # 0.5 x (1 + tanh u),  u = √(2/π) (x + 0.044715 x³)
            c = math.sqrt(2.0 / math.pi)
            th = np.tanh(c * (x + 0.044715 * x**3))
            du = c * (1.0 + 3 * 0.044715 * x * x)
            self.derivative = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du
            return 0.5 * x * (1.0 + th)
        raise ValueError(f'gelu: approximate must be "none" or "tanh", not {approximate!r}')

    def backward(self, g):
        if self.approximate == "tanh":
            return g * self.derivative
        if self.x.dtype == np.float64:
            return g * _gelu_erf_float64(self.x)[1]  # d/dx x Φ(x) = Φ(x) + x φ(x), exactly
        return _gelu_erf_backward_chunked(g, self.x, self.out)


@twin_of(F.gelu)
def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """`functional.gelu` in one fused node."""
    return GELU.apply(x, approximate=approximate)


# ---------------------------------------------------------------- linear


class Linear(Function):
    """Replaces `functional.linear`: y = x Wᵀ + b with W of shape (out, in).

    The batch axes of x are folded into one, so each product is a single 2-D BLAS call
    (a batch of small products on a 3-D x costs almost twice as much).
    """

    definition = staticmethod(F.linear)

    def forward(self, x, weight, bias=None):
        self.x2 = x.reshape(-1, x.shape[-1])  # (N, in)
        self.x_shape, self.weight = x.shape, weight
        self.has_bias = bias is not None
        y = self.x2 @ weight.T  # (N, out)
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        needs = self.needs_input_grad + (False,) * (3 - len(self.needs_input_grad))
        g2 = g.reshape(-1, g.shape[-1])  # (N, out)
        gx = (g2 @ self.weight).reshape(self.x_shape) if needs[0] else None  # (..., in)
        gw = g2.T @ self.x2 if needs[1] else None  # (out, in)
        gb = _column_sums(g2) if self.has_bias and needs[2] else None  # (out,)
        return gx, gw, gb


@twin_of(F.linear)
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`functional.linear` in one fused node; a 1-D weight or a bias not of shape (out,) runs the definition."""
    if weight.ndim != 2 or (bias is not None and bias.shape != weight.shape[:1]):
        return F.linear(x, weight, bias)  # torch's rarer shapes, broadcast as the definition does
    return Linear.apply(x, weight, bias)


# ---------------------------------------------------------------- layer norm


class LayerNorm(Function):
    """Replaces `functional.layer_norm`: normalise the trailing axes, then scale and shift.

    The normalised axes are flattened into rows (N, D). Saves x (which the graph keeps
    anyway), its row means and 1/std, and recomputes x̂ in backward: two cheap passes instead
    of holding a second activation-sized array per layer.
    """

    definition = staticmethod(F.layer_norm)

    def forward(self, x, weight=None, bias=None, eps=1e-5, normalized_shape=None):
        n_axes = len(F.normalized_axes(x, weight, normalized_shape))
        D = math.prod(x.shape[x.ndim - n_axes :])
        x2 = x.reshape(-1, D)  # (N, D)
        w = None if weight is None else weight.reshape(-1)  # (D,)
        b = None if bias is None else bias.reshape(-1)  # (D,)
        averaging = constant_vector(D, 1.0 / D, x.dtype)  # x2 @ averaging: the row means, by BLAS
        mean = (x2 @ averaging)[:, None]  # (N, 1)
        y = x2 - mean  # (N, D)
        variance = (np.square(y) @ averaging)[:, None]  # population variance, (N, 1)
        variance += eps
        rstd = np.reciprocal(np.sqrt(variance, out=variance), out=variance)  # 1/√(σ² + ε), (N, 1)
        y *= rstd  # x̂
        if w is not None:
            y *= w
        if b is not None:
            y += b
        self.x2, self.mean, self.rstd, self.weight, self.bias = x2, mean, rstd, weight, bias
        return y.reshape(x.shape)

    def backward(self, g):
        rstd = self.rstd
        w = None if self.weight is None else self.weight.reshape(-1)  # (D,)
        needs = self.needs_input_grad + (False,) * (3 - len(self.needs_input_grad))
        g2 = g.reshape(self.x2.shape)  # (N, D)
        xhat = self.x2 - self.mean
        xhat *= rstd  # x̂ again, by the same operations as in forward
        gxhat = g2 * w if w is not None else g2
        gw = _column_sums(g2 * xhat).reshape(self.weight.shape) if w is not None and needs[1] else None
        gb = _column_sums(g2).reshape(self.bias.shape) if self.bias is not None and needs[2] else None
        gx = None
        if needs[0]:
            # dx = rstd · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂))   (means over the normalised axes)
            gx = xhat * lane_sums(gxhat * xhat, -1)
            gx += lane_sums(gxhat, -1)
            gx *= -1.0 / g2.shape[-1]
            gx += gxhat
            gx *= rstd
            gx = gx.reshape(g.shape)
        return gx, gw, gb


@twin_of(F.layer_norm)
def layer_norm(x: Tensor, *args, **kwargs) -> Tensor:
    """`functional.layer_norm` in one fused node; minigrad's order of arguments or torch's, as there."""
    weight, bias, eps, normalized_shape = F.layer_norm_arguments(args, kwargs)
    return LayerNorm.apply(x, weight, bias, eps=eps, normalized_shape=normalized_shape)


# ---------------------------------------------------------------- cross-entropy


class CrossEntropy(Function):
    """Replaces `functional.cross_entropy`: softmax, log, pick and reduce in one node.

    The class axis (1 of (N, C, d1, ...), as torch's) is moved last, so every position is a
    row of (rows, C). The gradient of a row's loss is softmax(z) − (1 − ε) onehot(target) − ε / C,
    times the row's share of the reduction (1/kept rows for "mean", 1 for "sum", g for "none").
    """

    definition = staticmethod(F.cross_entropy)

    def forward(self, logits, targets, ignore_index=-1, reduction="mean", label_smoothing=0.0):
        targets, kept, picked = F.cross_entropy_targets(logits.shape, targets, ignore_index, reduction, label_smoothing)
        self.axis = F.class_axis(logits.shape)
        classes_last = np.moveaxis(logits, self.axis, -1)  # (N, d1, ..., C): a view, the array itself for (N, C)
        logits2 = classes_last.reshape(-1, classes_last.shape[-1])  # (rows, C)
        kept, picked = kept.reshape(-1), picked.reshape(-1)  # (rows,)
        N, C = logits2.shape
        rows = np.arange(N)
        probs, (row_max, sum_exp) = softmax_array(logits2)  # (N, C), (N, 1), (N, 1)
        log_sum = np.log(sum_exp[:, 0]) + row_max[:, 0]  # (N,) log Σ_c e^z_c
        losses = log_sum - logits2[rows, picked]  # (N,) -log p[target]
        if label_smoothing:
            smooth = log_sum - lane_sums(logits2, -1)[:, 0] / C  # (N,) mean over classes of -log p[c]
            losses = (1.0 - label_smoothing) * losses + label_smoothing * smooth
        losses = np.where(kept, losses, 0)  # an ignored row counts 0, even where its picked logit is -inf
        self.moved_shape, self.probs, self.smoothing = classes_last.shape, probs, label_smoothing
        self.rows, self.targets, self.kept, self.reduction = rows, picked, kept, reduction
        self.count = int(kept.sum())
        if reduction == "none":
            return losses.astype(logits.dtype).reshape(targets.shape)
        total = losses @ _ones(N, losses.dtype)
        if reduction == "sum":
            return np.asarray(total, dtype=logits.dtype)
        return np.asarray(total / self.count if self.count else np.nan, dtype=logits.dtype)

    def backward(self, g):
        grad = self.probs.copy()
        grad[self.rows, self.targets] -= 1.0 - self.smoothing
        if self.smoothing:
            grad -= self.smoothing / grad.shape[-1]
        if self.reduction == "none":
            grad *= g.astype(grad.dtype).reshape(-1, 1)
        elif self.reduction == "sum":
            grad *= g.astype(grad.dtype)
        else:  # with no row kept every row is ignored, and its gradient 0 (not 0 · g/0 = NaN), as torch's
            grad *= g.astype(grad.dtype) / grad.dtype.type(max(self.count, 1))
        if not self.kept.all():
            grad *= self.kept[:, None]
        return np.moveaxis(grad.reshape(self.moved_shape), -1, self.axis), None


@twin_of(F.cross_entropy)
def cross_entropy(
    logits: Tensor, targets, ignore_index: int = -1, reduction: str = "mean", label_smoothing: float = 0.0
) -> Tensor:
    """`functional.cross_entropy` in one fused node (class probabilities as targets: the definition)."""
    if F.targets_are_probabilities(targets):
        return F.cross_entropy(logits, targets, ignore_index, reduction, label_smoothing)
    return CrossEntropy.apply(
        logits, targets, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )


# ---------------------------------------------------------------- embedding


class Embedding(Function):
    """Replaces `functional.embedding`: rows of a table picked by integer ids.

    Backward adds each row's gradients into its row. `np.add.at` does that scatter-add one
    element at a time; sorting the ids and summing runs of equal ids with `np.add.reduceat`
    does it in a few vectorised passes.
    """

    definition = staticmethod(F.embedding)

    def forward(self, ids, weight):
        out = weight[ids]  # (..., C)
        self.ids, self.weight_shape = ids.reshape(-1), weight.shape
        return out

    def backward(self, g):
        grad = np.zeros(self.weight_shape, dtype=g.dtype)
        if not self.ids.size:
            return None, grad
        g2 = g.reshape(-1, g.shape[-1])  # (N, C)
        order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # first of each run
        grad[sorted_ids[starts]] = np.add.reduceat(g2[order], starts, axis=0)
        return None, grad


@twin_of(F.embedding)
def embedding(ids, weight: Tensor) -> Tensor:
    """`functional.embedding` in one fused node."""
    return Embedding.apply(F.embedding_ids(ids, weight.shape[0]), weight)


# ---------------------------------------------------------------- attention


@functools.lru_cache(maxsize=16)
def _causal_bias(q_len: int, k_len: int, dtype: np.dtype) -> np.ndarray:
    """functional.causal_mask as an additive bias (0 may attend, -inf not), cached read-only."""
    bias = F.attention_bias(F.causal_mask(q_len, k_len), dtype)
    bias.flags.writeable = False
    return bias


# Scores per block of attention: a (.., Tq, Tk) block of 128K float32 numbers is 512 KB, so the
# softmax's passes over it, forward and backward, read the CPU cache instead of main memory.
_ATTENTION_BLOCK = 1 << 17
# Attention weights up to this many numbers in all (4 MB of float32) are kept for backward;
# larger ones are recomputed there, block by block, so they never take activation-sized memory.
_MAX_SAVED_WEIGHTS = 1 << 20
# Causal attention runs in tiles of this many queries: tile [a, b) needs keys 0 .. b-1 only.
_CAUSAL_TILE = 64


# e^x of float32 stays between normal floats (1.2e-38 .. 3.4e38, with room for a sum over a billion
# keys) for |x| <= 64: scores that small need no shift by their max before the softmax's e^x.
_SMALL_SCORE = 64.0


def _scores_are_small(scores: np.ndarray) -> bool:
    """Whether every score lies within ±_SMALL_SCORE: a min and a max over the whole array (two
    reading passes), not a max along each short row; False for a NaN or an infinity."""
    return -_SMALL_SCORE <= scores.min(initial=0.0) and scores.max(initial=0.0) <= _SMALL_SCORE


def _batch_blocks(q, k, v, bias, everything_at_once: bool, one_tile: bool) -> list:
    """Slices of the first batch axis holding about _ATTENTION_BLOCK scores each.

    Blocks need q, k, v of one batch shape and a bias without batch axes (the causal or
    a (Tq, Tk) mask); otherwise, or when asked, there is one block, `None`: everything at
    once, broadcasting as NumPy does. So is one block of queries that fit `one_tile`: no
    slices to lay out or step through.
    """
    if everything_at_once or q.ndim < 3 or not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        return [None]
    if bias is not None and bias.ndim > 2:
        return [None]
    scores_per_item = math.prod(q.shape[1:-1]) * min(k.shape[-2], _CAUSAL_TILE)  # one tile of one entry
    step = max(1, _ATTENTION_BLOCK // max(1, scores_per_item))
    if one_tile and step >= q.shape[0]:
        return [None]
    return [slice(start, start + step) for start in range(0, q.shape[0], step)]


def _one_tile(q_len: int, k_len: int, causal: bool) -> bool:
    """Whether `_query_tiles` takes every query at once: not causal, not square, or one tile's worth."""
    return not causal or q_len != k_len or q_len <= _CAUSAL_TILE


def _query_tiles(q_len: int, k_len: int, causal: bool) -> list[tuple[int, int, int]]:
    """(start, stop, keys) for each run of queries taken at once: all of them, or causal tiles.

    Under a causal mask, queries a .. b-1 see keys 0 .. b-1 only; the scores of later keys
    are -inf and their weights exactly 0. Tiles of _CAUSAL_TILE queries skip those keys:
    at T = 256 in tiles of 64 that is 10 tiles' worth of scores instead of 16, in every
    product and every softmax pass, forward and backward.
    """
    if _one_tile(q_len, k_len, causal):
        return [(0, q_len, k_len)]
    stops = [min(start + _CAUSAL_TILE, q_len) for start in range(0, q_len, _CAUSAL_TILE)]
    return [(start, stop, stop) for start, stop in zip(range(0, q_len, _CAUSAL_TILE), stops)]


class ScaledDotProductAttention(Function):
    """Replaces `functional.scaled_dot_product_attention`: softmax(q kᵀ · scale + bias) v in one node.

    The (..., Tq, Tk) weights are the largest array of a transformer layer. Unless they are
    small, they are neither kept nor ever built whole: each block of batch entries is
    computed, used and dropped, and forward saves only each row's max and sum (Tq numbers).
    Backward repeats the same operations on each block to get the same weights back, at the
    price of one more q kᵀ product. The scale is applied to q (Tq × d numbers) rather than to
    the scores (Tq × Tk), and the softmax (`ops.softmax_array`) runs in place. Causal
    attention skips the keys a tile of queries cannot see (`_query_tiles`); scores all within
    ±64 skip the softmax's row max (`_scores_are_small`). Dropout, a mask with batch axes,
    a mask that needs its gradient, and attention that fits in one block of one tile (no
    bookkeeping of slices to pay for) take everything at once.
    """

    definition = staticmethod(F.scaled_dot_product_attention)

    def forward(self, q, k, v, mask=None, dropout_p=0.0, is_causal=False, scale=None, rng=None):
        if not 0.0 <= dropout_p <= 1.0:  # the words of functional.dropout, which the definition calls
            raise ValueError(f"dropout probability must be in [0, 1], got {dropout_p}")
        Tq, Tk = q.shape[-2], k.shape[-2]
        self.scale = q.dtype.type(1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
        bias = None if mask is None else F.attention_bias(mask, q.dtype)
        self.mask_shape = None if mask is None or mask.dtype == bool else mask.shape  # a float mask gets a gradient
        if is_causal:
            bias = _causal_bias(Tq, Tk, q.dtype) if bias is None else bias + _causal_bias(Tq, Tk, q.dtype)
        self.q, self.k, self.v, self.bias = q, k, v, bias
        causal_tiles = is_causal and mask is None  # tiles skip the keys a run of queries cannot see
        one_tile = _one_tile(Tq, Tk, causal_tiles)
        at_once = dropout_p > 0.0 or self.mask_shape is not None
        self.blocks = _batch_blocks(q, k, v, bias, at_once, one_tile)
        self.dropout_mask = None
        # tiles run inside the batch blocks; everything-at-once (blocks == [None]) is one tile
        self.tiles = _query_tiles(Tq, Tk, causal_tiles and self.blocks != [None])
        batch = q.shape[:-2] if q.shape[:-2] == k.shape[:-2] else np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
        n_scores = math.prod(batch) * Tq * Tk
        self.stats = [None] * len(self.blocks)  # per block, per tile: each row's (max, sum)
        self.saved_weights = [None] * len(self.blocks) if n_scores <= _MAX_SAVED_WEIGHTS else None
        if self.blocks == [None]:  # everything at once, broadcasting as NumPy does
            weights, stats = self._weights(q * self.scale, k, self.bias)  # (..., Tq, Tk)
            self.stats[0] = [stats]
            if self.saved_weights is not None:
                self.saved_weights[0] = [weights]
            if dropout_p > 0.0:
                self.dropout_mask = F.dropout_mask(weights.shape, dropout_p, weights.dtype, rng)
                weights = weights * self.dropout_mask  # a new array: any saved weights stay undropped
            return weights @ v  # (..., Tq, dv)

        out = np.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
        for i, block in enumerate(self.blocks):
            q_b, k_b, v_b = self.q[block], self.k[block], self.v[block]
            out_b = out[block]
            self.stats[i], weights_b = [], []
            for a, b, n_keys in self.tiles:  # queries a .. b-1 see keys 0 .. n_keys-1
                bias_t = None if self.bias is None else self.bias[..., a:b, :n_keys]
                weights, stats = self._weights(q_b[..., a:b, :] * self.scale, k_b[..., :n_keys, :], bias_t)
                self.stats[i].append(stats)
                weights_b.append(weights)
                np.matmul(weights, v_b[..., :n_keys, :], out=out_b[..., a:b, :])
            if self.saved_weights is not None:
                self.saved_weights[i] = weights_b
        return out

    def _weights(self, q_scaled, k, bias, stats=None):
        """softmax(q kᵀ · scale + bias), and each row's (shift, sum); given stats are reused.

        A row that the bias leaves no key gets weights 0, as in the definition; backward then
        sends nothing through it, since every term of its gradient has a weight as a factor.
        When every score lies within ±_SMALL_SCORE (`_scores_are_small`) and the bias is a mask's
        0 or −inf, the shift is 0: no row max, the slowest pass of a softmax over short rows.
        """
        weights = q_scaled @ np.swapaxes(k, -1, -2)  # scores (..., Tq, Tk)
        small = stats is None and self.mask_shape is None and _scores_are_small(weights)  # before the -inf of a mask
        if bias is not None:
            in_place = bias.shape == weights.shape[weights.ndim - bias.ndim :]  # broadcast over leading axes only
            weights = np.add(weights, bias, out=weights) if in_place else weights + bias
        shift = 0.0 if small else None
        return softmax_array(weights, out=weights, stats=stats, masked_rows_zero=True, shift=shift)  # in place

    def backward(self, g):
        if self.blocks == [None]:
            gq, gk, gv, gscores = self._backward_tile(0, 0, self.q * self.scale, self.k, self.v, g, self.bias)
            gmask = None if self.mask_shape is None else unbroadcast(gscores, self.mask_shape)
            return unbroadcast(gq, self.q.shape), unbroadcast(gk, self.k.shape), unbroadcast(gv, self.v.shape), gmask
        gq, gk, gv = np.empty_like(self.q), np.zeros_like(self.k), np.zeros_like(self.v)
        for i, block in enumerate(self.blocks):
            q, k, v = self.q[block], self.k[block], self.v[block]
            # causal tiles: gq tile by tile; keys and values collect from every tile that saw them
            for t, (a, b, n) in enumerate(self.tiles):  # queries a .. b-1, keys 0 .. n-1
                bias_t = None if self.bias is None else self.bias[..., a:b, :n]
                gq_t, gk_t, gv_t, _ = self._backward_tile(
                    i, t, q[..., a:b, :] * self.scale, k[..., :n, :], v[..., :n, :], g[block][..., a:b, :], bias_t
                )
                gq[block][..., a:b, :] = gq_t
                gk[block][..., :n, :] += gk_t
                gv[block][..., :n, :] += gv_t
        return gq, gk, gv, None

    def _backward_tile(self, i: int, t: int, q_scaled, k, v, g, bias) -> tuple:
        """One tile of queries: (d q, d k, d v) of the rows and keys it used, and d scores."""
        if self.saved_weights is not None:
            weights = self.saved_weights[i][t]
        else:
            weights, _ = self._weights(q_scaled, k, bias, self.stats[i][t])  # the forward's weights, recomputed
        dropped = weights * self.dropout_mask if self.dropout_mask is not None else weights
        gv = np.swapaxes(dropped, -1, -2) @ g  # (..., Tk, dv)
        del dropped
        gscores = g @ np.swapaxes(v, -1, -2)  # d weights (..., Tq, Tk)
        if self.dropout_mask is not None:
            gscores *= self.dropout_mask
        # softmax backward: ds = w ⊙ (dw - Σ_k dw ⊙ w), computed in the dw buffer
        gscores -= lane_sums(gscores * weights, -1)
        gscores *= weights
        del weights
        gq = gscores @ k  # d(q · scale) (..., Tq, d)
        gq *= self.scale
        gk = np.swapaxes(gscores, -1, -2) @ q_scaled  # (..., Tk, d)
        return gq, gk, gv, gscores


@twin_of(F.scaled_dot_product_attention)
def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, attn_mask=None, *options, **named
) -> Tensor:
    """`functional.scaled_dot_product_attention` in one fused node; dropout_p, is_causal, scale and rng as there."""
    F.check_attention_mask(attn_mask, query.dtype)
    if attn_mask is not None and not isinstance(attn_mask, Tensor):
        attn_mask = np.asarray(attn_mask)
    return ScaledDotProductAttention.apply(query, key, value, attn_mask, *options, **named)


__all__ = [
    "cross_entropy",
    "embedding",
    "erf_array",
    "gelu",
    "kernels_enabled",
    "layer_norm",
    "linear",
    "scaled_dot_product_attention",
    "twin_of",
    "use_kernels",
]
