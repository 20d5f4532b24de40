"""`Tensor`: a NumPy array that remembers how it was made, so that gradients can flow back.

Every operator and method here is a thin call to a primitive `Function` in `minigrad.ops`;
the calculus lives there, beside each forward. The methods composed of these (`mean`, `var`,
`clamp`, `split`, ...) are in minigrad/composed.py, and PyTorch's spellings of them (`view`,
`permute`, `dim=`, ...) in minigrad/torch_spellings.py; the end of this file lists them all.
"""

from __future__ import annotations

import numbers

import numpy as np

from minigrad import autograd, ops
from minigrad.torch_spellings import max_or_torch_form, shape_from_args, torch_keywords

DEFAULT_FLOAT = np.float32


def _stored_array(data, dtype=None) -> np.ndarray:
    """What a new Tensor holds: a copy, and floating data as float32 unless `dtype` says otherwise."""
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


def as_operand(x, like: Tensor | None = None):
    """The other operand of an op: Python numbers stay weakly typed (float32 stays float32);
    arrays become tensors.

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


def as_tensors(items) -> list:
    """Tensors, with floating arrays and numbers among them taking the first floating tensor's
    dtype, as `tensor + ndarray` does (float32 by the dtype policy when there is none)."""
    like = next((t for t in items if isinstance(t, Tensor) and t.dtype.kind == "f"), None)
    return [t if isinstance(t, Tensor) else as_operand(np.asarray(t), like) for t in items]


def array_of(x) -> np.ndarray:
    """A non-differentiable argument (a mask, token ids, a condition) as a plain array."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


