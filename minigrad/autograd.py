"""The autograd machinery: `Function`, the backward pass, grad mode and anomaly detection.

A `Function` is one differentiable operation. Its `forward` turns NumPy arrays into a NumPy
array and saves on `self` whatever `backward` will need; its `backward` takes the gradient of
the loss with respect to the output and returns the gradient with respect to each input
(a vector-Jacobian product). `Function.apply` wraps the arrays of `Tensor` arguments, runs
`forward`, and — when a gradient is wanted — links the output to its inputs, so that the
tensors form a directed acyclic graph that `backward` walks in reverse topological order.

`grad` walks the same graph for chosen inputs. With `create_graph=True` it hands each
backward Tensors instead of arrays (the gradient, and the op's saved inputs and output), so
the rules run as recorded tensor operations and the gradients can be differentiated again.
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
    # The fused ops whose definitions are being differentiated (under create_graph), innermost last.
    replaying: tuple = ()


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

    Two class attributes say how `grad(..., create_graph=True)` differentiates the backward:
    - `tensor_backward = True`: backward is written with operations that NumPy arrays and
      Tensors share (arithmetic, `@`, `sum`, `reshape`, indexing, the helpers of
      `minigrad.ops`) and reads only `g`, constants and the arrays forward saved of its
      inputs and output. Under create_graph those saved arrays are swapped for the Tensors
      themselves, and the same rule records a graph.
    - `definition`: a readable function of the same arguments computing the same values
      (a fused kernel's composed twin). Under create_graph it is run again on the inputs and
      differentiated instead of the backward.
    An op with neither raises a clear error under create_graph rather than returning a
    second derivative that silently treats its saved values as constants.
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
            data = _replace_saved(fn, data, np.asarray(data))  # a NumPy or Python scalar
        if data.dtype == _FLOAT64 and not any(getattr(a, "dtype", None) == np.float64 for a in arrays):
            # float64 only when asked for: int / int, or int * 0.5, gives float32 as in PyTorch
            data = _replace_saved(fn, data, data.astype(np.float32))
        if _state.detect_anomaly:
            _check_finite(data, f"{fn.name} (forward)")
        # an integer or boolean result (a cast to int, an argmax) has no gradient: the graph ends there, as in PyTorch
        if _state.grad_enabled and data.dtype.kind == "f":
            needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
            if any(needs):
                fn.parents = tuple(a if isinstance(a, Tensor) else None for a in args)
                fn.needs_input_grad = needs
                fn.scope = _state.scope
                if cls.definition is not None:
                    fn.arguments = (args, kwargs)  # to run the definition again under create_graph
                return Tensor._wrap(data, fn)
        return Tensor._wrap(data)

    def release(self) -> None:
        """Free what forward saved for backward, and the links to the inputs."""
        scope = self.scope
        self.__dict__.clear()
        self.scope = scope
        self.released = True


def _replace_saved(fn: Function, old, new: np.ndarray) -> np.ndarray:
    """Point what forward saved of its result at the array the output will really hold.

    The output Tensor is recognised by identity under create_graph, so `self.out` must be
    the very array the output holds, also after a scalar became a 0-d array.
    """
    for name, value in vars(fn).items():
        if value is old:
            setattr(fn, name, new)
    return new


def backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) · grad into `.grad` of every leaf that requires a gradient.

    The graph is sorted with an explicit stack (no recursion, so chains of any length work);
    each op's backward runs once, after every op that used its output has sent its gradient.
    """
    _propagate([root], [grad], retain_graph=retain_graph, create_graph=False)


