"""Composite and fused operations: the building blocks of neural networks.

A *fused* op is a single `Function` whose backward was derived by hand, so a whole formula
costs one graph node and a few NumPy passes. Each fused op has a *composed* twin
(`*_composed`) written with primitive tensor ops only: it is the readable definition, and
the tests check that the two agree in value and gradient.

Three habits make the fused kernels fast on a CPU, where NumPy runs every elementwise
operation as its own single-threaded pass over memory:
- long elementwise chains (GELU, erf) run in chunks small enough to stay in the CPU cache,
  writing into preallocated buffers (`out=`), so each pass reads cache instead of RAM;
- sums along the last axis are matrix–vector products with a vector of ones (`x @ ones`),
  which BLAS runs vectorised and threaded, several times faster than `x.sum(axis=-1)` on
  short rows;
- matrix products work on 2-D views, one big product instead of a batch of small ones;
- on large arrays each thread runs the same chain over its own rows or chunks
  (minigrad.parallel), so the elementwise work uses every core as BLAS does.
Every kernel keeps the dtype it was given: float32 in, float32 out, nothing in float64.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from minigrad import ops, parallel
from minigrad.autograd import Function
from minigrad.ops import unbroadcast
from minigrad.tensor import Tensor, _constant

# Elements per chunk of an elementwise chain: a few 256 KB float32 buffers fit in L2 cache.
# Measured on a 2-core x86 machine: 64K–128K elements are fastest, 8K lose to call overhead.
_CHUNK = 1 << 16


def _ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of n ones, cached: `x @ _ones(n)` sums the rows of x (..., n)."""
    return _ones_cached(int(n), np.dtype(dtype))


@functools.lru_cache(maxsize=64)
def _ones_cached(n: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Σ over the last axis, keeping it: (..., n) -> (..., 1). A BLAS matrix–vector product."""
    return (x @ _ones(x.shape[-1], x.dtype))[..., None]


def _column_sums(x: np.ndarray) -> np.ndarray:
    """Σ over every axis but the last: (..., n) -> (n,). A BLAS vector–matrix product."""
    rows = x.reshape(-1, x.shape[-1])
    return _ones(rows.shape[0], x.dtype) @ rows


# ---------------------------------------------------------------- erf and GELU

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_vector_erf = np.frompyfunc(math.erf, 1, 1)

# Abramowitz & Stegun 7.1.26: erf|z| = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-z²),
# t = 1 / (1 + p|z|), absolute error below 1.5e-7 — under float32's own resolution near 1.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf_chunk(
    x: np.ndarray, scale: float, amplitude: float, erf_out: np.ndarray, gauss_out: np.ndarray, scratch: np.ndarray
) -> None:
    """amplitude · erf(scale · x) into erf_out and e^(-(scale · x)²) into gauss_out.

    All four arrays 1-D of one length; nothing is allocated. Taking the scale and amplitude
    here saves GELU two passes (x/√2 and the factor ½ of Φ): scale > 0 keeps the sign of x,
    and an amplitude of ½ scales the coefficients exactly (a power of two).
    """
    np.square(x, out=gauss_out)
    gauss_out *= -scale * scale
    np.exp(gauss_out, out=gauss_out)  # e^(-z²), z = scale · x; also φ's kernel for GELU
    t = np.abs(x, out=scratch)
    t *= _AS_P * scale
    t += 1.0
    np.reciprocal(t, out=t)  # t = 1 / (1 + p|z|)
    poly = np.multiply(t, amplitude * _AS_A[4], out=erf_out)  # Horner, innermost coefficient first
    for coefficient in _AS_A[3::-1]:
        poly += amplitude * coefficient
        poly *= t
    poly *= gauss_out
    np.subtract(amplitude, poly, out=poly)  # amplitude · erf|z|
    # erf is odd: give it the sign of x, as copysign would. On the bits that is |poly| OR
    # (x AND sign bit): three vectorised passes, in half the time of NumPy's np.copysign.
    np.abs(poly, out=poly)
    bits = np.dtype(f"u{x.dtype.itemsize}")
    sign = np.bitwise_and(x.view(bits), bits.type(1 << (8 * bits.itemsize - 1)), out=scratch.view(bits))
    np.bitwise_or(poly.view(bits), sign, out=poly.view(bits))


def _chunk_buffers(n: int, dtype, count: int) -> list:
    """`count` scratch vectors long enough for one chunk of an n-element chain."""
    return [np.empty(min(n, _CHUNK), dtype=dtype) for _ in range(count)]


def erf(x: np.ndarray) -> np.ndarray:
    """The error function on an array, without SciPy.

    float64 uses the C library's erf (exact to double precision, for gradient checks);
    other floats use Abramowitz & Stegun 7.1.26 (error below 1.5e-7), in cached chunks.
    """
    if x.dtype == np.float64:
        return np.asarray(_vector_erf(x), dtype=np.float64)  # a 0-d input gives a Python float
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    gauss, scratch = _chunk_buffers(flat.size, flat.dtype, 2)
    for start in range(0, flat.size, _CHUNK):
        z = flat[start : start + _CHUNK]
        n = z.size
        _erf_chunk(z, 1.0, 1.0, out[start : start + n], gauss[:n], scratch[:n])
    return out.reshape(x.shape)


def _gelu_erf_float64(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GELU and its derivative in double precision (the path gradient checks take)."""
    cdf = 0.5 * (1.0 + erf(x * _SQRT_HALF))  # Φ(x)
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)  # φ(x)
    return x * cdf, cdf + x * pdf


