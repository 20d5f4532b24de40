"""Every differentiable op, gradient-checked against central differences in float64.

Hypothesis draws the shapes (0-D to 4-D, broadcasting pairs, negative and tuple axes,
keepdims); a seed it draws fixes the values. Inputs are kept away from the points where an
op has no derivative (|x| near 0 for abs and relu, ties for max, non-positive x for log and
sqrt), because there the finite difference measures a kink, not a gradient.

Each test registers the `Function` classes it checks with `@checks(...)`. The meta-test at
the bottom finds every `Function` subclass under `minigrad` and fails for one without a
test, so an op cannot be added without its gradient check.
"""

from __future__ import annotations

import importlib
import pkgutil

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, kernels, ops

# Strict: float64 central differences with eps 1e-6 are good to ~1e-9 on these smooth ops.
ATOL, RTOL = 1e-6, 1e-5

GRADIENT_TESTS: dict[type | str, list[str]] = {}


def checks(*functions: type | str):
    """Record that the decorated test gradient-checks these Function classes or composed ops
    (named "Tensor.method", "mg.function" or "F.function")."""

    def register(test):
        for function in functions:
            GRADIENT_TESTS.setdefault(function, []).append(test.__name__)
        return test

    return register


def check(fn, *inputs) -> None:
    """First derivatives, then second derivatives (double backward), against central differences."""
    assert mg.gradcheck(fn, *inputs, atol=ATOL, rtol=RTOL)
    assert mg.gradgradcheck(fn, *inputs, atol=ATOL, rtol=RTOL)


def values(seed: int, shape: tuple, kind: str = "any") -> np.ndarray:
    """float64 values of `shape`, drawn so that the op is differentiable there.

    any: standard normal; positive: in [0.5, 2]; nonzero: |x| in [0.2, 2];
    distinct: all different by at least 0.25 (no ties for max/min).
    """
    rng = np.random.default_rng(seed)
    if kind == "any":
        return rng.standard_normal(shape)
    if kind == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if kind == "nonzero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)
    if kind == "distinct":
        n = int(np.prod(shape))
        return ((rng.permutation(n) - n / 2) * 0.25).reshape(shape)
    raise ValueError(kind)


def leaf(seed: int, shape: tuple, kind: str = "any") -> Tensor:
    return Tensor(values(seed, shape, kind), dtype=np.float64, requires_grad=True)


seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3)
shapes_or_scalar = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3)


