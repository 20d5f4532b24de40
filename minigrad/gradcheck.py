"""Gradient checking: compare backward's gradients with central finite differences in float64."""

from __future__ import annotations

import numpy as np

from minigrad.autograd import no_grad
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
    args = [_as_float64(x) for x in inputs]
    checked = [i for i, x in enumerate(args) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype != np.float64:
        raise GradcheckError(f"gradcheck: fn returned {out.dtype} from float64 inputs")
    weights = np.random.default_rng(seed).standard_normal(out.shape)

    def objective() -> float:
        with no_grad():
            return float((fn(*args).data * weights).sum())

    out.backward(weights)
    for i in checked:
        x = args[i]
        analytic = x.grad if x.grad is not None else np.zeros_like(x.data)
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
        error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and (np.nanmax(error) > 0 or not np.isfinite(analytic).all()):
            worst = np.unravel_index(np.nanargmax(np.where(np.isfinite(error), error, np.inf)), x.shape)
            raise GradcheckError(
                f"gradcheck failed for input {i} (shape {x.shape}) at index {tuple(int(n) for n in worst)}: "
                f"numerical {numeric[worst]:.8g}, analytic {analytic[worst]:.8g}"
            )
    return True


def _as_float64(x):
    if isinstance(x, Tensor) and x.dtype.kind == "f":
        return Tensor(x.data, dtype=np.float64, requires_grad=x.requires_grad)
    return x
