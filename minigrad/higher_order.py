"""Gradients as values, and gradients of gradients: `grad`, `hvp`, `hessian`.

`grad` walks the graph as `backward` does (`autograd.propagate`), for chosen inputs, and
returns the gradients instead of adding them to `.grad`. With `create_graph=True` it hands
each op's backward Tensors instead of arrays, so that the rules run as recorded tensor
operations and the gradients can be differentiated again. An op says how (see `Function`):

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

from __future__ import annotations

import contextlib

import numpy as np

from minigrad.autograd import Function, propagate, run_backward, topological_order
from minigrad.composed import stack
from minigrad.modes import enable_grad, format_shape
from minigrad.tensor import Tensor

# The fused ops whose definitions are being differentiated (under create_graph), innermost last.
_replaying: list[type] = []


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
    outputs, inputs = _as_tuple(outputs, "outputs"), _as_tuple(inputs, "inputs")
    grad_outputs = _one_per_output(grad_outputs, outputs)
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            why = (
                "create it with requires_grad=True" if x.dtype.kind == "f" else "integers and booleans have no gradient"
            )
            raise RuntimeError(f"grad: inputs[{i}] {_describe(x)} does not require a gradient; {why}")
    root_grads = [_root_grad(out, g, i, create_graph) for i, (out, g) in enumerate(zip(outputs, grad_outputs))]
    retain_graph = create_graph if retain_graph is None else retain_graph
    found = gradients_reaching(list(outputs), root_grads, inputs, retain_graph, create_graph)
    results = []
    for i, x in enumerate(inputs):
        g = found.get(id(x))
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: inputs[{i}] {_describe(x)} was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        results.append(g if g is None or isinstance(g, Tensor) else Tensor._from_array(np.asarray(g)))
    return tuple(results)


def gradients_reaching(
    roots: list, root_grads: list, wanted, retain_graph: bool, create_graph: bool, partial: bool = False
) -> dict:
    """id(tensor) -> the gradient of `roots` reaching each wanted tensor (None where none does).

    Only the ops between the roots and the wanted tensors run. `partial` gives partial
    derivatives instead of total ones: nothing flows on past a wanted tensor into what it was
    computed from, even into another wanted tensor.
    """
    order = topological_order(*roots)
    found = {id(t): None for t in wanted}
    needed = _leading_to(order, found)

    def reached(tensor, g) -> bool:
        if id(tensor) in found:
            found[id(tensor)] = g
            if partial:
                return False
        return id(tensor) in needed

    vjp = _backward_as_graph if create_graph else run_backward
    with enable_grad() if create_graph else contextlib.nullcontext():
        propagate(roots, root_grads, retain_graph, reached=reached, vjp=vjp, order=order)
    return found


def _leading_to(order: list, wanted: dict) -> set:
    """Ids of the tensors in `order` from which some wanted tensor can be reached backwards."""
    needed = set()
    for tensor in order:  # inputs come before the tensors made from them
        fn = tensor._ctx
        if id(tensor) in wanted or (fn is not None and any(id(p) in needed for p in fn.parents if p is not None)):
            needed.add(id(tensor))
    return needed


def _one_per_output(grad_outputs, outputs: tuple) -> tuple:
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = (grad_outputs,) * len(outputs) if grad_outputs is None else (grad_outputs,)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    return tuple(grad_outputs)


def _root_grad(out: Tensor, g, i: int, create_graph: bool):
    """The starting gradient of one output: an array, or a Tensor under create_graph."""
    if not out.requires_grad:
        raise RuntimeError(
            f"grad: outputs[{i}] {_describe(out)} does not require a gradient: no input it was computed "
            "from requires one, or it came from an op without a derivative (a comparison, an argmax, "
            "an integer result)"
        )
    if g is None:
        if out.size != 1:
            raise RuntimeError(
                f"grad: outputs[{i}] has shape {format_shape(out.shape)}; a non-scalar output needs "
                "grad_outputs, the gradient of some scalar with respect to it"
            )
        g = np.ones_like(out.data)
    elif format_shape(np.shape(g)) != format_shape(out.shape):
        raise ValueError(
            f"grad: grad_outputs[{i}] has shape {format_shape(np.shape(g))}, expected {format_shape(out.shape)}"
        )
    if create_graph:
        return g if isinstance(g, Tensor) else Tensor._from_array(np.asarray(g, dtype=out.dtype))
    return (g.data if isinstance(g, Tensor) else np.asarray(g)).astype(out.dtype, copy=False)


def _as_tuple(tensors, what: str) -> tuple:
    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: {what}[{i}] must be a Tensor, not {type(t).__name__}")
    return tensors


def _describe(t: Tensor) -> str:
    name = f"'{t.name}' " if t.name else ""
    return f"{name}(shape {format_shape(t.shape)}, {t.dtype})"


# ---------------------------------------------------------------- a backward as recorded tensor operations


def _backward_as_graph(fn: Function, output: Tensor, g: Tensor) -> tuple:
    """fn's backward as recorded tensor operations on the Tensor `g` (create_graph=True)."""
    if fn.tensor_backward:
        input_grads = _with_saved_tensors(fn, output).backward(g)
    elif type(fn).definition is not None:
        input_grads = _backward_of_definition(fn, output, g)
    else:
        raise RuntimeError(
            f"create_graph=True: the backward of {fn.name} runs on NumPy arrays only and {fn.name} has no "
            "`definition` to differentiate instead, so its gradient cannot be differentiated again; "
            "compute it from ops that can (see the second-order column of docs/ops.md)"
        )
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    # a constant, such as a zero gradient, joins the graph as a Tensor
    return tuple(x if x is None or isinstance(x, Tensor) else Tensor._from_array(np.asarray(x)) for x in input_grads)


