"""Losses, linear layers and attention at the edges of their arguments, against PyTorch.

Each case runs the fused kernel and its readable definition (`mg.use_kernels`) and compares
both with torch.nn.functional: cross-entropy with the classes on axis 1 (torch's layout), with
every target ignored, and with targets of the wrong shape; binary cross-entropy at 0 and 1;
dropout of everything; linear layers with torch's rarer shapes; attention masks of each dtype;
embedding ids of each integer type. Skips without torch.
"""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, kernels

torch = pytest.importorskip("torch")
TF = torch.nn.functional

BOTH_PATHS = pytest.mark.parametrize("fused", [True, False], ids=["kernel", "definition"])
DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def tolerance(dtype, terms: int) -> dict:
    """Rounding of a sum of `terms` numbers of about 1: a few epsilon per term, relative and absolute."""
    eps = np.finfo(dtype).eps
    return dict(rtol=4 * eps * terms, atol=4 * eps * terms)


def run(fn, arrays, dtype, fused: bool):
    """fn on Tensors of `arrays` (kernels or definitions): its value and the gradients of a seeded weighted sum."""
    with mg.use_kernels(fused):
        tensors = [Tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
        out = fn(*tensors)
        out.backward(np.random.default_rng(1).standard_normal(out.shape).astype(dtype))
    return out.data, [t.grad for t in tensors]


def run_torch(fn, arrays, dtype):
    tensors = [torch.tensor(a, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(torch.from_numpy(np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(dtype)))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def assert_matches_torch(ours, theirs, arrays, dtype, fused, terms):
    value, grads = run(ours, arrays, dtype, fused)
    expected, expected_grads = run_torch(theirs, arrays, dtype)
    assert value.dtype == dtype and value.shape == expected.shape
    np.testing.assert_allclose(value, expected, **tolerance(dtype, terms))
    for i, (grad, expected_grad) in enumerate(zip(grads, expected_grads)):
        assert grad.dtype == dtype
        np.testing.assert_allclose(grad, expected_grad, **tolerance(dtype, terms), err_msg=f"gradient of input {i}")


# ---------------------------------------------------------------- cross-entropy: torch's layout


@BOTH_PATHS
@DTYPES
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize(
    "logits_shape", [(4, 3), (2, 3, 5), (2, 3, 3), (2, 4, 3, 2), (3,)], ids=["NC", "NCd", "NCd_square", "NCdd", "C"]
)
def test_cross_entropy_reads_the_classes_on_axis_1_as_torch(logits_shape, label_smoothing, reduction, dtype, fused):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(logits_shape) * 2
    classes = logits_shape[1] if len(logits_shape) > 1 else logits_shape[0]
    targets = rng.integers(0, classes, logits_shape[:1] + logits_shape[2:] if len(logits_shape) > 1 else ())
    if targets.ndim:
        targets.reshape(-1)[1::3] = -100  # position 0 stays kept
    options = dict(reduction=reduction, label_smoothing=label_smoothing)
    assert_matches_torch(
        lambda z: kernels.cross_entropy(z, targets, ignore_index=-100, **options),
        lambda z: TF.cross_entropy(z, torch.from_numpy(targets), ignore_index=-100, **options),
        [logits],
        dtype,
        fused,
        terms=logits.size,
    )


@BOTH_PATHS
@pytest.mark.parametrize("logits_shape", [(4, 3), (2, 3, 5), (3,)], ids=["NC", "NCd", "C"])
def test_cross_entropy_with_probabilities_reads_the_classes_on_axis_1(logits_shape, fused):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal(logits_shape)
    probabilities = TF.softmax(torch.tensor(rng.standard_normal(logits_shape)), dim=min(1, len(logits_shape) - 1))
    for reduction in ("mean", "none"):
        assert_matches_torch(
            lambda z, r=reduction: kernels.cross_entropy(z, probabilities.numpy(), reduction=r, label_smoothing=0.2),
            lambda z, r=reduction: TF.cross_entropy(z, probabilities, reduction=r, label_smoothing=0.2),
            [logits],
            np.float64,
            fused,
            terms=logits.size,
        )


def test_an_unbatched_sample_takes_a_target_of_shape_1_too_as_torch():
    z = Tensor(np.array([0.5, -1.0, 2.0]), dtype=np.float64)
    expected = TF.cross_entropy(torch.tensor(z.data), torch.tensor([1])).item()
    for fused in (True, False):
        with mg.use_kernels(fused):
            loss = kernels.cross_entropy(z, np.array([1]), reduction="none")
        assert loss.shape == () and loss.item() == pytest.approx(expected, rel=1e-15)
    assert F.nll_loss(z.log_softmax(axis=0), np.array([1])).item() == pytest.approx(expected, rel=1e-15)


def test_cross_entropy_is_nll_loss_of_log_softmax_over_axis_1():
    rng = np.random.default_rng(2)
    z = Tensor(rng.standard_normal((2, 4, 3)), dtype=np.float64)
    t = rng.integers(0, 4, (2, 3))
    t[0, 1] = -1
    for reduction in ("mean", "sum", "none"):
        nll = F.nll_loss(z.log_softmax(axis=1), t, ignore_index=-1, reduction=reduction).data
        for fused in (True, False):
            with mg.use_kernels(fused):
                np.testing.assert_allclose(kernels.cross_entropy(z, t, reduction=reduction).data, nll, rtol=1e-14)


# ---------------------------------------------------------------- every target ignored


@BOTH_PATHS
@DTYPES
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_with_every_target_ignored_is_nan_with_zero_gradient(label_smoothing, dtype, fused):
    logits = np.random.default_rng(3).standard_normal((3, 4))
    targets = np.full(3, -100)
    with mg.use_kernels(fused), np.errstate(invalid="ignore", divide="ignore"):
        z = Tensor(logits, dtype=dtype, requires_grad=True)
        loss = kernels.cross_entropy(z, targets, ignore_index=-100, label_smoothing=label_smoothing)
        loss.backward()
    tz = torch.tensor(logits, requires_grad=True)
    expected = TF.cross_entropy(tz, torch.from_numpy(targets), label_smoothing=label_smoothing)
    expected.backward()
    assert np.isnan(loss.item()) and np.isnan(expected.item())
    np.testing.assert_array_equal(z.grad, tz.grad.numpy())  # zeros, not NaN


@pytest.mark.parametrize("weight", [None, np.array([1.0, 2.0, 3.0])])
def test_nll_loss_with_every_target_ignored_is_nan_with_zero_gradient(weight):
    x = Tensor(np.random.default_rng(4).standard_normal((2, 3)), dtype=np.float64, requires_grad=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = F.nll_loss(x, np.array([-100, -100]), weight=weight)
        loss.backward()
    tx = torch.tensor(x.data, requires_grad=True)
    TF.nll_loss(tx, torch.tensor([-100, -100]), weight=None if weight is None else torch.tensor(weight)).backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())


@BOTH_PATHS
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_an_ignored_row_counts_0_whatever_its_logits_hold_as_torch(reduction, fused):
    """An ignored row whose class-0 logit is -inf (a masked vocabulary): torch counts it 0; a
    product with 0 would give inf · 0 = NaN and spoil the whole mean."""
    logits = np.array([[-np.inf, 0.0, 1.0], [0.5, 0.2, -1.0], [0.1, -np.inf, 2.0]])
    targets = np.array([-100, 2, 0])
    with mg.use_kernels(fused), np.errstate(all="raise"):  # no NaN made along the way either
        z = Tensor(logits, dtype=np.float64, requires_grad=True)
        loss = F.cross_entropy(z, targets, ignore_index=-100, reduction=reduction)
        loss.sum().backward()
    tz = torch.tensor(logits, requires_grad=True)
    expected = TF.cross_entropy(tz, torch.from_numpy(targets), reduction=reduction)
    expected.sum().backward()
    np.testing.assert_allclose(loss.data, expected.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(z.grad, tz.grad.numpy(), rtol=1e-14, atol=1e-16)


# ---------------------------------------------------------------- cross-entropy: what it refuses


@pytest.mark.parametrize(
    "logits_shape, targets_shape",
    [((4, 3), (4, 1)), ((4, 3), (2,)), ((2, 3, 5), (3, 2)), ((2, 3, 5), (2, 3)), ((2, 3, 5), (10,)), ((3,), (2,))],
)
def test_targets_of_another_shape_than_torch_asks_are_refused(logits_shape, targets_shape):
    logits, targets = mg.randn(*logits_shape), np.zeros(targets_shape, dtype=np.int64)
    with pytest.raises((ValueError, RuntimeError)):
        TF.cross_entropy(torch.zeros(logits_shape), torch.from_numpy(targets))
    for cross_entropy in (kernels.cross_entropy.kernel, F.cross_entropy):
        with pytest.raises(ValueError, match=rf"need \d+ targets, of shape .*; got shape {re_shape(targets_shape)}"):
            cross_entropy(logits, targets)


def re_shape(shape: tuple) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("label_smoothing", [1.5, -0.1, float("nan")])
def test_label_smoothing_outside_0_1_is_refused(label_smoothing):
    """torch raises above 1; below 0 (and NaN) it smooths nothing, which a call here is told instead."""
    logits, targets = mg.randn(4, 3), np.array([0, 1, 2, 1])
    if label_smoothing > 1:
        with pytest.raises(RuntimeError, match="label_smoothing"):
            TF.cross_entropy(torch.zeros(4, 3), torch.from_numpy(targets), label_smoothing=label_smoothing)
    probabilities = np.full((4, 3), 1 / 3)
    for cross_entropy in (kernels.cross_entropy.kernel, F.cross_entropy):
        for t in (targets, probabilities):
            with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 1\]"):
                cross_entropy(logits, t, label_smoothing=label_smoothing)


# ---------------------------------------------------------------- binary cross-entropy at 0 and 1


@DTYPES
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_binary_cross_entropy_at_0_and_1_has_torchs_finite_gradient(reduction, dtype):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.5, 1e-13, 1e-5, 0.999])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0, 0.3, 0.0, 0.7])
    x = Tensor(p, dtype=dtype, requires_grad=True)
    loss = F.binary_cross_entropy(x, t, reduction=reduction)
    g = np.linspace(0.5, 1.5, loss.size).reshape(loss.shape).astype(dtype)
    loss.backward(g)
    tx = torch.tensor(p.astype(dtype), requires_grad=True)
    expected = TF.binary_cross_entropy(tx, torch.tensor(t.astype(dtype)), reduction=reduction)
    expected.backward(torch.from_numpy(g))
    np.testing.assert_allclose(loss.data, expected.detach().numpy(), **tolerance(dtype, p.size))
    assert np.isfinite(x.grad).all()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **tolerance(dtype, 4))