def grad(
    outputs,
    inputs,
    grad_outputs=None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
    allow_unused: bool = False,
) -> tuple:
    """The gradients of `outputs` with respect to `inputs`, as `torch.autograd.grad`.

    outputs: a Tensor or a sequence of them; inputs: likewise, each requiring a gradient.
    grad_outputs: the vector of each vector-Jacobian product, one per output (arrays or
    Tensors; None means ones, allowed for a one-element output only).
    Returns a tuple of Tensors, one per input, of the input's shape; `.grad` is not touched.
    With create_graph=True the backward rules run as recorded tensor operations, so the
    gradients carry a graph and can be differentiated again. retain_graph (default:
    create_graph) keeps the graph of `outputs` for another backward. An input the outputs
    do not depend on raises an error naming it, or gives None with allow_unused=True.
    """
    Tensor = _tensor.Tensor
    outputs, inputs = _as_tuple(outputs, "outputs"), _as_tuple(inputs, "inputs")
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = (grad_outputs,) * len(outputs) if grad_outputs is None else (grad_outputs,)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            why = (
                "create it with requires_grad=True" if x.dtype.kind == "f" else "integers and booleans have no gradient"
            )
            raise RuntimeError(f"grad: inputs[{i}] {_describe(x)} does not require a gradient; {why}")
    roots, root_grads = [], []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(
                f"grad: outputs[{i}] {_describe(out)} does not require a gradient: no input it was computed "
                "from requires one, or it came from an op without a derivative (a comparison, an argmax, "
                "an integer result)"
            )
        roots.append(out)
        root_grads.append(_root_grad(out, g, i, create_graph))
    retain_graph = create_graph if retain_graph is None else retain_graph
    found = _propagate(roots, root_grads, retain_graph, create_graph, wanted=inputs)
    results = []
    for i, x in enumerate(inputs):
        g = found.get(id(x))
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: inputs[{i}] {_describe(x)} was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        results.append(g if g is None or isinstance(g, Tensor) else Tensor._wrap(np.asarray(g)))
    return tuple(results)


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False) -> tuple:
    """(func(*inputs), H v) as `torch.autograd.functional.hvp`: H is the Hessian of func's scalar.

    inputs and v: a Tensor each, or tuples of them of the same shapes (v may be None when the
    input is one number). The product is computed by double backward,
    H v = ∂/∂x (∂f/∂x · v), never forming H: a forward, a backward that records its own graph
    (fused kernels run their readable definitions for it), and a backward through that graph,
    several training steps' worth of work (docs/autograd.md counts and times it). The
    inputs themselves are passed to func (one not requiring a gradient is replaced by a copy
    that does), so func may also reach them another way, as the parameters of a model.
    create_graph=True keeps the graph of H v; strict=True refuses an input whose block of H is
    zero because func does not reach it twice (else that block is zeros).
    """
    xs, single = _differentiable_inputs(inputs)
    vs = _vectors_like(v, xs)
    out = _scalar_output(func(*xs), "hvp")
    first = grad(out, xs, create_graph=True, allow_unused=True)
    terms = [(g * vi).sum() for g, vi in zip(first, vs) if g is not None and g.requires_grad]
    products = (None,) * len(xs)  # func linear in its inputs: H = 0
    if terms:
        products = grad(sum(terms[1:], terms[0]), xs, create_graph=create_graph, allow_unused=True)
    products = _zeros_for_none(products, xs, strict, "hvp")
    value = out if create_graph else out.detach()
    return value, products[0] if single else products


def hessian(func, inputs, create_graph: bool = False, strict: bool = False):
    """The Hessian of func's scalar output, as `torch.autograd.functional.hessian`; for small inputs.

    A Tensor x of shape s gives a Tensor of shape s + s, H[i, j] = ∂²f / ∂x_i ∂x_j; a tuple of
    inputs gives a tuple of tuples, H[a][b] of shape s_a + s_b. One backward of the gradient per
    element of the inputs. create_graph and strict as in `hvp`.
    """
    xs, single = _differentiable_inputs(inputs)
    out = _scalar_output(func(*xs), "hessian")
    first = grad(out, xs, create_graph=True, allow_unused=True)
    blocks = []
    for g, x in zip(first, xs):
        rows = []  # row k: the gradient of the k-th element of ∂f/∂x, one Tensor per input
        for k in range(x.size):
            row = (None,) * len(xs)
            if g is not None and g.requires_grad:
                one_hot = np.zeros(x.size, dtype=g.dtype)
                one_hot[k] = 1
                row = grad(
                    g, xs, one_hot.reshape(x.shape), retain_graph=True, create_graph=create_graph, allow_unused=True
                )
            rows.append(_zeros_for_none(row, xs, strict, "hessian"))
        blocks.append(
            tuple(_tensor.stack([row[b] for row in rows]).reshape(x.shape + y.shape) for b, y in enumerate(xs))
        )
    return blocks[0][0] if single else tuple(blocks)


def _differentiable_inputs(inputs) -> tuple[tuple, bool]:
    """The inputs as a tuple of Tensors requiring gradients, and whether one Tensor was given."""
    single = isinstance(inputs, _tensor.Tensor)
    xs = _as_tuple(inputs, "inputs")
    copies = tuple(x if x.requires_grad else _tensor.Tensor(x.data, dtype=x.dtype, requires_grad=True) for x in xs)
    return copies, single


