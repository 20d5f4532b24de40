"""Gradient checking: compare derivatives with central finite differences in float64.

`gradcheck` checks first derivatives (backward against differences of the function);
`gradgradcheck` checks second derivatives (double backward against differences of backward).
"""

from __future__ import annotations

import numpy as np

from minigrad.higher_order import grad
from minigrad.modes import no_grad
from minigrad.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the gradients of `fn(*inputs)` with respect to every input that requires grad.

    The floating inputs with `requires_grad=True` are copied to float64. A non-scalar output is
    reduced to the scalar Σ w ⊙ fn(...) with fixed random weights w, so every output element
    counts. For each input element x_i the numerical derivative is
        (f(x + eps·e_i) - f(x - eps·e_i)) / (2 eps),
    and it must match backward's within `atol + rtol·|numerical|`. Returns True, or raises
    `GradcheckError` naming the input, the worst element, and both values.
    """
    args, checked = _float64_inputs(inputs, "gradcheck")
    out = _call(fn, args, "gradcheck")
    weights = np.random.default_rng(seed).standard_normal(out.shape)

    def objective() -> float:
        with no_grad():
            return float((fn(*args).data * weights).sum())

    out.backward(weights)
    for i in checked:
        x = args[i]
        analytic = x.grad if x.grad is not None else np.zeros_like(x.data)
        _compare("gradcheck", i, x, analytic, _central_differences(objective, x, eps), atol, rtol)
    return True


def gradgradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the second derivatives of `fn(*inputs)` with respect to every input that requires grad.

    With fixed random weights w on the output, the first derivative
        d_i(x) = ∂/∂x_i Σ w ⊙ fn(x)
    is itself a function of the inputs, and its gradient is checked as gradcheck checks fn's:
    the scalar Σ_i Σ u_i ⊙ d_i(x) (fixed random weights u_i) is differentiated once by double
    backward (`mg.grad(..., create_graph=True)`, then `mg.grad` of the gradients) and once by
    central differences of d computed by plain backward. The first derivative that
    create_graph records must also have plain backward's values. Inputs are copied to float64.
    Returns True, or raises `GradcheckError` naming the input, the worst element and both values.
    """
    args, checked = _float64_inputs(inputs, "gradgradcheck")
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal(_call(fn, args, "gradgradcheck").shape)
    wanted = [args[i] for i in checked]
    directions = [rng.standard_normal(x.shape) for x in wanted]

    def first_derivatives(create_graph: bool) -> tuple:
        return grad(fn(*args), wanted, weights, create_graph=create_graph, allow_unused=True)

    def objective() -> float:
        return sum(float((d.data * u).sum()) for d, u in zip(first_derivatives(False), directions) if d is not None)

    recorded = first_derivatives(True)
    for i, d, plain in zip(checked, recorded, first_derivatives(False)):
        if (d is None) != (plain is None):
            raise GradcheckError(f"gradgradcheck: input {i} has a gradient only with{'out' * (d is None)} create_graph")
        if d is not None and not np.allclose(d.data, plain.data, rtol=1e-9, atol=1e-9):
            raise GradcheckError(
                f"gradgradcheck: the first derivative of input {i} recorded with create_graph=True differs from "
                f"backward's by {np.abs(d.data - plain.data).max():.3g}"
            )
    terms = [(d * u).sum() for d, u in zip(recorded, directions) if d is not None and d.requires_grad]
    second = [None] * len(wanted)
    if terms:
        second = grad(sum(terms[1:], terms[0]), wanted, allow_unused=True)
    for i, x, s in zip(checked, wanted, second):
        analytic = s.data if s is not None else np.zeros_like(x.data)
        _compare("gradgradcheck", i, x, analytic, _central_differences(objective, x, eps), atol, rtol)
    return True


def _float64_inputs(inputs: tuple, caller: str) -> tuple[list, list[int]]:
    """Float64 copies of the floating inputs, and the positions of those requiring a gradient."""
    args = [_as_float64(x) for x in inputs]
    checked = [i for i, x in enumerate(args) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError(f"{caller}: no input has requires_grad=True")
    return args, checked


def _call(fn, args: list, caller: str) -> Tensor:
    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"{caller}: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype != np.float64:
        raise GradcheckError(f"{caller}: fn returned {out.dtype} from float64 inputs")
    return out


def _central_differences(objective, x: Tensor, eps: float) -> np.ndarray:
    """d objective / d x, element by element: (f(x + eps·e_j) - f(x - eps·e_j)) / (2 eps)."""
    numeric = np.zeros_like(x.data)
    flat = x.data.reshape(-1)  # a view: perturbing it perturbs the input
    for j in range(flat.size):
        original = flat[j]
        flat[j] = original + eps
        plus = objective()
        flat[j] = original - eps
        minus = objective()
        flat[j] = original
        numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
    return numeric


def _compare(caller: str, i: int, x: Tensor, analytic: np.ndarray, numeric: np.ndarray, atol: float, rtol: float):
    error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if error.size and (np.nanmax(error) > 0 or not np.isfinite(analytic).all()):
        worst = np.unravel_index(np.nanargmax(np.where(np.isfinite(error), error, np.inf)), x.shape)
        raise GradcheckError(
            f"{caller} failed for input {i} (shape {x.shape}) at index {tuple(int(n) for n in worst)}: "
            f"numerical {numeric[worst]:.8g}, analytic {analytic[worst]:.8g}"
        )


def _as_float64(x):
    if isinstance(x, Tensor) and x.dtype.kind == "f":
        return Tensor(x.data, dtype=np.float64, requires_grad=x.requires_grad)
    return x
