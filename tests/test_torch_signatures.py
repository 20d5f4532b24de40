"""A name borrowed from PyTorch takes PyTorch's arguments: the parameter lists, compared.

For every public function of minigrad.functional, minigrad.nn and minigrad with a namesake in
torch.nn.functional, torch.nn and torch, the positional parameters torch accepts are compared
with minigrad's: name, position and default. A call written for torch then either means the
same here, or fails with a TypeError. The rules:

- minigrad may stop early: a torch parameter past the end of minigrad's list is refused by
  Python itself ("unexpected keyword argument", "takes 3 positional arguments") as long as
  minigrad's function takes no *args or **kwargs that would swallow it;
- minigrad's own extras (rng, dtype, fused) are keyword-only or come after all of torch's;
- the first parameter, the tensor, may be called `x` where torch says `input`: it is passed
  positionally (a keyword `input=` is refused by Python).

Every other difference is in ALLOWED with its reason: the contract (docs and DESIGN) fixes
the spelling, or the function refuses torch's form with a clear error (tested below).
`mg.sum(x, ...)` and the other functions that call a Tensor method pass their arguments on
unread, so they are not compared here: the methods' parity tests (test_torch_parity_ops.py)
hold them to torch's meaning.
"""

from __future__ import annotations

import ast
import inspect
import numbers
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, kernels, nn
from minigrad.torch_functions import METHODS_AS_FUNCTIONS

torch = pytest.importorskip("torch")

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)

# qualified name -> why minigrad's parameters differ from torch's there
DEPRECATED_REDUCTION = (
    "torch's deprecated size_average and reduce are left out, so reduction comes earlier; torch's positional "
    "size_average (None or a bool) lands on reduction (or on nll_loss's ignore_index) and is refused"
)
ALLOWED = {
    "F.layer_norm": "takes the contract's (x, weight, bias, eps) and torch's (input, normalized_shape, weight, bias, "
    "eps), told apart by the second argument (a shape or a weight); a call fitting neither is a TypeError naming both",
    "F.rms_norm": "as F.layer_norm: minigrad's (x, weight, eps) and torch's (input, normalized_shape, weight, eps)",
    "F.cross_entropy": "the contract fixes (logits, targets, ignore_index=-1, ...); torch's third argument, the "
    "class weights (or None), is refused: ignore_index must be an int",
    "F.dropout": "the contract fixes (x, p, training, rng); torch's fourth, inplace (a bool), is refused",
    "F.embedding": "the contract fixes embedding(ids, weight); torch's padding_idx, max_norm, ... are refused",
    "F.scaled_dot_product_attention": "the contract fixes rng after scale, where torch has enable_gqa",
    "F.binary_cross_entropy": DEPRECATED_REDUCTION,
    "F.binary_cross_entropy_with_logits": DEPRECATED_REDUCTION,
    "F.l1_loss": DEPRECATED_REDUCTION,
    "F.mse_loss": DEPRECATED_REDUCTION,
    "F.nll_loss": DEPRECATED_REDUCTION,
    "nn.Parameter": "a Parameter needs its data (torch's Parameter() is an empty tensor): Python refuses the call",
    "mg.cat": "NumPy's axis spelling (mg.cat is mg.concatenate); dim= is taken too, as every torch spelling",
    "mg.stack": "as mg.cat",
    "mg.where": "where(condition, a, b) names its operands NumPy's way; positionally the same as torch's",
    "mg.isclose": "as mg.where: (a, b, rtol, atol, equal_nan)",
    "mg.minimum": "as mg.where",
    "mg.maximum": "as mg.where",
}