def _gelu_erf_chunked(x: np.ndarray) -> np.ndarray:
    """GELU x Φ(x), one cache-sized chunk at a time: about 20 elementwise passes fused.

    Large arrays are cut into one run of whole chunks per thread (minigrad.parallel).
    """
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)

    def gelu_run(begin: int, end: int) -> None:
        cdf, gauss, scratch = _chunk_buffers(end - begin, flat.dtype, 3)
        for start in range(begin, end, _CHUNK):
            xc = flat[start : min(start + _CHUNK, end)]
            n = xc.size
            cdfc = cdf[:n]
            _erf_chunk(xc, _SQRT_HALF, 0.5, cdfc, gauss[:n], scratch[:n])  # ½ erf(x/√2)
            cdfc += 0.5  # Φ(x) = ½ (1 + erf(x/√2))
            np.multiply(xc, cdfc, out=out[start : start + n])

    parallel.run(gelu_run, parallel.ranges(flat.size, flat.size, align=_CHUNK))
    return out.reshape(x.shape)


def _gelu_erf_backward_chunked(g: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """g · (Φ(x) + x φ(x)), chunked; Φ(x) = out / x is read back from the forward's output.

    Dividing out the forward's result costs one pass where recomputing erf would cost twenty,
    and keeping x and out (which the graph and the next layer keep anyway) instead of a
    stored derivative saves an activation-sized array per layer. Φ(x) = ½ where |x| < 1e-30.
    """
    flat_g, flat_x, flat_out = (np.ascontiguousarray(a).reshape(-1) for a in (g, x, out))
    grad = np.empty_like(flat_x)

    def gelu_backward_run(begin: int, end: int) -> None:
        cdf, pdf = _chunk_buffers(end - begin, flat_x.dtype, 2)
        for start in range(begin, end, _CHUNK):
            xc = flat_x[start : min(start + _CHUNK, end)]
            n = xc.size
            p = np.square(xc, out=pdf[:n])
            p *= -0.5
            np.exp(p, out=p)
            p *= _INV_SQRT_2PI  # φ(x)
            c = cdf[:n]
            with np.errstate(invalid="ignore", divide="ignore"):
                np.divide(flat_out[start : start + n], xc, out=c)  # Φ(x); 0/0 where x is 0
            d = np.abs(xc, out=grad[start : start + n])
            if d.min() < 1e-30:  # rare: x Φ(x) lost x's digits; Φ(x) = ½ to float32 precision there
                c[d < 1e-30] = 0.5
            d = np.multiply(xc, p, out=d)
            d += c  # d/dx x Φ(x) = Φ(x) + x φ(x)
            d *= flat_g[start : start + n]

    parallel.run(gelu_backward_run, parallel.ranges(flat_x.size, flat_x.size, align=_CHUNK))
    return grad.reshape(x.shape)


class GELU(Function):
    """GELU(x) = x Φ(x), Φ the standard normal CDF; or its tanh approximation."""

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


class Erf(Function):
    tensor_backward = True

    def forward(self, x):
        self.x = x
        return erf(x)

    def backward(self, g):
        # d erf(x)/dx = 2/√π · e^(-x²)
        return g * (2.0 / math.sqrt(math.pi)) * ops.exp(-self.x * self.x)


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
    """y = x Wᵀ + b with W of shape (out, in), as torch.nn.functional.linear.

    The batch axes of x are folded into one, so each product is a single 2-D BLAS call
    (a batch of small products on a 3-D x costs almost twice as much).
    """

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


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., in) @ weight (out, in)ᵀ + bias (out,) -> (..., out)."""
    return Linear.apply(x, weight, bias)


def linear_composed(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    y = x @ weight.T
    return y + bias if bias is not None else y


# ---------------------------------------------------------------- layer norm


class LayerNorm(Function):
    """Normalize over the last axis to zero mean and unit variance, then scale and shift.

    Saves x (which the graph keeps anyway), its row means and 1/std, and recomputes x̂ in
    backward: two cheap passes instead of holding a second activation-sized array per layer.
    Rows are independent, so large inputs run as one run of rows per thread.
    """

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        inv_n = 1.0 / x.shape[-1]
        x2 = x.reshape(-1, x.shape[-1])  # (N, C)
        y = np.empty_like(x2)
        self.mean = np.empty((x2.shape[0], 1), dtype=x.dtype)  # (N, 1)
        self.rstd = np.empty_like(self.mean)

        def normalize(begin: int, end: int) -> None:
            rows = x2[begin:end]
            mean = _row_sums(rows) * inv_n  # (n, 1)
            centered = np.subtract(rows, mean, out=y[begin:end])
            variance = _row_sums(centered * centered) * inv_n  # population variance, (n, 1)
            rstd = 1.0 / np.sqrt(variance + eps)
            centered *= rstd  # x̂, in the output's buffer
            if weight is not None:
                centered *= weight
            if bias is not None:
                centered += bias
            self.mean[begin:end], self.rstd[begin:end] = mean, rstd

        parallel.run(normalize, parallel.ranges(x2.shape[0], x2.size))
        self.x2, self.x_shape, self.weight = x2, x.shape, weight
        self.has_bias = bias is not None
        return y.reshape(x.shape)

    def backward(self, g):
        w = self.weight
        needs = self.needs_input_grad + (False,) * (3 - len(self.needs_input_grad))
        g2 = g.reshape(self.x2.shape)  # (N, C)
        inv_n = 1.0 / g2.shape[-1]
        gx = np.empty_like(g2) if needs[0] else None

        def backward_rows(begin: int, end: int) -> tuple:
            g_rows, rstd = g2[begin:end], self.rstd[begin:end]
            xhat = self.x2[begin:end] - self.mean[begin:end]
            xhat *= rstd  # x̂ again, by the same operations as in forward
            gxhat = g_rows * w if w is not None else g_rows
            gw = _column_sums(g_rows * xhat) if w is not None and needs[1] else None
            gb = _column_sums(g_rows) if self.has_bias and needs[2] else None
            if needs[0]:
                # dx = rstd · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂))   (means over the last axis)
                out = np.multiply(xhat, _row_sums(gxhat * xhat), out=gx[begin:end])
                out += _row_sums(gxhat)
                out *= -inv_n
                out += gxhat
                out *= rstd
            return gw, gb

        parts = parallel.run(backward_rows, parallel.ranges(g2.shape[0], g2.size))  # [(gw, gb) of each run]
        # the weight and bias gradients are column sums: add up the runs' partial sums
        gw, gb = (None if sums[0] is None else sum(sums[1:], sums[0]) for sums in zip(*parts))
        return (None if gx is None else gx.reshape(self.x_shape)), gw, gb


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
        logits2 = logits.reshape(-1, logits.shape[-1])  # (N, V)
        if logits2.shape[0] != targets.shape[0]:
            raise ValueError(
                f"cross_entropy: logits of shape {logits.shape} need {logits2.shape[0]} targets, got {targets.shape[0]}"
            )
        kept = targets != ignore_index
        safe_targets = np.where(kept, targets, 0)
        if kept.any() and (safe_targets.min() < 0 or safe_targets.max() >= logits2.shape[1]):
            raise ValueError(f"cross_entropy: targets must lie in [0, {logits2.shape[1]}) or equal ignore_index")
        rows = np.arange(len(targets))
        # softmax with the row max subtracted, so exp cannot overflow
        shifted = logits2 - logits2.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        sum_exp = _row_sums(probs)  # (N, 1)
        # -log p[target] = log Σ exp(shifted) - shifted[target]
        losses = np.log(sum_exp[:, 0]) - shifted[rows, safe_targets]  # (N,)
        probs /= sum_exp
        count = int(kept.sum())
        self.in_shape, self.probs = logits.shape, probs
        self.rows, self.targets, self.kept, self.count = rows, safe_targets, kept, count
        if not count:
            return np.asarray(np.nan, dtype=logits.dtype)
        return np.asarray(losses @ kept.astype(losses.dtype) / count, dtype=logits.dtype)

    def backward(self, g):
        # dL/dlogits = (softmax(logits) - onehot(target)) / count, on kept rows only
        grad = self.probs.copy()
        grad[self.rows, self.targets] -= 1.0
        grad *= g.astype(grad.dtype) / grad.dtype.type(self.count)
        if not self.kept.all():
            grad *= self.kept[:, None]
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


class Embedding(Function):
    """Rows of a table picked by integer ids; backward adds each row's gradients into its row.

    `np.add.at` does that scatter-add one element at a time; sorting the ids and summing
    runs of equal ids with `np.add.reduceat` does it in a few vectorised passes.
    """

    def forward(self, weight, ids):
        out = weight[ids]  # (..., C); NumPy rejects ids out of range
        self.ids, self.weight_shape = ids.reshape(-1) % weight.shape[0], weight.shape  # -1 is V - 1
        return out

    def backward(self, g):
        grad = np.zeros(self.weight_shape, dtype=g.dtype)
        if not self.ids.size:
            return grad, None
        g2 = g.reshape(-1, g.shape[-1])  # (N, C)
        order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # first of each run
        grad[sorted_ids[starts]] = np.add.reduceat(g2[order], starts, axis=0)
        return grad, None


def embedding(ids, weight: Tensor) -> Tensor:
    """Rows of weight (V, C) picked by integer ids (...) -> (..., C)."""
    ids = _constant(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding ids must be integers, not {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= weight.shape[0]):
        # as torch: -1 is not the last row, it is an error (a padding id of -1 would read a real row)
        raise IndexError(f"embedding ids must lie in [0, {weight.shape[0]}), got {ids.min()}..{ids.max()}")
    return Embedding.apply(weight, ids)


def embedding_composed(ids, weight: Tensor) -> Tensor:
    return weight[_constant(ids)]


# ---------------------------------------------------------------- attention


@functools.lru_cache(maxsize=16)
def _causal_bias(q_len: int, k_len: int, dtype: np.dtype) -> np.ndarray:
    """The (q_len, k_len) causal bias, built once per shape: position i may see keys j <= i."""
    bias = np.triu(np.full((q_len, k_len), -np.inf, dtype=dtype), k=1)
    bias.flags.writeable = False
    return bias


def attention_bias(mask, is_causal: bool, q_len: int, k_len: int, dtype) -> np.ndarray | None:
    """Turn the masks into one additive bias: 0 where attention is allowed, -inf where not.

    A boolean mask is True where attention is NOT allowed (PyTorch's convention for
    nn.MultiheadAttention); a float mask is added to the scores as it is.
    """
    bias = _causal_bias(q_len, k_len, np.dtype(dtype)) if is_causal else None
    if mask is not None:
        mask = _constant(mask)
        extra = np.where(mask, -np.inf, 0).astype(dtype) if mask.dtype == bool else mask.astype(dtype)
        bias = extra if bias is None else bias + extra
    return bias


# Scores per block of attention: a (.., Tq, Tk) block of 128K float32 numbers is 512 KB, so the
# softmax's passes over it, forward and backward, read the CPU cache instead of main memory.
_ATTENTION_BLOCK = 1 << 17
# Attention weights up to this many numbers in all (4 MB of float32) are kept for backward;
# larger ones are recomputed there, block by block, so they never take activation-sized memory.
_KEEP_WEIGHTS = 1 << 20
# Causal attention runs in tiles of this many queries: tile [a, b) needs keys 0 .. b-1 only.
_CAUSAL_TILE = 64


def _batch_blocks(q, k, v, bias, dropout_p: float) -> list:
    """Slices of the first batch axis holding about _ATTENTION_BLOCK scores each.

    Blocks need q, k, v of one batch shape and a bias without batch axes (the causal or
    a (Tq, Tk) mask), and no dropout (its mask is drawn for the whole array at once);
    otherwise there is one block, `None`: everything at once, broadcasting as NumPy does.
    """
    if q.ndim < 3 or not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]) or dropout_p > 0.0:
        return [None]
    if bias is not None and bias.ndim > 2:
        return [None]
    scores_per_item = math.prod(q.shape[1:-1]) * min(k.shape[-2], _CAUSAL_TILE)  # one tile of one entry
    step = max(1, _ATTENTION_BLOCK // max(1, scores_per_item))
    return [slice(start, start + step) for start in range(0, q.shape[0], step)]


def _query_tiles(q_len: int, k_len: int, causal: bool) -> list[tuple[int, int, int]]:
    """(start, stop, keys) for each run of queries taken at once: all of them, or causal tiles.

    Under a causal mask, queries a .. b-1 see keys 0 .. b-1 only; the scores of later keys
    are -inf and their weights exactly 0. Tiles of _CAUSAL_TILE queries skip those keys:
    at T = 256 in tiles of 64 that is 10 tiles' worth of scores instead of 16, in every
    product and every softmax pass, forward and backward.
    """
    if not causal or q_len != k_len:
        return [(0, q_len, k_len)]
    stops = [min(start + _CAUSAL_TILE, q_len) for start in range(0, q_len, _CAUSAL_TILE)]
    return [(start, stop, stop) for start, stop in zip(range(0, q_len, _CAUSAL_TILE), stops)]


class ScaledDotProductAttention(Function):
    """softmax(q kᵀ / √d + bias) v in one node, in cache-sized blocks of the batch.

    The (..., Tq, Tk) weights are the largest array of a transformer layer. Unless they are
    small, they are neither kept nor ever built whole: each block of batch entries is
    computed, used and dropped, and forward saves only each row's max and sum (Tq numbers).
    Backward repeats the same operations on each block to get the same weights back, at the
    price of one more q kᵀ product. The scale is applied to q (Tq × d numbers) rather than to the scores
    (Tq × Tk), and the softmax runs in place with its row sums done by BLAS. Causal attention
    skips the keys a tile of queries cannot see (`_query_tiles`). The blocks are independent,
    so on large inputs each thread takes a run of them (minigrad.parallel).
    """

    def forward(self, q, k, v, bias=None, dropout_p=0.0, rng=None):
        self.scale = q.dtype.type(1.0 / math.sqrt(q.shape[-1]))
        self.q, self.k, self.v, self.bias = q, k, v, bias
        self.blocks = _batch_blocks(q, k, v, bias, dropout_p)
        self.keep = None
        Tq, Tk = q.shape[-2], k.shape[-2]
        # tiles run inside the batch blocks; everything-at-once (blocks == [None]) is one tile
        causal = bias is not None and bias is _causal_bias(Tq, Tk, bias.dtype) and self.blocks != [None]
        self.tiles = _query_tiles(Tq, Tk, causal)
        batch = q.shape[:-2] if q.shape[:-2] == k.shape[:-2] else np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
        self.n_scores = math.prod(batch) * Tq * Tk
        self.stats = [None] * len(self.blocks)  # per block, per tile: each row's (max, sum)
        self.saved_weights = [None] * len(self.blocks) if self.n_scores <= _KEEP_WEIGHTS else None
        if self.blocks == [None]:  # everything at once, broadcasting as NumPy does
            weights, stats = self._weights(q * self.scale, k, self.bias)  # (..., Tq, Tk)
            self.stats[0] = [stats]
            if self.saved_weights is not None:
                self.saved_weights[0] = [weights]
            if dropout_p > 0.0:
                rng = np.random.default_rng() if rng is None else rng
                self.keep = (rng.random(weights.shape) >= dropout_p).astype(weights.dtype) / (1.0 - dropout_p)
                weights = weights * self.keep  # a new array: any saved weights stay undropped
            return weights @ v  # (..., Tq, dv)

        out = np.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)

        def attend(begin: int, end: int) -> None:  # blocks begin .. end-1, into out
            for i in range(begin, end):
                q_b, k_b, v_b = self._inputs(self.blocks[i])
                out_b = out[self.blocks[i]]
                self.stats[i], weights_b = [], []
                for a, b, n_keys in self.tiles:  # queries a .. b-1 see keys 0 .. n_keys-1
                    bias_t = None if self.bias is None else self.bias[..., a:b, :n_keys]
                    weights, stats = self._weights(q_b[..., a:b, :] * self.scale, k_b[..., :n_keys, :], bias_t)
                    self.stats[i].append(stats)
                    weights_b.append(weights)
                    np.matmul(weights, v_b[..., :n_keys, :], out=out_b[..., a:b, :])
                if self.saved_weights is not None:
                    self.saved_weights[i] = weights_b

        parallel.run(attend, parallel.ranges(len(self.blocks), self.n_scores))
        return out

    def _inputs(self, block) -> tuple:
        if block is None:
            return self.q, self.k, self.v
        return self.q[block], self.k[block], self.v[block]

    @staticmethod
    def _weights(q_scaled, k, bias, stats=None):
        """softmax(q kᵀ · scale + bias), and each row's (max, sum); given stats are reused."""
        weights = q_scaled @ np.swapaxes(k, -1, -2)  # scores (..., Tq, Tk)
        if bias is not None:
            in_place = bias.shape == weights.shape[weights.ndim - bias.ndim :]  # broadcast over leading axes only
            weights = np.add(weights, bias, out=weights) if in_place else weights + bias
        row_max = weights.max(axis=-1, keepdims=True) if stats is None else stats[0]
        weights -= row_max  # exp(s - max) cannot overflow
        np.exp(weights, out=weights)
        row_sum = _row_sums(weights) if stats is None else stats[1]
        weights /= row_sum  # softmax over the keys
        return weights, (row_max, row_sum)

    def backward(self, g):
        if self.blocks == [None]:
            gq, gk, gv = self._backward_block(0, None, g)
            return (
                unbroadcast(gq, self.q.shape),
                unbroadcast(gk, self.k.shape),
                unbroadcast(gv, self.v.shape),
                None,
            )
        grads = [np.empty_like(self.q), np.empty_like(self.k), np.empty_like(self.v)]
        self._backward_into(g, grads)
        return (*grads, None)

    def _backward_into(self, g, grads: list) -> None:
        """Backward block by block, writing gq, gk, gv into `grads` (arrays or views) in place."""

        def backward_blocks(begin: int, end: int) -> None:
            for i in range(begin, end):
                block = self.blocks[i]
                part = Ellipsis if block is None else block
                for grad, block_grad in zip(grads, self._backward_block(i, block, g[part])):
                    grad[part] = block_grad

        parallel.run(backward_blocks, parallel.ranges(len(self.blocks), self.n_scores))

    def _backward_block(self, i: int, block, g) -> tuple:
        q, k, v = self._inputs(block)
        if len(self.tiles) == 1:
            return self._backward_tile(i, 0, q * self.scale, k, v, g, self.bias)
        # causal tiles (batch blocks: q, k, v of one shape): gq row by row of tiles; keys and
        # values collect from every tile that saw them
        gq, gk, gv = np.empty(q.shape, q.dtype), np.zeros(k.shape, k.dtype), np.zeros(v.shape, v.dtype)
        for t, (a, b, n) in enumerate(self.tiles):  # queries a .. b-1, keys 0 .. n-1
            bias_t = self.bias[..., a:b, :n]
            gq_t, gk_t, gv_t = self._backward_tile(
                i, t, q[..., a:b, :] * self.scale, k[..., :n, :], v[..., :n, :], g[..., a:b, :], bias_t
            )
            gq[..., a:b, :] = gq_t
            gk[..., :n, :] += gk_t
            gv[..., :n, :] += gv_t
        return gq, gk, gv

    def _backward_tile(self, i: int, t: int, q_scaled, k, v, g, bias) -> tuple:
        """The gradients of one tile of queries: (d q, d k, d v) of the rows and keys it used."""
        if self.saved_weights is not None:
            weights = self.saved_weights[i][t]
        else:
            weights, _ = self._weights(q_scaled, k, bias, self.stats[i][t])  # the forward's weights, recomputed
        dropped = weights * self.keep if self.keep is not None else weights
        gv = np.swapaxes(dropped, -1, -2) @ g  # (..., Tk, dv)
        del dropped
        gscores = g @ np.swapaxes(v, -1, -2)  # d weights (..., Tq, Tk)
        if self.keep is not None:
            gscores *= self.keep
        # softmax backward: ds = w ⊙ (dw - Σ_k dw ⊙ w), computed in the dw buffer
        gscores -= _row_sums(gscores * weights)
        gscores *= weights
        del weights
        gq = gscores @ k  # d(q · scale) (..., Tq, d)
        gq *= self.scale
        gk = np.swapaxes(gscores, -1, -2) @ q_scaled  # (..., Tk, d)
        return gq, gk, gv


