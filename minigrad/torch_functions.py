"""torch.sum(x, dim=1) is x.sum(dim=1): Tensor's methods as functions of minigrad, as torch has them.

`mg.sum(x, dim=1)`, `mg.exp(x)`, `mg.softmax(x, dim=-1)` call the method of that name (a NumPy
array or a number is made a Tensor first). Each is defined here once, by name; these names
hide Python's sum, max, min, abs, round, all and any, so this module uses none of those.
`minimum`, `maximum` and `isclose` take two operands, and `cat` is `concatenate`.
"""

from __future__ import annotations

import numbers

from minigrad.tensor import Tensor, as_operand, as_tensors, concatenate

# name -> the function calling the method of that name (for the tests that compare each with torch)
METHODS_AS_FUNCTIONS: dict = {}


def _method_as_function(name: str):
    def function(input, *args, **kwargs):  # torch's name for the tensor, so that input= works too
        return getattr(input if isinstance(input, Tensor) else Tensor(input), name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"mg.{name}(x, ...) is x.{name}(...), as torch.{name}(x, ...) is x.{name}(...)."
    METHODS_AS_FUNCTIONS[name] = function
    return function


def minimum(a, b) -> Tensor:
    a, b = _tensor_first(a, b)
    return a.minimum(b)


def maximum(a, b) -> Tensor:
    a, b = _tensor_first(a, b)
    return a.maximum(b)


def _tensor_first(a, b) -> tuple:
    """The operands of a symmetric op, a tensor first; a Python number beside it stays weakly
    typed, as in the method (`minimum(int32 tensor, 7)` is int32, not int64)."""
    if isinstance(a, numbers.Number) and isinstance(b, Tensor):
        a, b = b, a
    if isinstance(a, Tensor) and isinstance(b, numbers.Number):
        return a, b
    return tuple(as_tensors([a, b]))


def isclose(a, b, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    return as_operand(a).isclose(b, rtol, atol, equal_nan)


cat = concatenate

# elementwise
exp = _method_as_function("exp")
log = _method_as_function("log")
sqrt = _method_as_function("sqrt")
tanh = _method_as_function("tanh")
sigmoid = _method_as_function("sigmoid")
relu = _method_as_function("relu")
abs = _method_as_function("abs")
sin = _method_as_function("sin")
cos = _method_as_function("cos")
log2 = _method_as_function("log2")
exp2 = _method_as_function("exp2")
square = _method_as_function("square")
rsqrt = _method_as_function("rsqrt")
clamp = _method_as_function("clamp")
clip = _method_as_function("clip")
sign = _method_as_function("sign")
floor = _method_as_function("floor")
ceil = _method_as_function("ceil")
round = _method_as_function("round")
trunc = _method_as_function("trunc")
# reductions and scans
sum = _method_as_function("sum")
mean = _method_as_function("mean")
var = _method_as_function("var")
std = _method_as_function("std")
prod = _method_as_function("prod")
logsumexp = _method_as_function("logsumexp")
max = _method_as_function("max")
min = _method_as_function("min")
amax = _method_as_function("amax")
amin = _method_as_function("amin")
argmax = _method_as_function("argmax")
argmin = _method_as_function("argmin")
all = _method_as_function("all")
any = _method_as_function("any")
cumsum = _method_as_function("cumsum")
cumprod = _method_as_function("cumprod")
softmax = _method_as_function("softmax")
log_softmax = _method_as_function("log_softmax")
sort = _method_as_function("sort")
topk = _method_as_function("topk")
# shape and movement
reshape = _method_as_function("reshape")
transpose = _method_as_function("transpose")
permute = _method_as_function("permute")
swapaxes = _method_as_function("swapaxes")
flatten = _method_as_function("flatten")
unflatten = _method_as_function("unflatten")
squeeze = _method_as_function("squeeze")
unsqueeze = _method_as_function("unsqueeze")
flip = _method_as_function("flip")
roll = _method_as_function("roll")
tile = _method_as_function("tile")
split = _method_as_function("split")
chunk = _method_as_function("chunk")
gather = _method_as_function("gather")
scatter_add = _method_as_function("scatter_add")
tril = _method_as_function("tril")
triu = _method_as_function("triu")
diag = _method_as_function("diag")
trace = _method_as_function("trace")
