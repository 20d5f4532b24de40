"""minigrad: a small tensor autograd engine on NumPy."""

# the subpackages, as torch's: `mg.nn.Linear`, `mg.optim.AdamW`, `mg.functional.gelu`
from minigrad import functional, kernels, memory, nn, optim  # noqa: E402  (they import the above)
from minigrad.autograd import (
    Function,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad.tensor import (
    Tensor,
    concatenate,
    default_rng,
    manual_seed,
    ones,
    randn,
    stack,
    where,
    zeros,
)

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "concatenate",
    "default_rng",
    "detect_anomaly",
    "enable_grad",
    "functional",
    "gradcheck",
    "is_grad_enabled",
    "kernels",
    "manual_seed",
    "memory",
    "nn",
    "no_grad",
    "ones",
    "optim",
    "randn",
    "set_grad_enabled",
    "stack",
    "where",
    "zeros",
]