class CausalSelfAttentionPacked(ScaledDotProductAttention):
    """Causal multi-head attention read straight from the packed projection [q | k | v].

    qkv (B, T, 3C) -> (B, T, C), each head a run of hs = C / nh channels in each third.
    Splitting qkv by indexing would give q, k and v each a backward that zero-fills a
    (B, T, 3C) array, then adds the three; here the heads are strided views of qkv, and
    backward writes gq, gk, gv into their own slots of one (B, T, 3C) gradient. The
    attention itself is ScaledDotProductAttention's, with the causal bias.
    """

    def forward(self, qkv, n_head=1, dropout_p=0.0, rng=None):
        B, T, C3 = qkv.shape
        heads = qkv.reshape(B, T, 3, n_head, C3 // (3 * n_head)).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        bias = _causal_bias(T, T, qkv.dtype)  # (T, T)
        y = super().forward(heads[0], heads[1], heads[2], bias, dropout_p=dropout_p, rng=rng)  # (B, nh, T, hs)
        return y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)  # (B, T, C): the heads side by side

    def backward(self, g):
        B, T, nh, hs = g.shape[0], g.shape[1], self.q.shape[1], self.q.shape[-1]
        g_heads = g.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
        grad = np.empty((B, T, 3, nh, hs), dtype=g.dtype)
        slots = grad.transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs): views of q's, k's, v's places
        self._backward_into(g_heads, [slots[0], slots[1], slots[2]])
        return (grad.reshape(B, T, 3 * nh * hs),)