def _vectors_like(v, xs: tuple) -> tuple:
    """v as arrays, one per input and of its shape; None means 1 for a one-number input."""
    if v is None:
        if len(xs) != 1 or xs[0].size != 1:
            raise ValueError("hvp: v can be None only when the input is a single tensor with a single element")
        return (np.ones(xs[0].shape, dtype=xs[0].dtype),)
    vs = (v,) if isinstance(v, (_tensor.Tensor, np.ndarray)) else tuple(v)
    if len(vs) != len(xs):
        raise ValueError(f"hvp: {len(vs)} vectors v for {len(xs)} inputs")
    arrays = tuple(vi.data if isinstance(vi, _tensor.Tensor) else np.asarray(vi) for vi in vs)
    for i, (vi, x) in enumerate(zip(arrays, xs)):
        if vi.shape != x.shape:
            raise ValueError(f"hvp: v[{i}] has shape {_shape(vi.shape)}, its input {_shape(x.shape)}")
    return arrays


def _scalar_output(out, caller: str):
    if not isinstance(out, _tensor.Tensor) or out.size != 1:
        shape = _shape(out.shape) if isinstance(out, _tensor.Tensor) else type(out).__name__
        raise ValueError(f"{caller}: func must return a Tensor with a single element, got {shape}")
    return out


def _zeros_for_none(grads: tuple, xs: tuple, strict: bool, caller: str) -> tuple:
    """Zeros for the inputs that got no gradient (None), or an error naming one when strict."""
    for i, g in enumerate(grads):
        if g is None and strict:
            raise RuntimeError(f"{caller}: the output does not depend twice on input {i}, so its Hessian block is 0")
    return tuple(_tensor.Tensor._wrap(np.zeros(x.shape, dtype=x.dtype)) if g is None else g for g, x in zip(grads, xs))


def _as_tuple(tensors, what: str) -> tuple:
    Tensor = _tensor.Tensor
    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: {what}[{i}] must be a Tensor, not {type(t).__name__}")
    return tensors


def _describe(t) -> str:
    name = f"'{t.name}' " if t.name else ""
    return f"{name}(shape {_shape(t.shape)}, {t.dtype})"


def _root_grad(out, g, i: int, create_graph: bool):
    """The starting gradient of one output: an array, or a Tensor under create_graph."""
    Tensor = _tensor.Tensor
    if g is None:
        if out.size != 1:
            raise RuntimeError(
                f"grad: outputs[{i}] has shape {_shape(out.shape)}; a non-scalar output needs "
                "grad_outputs, the gradient of some scalar with respect to it"
            )
        g = np.ones_like(out.data)
    elif _shape(np.shape(g)) != _shape(out.shape):
        raise ValueError(f"grad: grad_outputs[{i}] has shape {_shape(np.shape(g))}, expected {_shape(out.shape)}")
    if create_graph:
        return g if isinstance(g, Tensor) else Tensor._wrap(np.asarray(g, dtype=out.dtype))
    return (g.data if isinstance(g, Tensor) else np.asarray(g)).astype(out.dtype, copy=False)