@st.composite
def shape_and_axis(draw, min_dims: int = 1):
    """A shape and an `axis` argument: None, one axis or a tuple, each possibly negative."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=3))
    ndim = len(shape)
    choice = draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none" or ndim == 0:
        return shape, None
    negate = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    signed = [a - ndim if negate[a] else a for a in range(ndim)]
    if choice == "int":
        return shape, draw(st.sampled_from(signed))
    picked = draw(st.lists(st.sampled_from(signed), min_size=1, max_size=ndim, unique=True))
    # a tuple must not name one axis twice (e.g. 1 and -2 of a 3-D shape)
    return shape, tuple({a % ndim: a for a in picked}.values())


# ---------------------------------------------------------------- elementwise binary

BINARY = {
    "add": (lambda a, b: a + b, "any"),
    "sub": (lambda a, b: a - b, "any"),
    "mul": (lambda a, b: a * b, "any"),
    "div": (lambda a, b: a / b, "nonzero"),
    "maximum": (lambda a, b: a.maximum(b), "distinct"),
    "minimum": (lambda a, b: a.minimum(b), "distinct"),
}


@checks(ops.Add, ops.Sub, ops.Mul, ops.Div, ops.Maximum, ops.Minimum, "Tensor.maximum")
@pytest.mark.parametrize("name", BINARY)
@given(pair=broadcast_pairs, seed=seeds)
def test_binary_ops_broadcast(name, pair, seed):
    fn, kind = BINARY[name]
    a_shape, b_shape = pair.input_shapes
    a = leaf(seed, a_shape, "distinct" if kind == "distinct" else "any")
    # distinct values on both sides (multiples of 0.125), b shifted by 0.1 so that none ties
    b = leaf(seed + 1, b_shape, kind)
    if kind == "distinct":
        b = Tensor(b.data + 0.1, dtype=np.float64, requires_grad=True)
    check(fn, a, b)


@checks(ops.Add, ops.Sub, ops.Mul, ops.Div, ops.Pow)
@pytest.mark.parametrize(
    "fn",
    [
        lambda x: 2.5 + x,
        lambda x: 2.5 - x,
        lambda x: 2.5 * x,
        lambda x: 2.5 / x,
        lambda x: 2.5**x,
        lambda x: x - 1,
        lambda x: x / 4,
        lambda x: np.full(x.shape, 1.5) * x,  # ndarray on the left: Tensor.__rmul__ runs
        lambda x: np.full(x.shape, 1.5) - x,
    ],
    ids=["radd", "rsub", "rmul", "rtruediv", "rpow", "sub_number", "div_number", "ndarray_rmul", "ndarray_rsub"],
)
@given(shape=shapes_or_scalar, seed=seeds)
def test_reflected_and_number_operands(fn, shape, seed):
    check(fn, leaf(seed, shape, "nonzero"))


@checks(ops.Pow)
@given(pair=broadcast_pairs, seed=seeds)
def test_pow_tensor_tensor(pair, seed):
    base = leaf(seed, pair.input_shapes[0], "positive")  # d/db a^b = a^b ln a needs a > 0
    exponent = leaf(seed + 1, pair.input_shapes[1])
    check(lambda a, b: a**b, base, exponent)


@checks(ops.Pow)
@pytest.mark.parametrize("exponent", [2, 3, -1, 0.5, -1.5])
@given(shape=shapes_or_scalar, seed=seeds)
def test_pow_tensor_number(exponent, shape, seed):
    kind = "positive" if isinstance(exponent, float) else "nonzero"
    check(lambda x: x**exponent, leaf(seed, shape, kind))


# ---------------------------------------------------------------- elementwise unary

UNARY = {
    "neg": (lambda x: -x, "any"),
    "exp": (lambda x: x.exp(), "any"),
    "log": (lambda x: x.log(), "positive"),
    "sqrt": (lambda x: x.sqrt(), "positive"),
    "tanh": (lambda x: x.tanh(), "any"),
    "sigmoid": (lambda x: x.sigmoid(), "any"),
    "relu": (lambda x: x.relu(), "nonzero"),
    "abs": (lambda x: x.abs(), "nonzero"),
}


@checks(
    ops.Neg, ops.Exp, ops.Log, ops.Sqrt, ops.Tanh, ops.Sigmoid, ops.ReLU, ops.Abs, *(f"Tensor.{name}" for name in UNARY)
)
@pytest.mark.parametrize("name", UNARY)
@given(shape=shapes_or_scalar, seed=seeds)
def test_unary_ops(name, shape, seed):
    fn, kind = UNARY[name]
    check(fn, leaf(seed, shape, kind))


# ---------------------------------------------------------------- reductions


@checks(ops.Sum, "Tensor.sum")
@given(shape_axis=shape_and_axis(min_dims=0), keepdims=st.booleans(), seed=seeds)
def test_sum(shape_axis, keepdims, seed):
    shape, axis = shape_axis
    check(lambda x: x.sum(axis=axis, keepdims=keepdims), leaf(seed, shape))


@checks(ops.Max, ops.Min, "Tensor.max", "Tensor.min", "Tensor.amax", "Tensor.amin")
@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_max_min_without_ties(name, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    check(lambda x: getattr(x, name)(axis, keepdims), leaf(seed, shape, "distinct"))


@checks(ops.Max, ops.Min)
def test_max_min_split_ties_equally():
    """At a tie there is no derivative; the gradient is shared equally, as torch.amax does."""
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=np.float64, requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    x.grad = None
    x.min().backward()
    np.testing.assert_array_equal(x.grad, [[1, 0, 0], [0, 0, 0]])


@checks(ops.Sum, ops.Mul, "Tensor.mean")
@given(shape_axis=shape_and_axis(min_dims=0), keepdims=st.booleans(), seed=seeds)
def test_mean(shape_axis, keepdims, seed):
    shape, axis = shape_axis
    check(lambda x: x.mean(axis=axis, keepdims=keepdims), leaf(seed, shape))


@checks(ops.Sum, ops.Sub, ops.Mul, ops.Div, "Tensor.var")
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), ddof=st.sampled_from([0, 1]), seed=seeds)
def test_var(shape_axis, keepdims, ddof, seed):
    shape, axis = shape_axis
    count = int(np.prod([shape[a] for a in ops.normalize_axes(axis, len(shape))]))
    if count <= ddof:
        ddof = 0  # the sample variance of one element divides by zero
    check(lambda x: x.var(axis=axis, ddof=ddof, keepdims=keepdims), leaf(seed, shape))


@checks(ops.Softmax, ops.LogSoftmax, "Tensor.softmax", "Tensor.log_softmax")
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_family(name, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check(lambda x: getattr(x, name)(axis=axis), leaf(seed, shape))


# ---------------------------------------------------------------- movement and shape


@checks(ops.Reshape, "Tensor.reshape")
@given(shape=shapes_or_scalar, seed=seeds, data=st.data())
def test_reshape(shape, seed, data):
    size = int(np.prod(shape))
    targets = [(size,), (-1,), (1, size), (size, 1, -1), tuple(shape[::-1]) + (1,)] + ([()] if size == 1 else [])
    target = data.draw(st.sampled_from(targets))
    as_sizes = data.draw(st.booleans())
    x = leaf(seed, shape)
    check(lambda t: t.reshape(*target) if as_sizes else t.reshape(target), x)
    check(lambda t: t.reshape(shape[::-1]).reshape(-1), x)


@checks(ops.Transpose, "Tensor.transpose")
@given(shape=shapes, seed=seeds, data=st.data())
def test_transpose(shape, seed, data):
    ndim = len(shape)
    axes = data.draw(st.permutations(range(ndim)))
    signed = [a - ndim if data.draw(st.booleans()) else a for a in axes]
    x = leaf(seed, shape)
    check(lambda t: t.transpose(*signed), x)
    check(lambda t: t.transpose(tuple(signed)), x)
    check(lambda t: t.T, x)


@checks(ops.BroadcastTo, "Tensor.broadcast_to")
@given(pair=hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=4, max_side=3), seed=seeds)
def test_broadcast_to(pair, seed):
    check(lambda x: x.broadcast_to(pair.result_shape), leaf(seed, pair.input_shapes[0]))


INDICES = {
    "int": 1,
    "negative_int": -1,
    "slice": slice(0, 2),
    "step_slice": (slice(None, None, -2), 1),
    "none": (None, 0),
    "ellipsis": (Ellipsis, 1),
    "ellipsis_none": (0, ..., None),
    "int_array_repeated": np.array([0, 2, 0, 0]),
    "int_list": [1, 1, 2],
    "arrays_broadcast": (np.array([[0], [2]]), np.array([1, 3, 1])),
    "slice_then_array": (slice(None), np.array([3, 0, 3])),
    "bool_mask_rows": np.array([True, False, True]),
    "bool_mask_full": np.random.default_rng(0).random((3, 4, 2)) > 0.5,
    "all_ints": (2, 3, 1),
}


@checks(ops.GetItem)
@pytest.mark.parametrize("name", INDICES)
@given(seed=seeds)
def test_getitem(name, seed):
    check(lambda t: t[INDICES[name]], leaf(seed, (3, 4, 2)))


@checks(ops.AddAt)
@pytest.mark.parametrize("name", INDICES)
@given(seed=seeds)
def test_add_at(name, seed):
    """Indexing's backward as an op (used when a gradient is differentiated again)."""
    index = INDICES[name]
    index = np.asarray(index) if isinstance(index, list) else index
    picked_shape = np.zeros((3, 4, 2))[index].shape
    check(lambda g: ops.AddAt.apply(g, index=index, shape=(3, 4, 2)), leaf(seed, picked_shape))


@checks(ops.GetItem)
@given(shape=shapes, seed=seeds, data=st.data())
def test_getitem_random_integer_arrays(shape, seed, data):
    """Any integer array index, repeats and negatives included: repeats must add up."""
    picks = data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=6))
    check(lambda t: t[np.array(picks)], leaf(seed, shape))


@checks(ops.Concatenate, ops.Reshape, "mg.concatenate", "mg.stack")
@given(shape=shapes, seed=seeds, data=st.data(), count=st.integers(1, 3))
def test_concatenate_and_stack(shape, seed, data, count):
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=count, max_size=count))
    parts = []
    for i, n in enumerate(sizes):
        part_shape = list(shape)
        part_shape[axis] = n
        parts.append(leaf(seed + i, tuple(part_shape)))
    check(lambda *ts: mg.concatenate(ts, axis=axis), *parts)
    same = [leaf(seed + i, shape) for i in range(count)]
    stack_axis = data.draw(st.integers(-ndim - 1, ndim))
    check(lambda *ts: mg.stack(ts, axis=stack_axis), *same)