def test_binary_cross_entropy_target_gradient_and_shape_as_torch():
    p, t = np.array([0.0, 0.3, 1.0]), np.array([0.4, 0.4, 0.4])
    x, target = Tensor(p, dtype=np.float64), Tensor(t, dtype=np.float64, requires_grad=True)
    with np.errstate(divide="ignore"):
        F.binary_cross_entropy(x, target, reduction="sum").backward()
    tt = torch.tensor(t, requires_grad=True)
    TF.binary_cross_entropy(torch.tensor(p), tt, reduction="sum").backward()
    np.testing.assert_allclose(target.grad, tt.grad.numpy(), rtol=1e-15)  # ∞, finite, −∞
    with pytest.raises(ValueError, match="different to the input size"):
        TF.binary_cross_entropy(torch.rand(2, 3), torch.rand(3))
    with pytest.raises(ValueError, match=r"target of shape \(3,\) for input of shape \(2, 3\)"):
        F.binary_cross_entropy(mg.rand(2, 3), np.full(3, 0.5))


# ---------------------------------------------------------------- dropout of everything


@BOTH_PATHS
def test_attention_with_dropout_p_1_gives_zeros_and_zero_gradients_as_torch(fused):
    q = np.random.default_rng(5).standard_normal((2, 3, 4))
    assert_matches_torch(
        lambda q, k, v: kernels.scaled_dot_product_attention(q, k, v, dropout_p=1.0),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, dropout_p=1.0),
        [q, q + 1, q - 1],
        np.float64,
        fused,
        terms=1,
    )
    x = Tensor(q, dtype=np.float64, requires_grad=True)
    F.dropout(x, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros_like(q))
    with mg.use_kernels(fused), pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\]"):
        kernels.scaled_dot_product_attention(*(Tensor(q),) * 3, dropout_p=1.5)


