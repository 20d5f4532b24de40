"""minigrad: a small tensor autograd engine on NumPy."""

from minigrad.autograd import (
    Function,
    detect_anomaly,
    enable_grad,
    grad,
    hessian,
    hvp,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from minigrad.gradcheck import GradcheckError, gradcheck, gradgradcheck
from minigrad.memory import _on_import as _keep_freed_memory
from minigrad.parallel import num_threads, set_num_threads
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

_keep_freed_memory()

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "concatenate",
    "default_rng",
    "detect_anomaly",
    "enable_grad",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "hessian",
    "hvp",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "num_threads",
    "ones",
    "randn",
    "set_grad_enabled",
    "set_num_threads",
    "stack",
    "where",
    "zeros",
]
