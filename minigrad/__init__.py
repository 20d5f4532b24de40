"""minigrad: a small tensor autograd engine on NumPy."""

from minigrad.autograd import (
    Function,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad.memory import _on_import as _keep_freed_memory
from minigrad.parallel import num_threads, set_num_threads
from minigrad.profile import profile
from minigrad.tensor import (
    METHODS_AS_FUNCTIONS,
    Tensor,
    ValuesIndices,
    arange,
    cat,
    concatenate,
    default_rng,
    einsum,
    eye,
    full,
    full_like,
    isclose,
    linspace,
    manual_seed,
    maximum,
    minimum,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    stack,
    tensordot,
    where,
    zeros,
    zeros_like,
)

globals().update(METHODS_AS_FUNCTIONS)  # mg.sum(x, dim=1), mg.sin(x), ... as torch.sum, torch.sin

_keep_freed_memory()

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "ValuesIndices",
    "arange",
    "cat",
    "concatenate",
    "default_rng",
    "detect_anomaly",
    "einsum",
    "enable_grad",
    "eye",
    "full",
    "full_like",
    "gradcheck",
    "isclose",
    "is_grad_enabled",
    "linspace",
    "manual_seed",
    "maximum",
    "minimum",
    "no_grad",
    "num_threads",
    "ones",
    "ones_like",
    "profile",
    "rand",
    "randint",
    "randn",
    "set_grad_enabled",
    "set_num_threads",
    "stack",
    "tensordot",
    "where",
    "zeros",
    "zeros_like",
    *METHODS_AS_FUNCTIONS,
]
