"""`Tensor`: a NumPy array that remembers how it was made, so that gradients can flow back.

Every operator and method here is a thin call to a primitive `Function` in `minigrad.ops`
(or a composition of them); the calculus lives there, beside each forward.
"""

from __future__ import annotations

import math
import numbers
from collections import namedtuple

import numpy as np

from minigrad import autograd, ops

DEFAULT_FLOAT = np.float32


def _as_array(data, dtype=None) -> np.ndarray:
    """The dtype policy: floating data becomes float32 unless `dtype` says otherwise."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=dtype, copy=True)
    array = np.array(data, copy=True)
    if array.dtype.kind == "f" and array.dtype != DEFAULT_FLOAT:
        array = array.astype(DEFAULT_FLOAT)
    elif array.dtype.kind not in "fbiu":
        raise TypeError(f"Tensor cannot hold data of dtype {array.dtype}; use numbers or bools")
    return array


def _operand(x, like: Tensor | None = None):
    """Python numbers stay weakly typed (float32 stays float32); arrays become tensors.

    A floating array meeting a floating tensor `like` takes its dtype, as a number would:
    `float32 tensor + float64 ndarray` stays float32, `float64 tensor + ndarray` stays float64.
    """
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number):
        return x.item() if isinstance(x, np.generic) else x
    if like is not None and like.dtype.kind == "f" and np.asarray(x).dtype.kind == "f":
        return Tensor(x, dtype=like.dtype)
    return Tensor(x)


def _constant(x):
    """A non-differentiable argument (mask, ids, condition) as a plain array."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _sizes(shape) -> tuple:
    """Accept both f(2, 3) and f((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Tensor:
    """An n-dimensional array with automatic differentiation.

    Tensor(data, requires_grad=False, dtype=None): `data` is copied; floating data is stored
    as float32 unless `dtype` is given. After `loss.backward()`, every tensor that had
    `requires_grad=True` and took part in computing `loss` holds d(loss)/d(tensor) in `.grad`.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "name", "__weakref__")
    # Make `ndarray + Tensor` call Tensor.__radd__ instead of NumPy broadcasting over objects.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._ctx = None
        self.name = name
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data: np.ndarray, ctx=None) -> Tensor:
        """An op's output: no copy, no dtype conversion."""
        t = cls.__new__(cls)
        t.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        t.grad = None
        t._ctx = ctx
        t.name = None
        t.requires_grad = ctx is not None
        return t

    def requires_grad_(self, mode: bool = True) -> Tensor:
        if mode and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, but this one is "
                f"{self.data.dtype}; create it with dtype=np.float32 (or float64)"
            )
        self.requires_grad = bool(mode)
        return self

    # ------------------------------------------------------------ basic properties

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> _Size:
        """The number of elements, as NumPy's `a.size`; called, `x.size()` is torch's shape."""
        return _Size(self.data.size, self.data.shape)

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, not shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def __bool__(self) -> bool:
        # Without this every tensor is truthy, and `if loss < best:` would always be taken.
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all() on .data"
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # np.asarray(tensor) is its data, not a 0-d array of objects
        return self.data if dtype is None else self.data.astype(dtype)

    def __contains__(self, value) -> bool:
        """`value in tensor`: does any element equal it (torch's meaning)."""
        return bool((self.data == _constant(value)).any())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(", precision=4, threshold=50)
        extra = ""
        if self.data.dtype != DEFAULT_FLOAT:
            extra += f", dtype={self.data.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    # ------------------------------------------------------------ autograd

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires a gradient, into `leaf.grad`.

        A non-scalar tensor needs `grad`, the gradient of some scalar with respect to it.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran under no_grad)"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a non-scalar tensor of shape {self.shape} needs a gradient: "
                    f"call backward(grad) with an array of shape {self.shape}"
                )
            grad = np.ones_like(self.data)
        else:
            grad = _constant(grad).astype(self.data.dtype, copy=False)
            if grad.shape != self.shape:
                raise ValueError(f"backward(grad): grad has shape {grad.shape}, expected {self.shape}")
        autograd.backward(self, grad, retain_graph=retain_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------ arithmetic

    def __add__(self, other):
        return ops.Add.apply(self, _operand(other, self))

    def __radd__(self, other):
        return ops.Add.apply(_operand(other, self), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, _operand(other, self))

    def __rsub__(self, other):
        return ops.Sub.apply(_operand(other, self), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, _operand(other, self))

    def __rmul__(self, other):
        return ops.Mul.apply(_operand(other, self), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, _operand(other, self))

    def __rtruediv__(self, other):
        return ops.Div.apply(_operand(other, self), self)

    def __pow__(self, other):
        return ops.Pow.apply(self, _operand(other, self))

    def __rpow__(self, other):
        return ops.Pow.apply(_operand(other, self), self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, _operand(other, self))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(_operand(other, self), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.Abs.apply(self)

    def __mod__(self, other):
        return ops.Remainder.apply(self, _operand(other, self))

    def __rmod__(self, other):
        return ops.Remainder.apply(_operand(other, self), self)

    def __floordiv__(self, other):
        return ops.Step.apply(self, _operand(other, self), fn=np.floor_divide)

    def __rfloordiv__(self, other):
        return ops.Step.apply(_operand(other, self), self, fn=np.floor_divide)

    # Comparisons give boolean tensors outside the graph (useful as masks), `==` and `!=` too.
    # A tensor still hashes by identity, so it can be a dict key or a set member; but
    # `tensor in a_list` compares elementwise, so code that looks for a tensor in a list
    # compares ids instead.
    __hash__ = object.__hash__

    def __eq__(self, other):
        return Tensor._wrap(np.asarray(self.data == _constant(other)))

    def __ne__(self, other):
        return Tensor._wrap(np.asarray(self.data != _constant(other)))

    def __lt__(self, other):
        return Tensor._wrap(np.asarray(self.data < _constant(other)))

    def __le__(self, other):
        return Tensor._wrap(np.asarray(self.data <= _constant(other)))

    def __gt__(self, other):
        return Tensor._wrap(np.asarray(self.data > _constant(other)))

    def __ge__(self, other):
        return Tensor._wrap(np.asarray(self.data >= _constant(other)))

    # Logical operators on boolean (or integer) tensors, for combining masks.
    def __invert__(self):
        return Tensor._wrap(np.asarray(~_logical(self)))

    def __and__(self, other):
        return Tensor._wrap(np.asarray(_logical(self) & _logical(other, self)))

    __rand__ = __and__

    def __or__(self, other):
        return Tensor._wrap(np.asarray(_logical(self) | _logical(other, self)))

    __ror__ = __or__

    def __xor__(self, other):
        return Tensor._wrap(np.asarray(_logical(self) ^ _logical(other, self)))

    __rxor__ = __xor__

    def isclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
        """|self − other| ≤ atol + rtol · |other|, elementwise, as a boolean tensor (torch.isclose)."""
        return Tensor._wrap(np.asarray(np.isclose(self.data, _constant(other), rtol, atol, equal_nan)))

    # ------------------------------------------------------------ elementwise functions

    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def relu(self):
        return ops.ReLU.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def sin(self):
        return ops.Sin.apply(self)

    def cos(self):
        return ops.Cos.apply(self)

    def maximum(self, other):
        return ops.Maximum.apply(self, _operand(other, self))

    def minimum(self, other):
        return ops.Minimum.apply(self, _operand(other, self))

    def log2(self):
        return self.log() * (1 / math.log(2))

    def exp2(self):
        return 2.0**self

    def square(self):
        return self * self

    def rsqrt(self):
        return 1 / self.sqrt()

    def clamp(self, min=None, max=None):
        """Values below `min` become `min`, above `max` become `max` (numbers or tensors).

        As torch.clamp: the gradient passes where min ≤ x ≤ max, and to `min`/`max` where they
        were taken; with min > max every element is `max`.
        """
        if min is None and max is None:
            raise ValueError("clamp: give min, max or both (torch.clamp refuses neither)")
        out = self
        if min is not None:
            out = where(self < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out

    clip = clamp

    # Flat between jumps: these have a zero gradient wherever they have one (ops.Step).
    def sign(self):
        return ops.Step.apply(self, fn=np.sign)

    def floor(self):
        return ops.Step.apply(self, fn=np.floor)

    def ceil(self):
        return ops.Step.apply(self, fn=np.ceil)

    def round(self, decimals: int = 0):
        """Round half to even, as torch.round and np.round."""
        return ops.Step.apply(self, fn=lambda a: np.round(a, decimals))

    def trunc(self):
        return ops.Step.apply(self, fn=np.trunc)

    def astype(self, dtype):
        """A copy in another dtype; the gradient flows back, converted to this tensor's dtype."""
        return ops.Cast.apply(self, np.empty(0, dtype=dtype))

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def long(self):
        return self.astype(np.int64)

    def clone(self):
        return self.astype(self.dtype)

    def to(self, target):
        """torch's `to`: a dtype gives `astype(dtype)`; the device "cpu" gives this tensor (there is no other)."""
        if isinstance(target, str) and target.split(":")[0] == "cpu":
            return self
        if isinstance(target, str) and target.split(":")[0] in ("cuda", "mps", "xpu", "meta"):
            raise ValueError(f"minigrad runs on the CPU only; to({target!r}) has nowhere to go")
        return self.astype(target)

    def tolist(self):
        return self.data.tolist()

    # ------------------------------------------------------------ reductions
    # NumPy's names (axis, keepdims) and torch's (dim, keepdim) both work.

    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """The sum over the axes divided by their size; NaN over an empty axis, as NumPy and torch."""
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        count = _count(self.shape, axis)
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count if count else math.nan)

    def var(self, axis=None, ddof: int = 0, keepdims: bool = False, *, dim=None, keepdim=None, correction=None):
        """Population variance (ddof=0) by default, as NumPy; ddof=1 (or correction=1) the sample variance.

        The divisor is max(n − ddof, 0), as torch's: a variance with no degrees of freedom
        left is inf (or NaN), never negative.
        """
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        ddof = _one_of("ddof", ddof, 0, "correction", correction)
        centered = self - self.mean(axis=axis, keepdims=True)
        count = _count(self.shape, axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (centered * centered).sum(axis=axis, keepdims=keepdims) / max(count - ddof, 0)

    def std(self, axis=None, ddof: int = 0, keepdims: bool = False, *, dim=None, keepdim=None, correction=None):
        """sqrt(var): the population standard deviation unless ddof (or correction) says otherwise.

        Where the std is 0 its gradient is 0, as torch's: sqrt's slope there is infinite, and
        infinity times var's zero gradient would be NaN.
        """
        var = self.var(axis, ddof, keepdims, dim=dim, keepdim=keepdim, correction=correction)
        flat = var.data == 0
        return where(flat, 0.0, where(flat, 1.0, var).sqrt())

    def max(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """The largest elements along `axis` (ties share the gradient, as torch.amax).

        Spelled with `dim=`, this is torch's `max(dim)`: a pair (values, indices), and the
        gradient goes to the element the index names.
        """
        if isinstance(axis, Tensor):  # torch.max(a, b) is torch.maximum(a, b)
            return self.maximum(axis)
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        if dim is not None:
            return _values_and_indices(self, self.argmax(dim=axis, keepdim=True), axis, keepdims)
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """The smallest elements along `axis` (ties share the gradient); with `dim=`, torch's pair."""
        if isinstance(axis, Tensor):  # torch.min(a, b) is torch.minimum(a, b)
            return self.minimum(axis)
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        if dim is not None:
            return _values_and_indices(self, self.argmin(dim=axis, keepdim=True), axis, keepdims)
        return ops.Min.apply(self, axis=axis, keepdims=keepdims)

    def amax(self, dim=None, keepdim: bool = False):
        return ops.Max.apply(self, axis=dim, keepdims=keepdim)

    def amin(self, dim=None, keepdim: bool = False):
        return ops.Min.apply(self, axis=dim, keepdims=keepdim)

    def prod(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """The product over the axes: the last entry of a cumprod, so zeros get exact gradients."""
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        axes = ops.normalize_axes(axis, self.ndim)
        kept = [a for a in range(self.ndim) if a not in axes]
        lanes = self.transpose(*kept, *axes).reshape(*[self.shape[a] for a in kept], _count(self.shape, axis))
        if lanes.shape[-1] == 0:
            out = lanes.sum(axis=-1) * 0 + 1  # the empty product
        else:
            out = lanes.cumprod(axis=-1)[..., -1]
        return out.reshape(_reduced_shape(self.shape, axes, keepdims))

    def logsumexp(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """log Σ exp(x) over the axes, shifted by the max so that nothing overflows."""
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        axes = ops.normalize_axes(axis, self.ndim)
        peak = np.max(self.data, axis=axes, keepdims=True, initial=-np.inf)
        peak = np.where(np.isfinite(peak), peak, 0)  # all −inf (or an empty axis): shift by nothing
        with np.errstate(divide="ignore"):
            out = (self - peak).exp().sum(axis=axes, keepdims=True).log() + peak
        return out.reshape(_reduced_shape(self.shape, axes, keepdims))

    def argmax(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """Index of the largest element along `axis` (of the flattened tensor when None), int64."""
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        return _arg_reduce(np.argmax, self.data, axis, keepdims)

    def argmin(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        return _arg_reduce(np.argmin, self.data, axis, keepdims)

    def all(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        return Tensor._wrap(np.asarray(np.all(self.data, axis=ops.normalize_axes(axis, self.ndim), keepdims=keepdims)))

    def any(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _torch_axis(axis, keepdims, dim, keepdim)
        return Tensor._wrap(np.asarray(np.any(self.data, axis=ops.normalize_axes(axis, self.ndim), keepdims=keepdims)))

    def cumsum(self, axis=None, *, dim=None):
        """Running sums along `axis` (over the flattened tensor when None, as NumPy)."""
        return _scan(ops.Cumsum, self, _one_of("axis", axis, None, "dim", dim))

    def cumprod(self, axis=None, *, dim=None):
        """Running products along `axis`; exact gradients with zeros in the input."""
        return _scan(ops.Cumprod, self, _one_of("axis", axis, None, "dim", dim))

    def softmax(self, axis: int = -1, *, dim=None):
        return ops.Softmax.apply(self, axis=_single_axis(_one_of("axis", axis, -1, "dim", dim), self.ndim))

    def log_softmax(self, axis: int = -1, *, dim=None):
        return ops.LogSoftmax.apply(self, axis=_single_axis(_one_of("axis", axis, -1, "dim", dim), self.ndim))

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """(values, indices) sorted along `dim`, as torch.sort; ties keep their order, NaN sorts last
        (first when descending). The values are a gather, so their gradient reaches the inputs."""
        dim = _single_axis(dim, self.ndim)
        if descending:  # a stable ascending sort of the reversed lane, reversed again, keeps ties in order
            n = self.shape[dim]
            indices = n - 1 - np.flip(np.argsort(np.flip(self.data, dim), axis=dim, kind="stable"), dim)
        else:
            indices = np.argsort(self.data, axis=dim, kind="stable")
        return ValuesIndices(ops.Gather.apply(self, indices, axis=dim), Tensor._wrap(indices))

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """(values, indices) of the k largest (or smallest) along `dim`, as torch.topk, in order."""
        dim = _single_axis(dim, self.ndim)
        if not 0 <= k <= self.shape[dim]:
            raise ValueError(f"topk: k={k} is out of range for dimension {dim} of size {self.shape[dim]}")
        values, indices = self.sort(dim, descending=largest)
        first_k = (slice(None),) * dim + (slice(0, k),)
        return ValuesIndices(values[first_k], indices[first_k])

    # ------------------------------------------------------------ shape and movement

    def reshape(self, *shape):
        return ops.Reshape.apply(self, shape=_sizes(shape))

    view = reshape

    def transpose(self, *axes):
        """Permute axes as NumPy's transpose; no axes reverses them. (torch's swap of two axes is `swapaxes`.)"""
        axes = _sizes(axes)
        if len(axes) == 2 and self.ndim != 2:
            raise ValueError(
                f"transpose{axes} on a tensor of shape {self.shape}: transpose takes a permutation of all "
                f"{self.ndim} axes, as NumPy's; to exchange two axes as torch's transpose does, use swapaxes{axes}"
            )
        return ops.Transpose.apply(self, axes=axes or None)

    def permute(self, *dims):
        """torch's permute: axis dims[i] becomes axis i (all axes named)."""
        return ops.Transpose.apply(self, axes=_sizes(dims))

    def swapaxes(self, axis0: int, axis1: int):
        """Exchange two axes (torch's transpose(dim0, dim1), NumPy's swapaxes)."""
        order = list(range(self.ndim))
        a, b = _single_axis(axis0, self.ndim), _single_axis(axis1, self.ndim)
        order[a], order[b] = order[b], order[a]
        return self.transpose(*order)

    @property
    def T(self):
        return self.transpose()

    def t(self):
        """torch's t(): the transpose of a matrix (0-D and 1-D unchanged)."""
        if self.ndim > 2:
            raise ValueError(f"t() expects at most 2 dimensions, got shape {self.shape}; use permute or swapaxes")
        return self.transpose()

    def broadcast_to(self, *shape):
        return ops.BroadcastTo.apply(self, shape=_sizes(shape))

    def expand(self, *sizes):
        """torch's expand: broadcast to `sizes`, where -1 keeps that dimension's size."""
        sizes = _sizes(sizes)
        offset = len(sizes) - self.ndim
        if offset < 0:
            raise ValueError(f"expand: {len(sizes)} sizes for a tensor of shape {self.shape}")
        shape = tuple(self.shape[i - offset] if n == -1 and i >= offset else n for i, n in enumerate(sizes))
        return self.broadcast_to(shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge dimensions start_dim..end_dim (inclusive) into one, as torch.flatten."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _single_axis(start_dim, self.ndim), _single_axis(end_dim, self.ndim)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        return self.reshape(_flat_shape(self.shape, start, end))

    def unflatten(self, dim: int, sizes):
        """Split dimension `dim` into `sizes` (one may be -1), as torch.unflatten."""
        dim = _single_axis(dim, self.ndim)
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1 :])

    def squeeze(self, axis=None, *, dim=None):
        """Drop size-1 dimensions (all, or those named; a named dimension of another size stays, as torch)."""
        axis = _one_of("axis", axis, None, "dim", dim)
        axes = ops.normalize_axes(axis, self.ndim)
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def unsqueeze(self, dim: int):
        """A new size-1 dimension at position `dim` (-ndim-1 ≤ dim ≤ ndim)."""
        dim = _single_axis(dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def flip(self, dims=None):
        """Reverse the order along `dims` (every axis when None, as NumPy)."""
        axes = ops.normalize_axes(dims, self.ndim)
        return self[tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(self.ndim))]

    def roll(self, shifts, dims=None):
        """Shift elements along `dims` with wrap-around; with dims None, along the flattened tensor."""
        if dims is None:
            return self.reshape(-1).roll(shifts, 0).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
        dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
        if len(shifts) != len(dims):
            raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
        out = self
        for shift, dim in zip(shifts, dims):
            dim = _single_axis(dim, self.ndim)
            n = self.shape[dim]
            if n:
                out = out[(slice(None),) * dim + ((np.arange(n) - shift) % n,)]
        return out

    def repeat(self, *sizes):
        """torch's repeat (NumPy's tile): the whole tensor repeated sizes[i] times along axis i."""
        sizes = _sizes(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(
                f"repeat: {len(sizes)} sizes for a tensor with {self.ndim} dimensions; give at least {self.ndim}"
            )
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        # copies side by side: (r0, s0, r1, s1, ...) merged pairwise into (r0·s0, r1·s1, ...)
        interleaved = self.reshape(tuple(n for s in shape for n in (1, s)))
        stretched = interleaved.broadcast_to(tuple(n for r, s in zip(sizes, shape) for n in (r, s)))
        return stretched.reshape(tuple(r * s for r, s in zip(sizes, shape)))

    def tile(self, *dims):
        """torch.tile / np.tile: repeat, with missing leading counts taken as 1."""
        dims = _sizes(dims)
        return self.repeat((1,) * (self.ndim - len(dims)) + dims)

    def split(self, split_size_or_sections, dim: int = 0):
        """Pieces along `dim`: of size `split_size_or_sections` (the last may be smaller), or of the listed sizes."""
        dim = _single_axis(dim, self.ndim)
        n = self.shape[dim]
        if isinstance(split_size_or_sections, (int, np.integer)):
            if split_size_or_sections <= 0:
                raise ValueError(f"split: the size of a piece must be positive, got {split_size_or_sections}")
            sizes = [min(split_size_or_sections, n - start) for start in range(0, n, split_size_or_sections)] or [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but dimension {dim} has size {n}")
        starts = np.cumsum([0] + sizes)
        return tuple(self[(slice(None),) * dim + (slice(a, b),)] for a, b in zip(starts[:-1], starts[1:]))

    def chunk(self, chunks: int, dim: int = 0):
        """At most `chunks` pieces of equal size along `dim` (the last may be smaller), as torch.chunk."""
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks}")
        n = self.shape[_single_axis(dim, self.ndim)]
        return self.split(max(-(-n // chunks), 1), dim)

    def gather(self, dim: int, index):
        """out[p] = self[p with p[dim] = index[p]], as torch.gather; index has self's number of
        dimensions and may be smaller than self along every one but `dim`."""
        dim = _single_axis(dim, self.ndim)
        return ops.Gather.apply(self, _gather_index(index, self.shape, dim, "gather"), axis=dim)

    def scatter_add(self, dim: int, index, src):
        """A copy of self with src[p] added at (p with p[dim] = index[p]), as torch.scatter_add."""
        dim = _single_axis(dim, self.ndim)
        index = _gather_index(index, self.shape, dim, "scatter_add")
        src = _operand(src, self)
        if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
            raise ValueError(f"scatter_add: index of shape {index.shape} does not fit src of shape {src.shape}")
        src = src[tuple(slice(0, n) for n in index.shape)]  # torch reads only the part index covers
        return ops.ScatterAdd.apply(self, index, src, axis=dim)

    def tril(self, diagonal: int = 0):
        """The lower triangle of the last two dimensions (j ≤ i + diagonal), zeros elsewhere."""
        return where(_triangle(self.shape, diagonal, "tril"), self, self._zero())

    def triu(self, diagonal: int = 0):
        """The upper triangle of the last two dimensions (j ≥ i + diagonal), zeros elsewhere."""
        return where(~_triangle(self.shape, diagonal - 1, "triu"), self, self._zero())

    def _zero(self) -> Tensor:
        """A 0 of this tensor's dtype: the Python number 0 would turn a bool tensor into int64."""
        return Tensor(np.zeros((), dtype=self.dtype))

    def diag(self, diagonal: int = 0):
        """torch.diag: a 1-D tensor's diagonal matrix, or a matrix's diagonal as a 1-D tensor."""
        k = diagonal
        if self.ndim == 1:
            n = self.shape[0]
            size = n + abs(k)
            slots = np.full((size, size), n)  # slot n is the zero appended below
            rows = np.arange(n) + max(-k, 0)
            slots[rows, rows + k] = np.arange(n)
            return concatenate([self, zeros(1, dtype=self.dtype)])[slots]
        if self.ndim == 2:
            rows = np.arange(max(0, min(self.shape[0] + min(k, 0), self.shape[1] - max(k, 0))))
            return self[rows + max(-k, 0), rows + max(k, 0)]
        raise ValueError(f"diag expects a 1-D or 2-D tensor, got shape {self.shape}")

    def trace(self):
        """The sum of a matrix's diagonal."""
        if self.ndim != 2:
            raise ValueError(f"trace expects a 2-D tensor, got shape {self.shape}")
        return self.diag().sum()

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_index(index))

    def masked_fill(self, mask, value: float):
        """A copy with `value` wherever `mask` (broadcastable to this tensor's shape, True = fill) is True."""
        mask = _constant(mask)
        if np.broadcast_shapes(mask.shape, self.shape) != self.shape:
            raise ValueError(
                f"masked_fill: a mask of shape {mask.shape} does not broadcast to the tensor's {self.shape}"
            )
        return ops.Where.apply(mask, value, self)


class _Size(int):
    """A tensor's element count that, called, answers torch's `x.size()` (the shape) or `x.size(dim)`."""

    def __new__(cls, count: int, shape: tuple):
        size = super().__new__(cls, count)
        size.shape = shape
        return size

    def __call__(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[_single_axis(dim, len(self.shape))]


ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = (
    "What torch's sort, topk, max(dim) and min(dim) return: values (differentiable) and int64 indices."
)


def _one_of(name: str, value, default, torch_name: str, torch_value):
    """The argument given under NumPy's name or torch's (not both)."""
    if torch_value is None:
        return value
    if value is not default and value != default:
        raise TypeError(f"got both {name}={value!r} and {torch_name}={torch_value!r}; pass one")
    return torch_value


def _torch_axis(axis, keepdims, dim, keepdim):
    """(axis, keepdims) from NumPy's spelling or torch's dim=/keepdim=."""
    return _one_of("axis", axis, None, "dim", dim), bool(_one_of("keepdims", keepdims, False, "keepdim", keepdim))


def _single_axis(axis, ndim: int) -> int:
    """One axis, negatives counted from the end, checked against the tensor's dimensions."""
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"expected one axis as an int, got {axis!r}")
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ValueError(f"axis {axis} is out of range for a tensor with {ndim} dimensions")
    return int(axis) % max(ndim, 1)


def _reduced_shape(shape: tuple, axes: tuple, keepdims: bool) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape) if keepdims or i not in axes)


def _flat_shape(shape: tuple, start: int, end: int) -> tuple:
    return shape[:start] + (int(np.prod(shape[start : end + 1])),) + shape[end + 1 :]


def _logical(x, like: Tensor | None = None) -> np.ndarray:
    if like is not None and like.dtype.kind in "iu" and isinstance(x, int) and not isinstance(x, bool):
        # A Python int takes the integer tensor's dtype, wrapping as torch does: int32 | 0xFFFFFFFF
        # is int32 -1, uint8 & 0x0F stays uint8 (np.asarray would make it int64 first).
        return np.asarray(x).astype(like.dtype)
    array = _constant(x)
    if array.dtype.kind not in "biu":
        raise TypeError(f"logical operators need boolean or integer tensors, not {array.dtype}")
    return array


def _arg_reduce(reduce, data: np.ndarray, axis, keepdims: bool) -> Tensor:
    if axis is None:
        out = reduce(data.reshape(-1))
        return Tensor._wrap(np.asarray(out, dtype=np.int64).reshape((1,) * data.ndim if keepdims else ()))
    axis = _single_axis(axis, data.ndim)
    if data.ndim == 0:
        return Tensor._wrap(np.zeros((), dtype=np.int64))
    return Tensor._wrap(np.asarray(reduce(data, axis=axis, keepdims=keepdims), dtype=np.int64))


def _values_and_indices(x: Tensor, indices: Tensor, dim: int, keepdim: bool) -> ValuesIndices:
    """torch's max(dim)/min(dim): the values at the indices (so the gradient goes there alone)."""
    dim = _single_axis(dim, x.ndim)
    values = x.gather(dim, indices) if x.ndim else x
    if not keepdim and x.ndim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return ValuesIndices(values, indices)


def _scan(function, x: Tensor, axis) -> Tensor:
    if axis is None:
        return function.apply(x.reshape(-1), axis=0)
    if x.ndim == 0:
        _single_axis(axis, 0)
        return function.apply(x.reshape(1), axis=0).reshape(())
    return function.apply(x, axis=_single_axis(axis, x.ndim))


def _gather_index(index, shape: tuple, dim: int, name: str) -> np.ndarray:
    """An index for gather/scatter_add, checked as torch checks it (no wrap-around of negatives)."""
    index = _constant(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must hold integers, not {index.dtype}")
    if index.ndim != len(shape):
        raise ValueError(f"{name}: index has {index.ndim} dimensions, the tensor of shape {shape} has {len(shape)}")
    if any(i > n for d, (i, n) in enumerate(zip(index.shape, shape)) if d != dim):
        raise ValueError(f"{name}: index of shape {index.shape} is larger than the tensor's {shape} outside dim {dim}")
    if index.size and (index.min() < 0 or index.max() >= shape[dim]):
        raise IndexError(f"{name}: index values must lie in [0, {shape[dim]}), got {index.min()}..{index.max()}")
    return index


def _triangle(shape: tuple, diagonal: int, name: str) -> np.ndarray:
    """True on and below diagonal `diagonal` of the last two dimensions."""
    if len(shape) < 2:
        raise ValueError(f"{name} expects at least 2 dimensions, got shape {shape}")
    return np.tri(shape[-2], shape[-1], diagonal, dtype=bool)


def _count(shape: tuple, axis) -> int:
    axes = ops.normalize_axes(axis, len(shape))
    return int(np.prod([shape[a] for a in axes])) if axes else 1


def _index_item(item):
    """One entry of an index, as NumPy would read it: sequences (lists, tuples, tensors) become arrays."""
    if isinstance(item, Tensor):
        item = item.data
    elif isinstance(item, (list, tuple)):
        item = np.asarray([_index_item(i) for i in item]) if item else np.zeros(0, dtype=np.intp)
    if isinstance(item, np.ndarray):
        if item.dtype.kind not in "biu":
            raise TypeError(f"tensor index arrays must hold integers or bools, not {item.dtype}")
    elif not (isinstance(item, (int, np.integer, slice)) or item is None or item is Ellipsis):
        raise TypeError(
            f"unsupported index type {type(item).__name__}: use ints, slices, None, ..., or integer/boolean arrays"
        )
    return item


def _index(index):
    """Turn Tensor, list and nested-tuple indices into arrays; reject index types NumPy would misread."""
    if isinstance(index, tuple):
        return tuple(_index_item(item) for item in index)
    return _index_item(index)


# ---------------------------------------------------------------- module-level constructors


def _like_first_tensor(items) -> list:
    """Tensors, with floating arrays and numbers among them taking the first floating tensor's
    dtype, as `tensor + ndarray` does (float32 by the dtype policy when there is none)."""
    like = next((t for t in items if isinstance(t, Tensor) and t.dtype.kind == "f"), None)
    return [t if isinstance(t, Tensor) else _operand(np.asarray(t), like) for t in items]


def concatenate(tensors, axis: int = 0, *, dim=None) -> Tensor:
    """Join tensors along an existing axis; all other dimensions must agree (torch.cat)."""
    tensors = _like_first_tensor(list(tensors))
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    if tensors[0].ndim == 0 or any(t.ndim != tensors[0].ndim for t in tensors):
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ValueError(f"concatenate joins tensors of one number of dimensions (at least 1), got shapes {shapes}")
    axis = _single_axis(_one_of("axis", axis, 0, "dim", dim), tensors[0].ndim)
    return ops.Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors, axis: int = 0, *, dim=None) -> Tensor:
    """Join tensors of one shape along a new axis (a reshape, then a concatenate)."""
    tensors = _like_first_tensor(list(tensors))
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    axis = _single_axis(_one_of("axis", axis, 0, "dim", dim), tensors[0].ndim + 1)
    expanded = [t.reshape(t.shape[:axis] + (1,) + t.shape[axis:]) for t in tensors]
    return concatenate(expanded, axis=axis)


def where(condition, a, b) -> Tensor:
    """Elementwise `a` where `condition` is True, else `b` (either may be a number)."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    return ops.Where.apply(_constant(condition), _operand(a, like), _operand(b, like))


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, as np.einsum and torch.einsum: "ij,jk->ik" is a matrix product.

    Letters name axes; a letter missing from the output is summed over; "..." stands for the
    broadcast leading axes. The operands may also come as one list.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    tensors = _like_first_tensor(list(operands))
    subscripts, output = _explicit_einsum(equation, [t.shape for t in tensors])
    return ops.Einsum.apply(*tensors, subscripts=subscripts, output=output)


def _explicit_einsum(equation: str, shapes: list) -> tuple[list, str]:
    """An equation's subscripts per operand and for the output, with "..." spelled out in letters."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: {equation!r} names {len(terms)} operands, but {len(shapes)} were given")
    free = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in equation)
    named = [len(term.replace("...", "")) for term in terms]
    # "..." covers as many axes as the widest operand leaves unnamed; narrower ones take the last
    widest = max([len(shape) - n for term, shape, n in zip(terms, shapes, named) if "..." in term], default=0)
    ellipsis = "".join(next(free) for _ in range(widest))
    subscripts = []
    for i, (term, shape) in enumerate(zip(terms, shapes)):
        if "..." in term:
            width = len(shape) - named[i]
            term = term.replace("...", ellipsis[len(ellipsis) - width :] if width > 0 else "")
        if len(term) != len(shape) or not term.isalpha() and term:
            raise ValueError(f"einsum: operand {i} has shape {shape}, but its subscripts read {terms[i]!r}")
        subscripts.append(term)
    if not arrow:  # implicit output: the letters used once, in alphabetical order, after "..."
        letters = "".join(terms).replace("...", "")
        output = "..." + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    output = output.replace("...", ellipsis)
    return subscripts, output


def tensordot(a, b, dims=2) -> Tensor:
    """Contract the last `dims` axes of a with the first `dims` of b, or the listed axes (torch.tensordot)."""
    a, b = _like_first_tensor([a, b])
    if isinstance(dims, (int, np.integer)):
        a_axes, b_axes = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        a_axes, b_axes = ([d] if isinstance(d, (int, np.integer)) else list(d) for d in dims)
    a_axes = [_single_axis(d, a.ndim) for d in a_axes]
    b_axes = [_single_axis(d, b.ndim) for d in b_axes]
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    a_sub = [next(letters) for _ in range(a.ndim)]
    b_sub = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(a_axes, b_axes):
        b_sub[j] = a_sub[i]
    out = [c for i, c in enumerate(a_sub) if i not in a_axes] + [c for j, c in enumerate(b_sub) if j not in b_axes]
    return einsum(f"{''.join(a_sub)},{''.join(b_sub)}->{''.join(out)}", a, b)


def minimum(a, b) -> Tensor:
    a, b = _tensor_first(a, b)
    return a.minimum(b)


def maximum(a, b) -> Tensor:
    a, b = _tensor_first(a, b)
    return a.maximum(b)


def _tensor_first(a, b) -> tuple:
    """The operands of a symmetric op, a tensor first; a Python number beside it stays weakly
    typed, as in the method (`minimum(int32 tensor, 7)` is int32, not int64)."""
    if isinstance(a, numbers.Number) and isinstance(b, Tensor):
        a, b = b, a
    if isinstance(a, Tensor) and isinstance(b, numbers.Number):
        return a, b
    return tuple(_like_first_tensor([a, b]))


def isclose(a, b, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    return _operand(a).isclose(b, rtol, atol, equal_nan)


def _method_as_function(name: str):
    def function(x, *args, **kwargs):
        return getattr(x if isinstance(x, Tensor) else Tensor(x), name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"mg.{name}(x, ...) is x.{name}(...), as torch.{name}(x, ...) is x.{name}(...)."
    return function


# torch.sum(x, dim=1) is x.sum(dim=1): each of these methods is also a function of minigrad
# (added to its namespace by minigrad/__init__.py; kept out of this module's, where they would
# hide Python's sum, max, round and all).
METHODS_AS_FUNCTIONS = {
    name: _method_as_function(name)
    for name in """exp log sqrt tanh sigmoid relu abs sin cos log2 exp2 square rsqrt clamp clip sign floor ceil
    round trunc sum mean var std prod logsumexp max min amax amin argmax argmin all any cumsum cumprod softmax
    log_softmax sort topk reshape transpose permute swapaxes flatten unflatten squeeze unsqueeze flip roll tile
    split chunk gather scatter_add tril triu diag trace""".split()
}


def zeros(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros; `shape` as a tuple, zeros((2, 3)), or as sizes, zeros(2, 3)."""
    return Tensor(np.zeros(_sizes(shape)), dtype=dtype, requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """A tensor of ones; `shape` as a tuple or as sizes."""
    return Tensor(np.ones(_sizes(shape)), dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `size` filled with `fill_value`: int64 for an int, bool for a bool, else float32 (as torch)."""
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    return Tensor(np.full(shape, fill_value), dtype=dtype or _number_dtype(fill_value), requires_grad=requires_grad)


def zeros_like(x, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(_constant(x).shape, 0, dtype=dtype or _constant(x).dtype, requires_grad=requires_grad)


def ones_like(x, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(_constant(x).shape, 1, dtype=dtype or _constant(x).dtype, requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(_constant(x).shape, fill_value, dtype=dtype or _constant(x).dtype, requires_grad=requires_grad)


def _number_dtype(value) -> np.dtype:
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(bool)
    return np.dtype(np.int64) if isinstance(value, (int, np.integer)) else np.dtype(DEFAULT_FLOAT)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """start, start + step, ... up to (not including) end; int64 when all three are ints, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        all_ints = all(isinstance(n, (int, np.integer)) for n in (start, end, step))
        dtype = np.int64 if all_ints else DEFAULT_FLOAT
    if np.dtype(dtype).kind != "f":
        return Tensor(np.arange(start, end, step), dtype=dtype, requires_grad=requires_grad)
    # start + i · step in float64, for as many i as fit, as torch does: float steps do not drift
    count = max(0, math.ceil((end - start) / step))
    return Tensor(start + np.arange(count, dtype=np.float64) * step, dtype=dtype, requires_grad=requires_grad)


def linspace(start, end, steps: int, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced numbers from start to end, both included (floating dtypes only)."""
    if np.dtype(dtype) == np.bool_:
        raise TypeError("linspace: dtype=bool is not supported (torch's linspace refuses it too)")
    return Tensor(np.linspace(start, end, steps), dtype=dtype, requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """The n × m identity matrix (m = n unless given)."""
    return Tensor(np.eye(n, m), dtype=dtype, requires_grad=requires_grad)


_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator behind `randn` and the default parameter initialisation."""
    global _rng
    _rng = np.random.default_rng(seed)


def default_rng() -> np.random.Generator:
    """The generator `randn` draws from when none is given (reset by `manual_seed`)."""
    return _rng


def randn(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False, rng=None) -> Tensor:
    """Standard normal samples of `shape` (a tuple or sizes); `rng` makes them reproducible."""
    rng = _rng if rng is None else rng
    return Tensor(rng.standard_normal(_sizes(shape)), dtype=dtype, requires_grad=requires_grad)


def rand(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False, rng=None) -> Tensor:
    """Uniform samples from [0, 1) of `shape` (a tuple or sizes)."""
    rng = _rng if rng is None else rng
    return Tensor(rng.random(_sizes(shape)), dtype=dtype, requires_grad=requires_grad)


def randint(low, high=None, size=None, dtype=np.int64, rng=None) -> Tensor:
    """Integers from [low, high) of shape `size`, as torch.randint(low=0, high, size)."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high  # randint(high, size)
    if high is None or size is None:
        raise TypeError("randint needs high and size: randint(high, size) or randint(low, high, size)")
    rng = _rng if rng is None else rng
    return Tensor(rng.integers(low, high, tuple(size)), dtype=dtype)
