"""More of torch's vocabulary: gather, running maxima, scatters, selections, std_mean, logcumsumexp.

None of these needs a new derivative. Each finds its indices with NumPy (which element wins,
where each source lands) and then moves values with the primitives of minigrad/ops.py —
`gather`, `scatter_add`, indexing, `where` — so the gradient follows by the chain rule and
goes exactly where torch sends it. They are Tensor methods with torch's names and arguments
(`x.cummax(dim)`, `x.scatter_reduce(dim, index, src, "amax")`, ...), listed in minigrad/tensor.py.
"""

from __future__ import annotations

import numpy as np

from minigrad import ops
from minigrad.tensor import Tensor, array_of, as_operand, concatenate, where
from minigrad.torch_spellings import ValuesIndices, torch_keywords

# ---------------------------------------------------------------- gather and scatter_add


@torch_keywords
def gather(self, dim: int, index):
    """out[p] = self[p with p[dim] = index[p]], as torch.gather; index has self's number of
    dimensions and may be smaller than self along every one but `dim`."""
    dim = ops.normalize_axis(dim, self.ndim)
    if self.ndim == 0:  # torch reads a 0-d tensor as one of shape (1,), and a 0-d or (1,) index
        return self.reshape(1).gather(0, array_of(index).reshape(-1)).reshape(np.shape(array_of(index)))
    return ops.Gather.apply(self, _gather_index(index, self.shape, dim, "gather"), axis=dim)


@torch_keywords
def scatter_add(self, dim: int, index, src):
    """A copy of self with src[p] added at (p with p[dim] = index[p]), as torch.scatter_add."""
    dim = ops.normalize_axis(dim, self.ndim)
    index = _gather_index(index, self.shape, dim, "scatter_add")
    src = as_operand(src, self)
    if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
        raise ValueError(f"scatter_add: index of shape {index.shape} does not fit src of shape {src.shape}")
    src = src[tuple(slice(0, n) for n in index.shape)]  # torch reads only the part index covers
    return ops.ScatterAdd.apply(self, index, src, axis=dim)