@checks(ops.Where, "mg.where", "Tensor.masked_fill", "Tensor.where")
@given(shapes3=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, max_side=3), seed=seeds)
def test_where_and_masked_fill(shapes3, seed):
    condition_shape, a_shape, b_shape = shapes3.input_shapes
    condition = np.random.default_rng(seed).random(condition_shape) > 0.5
    check(lambda a, b: mg.where(condition, a, b), leaf(seed, a_shape), leaf(seed + 1, b_shape))
    check(lambda b: mg.where(condition, 0.5, b), leaf(seed + 1, b_shape))
    check(lambda a, b: a.where(condition, b), leaf(seed, a_shape), leaf(seed + 1, b_shape))  # torch's method
    mask_shape = np.broadcast_shapes(condition_shape, b_shape)
    if mask_shape == b_shape:  # masked_fill keeps the tensor's shape
        check(lambda b: b.masked_fill(condition, -3.0), leaf(seed + 1, b_shape))
        check(lambda b: b.masked_fill(Tensor(condition), -3.0), leaf(seed + 1, b_shape))


# ---------------------------------------------------------------- matrix product


@st.composite
def matmul_shapes(draw):
    """Operand shapes for a @ b: 1-D either side, or batches that broadcast."""
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batches = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    a_batch, b_batch = batches.input_shapes
    a_shape = (k,) if draw(st.booleans()) else a_batch + (n, k)
    b_shape = (k,) if draw(st.booleans()) else b_batch + (k, m)
    return a_shape, b_shape


@checks(ops.MatMul)
@given(shapes_ab=matmul_shapes(), seed=seeds)
def test_matmul(shapes_ab, seed):
    a_shape, b_shape = shapes_ab
    check(lambda a, b: a @ b, leaf(seed, a_shape), leaf(seed + 1, b_shape))


@checks(ops.MatMul)
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3,)), ((3,), (4, 3, 2)), ((2, 1, 2, 3), (4, 3, 2))],
)
def test_matmul_named_cases(a_shape, b_shape):
    check(lambda a, b: a @ b, leaf(0, a_shape), leaf(1, b_shape))
    check(lambda b: np.ones(a_shape) @ b, leaf(1, b_shape))  # ndarray @ Tensor: __rmatmul__


# ---------------------------------------------------------------- 0-d tensors


@checks(ops.Mul, ops.Add, ops.Exp, ops.Sum, ops.Max)
def test_zero_dimensional_tensors():
    a, b = leaf(0, ()), leaf(1, ())
    check(lambda a, b: (a * b + a.exp()).sum() * b.max(), a, b)
    check(lambda a, b: a.reshape(1, 1) @ b.reshape(1), a, b)


# ---------------------------------------------------------------- functional definitions and their kernels
# Each test checks the readable definition (functional.py) and its fused kernel (kernels.py).


@checks(kernels.GELU, F.Erf, "F.gelu")
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@given(shape=shapes_or_scalar, seed=seeds)
def test_gelu(approximate, shape, seed):
    check(lambda x: kernels.gelu(x, approximate=approximate), leaf(seed, shape))
    check(lambda x: F.gelu(x, approximate=approximate), leaf(seed, shape))


@checks(F.Erf, "F.erf")
@given(shape=shapes_or_scalar, seed=seeds)
def test_erf(shape, seed):
    check(F.erf, leaf(seed, shape))


@checks(kernels.Linear, "F.linear")
@given(batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), n_in=st.integers(1, 3), n_out=st.integers(1, 3))
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear(batch, n_in, n_out, with_bias):
    x, w, b = leaf(0, batch + (n_in,)), leaf(1, (n_out, n_in)), leaf(2, (n_out,))
    inputs = (x, w, b) if with_bias else (x, w)
    check(kernels.linear, *inputs)
    check(F.linear, *inputs)


@checks(kernels.LayerNorm, "F.layer_norm")
@pytest.mark.parametrize("affine", ["weight_and_bias", "weight", "bias", "none"])
@pytest.mark.parametrize("layer_norm", [kernels.layer_norm, F.layer_norm], ids=["kernel", "definition"])
@given(
    batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
    normalized=hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=3),
    seed=seeds,
)
def test_layer_norm(affine, layer_norm, batch, normalized, seed):
    x, w, b = leaf(seed, batch + normalized), leaf(seed + 1, normalized), leaf(seed + 2, normalized)
    fns = {
        "weight_and_bias": (lambda x, w, b: layer_norm(x, w, b), (x, w, b)),
        "weight": (lambda x, w: layer_norm(x, w), (x, w)),
        "bias": (lambda x, b: layer_norm(x, None, b, normalized_shape=normalized), (x, b)),
        "none": (lambda x: layer_norm(x, eps=1e-3, normalized_shape=normalized), (x,)),
    }
    fn, inputs = fns[affine]
    check(fn, *inputs)


@checks(kernels.LayerNorm)
def test_layer_norm_gradient_of_each_input_alone():
    """Backward returns None for inputs that do not need a gradient: the others must still be right."""
    x, w, b = leaf(0, (2, 3)), leaf(1, (3,)), leaf(2, (3,))
    frozen_x = Tensor(x.data, dtype=np.float64)
    check(lambda w, b: kernels.layer_norm(frozen_x, w, b), w, b)
    check(lambda x: kernels.layer_norm(x, Tensor(w.data, dtype=np.float64), Tensor(b.data, dtype=np.float64)), x)


@checks(kernels.CrossEntropy, "F.cross_entropy")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(
    batch=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
    classes=st.integers(2, 5),
    seed=seeds,
    ignore_index=st.sampled_from([-1, -100, 0]),
    label_smoothing=st.sampled_from([0.0, 0.2]),
)
def test_cross_entropy(reduction, batch, classes, seed, ignore_index, label_smoothing):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, batch)
    targets.reshape(-1)[rng.random(targets.size) < 0.3] = ignore_index
    targets.reshape(-1)[0] = 1  # at least one kept row (class 1 is never the ignore_index here)
    logits = leaf(seed, batch[:1] + (classes,) + batch[1:])  # (N, C, d...): the classes on axis 1, as torch's
    options = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    check(lambda z: kernels.cross_entropy(z, targets, **options), logits)
    check(lambda z: F.cross_entropy(z, targets, **options), logits)
    check(lambda z: kernels.cross_entropy(z, Tensor(targets), **options), logits)


@st.composite
def attention_shapes(draw):
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=2))
    q_len, k_len, d, dv = (draw(st.integers(1, 3)) for _ in range(4))
    return batch, q_len, k_len, d, dv