def causal_self_attention_packed(
    qkv: Tensor, n_head: int, dropout_p: float = 0.0, rng: np.random.Generator | None = None
) -> Tensor:
    """Causal multi-head self-attention from the packed projection qkv (B, T, 3C) -> (B, T, C).

    qkv is laid out [q | k | v] along its last axis, each third n_head heads of C / n_head
    channels (GPT-2's c_attn output); the heads' outputs come back side by side. Dropout on
    the weights needs `dropout_p` > 0.
    """
    return CausalSelfAttentionPacked.apply(qkv, n_head=n_head, dropout_p=dropout_p, rng=rng)


def causal_self_attention_packed_composed(qkv: Tensor, n_head: int) -> Tensor:
    B, T, C3 = qkv.shape
    heads = qkv.reshape(B, T, 3, n_head, C3 // (3 * n_head)).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
    y = scaled_dot_product_attention_composed(heads[0], heads[1], heads[2], is_causal=True)  # (B, nh, T, hs)
    return y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)  # (B, T, C)


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


# ---------------------------------------------------------------- second derivatives of the fused ops
# A fused backward is written for arrays only. Under mg.grad(..., create_graph=True) each fused
# op is differentiated through its readable definition instead, called with the op's arguments
# (the adapters below take them in the kernel's order and drop what the definition lacks).


