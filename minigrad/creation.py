"""Making tensors: zeros, ones, ranges, the identity and random samples, as NumPy and torch make them.

Each takes a shape as a tuple or as sizes (`mg.zeros((2, 3))` or `mg.zeros(2, 3)`), a dtype
(float32 unless said otherwise) and `requires_grad`. The random ones draw from
`mg.default_rng()` unless given a generator, so `mg.manual_seed(s)` makes a program repeat.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad.tensor import DEFAULT_FLOAT, Tensor, array_of
from minigrad.torch_spellings import shape_from_args

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator behind `randn`, dropout and the default parameter initialisation."""
    global _rng
    _rng = np.random.default_rng(seed)


def default_rng() -> np.random.Generator:
    """The generator every random op draws from when none is given (reset by `manual_seed`)."""
    return _rng


def zeros(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros; `shape` as a tuple, zeros((2, 3)), or as sizes, zeros(2, 3)."""
    return Tensor(np.zeros(shape_from_args(shape)), dtype=dtype, requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """A tensor of ones; `shape` as a tuple or as sizes."""
    return Tensor(np.ones(shape_from_args(shape)), dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `size` filled with `fill_value`: int64 for an int, bool for a bool, else float32 (as torch)."""
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    return Tensor(np.full(shape, fill_value), dtype=dtype or _number_dtype(fill_value), requires_grad=requires_grad)


def zeros_like(x, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(array_of(x).shape, 0, dtype=dtype or array_of(x).dtype, requires_grad=requires_grad)


def ones_like(x, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(array_of(x).shape, 1, dtype=dtype or array_of(x).dtype, requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(array_of(x).shape, fill_value, dtype=dtype or array_of(x).dtype, requires_grad=requires_grad)


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


def randn(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False, rng=None) -> Tensor:
    """Standard normal samples of `shape` (a tuple or sizes); `rng` makes them reproducible."""
    rng = default_rng() if rng is None else rng
    return Tensor(rng.standard_normal(shape_from_args(shape)), dtype=dtype, requires_grad=requires_grad)


def rand(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False, rng=None) -> Tensor:
    """Uniform samples from [0, 1) of `shape` (a tuple or sizes)."""
    rng = default_rng() if rng is None else rng
    return Tensor(rng.random(shape_from_args(shape)), dtype=dtype, requires_grad=requires_grad)


def randint(low, high=None, size=None, dtype=np.int64, rng=None) -> Tensor:
    """Integers from [low, high) of shape `size`, as torch.randint(low=0, high, size)."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high  # randint(high, size)
    if high is None or size is None:
        raise TypeError("randint needs high and size: randint(high, size) or randint(low, high, size)")
    rng = default_rng() if rng is None else rng
    return Tensor(rng.integers(low, high, tuple(size)), dtype=dtype)