@checks(kernels.ScaledDotProductAttention, "F.scaled_dot_product_attention", "F.attention_weights")
@pytest.mark.parametrize(
    "mask_kind", ["none", "bool", "float", "causal", "causal_and_bool", "bool_empty_row", "float_empty_row"]
)
@given(dims=attention_shapes(), seed=seeds)
def test_scaled_dot_product_attention(mask_kind, dims, seed):
    batch, q_len, k_len, d, dv = dims
    if mask_kind.startswith("causal"):
        k_len = q_len  # a causal mask pairs query i with key i
    rng = np.random.default_rng(seed)
    mask = None
    if "bool" in mask_kind:
        mask = rng.random((q_len, k_len)) >= 0.3  # True: may attend
        mask[:, 0] = True  # every query sees a key ...
    elif mask_kind.startswith("float"):
        mask = rng.standard_normal(batch[-1:] + (q_len, k_len))
    if mask_kind.endswith("empty_row"):  # ... but one, whose weights are 0 and gradient nothing
        empty = rng.integers(q_len)
        if mask.dtype == bool:
            mask[empty] = False
        else:
            mask[..., empty, :] = -np.inf
    causal = mask_kind.startswith("causal")
    q, k, v = leaf(seed, batch + (q_len, d)), leaf(seed + 1, batch + (k_len, d)), leaf(seed + 2, batch + (k_len, dv))
    for attention in (kernels.scaled_dot_product_attention, F.scaled_dot_product_attention):
        check(lambda q, k, v, attention=attention: attention(q, k, v, attn_mask=mask, is_causal=causal), q, k, v)
    check(lambda q, k: F.attention_weights(q, k, mask, causal), q, k)


@checks(kernels.ScaledDotProductAttention)
@given(dims=attention_shapes(), seed=seeds)
def test_attention_float_mask_gets_its_gradient(dims, seed):
    batch, q_len, k_len, d, dv = dims
    q, k, v = leaf(seed, batch + (q_len, d)), leaf(seed + 1, batch + (k_len, d)), leaf(seed + 2, batch + (k_len, dv))
    mask = leaf(seed + 3, batch[-1:] + (q_len, k_len))
    for attention in (kernels.scaled_dot_product_attention, F.scaled_dot_product_attention):
        check(lambda q, k, v, mask, attention=attention: attention(q, k, v, attn_mask=mask, scale=0.7), q, k, v, mask)


@checks(kernels.ScaledDotProductAttention)
def test_attention_broadcasts_keys_and_values_over_heads():
    q, k, v = leaf(0, (2, 3, 2, 4)), leaf(1, (2, 1, 3, 4)), leaf(2, (2, 1, 3, 2))
    check(kernels.scaled_dot_product_attention, q, k, v)


@checks(kernels.ScaledDotProductAttention)
def test_attention_dropout_with_a_fixed_mask():
    """The same seed gives the same dropout mask, so the function is deterministic and checkable."""
    q, k, v = leaf(0, (2, 3, 4)), leaf(1, (2, 3, 4)), leaf(2, (2, 3, 2))

    def attend(q, k, v, attention=kernels.scaled_dot_product_attention):
        return attention(q, k, v, dropout_p=0.4, rng=np.random.default_rng(7))

    check(lambda q, k, v: attend(q, k, v, F.scaled_dot_product_attention), q, k, v)  # the definition, twice
    assert mg.gradcheck(attend, q, k, v, atol=ATOL, rtol=RTOL)
    # the kernel's definition run again would draw another mask: no second derivative, loudly
    with pytest.raises(RuntimeError, match="definition of ScaledDotProductAttention run again"):
        mg.gradgradcheck(attend, q, k, v)


@checks(kernels.Embedding, ops.GetItem, "F.embedding")
@given(shape=shapes_or_scalar, seed=seeds)
def test_embedding(shape, seed):
    """Ids repeat (few rows, many ids), so rows must add up the gradients of all their uses."""
    ids = np.random.default_rng(seed).integers(0, 4, shape)
    check(lambda w: kernels.embedding(ids, w), leaf(seed, (4, 3)))
    check(lambda w: F.embedding(ids, w), leaf(seed, (4, 3)))
    check(lambda w: kernels.embedding(Tensor(ids), w), leaf(seed, (4, 3)))


@checks(ops.Mul, ops.Sqrt, "F.rms_norm", "F.dropout")
@given(shape=shapes, seed=seeds)
def test_rms_norm_and_dropout(shape, seed):
    """rms_norm and dropout are compositions of primitives."""
    check(lambda x, w: F.rms_norm(x, w), leaf(seed, shape), leaf(seed + 1, shape[-1:]))
    check(lambda x: F.dropout(x, 0.3, training=True, rng=np.random.default_rng(seed)), leaf(seed, shape))


# ---------------------------------------------------------------- the PyTorch vocabulary
# Primitives are registered by class, composed ops by their public name ("Tensor.cumsum",
# "mg.einsum", "F.silu"): test_every_public_op_is_checked below finds every public op.

VOCABULARY_UNARY = {
    "sin": (lambda x: x.sin(), "any", [ops.Sin, "Tensor.sin"]),
    "cos": (lambda x: x.cos(), "any", [ops.Cos, "Tensor.cos"]),
    "log2": (lambda x: x.log2(), "positive", ["Tensor.log2"]),
    "exp2": (lambda x: x.exp2(), "any", ["Tensor.exp2"]),
    "square": (lambda x: x.square(), "any", ["Tensor.square"]),
    "rsqrt": (lambda x: x.rsqrt(), "positive", ["Tensor.rsqrt"]),
    "clamp": (lambda x: x.clamp(-0.55, 0.65), "any", ["Tensor.clamp"]),
    "clamp_min": (lambda x: x.clamp(min=0.3), "any", ["Tensor.clamp"]),
    "clip_max": (lambda x: x.clip(max=-0.2), "any", ["Tensor.clamp"]),
    # flat between jumps: zero gradient (multiplied by x so that something is left to check)
    "sign": (lambda x: x.sign() * x, "nonzero", [ops.Rounding, "Tensor.sign"]),
    "floor": (lambda x: x.floor() + x, "any", [ops.Rounding, "Tensor.floor"]),
    "ceil": (lambda x: x.ceil() * x, "any", [ops.Rounding, "Tensor.ceil"]),
    "round": (lambda x: x.round() * x, "any", [ops.Rounding, "Tensor.round"]),
    "round_decimals": (lambda x: x.round(decimals=1) + x, "any", [ops.Rounding, "Tensor.round"]),
    "trunc": (lambda x: x.trunc() * x, "any", [ops.Rounding, "Tensor.trunc"]),
    # (a round trip through float32 would defeat the finite differences: see the torch parity test)
    "astype": (lambda x: x.astype(np.float64) * x.double(), "any", [ops.Cast, "Tensor.astype", "Tensor.double"]),
    "clone": (lambda x: x.clone() * 2, "any", [ops.Cast, "Tensor.clone"]),
    "silu": (F.silu, "any", ["F.silu"]),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), "nonzero", ["F.leaky_relu"]),
    "elu": (lambda x: F.elu(x, alpha=1.5), "nonzero", ["F.elu"]),
    "softplus": (F.softplus, "any", ["F.softplus"]),
    "softplus_beta": (lambda x: F.softplus(x * 8, beta=2, threshold=5), "any", ["F.softplus"]),
    "mish": (F.mish, "any", ["F.mish"]),
    "F_wrappers": (
        lambda x: F.relu(x) + F.softmax(x, dim=-1) + F.log_softmax(x, -1),
        "nonzero",
        ["F.relu", "F.softmax", "F.log_softmax"],
    ),
    "to": (lambda x: x.to(np.float64).to("cpu"), "any", [ops.Cast, "Tensor.to"]),
}


