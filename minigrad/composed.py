"""Tensor methods composed of the primitives: no derivative of their own, the chain rule does it.

Each function here takes the tensor as its first argument and is one of Tensor's methods
(minigrad/tensor.py lists them): `x.mean(axis)` is a sum times a number, `x.clamp(lo, hi)` two
`where`s, `x.split(n)` slices. Their gradients come from the primitives they call, so they
are right as soon as those are. `stack`, `einsum` and `tensordot` join several tensors.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad import ops
from minigrad.tensor import Tensor, array_of, as_tensors, concatenate, where
from minigrad.torch_spellings import shape_from_args, torch_keywords

# ---------------------------------------------------------------- reductions


@torch_keywords
def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """The sum over the axes divided by their size; NaN over an empty axis, as NumPy and torch."""
    count = _count(x.shape, axis)
    return x.sum(axis=axis, keepdims=keepdims) * (1.0 / count if count else math.nan)


@torch_keywords
def var(x: Tensor, axis=None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """Population variance (ddof=0) by default, as NumPy; ddof=1 (or correction=1) the sample variance.

    The divisor is max(n − ddof, 0), as torch's: a variance with no degrees of freedom
    left is inf (or NaN), never negative.
    """
    centered = x - x.mean(axis=axis, keepdims=True)
    count = _count(x.shape, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (centered * centered).sum(axis=axis, keepdims=keepdims) / max(count - ddof, 0)


@torch_keywords
def std(x: Tensor, axis=None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """sqrt(var): the population standard deviation unless ddof (or correction) says otherwise.

    Where the std is 0 its gradient is 0, as torch's: sqrt's slope there is infinite, and
    infinity times var's zero gradient would be NaN.
    """
    variance = x.var(axis, ddof, keepdims)
    flat = variance.data == 0
    return where(flat, 0.0, where(flat, 1.0, variance).sqrt())


@torch_keywords
def prod(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """The product over the axes: the last entry of a cumprod, so zeros get exact gradients."""
    axes = ops.reduced_axes(axis, x.ndim)
    kept = [a for a in range(x.ndim) if a not in axes]
    lanes = x.transpose(*kept, *axes).reshape(*[x.shape[a] for a in kept], _count(x.shape, axis))
    if lanes.shape[-1] == 0:
        out = lanes.sum(axis=-1) * 0 + 1  # the empty product
    else:
        out = lanes.cumprod(axis=-1)[..., -1]
    return out.reshape(_reduced_shape(x.shape, axes, keepdims))


@torch_keywords
def logsumexp(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log Σ exp(x) over the axes: the log of softmax's denominator, shifted as softmax shifts.
    Integers and bools are summed as float32, as torch's."""
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    axes = ops.reduced_axes(axis, x.ndim)
    # a constant: the shift cancels out of the value and the gradient; +inf is not shifted by, so a lane
    # holding it sums to +inf, as torch's
    peak = ops.max_shift(x.data, axes)
    peak = np.where(peak == np.inf, 0.0, peak)
    with np.errstate(divide="ignore"):
        out = (x - peak).exp().sum(axis=axes, keepdims=True).log() + peak
    return out.reshape(_reduced_shape(x.shape, axes, keepdims))


