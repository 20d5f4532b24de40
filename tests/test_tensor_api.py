"""The public names of the contract exist and behave as PyTorch's (or NumPy's) do."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor


def test_the_contract_example():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    assert x.dtype == np.float32 and x.grad is None
    y = ((x * 2 + 1) ** 2).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 12.0))  # d/dx (2x+1)² = 4 (2x+1)
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


def test_contract_names_exist():
    for name in ["Tensor", "no_grad", "concatenate", "stack", "where", "zeros", "ones", "randn"]:
        assert callable(getattr(mg, name)), name
    assert issubclass(mg.GradcheckError, AssertionError) and callable(mg.gradcheck)
    for name in ["gelu", "cross_entropy", "layer_norm", "dropout", "embedding", "scaled_dot_product_attention"]:
        assert callable(getattr(F, name)), name
    x = Tensor([[1.0, 2.0]])
    for name in [
        "sum", "mean", "max", "min", "var", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs",
        "reshape", "transpose", "softmax", "log_softmax", "masked_fill", "numpy", "item", "detach", "backward",
    ]:  # fmt: skip
        assert callable(getattr(x, name)), name


def test_properties():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == np.float32
    assert isinstance(x.data, np.ndarray) and x.numpy() is x.data
    assert len(x) == 2
    assert x.is_leaf and not x.requires_grad


def test_item_returns_a_python_number():
    assert Tensor(2.5).item() == 2.5 and isinstance(Tensor(2.5).item(), float)
    assert Tensor([[7]]).item() == 7 and isinstance(Tensor([[7]]).item(), int)
    with pytest.raises(ValueError, match=r"one element.*\(2,\)"):
        Tensor([1.0, 2.0]).item()


def test_truth_value_and_float_of_one_element_tensors():
    loss, best = Tensor(1.5), Tensor(2.0)
    assert loss < best and not loss > best  # a comparison can steer an `if`
    assert float(loss) == 1.5 and isinstance(float(loss), float)
    with pytest.raises(ValueError, match=r"shape \(2,\) is ambiguous"):
        bool(Tensor([1.0, 2.0]) > 0)


def test_constructor_copies_its_data():
    a = np.ones(3, dtype=np.float32)
    x = Tensor(a)
    a[0] = 5
    assert x.data[0] == 1


def test_repr_shows_data_dtype_and_grad_state():
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))
    assert "dtype=float64" in repr(Tensor([1.0], dtype=np.float64))
    assert "grad_fn=Mul" in repr(Tensor([1.0], requires_grad=True) * 2)


def test_reshape_takes_a_tuple_or_sizes():
    x = Tensor(np.arange(24.0))
    assert x.reshape((2, 3, 4)).shape == x.reshape(2, 3, 4).shape == (2, 3, 4)
    assert x.reshape([4, -1]).shape == x.reshape(4, -1).shape == (4, 6)
    assert x.reshape(-1).shape == (24,)
    assert Tensor([3.0]).reshape(()).shape == ()


def test_transpose_permutes_as_numpy():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(a)
    for axes in [(), (1, 0, 2), (2, 0, 1), (-1, 0, 1), (0, -1, -2)]:
        np.testing.assert_array_equal(x.transpose(*axes).data, a.transpose(*axes))
        if axes:
            np.testing.assert_array_equal(x.transpose(axes).data, a.transpose(axes))
    np.testing.assert_array_equal(x.T.data, a.T)
    with pytest.raises(ValueError, match="permutation"):
        x.transpose(0, 0, 1)


def test_pow_in_every_direction():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = Tensor([3.0, 0.5], requires_grad=True)
    np.testing.assert_allclose((x**y).data, [1.0, 2.0**0.5])
    np.testing.assert_allclose((2**x).data, [2.0, 4.0])
    np.testing.assert_allclose((x**2).data, [1.0, 4.0])
    (x**y + 2**x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0 + 2 * np.log(2), 0.5 * 2.0**-0.5 + 4 * np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(y.grad, [0.0, 2.0**0.5 * np.log(2)], rtol=1e-6)


def test_operators_and_their_reflected_forms():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = Tensor(a)
    cases = [
        (x + 1, a + 1), (1 + x, 1 + a), (x - 1, a - 1), (1 - x, 1 - a), (x * 2, a * 2), (2 * x, 2 * a),
        (x / 2, a / 2), (2 / x, 2 / a), (-x, -a), (x @ x, a @ a), (a @ x, a @ a), (x @ a, a @ a),
        (a + x, a + a), (a - x, a - a), (a * x, a * a), (a / x, a / a),
    ]  # fmt: skip
    for got, expected in cases:
        assert isinstance(got, Tensor)
        np.testing.assert_allclose(got.data, expected)


def test_comparisons_give_boolean_masks_outside_the_graph():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = x > 1.5
    assert mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal(mask.data, [False, True, True])
    np.testing.assert_array_equal((x <= 2).data, [True, True, False])
    np.testing.assert_array_equal(x.masked_fill(mask, 0.0).data, [1.0, 0.0, 0.0])


def test_reductions_follow_numpy():
    a = np.random.default_rng(0).standard_normal((2, 3, 4))
    x = Tensor(a, dtype=np.float64)
    for axis in [None, 0, -1, (0, 2), (-1, -3)]:
        for keepdims in [False, True]:
            for name in ["sum", "mean", "max", "min", "var"]:
                np.testing.assert_allclose(
                    getattr(x, name)(axis=axis, keepdims=keepdims).data,
                    getattr(a, name)(axis=axis, keepdims=keepdims),
                    rtol=1e-13,
                )
    np.testing.assert_allclose(x.var(axis=1, ddof=1).data, a.var(axis=1, ddof=1), rtol=1e-13)
    with np.errstate(invalid="ignore"):
        assert np.isnan(Tensor([2.0]).var(ddof=1).item())  # n - ddof = 0, as torch.var


def test_getitem_follows_numpy():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(a)
    for index in [1, -1, (1, 2), slice(None, None, -1), (None, ..., 0), (..., [0, 0, 3]), a > 10, ([1, 0], [2, 2])]:
        np.testing.assert_array_equal(x[index].data, a[index])
    np.testing.assert_array_equal(x[Tensor([1, 1])].data, a[[1, 1]])


def test_module_functions_take_a_shape_tuple_or_sizes():
    for make in [mg.zeros, mg.ones, mg.randn]:
        assert make(2, 3).shape == make((2, 3)).shape == make([2, 3]).shape == (2, 3)
        assert make(4).shape == (4,)
        assert make(2, dtype=np.float64).dtype == np.float64
        assert make(2, requires_grad=True).requires_grad
    np.testing.assert_array_equal(mg.zeros(2).data, [0.0, 0.0])
    np.testing.assert_array_equal(mg.ones(2).data, [1.0, 1.0])


def test_randn_is_reproducible():
    mg.manual_seed(3)
    first = mg.randn(4).data
    mg.manual_seed(3)
    np.testing.assert_array_equal(mg.randn(4).data, first)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(mg.randn(2, 2, rng=rng_a).data, mg.randn((2, 2), rng=rng_b).data)


def test_concatenate_stack_where():
    a, b = np.ones((2, 3)), np.zeros((2, 3))
    np.testing.assert_array_equal(mg.concatenate([Tensor(a), Tensor(b)], axis=-1).data, np.concatenate([a, b], -1))
    np.testing.assert_array_equal(mg.stack([Tensor(a), Tensor(b)], axis=-1).data, np.stack([a, b], -1))
    condition = np.array([True, False, True])
    np.testing.assert_array_equal(mg.where(condition, Tensor(a), 5.0).data, np.where(condition, a, 5.0))
    np.testing.assert_array_equal(mg.where(Tensor(condition), 1.0, Tensor(b)).data, np.where(condition, 1.0, b))


def test_softmax_rows_sum_to_one_even_for_huge_logits():
    x = Tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    p = x.softmax()
    np.testing.assert_allclose(p.data.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.exp(x.log_softmax().data), p.data, atol=1e-7)
    assert np.isfinite(x.log_softmax(axis=0).data).all()


def test_dropout_is_inverted_and_seeded():
    x = Tensor(np.ones((100, 100)))
    a = F.dropout(x, 0.25, training=True, rng=np.random.default_rng(0)).data
    b = F.dropout(x, 0.25, training=True, rng=np.random.default_rng(0)).data
    np.testing.assert_array_equal(a, b)  # the same seeded generator, the same mask
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.02
    assert F.dropout(x, 0.25, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.dropout(x, 1.5)


def test_cross_entropy_means_over_kept_rows():
    logits = Tensor(np.zeros((4, 5)), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, -1, 2, -1]))  # ignore_index=-1 by default
    assert loss.item() == pytest.approx(np.log(5))
    loss.backward()
    np.testing.assert_array_equal(logits.grad[[1, 3]], 0.0)  # ignored rows get no gradient
    np.testing.assert_allclose(logits.grad[0], (np.full(5, 0.2) - np.eye(5)[1]) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 5\)"):
        F.cross_entropy(logits, np.array([1, 7, 2, 0]))


def test_attention_boolean_mask_is_true_where_attention_may_happen():
    """torch.nn.functional's meaning (the nn modules' masks mean the opposite, as torch.nn's)."""
    q = k = Tensor(np.eye(3)[None])
    v = Tensor(np.arange(9.0).reshape(1, 3, 3))
    allowed = np.array([[True, False, False], [True, True, False], [True, True, True]])
    masked = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed).data
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True).data
    np.testing.assert_allclose(masked, causal, rtol=1e-6)
    np.testing.assert_allclose(masked[0, 0], v.data[0, 0], rtol=1e-6)  # the first query sees one key


