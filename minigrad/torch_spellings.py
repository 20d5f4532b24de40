"""PyTorch's spellings: names and keywords that compute nothing new.

A PyTorch program says `x.view(2, 3)`, `x.permute(1, 0)`, `x.size(-1)`, `x.sum(dim=1, keepdim=True)`
and `x.max(dim=1)`; each of these is here, written with Tensor's own methods (minigrad/tensor.py
lists them among its methods). `torch_keywords` lets a method written with NumPy's keywords
(axis=, keepdims=, ddof=) also take torch's (dim=, keepdim=, correction=, unbiased=, dtype=),
and one written with torch's take NumPy's.
"""

from __future__ import annotations

import functools
import inspect
from collections import namedtuple

import numpy as np

from minigrad import ops

# (the keyword a function is written with, the other spelling it takes too): torch's and NumPy's
_SPELLINGS = (
    ("axis", "dim"), ("dim", "axis"), ("keepdims", "keepdim"), ("keepdim", "keepdims"),
    ("ddof", "correction"), ("correction", "ddof"), ("dims", "axis"),
)  # fmt: skip
# the functions whose torch namesake takes dtype=: the input is cast to it first
_CAST_FIRST = {"sum", "mean", "prod", "cumsum", "cumprod", "softmax", "log_softmax"}


def torch_keywords(function):
    """`function` called with either spelling of its keywords (dim=/axis=, keepdim=/keepdims=,
    correction=/ddof=), whichever it is written with; also torch's unbiased= (correction 1 or 0),
    correction=None (torch's default, 1), and dtype= where torch's namesake takes it."""
    parameters = inspect.signature(function).parameters
    other_spelling = {other: own for own, other in _SPELLINGS if own in parameters}
    takes_correction = "ddof" in parameters or "correction" in parameters

    @functools.wraps(function)
    def with_either_spelling(*args, **kwargs):
        if takes_correction and "unbiased" in kwargs:
            kwargs["correction"] = int(kwargs.pop("unbiased"))
        if takes_correction and "correction" in kwargs and kwargs["correction"] is None:
            kwargs["correction"] = 1
        for other, own in other_spelling.items():
            if other in kwargs:
                value = kwargs.pop(other)
                if value is not None and kwargs.get(own) is not None:
                    raise TypeError(f"got both {own}={kwargs[own]!r} and {other}={value!r}; pass one")
                if value is not None or own not in kwargs:
                    kwargs[own] = value
        if function.__name__ in _CAST_FIRST and "dtype" in kwargs:
            dtype = kwargs.pop("dtype")
            args = args if dtype is None else (args[0].astype(dtype), *args[1:])
        return function(*args, **kwargs)

    return with_either_spelling


ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = (
    "What torch's sort, topk, max(dim) and min(dim) return: values (differentiable) and int64 indices."
)


def max_or_torch_form(elementwise: str, arg_reduction: str):
    """A max or min reduction that also answers torch's two other forms of the name.

    x.max(other) is torch.max(a, b), the elementwise `maximum`; x.max(dim=d) is torch's pair
    (values, indices), the gradient going to the element each index names.
    """

    def decorate(reduction):
        @functools.wraps(reduction)
        def reduction_or_torch_form(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None, other=None):
            if isinstance(axis, type(x)) or other is not None:
                return getattr(x, elementwise)(axis if other is None else other)
            keepdims = keepdims if keepdim is None else keepdim
            if dim is None:
                return reduction(x, axis, keepdims)
            if axis is not None:
                raise TypeError(f"got both axis={axis!r} and dim={dim!r}; pass one")
            dim = ops.normalize_axis(dim, x.ndim)
            indices = getattr(x, arg_reduction)(axis=dim, keepdims=True)
            values = x.gather(dim, indices) if x.ndim else x
            if not keepdims and x.ndim:
                values, indices = values.squeeze(dim), indices.squeeze(dim)
            return ValuesIndices(values, indices)

        return reduction_or_torch_form

    return decorate


# ---------------------------------------------------------------- sizes and the graph, as torch names them


