"""The autograd machinery: `Function` and the backward pass.

A `Function` is one differentiable operation. Its `forward` turns NumPy arrays into a NumPy
array and saves on `self` whatever `backward` will need; its `backward` takes the gradient of
the loss with respect to the output and returns the gradient with respect to each input
(a vector-Jacobian product). `Function.apply` wraps the arrays of `Tensor` arguments, runs
`forward`, and — when a gradient is wanted — links the output to its inputs, so that the
tensors form a directed acyclic graph that `backward` walks in reverse topological order.

The switches read on every op (grad mode, anomaly detection, the module running, a tracer)
are in minigrad/modes.py; `mg.grad` and gradients of gradients, which walk the same graph
with the same `propagate`, in minigrad/higher_order.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from minigrad import source_lines
from minigrad.modes import check_finite, format_shape, untraced
from minigrad.modes import state as _state  # read on every op; written only by the switches of modes.py

_FLOAT64 = np.dtype(np.float64)


# ---------------------------------------------------------------- Function: one op and its derivative


class Function:
    """One differentiable operation: `forward` on arrays, `backward` as a vector-Jacobian product.

    Subclasses implement
        forward(self, *args, **kwargs) -> np.ndarray   (Tensor arguments arrive as arrays)
        backward(self, grad) -> gradient, or tuple of gradients, one per positional argument
    and may return None for an argument that needs no gradient (see `self.needs_input_grad`).

    Two class attributes say how a gradient of this op's gradient is taken
    (`mg.grad(..., create_graph=True)`, minigrad/higher_order.py): `tensor_backward = True`
    when backward also runs on Tensors, or `definition`, a readable function computing the
    same values that is differentiated instead.
    """

    tensor_backward = False
    definition = None

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
        """Run the op on Tensors (or arrays and numbers); link the result to its inputs when a gradient is wanted."""
        tracer = _state.tracer
        if tracer is not None:
            return tracer.forward(untraced(lambda: cls.apply(*args, **kwargs), tracer), cls, args, kwargs)
        fn = cls()
        data = forward_result(fn, [a.data if isinstance(a, _tensor.Tensor) else a for a in args], kwargs)
        if _state.detect_anomaly:
            check_finite(data, f"{fn.name} (forward)")
        needs = _inputs_needing_grad(args, data)
        if not any(needs):
            return _tensor.Tensor._from_array(data)
        _link(fn, args, kwargs, needs)
        return _tensor.Tensor._from_array(data, fn)

    def release(self) -> None:
        """Free what forward saved for backward, and the links to the inputs."""
        scope = self.scope
        self.__dict__.clear()
        self.scope = scope
        self.released = True


def forward_result(fn: Function, arrays: list, kwargs: dict) -> np.ndarray:
    """fn.forward on the arrays of its arguments: the array its output Tensor holds.

    A scalar result becomes a 0-d array, and float64 becomes float32 unless an input was
    float64 (`_float32_unless_asked`); a ValueError names the op and the shapes. `apply` runs
    this for every op, and `minigrad.replay` runs it alone.
    """
    try:
        data = fn.forward(*arrays, **kwargs)
    except ValueError as error:
        shapes = " and ".join(format_shape(np.shape(a)) for a in arrays if isinstance(a, np.ndarray))
        raise ValueError(f"{fn.name} on shapes {shapes}: {error}") from None
    if type(data) is not np.ndarray:  # a NumPy or Python scalar: a 0-d array, as a Tensor holds
        data = _replace_saved(fn, data, np.asarray(data))
    return _float32_unless_asked(fn, data, arrays) if data.dtype == _FLOAT64 else data


def _float32_unless_asked(fn: Function, data: np.ndarray, args: tuple) -> np.ndarray:
    """A float64 result stays float64 only when an input is: int / int, or int * 0.5, gives float32 as in PyTorch."""
    if not any(getattr(a, "dtype", None) == np.float64 for a in args):
        return _replace_saved(fn, data, data.astype(np.float32))
    return data


def _replace_saved(fn: Function, old, new: np.ndarray) -> np.ndarray:
    """Point what forward saved of its result at the array the output will really hold.

    The output Tensor is recognised by identity under create_graph, so `self.out` must be
    the very array the output holds, also after a scalar became a 0-d array.
    """
    for name, value in vars(fn).items():
        if value is old:
            setattr(fn, name, new)
    return new


def _inputs_needing_grad(args: tuple, data: np.ndarray) -> tuple:
    """Which arguments want a gradient; none when no graph is recorded, or the result is not floating
    (a cast to int, an argmax: the graph ends there, as in PyTorch)."""
    if not _state.grad_enabled or data.dtype.kind != "f":
        return ()
    return tuple(isinstance(a, _tensor.Tensor) and a.requires_grad for a in args)


def _link(fn: Function, args: tuple, kwargs: dict, needs: tuple) -> None:
    """Record fn's place in the graph: its inputs, which of them want gradients, the module running it."""
    fn.parents = tuple(a if isinstance(a, _tensor.Tensor) else None for a in args)
    fn.needs_input_grad = needs
    fn.scope = _state.scope
    fn.origin = source_lines.caller()  # which lines asked for it, for the pictures (minigrad.viz)
    if fn.definition is not None:
        fn.arguments = (args, kwargs)  # to run the definition again under create_graph