def _with_saved_tensors(fn: Function, output: Tensor) -> Function:
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


def _backward_of_definition(fn: Function, output: Tensor, g: Tensor) -> tuple:
    """Differentiate fn's readable definition, run again on the same inputs, instead of its backward."""
    if type(fn) in _replaying:
        raise RuntimeError(
            f"create_graph=True: the definition of {fn.name} runs {fn.name} itself; a definition must be "
            "written with other ops, or it never ends"
        )
    _replaying.append(type(fn))
    try:
        return _differentiate_definition(fn, output, g)
    finally:
        _replaying.pop()


def _differentiate_definition(fn: Function, output: Tensor, g: Tensor) -> tuple:
    args, kwargs = fn.arguments
    replay = type(fn).definition(*args, **kwargs)
    tolerance = dict(rtol=1e-6, atol=1e-9) if output.dtype == np.float64 else dict(rtol=1e-3, atol=1e-4)
    if replay.shape != output.shape or not np.allclose(replay.data, output.data, equal_nan=True, **tolerance):
        raise RuntimeError(
            f"create_graph=True: the definition of {fn.name} run again does not give the values its forward "
            "gave (random numbers inside, such as dropout, or a definition that does not match), so it "
            "cannot stand in for the backward"
        )
    wanted = [parent for parent, needs in zip(fn.parents, fn.needs_input_grad) if needs]
    # partial derivatives: an input computed from another input (x and x.exp()) is its own variable
    found = gradients_reaching([replay], [g], wanted, retain_graph=True, create_graph=True, partial=True)
    result, given = [], set()
    for parent, needs in zip(fn.parents, fn.needs_input_grad):
        # an input passed twice gets its whole gradient once, at its first position
        if needs and id(parent) not in given:
            given.add(id(parent))
            result.append(found[id(parent)])
        else:
            result.append(None)
    return tuple(result)


# ---------------------------------------------------------------- Hessians


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
        rows = [_hessian_row(g, x, k, xs, create_graph, strict) for k in range(x.size)]
        blocks.append(tuple(stack([row[b] for row in rows]).reshape(x.shape + y.shape) for b, y in enumerate(xs)))
    return blocks[0][0] if single else tuple(blocks)


def _hessian_row(g: Tensor | None, x: Tensor, k: int, xs: tuple, create_graph: bool, strict: bool) -> tuple:
    """The gradient of the k-th element of ∂f/∂x (its gradient `g`), one Tensor per input."""
    row = (None,) * len(xs)
    if g is not None and g.requires_grad:
        one_hot = np.zeros(x.size, dtype=g.dtype)
        one_hot[k] = 1
        row = grad(g, xs, one_hot.reshape(x.shape), retain_graph=True, create_graph=create_graph, allow_unused=True)
    return _zeros_for_none(row, xs, strict, "hessian")


def _differentiable_inputs(inputs) -> tuple[tuple, bool]:
    """The inputs as a tuple of Tensors requiring gradients, and whether one Tensor was given."""
    single = isinstance(inputs, Tensor)
    xs = _as_tuple(inputs, "inputs")
    copies = tuple(x if x.requires_grad else Tensor(x.data, dtype=x.dtype, requires_grad=True) for x in xs)
    return copies, single


def _vectors_like(v, xs: tuple) -> tuple:
    """v as arrays, one per input and of its shape; None means 1 for a one-number input."""
    if v is None:
        if len(xs) != 1 or xs[0].size != 1:
            raise ValueError("hvp: v can be None only when the input is a single tensor with a single element")
        return (np.ones(xs[0].shape, dtype=xs[0].dtype),)
    vs = (v,) if isinstance(v, (Tensor, np.ndarray)) else tuple(v)
    if len(vs) != len(xs):
        raise ValueError(f"hvp: {len(vs)} vectors v for {len(xs)} inputs")
    arrays = tuple(vi.data if isinstance(vi, Tensor) else np.asarray(vi) for vi in vs)
    for i, (vi, x) in enumerate(zip(arrays, xs)):
        if vi.shape != x.shape:
            raise ValueError(f"hvp: v[{i}] has shape {format_shape(vi.shape)}, its input {format_shape(x.shape)}")
    return arrays


def _scalar_output(out, caller: str) -> Tensor:
    if not isinstance(out, Tensor) or out.size != 1:
        shape = format_shape(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"{caller}: func must return a Tensor with a single element, got {shape}")
    return out


def _zeros_for_none(grads: tuple, xs: tuple, strict: bool, caller: str) -> tuple:
    """Zeros for the inputs that got no gradient (None), or an error naming one when strict."""
    for i, g in enumerate(grads):
        if g is None and strict:
            raise RuntimeError(f"{caller}: the output does not depend twice on input {i}, so its Hessian block is 0")
    return tuple(Tensor._from_array(np.zeros(x.shape, dtype=x.dtype)) if g is None else g for g, x in zip(grads, xs))