@checks(*{f for _, _, fs in VOCABULARY_UNARY.values() for f in fs})
@pytest.mark.parametrize("name", VOCABULARY_UNARY)
@given(shape=shapes_or_scalar, seed=seeds)
def test_vocabulary_elementwise(name, shape, seed):
    fn, kind, _ = VOCABULARY_UNARY[name]
    check(fn, leaf(seed, shape, kind))


@checks(ops.Remainder, ops.Rounding, "Tensor.minimum", "mg.minimum", "mg.maximum", "Tensor.clamp")
@given(pair=broadcast_pairs, seed=seeds)
def test_vocabulary_binary(pair, seed):
    a_shape, b_shape = pair.input_shapes
    a = leaf(seed, a_shape, "distinct")
    b = Tensor(values(seed + 1, b_shape, "distinct") + 0.1, dtype=np.float64, requires_grad=True)
    check(lambda a, b: a.minimum(b), a, b)
    check(lambda a, b: mg.minimum(a, b) + mg.maximum(a, b) * 2, a, b)
    # % and //: b away from zero, a / b away from the integers where a % b jumps
    divisor = Tensor(
        values(seed + 1, b_shape, "positive") * np.sign(values(seed + 2, b_shape, "nonzero")),
        dtype=np.float64,
        requires_grad=True,
    )
    quotient = np.broadcast_to(
        values(seed + 3, np.broadcast_shapes(a_shape, b_shape)) * 3, np.broadcast_shapes(a_shape, b_shape)
    )
    dividend = Tensor(np.round(quotient) + 0.5 + 0.3 * np.tanh(quotient), dtype=np.float64) * divisor.data
    dividend = Tensor(dividend.data, dtype=np.float64, requires_grad=True)
    check(lambda a, b: a % b, dividend, divisor)
    check(lambda a, b: a // b * a, dividend, divisor)
    check(lambda a: 7.5 % a + 7.5 // a, divisor)
    low, high = leaf(seed + 4, b_shape), leaf(seed + 5, b_shape)
    if np.all(np.abs(a.data - low.data) > 1e-3) and np.all(np.abs(a.data - high.data) > 1e-3):
        check(lambda a, low, high: a.clamp(low, high), a, low, high)


@checks("Tensor.std", "Tensor.prod", "Tensor.logsumexp", ops.Cumprod)
@given(shape_axis=shape_and_axis(min_dims=0), keepdims=st.booleans(), seed=seeds, torch_names=st.booleans())
def test_vocabulary_reductions(shape_axis, keepdims, seed, torch_names):
    shape, axis = shape_axis
    kwargs = dict(dim=axis, keepdim=keepdims) if torch_names else dict(axis=axis, keepdims=keepdims)
    check(lambda x: x.logsumexp(**kwargs), leaf(seed, shape))
    check(lambda x: x.prod(**kwargs), leaf(seed, shape))
    if _count_of(shape, axis) > 1:
        check(lambda x: x.std(**kwargs, correction=1), leaf(seed, shape))


def _count_of(shape, axis) -> int:
    return int(np.prod([shape[a] for a in ops.normalize_axes(axis, len(shape))]))


@checks(ops.Cumprod, "Tensor.prod")
@pytest.mark.parametrize("zeros_at", [(2,), (0,), (1, 3), (0, 4), (4,)])
def test_prod_and_cumprod_with_zeros(zeros_at):
    """The product of the others, even where an input is 0 (a division by it would give NaN)."""
    data = values(3, (2, 5))
    data[:, list(zeros_at)] = 0.0
    x = Tensor(data, dtype=np.float64, requires_grad=True)
    check(lambda x: x.cumprod(dim=1), x)
    check(lambda x: x.prod(dim=1), x)
    check(lambda x: x.prod(), x)


@checks(ops.Cumsum, ops.Cumprod, "Tensor.cumsum", "Tensor.cumprod")
@given(shape=shapes_or_scalar, seed=seeds, data=st.data())
def test_cumsum_cumprod(shape, seed, data):
    axis = data.draw(st.sampled_from([None] + list(range(-max(len(shape), 1), max(len(shape), 1)))))
    check(lambda x: x.cumsum(axis), leaf(seed, shape))
    check(lambda x: x.cumprod(dim=axis) if axis is not None else x.cumprod(), leaf(seed, shape))


@checks(ops.Gather, ops.ScatterAdd, "Tensor.gather", "Tensor.scatter_add")
@given(shape=shapes, seed=seeds, data=st.data())
def test_gather_and_scatter_add(shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    index_shape = tuple(
        data.draw(st.integers(1, n)) if d != dim % len(shape) else data.draw(st.integers(1, 4))
        for d, n in enumerate(shape)
    )
    index = rng.integers(0, shape[dim], index_shape)  # repeats: scatter_add must add them up
    check(lambda x: x.gather(dim, index), leaf(seed, shape))
    src_shape = tuple(n + data.draw(st.integers(0, 1)) for n in index_shape)  # src may be larger
    check(lambda x, src: x.scatter_add(dim, index, src), leaf(seed, shape), leaf(seed + 1, src_shape))


@checks(ops.Gather, "Tensor.sort", "Tensor.topk", "Tensor.max", "Tensor.min")
@given(shape=shapes, seed=seeds, data=st.data())
def test_sort_topk_and_max_with_dim(shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    descending, keepdim = data.draw(st.booleans()), data.draw(st.booleans())
    k = data.draw(st.integers(0, shape[dim]))
    x = leaf(seed, shape, "distinct")
    check(lambda x: x.sort(dim, descending=descending).values, x)
    check(lambda x: x.topk(k, dim, largest=descending).values, x)
    check(lambda x: x.max(dim=dim, keepdim=keepdim).values + x.min(dim=dim, keepdim=keepdim)[0], x)


@checks(ops.Einsum, "mg.einsum", "mg.tensordot")
@pytest.mark.parametrize(
    "equation, shapes_in",
    [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("ij,jk", [(2, 3), (3, 4)]),
        ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
        ("...ij,...jk->...ik", [(2, 1, 2, 3), (3, 3, 2)]),
        ("i,i->", [(3,), (3,)]),
        ("i,j->ij", [(3,), (2,)]),
        ("ii->i", [(3, 3)]),
        ("ii", [(3, 3)]),
        ("iij->ji", [(2, 2, 3)]),
        ("ij->", [(2, 3)]),
        ("ij->j", [(2, 3)]),
        ("ij,ij->ij", [(1, 3), (4, 3)]),
        ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 4)]),
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 2, 4)]),
        ("i,ii->i", [(3,), (3, 3)]),
    ],
)
def test_einsum(equation, shapes_in):
    """Every operand's gradient is an einsum of g with the others: sums, diagonals, broadcasting."""
    inputs = [leaf(i, shape) for i, shape in enumerate(shapes_in)]
    check(lambda *ts: mg.einsum(equation, *ts), *inputs)
    np.testing.assert_allclose(
        mg.einsum(equation, *inputs).data, np.einsum(equation, *[t.data for t in inputs]), rtol=1e-12
    )


