"""The primitive operations: each one a `Function` with its forward and its derivative side by side.

Notation in the comments: `g` is dL/d(out), the gradient arriving from above; each backward
returns dL/d(input) for every input. Broadcasting in forward becomes a sum in backward
(`unbroadcast`): an input that was stretched along an axis receives the sum of the gradients
of all the copies it was stretched into.

Every backward runs two ways from the same lines. In `backward()` it gets NumPy arrays; under
`mg.grad(..., create_graph=True)` it gets Tensors: `g`, and in place of `self.a`, `self.b`,
`self.out` the tensors whose arrays forward saved there. So the rules use only what arrays
and Tensors share — arithmetic, `@`, `sum`, `reshape`, `transpose`, indexing — plus the few
helpers below (`exp`, `log`, `sin`, `where`, `cumsum`, `add_at`, `detached`, ...), and record a
graph of the gradient when handed Tensors. Each such op says `tensor_backward = True`.
"""

from __future__ import annotations

import functools

import numpy as np

from minigrad.autograd import Function


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes along which an array of `shape` was broadcast to grad's shape."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    stretched = tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    axes = tuple(range(extra)) + stretched
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def normalize_axes(axis, ndim: int) -> tuple:
    """`axis` (None, int or tuple, negatives allowed) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    # A 0-d tensor accepts axis 0 or -1 as in PyTorch; there is no axis to reduce.
    rank = max(ndim, 1)
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    normalized = sorted({int(a) % rank for a in axes})
    if len(normalized) != len(axes):
        raise ValueError(f"axis {tuple(axes)} names the same axis twice")
    return tuple(normalized) if ndim else ()


def reduced_axes(axis, ndim: int) -> tuple:
    """The axes a reduction (sum, mean, amax, ...) runs over: those named, and all of them when
    `axis` is None or an empty list, as torch's x.sum(dim=()) (NumPy's reduces none)."""
    if axis is not None and not isinstance(axis, (int, np.integer)) and len(axis) == 0:
        axis = None
    return normalize_axes(axis, ndim)


def normalize_axis(axis, ndim: int) -> int:
    """One axis (an int, negatives counted from the end) as a non-negative int; 0 for a 0-d tensor."""
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"expected one axis as an int, got {axis!r}")
    return (normalize_axes(axis, ndim) or (0,))[0]


def sign(a: np.ndarray) -> np.ndarray:
    """−1, 0 or 1: np.sign, but 0 at NaN, as torch's sign (NumPy's is NaN)."""
    return np.where(a != a, 0, np.sign(a))


def floor_divide(a, b):
    """a // b, refusing an integer division by zero as torch does (NumPy's answer is 0)."""
    _refuse_integer_division_by_zero(a, b)
    return np.floor_divide(a, b)


def _refuse_integer_division_by_zero(a, b) -> None:
    if np.result_type(a, b).kind in "biu" and np.any(np.asarray(b) == 0):
        raise ZeroDivisionError("integer division or remainder by zero (torch raises too; NumPy would give 0)")


def _shape_of(x) -> tuple:
    return x.shape if type(x) is np.ndarray else np.shape(x)  # np.shape dispatches: ten times slower


# ---------------------------------------------------------------- helpers for rules that run both ways


def _is_tensor(x) -> bool:
    return isinstance(x, _tensor.Tensor)


def detached(x):
    """The values of x outside any graph: a part of a rule whose derivative is zero (a mask, a tie)."""
    return x.data if _is_tensor(x) else x


def exp(x):
    return x.exp() if _is_tensor(x) else np.exp(x)


def log(x):
    return x.log() if _is_tensor(x) else np.log(x)


def sin(x):
    return x.sin() if _is_tensor(x) else np.sin(x)


def cos(x):
    return x.cos() if _is_tensor(x) else np.cos(x)


def astype(x, dtype):
    return Cast.apply(x, np.empty(0, dtype=dtype)) if _is_tensor(x) else x.astype(dtype)


def cumsum(x, axis: int):
    return Cumsum.apply(x, axis=axis) if _is_tensor(x) else np.cumsum(x, axis=axis)


def flip(x, axis: int):
    return x[(slice(None),) * (axis % x.ndim) + (slice(None, None, -1),)]


