"""PyTorch's spellings: names and keywords that compute nothing new.

A PyTorch program says `x.view(2, 3)`, `x.permute(1, 0)`, `x.size(-1)`, `x.sum(dim=1, keepdim=True)`
and `x.max(dim=1)`; each of these is here, written with Tensor's own methods (minigrad/tensor.py
lists them among its methods). `torch_keywords` lets a method written with NumPy's keywords
(axis=, keepdims=, ddof=) also take torch's (dim=, keepdim=, correction=).
"""

from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from minigrad import ops

# torch's keyword -> NumPy's, as the methods are written, and NumPy's default
_TORCH_KEYWORDS = {"dim": ("axis", None), "keepdim": ("keepdims", False), "correction": ("ddof", 0)}


def torch_keywords(function):
    """`function`, written with NumPy's axis=/keepdims=/ddof=, also called with torch's dim=/keepdim=/correction=."""

    @functools.wraps(function)
    def with_torch_keywords(*args, **kwargs):
        for torch_name, (numpy_name, default) in _TORCH_KEYWORDS.items():
            value = kwargs.pop(torch_name, None)
            if value is None:
                continue
            given = kwargs.get(numpy_name, default)
            if given is not default and given != default:
                raise TypeError(f"got both {numpy_name}={kwargs[numpy_name]!r} and {torch_name}={value!r}; pass one")
            kwargs[numpy_name] = value
        return function(*args, **kwargs)

    return with_torch_keywords


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
        def reduction_or_torch_form(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
            if isinstance(axis, type(x)):
                return getattr(x, elementwise)(axis)
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


def amax(x, dim=None, keepdim: bool = False):
    """torch.amax: the largest elements along `dim` (ties share the gradient), as x.max(axis, keepdims)."""
    return x.max(dim, keepdim)


def amin(x, dim=None, keepdim: bool = False):
    """torch.amin: the smallest elements along `dim`, as x.min(axis, keepdims)."""
    return x.min(dim, keepdim)


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


def shape_from_args(shape: tuple) -> tuple:
    """Sizes given either way, f(2, 3) or f((2, 3)), as a tuple (torch's and NumPy's reshape take both)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def permute(x, *dims):
    """torch's permute: axis dims[i] becomes axis i (all axes named)."""
    return ops.Transpose.apply(x, axes=shape_from_args(dims))


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


def unflatten(x, dim: int, sizes):
    """Split dimension `dim` into `sizes` (one may be -1), as torch.unflatten."""
    dim = ops.normalize_axis(dim, x.ndim)
    return x.reshape(x.shape[:dim] + tuple(sizes) + x.shape[dim + 1 :])


@torch_keywords
def squeeze(x, axis=None):
    """Drop size-1 dimensions (all, or those named; a named dimension of another size stays, as torch)."""
    axes = ops.normalize_axes(axis, x.ndim)
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


def unsqueeze(x, dim: int):
    """A new size-1 dimension at position `dim` (-ndim-1 ≤ dim ≤ ndim)."""
    dim = ops.normalize_axis(dim, x.ndim + 1)
    return x.reshape(x.shape[:dim] + (1,) + x.shape[dim:])