# ---------------------------------------------------------------- linear: torch's rarer shapes


@BOTH_PATHS
@pytest.mark.parametrize(
    "x_shape, weight_shape, bias_shape",
    [((2, 3), (6, 3), (1, 6)), ((4, 2, 3), (6, 3), ()), ((4, 2, 3), (6, 3), (2, 6)), ((4, 2, 3), (3,), None)],
)
def test_linear_takes_torchs_rarer_shapes(x_shape, weight_shape, bias_shape, fused):
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal(s) for s in (x_shape, weight_shape, bias_shape) if s is not None]
    assert_matches_torch(kernels.linear, TF.linear, arrays, np.float64, fused, terms=x_shape[-1])


@BOTH_PATHS
def test_a_bias_that_would_grow_the_output_is_refused_as_torch(fused):
    x, w, b = torch.randn(2, 3), torch.randn(6, 3), torch.randn(3, 1, 6)
    with pytest.raises(RuntimeError):
        TF.linear(x, w, b)
    with mg.use_kernels(fused), pytest.raises(ValueError, match=r"bias of shape \(3, 1, 6\) would grow the output"):
        kernels.linear(*(Tensor(a.numpy()) for a in (x, w, b)))


# ---------------------------------------------------------------- attention masks: the dtypes torch takes