def where(condition, a, b):
    """a where `condition` (an array), else b; recorded when a or b is a Tensor."""
    if _is_tensor(a) or _is_tensor(b):
        return _tensor.where(condition, a, b)
    return np.where(condition, a, b)


def broadcast_to(x, shape: tuple):
    return x.broadcast_to(shape) if _is_tensor(x) else np.broadcast_to(x, shape)


def add_at(g, index, shape: tuple):
    """Zeros of `shape` with g added at `index`: the transpose of `a[index]`."""
    return AddAt.apply(g, index=index, shape=shape) if _is_tensor(g) else AddAt().forward(g, index, shape)


def fold_batch_matmul(a, b):
    """a (..., k) @ b (k, m) -> (..., m) as one 2-D product.

    NumPy's batched matmul runs a slow loop instead of BLAS when b is a transposed view
    (as `W.T` is), tens of times slower; folding the batch axes into rows avoids it.
    """
    return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[-1],))


def swap_last_axes(x):
    """x with its last two axes exchanged (a batch of matrices transposed)."""
    return x.transpose(*range(x.ndim - 2), x.ndim - 1, x.ndim - 2)


# ---------------------------------------------------------------- elementwise binary


class Add(Function):
    tensor_backward = True

    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape_of(a), _shape_of(b)
        return a + b

    def backward(self, g):
        # d(a + b)/da = 1, d(a + b)/db = 1
        return unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape)


class Sub(Function):
    tensor_backward = True

    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape_of(a), _shape_of(b)
        return a - b

    def backward(self, g):
        # d(a - b)/da = 1, d(a - b)/db = -1
        gb = unbroadcast(-g, self.b_shape) if self.needs_input_grad[1] else None
        return unbroadcast(g, self.a_shape), gb


