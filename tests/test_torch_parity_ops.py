"""Every op against PyTorch: the same inputs give the same values and the same gradients.

Each case is a pair of functions, one written with minigrad and one with torch, and the
float64 arrays they both start from. Both run in float32 and in float64; both receive the
same output gradient. Skips cleanly when torch is not installed.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_ops_gradcheck import function_classes

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, kernels

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOLERANCES = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
# NumPy's float32 tanh can be 1 ulp short of -1 where torch's is exactly -1; 1 - tanh² then
# leaves ~1e-7 instead of 0, and GELU's slope there picks up an absolute error of ~1.5e-6.
FLOAT32_ATOL = {"gelu_tanh": 2e-6, "gelu_tanh_definition": 2e-6}
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def as_torch(array):
    return torch.as_tensor(np.asarray(array))


def cases() -> dict:
    """name -> (minigrad function, torch function, input arrays)."""
    rng = np.random.default_rng(0)

    def normal(*shape):
        return rng.standard_normal(shape)

    def positive(*shape):
        return rng.uniform(0.5, 2.0, shape)

    def away_from_zero(*shape):
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)

    ties = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, -1.0, 5.0]])
    mask = rng.random((3, 4)) > 0.5
    repeated = np.array([0, 2, 0, 0, 1])
    targets = np.array([1, 4, -100, 0, 2, -100])
    attn_mask = rng.random((3, 3)) >= 0.3  # True: may attend, as torch.nn.functional
    attn_mask[:, 0] = True  # every query sees at least one key
    float_mask = normal(3, 3)
    ids = np.array([[0, 3, 3], [1, 0, 4]])
    big = np.array([[1e4, -1e4, 0.0, 1.0], [-1e4, -1e4, -1e4, 1e4], [0.5, 0.0, -0.5, 3.0]])

    return {
        # binary, with broadcasting
        "add": (lambda a, b: a + b, lambda a, b: a + b, [normal(2, 3, 4), normal(3, 1)]),
        "sub": (lambda a, b: a - b, lambda a, b: a - b, [normal(4), normal(2, 3, 4)]),
        "mul": (lambda a, b: a * b, lambda a, b: a * b, [normal(2, 1, 4), normal(3, 1)]),
        "div": (lambda a, b: a / b, lambda a, b: a / b, [normal(2, 3), away_from_zero(3)]),
        "pow_tensor_tensor": (lambda a, b: a**b, lambda a, b: a**b, [positive(2, 3), normal(2, 3)]),
        "pow_tensor_number": (lambda a: a**3, lambda a: a**3, [normal(2, 3)]),
        "pow_number_tensor": (lambda a: 2.5**a, lambda a: 2.5**a, [normal(2, 3)]),
        "pow_zero_base": (
            lambda a, b: a**b,
            lambda a, b: a**b,
            [np.array([0.0, 0.0, 1.5, 0.0]), np.array([0, 2, 1, 0.5])],
        ),
        "rsub_rdiv": (lambda a: 1.5 - 2.0 / a, lambda a: 1.5 - 2.0 / a, [away_from_zero(5)]),
        "maximum": (lambda a, b: a.maximum(b), torch.maximum, [normal(3, 4), normal(4)]),
        "maximum_ties": (lambda a, b: a.maximum(b), torch.maximum, [ties, ties[::-1].copy()]),
        "zero_dim": (
            lambda a, b: a * b + a.exp() / b,
            lambda a, b: a * b + a.exp() / b,
            [np.array(0.3), np.array(-1.2)],
        ),
        # unary
        "neg": (lambda a: -a, lambda a: -a, [normal(3, 4)]),
        "exp": (lambda a: a.exp(), torch.exp, [normal(3, 4)]),
        "log": (lambda a: a.log(), torch.log, [positive(3, 4)]),
        "sqrt": (lambda a: a.sqrt(), torch.sqrt, [positive(3, 4)]),
        "tanh": (lambda a: a.tanh(), torch.tanh, [normal(3, 4)]),
        "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid, [normal(3, 4) * 5]),
        "sigmoid_saturated": (lambda a: a.sigmoid(), torch.sigmoid, [np.linspace(-80, 80, 33)]),
        "relu": (lambda a: a.relu(), torch.relu, [away_from_zero(3, 4)]),
        "abs": (lambda a: a.abs(), torch.abs, [away_from_zero(3, 4)]),
        # reductions
        "sum_all": (lambda a: a.sum(), torch.sum, [normal(2, 3, 4)]),
        "sum_axes_keepdims": (
            lambda a: a.sum(axis=(0, -1), keepdims=True),
            lambda a: a.sum(dim=(0, -1), keepdim=True),
            [normal(2, 3, 4)],
        ),
        "mean": (lambda a: a.mean(axis=-2), lambda a: a.mean(dim=-2), [normal(2, 3, 4)]),
        "var": (lambda a: a.var(axis=1), lambda a: a.var(dim=1, correction=0), [normal(2, 3, 4)]),
        "var_ddof1": (
            lambda a: a.var(axis=(0, 2), ddof=1, keepdims=True),
            lambda a: a.var(dim=(0, 2), correction=1, keepdim=True),
            [normal(2, 3, 4)],
        ),
        "var_all": (lambda a: a.var(), lambda a: a.var(correction=0), [normal(2, 3)]),
        "max_ties": (lambda a: a.max(axis=1), lambda a: torch.amax(a, dim=1), [ties]),
        "min_ties": (lambda a: a.min(axis=0, keepdims=True), lambda a: torch.amin(a, dim=0, keepdim=True), [ties]),
        "max_all_ties": (lambda a: a.max(), torch.amax, [ties]),
        "softmax": (lambda a: a.softmax(axis=0), lambda a: a.softmax(dim=0), [normal(3, 4)]),
        "softmax_large_logits": (lambda a: a.softmax(), lambda a: a.softmax(dim=-1), [big]),
        "log_softmax": (lambda a: a.log_softmax(axis=1), lambda a: a.log_softmax(dim=1), [normal(2, 3, 4)]),
        "log_softmax_large_logits": (lambda a: a.log_softmax(), lambda a: a.log_softmax(dim=-1), [big]),
        # movement and shape
        "reshape_tuple": (lambda a: a.reshape((4, -1)), lambda a: a.reshape(4, -1), [normal(2, 3, 4)]),
        "reshape_sizes": (lambda a: a.reshape(3, 8), lambda a: a.reshape(3, 8), [normal(2, 3, 4)]),
        "transpose_axes": (lambda a: a.transpose(2, 0, 1), lambda a: a.permute(2, 0, 1), [normal(2, 3, 4)]),
        "transpose_negative": (lambda a: a.transpose(-1, 0, 1), lambda a: a.permute(-1, 0, 1), [normal(2, 3, 4)]),
        "T": (lambda a: a.T, lambda a: a.permute(2, 1, 0), [normal(2, 3, 4)]),
        "broadcast_to": (lambda a: a.broadcast_to(2, 3, 4), lambda a: a.broadcast_to(2, 3, 4), [normal(3, 1)]),
        "getitem_basic": (lambda a: a[1, ..., None, 1:3], lambda a: a[1, ..., None, 1:3], [normal(2, 3, 4)]),
        "getitem_negative_step": (lambda a: a[-1, ::2], lambda a: a[-1, ::2], [normal(2, 3, 4)]),
        "getitem_repeated": (lambda a: a[repeated], lambda a: a[as_torch(repeated)], [normal(3, 4)]),
        "getitem_arrays": (
            lambda a: a[repeated[:3], :, repeated[1:4]],
            lambda a: a[as_torch(repeated[:3]), :, as_torch(repeated[1:4])],
            [normal(3, 2, 4)],
        ),
        "getitem_bool_mask": (lambda a: a[mask], lambda a: a[as_torch(mask)], [normal(3, 4)]),
        "concatenate": (
            lambda a, b: mg.concatenate([a, b, a], axis=-1),
            lambda a, b: torch.cat([a, b, a], dim=-1),
            [normal(2, 3), normal(2, 1)],
        ),
        "stack": (lambda a, b: mg.stack([a, b], axis=1), lambda a, b: torch.stack([a, b], dim=1), [normal(2, 3)] * 2),
        "where": (
            lambda a, b: mg.where(mask, a, b),
            lambda a, b: torch.where(as_torch(mask), a, b),
            [normal(3, 4), normal(4)],
        ),
        "masked_fill": (
            lambda a: a.masked_fill(mask, -1e9),
            lambda a: a.masked_fill(as_torch(mask), -1e9),
            [normal(2, 3, 4)],
        ),
        # matrix products
        "matmul_2d": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(3, 4), normal(4, 2)]),
        "matmul_vector_vector": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(4)]),
        "matmul_vector_matrix": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(2, 4, 3)]),
        "matmul_matrix_vector": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(4)]),
        "matmul_batched_broadcast": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 1, 3, 4), normal(5, 4, 2)]),
        "erf": (F.erf, torch.erf, [np.linspace(-4, 4, 33)]),
        "rms_norm": (F.rms_norm, lambda x, w: TF.rms_norm(x, (4,), w, eps=1e-6), [normal(2, 3, 4), normal(4)]),
    } | {
        name + suffix: case
        for M, suffix in ((kernels, ""), (F, "_definition"))
        for name, case in network_cases(M, normal, targets, big, ids, attn_mask, float_mask).items()
    }


def network_cases(M, normal, targets, big, ids, attn_mask, float_mask) -> dict:
    """The network functions of module M: minigrad.kernels (the fused ops) or minigrad.functional."""
    return {
        "gelu": (M.gelu, torch.nn.GELU(), [np.linspace(-6, 6, 49)]),
        "gelu_tanh": (lambda a: M.gelu(a, "tanh"), torch.nn.GELU("tanh"), [np.linspace(-6, 6, 49)]),
        "linear": (M.linear, TF.linear, [normal(2, 3, 4), normal(5, 4), normal(5)]),
        "linear_no_bias": (M.linear, TF.linear, [normal(3, 4), normal(5, 4)]),
        "layer_norm": (
            M.layer_norm,
            lambda x, w, b: TF.layer_norm(x, (4,), w, b, eps=1e-5),
            [normal(2, 3, 4) * 3 + 1, normal(4), normal(4)],
        ),
        "layer_norm_plain": (M.layer_norm, lambda x: TF.layer_norm(x, (4,)), [normal(3, 4)]),
        "cross_entropy_ignore_index": (
            lambda z: M.cross_entropy(z, targets, ignore_index=-100),
            lambda z: TF.cross_entropy(z, as_torch(targets), ignore_index=-100),
            [normal(6, 5)],
        ),
        "cross_entropy_large_logits": (
            lambda z: M.cross_entropy(z, targets[:3] % 4),
            lambda z: TF.cross_entropy(z, as_torch(targets[:3] % 4)),
            [big],
        ),
        "embedding": (
            lambda w: M.embedding(ids, w),
            lambda w: TF.embedding(as_torch(ids), w),
            [normal(5, 3)],
        ),
        "attention": (
            M.scaled_dot_product_attention,
            TF.scaled_dot_product_attention,
            [normal(2, 2, 3, 4), normal(2, 2, 5, 4), normal(2, 2, 5, 3)],
        ),
        "attention_bool_mask": (
            lambda q, k, v: M.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=as_torch(attn_mask)),
            [normal(2, 3, 4), normal(2, 3, 4), normal(2, 3, 2)],
        ),
        "attention_float_mask": (
            lambda q, k, v, m: M.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.4),
            lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.4),
            [normal(2, 3, 4), normal(2, 3, 4), normal(2, 3, 2), float_mask],
        ),
        "attention_causal": (
            lambda q, k, v: M.scaled_dot_product_attention(q, k, v, is_causal=True),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
            [normal(2, 4, 3), normal(2, 4, 3), normal(2, 4, 3)],
        ),
        "attention_causal_dropout_off": (
            lambda q, k, v: M.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.0),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.0),
            [normal(2, 3, 4, 3), normal(2, 3, 4, 3), normal(2, 3, 4, 3)],
        ),
        "cross_entropy_mean_label_smoothing": (
            lambda z: M.cross_entropy(z, targets, ignore_index=-100, reduction="mean", label_smoothing=0.1),
            lambda z: TF.cross_entropy(z, as_torch(targets), ignore_index=-100, reduction="mean", label_smoothing=0.1),
            [normal(6, 5)],
        ),
        "cross_entropy_sum_label_smoothing": (
            lambda z: M.cross_entropy(z, targets, ignore_index=-100, reduction="sum", label_smoothing=0.1),
            lambda z: TF.cross_entropy(z, as_torch(targets), ignore_index=-100, reduction="sum", label_smoothing=0.1),
            [normal(6, 5)],
        ),
        "cross_entropy_none_label_smoothing": (
            lambda z: M.cross_entropy(z, targets, ignore_index=-100, reduction="none", label_smoothing=0.1),
            lambda z: TF.cross_entropy(z, as_torch(targets), ignore_index=-100, reduction="none", label_smoothing=0.1),
            [normal(6, 5)],
        ),
        "layer_norm_two_axes": (
            lambda x, w, b: M.layer_norm(x, w, b),
            lambda x, w, b: TF.layer_norm(x, (3, 4), w, b, eps=1e-5),
            [normal(2, 3, 4), normal(3, 4), normal(3, 4)],
        ),
    }


CASES = cases()


def run_minigrad(fn, arrays, dtype, out_grad_seed: int = 1):
    tensors = [Tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    g = np.random.default_rng(out_grad_seed).standard_normal(out.shape).astype(dtype)
    out.backward(g)
    return out.data, [t.grad for t in tensors]


def run_torch(fn, arrays, dtype, out_grad_seed: int = 1):
    tensors = [torch.tensor(a, dtype=TORCH_DTYPES[dtype], requires_grad=True) for a in arrays]
    out = fn(*tensors)
    g = np.random.default_rng(out_grad_seed).standard_normal(tuple(out.shape)).astype(dtype)
    out.backward(torch.from_numpy(g))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_values_and_gradients_match_torch(name, dtype):
    ours, theirs, arrays = CASES[name]
    value, grads = run_minigrad(ours, arrays, dtype)
    expected_value, expected_grads = run_torch(theirs, arrays, dtype)
    assert value.dtype == dtype and value.shape == expected_value.shape
    assert np.isfinite(value).all()
    tolerance = dict(TOLERANCES[dtype])
    if dtype == np.float32:
        tolerance["atol"] = FLOAT32_ATOL.get(name, tolerance["atol"])
    np.testing.assert_allclose(value, expected_value, **tolerance)
    for i, (grad, expected) in enumerate(zip(grads, expected_grads)):
        assert grad.dtype == dtype
        np.testing.assert_allclose(grad, expected, **tolerance, err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_within_1e_6_of_torch(approximate):
    """float32 GELU uses a rational approximation of erf; it must stay within 1e-6 everywhere.

    The reference is torch's GELU in float64 at the same float32 points. (torch's own float32
    GELU is itself up to 1e-6 away from it, so the two float32 results may differ by twice that.)
    """
    x = np.linspace(-10, 10, 20001, dtype=np.float32)
    gelu = torch.nn.GELU(approximate)
    ours = F.gelu(Tensor(x), approximate=approximate).data
    exact = gelu(torch.from_numpy(x.astype(np.float64))).numpy()
    assert np.abs(ours - exact).max() < 1e-6
    assert np.abs(ours - gelu(torch.from_numpy(x)).numpy()).max() < 2e-6
    ours64 = F.gelu(Tensor(x, dtype=np.float64), approximate=approximate).data
    np.testing.assert_allclose(ours64, exact, rtol=1e-14, atol=1e-15)


def test_cross_entropy_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]], dtype=np.float32)
    targets = np.array([1, 2, 2])
    z = Tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, targets)
    loss.backward()
    tz = torch.tensor(logits, requires_grad=True)
    expected = TF.cross_entropy(tz, torch.as_tensor(targets))
    expected.backward()
    assert np.isfinite(loss.item()) and np.isfinite(z.grad).all()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(z.grad, tz.grad.numpy(), rtol=1e-6, atol=1e-7)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a.abs() ** b,
    "maximum": lambda a, b: a.maximum(b),
}


@pytest.mark.parametrize("name", BINARY)
@given(
    pair=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3), seed=st.integers(0, 99)
)
def test_broadcasting_binary_ops_match_torch(name, pair, seed):
    """Any pair of broadcastable shapes: the same result and gradients summed the same way."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape) for shape in pair.input_shapes]
    value, grads = run_minigrad(BINARY[name], arrays, np.float64)
    expected_value, expected_grads = run_torch(BINARY[name], arrays, np.float64)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    for grad, expected in zip(grads, expected_grads):
        assert grad.shape == expected.shape
        np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)


def functions_in_graph(out: Tensor) -> set[type]:
    """The Function classes that made `out`, found by walking its graph back to the leaves."""
    seen, todo = set(), [out]
    while todo:
        fn = todo.pop().grad_fn
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo.extend(parent for parent in fn.parents if parent is not None)
    return {type(fn) for fn in seen}


def test_every_function_is_compared_with_torch():
    covered = set()
    for ours, _, arrays in CASES.values():
        covered |= functions_in_graph(ours(*[Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]))
    missing = sorted(cls.__name__ for cls in function_classes() - covered)
    assert not missing, f"no torch parity case runs {missing}"