@st.composite
def einsum_equations(draw):
    """A random equation over up to four letters: 1-3 operands, repeated letters (diagonals),
    letters only one operand has (summed away), and any subset of letters as the output."""
    letters = "ijkl"[: draw(st.integers(1, 4))]
    sizes = {c: draw(st.integers(1, 3)) for c in letters}
    terms = [
        "".join(draw(st.lists(st.sampled_from(letters), min_size=0, max_size=3)))
        for _ in range(draw(st.integers(1, 3)))
    ]
    used = sorted(set("".join(terms)))
    output = "".join(draw(st.permutations(used))[: draw(st.integers(0, len(used)))])
    shapes = [tuple(sizes[c] for c in term) for term in terms]
    return ",".join(terms) + "->" + output, shapes


@checks(ops.Einsum, "mg.einsum")
@given(equation_shapes=einsum_equations(), seed=seeds)
def test_einsum_random_equations(equation_shapes, seed):
    equation, shapes_in = equation_shapes
    inputs = [leaf(seed + i, shape) for i, shape in enumerate(shapes_in)]
    check(lambda *ts: mg.einsum(equation, *ts), *inputs)


small_shapes = hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)


@checks("mg.tensordot")
@given(a_free=small_shapes, contracted=small_shapes, b_free=small_shapes, seed=seeds)
def test_tensordot_random_shapes(a_free, contracted, b_free, seed):
    a, b = leaf(seed, a_free + contracted), leaf(seed + 1, contracted + b_free)
    check(lambda a, b: mg.tensordot(a, b, dims=len(contracted)), a, b)


@checks("mg.tensordot")
@pytest.mark.parametrize(
    "dims, b_shape", [(0, (2,)), (1, (4, 2)), (2, (3, 4, 2)), (([1, 0], [0, 1]), (3, 2)), (([2], [1]), (2, 4))]
)
def test_tensordot(dims, b_shape):
    a, b = leaf(0, (2, 3, 4)), leaf(1, b_shape)
    check(lambda a, b: mg.tensordot(a, b, dims=dims), a, b)


@checks("Tensor.tril", "Tensor.triu", "Tensor.diag", "Tensor.trace")
@given(shape=hnp.array_shapes(min_dims=2, max_dims=4, max_side=4), seed=seeds, diagonal=st.integers(-4, 4))
def test_triangles_and_diagonals(shape, seed, diagonal):
    check(lambda x: x.tril(diagonal) + x.triu(diagonal) * 2, leaf(seed, shape))
    check(lambda x: x.diag(diagonal), leaf(seed, shape[-2:]))
    check(lambda x: x.diag(diagonal), leaf(seed, shape[-1:]))
    check(lambda x: x.trace(), leaf(seed, shape[-2:]))


@checks(
    "Tensor.flip", "Tensor.roll", "Tensor.repeat", "Tensor.tile", "Tensor.permute", "Tensor.swapaxes",
    "Tensor.expand", "Tensor.t", "Tensor.squeeze", "Tensor.unsqueeze", "Tensor.flatten", "Tensor.unflatten",
)  # fmt: skip
@given(shape=shapes, seed=seeds, data=st.data())
def test_movement(shape, seed, data):
    ndim = len(shape)
    dims = tuple(
        data.draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim, unique_by=lambda a: a % ndim))
    )
    shifts = tuple(data.draw(st.integers(-5, 5)) for _ in dims)
    reps = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim + data.draw(st.integers(0, 1))))
    order = data.draw(st.permutations(range(ndim)))
    x = leaf(seed, shape)
    check(lambda t: t.flip(dims), x)
    check(lambda t: t.roll(shifts, dims), x)
    check(lambda t: t.roll(shifts[0]), x)
    check(lambda t: t.repeat(*reps), x)
    check(lambda t: t.tile(reps[1:]), x)
    check(lambda t: t.permute(*order), x)
    check(lambda t: t.swapaxes(dims[0], -1), x)
    check(lambda t: t.expand(2, *[-1] * ndim), x)
    check(lambda t: t.t() if t.ndim <= 2 else t.view(-1), x)
    check(lambda t: t.unsqueeze(dims[0]).squeeze(dims[0]).unsqueeze(-1).squeeze(), x)
    start = dims[0] % ndim
    check(lambda t: t.flatten(start).unflatten(start, shape[start:]), x)