# ---------------------------------------------------------------- gradcheck itself


class _WrongSquare(mg.Function):
    """x² with the derivative off by a factor of two, to watch gradcheck catch it."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * self.x


def test_gradcheck_passes_correct_gradients_and_returns_true():
    x = Tensor(np.random.default_rng(0).standard_normal((3, 2)), requires_grad=True)
    assert mg.gradcheck(lambda t: (t * t).sum(axis=0), x) is True


def test_gradcheck_names_input_index_and_both_values():
    scale = Tensor([1.0])  # input 0 needs no gradient; input 1 is checked
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with pytest.raises(mg.GradcheckError) as error:
        mg.gradcheck(lambda c, t: (_WrongSquare.apply(t) * c).sum(), scale, x)
    message = str(error.value)
    # the error grows with |x|: the worst element is the largest one
    assert "input 1" in message and "(2, 2)" in message and "index (1, 1)" in message
    numeric = float(re.search(r"numerical (\S+),", message).group(1))
    analytic = float(re.search(r"analytic (\S+)$", message).group(1))
    assert numeric == pytest.approx(2 * analytic, rel=1e-6)  # d(x²)/dx = 2x, backward said x


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        mg.gradcheck(lambda t: t * 2, Tensor([1.0]))


# ---------------------------------------------------------------- no silent wrong answers


def test_eq_and_ne_are_elementwise():
    x = Tensor([0.0, 1.0, 2.0])
    np.testing.assert_array_equal((x == 0).data, [True, False, False])
    np.testing.assert_array_equal((x != 0).data, [False, True, True])
    np.testing.assert_array_equal((x == Tensor([0.0, 5.0, 2.0])).data, [True, False, True])
    np.testing.assert_array_equal((0 == x).data, [True, False, False])  # reflected: Tensor.__eq__ runs
    assert (x == 1).dtype == np.bool_ and not (x == 1).requires_grad


def test_tensors_hash_by_identity():
    a, b = Tensor([1.0]), Tensor([1.0])
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b" and len({a, b, a}) == 2


def test_optimizers_and_modules_keep_equal_tensors_apart():
    """Two parameters with equal values (elementwise == would call them equal) stay two."""
    from minigrad import nn, optim

    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    for p in model.parameters():
        p.data[...] = 0.5
    params = list(model.parameters())
    assert len(params) == 4
    opt = optim.Adam(params, lr=0.1)
    with pytest.raises(ValueError):
        opt.add_param_group({"params": [params[0]]})  # the same tensor twice is refused
    opt.add_param_group({"params": [Tensor(np.full((2, 2), 0.5), requires_grad=True)]})  # an equal one is not
    model[1].weight = model[0].weight  # tied: listed once
    assert len(list(model.parameters())) == 3


def test_mean_and_var_over_an_empty_axis_are_nan():
    x = Tensor(np.ones((3, 0)))
    assert np.isnan(x.mean().item()) and np.isnan(x.var().item())
    np.testing.assert_array_equal(np.isnan(x.mean(axis=1).data), [True] * 3)
    assert x.mean(axis=0).shape == (0,)


def test_var_divisor_is_clamped_at_zero():
    x = Tensor([1.0, 2.0])
    assert x.var(ddof=3).item() == np.inf  # torch: inf; never (Σ (x − μ)²) / (2 − 3) = −0.5
    assert np.isnan(Tensor([1.0, 1.0]).var(ddof=2).item())
    assert x.var(ddof=1).item() == 0.5 and x.var(correction=1).item() == 0.5


def test_stack_rejects_an_axis_out_of_range():
    a = Tensor(np.ones((2, 3)))
    assert mg.stack([a, a], axis=2).shape == (2, 3, 2) and mg.stack([a, a], axis=-3).shape == (2, 2, 3)
    for axis in (3, 5, -4):
        with pytest.raises(ValueError, match="out of range"):
            mg.stack([a, a], axis=axis)
    with pytest.raises(ValueError, match="out of range"):
        mg.concatenate([a, a], axis=2)
    with pytest.raises(ValueError, match=r"\(2, 3\), \(3,\)"):
        mg.concatenate([a, a[0]])  # NumPy's message would not say which


def test_concatenate_and_stack_keep_float64_arrays_float64():
    t = Tensor([1.0], dtype=np.float64)
    exact = np.array([0.1])
    assert mg.concatenate([t, exact]).data[1] == 0.1  # not 0.1 rounded to float32
    assert mg.stack([t, exact]).data[1, 0] == 0.1
    assert (t + exact).data[0] == 1.1  # as the operators do
    assert mg.concatenate([Tensor([1.0]), exact]).dtype == np.float32  # a float32 tensor sets float32


def test_embedding_rejects_ids_out_of_range():
    from minigrad import nn

    table = nn.Embedding(4, 2)
    for ids in ([0, -1], [4], [[1, 7]]):
        with pytest.raises(IndexError, match=r"\[0, 4\)"):
            table(np.array(ids))
        with pytest.raises(IndexError):
            F.embedding(np.array(ids), table.weight)


def test_embedding_padding_idx_minus_one_is_the_last_row_and_gets_no_gradient():
    from minigrad import nn

    table = nn.Embedding(4, 2, padding_idx=-1)
    assert table.padding_idx == 3
    np.testing.assert_array_equal(table.weight.data[3], 0)
    out = table(np.array([3, 0, 3]))
    np.testing.assert_array_equal(out.data[0], 0)
    out.sum().backward()
    np.testing.assert_array_equal(table.weight.grad[3], 0)
    np.testing.assert_array_equal(table.weight.grad[0], 1)


def test_torch_spellings():
    x = Tensor(np.arange(24.0).reshape(2, 3, 4))
    np.testing.assert_array_equal(x.sum(dim=1, keepdim=True).data, x.data.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(mg.sum(x, dim=-1).data, x.data.sum(-1))
    np.testing.assert_array_equal(x.permute(2, 0, 1).data, x.data.transpose(2, 0, 1))
    assert x.view(6, 4).shape == (6, 4) and x.view(-1).shape == (24,)
    assert x[:, :1].expand(2, 3, 4).shape == (2, 3, 4) and x[:, :1].expand(5, -1, 3, -1).shape == (5, 2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4 and x.size == 24
    assert x.numel() == 24 and x.dim() == 3
    assert mg.cat([x, x], dim=2).shape == (2, 3, 8)
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(values.data, x.data.max(1))
    np.testing.assert_array_equal(indices.data, x.data.argmax(1))
    assert x.max(axis=1).shape == (2, 4)  # NumPy's spelling: the values alone
    assert x.min(dim=1, keepdims=True).values.shape == x.min(dim=1, keepdim=True).indices.shape == (2, 1, 4)
    with pytest.raises(TypeError, match="both"):
        x.max(axis=0, dim=1)
    other = Tensor(np.full((2, 3, 4), 11.5))
    np.testing.assert_array_equal(mg.max(x, other).data, np.maximum(x.data, 11.5))  # torch.max(a, b)
    np.testing.assert_array_equal(mg.min(x, other).data, np.minimum(x.data, 11.5))
    with pytest.raises(TypeError, match="both"):
        x.sum(axis=0, dim=1)
    with pytest.raises(ValueError, match="swapaxes"):
        x.t()
    with pytest.raises(ValueError, match=r"swapaxes\(1, 2\)"):
        x.transpose(1, 2)  # torch would exchange two axes; NumPy's transpose wants all three
    np.testing.assert_array_equal(x.swapaxes(1, 2).data, np.swapaxes(x.data, 1, 2))


def test_reductions_reject_axes_out_of_range():
    x = Tensor(np.ones((2, 3)))
    for call in (
        lambda: x.sum(dim=2),
        lambda: x.cumsum(dim=-3),
        lambda: x.softmax(dim=2),
        lambda: x.argmax(dim=5),
        lambda: x.unsqueeze(4),
        lambda: x.flip(2),
        lambda: x.gather(2, np.zeros((2, 3), dtype=int)),
    ):
        with pytest.raises(ValueError, match="out of range"):
            call()


def test_gather_rejects_indices_torch_rejects():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        x.gather(1, np.array([[0, -1], [1, 2]]))
    with pytest.raises(TypeError):
        x.gather(1, np.array([[0.5]]))


def test_masks_are_boolean_and_keep_the_shape():
    x = Tensor(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="boolean"):
        x.masked_fill(np.array([0.0, -np.inf, 0.0, 0.0]), 1.0)  # an additive mask is not a boolean one
    with pytest.raises(TypeError, match="boolean"):
        mg.where(np.ones(4), x, 1.0)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        x.masked_fill(np.ones((2, 3, 4), dtype=bool), 1.0)  # would silently grow the tensor


def test_python_protocols():
    x = Tensor([[1.0, -2.0], [3.0, 4.0]])
    assert 3.0 in x and 5.0 not in x
    np.testing.assert_array_equal(np.asarray(x), x.data)
    np.testing.assert_array_equal(abs(x).data, np.abs(x.data))
    assert (+x) is x and int(Tensor(3.7)) == 3
    assert [row.shape for row in x] == [(2,), (2,)]


def test_nll_loss_refuses_to_drop_a_weight_gradient():
    logp = Tensor(np.log(np.full((2, 3), 1 / 3)))
    with pytest.raises(ValueError, match="detach"):
        F.nll_loss(logp, np.array([0, 2]), weight=Tensor(np.ones(3), requires_grad=True))
    assert np.isclose(F.nll_loss(logp, np.array([0, 2]), weight=Tensor(np.ones(3))).item(), np.log(3))


def test_a_cast_to_integers_ends_the_graph_as_in_torch():
    """x.long() has no gradient: (x.long() · x).sum() differentiates to x.long(), not 2x."""
    x = Tensor(np.array([1.5, 2.5]), requires_grad=True)
    whole = x.long()
    assert whole.dtype == np.int64 and not whole.requires_grad
    (whole.astype(np.float32) * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])