def _gather_index(index, shape: tuple, dim: int, name: str) -> np.ndarray:
    """An index for gather/scatter_add, checked as torch checks it (no wrap-around of negatives)."""
    index = array_of(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must hold integers, not {index.dtype}")
    if index.ndim != len(shape):
        raise ValueError(f"{name}: index has {index.ndim} dimensions, the tensor of shape {shape} has {len(shape)}")
    if any(i > n for d, (i, n) in enumerate(zip(index.shape, shape)) if d != dim):
        raise ValueError(f"{name}: index of shape {index.shape} is larger than the tensor's {shape} outside dim {dim}")
    if index.size and (index.min() < 0 or index.max() >= shape[dim]):
        raise IndexError(f"{name}: index values must lie in [0, {shape[dim]}), got {index.min()}..{index.max()}")
    return index


# ---------------------------------------------------------------- running maxima and minima


def _running_extreme(x: Tensor, dim: int, better) -> ValuesIndices:
    """(values, indices) of the best element so far along dim; a tie moves the index on, as torch."""
    dim = ops.normalize_axis(dim, x.ndim)
    if x.ndim == 0 or x.shape[dim] == 0:  # nothing to run along
        return ValuesIndices(x * 1, Tensor(np.zeros(x.shape, dtype=np.int64)))
    data = np.moveaxis(x.data, dim, -1)  # (..., n)
    indices = np.zeros(data.shape, dtype=np.int64)
    best = data[..., 0]
    for k in range(1, data.shape[-1]):  # one step per position: a loop over n, vectorised over the rest
        takes_over = better(data[..., k], best) | np.isnan(data[..., k])  # a NaN, once met, stays the extreme
        takes_over &= ~np.isnan(best)
        indices[..., k] = np.where(takes_over, k, indices[..., k - 1])
        best = np.where(takes_over, data[..., k], best)
    indices = np.moveaxis(indices, -1, dim)
    return ValuesIndices(x.gather(dim, indices), Tensor(indices))  # the gradient goes to the element picked


@torch_keywords
def cummax(self: Tensor, dim: int) -> ValuesIndices:
    """(values, indices): the largest element so far along dim and where it is, as torch.cummax.

    Among equal maxima the later one is named (torch's choice); the gradient of each value goes
    to the element its index names.
    """
    return _running_extreme(self, dim, np.greater_equal)


@torch_keywords
def cummin(self: Tensor, dim: int) -> ValuesIndices:
    """(values, indices): the smallest element so far along dim and where it is, as torch.cummin."""
    return _running_extreme(self, dim, np.less_equal)


@torch_keywords
def logcumsumexp(self: Tensor, dim: int) -> Tensor:
    """log Σ_{j≤k} exp(x_j) along dim, as torch.logcumsumexp.

    Each output is a logsumexp over its prefix: the lane is laid out as an n × n matrix whose
    row k holds x_0..x_k and −∞ after, and logsumexp (shifted by each row's max) reads the rows.
    Exact and stable however far apart the values are; the matrix costs n² memory per lane.
    """
    if self.ndim == 0:
        return self * 1
    dim = ops.normalize_axis(dim, self.ndim)
    lanes = self.swapaxes(dim, -1)  # (..., n)
    n = lanes.shape[-1]
    later = np.triu(np.ones((n, n), dtype=bool), k=1)  # later[k, j]: j > k, outside prefix k
    prefixes = lanes.unsqueeze(-2).broadcast_to(lanes.shape[:-1] + (n, n)).masked_fill(later, -np.inf)  # (..., n, n)
    return prefixes.logsumexp(dim=-1).swapaxes(dim, -1)


# ---------------------------------------------------------------- statistics


@torch_keywords
def std_mean(self: Tensor, dim=None, correction: int = 1, keepdim: bool = False) -> tuple[Tensor, Tensor]:
    """(standard deviation, mean) over dim, as torch.std_mean: the sample deviation (correction=1)
    unless correction says otherwise (x.std's default is NumPy's ddof=0; this name is torch's)."""
    return self.std(dim=dim, correction=correction, keepdim=keepdim), self.mean(dim=dim, keepdim=keepdim)


@torch_keywords
def var_mean(self: Tensor, dim=None, correction: int = 1, keepdim: bool = False) -> tuple[Tensor, Tensor]:
    """(variance, mean) over dim, as torch.var_mean (the sample variance unless correction says otherwise)."""
    return self.var(dim=dim, correction=correction, keepdim=keepdim), self.mean(dim=dim, keepdim=keepdim)


# ---------------------------------------------------------------- selections


@torch_keywords
def repeat_interleave(self: Tensor, repeats, dim: int | None = None) -> Tensor:
    """Each element (or slice along dim) repeated in place, as torch.repeat_interleave:
    [a, b].repeat_interleave(2) = [a, a, b, b]. repeats: an int or one count per slice; with
    dim None the tensor is flattened first. An indexing, so copies' gradients add up."""
    x = self.reshape(-1) if dim is None else self
    dim = 0 if dim is None else ops.normalize_axis(dim, x.ndim)
    counts = np.broadcast_to(array_of(repeats), (x.shape[dim],))
    if counts.dtype.kind not in "iu" or (counts < 0).any():
        raise ValueError(f"repeat_interleave: repeats must be non-negative integers, got {repeats!r}")
    return x[(slice(None),) * dim + (np.repeat(np.arange(x.shape[dim]), counts),)]


def masked_select(self: Tensor, mask) -> Tensor:
    """The elements where mask (boolean, broadcast with self) is True, in order, as a 1-D tensor."""
    mask = array_of(mask)
    if mask.dtype != bool:
        raise TypeError(f"masked_select: the mask must be boolean, not {mask.dtype}")
    shape = np.broadcast_shapes(self.shape, mask.shape)
    return self.broadcast_to(shape)[np.broadcast_to(mask, shape)]


def nonzero(self: Tensor, *, as_tuple: bool = False):
    """int64 indices of the nonzero elements, as torch.nonzero: (count, ndim), or a tuple of ndim (count,)."""
    found = np.nonzero(self.data) if self.ndim else np.nonzero(self.data.reshape(1))
    if as_tuple:
        return tuple(Tensor(i.astype(np.int64)) for i in found)
    return Tensor(np.stack(found, axis=-1).astype(np.int64).reshape(-1, self.ndim))


# ---------------------------------------------------------------- scatters


def _scatter_targets(self: Tensor, dim: int, index, src) -> tuple[int, np.ndarray, Tensor]:
    """dim, index and src checked as torch checks them; src cut to index's shape and made a Tensor."""
    dim = ops.normalize_axis(dim, self.ndim)
    index = array_of(index)
    if index.dtype.kind not in "iu" or index.ndim != self.ndim:
        raise ValueError(
            f"scatter: index must be integers with {self.ndim} dimensions, got {index.dtype} {index.shape}"
        )
    if index.size and (index.min() < 0 or index.max() >= self.shape[dim]):
        raise IndexError(f"scatter: index values must lie in [0, {self.shape[dim]}), got {index.min()}..{index.max()}")
    if not isinstance(src, Tensor) and np.ndim(src) == 0:  # torch's scatter(dim, index, value)
        src = Tensor(np.full(index.shape, src, dtype=self.dtype))
    src = src if isinstance(src, Tensor) else Tensor(src, dtype=self.dtype)
    if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
        raise ValueError(f"scatter: index of shape {index.shape} does not fit src of shape {src.shape}")
    return dim, index, src[tuple(slice(0, n) for n in index.shape)]


def _flat_targets(shape: tuple, index: np.ndarray, dim: int) -> np.ndarray:
    """For each entry of src (index's shape), the flat position in a tensor of `shape` it lands on."""
    return np.ravel_multi_index(np.broadcast_arrays(*ops.gather_positions(index, dim)), shape)


@torch_keywords
def scatter(self: Tensor, dim: int, index, src) -> Tensor:
    """A copy of self with src[p] written at p with p[dim] = index[p], as torch.scatter (src may be a number).

    Where several entries land on one place, the last one (in src's order) stays, as a NumPy
    assignment; torch leaves that case unspecified. The gradient reaches what stays: the
    entries written and the elements of self not overwritten.
    """
    dim, index, src = _scatter_targets(self, dim, index, src)
    targets = _flat_targets(self.shape, index, dim).reshape(-1)
    last = np.zeros(targets.shape, dtype=bool)
    last[len(targets) - 1 - np.unique(targets[::-1], return_index=True)[1]] = True  # the last write to each place
    written = np.zeros(self.size, dtype=bool)
    written[targets] = True
    kept = where(last.reshape(index.shape), src, 0.0)  # overwritten writes drop out
    placed = ops.ScatterAdd.apply(Tensor(np.zeros(self.shape, dtype=self.dtype)), index, kept, axis=dim)
    return where(written.reshape(self.shape), placed, self)


REDUCTIONS = {"sum": 0.0, "prod": 1.0, "mean": 0.0, "amax": -np.inf, "amin": np.inf}  # each one's neutral element


@torch_keywords
def scatter_reduce(self: Tensor, dim: int, index, src, reduce: str, *, include_self: bool = True) -> Tensor:
    """self with the src entries landing on each place reduced into it, as torch.scatter_reduce.

    reduce "sum", "prod", "mean", "amax" or "amin"; include_self=False leaves self's own value
    out where something lands. Written as: lay the contributions to each place out as a row
    (self's value first when included, then each entry landing there, padded with the
    reduction's neutral element), then reduce every row with the ordinary sum, prod, mean or
    max, so each gradient is that reduction's (ties of amax/amin share it equally, as torch).
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"scatter_reduce: reduce must be one of {sorted(REDUCTIONS)}, got {reduce!r}")
    dim, index, src = _scatter_targets(self, dim, index, src)
    targets = _flat_targets(self.shape, index, dim).reshape(-1)  # (S,) where each src entry lands
    order = np.argsort(targets, kind="stable")
    arrivals = np.bincount(targets, minlength=self.size)  # (size,) how many land on each place
    first = np.cumsum(arrivals) - arrivals  # where each place's run starts in the sorted order
    column = np.empty_like(targets)
    column[order] = np.arange(len(targets)) - first[targets[order]]  # the k-th arrival at its place
    width = int(arrivals.max(initial=0))
    rows = ops.ScatterAdd.apply(
        Tensor(np.zeros((self.size * width,), dtype=self.dtype)), targets * width + column, src.reshape(-1), axis=0
    ).reshape(self.size, width)  # (size, width): row t holds what lands on place t
    padding = np.arange(width)[None, :] >= arrivals[:, None]  # (size, width) the empty cells
    rows = where(padding, REDUCTIONS[reduce], rows)
    if include_self:
        rows = concatenate([self.reshape(-1, 1), rows], axis=1)  # (size, 1 + width)
    reduced = _reduce_rows(rows, reduce, arrivals + include_self)
    return where((arrivals > 0).reshape(self.shape), reduced.reshape(self.shape), self)


def _reduce_rows(rows: Tensor, reduce: str, counts: np.ndarray) -> Tensor:
    if rows.shape[1] == 0:  # nothing lands anywhere and self is left out
        return Tensor(np.zeros(rows.shape[0], dtype=rows.dtype))
    if reduce == "amax":
        return rows.max(axis=1)
    if reduce == "amin":
        return rows.min(axis=1)
    if reduce == "prod":
        return rows.prod(dim=1)
    total = rows.sum(axis=1)
    return total if reduce == "sum" else total / np.maximum(counts, 1).astype(rows.dtype)