@checks("Tensor.split", "Tensor.chunk", "mg.cat", "mg.stack")
@given(shape=shapes, seed=seeds, data=st.data())
def test_split_and_chunk(shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    size, chunks = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    check(lambda t: mg.cat([p * (i + 1) for i, p in enumerate(t.split(size, dim))], dim=dim), leaf(seed, shape))
    check(
        lambda t: mg.stack([p.sum() * (i + 1) for i, p in enumerate(t.chunk(chunks, dim=dim))], dim=0),
        leaf(seed, shape),
    )


@checks(
    F.BinaryCrossEntropy,
    "F.nll_loss",
    "F.binary_cross_entropy",
    "F.binary_cross_entropy_with_logits",
    "F.mse_loss",
    "F.l1_loss",
)
@given(batch=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), classes=st.integers(2, 4), seed=seeds)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses(reduction, batch, classes, seed):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, batch[:1] + batch[2:] if len(batch) > 1 else batch)
    targets.reshape(-1)[1::3] = -100
    weight = rng.uniform(0.5, 2.0, classes)
    shape = (batch[0], classes) + batch[2:] if len(batch) > 1 else batch[:1] + (classes,)
    log_probs = lambda z: z.log_softmax(axis=1)  # noqa: E731
    check(lambda z: F.nll_loss(log_probs(z), targets, reduction=reduction), leaf(seed, shape))
    check(lambda z: F.nll_loss(log_probs(z), targets, weight=weight, reduction=reduction), leaf(seed, shape))
    check(
        lambda z: F.nll_loss(z.log_softmax(axis=0), targets.reshape(-1)[0], reduction=reduction), leaf(seed, (classes,))
    )
    probabilities = rng.uniform(0.05, 0.95, batch)
    t = rng.uniform(0, 1, batch)
    check(
        lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction),
        Tensor(probabilities, dtype=np.float64, requires_grad=True),
        Tensor(t, dtype=np.float64, requires_grad=True),
    )
    check(
        lambda x: F.binary_cross_entropy_with_logits(x, t, weight=t[..., :1], reduction=reduction, pos_weight=2.0),
        leaf(seed, batch),
    )
    check(
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
        leaf(seed, batch),
        Tensor(t, dtype=np.float64, requires_grad=True),
    )


@checks("F.pad")
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=3, max_side=4), seed=seeds, data=st.data())
def test_pad(mode, shape, seed, data):
    lo = -1 if mode == "constant" else 0
    sizes = [data.draw(st.integers(lo, 2)) for _ in range(2 * data.draw(st.integers(1, len(shape))))]
    value = 0.5 if mode == "constant" else None
    check(lambda x: F.pad(x, sizes, mode=mode, value=value), leaf(seed, shape))


@checks("Tensor.__getitem__", ops.GetItem)
@pytest.mark.parametrize(
    "index",
    [
        ((0,), np.array([1, 2])),
        ([0, 2], slice(1, None)),
        ([0, 2], (1, 3)),
        ((0, 0), Ellipsis, [1]),
        ([(0, 1), (2, 0)],),  # inside a tuple: alone, a list of sequences is refused (torch reads it as a tuple)
        ([],),
    ],
    ids=["tuple_and_array", "list_and_slice", "list_and_tuple", "tuple_ellipsis_list", "nested", "empty_list"],
)
def test_getitem_with_sequences_inside(index):
    """Tuples and lists inside an index are integer arrays, as NumPy and torch read them."""
    x = leaf(0, (3, 4, 2))
    np.testing.assert_array_equal(x[index].data, x.data[_numpy_index(index)])
    check(lambda t: t[index], x)


def _numpy_index(index):
    items = index if isinstance(index, tuple) else (index,)
    converted = tuple(np.asarray(i, dtype=np.intp) if isinstance(i, (list, tuple)) else i for i in items)
    return converted if isinstance(index, tuple) else converted[0]


# ---------------------------------------------------------------- every kernel equals its definition


def _attention_mask(rng, q_len: int, k_len: int, kind: str):
    if kind == "bool":
        mask = rng.random((q_len, k_len)) >= 0.3  # True: may attend
        mask[:, 0] = True
        return mask
    return rng.standard_normal((q_len, k_len)) if kind == "float" else None