def torch_parameters(function) -> list[inspect.Parameter] | None:
    """torch's parameters of function: its Python signature, else the one its docstring opens with."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
        if not parameters or not all(p.kind in VARIADIC for p in parameters):
            return parameters
    except (TypeError, ValueError):
        pass  # a C function: its docstring begins with the signature
    first_line = re.search(r"^\s*(\w+\(.*?\))\s*(->|$)", function.__doc__ or "", re.S)
    if first_line is None:  # a dispatcher (max_pool2d): torch's table of its functions' signatures
        testing_stand_in = torch.overrides.get_testing_overrides().get(function)
        return None if testing_stand_in is None else list(inspect.signature(testing_stand_in).parameters.values())
    try:
        arguments = ast.parse(f"def {first_line.group(1)}: pass").body[0].args
    except SyntaxError:  # overloads written as one line (arange(start=0, end, step=1)) are not Python
        return None
    defaults = [inspect.Parameter.empty] * (len(arguments.args) - len(arguments.defaults)) + arguments.defaults
    return [
        inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=_value(d))
        for a, d in zip(arguments.args, defaults)
    ]


def _value(node):
    if node is inspect.Parameter.empty:
        return node
    try:
        return ast.literal_eval(node)
    except ValueError:  # a name such as torch.strided: kept as its text
        return ast.unparse(node)


def own_parameters(function) -> list[inspect.Parameter]:
    target = function.__init__ if inspect.isclass(function) else function
    return [p for p in inspect.signature(target).parameters.values() if p.name != "self"]


def differences(ours: list[inspect.Parameter], theirs: list[inspect.Parameter]) -> list[str]:
    """What a positional or keyword call written for torch would meet here that it does not expect."""
    positional = [p for p in ours if p.kind in POSITIONAL]
    swallows = any(p.kind in VARIADIC for p in ours)
    found = []
    for i, their in enumerate(p for p in theirs if p.kind in POSITIONAL):
        if i >= len(positional):
            if swallows:
                found.append(f"torch's {their.name} (position {i}) goes into *args/**kwargs")
            continue
        our = positional[i]
        same_name = our.name == their.name or (i == 0 and (our.name, their.name) == ("x", "input"))
        if not same_name:
            found.append(f"position {i}: {our.name} here, {their.name} in torch")
        elif not _same_default(our.default, their.default):
            found.append(f"{our.name}: default {our.default!r} here, {their.default!r} in torch")
    return found


def _same_default(ours, theirs) -> bool:
    """Equal defaults; numbers by value (torch's docstrings write beta=1 for 1.0), a bool only as a bool."""
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours is theirs
    if isinstance(ours, numbers.Number) and isinstance(theirs, numbers.Number):
        return ours == theirs
    return type(ours) is type(theirs) and ours == theirs


def namesakes() -> dict:
    """'F.gelu' -> (minigrad's function, torch's) for every public name both sides have."""
    pairs = {}
    method_wrappers = set(METHODS_AS_FUNCTIONS.values())
    for prefix, ours, theirs in (("F", F, torch.nn.functional), ("nn", nn, torch.nn), ("mg", mg, torch)):
        for name in ours.__all__:
            mine, their = getattr(ours, name), getattr(theirs, name, None)
            if callable(mine) and callable(their) and mine not in method_wrappers and not inspect.ismodule(mine):
                pairs[f"{prefix}.{name}"] = (mine, their)
    return pairs


# the namesakes whose torch parameters are not readable: a class taking *args (torch.Tensor,
# nn.Module, nn.Sequential, nn.Sigmoid, nn.Tanh) or a C function documented by overloads that
# are not Python (`zeros(*size, *, out=None, ...)`, `arange(start=0, end, step=1, ...)`)
NOT_COMPARED = {
    "nn.Module", "nn.Sequential", "nn.Sigmoid", "nn.Tanh", "mg.Tensor", "mg.arange", "mg.full_like",
    "mg.ones", "mg.rand", "mg.randint", "mg.randn", "mg.zeros",
}  # fmt: skip


def compared() -> dict:
    return {name: pair for name, pair in namesakes().items() if name not in NOT_COMPARED}


def test_every_namesake_takes_torchs_parameters_or_is_allowed_with_a_reason():
    unlisted = {}
    for name, (ours, theirs) in compared().items():
        theirs_parameters = torch_parameters(theirs)
        assert theirs_parameters is not None, f"{name}: torch's parameters are unreadable; list it in NOT_COMPARED"
        found = differences(own_parameters(ours), theirs_parameters)
        if found and name not in ALLOWED:
            unlisted[name] = found
    assert not unlisted, f"parameters that differ from torch's, not in ALLOWED: {unlisted}"


def test_the_allow_list_holds_only_real_differences():
    """An entry whose function now matches torch (or is gone) must leave the list."""
    pairs = compared()
    stale = [
        name
        for name in ALLOWED
        if name not in pairs or not differences(own_parameters(pairs[name][0]), torch_parameters(pairs[name][1]))
    ]
    assert not stale, f"ALLOWED lists {stale}, which match torch now"


def test_not_compared_names_are_namesakes_whose_torch_parameters_are_unreadable():
    pairs = namesakes()
    readable = [name for name in NOT_COMPARED if name not in pairs or torch_parameters(pairs[name][1]) is not None]
    assert not readable, f"NOT_COMPARED lists {readable}: compare them"


def test_the_sweep_notices_a_torch_default_changed_or_a_parameter_moved():
    """The comparison itself: a different default, a renamed or an extra positional parameter."""

    def torch_like(input, normalized_shape, eps=1e-5): ...

    def other_default(x, normalized_shape, eps=1e-6): ...

    def extra_in_between(x, rng, normalized_shape, eps=1e-5): ...

    def extras_keyword_only(x, normalized_shape, eps=1e-5, *, rng=None): ...

    def swallows(x, *args, **kwargs): ...

    theirs = torch_parameters(torch_like)
    assert differences(own_parameters(other_default), theirs) == ["eps: default 1e-06 here, 1e-05 in torch"]
    assert differences(own_parameters(extra_in_between), theirs)[0] == "position 1: rng here, normalized_shape in torch"
    assert differences(own_parameters(extras_keyword_only), theirs) == []
    assert len(differences(own_parameters(swallows), theirs)) == 2


def test_torchs_parameters_are_read_from_a_c_functions_docstring():
    names = [p.name for p in torch_parameters(torch.nn.functional.gelu)]
    assert names == ["input", "approximate"] and torch_parameters(torch.nn.functional.gelu)[1].default == "none"


# ---------------------------------------------------------------- the norms in torch's form


def normal(shape, seed=0, dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tensors(*arrays) -> list[Tensor]:
    return [Tensor(a, dtype=a.dtype) for a in arrays]


def trailing_shapes():
    """(batch shape, normalised shape): one or two normalised axes behind up to two batch axes."""
    sizes = st.integers(1, 4)
    return st.tuples(st.lists(sizes, min_size=0, max_size=2), st.lists(sizes, min_size=1, max_size=2))


# float64 through both: a handful of terms per mean, each within a few ulps
ATOL = 1e-12


@pytest.mark.parametrize("layer_norm", [F.layer_norm, kernels.layer_norm], ids=["definition", "kernel"])
@given(shapes=trailing_shapes(), seed=st.integers(0, 2**16))
def test_layer_norm_takes_torchs_argument_order(layer_norm, shapes, seed):
    batch, normalized = map(tuple, shapes)
    x, w, b = normal(batch + normalized, seed), normal(normalized, seed + 1), normal(normalized, seed + 2)
    tx, tw, tb = map(torch.from_numpy, (x, w, b))
    expected = torch.nn.functional.layer_norm(tx, normalized, tw, tb).numpy()
    X, W, B = tensors(x, w, b)
    shape_forms = [normalized, list(normalized), torch.Size(normalized)] + (
        [normalized[0]] if len(normalized) == 1 else []
    )
    for shape in shape_forms:
        for got in (
            layer_norm(X, shape, W, B),
            layer_norm(X, shape, W, B, 1e-5),
            layer_norm(X, shape, W, B, eps=1e-5),
            layer_norm(X, shape, weight=W, bias=B),
            layer_norm(X, normalized_shape=shape, weight=W, bias=B),
        ):
            np.testing.assert_allclose(got.data, expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(layer_norm(X, W, B).data, expected, rtol=0, atol=ATOL)  # the contract's form
    plain = torch.nn.functional.layer_norm(tx, normalized).numpy()
    np.testing.assert_allclose(layer_norm(X, normalized).data, plain, rtol=0, atol=ATOL)


@pytest.mark.parametrize("layer_norm", [F.layer_norm, kernels.layer_norm], ids=["definition", "kernel"])
def test_layer_norm_in_torchs_order_keeps_eps_and_gradients(layer_norm):
    x, w, b = normal((3, 4)), normal(4, 1), normal(4, 2)
    ours = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    (layer_norm(ours[0], (4,), ours[1], ours[2], 0.5) ** 2).sum().backward()
    (torch.nn.functional.layer_norm(theirs[0], (4,), theirs[1], theirs[2], 0.5) ** 2).sum().backward()
    for our, their in zip(ours, theirs):
        np.testing.assert_allclose(our.grad, their.grad.numpy(), rtol=0, atol=ATOL)


@pytest.mark.parametrize("layer_norm", [F.layer_norm, kernels.layer_norm], ids=["definition", "kernel"])
def test_layer_norm_refuses_a_call_fitting_neither_order(layer_norm):
    X, W = tensors(normal((2, 4)), normal(4))
    with pytest.raises(TypeError, match=r"as torch, \(input, normalized_shape, weight=None"):
        layer_norm(X, (4,), W, weight=W)
    with pytest.raises(TypeError, match="as torch"):
        layer_norm(X, (4,), W, None, 1e-5, 1e-5)
    with pytest.raises(ValueError, match=r"weight of shape \(4,\) does not match normalized_shape \(3,\)"):
        layer_norm(X, (3,), W)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shapes=trailing_shapes(), seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 1e-3, 1e-5]))
