"""The primitive operations: each one a `Function` with its forward and its derivative side by side.

Notation in the comments: `g` is dL/d(out), the gradient arriving from above; each backward
returns dL/d(input) for every input. Broadcasting in forward becomes a sum in backward
(`unbroadcast`): an input that was stretched along an axis receives the sum of the gradients
of all the copies it was stretched into.

Every backward runs two ways from the same lines. In `backward()` it gets NumPy arrays; under
`mg.grad(..., create_graph=True)` it gets Tensors: `g`, and in place of `self.a`, `self.b`,
`self.out` the tensors whose arrays forward saved there. So the rules use only what arrays
and Tensors share — arithmetic, `@`, `sum`, `reshape`, `transpose`, indexing — plus the few
helpers below (`exp`, `log`, `where`, `broadcast_to`, `add_at`, `constant`), and record a
graph of the gradient when handed Tensors. Each such op says `tensor_backward = True`.
"""

from __future__ import annotations

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


def _shape_of(x) -> tuple:
    return np.shape(x)


# ---------------------------------------------------------------- helpers for rules that run both ways


def _is_tensor(x) -> bool:
    return isinstance(x, _tensor.Tensor)


def constant(x):
    """The values of x, outside any graph: for masks and conditions, whose derivative is zero."""
    return x.data if _is_tensor(x) else x


def exp(x):
    return x.exp() if _is_tensor(x) else np.exp(x)


def log(x):
    return x.log() if _is_tensor(x) else np.log(x)


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
                ga = unbroadcast(where(constant(b) == 0, 0, g * b * a ** (b - 1)), _shape_of(a))
            if self.needs_input_grad[1]:
                # 0^b = 0 for b > 0 (and 1 at b = 0) is flat in b: take 0 · ln 0 as 0 (as PyTorch)
                at_zero = (constant(a) == 0) & (constant(b) >= 0)
                gb = unbroadcast(where(at_zero, 0, g * self.out * log(a)), _shape_of(b))
        return ga, gb


class Maximum(Function):
    """Elementwise max(a, b); where a == b the gradient is split equally, as PyTorch does."""

    tensor_backward = True

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.maximum(a, b)

    def backward(self, g):
        a, b = constant(self.a), constant(self.b)
        share_a = (a > b) + 0.5 * (a == b)  # a constant: the second derivative is 0 away from ties
        ga = unbroadcast(g * share_a, _shape_of(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * (1 - share_a), _shape_of(b)) if self.needs_input_grad[1] else None
        return ga, gb


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
        self.positive = a > 0
        return np.maximum(a, 0)

    def backward(self, g):
        # d max(a, 0)/da = 1 where a > 0, else 0 (PyTorch's choice at 0, too)
        return g * self.positive


class Abs(Function):
    tensor_backward = True

    def forward(self, a):
        self.sign = np.sign(a)
        return np.abs(a)

    def backward(self, g):
        # d|a|/da = sign(a), 0 at 0 as in PyTorch
        return g * self.sign


# ---------------------------------------------------------------- reductions


class Sum(Function):
    tensor_backward = True

    def forward(self, a, axis=None, keepdims=False):
        self.in_shape = a.shape
        self.axes = normalize_axes(axis, a.ndim)
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
        self.axes = normalize_axes(axis, a.ndim)
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
        if axes is None:
            axes = tuple(range(a.ndim))[::-1]
        if sorted(int(i) % max(a.ndim, 1) for i in axes) != list(range(a.ndim)):
            raise ValueError(f"transpose axes {tuple(axes)} are not a permutation of {a.ndim} axes")
        self.axes = tuple(int(i) % a.ndim for i in axes)
        return np.transpose(a, self.axes)

    def backward(self, g):
        # undo the permutation: axis axes[i] of the input became axis i of the output
        return g.transpose(*(int(i) for i in np.argsort(self.axes)))


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
    tensor_backward = True

    """condition ? a : b, elementwise with broadcasting; `condition` is not differentiable."""

    def forward(self, condition, a, b):
        self.condition = np.asarray(condition, dtype=bool)
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


class Softmax(Function):
    tensor_backward = True

    def forward(self, a, axis=-1):
        self.axis = axis
        e = np.exp(a - a.max(axis=axis, keepdims=True))  # shifting by the max keeps exp finite
        self.out = e / e.sum(axis=axis, keepdims=True)
        return self.out

    def backward(self, g):
        # dy_i/dx_j = y_i (δ_ij - y_j)  =>  dx = y ⊙ (g - Σ_j g_j y_j)
        y = self.out
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    tensor_backward = True

    def forward(self, a, axis=-1):
        self.axis = axis
        shifted = a - a.max(axis=axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        self.out = out
        return out

    def backward(self, g):
        # d log softmax(x)_i / dx_j = δ_ij - softmax(x)_j  =>  dx = g - softmax(x) Σ g
        return g - exp(self.out) * g.sum(axis=self.axis, keepdims=True)


from minigrad import tensor as _tensor  # noqa: E402  (the helpers above test for Tensors)