def _kernel_cases(rng, batch: tuple):
    """name -> (kernel class, arguments builder, float64 inputs): every kernel, in each of its forms.

    The builder takes the function to call (the kernel's wrapper or its class's `definition`).
    """
    x, w, b = rng.standard_normal(batch + (4,)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    scale, shift = rng.standard_normal(4), rng.standard_normal(4)
    logits = rng.standard_normal(batch[:1] + (5,) + batch[1:]) * 3  # (N, C, d...), the classes on axis 1 as torch's
    targets = rng.integers(0, 5, batch)  # (N, d...)
    targets.reshape(-1)[1::3] = -100  # row 0 is kept: a mean over no rows is NaN
    q, k, v = (rng.standard_normal(batch + (3, 4)) for _ in range(3))
    ids = rng.integers(0, 4, batch + (3,))
    cases = {
        "gelu": (kernels.GELU, lambda f: f, (x,)),
        "gelu_tanh": (kernels.GELU, lambda f: lambda t: f(t, approximate="tanh"), (x,)),
        "linear": (kernels.Linear, lambda f: f, (x, w, b)),
        "linear_no_bias": (kernels.Linear, lambda f: f, (x, w)),
        "layer_norm": (kernels.LayerNorm, lambda f: f, (x, scale, shift)),
        "layer_norm_plain": (kernels.LayerNorm, lambda f: f, (x,)),
        "layer_norm_two_axes": (kernels.LayerNorm, lambda f: f, (x.reshape(batch + (2, 2)), w[:2, :2], w[1:, 2:])),
        "embedding": (kernels.Embedding, lambda f: lambda w: f(ids, w), (rng.standard_normal((4, 3)),)),
    }
    for reduction in ["mean", "sum", "none"]:
        for smoothing in [0.0, 0.1]:
            cases[f"cross_entropy_{reduction}_{smoothing}"] = (
                kernels.CrossEntropy,
                lambda f, r=reduction, s=smoothing: (
                    lambda z: f(z, targets, ignore_index=-100, reduction=r, label_smoothing=s)
                ),
                (logits,),
            )
    for kind in ["none", "bool", "float", "causal"]:
        mask = _attention_mask(rng, 3, 3, kind)
        causal = kind == "causal"
        cases[f"attention_{kind}"] = (
            kernels.ScaledDotProductAttention,
            lambda f, mask=mask, causal=causal: lambda q, k, v: f(q, k, v, attn_mask=mask, is_causal=causal),
            (q, k, v),
        )
    cases["attention_float_mask_gradient"] = (
        kernels.ScaledDotProductAttention,
        lambda f: lambda q, k, v, m: f(q, k, v, attn_mask=m, is_causal=True, scale=0.3),
        (q, k, v, rng.standard_normal((3, 3))),
    )
    cases["attention_dropout"] = (
        kernels.ScaledDotProductAttention,
        lambda f: lambda q, k, v: f(q, k, v, dropout_p=0.3, rng=np.random.default_rng(3)),
        (q, k, v),
    )
    return cases


KERNEL_CASES = list(_kernel_cases(np.random.default_rng(0), (2,)))
WRAPPERS = {
    kernels.GELU: kernels.gelu,
    kernels.Linear: kernels.linear,
    kernels.LayerNorm: kernels.layer_norm,
    kernels.CrossEntropy: kernels.cross_entropy,
    kernels.Embedding: kernels.embedding,
    kernels.ScaledDotProductAttention: kernels.scaled_dot_product_attention,
}


def _value_and_grads(fn, arrays, dtype):
    tensors = [Tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weights = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    out.backward(weights)
    return out, [t.grad for t in tensors]


@pytest.mark.parametrize(
    "dtype, rtol, atol", [(np.float64, 1e-10, 1e-10), (np.float32, 2e-5, 2e-6)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("name", KERNEL_CASES)
@given(batch=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3), seed=seeds)
def test_kernel_equals_its_definition(name, dtype, rtol, atol, batch, seed):
    kernel, build, arrays = _kernel_cases(np.random.default_rng(seed), batch)[name]
    fused_out, fused_grads = _value_and_grads(build(WRAPPERS[kernel]), arrays, dtype)
    defined_out, defined_grads = _value_and_grads(build(kernel.definition), arrays, dtype)
    assert fused_out.dtype == defined_out.dtype == dtype
    np.testing.assert_allclose(fused_out.data, defined_out.data, rtol=rtol, atol=atol)
    for i, (a, b) in enumerate(zip(fused_grads, defined_grads)):
        assert a.dtype == dtype, f"gradient {i} is {a.dtype}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def test_every_kernel_names_its_definition_and_is_compared_with_it():
    found = {cls for cls in function_classes() if cls.__module__ == kernels.__name__}
    assert found == set(WRAPPERS)
    for cls in found:
        assert cls.definition is getattr(F, cls.definition.__name__), f"{cls.__name__}.definition is not in functional"
    compared = {_kernel_cases(np.random.default_rng(0), (2,))[name][0] for name in KERNEL_CASES}
    assert compared == found


# ---------------------------------------------------------------- the registry is complete


def function_classes() -> set[type]:
    """Every Function subclass defined anywhere in the minigrad package."""
    for module in pkgutil.walk_packages(mg.__path__, "minigrad."):
        importlib.import_module(module.name)
    found, todo = set(), [mg.Function]
    while todo:
        for subclass in todo.pop().__subclasses__():
            if subclass not in found:
                found.add(subclass)
                todo.append(subclass)
    return {cls for cls in found if cls.__module__.split(".")[0] == "minigrad"}


# Test files of their own that register gradient checks with `checks` (convolutions, selections):
# importing them completes the registry when this file runs alone.
CHECKED_ELSEWHERE = ("test_conv", "test_selection")


def registered_tests() -> dict[type | str, list[str]]:
    """GRADIENT_TESTS, with the checks of CHECKED_ELSEWHERE included."""
    for name in CHECKED_ELSEWHERE:
        importlib.import_module(name)
    return GRADIENT_TESTS


def test_every_function_has_a_gradient_test():
    missing = sorted(cls.__qualname__ for cls in function_classes() if cls not in registered_tests())
    assert not missing, f"Function subclasses without a gradient test (add one with @checks): {missing}"


def test_meta_test_notices_a_new_function():
    class Untested(mg.Function):
        pass

    Untested.__module__ = "minigrad.ops"
    try:
        assert Untested in function_classes() and Untested not in GRADIENT_TESTS
    finally:
        Untested.__module__ = __name__  # out of the package again, for the test above


# ---------------------------------------------------------------- every public op is checked too

# Public callables that are not operations on tensors.
NOT_OPS = {
    "Tensor.backward", "Tensor.detach", "Tensor.item", "Tensor.numpy", "Tensor.requires_grad_", "Tensor.zero_grad",
    "Tensor.numel", "Tensor.dim", "Tensor.tolist", "mg.default_rng", "mg.manual_seed", "mg.gradcheck",
    "mg.is_grad_enabled",
    "mg.grad", "mg.gradgradcheck", "mg.hessian", "mg.hvp",  # derivatives of ops, not ops
}  # fmt: skip
# Ops whose results carry no gradient (indices, booleans, new tensors): each needs a row in
# docs/ops.md and a torch case, but has no derivative to check.
NOT_DIFFERENTIABLE = {
    "Tensor.argmax", "Tensor.argmin", "Tensor.all", "Tensor.any", "Tensor.isclose", "Tensor.long",
    "mg.isclose", "mg.arange", "mg.eye", "mg.full", "mg.linspace", "mg.zeros", "mg.ones", "mg.zeros_like",
    "mg.ones_like", "mg.full_like", "mg.rand", "mg.randint", "mg.randn", "F.one_hot", "Tensor.nonzero",
}  # fmt: skip
# Differentiable, but only in float32: the float64 finite differences cannot see them; the
# torch parity test compares their values and gradients.
FLOAT32_ONLY = {"Tensor.float"}


def public_ops() -> dict[str, object]:
    """Every public op by name: Tensor methods, minigrad's functions, minigrad.functional's.

    An alias (x.view is x.reshape, mg.cat is mg.concatenate, mg.sum(x) is x.sum()) is listed
    once, under the name it was defined with.
    """
    import inspect

    found: dict[str, object] = {}
    for name, member in vars(Tensor).items():
        if inspect.isfunction(member) and (not name.startswith("_") or name == "__getitem__"):
            found.setdefault(f"Tensor.{member.__name__}", member)
    for name in mg.__all__:
        member = getattr(mg, name)
        if inspect.isfunction(member) and name not in mg.torch_functions.METHODS_AS_FUNCTIONS:
            found.setdefault(f"mg.{member.__name__}", member)
    for name in F.__all__:
        member = getattr(F, name)
        returns = inspect.signature(member).return_annotation
        if returns is inspect.Signature.empty or "Tensor" in str(returns):  # not the array helpers
            found.setdefault(f"F.{name}", member)
    return {name: member for name, member in found.items() if name not in NOT_OPS}


def test_every_public_op_has_a_gradient_test():
    differentiable = set(public_ops()) - NOT_DIFFERENTIABLE - FLOAT32_ONLY
    missing = sorted(name for name in differentiable if name not in registered_tests())
    assert not missing, f'public ops without a gradient test (register them with @checks("Tensor.name")): {missing}'


def test_public_op_discovery_sees_a_new_method():
    Tensor.unchecked_op = lambda self: self  # noqa: B010
    Tensor.unchecked_op.__name__ = "unchecked_op"
    try:
        assert "Tensor.unchecked_op" in public_ops() and "Tensor.unchecked_op" not in GRADIENT_TESTS
    finally:
        del Tensor.unchecked_op