def test_rms_norm_takes_torchs_arguments_and_default_eps(dtype, shapes, seed, scale):
    """torch's eps=None is the dtype's machine epsilon: it shows on inputs near zero (scale 1e-5)."""
    batch, normalized = map(tuple, shapes)
    x, w = normal(batch + normalized, seed, dtype) * dtype(scale), normal(normalized, seed + 1, dtype)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    X, W = tensors(x, w)
    tolerance = 4 * np.finfo(dtype).eps * np.prod(normalized)  # a mean of that many squares, then a root
    cases = {
        "torch's order": (F.rms_norm(X, normalized, W), torch.nn.functional.rms_norm(tx, normalized, tw)),
        "torch's order, eps": (
            F.rms_norm(X, normalized, W, 1e-3),
            torch.nn.functional.rms_norm(tx, normalized, tw, 1e-3),
        ),
        "keywords": (F.rms_norm(X, normalized_shape=normalized), torch.nn.functional.rms_norm(tx, normalized)),
        "minigrad's order": (F.rms_norm(X, W), torch.nn.functional.rms_norm(tx, normalized, tw)),
        "minigrad's order, eps": (F.rms_norm(X, W, 1e-6), torch.nn.functional.rms_norm(tx, normalized, tw, eps=1e-6)),
    }
    for name, (got, expected) in cases.items():
        np.testing.assert_allclose(got.data, expected.numpy(), rtol=tolerance, atol=0, err_msg=name)