@torch_keywords
def argmax(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the largest element along `axis` (of the flattened tensor when None), int64."""
    return _arg_reduce(np.argmax, x.data, axis, keepdims)


@torch_keywords
def argmin(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _arg_reduce(np.argmin, x.data, axis, keepdims)


# all and any reduce nothing over an empty dim list, as torch's (its sum and mean reduce everything)
@torch_keywords
def all(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return Tensor._from_array(np.asarray(np.all(x.data, axis=ops.normalize_axes(axis, x.ndim), keepdims=keepdims)))


@torch_keywords
def any(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return Tensor._from_array(np.asarray(np.any(x.data, axis=ops.normalize_axes(axis, x.ndim), keepdims=keepdims)))


def _count(shape: tuple, axis) -> int:
    axes = ops.reduced_axes(axis, len(shape))
    return int(np.prod([shape[a] for a in axes])) if axes else 1


def _reduced_shape(shape: tuple, axes: tuple, keepdims: bool) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape) if keepdims or i not in axes)


def _arg_reduce(reduce, data: np.ndarray, axis, keepdims: bool) -> Tensor:
    if axis is None:
        out = reduce(data.reshape(-1))
        return Tensor._from_array(np.asarray(out, dtype=np.int64).reshape((1,) * data.ndim if keepdims else ()))
    axis = ops.normalize_axis(axis, data.ndim)
    if data.ndim == 0:
        return Tensor._from_array(np.zeros((), dtype=np.int64))
    return Tensor._from_array(np.asarray(reduce(data, axis=axis, keepdims=keepdims), dtype=np.int64))


# ---------------------------------------------------------------- elementwise


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    """Values below `min` become `min`, above `max` become `max` (numbers or tensors).

    As torch.clamp: the gradient passes where min ≤ x ≤ max, and to `min`/`max` where they
    were taken; with min > max every element is `max`.
    """
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both (torch.clamp refuses neither)")
    if x.dtype.kind == "f" and np.isnan(x.data).any():  # NaN stays NaN, with no gradient, as torch's
        x = where(np.isnan(x.data), x.detach(), x)
    out = x
    if min is not None:
        out = where(x < min, min, out)
    if max is not None:
        out = where(out > max, max, out)
    return out


clip = clamp


def square(x: Tensor) -> Tensor:
    return x * x


def rsqrt(x: Tensor) -> Tensor:
    return 1 / x.sqrt()


def log2(x: Tensor) -> Tensor:
    return x.log() * (1 / math.log(2))


def exp2(x: Tensor) -> Tensor:
    return 2.0**x


def isclose(x: Tensor, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """|x − other| ≤ atol + rtol · |other|, elementwise, as a boolean tensor (torch.isclose)."""
    return Tensor._from_array(np.asarray(np.isclose(x.data, array_of(other), rtol, atol, equal_nan)))


# ---------------------------------------------------------------- logic on masks
# Boolean (or integer) tensors, outside the graph: ~mask, mask & other, mask | other, mask ^ other.


def __invert__(x: Tensor) -> Tensor:
    return Tensor._from_array(np.asarray(~_logical(x)))


def __and__(x: Tensor, other) -> Tensor:
    return Tensor._from_array(np.asarray(_logical(x) & _logical(other, x)))


def __or__(x: Tensor, other) -> Tensor:
    return Tensor._from_array(np.asarray(_logical(x) | _logical(other, x)))


def __xor__(x: Tensor, other) -> Tensor:
    return Tensor._from_array(np.asarray(_logical(x) ^ _logical(other, x)))


__rand__, __ror__, __rxor__ = __and__, __or__, __xor__


def _logical(x, like: Tensor | None = None) -> np.ndarray:
    if like is not None and like.dtype.kind in "iu" and isinstance(x, int) and not isinstance(x, bool):
        # A Python int takes the integer tensor's dtype, wrapping as torch does: int32 | 0xFFFFFFFF
        # is int32 -1, uint8 & 0x0F stays uint8 (np.asarray would make it int64 first).
        return np.asarray(x).astype(like.dtype)
    array = array_of(x)
    if array.dtype.kind not in "biu":
        raise TypeError(f"logical operators need boolean or integer tensors, not {array.dtype}")
    return array


# ---------------------------------------------------------------- movement: slices and gathers


@torch_keywords
def flip(x: Tensor, *sizes, dims=None) -> Tensor:
    """Reverse the order along dims, named as flip(0, 1), flip((0, 1)) or flip(dims=...); every
    axis when none is named (NumPy)."""
    axes = ops.normalize_axes(shape_from_args(sizes, dims) if sizes or dims is not None else None, x.ndim)
    return x[tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(x.ndim))]


@torch_keywords
def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """Shift elements along `dims` with wrap-around; with dims None, along the flattened tensor."""
    if dims is None:
        return x.reshape(-1).roll(shifts, 0).reshape(x.shape)
    shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    out = x
    for shift, dim in zip(shifts, dims):
        dim = ops.normalize_axis(dim, x.ndim)
        n = x.shape[dim]
        if n:
            out = out[(slice(None),) * dim + ((np.arange(n) - shift) % n,)]
    return out


def repeat(x: Tensor, *sizes) -> Tensor:
    """torch's repeat (NumPy's tile): the whole tensor repeated sizes[i] times along axis i."""
    sizes = shape_from_args(sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} sizes for a tensor with {x.ndim} dimensions; give at least {x.ndim}")
    shape = (1,) * (len(sizes) - x.ndim) + x.shape
    # copies side by side: (r0, s0, r1, s1, ...) merged pairwise into (r0·s0, r1·s1, ...)
    interleaved = x.reshape(tuple(n for s in shape for n in (1, s)))
    stretched = interleaved.broadcast_to(tuple(n for r, s in zip(sizes, shape) for n in (r, s)))
    return stretched.reshape(tuple(r * s for r, s in zip(sizes, shape)))


def tile(x: Tensor, *sizes, dims=None) -> Tensor:
    """torch.tile / np.tile: repeat, with missing leading counts taken as 1."""
    dims = shape_from_args(sizes, dims)
    return x.repeat((1,) * (x.ndim - len(dims)) + dims)


@torch_keywords
def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces along `dim`: of size `split_size_or_sections` (the last may be smaller), or of the listed sizes."""
    dim = ops.normalize_axis(dim, x.ndim)
    n = x.shape[dim]
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: the size of a piece must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - start) for start in range(0, n, split_size_or_sections)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but dimension {dim} has size {n}")
    starts = np.cumsum([0] + sizes)
    return tuple(x[(slice(None),) * dim + (slice(a, b),)] for a, b in zip(starts[:-1], starts[1:]))