@BOTH_PATHS
@pytest.mark.parametrize("mask_dtype", [np.int64, np.int32, np.uint8])
def test_an_integer_attention_mask_is_refused_as_torch(mask_dtype, fused):
    q, mask = mg.randn(2, 3, 4), np.ones((3, 3), dtype=mask_dtype)
    with pytest.raises(RuntimeError, match="attn_mask dtype"):
        TF.scaled_dot_product_attention(*(torch.randn(2, 3, 4),) * 3, attn_mask=torch.from_numpy(mask))
    with mg.use_kernels(fused):
        for m in (mask, Tensor(mask)):
            with pytest.raises(TypeError, match="attn_mask must be boolean .* or float"):
                kernels.scaled_dot_product_attention(q, q, q, attn_mask=m)


@BOTH_PATHS
def test_a_float_mask_tensor_is_float32_or_the_querys_dtype_as_torch(fused):
    rng = np.random.default_rng(7)
    q, mask = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 3))
    with pytest.raises(RuntimeError, match="attn_mask dtype"):
        TF.scaled_dot_product_attention(*(torch.tensor(q, dtype=torch.float32),) * 3, attn_mask=torch.tensor(mask))
    with mg.use_kernels(fused):
        q32 = Tensor(q)
        with pytest.raises(TypeError, match="must be float32 or the query's dtype float32"):
            kernels.scaled_dot_product_attention(q32, q32, q32, attn_mask=Tensor(mask, dtype=np.float64))
        q64 = Tensor(q, dtype=np.float64)
        m32 = Tensor(mask, dtype=np.float32, requires_grad=True)
        out = kernels.scaled_dot_product_attention(q64, q64, q64, attn_mask=m32)
        out.sum().backward()
    tq = torch.tensor(q)
    tm = torch.tensor(mask, dtype=torch.float32, requires_grad=True)
    expected = TF.scaled_dot_product_attention(tq, tq, tq, attn_mask=tm)
    expected.sum().backward()
    assert out.dtype == np.float64 and m32.grad.dtype == np.float32
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-6)  # the mask is float32 on both sides
    np.testing.assert_allclose(m32.grad, tm.grad.numpy(), rtol=1e-5, atol=1e-6)


@BOTH_PATHS
@pytest.mark.parametrize("mask", [np.array([True, False, True, True]), np.array([0.0, -1.0, 2.0, -np.inf])])
def test_a_mask_of_one_axis_broadcasts_over_the_queries_as_torch(mask, fused):
    """torch broadcasts an attn_mask of shape (Tk,) as its documentation says (its CPU kernel for
    4-D queries alone cannot read one: there it raises an IndexError)."""
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 4, 3))]
    torch_mask = torch.from_numpy(mask)
    assert_matches_torch(
        lambda q, k, v: kernels.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=torch_mask),
        arrays,
        np.float64,
        fused,
        terms=4,
    )


# ---------------------------------------------------------------- embedding ids: int64 and int32


@BOTH_PATHS
@pytest.mark.parametrize("ids_dtype", [np.int64, np.int32, np.uint8, np.int8, np.int16, np.uint16])
def test_embedding_takes_the_id_types_torch_takes(ids_dtype, fused):
    weight = np.random.default_rng(9).standard_normal((5, 3))
    ids = np.array([[1, 4], [0, 1]], dtype=ids_dtype)
    torch_ids = torch.from_numpy(ids) if ids_dtype != np.uint16 else None
    with mg.use_kernels(fused):
        if ids_dtype in (np.int64, np.int32):
            out = kernels.embedding(ids, Tensor(weight, dtype=np.float64)).data
            np.testing.assert_array_equal(out, TF.embedding(torch_ids, torch.tensor(weight)).numpy())
            return
        if torch_ids is not None:
            with pytest.raises(RuntimeError, match="indices"):
                TF.embedding(torch_ids, torch.tensor(weight))
        with pytest.raises(TypeError, match="embedding ids must be int64 or int32"):
            kernels.embedding(ids, Tensor(weight))