class Tensor:
    """An n-dimensional array with automatic differentiation.

    Tensor(data, requires_grad=False, dtype=None): `data` is copied; floating data is stored
    as float32 unless `dtype` is given. After `loss.backward()`, every tensor that had
    `requires_grad=True` and took part in computing `loss` holds d(loss)/d(tensor) in `.grad`.
    """

    # data: the values; grad: d(loss)/d(self) after backward; _ctx: the Function that made it
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "name", "__weakref__")
    # Make `ndarray + Tensor` call Tensor.__radd__ instead of NumPy broadcasting over objects.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        self.data = _stored_array(data, dtype)
        self.grad = None
        self._ctx = None
        self.name = name
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_array(cls, data: np.ndarray, ctx=None) -> Tensor:
        """A tensor holding `data` itself (no copy, no dtype policy): an op's output, made by `ctx`."""
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

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, not shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._from_array(self.data)

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
        autograd.backward(self, grad, retain_graph=retain_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------ arithmetic

    def __add__(self, other):
        return ops.Add.apply(self, as_operand(other, self))

    def __radd__(self, other):
        return ops.Add.apply(as_operand(other, self), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, as_operand(other, self))

    def __rsub__(self, other):
        return ops.Sub.apply(as_operand(other, self), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, as_operand(other, self))

    def __rmul__(self, other):
        return ops.Mul.apply(as_operand(other, self), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, as_operand(other, self))

    def __rtruediv__(self, other):
        return ops.Div.apply(as_operand(other, self), self)

    def __pow__(self, other):
        return ops.Pow.apply(self, as_operand(other, self))

    def __rpow__(self, other):
        return ops.Pow.apply(as_operand(other, self), self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, as_operand(other, self))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(as_operand(other, self), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.Abs.apply(self)

    def __mod__(self, other):
        return ops.Remainder.apply(self, as_operand(other, self))

    def __rmod__(self, other):
        return ops.Remainder.apply(as_operand(other, self), self)

    def __floordiv__(self, other):
        return ops.Rounding.apply(self, as_operand(other, self), function=ops.floor_divide)

    def __rfloordiv__(self, other):
        return ops.Rounding.apply(as_operand(other, self), self, function=ops.floor_divide)

    # Comparisons give boolean tensors outside the graph (useful as masks), `==` and `!=` too.
    # A tensor still hashes by identity, so it can be a dict key or a set member; but
    # `tensor in a_list` compares elementwise, so code that looks for a tensor in a list
    # compares ids instead.
    __hash__ = object.__hash__

    def __eq__(self, other):
        return Tensor._from_array(np.asarray(self.data == array_of(other)))

    def __ne__(self, other):
        return Tensor._from_array(np.asarray(self.data != array_of(other)))

    def __lt__(self, other):
        return Tensor._from_array(np.asarray(self.data < array_of(other)))

    def __le__(self, other):
        return Tensor._from_array(np.asarray(self.data <= array_of(other)))

    def __gt__(self, other):
        return Tensor._from_array(np.asarray(self.data > array_of(other)))

    def __ge__(self, other):
        return Tensor._from_array(np.asarray(self.data >= array_of(other)))

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
        return ops.Maximum.apply(self, as_operand(other, self))

    def minimum(self, other):
        return ops.Minimum.apply(self, as_operand(other, self))

    # Flat between jumps: these have a zero gradient wherever they have one (ops.Rounding).
    def sign(self):
        return ops.Rounding.apply(self, function=ops.sign)

    def floor(self):
        return ops.Rounding.apply(self, function=np.floor)

    def ceil(self):
        return ops.Rounding.apply(self, function=np.ceil)

    def round(self, decimals: int = 0):
        """Round half to even, as torch.round and np.round."""
        return ops.Rounding.apply(self, function=lambda a: np.round(a, decimals))

    def trunc(self):
        return ops.Rounding.apply(self, function=np.trunc)

    def astype(self, dtype):
        """A copy in another dtype; the gradient flows back, converted to this tensor's dtype."""
        return ops.Cast.apply(self, np.empty(0, dtype=dtype))

    # ------------------------------------------------------------ reductions and scans

    @torch_keywords
    def sum(self, axis=None, keepdims: bool = False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    @max_or_torch_form("maximum", "argmax")
    def max(self, axis=None, keepdims: bool = False):
        """The largest elements along `axis` (ties share the gradient, as torch.amax)."""
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    @max_or_torch_form("minimum", "argmin")
    def min(self, axis=None, keepdims: bool = False):
        """The smallest elements along `axis` (ties share the gradient, as torch.amin)."""
        return ops.Min.apply(self, axis=axis, keepdims=keepdims)

    @torch_keywords
    def cumsum(self, axis=None):
        """Running sums along `axis` (over the flattened tensor when None, as NumPy)."""
        return _scan(ops.Cumsum, self, axis)

    @torch_keywords
    def cumprod(self, axis=None):
        """Running products along `axis`; exact gradients with zeros in the input."""
        return _scan(ops.Cumprod, self, axis)

    @torch_keywords
    def softmax(self, axis: int = -1):
        """e^x / Σ e^x along `axis`."""
        return ops.Softmax.apply(self, axis=ops.normalize_axis(axis, self.ndim))

    @torch_keywords
    def log_softmax(self, axis: int = -1):
        """x − ln Σ e^x along `axis`, without forming the softmax."""
        return ops.LogSoftmax.apply(self, axis=ops.normalize_axis(axis, self.ndim))

    # ------------------------------------------------------------ shape and movement

    def reshape(self, *sizes, shape=None):
        return ops.Reshape.apply(self, shape=shape_from_args(sizes, shape))

    def transpose(self, *axes, dim0=None, dim1=None):
        """Permute axes as NumPy's transpose; no axes reverses them. (torch's swap of two axes is
        `swapaxes`, or transpose with its keywords dim0=, dim1=.)"""
        if dim0 is not None or dim1 is not None:
            return self.swapaxes(dim0, dim1)
        axes = shape_from_args(axes)
        if len(axes) == 2 and self.ndim != 2:
            raise ValueError(
                f"transpose{axes} on a tensor of shape {self.shape}: transpose takes a permutation of all "
                f"{self.ndim} axes, as NumPy's; to exchange two axes as torch's transpose does, use swapaxes{axes}"
            )
        return ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self):
        return self.transpose()

    def broadcast_to(self, *shape):
        return ops.BroadcastTo.apply(self, shape=shape_from_args(shape))

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_index(index, self.ndim))

    def masked_fill(self, mask, value: float):
        """A copy with `value`, cast to this tensor's dtype as torch casts it (an integer tensor filled
        with 0.5 gets 0), wherever the boolean `mask` (broadcastable to this tensor's shape) is True."""
        mask = array_of(mask)
        if np.broadcast_shapes(mask.shape, self.shape) != self.shape:
            raise ValueError(
                f"masked_fill: a mask of shape {mask.shape} does not broadcast to the tensor's {self.shape}"
            )
        value = value.astype(self.dtype) if isinstance(value, Tensor) else np.asarray(value, dtype=self.dtype)
        return ops.Where.apply(mask, value, self)


def _scan(function: type, x: Tensor, axis) -> Tensor:
    """A running op (Cumsum, Cumprod) along one axis, or along the flattened tensor when axis is None."""
    if axis is None:
        return function.apply(x.reshape(-1), axis=0)
    if x.ndim == 0:
        ops.normalize_axis(axis, 0)
        return function.apply(x.reshape(1), axis=0).reshape(())
    return function.apply(x, axis=ops.normalize_axis(axis, x.ndim))


def _index(index, ndim: int):
    """Turn Tensor, list and nested-tuple indices into arrays; reject index types NumPy would misread.

    An Ellipsis that stands for no axis is dropped, as torch reads it: to NumPy it still parts
    two index arrays, whose axis then moves to the front (x[:, i, ..., j] on a 3-D x).
    """
    if isinstance(index, tuple):
        items = [_index_item(item) for item in index]
        taken = sum(map(_axes_taken, items))
        return tuple(i for i in items if not (i is Ellipsis and taken == ndim))
    if isinstance(index, list) and not all(isinstance(i, (int, np.integer, np.bool_)) for i in index):
        # x[[rows, cols]]: torch reads a list holding sequences or slices as a tuple, NumPy as one array
        raise IndexError(
            f"the index list {index!r} is read as a tuple by torch and as one array by NumPy: "
            "write x[tuple(index)] or x[np.array(index)]"
        )
    return _index_item(index)


def _axes_taken(item) -> int:
    """How many axes an index entry reads: None and ... none, a boolean mask its own number, others one."""
    if item is None or item is Ellipsis:
        return 0
    return item.ndim if isinstance(item, np.ndarray) and item.dtype == bool else 1


def _index_item(item):
    """One entry of an index, as NumPy would read it: sequences (lists, tuples, tensors) become arrays."""
    if isinstance(item, Tensor):
        item = item.data
    elif isinstance(item, (list, tuple)):
        item = np.asarray([_index_item(i) for i in item]) if item else np.zeros(0, dtype=np.intp)
    if isinstance(item, np.ndarray):
        if item.dtype.kind not in "biu":
            raise TypeError(f"tensor index arrays must hold integers or bools, not {item.dtype}")
        if item.dtype == np.uint8:  # torch reads uint8 as a mask (deprecated), NumPy as integers
            raise IndexError("a uint8 index array is a mask to torch and integers to NumPy: pass bool or int64")
    elif not (isinstance(item, (int, np.integer, slice)) or item is None or item is Ellipsis):
        raise TypeError(
            f"unsupported index type {type(item).__name__}: use ints, slices, None, ..., or integer/boolean arrays"
        )
    return item


# ---------------------------------------------------------------- functions of several tensors


@torch_keywords
def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other dimensions must agree (torch.cat)."""
    tensors = as_tensors(list(tensors))
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    if tensors[0].ndim == 0 or any(t.ndim != tensors[0].ndim for t in tensors):
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ValueError(f"concatenate joins tensors of one number of dimensions (at least 1), got shapes {shapes}")
    return ops.Concatenate.apply(*tensors, axis=ops.normalize_axis(axis, tensors[0].ndim))


def where(condition, a, b) -> Tensor:
    """Elementwise `a` where `condition` is True, else `b` (either may be a number)."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    return ops.Where.apply(array_of(condition), as_operand(a, like), as_operand(b, like))


# ---------------------------------------------------------------- the rest of Tensor's methods
# Composed of the methods above (composed.py; selection.py for torch's selections and scatters)
# and PyTorch's spellings, which compute nothing new (torch_spellings.py): each a function of
# the tensor, made a method here, so that every method of Tensor is listed in this file.

from minigrad import composed, selection, torch_spellings  # noqa: E402  (they are written with the Tensor above)


def _add_methods(module, names: str) -> None:
    for name in names.split():
        setattr(Tensor, name, getattr(module, name))


_add_methods(
    composed,
    """mean var std prod logsumexp argmax argmin all any clamp clip square rsqrt log2 exp2 isclose
    __invert__ __and__ __rand__ __or__ __ror__ __xor__ __rxor__
    flip roll repeat tile split chunk tril triu diag trace""",
)
_add_methods(
    torch_spellings,
    """size numel dim grad_fn is_leaf tolist __contains__ float double long clone to amax amin
    permute swapaxes t expand flatten unflatten squeeze unsqueeze sort topk where""",
)
_add_methods(
    selection,
    """gather scatter_add cummax cummin logcumsumexp std_mean var_mean repeat_interleave masked_select nonzero
    scatter scatter_reduce""",
)
Tensor.view = Tensor.reshape  # torch's name; minigrad's tensors never share storage, so a view is a reshape