@torch_keywords
def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    """At most `chunks` pieces of equal size along `dim` (the last may be smaller), as torch.chunk."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[ops.normalize_axis(dim, x.ndim)]
    if n == 0:  # torch: `chunks` empty pieces
        return x.split([0] * chunks, dim)
    return x.split(-(-n // chunks), dim)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dimensions (j ≤ i + diagonal), zeros elsewhere."""
    return where(_triangle(x.shape, diagonal, "tril"), x, _zero(x))


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dimensions (j ≥ i + diagonal), zeros elsewhere."""
    return where(~_triangle(x.shape, diagonal - 1, "triu"), x, _zero(x))


def _zero(x: Tensor) -> Tensor:
    """A 0 of x's dtype: the Python number 0 would turn a bool tensor into int64."""
    return Tensor(np.zeros((), dtype=x.dtype))


def _triangle(shape: tuple, diagonal: int, name: str) -> np.ndarray:
    """True on and below diagonal `diagonal` of the last two dimensions."""
    if len(shape) < 2:
        raise ValueError(f"{name} expects at least 2 dimensions, got shape {shape}")
    return np.tri(shape[-2], shape[-1], diagonal, dtype=bool)


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """torch.diag: a 1-D tensor's diagonal matrix, or a matrix's diagonal as a 1-D tensor."""
    k = diagonal
    if x.ndim == 1:
        n = x.shape[0]
        size = n + abs(k)
        slots = np.full((size, size), n)  # slot n is the zero appended below
        rows = np.arange(n) + max(-k, 0)
        slots[rows, rows + k] = np.arange(n)
        return concatenate([x, Tensor(np.zeros(1), dtype=x.dtype)])[slots]
    if x.ndim == 2:
        rows = np.arange(max(0, min(x.shape[0] + min(k, 0), x.shape[1] - max(k, 0))))
        return x[rows + max(-k, 0), rows + max(k, 0)]
    raise ValueError(f"diag expects a 1-D or 2-D tensor, got shape {x.shape}")


def trace(x: Tensor) -> Tensor:
    """The sum of a matrix's diagonal."""
    if x.ndim != 2:
        raise ValueError(f"trace expects a 2-D tensor, got shape {x.shape}")
    return x.diag().sum()


# ---------------------------------------------------------------- functions of several tensors


@torch_keywords
def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis (a reshape, then a concatenate)."""
    tensors = as_tensors(list(tensors))
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    axis = ops.normalize_axis(axis, tensors[0].ndim + 1)
    expanded = [t.reshape(t.shape[:axis] + (1,) + t.shape[axis:]) for t in tensors]
    return concatenate(expanded, axis=axis)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, as np.einsum and torch.einsum: "ij,jk->ik" is a matrix product.

    Letters name axes; a letter missing from the output is summed over; "..." stands for the
    broadcast leading axes. The operands may also come as one list.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    tensors = as_tensors(list(operands))
    subscripts, output = _explicit_einsum(equation, [t.shape for t in tensors])
    return ops.Einsum.apply(*tensors, subscripts=subscripts, output=output)


def _explicit_einsum(equation: str, shapes: list) -> tuple[list, str]:
    """An equation's subscripts per operand and for the output, with "..." spelled out in letters."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: {equation!r} names {len(terms)} operands, but {len(shapes)} were given")
    free = iter(c for c in _LETTERS if c not in equation)
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
    a, b = as_tensors([a, b])
    if isinstance(dims, (int, np.integer)):
        a_axes, b_axes = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        a_axes, b_axes = ([d] if isinstance(d, (int, np.integer)) else list(d) for d in dims)
    a_axes = [ops.normalize_axis(d, a.ndim) for d in a_axes]
    b_axes = [ops.normalize_axis(d, b.ndim) for d in b_axes]
    letters = iter(_LETTERS)
    a_sub = [next(letters) for _ in range(a.ndim)]
    b_sub = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(a_axes, b_axes):
        b_sub[j] = a_sub[i]
    out = [c for i, c in enumerate(a_sub) if i not in a_axes] + [c for j, c in enumerate(b_sub) if j not in b_axes]
    return einsum(f"{''.join(a_sub)},{''.join(b_sub)}->{''.join(out)}", a, b)
