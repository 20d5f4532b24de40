"""`Tensor`: a NumPy array that remembers how it was made, so that gradients can flow back.

Every operator and method here is a thin call to a primitive `Function` in `minigrad.ops`
(or a composition of them); the calculus lives there, beside each forward.
"""

from __future__ import annotations

import numbers

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
    def size(self) -> int:
        return self.data.size

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

    # Comparisons give boolean tensors outside the graph (useful as masks).
    def __lt__(self, other):
        return Tensor._wrap(self.data < _constant(other))

    def __le__(self, other):
        return Tensor._wrap(self.data <= _constant(other))

    def __gt__(self, other):
        return Tensor._wrap(self.data > _constant(other))

    def __ge__(self, other):
        return Tensor._wrap(self.data >= _constant(other))

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

    def maximum(self, other):
        return ops.Maximum.apply(self, _operand(other, self))

    # ------------------------------------------------------------ reductions

    def sum(self, axis=None, keepdims: bool = False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        count = _count(self.shape, axis)
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def var(self, axis=None, ddof: int = 0, keepdims: bool = False):
        """Population variance (ddof=0) by default, as NumPy; ddof=1 gives the sample variance."""
        centered = self - self.mean(axis=axis, keepdims=True)
        count = _count(self.shape, axis)
        # n - ddof = 0 (one element, ddof=1) gives NaN, as NumPy and PyTorch, not ZeroDivisionError
        return (centered * centered).sum(axis=axis, keepdims=keepdims) / (count - ddof)

    def max(self, axis=None, keepdims: bool = False):
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False):
        return ops.Min.apply(self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1):
        return ops.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1):
        return ops.LogSoftmax.apply(self, axis=axis)

    # ------------------------------------------------------------ shape and movement

    def reshape(self, *shape):
        return ops.Reshape.apply(self, shape=_sizes(shape))

    def transpose(self, *axes):
        """Permute axes as NumPy's transpose; no axes reverses them."""
        return ops.Transpose.apply(self, axes=_sizes(axes) or None)

    @property
    def T(self):
        return self.transpose()

    def broadcast_to(self, *shape):
        return ops.BroadcastTo.apply(self, shape=_sizes(shape))

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_index(index))

    def masked_fill(self, mask, value: float):
        """A copy with `value` wherever `mask` (broadcastable, True = fill) is True."""
        return ops.Where.apply(_constant(mask), value, self)


def _count(shape: tuple, axis) -> int:
    axes = ops.normalize_axes(axis, len(shape))
    return int(np.prod([shape[a] for a in axes])) if axes else 1


def _index(index):
    """Turn Tensor and list indices into arrays; reject index types NumPy would misread."""
    items = index if isinstance(index, tuple) else (index,)
    converted = []
    for item in items:
        if isinstance(item, Tensor):
            item = item.data
        elif isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, np.ndarray):
            if item.dtype.kind not in "biu":
                raise TypeError(f"tensor index arrays must hold integers or bools, not {item.dtype}")
        elif not (isinstance(item, (int, np.integer, slice)) or item is None or item is Ellipsis):
            raise TypeError(
                f"unsupported index type {type(item).__name__}: use ints, slices, None, ..., or integer/boolean arrays"
            )
        converted.append(item)
    return tuple(converted) if isinstance(index, tuple) else converted[0]


# ---------------------------------------------------------------- module-level constructors


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other dimensions must agree."""
    return ops.Concatenate.apply(*[_operand(t) for t in tensors], axis=axis)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis (a reshape, then a concatenate)."""
    tensors = [_operand(t) for t in tensors]
    ndim = tensors[0].ndim + 1
    axis = axis % ndim
    expanded = [t.reshape(t.shape[:axis] + (1,) + t.shape[axis:]) for t in tensors]
    return concatenate(expanded, axis=axis)


def where(condition, a, b) -> Tensor:
    """Elementwise `a` where `condition` is True, else `b` (either may be a number)."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    return ops.Where.apply(_constant(condition), _operand(a, like), _operand(b, like))


def zeros(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros; `shape` as a tuple, zeros((2, 3)), or as sizes, zeros(2, 3)."""
    return Tensor(np.zeros(_sizes(shape)), dtype=dtype, requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """A tensor of ones; `shape` as a tuple or as sizes."""
    return Tensor(np.ones(_sizes(shape)), dtype=dtype, requires_grad=requires_grad)


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