def _propagate(
    roots: list, root_grads: list, retain_graph: bool, create_graph: bool, wanted=None, stop_at_wanted=False
):
    """Send the gradients of `roots` back through the graph, each op's backward once.

    Without `wanted` (backward()), the leaves accumulate their gradients in `.grad`. With it
    (grad()), only the ops that lie between the roots and the wanted tensors run, and the
    gradients reaching the wanted tensors are returned by id. `stop_at_wanted` gives partial
    derivatives instead of total ones: nothing flows on past a wanted tensor into what it was
    computed from, even into another wanted tensor.
    """
    order = _topological_order(*roots)
    grads: dict = {}
    for root, g in zip(roots, root_grads):
        key = id(root)
        grads[key] = grads[key] + g if key in grads else g
    found, needed = {}, None
    if wanted is not None:
        found = {id(t): None for t in wanted}
        needed = _leading_to(order, found)
    with enable_grad() if create_graph else contextlib.nullcontext():
        for tensor in reversed(order):
            g = grads.pop(id(tensor), None)
            if g is None:
                continue
            fn = tensor._ctx
            if fn is not None and fn.released:
                raise RuntimeError(
                    f"backward through the graph a second time: the buffers of {fn.name} were "
                    "already freed; pass retain_graph=True to the first backward() to keep them"
                )
            if needed is not None:
                if id(tensor) in found:
                    found[id(tensor)] = g
                if fn is None or id(tensor) not in needed or (stop_at_wanted and id(tensor) in found):
                    continue
            elif fn is None:
                _accumulate_leaf(tensor, g)
                continue
            if create_graph:
                input_grads = _backward_as_graph(fn, tensor, g)
            else:
                input_grads = fn.backward(g) if _state.tracer is None else _state.tracer.backward(fn, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, needs, parent_grad in zip(fn.parents, fn.needs_input_grad, input_grads):
                if not needs or parent_grad is None:
                    continue
                if create_graph:
                    if not isinstance(parent_grad, _tensor.Tensor):  # a constant, such as a zero gradient
                        parent_grad = _tensor.Tensor._wrap(np.asarray(parent_grad))
                elif parent_grad.dtype != parent.data.dtype:
                    parent_grad = parent_grad.astype(parent.data.dtype)
                if _state.detect_anomaly:
                    _check_finite(parent_grad.data if create_graph else parent_grad, f"{fn.name} (backward)")
                key = id(parent)
                grads[key] = grads[key] + parent_grad if key in grads else parent_grad
            if not retain_graph:
                fn.release()
    return found


def _leading_to(order: list, wanted: dict) -> set:
    """Ids of the tensors in `order` from which some wanted tensor can be reached backwards."""
    needed = set()
    for tensor in order:  # inputs come before the tensors made from them
        fn = tensor._ctx
        if id(tensor) in wanted or (fn is not None and any(id(p) in needed for p in fn.parents if p is not None)):
            needed.add(id(tensor))
    return needed


def _backward_as_graph(fn: Function, output, g):
    """fn's backward as recorded tensor operations on the Tensor `g` (create_graph=True)."""
    if fn.tensor_backward:
        return _with_saved_tensors(fn, output).backward(g)
    if type(fn).definition is not None:
        return _backward_of_definition(fn, output, g)
    raise RuntimeError(
        f"create_graph=True: the backward of {fn.name} runs on NumPy arrays only and {fn.name} has no "
        "`definition` to differentiate instead, so its gradient cannot be differentiated again; "
        "compute it from ops that can (see the second-order column of docs/ops.md)"
    )


def _with_saved_tensors(fn: Function, output) -> Function:
    """A copy of `fn` in which every saved input or output array is the Tensor that holds it
    (also inside a saved tuple or list, as `self.operands`)."""
    holders: dict = {}
    for t in (*fn.parents, output):
        if t is not None:
            holders.setdefault(id(t.data), []).append(t)

    def tensor_for(value):
        tensors = holders.get(id(value)) if isinstance(value, np.ndarray) else None
        if not tensors:
            return value
        if any(t is not tensors[0] for t in tensors) and any(t.requires_grad for t in tensors):
            raise RuntimeError(
                f"create_graph=True: two arguments of {fn.name} are different tensors over one array "
                "(such as x and x.detach()), so its backward cannot tell which one it saved; "
                "give one of them its own copy"
            )
        return tensors[0]

    twin = object.__new__(type(fn))
    for name, value in vars(fn).items():
        if isinstance(value, (tuple, list)):
            value = type(value)(tensor_for(item) for item in value)
        setattr(twin, name, tensor_for(value))
    return twin


def _backward_of_definition(fn: Function, output, g) -> tuple:
    """Differentiate fn's readable definition, run again on the same inputs, instead of its backward."""
    if type(fn) in _state.replaying:
        raise RuntimeError(
            f"create_graph=True: the definition of {fn.name} runs {fn.name} itself; a definition must be "
            "written with other ops, or it never ends"
        )
    previous, _state.replaying = _state.replaying, _state.replaying + (type(fn),)
    try:
        return _differentiate_definition(fn, output, g)
    finally:
        _state.replaying = previous


def _differentiate_definition(fn: Function, output, g) -> tuple:
    args, kwargs = fn.arguments
    replay = type(fn).definition(*args, **kwargs)
    tolerance = dict(rtol=1e-6, atol=1e-9) if output.dtype == _FLOAT64 else dict(rtol=1e-3, atol=1e-4)
    if replay.shape != output.shape or not np.allclose(replay.data, output.data, equal_nan=True, **tolerance):
        raise RuntimeError(
            f"create_graph=True: the definition of {fn.name} run again does not give the values its forward "
            "gave (random numbers inside, such as dropout, or a definition that does not match), so it "
            "cannot stand in for the backward"
        )
    wanted = [parent for parent, needs in zip(fn.parents, fn.needs_input_grad) if needs]
    # partial derivatives: an input computed from another input (x and x.exp()) is its own variable
    found = _propagate([replay], [g], retain_graph=True, create_graph=True, wanted=wanted, stop_at_wanted=True)
    result, given = [], set()
    for parent, needs in zip(fn.parents, fn.needs_input_grad):
        # an input passed twice gets its whole gradient once, at its first position
        if needs and id(parent) not in given:
            given.add(id(parent))
            result.append(found[id(parent)])
        else:
            result.append(None)
    return tuple(result)


def _topological_order(*roots) -> list:
    """Tensors that need a gradient, each after all of its inputs (iterative depth-first search)."""
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
