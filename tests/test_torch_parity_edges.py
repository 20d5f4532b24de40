"""Edges where an answer used to differ from PyTorch's: a zero std's gradient, integer and bool
dtypes through minimum, bitwise operators and triangles, padding that crops, and the calls
torch refuses. Values, dtypes and gradients are compared with torch; skips without it.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, kernels

torch = pytest.importorskip("torch")

INTEGER_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
# torch has only these of them for minimum and tril; for uint16/32/64 NumPy's answer is the reference
TORCH_HAS_EVERY_OP = {np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_}
small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
ALL_INT_DTYPES = [*INTEGER_DTYPES, np.bool_]


def arrays_of(dtype, shape) -> st.SearchStrategy:
    """Arrays over the whole range of `dtype`, extremes included (INT_MIN, 0, the largest)."""
    return hnp.arrays(dtype, shape)


def torch_value(array: np.ndarray) -> np.ndarray:
    """A torch result back as NumPy, whatever its integer dtype."""
    return array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


# ---------------------------------------------------------------- std's gradient where std = 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "values, dim",
    [([[0.3, -1.2, 2.0]], 0), ([2.0, 2.0, 2.0], None), ([[1.0, 1.0], [0.5, -0.5]], 1), ([[1.5, 2.5, 1.5]], 1)],
)
def test_std_where_it_is_zero_has_torchs_zero_gradient(values, dim, dtype):
    data = np.array(values, dtype=dtype)
    x, twin = Tensor(data, dtype=dtype, requires_grad=True), torch.tensor(data, requires_grad=True)
    ours = x.std(dim=dim) if dim is not None else x.std()
    theirs = twin.std(dim=dim, correction=0) if dim is not None else twin.std(correction=0)
    weights = np.arange(1, ours.data.size + 1, dtype=dtype).reshape(ours.shape)
    (ours * Tensor(weights, dtype=dtype)).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-6)
    assert np.isfinite(x.grad).all()
    np.testing.assert_allclose(x.grad, twin.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore:std\\(\\). degrees of freedom")  # torch's, for a lane of one: NaN in both
def test_std_keeps_nan_where_no_degree_of_freedom_is_left():
    x = Tensor([1.0], dtype=np.float64, requires_grad=True)
    assert np.isnan(x.std(ddof=1).item()) and np.isnan(torch.tensor([1.0]).std().item())


def test_std_zero_gradient_survives_a_gradient_check_elsewhere():
    x = Tensor([[0.5, 0.5, 0.5], [0.25, -1.0, 2.0]], dtype=np.float64, requires_grad=True)
    x.std(dim=1).sum().backward()
    assert (x.grad[0] == 0).all()
    assert mg.gradcheck(lambda t: t.std(dim=1), Tensor(x.data[1:], dtype=np.float64, requires_grad=True))


# ---------------------------------------------------------------- minimum on every dtype


@pytest.mark.parametrize("dtype", ALL_INT_DTYPES)
@given(data=st.data(), shape=small_shapes)
def test_minimum_of_integers_and_bools_matches_torch(dtype, data, shape):
    a, b = data.draw(arrays_of(dtype, shape)), data.draw(arrays_of(dtype, shape))
    ours = mg.minimum(Tensor(a), Tensor(b))
    expected = (
        torch_value(torch.minimum(torch.from_numpy(a), torch.from_numpy(b)))
        if dtype in TORCH_HAS_EVERY_OP
        else np.minimum(a, b)
    )
    assert ours.dtype == expected.dtype == dtype
    np.testing.assert_array_equal(ours.data, expected)
    np.testing.assert_array_equal(Tensor(a).maximum(Tensor(b)).data, np.maximum(a, b))


def test_minimum_at_the_ends_of_the_integer_range():
    int_min = Tensor(np.array([-(2**31), 5], dtype=np.int32))
    ours = mg.minimum(int_min, 2**31 - 1)
    theirs = torch.minimum(torch.tensor([-(2**31), 5], dtype=torch.int32), torch.tensor(2**31 - 1, dtype=torch.int32))
    assert ours.dtype == np.int32 and ours.tolist() == theirs.tolist() == [-(2**31), 5]
    assert mg.minimum(Tensor(np.array([0], dtype=np.uint8)), 1).tolist() == [0]


def test_minimum_splits_a_tie_and_passes_the_smaller_gradient_as_torch():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0])
    x, y = Tensor(a, dtype=np.float64, requires_grad=True), Tensor(b, dtype=np.float64, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    x.minimum(y).sum().backward()
    torch.minimum(tx, ty).sum().backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())
    np.testing.assert_array_equal(y.grad, ty.grad.numpy())


# ---------------------------------------------------------------- & | ^ with a Python int


@pytest.mark.parametrize("operator", ["__and__", "__or__", "__xor__", "__rand__", "__ror__", "__rxor__"])
@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
@given(
    data=st.data(),
    shape=small_shapes,
    number=st.one_of(st.integers(-(2**63), 2**64 - 1), st.sampled_from([0x0F, 0xFFFFFFFF, -1, 2**63 - 1])),
)
def test_bitwise_with_a_python_int_keeps_the_dtype_and_wraps_as_torch(operator, dtype, data, shape, number):
    a = data.draw(arrays_of(dtype, shape))
    ours = getattr(Tensor(a), operator)(number)
    theirs = getattr(torch.from_numpy(a), operator)(number)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours.data, torch_value(theirs))


@pytest.mark.parametrize(
    "dtype, number, expected",
    [
        (np.int32, 1, [1, 3]),
        (np.int32, 0xFFFFFFFF, [-1, -1]),
        (np.uint8, 0x0F, [0, 2]),
        (np.uint64, 0xFFFFFFFF, [0, 2]),
    ],
)
def test_the_reported_bitwise_cases(dtype, number, expected):
    a = np.array([0, 2], dtype=dtype)
    operator = "__and__" if dtype in (np.uint8, np.uint64) else "__or__"
    ours = getattr(Tensor(a), operator)(number)
    assert ours.dtype == dtype and ours.tolist() == expected == getattr(torch.from_numpy(a), operator)(number).tolist()


def test_bool_with_a_python_int_becomes_int64_as_torch():
    mask = np.array([True, False])
    assert (Tensor(mask) | 2).dtype == np.int64 and (torch.from_numpy(mask) | 2).dtype == torch.int64
    assert (Tensor(mask) & True).dtype == np.bool_


# ---------------------------------------------------------------- tril and triu keep the dtype


@pytest.mark.parametrize("triangle", ["tril", "triu"])
@pytest.mark.parametrize("dtype", ALL_INT_DTYPES)
@given(data=st.data(), diagonal=st.integers(-3, 3))
def test_triangles_keep_integer_and_bool_dtypes(triangle, dtype, data, diagonal):
    a = data.draw(arrays_of(dtype, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4)))
    ours = getattr(Tensor(a), triangle)(diagonal)
    if dtype in TORCH_HAS_EVERY_OP:
        expected = torch_value(getattr(torch, triangle)(torch.from_numpy(a), diagonal))
    else:
        expected = getattr(np, triangle)(a, diagonal)
    assert ours.dtype == expected.dtype == dtype
    np.testing.assert_array_equal(ours.data, expected)


# ---------------------------------------------------------------- F.pad with negative sizes


def pad_both(x: np.ndarray, pad: tuple, mode: str) -> None:
    """Values and gradients of F.pad against torch's, for float64 `x` of shape (1, 1, n)."""
    ours_in, twin = Tensor(x, dtype=np.float64, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours, theirs = F.pad(ours_in, pad, mode=mode), torch.nn.functional.pad(twin, pad, mode=mode)
    np.testing.assert_array_equal(ours.data, theirs.detach().numpy())
    weights = np.arange(1.0, ours.data.size + 1).reshape(ours.shape)
    (ours * Tensor(weights, dtype=np.float64)).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(ours_in.grad, twin.grad.numpy())


@pytest.mark.parametrize(
    "pad, mode, expected",
    [((3, -3), "reflect", [3, 2, 1, 0, 1]), ((3, -5), "replicate", [0, 0, 0]), ((-3, 3), "reflect", [3, 4, 3, 2, 1])],
)
def test_the_reported_cropping_pads(pad, mode, expected):
    x = np.arange(5.0).reshape(1, 1, 5)
    assert F.pad(Tensor(x), pad, mode=mode).tolist() == [[expected]]
    pad_both(x, pad, mode)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@given(n=st.integers(2, 6), data=st.data())
def test_padding_that_crops_one_side_matches_torch(mode, n, data):
    largest = n - 1 if mode == "reflect" else 2 * n  # torch's reflect needs padding < the length
    before = data.draw(st.integers(-2 * n, largest))
    assume(1 - n - before <= largest)
    after = data.draw(st.integers(1 - n - before, largest))  # at least one value left
    pad_both(np.random.default_rng(n).standard_normal((1, 1, n)), (before, after), mode)


# ---------------------------------------------------------------- what torch refuses


def test_clamp_with_neither_bound_is_refused_as_torch():
    with pytest.raises(RuntimeError):
        torch.clamp(torch.zeros(2))
    with pytest.raises(ValueError, match="give min, max or both"):
        Tensor([1.0, 2.0]).clip(None, None)
    assert Tensor([1.0, 2.0]).clip(None, 1.5).tolist() == [1.0, 1.5]


def test_linspace_to_bool_is_refused_as_torch():
    with pytest.raises(NotImplementedError):
        torch.linspace(0, 1, 5, dtype=torch.bool)
    with pytest.raises(TypeError, match="dtype=bool"):
        mg.linspace(0, 1, 5, dtype=bool)


def test_circular_padding_that_wraps_twice_is_refused_as_torch():
    with pytest.raises(RuntimeError, match="wrapping around more than once"):
        torch.nn.functional.pad(torch.zeros(1, 1, 5), (6, 0), mode="circular")
    with pytest.raises(ValueError, match="more than once"):
        F.pad(Tensor(np.zeros((1, 1, 5))), (6, 0), mode="circular")
    pad_both(np.arange(5.0).reshape(1, 1, 5), (5, 0), "circular")  # wrapping once is allowed in both
    pad_both(np.arange(5.0).reshape(1, 1, 5), (1, -2), "circular")  # cropped first, then wrapped


# ---------------------------------------------------------------- documented differences


def test_an_int_apart_from_an_index_array_puts_the_indexed_axis_first_as_numpy():
    x, idx = np.arange(24).reshape(2, 3, 4), np.array([0, 3])
    theirs = torch.from_numpy(x)[0, :, torch.from_numpy(idx)]
    ours = Tensor(x)[0, :, idx]
    assert ours.shape == x[0, :, idx].shape == (2, 3) and tuple(theirs.shape) == (3, 2)
    np.testing.assert_array_equal(ours.data.T, theirs.numpy())
    np.testing.assert_array_equal(Tensor(x)[0][:, idx].data, theirs.numpy())  # the slice first: torch's order


def test_is_causal_with_a_mask_applies_both_as_torchs_cpu_kernel():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    mask = np.array([[True, False, True, True]] * 4)
    ours = F.scaled_dot_product_attention(
        *(Tensor(a, dtype=np.float64) for a in (q, k, v)), attn_mask=mask, is_causal=True
    )
    both = F.scaled_dot_product_attention(
        *(Tensor(a, dtype=np.float64) for a in (q, k, v)), attn_mask=mask & np.tril(np.ones((4, 4), bool))
    )
    theirs = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q, k, v)), attn_mask=torch.from_numpy(mask), is_causal=True
    )
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ours.data, both.data)