def _attention_definition(q, k, v, bias=None, dropout_p=0.0, rng=None):
    return scaled_dot_product_attention_composed(q, k, v, mask=bias)


def _packed_attention_definition(qkv, n_head, dropout_p=0.0, rng=None):
    return causal_self_attention_packed_composed(qkv, n_head)


def _embedding_definition(weight, ids):
    return embedding_composed(ids, weight)


GELU.definition = gelu_composed
Linear.definition = linear_composed
LayerNorm.definition = layer_norm_composed
CrossEntropy.definition = cross_entropy_composed
Embedding.definition = _embedding_definition
ScaledDotProductAttention.definition = _attention_definition
CausalSelfAttentionPacked.definition = _packed_attention_definition


__all__ = [
    "causal_self_attention_packed",
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


# ---------------------------------------------------------------- activations, losses and padding
# from PyTorch's vocabulary, each composed from primitives (so each gradient follows by the chain
# rule), with torch.nn.functional's names, arguments and defaults.


def _safe_where(condition: np.ndarray, x: Tensor, replacement: float) -> Tensor:
    """x where `condition` is False, `replacement` where True: the input of a branch that
    `where` will drop anyway, kept finite so its gradient (0) does not turn into 0 · inf = NaN."""
    return where(condition, replacement, x)


def silu(input: Tensor) -> Tensor:
    """x · σ(x) (also called swish)."""
    return input * input.sigmoid()


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, negative_slope · x elsewhere."""
    return where(input.data > 0, input, input * negative_slope)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """x where x > 0, alpha · (eˣ − 1) elsewhere."""
    positive = input.data > 0
    return where(positive, input, (_safe_where(positive, input, 0.0).exp() - 1) * alpha)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(βx)) / β, and x itself where βx > threshold (as torch, where the two agree)."""
    z = input * beta
    linear = z.data > threshold
    # log(1 + eᶻ) = −log σ(−z), with the stable sigmoid
    soft = -(-_safe_where(linear, z, 0.0)).sigmoid().log() * (1 / beta)
    return where(linear, input, soft)


def mish(input: Tensor) -> Tensor:
    """x · tanh(softplus(x))."""
    return input * softplus(input).tanh()


def relu(input: Tensor) -> Tensor:
    return input.relu()


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    """e^x / Σ e^x along `dim` (torch's F.softmax wants dim; -1 when none is given)."""
    return input.softmax(dim=dim)


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    return input.log_softmax(dim=dim)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """(input − target)², averaged (or summed, or each) over every element."""
    return _reduce((input - target).square(), reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """|input − target|, averaged (or summed, or each) over every element."""
    return _reduce((input - target).abs(), reduction)


def _reduce(losses: Tensor, reduction: str, mean_divisor=None) -> Tensor:
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean() if mean_divisor is None else losses.sum() / mean_divisor
    raise ValueError(f'reduction must be "mean", "sum" or "none", got {reduction!r}')


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """−input[n, target[n]] (times weight[target[n]]), averaged over the kept targets by their weights.

    input (N, C) log-probabilities, or (C,), or (N, C, d1, ...); target (N,), (), or (N, d1, ...)
    of class ids; rows whose target is `ignore_index` count for nothing.
    """
    target = _constant(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss targets must be integers, not {target.dtype}")
    if input.ndim == 1:
        return nll_loss(input[None], target[None], weight, ignore_index, reduction).reshape(())
    expected = input.shape[:1] + input.shape[2:]
    if input.ndim < 2 or target.shape != expected:
        raise ValueError(f"nll_loss: input of shape {input.shape} needs target of shape {expected}, got {target.shape}")
    if isinstance(weight, Tensor) and weight.requires_grad:
        raise ValueError("nll_loss: the class weights get no gradient (as in torch); pass weight.detach()")
    classes = input.shape[1]
    kept = target != ignore_index
    safe = np.where(kept, target, 0)  # (N, d...)
    if safe.size and (safe.min() < 0 or safe.max() >= classes):
        raise IndexError(
            f"nll_loss targets must lie in [0, {classes}) or be ignore_index, got {target.min()}..{target.max()}"
        )
    picked = input.gather(1, safe[:, None]).squeeze(1)  # (N, d...)
    weights = (np.ones(classes) if weight is None else _constant(weight))[safe] * kept
    weights = weights.astype(input.dtype)
    return _reduce(-picked * weights, reduction, mean_divisor=weights.sum())


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:
    """−(t log p + (1 − t) log(1 − p)) for probabilities p in [0, 1]; each log clamped at −100, as torch."""
    if input.data.size and (input.data.min() < 0 or input.data.max() > 1):
        raise ValueError(
            "binary_cross_entropy: every input must lie in [0, 1] (pass logits to binary_cross_entropy_with_logits)"
        )
    t = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    with np.errstate(divide="ignore"):
        losses = -(t * input.log().clamp(min=-100) + (1 - t) * (1 - input).log().clamp(min=-100))
    return _reduce(losses if weight is None else losses * weight, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor, target, weight=None, reduction: str = "mean", pos_weight=None
) -> Tensor:
    """binary_cross_entropy(σ(x), t) without forming σ(x): −(pos_weight · t log σ(x) + (1 − t) log σ(−x))."""
    t = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    log_sigmoid, log_sigmoid_negative = -softplus(-input), -softplus(input)  # log σ(x) = −softplus(−x)
    positive = t * log_sigmoid if pos_weight is None else t * log_sigmoid * pos_weight
    losses = -(positive + (1 - t) * log_sigmoid_negative)
    return _reduce(losses if weight is None else losses * weight, reduction)


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """int64 (..., num_classes): 1 at each id's class; num_classes=-1 takes the largest id + 1."""
    ids = _constant(tensor)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer ids, not {ids.dtype}")
    if num_classes == -1:
        num_classes = int(ids.max()) + 1 if ids.size else 0
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"one_hot: ids must lie in [0, {num_classes}), got {ids.min()}..{ids.max()}")
    return Tensor._wrap((ids[..., None] == np.arange(num_classes)).astype(np.int64))


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad (or, with negative sizes, crop) the last len(pad) / 2 dimensions, as torch's F.pad.

    pad = (left of the last axis, right of the last axis, left of the one before, ...).
    mode "constant" fills with `value` (0 by default); "reflect" mirrors without repeating the
    edge, "replicate" repeats the edge, "circular" wraps around.
    """
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {len(pad)} sizes for a tensor of shape {input.shape}; give two per padded dimension")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f'pad mode must be "constant", "reflect", "replicate" or "circular", got {mode!r}')
    if value is not None and mode != "constant":
        raise ValueError(f"pad: value= only goes with mode='constant', not {mode!r}")
    out = input
    for i in range(len(pad) // 2):
        axis = input.ndim - 1 - i
        out = _pad_axis(out, axis, int(pad[2 * i]), int(pad[2 * i + 1]), mode, 0.0 if value is None else value)
    return out


def _pad_axis(x: Tensor, axis: int, before: int, after: int, mode: str, value: float) -> Tensor:
    n = x.shape[axis]
    lead = (slice(None),) * axis
    x = x[lead + (slice(max(-before, 0), n - max(-after, 0)),)]  # negative sizes crop
    n, before, after = x.shape[axis], max(before, 0), max(after, 0)
    if mode == "constant":
        edges = [
            Tensor(np.full(x.shape[:axis] + (size,) + x.shape[axis + 1 :], value), dtype=x.dtype)
            for size in (before, after)
        ]
        return concatenate([edges[0], x, edges[1]], axis=axis)
    position = np.arange(-before, n + after)
    if mode == "reflect":
        if before >= n or after >= n:
            raise ValueError(
                f"pad: reflect padding of {max(before, after)} needs a dimension longer than that, got {n}"
            )
        period = 2 * (n - 1)
        position = (n - 1) - np.abs((n - 1) - position % period) if n > 1 else np.zeros_like(position)
    elif mode == "replicate":
        position = np.clip(position, 0, n - 1)
    else:
        position = position % n
    return x[lead + (position,)]


__all__ += [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "elu",
    "l1_loss",
    "leaky_relu",
    "log_softmax",
    "mish",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "relu",
    "silu",
    "softmax",
    "softplus",
]

from minigrad.tensor import concatenate, where  # noqa: E402  (this section's own imports)
