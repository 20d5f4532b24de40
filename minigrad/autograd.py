"""The autograd machinery: `Function`, the backward pass, grad mode and anomaly detection.

A `Function` is one differentiable operation. Its `forward` turns NumPy arrays into a NumPy
array and saves on `self` whatever `backward` will need; its `backward` takes the gradient of
the loss with respect to the output and returns the gradient with respect to each input
(a vector-Jacobian product). `Function.apply` wraps the arrays of `Tensor` arguments, runs
`forward`, and — when a gradient is wanted — links the output to its inputs, so that the
tensors form a directed acyclic graph that `backward` walks in reverse topological order.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np


class _State:
    """Global switches: is a graph being recorded, is anomaly detection on, which modules run."""

    grad_enabled = True
    detect_anomaly = False
    # The `Module` calls currently running, outermost first (read by `minigrad.viz`).
    scope: tuple = ()
    # Who watches ops run (`minigrad.profile`, `minigrad.viz.explore`), or None: an object
    # with apply(cls, args, kwargs) -> Tensor and backward(fn, grad) -> input gradients.
    tracer: Any = None


_state = _State()
_FLOAT64 = np.dtype(np.float64)


def is_grad_enabled() -> bool:
    return _state.grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off inside a `with` block or a decorated function."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        # A stack, not one slot: a decorated function may call itself, re-entering this object.
        self.previous: list[bool] = []

    def __enter__(self):
        self.previous.append(_state.grad_enabled)
        _state.grad_enabled = self.mode

    def __exit__(self, *exc):
        _state.grad_enabled = self.previous.pop()
        return False


class no_grad(set_grad_enabled):
    """`with mg.no_grad():`, `@mg.no_grad()` or `@mg.no_grad`: ops record no graph, keep no buffers."""

    def __new__(cls, function=None):
        if callable(function):  # used bare as a decorator: @mg.no_grad
            return cls()(function)
        return super().__new__(cls)

    def __init__(self, function=None):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)


class detect_anomaly(contextlib.ContextDecorator):
    """Check every op's output and every gradient for NaN/Inf; name the first op that made one."""

    def __init__(self):
        self.previous: list[bool] = []

    def __enter__(self):
        self.previous.append(_state.detect_anomaly)
        _state.detect_anomaly = True

    def __exit__(self, *exc):
        _state.detect_anomaly = self.previous.pop()
        return False


class module_scope:
    """Mark the ops created inside as belonging to `module` (used by `nn.Module.__call__`).

    A class rather than a generator-based context manager: every module call enters one, and
    this costs a third as much.
    """

    __slots__ = ("module", "previous")

    def __init__(self, module: Any):
        self.module = module

    def __enter__(self):
        self.previous = _state.scope
        _state.scope = self.previous + (self.module,)

    def __exit__(self, *exc):
        _state.scope = self.previous
        return False


def _shape(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


def _check_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        kind = "NaN" if np.isnan(array).any() else "Inf"
        raise FloatingPointError(f"{what} produced {kind} (shape {_shape(array.shape)})")


class Function:
    """One differentiable operation: `forward` on arrays, `backward` as a vector-Jacobian product.

    Subclasses implement
        forward(self, *args, **kwargs) -> np.ndarray   (Tensor arguments arrive as arrays)
        backward(self, grad) -> gradient, or tuple of gradients, one per positional argument
    and may return None for an argument that needs no gradient (see `self.needs_input_grad`).
    """

    # Set by `apply` when a graph is recorded.
    parents: tuple = ()
    needs_input_grad: tuple = ()
    scope: tuple = ()
    released = False

    def forward(self, *args, **kwargs) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray):
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    @classmethod
    def apply(cls, *args, **kwargs):
        if _state.tracer is not None:
            return _state.tracer.apply(cls, args, kwargs)
        Tensor = _tensor.Tensor
        fn = cls()
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        try:
            data = fn.forward(*arrays, **kwargs)
        except ValueError as error:
            shapes = " and ".join(_shape(np.shape(a)) for a in arrays if isinstance(a, np.ndarray))
            raise ValueError(f"{fn.name} on shapes {shapes}: {error}") from None
        if type(data) is not np.ndarray:
            data = np.asarray(data)  # a forward may return a NumPy or Python scalar
        if data.dtype == _FLOAT64 and not any(getattr(a, "dtype", None) == np.float64 for a in arrays):
            # float64 only when asked for: int / int, or int * 0.5, gives float32 as in PyTorch
            data = data.astype(np.float32)
        if _state.detect_anomaly:
            _check_finite(data, f"{fn.name} (forward)")
        if _state.grad_enabled:
            needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
            if any(needs):
                fn.parents = tuple(a if isinstance(a, Tensor) else None for a in args)
                fn.needs_input_grad = needs
                fn.scope = _state.scope
                return Tensor._wrap(data, fn)
        return Tensor._wrap(data)

    def release(self) -> None:
        """Free what forward saved for backward, and the links to the inputs."""
        scope = self.scope
        self.__dict__.clear()
        self.scope = scope
        self.released = True


def backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) · grad into `.grad` of every leaf that requires a gradient.

    The graph is sorted with an explicit stack (no recursion, so chains of any length work);
    each op's backward runs once, after every op that used its output has sent its gradient.
    """
    order = _topological_order(root)
    grads = {id(root): grad}
    for tensor in reversed(order):
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        fn = tensor._ctx
        if fn is None:
            _accumulate_leaf(tensor, g)
            continue
        if fn.released:
            raise RuntimeError(
                f"backward through the graph a second time: the buffers of {fn.name} were "
                "already freed; pass retain_graph=True to the first backward() to keep them"
            )
        input_grads = fn.backward(g) if _state.tracer is None else _state.tracer.backward(fn, g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, needs, parent_grad in zip(fn.parents, fn.needs_input_grad, input_grads):
            if not needs or parent_grad is None:
                continue
            if parent_grad.dtype != parent.data.dtype:
                parent_grad = parent_grad.astype(parent.data.dtype)
            if _state.detect_anomaly:
                _check_finite(parent_grad, f"{fn.name} (backward)")
            key = id(parent)
            grads[key] = grads[key] + parent_grad if key in grads else parent_grad
        if not retain_graph:
            fn.release()


def _topological_order(root) -> list:
    """Tensors that need a gradient, each after all of its inputs (iterative depth-first search)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        fn = tensor._ctx
        if fn is not None:
            for parent, needs in zip(fn.parents, fn.needs_input_grad):
                if needs and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _accumulate_leaf(tensor, g: np.ndarray) -> None:
    if g.shape != tensor.data.shape:
        raise RuntimeError(
            f"internal error: gradient of shape {_shape(g.shape)} for a leaf of shape {_shape(tensor.data.shape)}"
        )
    if tensor.grad is None:
        # A copy: the same array may flow to several leaves, and optimizers update in place.
        tensor.grad = np.array(g, dtype=tensor.data.dtype, copy=True)
    else:
        tensor.grad = tensor.grad + g.astype(tensor.data.dtype, copy=False)


from minigrad import tensor as _tensor  # noqa: E402  (Tensor is built on Function)
