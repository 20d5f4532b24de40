"""Running maxima, scatters, selections, std_mean, logcumsumexp and soft-target cross-entropy:
gradient-checked in float64 on hypothesis shapes, and equal to torch (skipped without torch).

The gradient checks register with test_ops_gradcheck's `checks`, so the op table's meta-tests
see them; `torch_cases` joins test_torch_parity_ops' table of every op.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_ops_gradcheck import check, checks, leaf, seeds, shapes

import minigrad.functional as F
from minigrad import Tensor, kernels

REDUCE = ["sum", "prod", "mean", "amax", "amin"]


@st.composite
def scatter_case(draw):
    """A shape, a dim, and an index into it (repeats included: several entries may land on one place)."""
    shape = draw(shapes)
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    index_shape = tuple(
        draw(st.integers(1, 4)) if d == dim % len(shape) else draw(st.integers(1, n)) for d, n in enumerate(shape)
    )
    index = np.random.default_rng(draw(seeds)).integers(0, shape[dim], index_shape)
    return shape, dim, index


@checks("Tensor.cummax", "Tensor.cummin", "Tensor.logcumsumexp")
@given(shape=shapes, seed=seeds, data=st.data())
def test_running_maxima_and_logcumsumexp(shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = leaf(seed, shape, "distinct")  # no ties: the running maximum is differentiable
    check(lambda x: x.cummax(dim).values * 2 + x.cummin(dim)[0], x)
    check(lambda x: x.logcumsumexp(dim), leaf(seed, shape))


@checks("Tensor.std_mean", "Tensor.var_mean", "Tensor.repeat_interleave", "Tensor.masked_select")
@given(shape=shapes, seed=seeds, data=st.data())
def test_statistics_and_selections(shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    if shape[dim] > 1:  # a sample deviation needs two values
        check(lambda x: x.std_mean(dim=dim)[0] * x.std_mean(dim)[1], leaf(seed, shape))
        check(lambda x: x.var_mean(dim=dim, keepdim=True)[0], leaf(seed, shape))
    counts = data.draw(st.lists(st.integers(0, 3), min_size=shape[dim], max_size=shape[dim]))
    check(lambda x: x.repeat_interleave(np.array(counts), dim=dim), leaf(seed, shape))
    check(lambda x: x.repeat_interleave(2), leaf(seed, shape))
    mask = data.draw(hnp.arrays(bool, shape[1:]))  # broadcast over the first axis
    check(lambda x: x.masked_select(mask), leaf(seed, shape))


@checks("Tensor.scatter", "Tensor.scatter_reduce")
@given(case=scatter_case(), seed=seeds, reduce=st.sampled_from(REDUCE), include_self=st.booleans())
def test_scatters(case, seed, reduce, include_self):
    shape, dim, index = case
    # distinct values: amax/amin have no ties, so their gradient is a derivative
    x, src = leaf(seed, shape, "distinct"), leaf(seed + 1, index.shape, "nonzero")
    src = Tensor(src.data + 0.1, dtype=np.float64, requires_grad=True)
    check(lambda x, s: x.scatter(dim, index, s), x, src)
    check(lambda x, s: x.scatter_reduce(dim, index, s, reduce, include_self=include_self), x, src)


@checks("F.cross_entropy")
@given(batch=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3), classes=st.integers(2, 4), seed=seeds)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_class_probabilities(reduction, batch, classes, seed):
    probabilities = np.random.default_rng(seed).dirichlet(np.ones(classes), size=batch)
    check(
        lambda z: F.cross_entropy(z, probabilities, reduction=reduction, label_smoothing=0.2),
        leaf(seed, batch + (classes,)),
    )


def test_scatter_keeps_the_last_write_and_selections_name_their_errors():
    x = Tensor(np.zeros(3), requires_grad=True)
    src = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    out = x.scatter(0, np.array([1, 1, 0]), src)
    np.testing.assert_array_equal(out.data, [3.0, 2.0, 0.0])  # the second write to place 1 stays
    out.sum().backward()
    np.testing.assert_array_equal(src.grad, [0.0, 1.0, 1.0])  # the overwritten write has no effect
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="reduce must be one of"):
        x.scatter_reduce(0, np.array([0]), src, "max")
    with pytest.raises(IndexError, match=r"lie in \[0, 3\)"):
        x.scatter(0, np.array([3]), src)
    with pytest.raises(TypeError, match="must be boolean"):
        x.masked_select(np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="the logits' shape"):
        F.cross_entropy(Tensor(np.zeros((2, 3))), np.full((2, 2), 0.5))


def test_logcumsumexp_is_stable_far_from_zero():
    x = Tensor(np.array([-1000.0, 0.0, 1000.0, -5000.0]), dtype=np.float64)
    np.testing.assert_allclose(x.logcumsumexp(0).data, [-1000.0, 0.0, 1000.0, 1000.0])


def torch_cases(torch, normal) -> dict:
    """name -> (minigrad function, torch function, inputs) for test_torch_parity_ops' table of every op."""
    TF = torch.nn.functional
    index = np.array([[0, 2, 1, 2], [2, 0, 0, 3]])
    mask = np.array([True, False, True, True, False])
    probabilities = np.random.default_rng(0).dirichlet(np.ones(5), size=3)
    return {
        "cummax_cummin": (
            lambda x: x.cummax(1).values + x.cummin(dim=0)[0],
            lambda x: x.cummax(1).values + x.cummin(dim=0)[0],
            [normal(3, 5)],
        ),
        "logcumsumexp": (lambda x: x.logcumsumexp(-1), lambda x: x.logcumsumexp(-1), [normal(2, 3, 4) * 3]),
        "std_mean_var_mean": (
            lambda x: x.std_mean(1)[0] + x.var_mean(dim=1)[0] * x.var_mean(1)[1],
            lambda x: torch.std_mean(x, 1)[0] + torch.var_mean(x, dim=1)[0] * torch.var_mean(x, 1)[1],
            [normal(3, 4)],
        ),
        "repeat_interleave_masked_select": (
            lambda x: x.repeat_interleave(np.array([2, 0, 1]), dim=0).masked_select(mask),
            lambda x: x.repeat_interleave(torch.tensor([2, 0, 1]), dim=0).masked_select(torch.tensor(mask)),
            [normal(3, 5)],
        ),
        "scatter": (
            lambda x, s: x.scatter(1, index[:, :2], s) + x.scatter(1, index, 0.5),
            lambda x, s: x.scatter(1, torch.tensor(index[:, :2]), s) + x.scatter(1, torch.tensor(index), 0.5),
            [normal(2, 5), normal(2, 2)],
        ),
        "scatter_reduce": (
            lambda x, s: sum(x.scatter_reduce(1, index, s, r, include_self=i) for r in REDUCE for i in (True, False)),
            lambda x, s: sum(
                x.scatter_reduce(1, torch.tensor(index), s, r, include_self=i) for r in REDUCE for i in (True, False)
            ),
            [normal(2, 5), normal(2, 4)],
        ),
        "cross_entropy_probabilities": (
            lambda z: (
                F.cross_entropy(z, probabilities, label_smoothing=0.1)
                + kernels.cross_entropy(z, probabilities, reduction="sum")
            ),
            lambda z: (
                TF.cross_entropy(z, torch.tensor(probabilities, dtype=z.dtype), label_smoothing=0.1)
                + TF.cross_entropy(z, torch.tensor(probabilities, dtype=z.dtype), reduction="sum")
            ),
            [normal(3, 5)],
        ),
    }


def value_cases() -> dict:
    """Ops without a gradient, for test_torch_parity_ops' value table."""
    x = np.array([[0.0, 1.5, 0.0], [-2.0, 0.0, 3.0]])
    return {
        "nonzero": (lambda a: a.nonzero(), lambda a: a.nonzero(), [x]),
        "nonzero_as_tuple": (lambda a: a.nonzero(as_tuple=True)[1], lambda a: a.nonzero(as_tuple=True)[1], [x]),
        "cummax_indices": (lambda a: a.cummax(1).indices, lambda a: a.cummax(1).indices, [x]),
    }