@pytest.mark.parametrize("q_len, k_len", [(4, 4), (5, 3), (3, 5)])
@pytest.mark.parametrize(
    "attention", [kernels.scaled_dot_product_attention, F.scaled_dot_product_attention], ids=["kernel", "definition"]
)
def test_is_causal_and_a_mask_that_leave_a_query_no_key_give_it_zeros_as_torch(attention, q_len, k_len):
    """Query 0 may see key 0 only (causal) and the mask forbids it; the last query's mask row is empty."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((1, 2, n, 4)) for n in (q_len, k_len, k_len)]  # d = dv: torch's CPU kernel
    mask = np.ones((q_len, k_len), dtype=bool)
    mask[0, 0] = mask[-1, :] = False
    g = rng.standard_normal((1, 2, q_len, 4))
    ours = [Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]
    out = attention(*ours, attn_mask=mask, is_causal=True)
    out.backward(g)
    theirs = [torch.from_numpy(a).requires_grad_() for a in arrays]
    expected = torch.nn.functional.scaled_dot_product_attention(
        *theirs, attn_mask=torch.from_numpy(mask), is_causal=True
    )
    expected.backward(torch.from_numpy(g))
    assert (out.data[..., [0, -1], :] == 0).all() and (ours[0].grad[..., [0, -1], :] == 0).all()
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    for mine, yours in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad, yours.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the same value and gradient, case by case


def assert_matches_torch(ours, theirs, *arrays, dtype=np.float64):
    """ours(*tensors) and theirs(*torch tensors): the same value, dtype and shape, and the same
    gradient for every floating input, within a few ulps of the result's dtype per input element
    (a sum of n rounded terms in another order differs by up to about n·eps)."""
    mine = [
        Tensor(a, dtype=a.dtype if a.dtype.kind != "f" else dtype, requires_grad=a.dtype.kind == "f") for a in arrays
    ]
    twins = [torch.tensor(m.data, requires_grad=m.requires_grad) for m in mine]
    out, expected = ours(*mine), theirs(*twins)
    assert out.shape == tuple(expected.shape) and out.dtype == torch_value(expected.detach()).dtype
    precision = out.dtype if out.dtype.kind == "f" else dtype  # a result cast to float32 has its precision
    tolerance = 4 * np.finfo(precision).eps * max(sum(a.size for a in arrays), 1)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tolerance, atol=tolerance)
    if expected.requires_grad:
        g = np.random.default_rng(0).standard_normal(out.shape).astype(out.dtype)
        out.backward(g)
        expected.backward(torch.from_numpy(g))
        for m, t in zip(mine, twins):
            if m.requires_grad:
                np.testing.assert_allclose(m.grad, t.grad.numpy(), rtol=tolerance, atol=tolerance)


# ---------------------------------------------------------------- an empty dim list


@pytest.mark.parametrize("empty", [(), []], ids=["tuple", "list"])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize(
    "reduction",
    [
        lambda x, d, k: x.sum(dim=d, keepdim=k),
        lambda x, d, k: x.mean(dim=d, keepdim=k),
        lambda x, d, k: x.amax(dim=d, keepdim=k),
        lambda x, d, k: x.amin(dim=d, keepdim=k),
        lambda x, d, k: (mg if isinstance(x, Tensor) else torch).sum(x, dim=d, keepdim=k),
        lambda x, d, k: x.var(dim=d, keepdim=k, correction=1),
        lambda x, d, k: x.std(dim=d, keepdim=k, correction=0),
        lambda x, d, k: (
            x.var_mean(dim=d, keepdim=k)[0] if isinstance(x, Tensor) else torch.var_mean(x, d, keepdim=k)[0]
        ),
    ],
    ids=["sum", "mean", "amax", "amin", "mg.sum", "var", "std", "var_mean"],
)
def test_an_empty_dim_list_reduces_every_axis_as_torch(reduction, keepdim, empty):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, -2.0, 0.5, 2.0], [-1.0, 5.0, -1.0, 5.0]])  # ties: the max shared
    every_axis = (0, 1)  # torch's var and std over dim=() give this value, but a gradient of ±inf
    assert_matches_torch(lambda t: reduction(t, empty, keepdim), lambda t: reduction(t, every_axis, keepdim), x)
    expected = reduction(torch.from_numpy(x), empty, keepdim)
    np.testing.assert_allclose(reduction(Tensor(x, dtype=np.float64), empty, keepdim).data, expected.numpy())


def test_an_empty_dim_list_reduces_nothing_in_all_and_any_and_is_refused_by_max_as_torch():
    x = np.array([[True, False], [True, True]])
    for name in ("all", "any"):
        theirs = getattr(torch.from_numpy(x), name)(dim=())
        np.testing.assert_array_equal(getattr(Tensor(x), name)(dim=()).data, theirs.numpy())
    for name in ("max", "argmax"):
        with pytest.raises(TypeError):
            getattr(torch.ones(2, 2), name)(dim=())
        with pytest.raises(TypeError, match="one axis as an int"):
            getattr(Tensor(np.ones((2, 2))), name)(dim=())


# ---------------------------------------------------------------- indices torch and NumPy read differently


@pytest.mark.parametrize(
    "index",
    [
        lambda A: (slice(1, 2), A([3, 2]), Ellipsis, A([-4])),  # ... stands for no axis: torch's adjacent arrays
        lambda A: (A([0, 2]), Ellipsis, A([1, 1]), slice(None)),
        lambda A: (Ellipsis, A([1, 0])),
        lambda A: (None, A([1, 0]), Ellipsis, 2, A([0, 1])),
    ],
)
def test_an_ellipsis_standing_for_no_axis_is_read_as_torch_reads_it(index):
    x = np.arange(60.0).reshape(3, 4, 5)
    assert_matches_torch(lambda t: t[index(np.array)], lambda t: t[index(torch.tensor)], x)


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")  # torch's, for the ambiguous lists
@pytest.mark.parametrize(
    "index",
    [
        lambda a: [a([0, 1]), a([1, 2])],
        lambda a: [[0, 1], [1, 2]],
        lambda a: [0, slice(None)],
        lambda a: [0, None],
        lambda a: [0, [1, 2]],
    ],
    ids=["list of arrays", "list of lists", "list with a slice", "list with None", "list with a list"],
)
def test_an_index_list_holding_sequences_is_refused_as_ambiguous(index):
    """torch 2.13 reads such a list as a tuple, NumPy as one array: two answers, so neither is guessed."""
    x = np.arange(12.0).reshape(3, 4)
    as_tuple = torch.from_numpy(x)[index(torch.tensor)]  # torch's reading
    for array in (np.array, lambda i: Tensor(np.array(i))):
        with pytest.raises(IndexError, match=r"x\[tuple\(index\)\] or x\[np.array\(index\)\]"):
            Tensor(x)[index(array)]
    np.testing.assert_array_equal(Tensor(x)[tuple(index(np.array))].data, as_tuple.numpy())


@pytest.mark.parametrize("index", [[0, 2], [True, False, True], [], [np.int64(2), -1]], ids=str)
def test_a_flat_index_list_of_ints_or_bools_is_one_array_in_both(index):
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(Tensor(x)[index].data, torch.from_numpy(x)[index].numpy())


@pytest.mark.filterwarnings("ignore:indexing with dtype torch.uint8")
def test_a_uint8_index_array_is_refused_as_torch_reads_it_as_a_mask():
    x, index = np.arange(12.0).reshape(3, 4), np.array([1, 0, 1], dtype=np.uint8)
    assert tuple(torch.from_numpy(x)[torch.from_numpy(index)].shape) == (2, 4)  # a mask to torch
    for uint8_index in (index, Tensor(index), (slice(None), np.array([0, 3], dtype=np.uint8))):
        with pytest.raises(IndexError, match="pass bool or int64"):
            Tensor(x)[uint8_index]
    np.testing.assert_array_equal(Tensor(x)[index.astype(bool)].data, x[[0, 2]])


# ---------------------------------------------------------------- masked_fill keeps the dtype; masks are boolean


@pytest.mark.parametrize(
    "dtype, value",
    [
        (np.int64, 0.5),
        (np.int64, -1.7),
        (np.int32, 2),
        (np.uint8, 7.9),
        (np.bool_, 0.5),
        (np.float32, np.float64(-1e9)),
        (np.float32, -np.inf),
        (np.float64, 0.1),
    ],
    ids=str,
)
def test_masked_fill_keeps_the_tensors_dtype_and_casts_the_value_as_torch(dtype, value):
    data, mask = np.arange(-3, 3).reshape(2, 3).astype(dtype), np.eye(2, 3, dtype=bool)
    ours = Tensor(data, dtype=dtype).masked_fill(mask, value)
    theirs = torch.from_numpy(data).masked_fill(torch.from_numpy(mask), value)
    assert ours.dtype == dtype == theirs.numpy().dtype
    np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_masked_fill_with_a_tensor_value_takes_the_dtype_and_passes_the_gradient_as_torch():
    mask = np.array([[True, False], [True, True]])
    assert_matches_torch(lambda x, v: x.masked_fill(mask, v), lambda x, v: x.masked_fill(torch.from_numpy(mask), v),
                         np.array([[1.0, 2.0], [3.0, 4.0]]), np.array(0.25))  # fmt: skip
    value = Tensor(np.array(0.25), dtype=np.float64, requires_grad=True)
    out = Tensor(np.ones((2, 2))).masked_fill(mask, value)
    out.sum().backward()
    assert out.dtype == np.float32 and value.grad.dtype == np.float64 and value.grad == 3


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float32])
def test_masks_and_conditions_must_be_boolean_as_torch(dtype):
    x, mask = np.arange(4.0).reshape(2, 2), np.array([[1, 0], [0, 1]], dtype=dtype)
    with pytest.raises(RuntimeError, match="boolean"):
        torch.from_numpy(x).masked_fill(torch.from_numpy(mask), 0.0)
    with pytest.raises(TypeError, match=r"must be boolean, not \w+; compare it \(mask != 0\)"):
        Tensor(x).masked_fill(mask, 0.0)
    with pytest.raises(TypeError, match="must be boolean"):
        mg.where(Tensor(mask), Tensor(x), 0.0)
    np.testing.assert_array_equal(mg.where(mask != 0, Tensor(x), 0.0).data, np.where(mask != 0, x, 0.0))


@pytest.mark.parametrize(
    "shape, chunks, dim", [((2, 0), 3, 1), ((0, 2), 1, 0), ((0,), 5, 0), ((4,), 5, 0), ((6,), 4, -1)]
)
def test_chunk_gives_torchs_number_of_pieces_and_shapes(shape, chunks, dim):
    ours, theirs = Tensor(np.ones(shape)).chunk(chunks, dim), torch.ones(shape).chunk(chunks, dim)
    assert [p.shape for p in ours] == [tuple(p.shape) for p in theirs]


# ---------------------------------------------------------------- NaN and infinity


NAN, INF = np.nan, np.inf


@pytest.mark.filterwarnings("ignore:invalid value")  # NumPy's, for the NaN and inf arithmetic both sides do
@pytest.mark.parametrize(
    "ours, theirs, arrays",
    [
        (lambda a: a.sign(), torch.sign, [np.array([NAN, -0.0, 2.0, -3.0])]),
        (lambda a: a.relu(), torch.relu, [np.array([NAN, 1.0, -1.0, 0.0])]),
        (lambda a: a.abs(), torch.abs, [np.array([NAN, 1.0, -1.0, 0.0])]),
        (lambda a: a.clamp(-0.5, 0.5), lambda a: a.clamp(-0.5, 0.5), [np.array([NAN, 1.0, -1.0, 0.0])]),
        (lambda a: a.clamp(min=-0.5), lambda a: a.clamp(min=-0.5), [np.array([NAN, 1.0, -1.0, 0.0])]),
        (lambda a: mg.clip(a, max=0.5), lambda a: torch.clip(a, max=0.5), [np.array([NAN, 1.0, -1.0, 0.0])]),
        (mg.maximum, torch.maximum, [np.array([NAN, 1.0, -1.0, 0.0, NAN]), np.array([0.0, NAN, 0.0, 0.0, NAN])]),
        (mg.minimum, torch.minimum, [np.array([NAN, 1.0, -1.0, 0.0, 2.0]), np.array([0.0, NAN, 0.0, 0.0, 1.0])]),
        (lambda a: a.softmax(-1), lambda a: a.softmax(-1), [np.array([[INF, 1.0], [INF, INF], [0.5, -INF]])]),
        (lambda a: a.log_softmax(-1), lambda a: a.log_softmax(-1), [np.array([[INF, 1.0], [2.0, -INF]])]),
        (lambda a: a.logsumexp(-1), lambda a: a.logsumexp(-1), [np.array([[INF, 1.0], [-INF, -INF], [2.0, 1.0]])]),
    ],
    ids=[
        "sign",
        "relu",
        "abs",
        "clamp",
        "clamp_min",
        "clip_max",
        "maximum",
        "minimum",
        "softmax",
        "log_softmax",
        "logsumexp",
    ],  # fmt: skip
)
def test_nan_and_infinity_give_torchs_values_and_gradients(ours, theirs, arrays):
    with np.errstate(invalid="ignore"):
        assert_matches_torch(ours, theirs, *arrays)


# ---------------------------------------------------------------- einsum's gradient over broadcast and empty axes


@pytest.mark.parametrize(
    "equation, shapes",
    [
        ("ij,jk->ik", [(2, 1), (3, 4)]),
        ("ij,jk->ik", [(2, 3), (1, 4)]),
        ("bij,bjk->bik", [(1, 2, 1), (3, 4, 2)]),
        ("i->", [(0,)]),
        ("ij->i", [(2, 0)]),
        ("ij,j->i", [(2, 0), (0,)]),
        ("ii->i", [(0, 0)]),
    ],
    ids=str,
)
def test_einsum_gradient_over_a_broadcast_or_empty_axis_matches_torch(equation, shapes):
    arrays = [np.random.default_rng(i).standard_normal(shape) for i, shape in enumerate(shapes)]
    assert_matches_torch(lambda *ts: mg.einsum(equation, *ts), lambda *ts: torch.einsum(equation, *ts), *arrays)


# ---------------------------------------------------------------- 0-d tensors, empty dimensions, integers


@pytest.mark.parametrize(
    "ours, theirs, arrays",
    [
        (lambda a: a.sort().values, lambda a: a.sort().values, [np.array(1.5)]),
        (lambda a: a.sort(0, descending=True).indices, lambda a: a.sort(0, descending=True).indices, [np.array(1.5)]),
        (lambda a: a.topk(1).values, lambda a: a.topk(1).values, [np.array(1.5)]),
        (lambda a: a.topk(0, dim=-1).indices, lambda a: a.topk(0, dim=-1).indices, [np.array(1.5)]),
        (lambda a: a.gather(0, np.array(0)), lambda a: a.gather(0, torch.tensor(0)), [np.array(1.5)]),
        (lambda a: a.gather(-1, np.array([0])), lambda a: a.gather(-1, torch.tensor([0])), [np.array(1.5)]),
        (lambda a: a.cummax(0).values, lambda a: a.cummax(0).values, [np.ones((0, 3))]),
        (lambda a: a.cummin(1).indices, lambda a: a.cummin(1).indices, [np.ones((3, 0))]),
        (lambda a: a.cummax(0).indices, lambda a: a.cummax(0).indices, [np.array(2.0)]),
        (lambda a: a.logsumexp(1), lambda a: a.logsumexp(1), [np.array([[1, 2], [3, 40]])]),
        (lambda a: a.logsumexp(0), lambda a: a.logsumexp(0), [np.array([[1, 2], [3, 4]], dtype=np.int32)]),
        (lambda a: a.logsumexp(1), lambda a: a.logsumexp(1), [np.array([[True, False]])]),
    ],
    ids=[
        "sort",
        "sort_indices",
        "topk",
        "topk_0",
        "gather",
        "gather_1d_index",
        "cummax_empty",
        "cummin_empty",
        "cummax_0d",
        "logsumexp_int64",
        "logsumexp_int32",
        "logsumexp_bool",
    ],  # fmt: skip
)
def test_0d_tensors_empty_dimensions_and_integers_work_as_in_torch(ours, theirs, arrays):
    assert_matches_torch(ours, theirs, *arrays)


def test_topk_of_a_0d_tensor_refuses_k_2_as_torch():
    with pytest.raises(RuntimeError, match="out of range"):
        torch.tensor(1.5).topk(2)
    with pytest.raises(ValueError, match="out of range"):
        Tensor(1.5).topk(2)


# ---------------------------------------------------------------- either spelling, wherever an axis is taken

INDEX = np.array([[0, 2], [1, 1], [3, 0]])


@pytest.mark.parametrize(
    "numpy_spelling, torch_spelling",
    [
        (lambda x: x.amax(axis=1), lambda x: x.amax(dim=1)),
        (lambda x: mg.amin(x, axis=0, keepdims=True), lambda x: torch.amin(x, dim=0, keepdim=True)),
        (lambda x: x.sort(axis=0, descending=True).values, lambda x: x.sort(dim=0, descending=True).values),
        (lambda x: x.topk(2, axis=0).values, lambda x: x.topk(2, dim=0).values),
        (lambda x: x.unsqueeze(axis=1), lambda x: x.unsqueeze(dim=1)),
        (lambda x: x.gather(axis=1, index=INDEX), lambda x: x.gather(dim=1, index=torch.from_numpy(INDEX))),
        (
            lambda x: x.scatter_add(axis=1, index=INDEX, src=x[:, :2]),
            lambda x: x.scatter_add(1, torch.from_numpy(INDEX), x[:, :2]),
        ),
        (lambda x: x.cummax(axis=0).values, lambda x: x.cummax(dim=0).values),
        (lambda x: x.cummin(axis=1).values, lambda x: x.cummin(dim=1).values),
        (lambda x: x.chunk(2, axis=1)[1], lambda x: x.chunk(2, dim=1)[1]),
        (lambda x: x.split(3, axis=1)[1], lambda x: x.split(3, dim=1)[1]),
        (lambda x: x.flip(axis=0), lambda x: x.flip(dims=(0,))),
        (lambda x: x.roll(1, axis=1), lambda x: x.roll(1, dims=1)),
        (lambda x: x.std_mean(axis=0, ddof=0)[0], lambda x: torch.std_mean(x, dim=0, correction=0)[0]),
        (lambda x: x.var_mean(axis=1, keepdims=True)[0], lambda x: torch.var_mean(x, dim=1, keepdim=True)[0]),
        (lambda x: x.logcumsumexp(axis=1), lambda x: x.logcumsumexp(dim=1)),
        (lambda x: x.repeat_interleave(2, axis=0), lambda x: x.repeat_interleave(2, dim=0)),
        (  # each place written once: which of two writes stays is unspecified in torch
            lambda x: x.scatter(axis=1, index=INDEX[[0, 2]], src=x[:2, :2]),
            lambda x: x.scatter(1, torch.from_numpy(INDEX[[0, 2]]), x[:2, :2]),
        ),
        (
            lambda x: x.scatter_reduce(axis=1, index=INDEX, src=x[:, :2], reduce="sum"),
            lambda x: x.scatter_reduce(1, torch.from_numpy(INDEX), x[:, :2], "sum"),
        ),
        (lambda x: x.unflatten(axis=1, sizes=(2, 2)), lambda x: x.unflatten(1, (2, 2))),
        (lambda x: F.softmax(x, axis=0), lambda x: torch.softmax(x, dim=0)),
        (lambda x: F.log_softmax(x, axis=0), lambda x: torch.log_softmax(x, dim=0)),
    ],
    ids=[
        "amax",
        "amin",
        "sort",
        "topk",
        "unsqueeze",
        "gather",
        "scatter_add",
        "cummax",
        "cummin",
        "chunk",
        "split",
        "flip",
        "roll",
        "std_mean",
        "var_mean",
        "logcumsumexp",
        "repeat_interleave",
        "scatter",
        "scatter_reduce",
        "unflatten",
        "F.softmax",
        "F.log_softmax",
    ],  # fmt: skip
)
def test_numpys_axis_and_keepdims_work_wherever_an_axis_is_taken(numpy_spelling, torch_spelling):
    assert_matches_torch(numpy_spelling, torch_spelling, np.random.default_rng(0).standard_normal((3, 4)))


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: x.permute(dims=(1, 0)),
        lambda m, x: m.permute(x, dims=(1, 0)),
        lambda m, x: x.tile(dims=(2, 1)),
        lambda m, x: x.reshape(shape=(4, 3)),
        lambda m, x: x.transpose(dim0=0, dim1=1),
        lambda m, x: m.transpose(x, dim0=-1, dim1=0),
        lambda m, x: x.flip(0, 1),
        lambda m, x: x.flip([0, 1]),
        lambda m, x: x.std(dim=1, unbiased=True),
        lambda m, x: x.var(dim=1, unbiased=False, keepdim=True),
        lambda m, x: x.var(0, True),
        lambda m, x: x.var(0, correction=None),
        lambda m, x: m.var_mean(x, 1, False)[0] if m is torch else x.var_mean(1, False)[0],
        lambda m, x: m.std_mean(x, 0, True, True)[0] if m is torch else x.std_mean(0, True, True)[0],
        lambda m, x: x.sum(dtype=m.float32 if m is torch else np.float32),
        lambda m, x: x.cumsum(1, dtype=m.float32 if m is torch else np.float32),
        lambda m, x: x.softmax(-1, dtype=m.float32 if m is torch else np.float32),
        lambda m, x: m.max(x, other=x[0]),
        lambda m, x: m.sum(input=x, dim=0),
        lambda m, x: m.exp(input=x),
        lambda m, x: x.where(x > 0, x[0] * 2),
        lambda m, x: x.where(x > 0, 0.5),
    ],
    ids=[
        "permute_dims",
        "mg_permute_dims",
        "tile_dims",
        "reshape_shape",
        "transpose_dim0_dim1",
        "mg_transpose",
        "flip_varargs",
        "flip_list",
        "std_unbiased",
        "var_unbiased_false",
        "var_positional_unbiased",
        "var_correction_none",
        "var_mean_positional",
        "std_mean_positional",
        "sum_dtype",
        "cumsum_dtype",
        "softmax_dtype",
        "max_other",
        "sum_input",
        "exp_input",
        "where_method",
        "where_method_number",
    ],  # fmt: skip
)
def test_torchs_keywords_and_forms_mean_what_they_mean_in_torch(call):
    assert_matches_torch(
        lambda x: call(mg, x), lambda x: call(torch, x), np.random.default_rng(1).standard_normal((3, 4))
    )


@pytest.mark.parametrize(
    "operation",
    [lambda a: a % 0, lambda a: a // 0, lambda a: a % a, lambda a: 5 // a, lambda a: (a > 0) % 0],
    ids=["mod_zero", "floordiv_zero", "mod_zero_tensor", "rfloordiv", "bool_mod"],
)
def test_an_integer_division_by_zero_is_refused_as_torch(operation):
    ints = np.array([3, -2, 0])
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        operation(torch.from_numpy(ints))
    with pytest.raises(ZeroDivisionError, match="by zero"):
        operation(Tensor(ints))


def test_a_float_division_by_zero_still_gives_torchs_nan_and_inf():
    floats = np.array([3.0, -2.0, 0.0])
    for operation in (lambda a: a % 0, lambda a: a // 0, lambda a: 5 // a):
        with np.errstate(divide="ignore", invalid="ignore"):
            ours = operation(Tensor(floats, dtype=np.float64)).data
        np.testing.assert_array_equal(ours, operation(torch.from_numpy(floats)).numpy())