def test_rms_norm_refuses_a_call_fitting_neither_order():
    X, W = tensors(normal((2, 4)), normal(4))
    with pytest.raises(TypeError, match=r"rms_norm takes \(x, weight=None, eps=None, normalized_shape=None\)"):
        F.rms_norm(X, 4, W, 1e-6, 1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "arguments", [((6,), {}), (6, {"eps": 1e-3}), ((3, 6), {}), (6, {"elementwise_affine": False})], ids=str
)
def test_rms_norm_module_matches_torchs_defaults(dtype, arguments):
    shape, keywords = arguments
    torch_dtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    ours, theirs = nn.RMSNorm(shape, **keywords, dtype=dtype), torch.nn.RMSNorm(shape, **keywords, dtype=torch_dtype)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    x = normal((2, 3, 6), dtype=dtype) * dtype(1e-5)  # near zero, where eps shows
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    terms = int(np.prod(shape))  # the mean of that many squares, then a root and a product
    np.testing.assert_allclose(ours(Tensor(x, dtype=dtype)).data, expected, rtol=4 * np.finfo(dtype).eps * terms)


@pytest.mark.parametrize("arguments", [(4, 1e-5, False), (4, 1e-5, True, False), ((3, 4), 1e-3, False, True)], ids=str)
def test_layer_norm_module_takes_torchs_positional_arguments(arguments):
    """nn.LayerNorm(4, 1e-5, False) is torch's elementwise_affine=False: no weight and no bias."""
    ours, theirs = nn.LayerNorm(*arguments, dtype=np.float64), torch.nn.LayerNorm(*arguments, dtype=torch.float64)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    x = normal((2, 3, 4))
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(Tensor(x, dtype=np.float64)).data, expected, rtol=0, atol=ATOL)