# ---------------------------------------------------------------- the backward pass


def backward(root, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) · grad into `.grad` of every leaf that requires a gradient (`root.backward()`)."""
    propagate([root], [_starting_gradient(root, grad)], retain_graph, reached=_accumulate_if_leaf)


def _starting_gradient(root, grad) -> np.ndarray:
    """d(root)/d(root) · grad: `grad` itself, which only a one-element root may leave out (then 1)."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: no input of the "
            "computation had requires_grad=True (or it ran under no_grad)"
        )
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() on a non-scalar tensor of shape {root.shape} needs a gradient: "
                f"call backward(grad) with an array of shape {root.shape}"
            )
        return np.ones_like(root.data)
    grad = _tensor.array_of(grad).astype(root.data.dtype, copy=False)
    if grad.shape != root.shape:
        raise ValueError(f"backward(grad): grad has shape {grad.shape}, expected {root.shape}")
    return grad


def run_backward(fn: Function, output, g):
    """fn's vector-Jacobian product with `g`, reported to the tracer when one is installed."""
    tracer = _state.tracer
    if tracer is None:
        return fn.backward(g)
    return tracer.backward(untraced(lambda: fn.backward(g), tracer), fn, g)


def propagate(
    roots: list, root_grads: list, retain_graph: bool, reached: Callable, vjp: Callable = run_backward, order=None
) -> None:
    """Send the gradients of `roots` back through the graph, each op's backward once.

    Tensors are visited in reverse topological order, so each op's backward runs after every op
    that used its output has sent its gradient. `reached(tensor, g)` is told each tensor's whole
    gradient and returns whether to go on into the op that made it; `vjp(fn, output, g)` runs
    an op's backward. `order` saves sorting the graph again when the caller already has.
    """
    grads: dict = {}
    for root, g in zip(roots, root_grads):
        _add_gradient(grads, root, g)
    for tensor in reversed(topological_order(*roots) if order is None else order):
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        fn = tensor._ctx
        if fn is not None and fn.released:
            raise RuntimeError(
                f"backward through the graph a second time: the buffers of {fn.name} were "
                "already freed; pass retain_graph=True to the first backward() to keep them"
            )
        if reached(tensor, g) and fn is not None:
            _send_to_inputs(fn, vjp(fn, tensor, g), grads)
            if not retain_graph:
                fn.release()


def topological_order(*roots) -> list:
    """Tensors that need a gradient, each after all of its inputs (iterative depth-first search,
    so chains of any length work)."""
    order, visited = [], set()
    stack = [(root, False) for root in reversed(roots)]
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


def _send_to_inputs(fn: Function, input_grads, grads: dict) -> None:
    """Add the gradients an op's backward returned to what its inputs have received so far."""
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    for parent, needs, g in zip(fn.parents, fn.needs_input_grad, input_grads):
        if not needs or g is None:
            continue
        tensor = isinstance(g, _tensor.Tensor)  # under create_graph: a gradient with a graph
        if not tensor and g.dtype != parent.data.dtype:
            g = g.astype(parent.data.dtype)
        if _state.detect_anomaly:
            check_finite(g.data if tensor else g, f"{fn.name} (backward)")
        _add_gradient(grads, parent, g)


def _add_gradient(grads: dict, tensor, g) -> None:
    """Sum the gradients reaching `tensor` along every path (keyed by id: tensors compare by value)."""
    key = id(tensor)
    grads[key] = grads[key] + g if key in grads else g


def _accumulate_if_leaf(tensor, g: np.ndarray) -> bool:
    """backward()'s `reached`: a leaf adds g to its `.grad`; every tensor passes g on to its op."""
    if tensor._ctx is not None:
        return True
    if g.shape != tensor.data.shape:
        raise RuntimeError(
            f"internal error: gradient of shape {format_shape(g.shape)} for a leaf of shape "
            f"{format_shape(tensor.data.shape)}"
        )
    if tensor.grad is None:
        # A copy: the same array may flow to several leaves, and optimizers update in place.
        tensor.grad = np.array(g, dtype=tensor.data.dtype, copy=True)
    else:
        tensor.grad = tensor.grad + g.astype(tensor.data.dtype, copy=False)
    return False


from minigrad import tensor as _tensor  # noqa: E402  (Tensor is built on Function)