class Mul(Function):
    tensor_backward = True

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        # d(a * b)/da = b, d(a * b)/db = a
        a, b = self.a, self.b
        ga = unbroadcast(g * b, _shape_of(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, _shape_of(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    tensor_backward = True

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        # d(a / b)/da = 1 / b, d(a / b)/db = -a / b²
        a, b = self.a, self.b
        ga = unbroadcast(g / b, _shape_of(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), _shape_of(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """a ** b, where either side may be a tensor or a constant."""

    tensor_backward = True

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        # d(a^b)/da = b · a^(b-1), d(a^b)/db = a^b · ln a
        a, b = self.a, self.b
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                # a^0 = 1 is flat in a, even at a = 0 where 0 · 0^(-1) would give NaN (as PyTorch)
                ga = unbroadcast(where(detached(b) == 0, 0, g * b * a ** (b - 1)), _shape_of(a))
            if self.needs_input_grad[1]:
                # 0^b = 0 for b > 0 (and 1 at b = 0) is flat in b: take 0 · ln 0 as 0 (as PyTorch)
                at_zero = (detached(a) == 0) & (detached(b) >= 0)
                gb = unbroadcast(where(at_zero, 0, g * self.out * log(a)), _shape_of(b))
        return ga, gb


class Maximum(Function):
    """Elementwise max(a, b); where a == b the gradient is split equally, as PyTorch does."""

    tensor_backward = True
    pick, a_wins = staticmethod(np.maximum), staticmethod(np.greater)

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.pick(a, b)

    def backward(self, g):
        a, b = detached(self.a), detached(self.b)
        # all of g unless the other side wins, half at a tie; beside a NaN neither wins, and both get g (as
        # torch). Constants: the second derivative is 0 away from ties.
        tie = 0.5 * (a == b)
        share_a, share_b = 1 - self.a_wins(b, a) - tie, 1 - self.a_wins(a, b) - tie
        ga = unbroadcast(g * share_a, _shape_of(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * share_b, _shape_of(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Minimum(Maximum):
    """Elementwise min(a, b): Maximum with the comparison turned round (exact for every dtype,
    where −max(−a, −b) overflows at INT_MIN and has no bool or unsigned negation)."""

    pick, a_wins = staticmethod(np.minimum), staticmethod(np.less)


# ---------------------------------------------------------------- elementwise unary


class Neg(Function):
    tensor_backward = True

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    tensor_backward = True

    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, g):
        # d(e^a)/da = e^a
        return g * self.out


class Log(Function):
    tensor_backward = True

    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        # d(ln a)/da = 1 / a
        return g / self.a


class Sqrt(Function):
    tensor_backward = True

    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

    def backward(self, g):
        # d(√a)/da = 1 / (2√a)
        return g / (2 * self.out)


class Tanh(Function):
    tensor_backward = True

    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, g):
        # d(tanh a)/da = 1 - tanh² a
        return g * (1 - self.out * self.out)


class Sigmoid(Function):
    tensor_backward = True

    def forward(self, a):
        # σ(a) = 1 / (1 + e^-a) = e^a / (1 + e^a). With z = e^-|a| ≤ 1 nothing overflows,
        # and for a ≪ 0 the tiny σ(a) = z / (1 + z) keeps its relative precision.
        z = np.exp(-np.abs(a))
        self.out = np.where(a >= 0, 1, z) / (1 + z)
        return self.out

    def backward(self, g):
        # dσ/da = σ (1 - σ)
        return g * self.out * (1 - self.out)


class ReLU(Function):
    tensor_backward = True

    def forward(self, a):
        self.passes = ~(a <= 0)  # a > 0, or NaN: torch passes g there too
        return np.maximum(a, 0)

    def backward(self, g):
        # d max(a, 0)/da = 1 where a > 0, else 0 (PyTorch's choice at 0, too)
        return g * self.passes


class Abs(Function):
    tensor_backward = True

    def forward(self, a):
        self.sign = sign(a)
        return np.abs(a)

    def backward(self, g):
        # d|a|/da = sign(a), 0 at 0 (and at NaN) as in PyTorch
        return g * self.sign


# ---------------------------------------------------------------- reductions


class Sum(Function):
    tensor_backward = True

    def forward(self, a, axis=None, keepdims=False):
        self.in_shape = a.shape
        self.axes = reduced_axes(axis, a.ndim)
        return np.asarray(a.sum(axis=self.axes, keepdims=keepdims))

    def backward(self, g):
        # every summed element gets the gradient of the sum: copy g back along the summed axes
        return broadcast_to(g.reshape(_kept_shape(self.in_shape, self.axes)), self.in_shape)


class Max(Function):
    """Largest element along `axis`; tied maxima share the gradient equally (like torch.amax)."""

    tensor_backward = True
    reduce = staticmethod(np.max)

    def forward(self, a, axis=None, keepdims=False):
        self.in_shape = a.shape
        self.axes = reduced_axes(axis, a.ndim)
        out = self.reduce(a, axis=self.axes, keepdims=True)
        winners = a == out
        self.share = winners / winners.sum(axis=self.axes, keepdims=True).astype(a.dtype)
        return out if keepdims else np.squeeze(out, axis=self.axes)

    def backward(self, g):
        # `share` is constant: the second derivative is 0 away from ties
        return g.reshape(_kept_shape(self.in_shape, self.axes)) * self.share


class Min(Max):
    """Smallest element along `axis`; tied minima share the gradient equally (like torch.amin)."""

    reduce = staticmethod(np.min)


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    """`shape` with the reduced `axes` kept as size 1 (the shape of a keepdims reduction)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


# ---------------------------------------------------------------- movement and shape


class Reshape(Function):
    tensor_backward = True

    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    tensor_backward = True

    def forward(self, a, axes=None):
        self.axes = axes  # None reverses them
        try:
            return a.transpose(axes)
        except ValueError:  # NumPy's AxisError too
            raise ValueError(f"transpose axes {tuple(axes)} are not a permutation of {a.ndim} axes") from None

    def backward(self, g):
        # undo the permutation: axis axes[i] of the input became axis i of the output
        axes = range(g.ndim)[::-1] if self.axes is None else [int(i) % g.ndim for i in self.axes]
        return g.transpose(*(int(i) for i in np.argsort(axes)))


class BroadcastTo(Function):
    tensor_backward = True

    def forward(self, a, shape):
        self.in_shape = a.shape
        return np.broadcast_to(a, shape)

    def backward(self, g):
        return unbroadcast(g, self.in_shape)


def _is_basic_index(index: tuple) -> bool:
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in index)


class GetItem(Function):
    """a[index] with NumPy semantics. Repeated integer indices accumulate their gradients."""

    tensor_backward = True

    def forward(self, a, index):
        self.in_shape, self.index = a.shape, index
        return np.asarray(a[index])

    def backward(self, g):
        return add_at(g, self.index, self.in_shape)


class AddAt(Function):
    """Zeros of `shape` with g added at `index`: the backward of `a[index]`, as an op of its own
    so that a gradient of indexing can be differentiated again."""

    tensor_backward = True

    def forward(self, g, index, shape):
        self.index = index
        grad = np.zeros(shape, dtype=g.dtype)
        if _is_basic_index(index if isinstance(index, tuple) else (index,)):
            grad[index] = g  # basic indexing picks each element at most once
        else:
            np.add.at(grad, index, g)  # an element picked k times receives k gradients
        return grad

    def backward(self, g):
        # the derivative of a scatter is the gather at the same index
        return g[self.index]


class Concatenate(Function):
    tensor_backward = True

    def forward(self, *arrays, axis=0):
        joined = np.concatenate(arrays, axis=axis)
        self.axis = axis % joined.ndim
        self.bounds = np.cumsum([0] + [a.shape[axis] for a in arrays])
        return joined

    def backward(self, g):
        # each input gets back its own slab of the gradient
        before = (slice(None),) * self.axis
        return tuple(g[before + (slice(start, end),)] for start, end in zip(self.bounds[:-1], self.bounds[1:]))


class Where(Function):
    """condition ? a : b, elementwise with broadcasting; `condition` is not differentiable."""

    tensor_backward = True

    def forward(self, condition, a, b):
        if np.asarray(condition).dtype != bool:
            # as torch: a float mask (an additive −inf/0 bias, say) read as booleans would flip its meaning
            raise TypeError(
                f"where, masked_fill: the condition (mask) must be boolean, not {np.asarray(condition).dtype}; "
                "compare it (mask != 0) to make one"
            )
        self.condition = np.asarray(condition)
        self.a_shape, self.b_shape = _shape_of(a), _shape_of(b)
        return np.where(self.condition, a, b)

    def backward(self, g):
        ga = unbroadcast(where(self.condition, g, 0), self.a_shape) if self.needs_input_grad[1] else None
        gb = unbroadcast(where(self.condition, 0, g), self.b_shape) if self.needs_input_grad[2] else None
        return None, ga, gb


# ---------------------------------------------------------------- matrix product


class MatMul(Function):
    """a @ b with NumPy's rules: 1-D operands, batch dimensions that broadcast."""

    tensor_backward = True

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs at least 1-D operands; use * for scalars")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"the last dimension of the left operand ({a.shape[-1]}) must equal the "
                f"{'second-to-last' if b.ndim > 1 else 'only'} dimension of the right "
                f"({b.shape[-2 if b.ndim > 1 else 0]})"
            )
        self.a, self.b = a, b
        return fold_batch_matmul(a, b) if b.ndim == 2 and a.ndim > 2 else np.matmul(a, b)

    def backward(self, g):
        # C = A B  =>  dA = dC Bᵀ,  dB = Aᵀ dC   (on the last two axes; batch axes are summed back)
        a, b = self.a, self.b
        # A 1-D operand is a row (left) or a column (right) whose extra axis was dropped.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        ga = gb = None
        if self.needs_input_grad[0]:
            if b2.ndim == 2 and a2.ndim > 2:
                ga = fold_batch_matmul(g, b2.T)
            else:
                ga = unbroadcast(g @ swap_last_axes(b2), a2.shape)
            ga = ga.reshape(a.shape)
        if self.needs_input_grad[1]:
            if b2.ndim == 2 and a2.ndim > 2:
                # one big product instead of a batch of small ones that are then summed
                gb = a2.reshape(-1, a2.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gb = unbroadcast(swap_last_axes(a2) @ g, b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


# ---------------------------------------------------------------- softmax family


def max_shift(a: np.ndarray, axis) -> np.ndarray:
    """The max of `a` along `axis` (kept as size 1), by which the softmax family shifts its input.

    softmax(a) = e^(a − m) / Σ e^(a − m) for any m; with m the max, e^(a − m) ≤ 1 never
    overflows. A lane of all −inf (or empty) is shifted by 0; one holding +inf by +inf, so that it
    comes out NaN, as torch's.
    """
    peak = np.max(a, axis=axis, keepdims=True, initial=-np.inf)
    return np.where(peak == -np.inf, 0, peak)


def softmax_array(
    x: np.ndarray,
    axis: int = -1,
    out: np.ndarray | None = None,
    stats: tuple | None = None,
    masked_rows_zero: bool = False,
    shift: float | None = None,
):
    """softmax on a NumPy array: e^(x − m) / Σ e^(x − m) along `axis`, m = `max_shift(x, axis)`.

    Returns the probabilities (x's shape; written into `out`, which may be x itself) and the
    `stats` (m, Σ), each with `axis` kept as 1 (m may be a number). Given the stats of an
    earlier call on the same x, the same probabilities come back without a max or a sum. The
    Softmax op and the fused kernels (minigrad/kernels.py) that need a softmax of arrays all
    call this one. masked_rows_zero gives a lane of all −inf (in attention, a query whose mask
    allows no key) probabilities 0 instead of 0/0 = NaN, as torch's attention does.
    `shift` = 0 skips the max, for a caller that knows every finite x is small enough for e^x
    to stay a normal float (the result is the same for any m; the max only guards the range).
    """
    row_max = stats[0] if stats is not None else max_shift(x, axis) if shift is None else shift
    if isinstance(row_max, float) and row_max == 0:  # a shift of 0 (np.float64 is a float too)
        e = np.exp(x) if out is None else np.exp(x, out=out)
    else:
        e = np.asarray(x - row_max) if out is None else np.subtract(x, row_max, out=out)  # asarray: a 0-d x too
        np.exp(e, out=e)
    row_sum = lane_sums(e, axis) if stats is None else stats[1]
    if masked_rows_zero and stats is None:
        # Σ is 0 only in a lane of all −inf: shifted by the max, a lane's largest term is e⁰ = 1, and
        # unshifted (`shift` = 0) every finite term is a normal float > 0. Raising Σ to the smallest
        # normal float changes only those lanes, whose e are all 0 and stay 0. A pass over Σ.
        np.maximum(row_sum, _smallest_normal(e.dtype), out=row_sum)
    e /= row_sum
    return e, (row_max, row_sum)


@functools.lru_cache(maxsize=8)
def _smallest_normal(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).tiny)


def lane_sums(x: np.ndarray, axis: int) -> np.ndarray:
    """Σ along `axis`, kept as size 1. Along the last axis of a float array, one BLAS product with
    a vector of ones: NumPy's own sum walks short rows one at a time, several times slower."""
    if axis not in (-1, x.ndim - 1) or x.ndim == 0 or x.dtype.kind != "f":
        return x.sum(axis=axis, keepdims=True)
    return (x @ constant_vector(x.shape[-1], 1.0, x.dtype))[..., None]


def constant_vector(n: int, value: float, dtype) -> np.ndarray:
    """A read-only vector of n copies of `value`, cached: `x @ constant_vector(n, 1.0)` sums the
    rows of x (..., n) by BLAS. Read-only, so no caller can spoil it for the next."""
    return _constant_vector(int(n), float(value), np.dtype(dtype))


@functools.lru_cache(maxsize=64)
def _constant_vector(n: int, value: float, dtype: np.dtype) -> np.ndarray:
    vector = np.full(n, value, dtype=dtype)
    vector.flags.writeable = False
    return vector


class Softmax(Function):
    tensor_backward = True

    def forward(self, a, axis=-1):
        self.axis = axis
        self.out, _ = softmax_array(a, axis)
        return self.out

    def backward(self, g):
        # dy_i/dx_j = y_i (δ_ij - y_j)  =>  dx = y ⊙ (g - Σ_j g_j y_j)
        y = self.out
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    tensor_backward = True

    def forward(self, a, axis=-1):
        self.axis = axis
        shifted = a - max_shift(a, axis)
        self.out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return self.out

    def backward(self, g):
        # d log softmax(x)_i / dx_j = δ_ij - softmax(x)_j  =>  dx = g - softmax(x) Σ g
        return g - exp(self.out) * g.sum(axis=self.axis, keepdims=True)


# ---------------------------------------------------------------- more elementwise


class Sin(Function):
    tensor_backward = True

    def forward(self, a):
        self.a = a
        return np.sin(a)

    def backward(self, g):
        # d(sin a)/da = cos a
        return g * cos(self.a)


class Cos(Function):
    tensor_backward = True

    def forward(self, a):
        self.a = a
        return np.cos(a)

    def backward(self, g):
        # d(cos a)/da = −sin a
        return -g * sin(self.a)


class Rounding(Function):
    """A function that is flat between its jumps: floor, ceil, round, sign, trunc, a // b.

    Wherever it has a derivative, that derivative is 0 (PyTorch's choice for floor, ceil, round
    and sign too), so every input gets a zero gradient.
    """

    tensor_backward = True

    def forward(self, *arrays, function):
        self.shapes = [_shape_of(a) for a in arrays]
        return function(*arrays)

    def backward(self, g):
        return tuple(np.zeros(shape, dtype=g.dtype) for shape in self.shapes)


class Remainder(Function):
    """a % b with the sign of b (Python's, NumPy's and torch.remainder's convention)."""

    tensor_backward = True

    def forward(self, a, b):
        _refuse_integer_division_by_zero(a, b)
        self.a, self.b = a, b
        return np.remainder(a, b)

    def backward(self, g):
        # a % b = a − b · floor(a / b), and floor is flat:  ga = g,  gb = −g · floor(a / b)
        a, b = self.a, self.b
        quotient = np.floor_divide(detached(a), detached(b))  # flat in a and b: a constant
        gb = unbroadcast(-g * quotient, _shape_of(b)) if self.needs_input_grad[1] else None
        return unbroadcast(g, _shape_of(a)), gb


class Cast(Function):
    """a converted to the dtype of `like` (an empty array: it carries the dtype, no values)."""

    tensor_backward = True

    def forward(self, a, like):
        self.in_dtype = a.dtype
        return a.astype(like.dtype)

    def backward(self, g):
        # the identity, back in the input's dtype
        return astype(g, self.in_dtype), None


# ---------------------------------------------------------------- scans


def _reverse_cumsum(a, axis: int):
    """out_i = Σ_{k≥i} a_k along `axis`."""
    return flip(cumsum(flip(a, axis), axis), axis)


class Cumsum(Function):
    tensor_backward = True

    def forward(self, a, axis):
        self.axis = axis
        return np.cumsum(a, axis=axis)

    def backward(self, g):
        # y_k = Σ_{j≤k} a_j, so a_i reaches every y_k with k ≥ i:  ga_i = Σ_{k≥i} g_k
        return _reverse_cumsum(g, self.axis)


def cumprod_by_steps(a, axis: int):
    """y_k = y_(k-1) · a_k along `axis`, one recorded multiplication per step: Cumprod's definition."""
    before = (slice(None),) * axis
    products = [a[before + (slice(0, 1),)]]
    for k in range(1, a.shape[axis]):
        products.append(products[-1] * a[before + (slice(k, k + 1),)])
    return _tensor.concatenate(products, axis=axis)


class Cumprod(Function):
    """Running products. The backward below divides by the entries and treats zeros apart:
    exact, but at a zero not a formula that holds around it, so not one to differentiate
    again. Under create_graph the product is differentiated through its definition instead."""

    definition = staticmethod(cumprod_by_steps)

    def forward(self, a, axis):
        self.a, self.axis = a, axis
        self.out = np.cumprod(a, axis=axis)
        return self.out

    def backward(self, g):
        # y_k = Π_{j≤k} a_j, so ga_i = Σ_{k≥i} g_k Π_{j≤k, j≠i} a_j. Dividing y_k by a_i gives
        # that product only where a_i ≠ 0, so each lane has three parts:
        #   before its first zero:  ga_i = Σ_{k≥i} g_k y_k / a_i
        #   at its first zero z:    ga_z = Σ_{k≥z} g_k y'_k, y' the cumprod with a_z taken as 1
        #   after it:               ga_i = 0, every product holds a_z = 0
        a, axis = self.a, self.axis
        is_zero = a == 0
        zeros_so_far = np.cumsum(is_zero, axis=axis)
        before = zeros_so_far == 0
        first_zero = is_zero & (zeros_so_far == 1)
        skipping_first_zero = np.cumprod(np.where(first_zero, 1, a), axis=axis)
        grad_before = _reverse_cumsum(g * self.out, axis) / np.where(before, a, 1)
        grad_first_zero = _reverse_cumsum(g * skipping_first_zero, axis)
        return np.where(before, grad_before, np.where(first_zero, grad_first_zero, 0))


# ---------------------------------------------------------------- gather and scatter


def gather_positions(index: np.ndarray, axis: int) -> tuple:
    """The NumPy index that picks, at each position p of `index`, the element of an array at p
    with p[axis] replaced by index[p] (torch.gather's addressing)."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[axis] = index
    return tuple(grid)


def scatter_add(base: np.ndarray, index: np.ndarray, src, axis: int):
    """A copy of `base` with src[p] added at gather_positions(index, axis)[p]; repeated targets add up.
    Recorded as the op `ScatterAdd` when src is a Tensor."""
    if _is_tensor(src):
        return ScatterAdd.apply(base, index, src, axis=axis)
    out = base.astype(np.result_type(base, src), copy=True)
    np.add.at(out, gather_positions(index, axis), src)
    return out


class Gather(Function):
    """out[p] = a[p with p[axis] = index[p]], as torch.gather(a, axis, index)."""

    tensor_backward = True

    def forward(self, a, index, axis):
        self.in_shape, self.index, self.axis = a.shape, index, axis
        return a[gather_positions(index, axis)]

    def backward(self, g):
        # each picked element receives its g; an element picked k times receives k of them
        return scatter_add(np.zeros(self.in_shape, dtype=g.dtype), self.index, g, self.axis), None


class ScatterAdd(Function):
    """a copy of a with src[p] added at p with p[axis] = index[p], as torch.scatter_add."""

    tensor_backward = True

    def forward(self, a, index, src, axis):
        self.index, self.axis = index, axis
        return scatter_add(a, index, src, axis)

    def backward(self, g):
        # a passes straight through; src[p] landed at gather_positions(index)[p], so it gets g from there: gather
        return g, None, g[gather_positions(self.index, self.axis)]


# ---------------------------------------------------------------- einsum


def einsum(subscripts: list, output: str, *operands):
    """np.einsum of the operands; recorded as the op `Einsum` when one of them is a Tensor."""
    if any(_is_tensor(op) for op in operands):
        return Einsum.apply(*operands, subscripts=subscripts, output=output)
    return np.einsum(",".join(subscripts) + "->" + output, *operands, optimize=True)


class Einsum(Function):
    """np.einsum on explicit subscripts (`subscripts` one string per operand, `output` one).

    Its derivative is another einsum: for operand i, contract g with every other operand and
    ask for operand i's subscripts.
    """

    tensor_backward = True

    def forward(self, *operands, subscripts, output):
        self.operands, self.subscripts, self.output = operands, subscripts, output
        equation = ",".join(subscripts) + "->" + output
        return np.einsum(equation, *operands, optimize=len(operands) > 2)

    def backward(self, g):
        return tuple(self._grad(g, i) if self.needs_input_grad[i] else None for i in range(len(self.operands)))

    def _grad(self, g, i):
        target = self.subscripts[i]
        others = [(s, op) for j, (s, op) in enumerate(zip(self.subscripts, self.operands)) if j != i]
        available = set(self.output).union(*(s for s, _ in others))
        sizes = dict(zip(target, _shape_of(self.operands[i])))  # operand i's own, 0 and 1 included
        used = set(self.output).union(*self.subscripts)
        unused = (c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
        # A letter only operand i has was summed away: it comes back as a row of ones. A letter
        # operand i repeats ('ii', a diagonal) is asked for once and put back on the diagonal
        # by an identity matrix.
        extra_subscripts, extra_operands, result = [], [], ""
        for letter in target:
            if letter in result:
                fresh = next(unused)
                extra_subscripts.append(letter + fresh)
                extra_operands.append(np.eye(sizes[letter], dtype=g.dtype))
                result += fresh
            else:
                if letter not in available:
                    extra_subscripts.append(letter)
                    extra_operands.append(np.ones(sizes[letter], dtype=g.dtype))
                result += letter
        subscripts = [self.output] + [s for s, _ in others] + extra_subscripts
        grad = einsum(subscripts, result, g, *(op for _, op in others), *extra_operands)
        # an axis of size 1 that broadcast against a longer one receives the sum over it; an axis
        # whose letter the others have as size 1 comes back as 1, the same for each of its entries
        shape = _shape_of(self.operands[i])
        return unbroadcast(broadcast_to(grad, np.broadcast_shapes(_shape_of(grad), shape)), shape)


from minigrad import tensor as _tensor  # noqa: E402  (the helpers above test for Tensors)