class ElementCount(int):
    """`x.size`: NumPy's element count, an int; called, torch's `x.size()` (the shape) or `x.size(dim)`."""

    def __new__(cls, count: int, shape: tuple):
        number = super().__new__(cls, count)
        number.shape = shape
        return number

    def __call__(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[ops.normalize_axis(dim, len(self.shape))]


@property
def size(x) -> ElementCount:
    """The number of elements, as NumPy's `a.size`; called, `x.size()` is torch's shape."""
    return ElementCount(x.data.size, x.data.shape)


def numel(x) -> int:
    return x.data.size


def dim(x) -> int:
    return x.data.ndim


@property
def grad_fn(x):
    """The Function that made x (None for a leaf)."""
    return x._ctx


@property
def is_leaf(x) -> bool:
    return x._ctx is None


def tolist(x):
    return x.data.tolist()


def __contains__(x, value) -> bool:
    """`value in tensor`: does any element equal it (torch's meaning)."""
    return bool((x == value).data.any())


# ---------------------------------------------------------------- dtypes and devices


def float(x):
    return x.astype(np.float32)


def double(x):
    return x.astype(np.float64)


def long(x):
    return x.astype(np.int64)


def clone(x):
    return x.astype(x.dtype)


def to(x, target):
    """torch's `to`: a dtype gives `astype(dtype)`; the device "cpu" gives this tensor (there is no other)."""
    if isinstance(target, str) and target.split(":")[0] == "cpu":
        return x
    if isinstance(target, str) and target.split(":")[0] in ("cuda", "mps", "xpu", "meta"):
        raise ValueError(f"minigrad runs on the CPU only; to({target!r}) has nowhere to go")
    return x.astype(target)


# ---------------------------------------------------------------- reductions


@torch_keywords
def amax(x, dim=None, keepdim: bool = False):
    """torch.amax: the largest elements along `dim` (ties share the gradient), as x.max(axis, keepdims)."""
    return x.max(dim, keepdim)


@torch_keywords
def amin(x, dim=None, keepdim: bool = False):
    """torch.amin: the smallest elements along `dim`, as x.min(axis, keepdims)."""
    return x.min(dim, keepdim)


@torch_keywords
def sort(x, dim: int = -1, descending: bool = False, stable: bool = False):
    """(values, indices) sorted along `dim`, as torch.sort; ties keep their order, NaN sorts last
    (first when descending). The values are a gather, so their gradient reaches the inputs."""
    dim = ops.normalize_axis(dim, x.ndim)
    if x.ndim == 0:  # one element, in order already: itself, at index 0 (as torch)
        return ValuesIndices(x * 1, type(x)._from_array(np.zeros((), dtype=np.int64)))
    if descending:  # a stable ascending sort of the reversed lane, reversed again, keeps ties in order
        n = x.shape[dim]
        indices = n - 1 - np.flip(np.argsort(np.flip(x.data, dim), axis=dim, kind="stable"), dim)
    else:
        indices = np.argsort(x.data, axis=dim, kind="stable")
    return ValuesIndices(ops.Gather.apply(x, indices, axis=dim), type(x)._from_array(indices))


@torch_keywords
def topk(x, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """(values, indices) of the k largest (or smallest) along `dim`, as torch.topk, in order."""
    dim = ops.normalize_axis(dim, x.ndim)
    size = x.shape[dim] if x.ndim else 1
    if not 0 <= k <= size:
        raise ValueError(f"topk: k={k} is out of range for dimension {dim} of size {size}")
    values, indices = sort(x, dim, descending=largest)
    if x.ndim == 0:  # torch gives the element itself, for k 1 or 0
        return ValuesIndices(values, indices)
    first_k = (slice(None),) * dim + (slice(0, k),)
    return ValuesIndices(values[first_k], indices[first_k])


# ---------------------------------------------------------------- shapes, as reshapes and transposes


def shape_from_args(shape: tuple, keyword=None) -> tuple:
    """Sizes given any of torch's ways, f(2, 3), f((2, 3)) or as a keyword f(shape=(2, 3)), as a tuple."""
    if keyword is not None:
        if shape:
            raise TypeError(f"sizes given both by position {shape} and by keyword {keyword}; pass one")
        shape = (keyword,)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def permute(x, *sizes, dims=None):
    """torch's permute: axis dims[i] becomes axis i (all axes named, as sizes, a tuple or dims=)."""
    return ops.Transpose.apply(x, axes=shape_from_args(sizes, dims))


def swapaxes(x, axis0: int, axis1: int):
    """Exchange two axes (torch's transpose(dim0, dim1), NumPy's swapaxes)."""
    order = list(range(x.ndim))
    a, b = ops.normalize_axis(axis0, x.ndim), ops.normalize_axis(axis1, x.ndim)
    order[a], order[b] = order[b], order[a]
    return x.transpose(*order)


def t(x):
    """torch's t(): the transpose of a matrix (0-D and 1-D unchanged)."""
    if x.ndim > 2:
        raise ValueError(f"t() expects at most 2 dimensions, got shape {x.shape}; use permute or swapaxes")
    return x.transpose()


def expand(x, *sizes):
    """torch's expand: broadcast to `sizes`, where -1 keeps that dimension's size."""
    sizes = shape_from_args(sizes)
    offset = len(sizes) - x.ndim
    if offset < 0:
        raise ValueError(f"expand: {len(sizes)} sizes for a tensor of shape {x.shape}")
    shape = tuple(x.shape[i - offset] if n == -1 and i >= offset else n for i, n in enumerate(sizes))
    return x.broadcast_to(shape)


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    """Merge dimensions start_dim..end_dim (inclusive) into one, as torch.flatten."""
    if x.ndim == 0:
        return x.reshape(1)
    start, end = ops.normalize_axis(start_dim, x.ndim), ops.normalize_axis(end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return x.reshape(x.shape[:start] + (int(np.prod(x.shape[start : end + 1])),) + x.shape[end + 1 :])


@torch_keywords
def unflatten(x, dim: int, sizes):
    """Split dimension `dim` into `sizes` (one may be -1), as torch.unflatten."""
    dim = ops.normalize_axis(dim, x.ndim)
    return x.reshape(x.shape[:dim] + tuple(sizes) + x.shape[dim + 1 :])


@torch_keywords
def squeeze(x, axis=None):
    """Drop size-1 dimensions (all, or those named; a named dimension of another size stays, as torch)."""
    axes = ops.normalize_axes(axis, x.ndim)
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


@torch_keywords
def unsqueeze(x, dim: int):
    """A new size-1 dimension at position `dim` (-ndim-1 ≤ dim ≤ ndim)."""
    dim = ops.normalize_axis(dim, x.ndim + 1)
    return x.reshape(x.shape[:dim] + (1,) + x.shape[dim:])


def where(x, condition, other):
    """torch's x.where(condition, other): x where condition is True, else other."""
    return ops.where(condition, x, other)