def test_the_gpts_rms_norms_keep_eps_1e_6():
    """The GPT's RMSNorm and QK-norm say eps=1e-6 themselves, so trained models keep their numbers."""
    from transformer import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=4, norm="rmsnorm", qk_norm=True))
    assert {m.eps for m in model.modules() if isinstance(m, nn.RMSNorm)} == {1e-6}


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_softmax_without_dim_takes_torchs_implicit_dim_up_to_two_dimensions(function, shape):
    x = normal(shape)
    with pytest.warns(UserWarning, match="Implicit dimension"):  # torch's choice is deprecated, but defined
        expected = getattr(torch.nn.functional, function)(torch.from_numpy(x)).numpy()
    got = getattr(F, function)(Tensor(x, dtype=np.float64)).data
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_softmax_without_dim_refuses_three_dimensions_where_torch_picks_dim_0(function):
    (x,) = tensors(normal((2, 3, 4)))
    with pytest.raises(
        TypeError, match=r"give dim= for an input of shape \(2, 3, 4\); torch's implicit choice \(dim 0"
    ):
        getattr(F, function)(x)
    np.testing.assert_allclose(getattr(F, function)(x, dim=-1).data, getattr(x, function)(-1).data)


def test_module_list_takes_none_as_torch():
    assert len(nn.ModuleList(None)) == 0 and len(torch.nn.ModuleList(None)) == 0


# ---------------------------------------------------------------- torch's forms refused with a clear error


@pytest.mark.parametrize("cross_entropy", [F.cross_entropy, kernels.cross_entropy], ids=["definition", "kernel"])
@pytest.mark.parametrize("targets", [np.array([0, 1, 2]), np.eye(3)], ids=["ids", "probabilities"])
def test_cross_entropy_refuses_torchs_class_weights_in_third_place(cross_entropy, targets):
    """torch's cross_entropy(input, target, weight): here the third place is ignore_index."""
    logits, weight = tensors(normal((3, 3)), np.ones(3))
    with pytest.raises(TypeError, match="cross_entropy: ignore_index must be an int, got Tensor"):
        cross_entropy(logits, targets, weight)
    assert np.isfinite(cross_entropy(logits, targets, np.int64(-1)).item())


@pytest.mark.parametrize("size_average", [None, True, False])
@pytest.mark.parametrize(
    "loss, arguments",
    [
        (F.binary_cross_entropy, lambda p, t, s: (p.sigmoid(), t, None, s)),
        (F.binary_cross_entropy_with_logits, lambda p, t, s: (p, t, None, s)),
        (F.l1_loss, lambda p, t, s: (p, t, s)),
        (F.mse_loss, lambda p, t, s: (p, t, s)),
        (F.nll_loss, lambda p, t, s: (p.log_softmax(-1), t.astype(np.int64)[:, 0], None, s)),
    ],
    ids=["binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss", "mse_loss", "nll_loss"],
)
def test_torchs_deprecated_size_average_in_place_is_refused(loss, arguments, size_average):
    """torch's loss(input, target, [weight,] size_average, ...): here that place holds reduction (or ignore_index)."""
    (p,) = tensors(normal((3, 2)))
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with pytest.raises((TypeError, ValueError), match="reduction|ignore_index"):
        loss(*arguments(p, targets, size_average))


def test_dropout_refuses_torchs_inplace_in_fourth_place():
    (x,) = tensors(normal((2, 3)))
    for inplace in (False, True):
        with pytest.raises(TypeError, match="fourth argument is rng"):
            F.dropout(x, 0.5, True, inplace)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Linear(3, 2, True, "cpu"),
        lambda: nn.Embedding(5, 3, None, 1.0),
        lambda: nn.Conv2d(1, 1, 3, 1, 0, 1, 1, True, "zeros", "cpu"),
        lambda: nn.BatchNorm1d(3, 1e-5, 0.1, True, True, "cpu"),
        lambda: nn.LayerNorm(4, 1e-5, True, True, "cpu"),
        lambda: nn.RMSNorm(4, None, True, "cpu"),
    ],
    ids=["Linear", "Embedding", "Conv2d", "BatchNorm1d", "LayerNorm", "RMSNorm"],
)
def test_torchs_positional_device_or_inplace_is_refused_not_taken_as_rng_or_dtype(make):
    with pytest.raises(TypeError, match="positional argument"):
        make()
