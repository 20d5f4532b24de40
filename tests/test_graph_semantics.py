"""How the graph behaves: long chains, reuse, broadcasting, retain_graph, grad mode, memory,
the dtype policy, anomaly detection, and the error messages a learner sees."""

from __future__ import annotations

import gc
import math
import re
import tracemalloc
import weakref

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor


def f64(data, requires_grad: bool = True) -> Tensor:
    return Tensor(data, dtype=np.float64, requires_grad=requires_grad)


# ---------------------------------------------------------------- backward walks the whole graph


def test_chain_of_100000_ops_backward_without_recursion():
    x = f64(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.00001
    y.backward()
    # d/dx x · 1.00001^n = 1.00001^n
    assert x.grad == pytest.approx(math.exp(100_000 * math.log1p(1e-5)), rel=1e-9)


def test_a_long_chain_can_be_dropped_without_backward():
    x = f64(1.0)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    del y  # freeing 100,000 nested nodes must not overflow the C stack either
    gc.collect()


def test_reused_tensor_sums_gradients_over_every_use():
    x = f64([1.0, -2.0, 3.0])
    y = (x * x + x * 3.0 - x).sum()  # dy/dx = 2x + 3 - 1
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 2)


def test_diamond_graph_runs_each_backward_once():
    x = f64([0.5, 1.5])
    a = x.exp()
    b, c = a * 2.0, a * 3.0  # a feeds two branches that meet again
    (b * c).sum().backward()  # 6 e^{2x}  =>  12 e^{2x}
    np.testing.assert_allclose(x.grad, 12 * np.exp(2 * x.data), rtol=1e-14)


def test_x_plus_x_and_x_times_x():
    x = f64([3.0])
    (x + x).backward(np.array([1.0]))
    assert x.grad.tolist() == [2.0]
    x.grad = None
    (x * x).backward(np.array([1.0]))
    assert x.grad.tolist() == [6.0]


def test_broadcasting_sums_gradients_back_to_each_shape():
    a = f64(np.ones((4, 3)))
    row = f64(np.ones(3))
    column = f64(np.ones((4, 1)))
    scalar = f64(1.0)
    (a * row + column + scalar).sum().backward()
    np.testing.assert_array_equal(row.grad, [4.0, 4.0, 4.0])  # each row element was used 4 times
    np.testing.assert_array_equal(column.grad, np.full((4, 1), 3.0))
    assert scalar.grad.shape == () and scalar.grad == 12.0
    np.testing.assert_array_equal(a.grad, np.ones((4, 3)))


def test_gradients_accumulate_over_backward_calls_until_zeroed():
    x = f64([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0, 7.0])
    x.zero_grad()
    assert x.grad is None


def test_grad_has_the_leafs_shape_and_dtype_and_is_not_shared():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = Tensor(np.ones((2, 3)), requires_grad=True)
    (x + y).sum().backward()
    assert x.grad.shape == (2, 3) and x.grad.dtype == np.float32
    x.grad += 1  # optimizers update in place: the two leaves must not share one array
    np.testing.assert_array_equal(y.grad, np.ones((2, 3)))


def test_leaf_without_requires_grad_keeps_grad_none():
    constant = Tensor([1.0, 2.0])
    x = Tensor([3.0, 4.0], requires_grad=True)
    out = constant * x
    assert out.requires_grad and not constant.requires_grad
    out.sum().backward()
    assert constant.grad is None
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


def test_detach_cuts_the_graph_but_shares_the_data():
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    y = x * 1.0
    assert np.shares_memory(y.detach().numpy(), y.numpy())


def test_backward_of_a_non_scalar_with_a_gradient():
    x = f64([1.0, 2.0, 3.0])
    (x * x).backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -6.0])


# ---------------------------------------------------------------- retain_graph and released buffers


def test_second_backward_through_a_released_graph_says_retain_graph():
    x = f64([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=re.escape("retain_graph=True")):
        y.backward()


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = f64([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-15)
    np.testing.assert_allclose(first, np.exp(x.data) * (1 + x.data), rtol=1e-15)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()  # the second call did not retain


def test_saved_arrays_are_freed_after_backward():
    x = f64(np.linspace(-1, 1, 100))
    hidden = x.exp()
    loss = (hidden * hidden).sum()  # Mul saves hidden's array for its backward
    saved = weakref.ref(hidden.data)
    del hidden
    gc.collect()
    assert saved() is not None, "the graph should hold the intermediate until backward"
    loss.backward()
    gc.collect()
    assert saved() is None, "backward should release what forward saved"


def test_retain_graph_keeps_the_saved_arrays():
    x = f64(np.linspace(-1, 1, 100))
    hidden = x.exp()
    loss = (hidden * hidden).sum()
    saved = weakref.ref(hidden.data)
    del hidden
    loss.backward(retain_graph=True)
    gc.collect()
    assert saved() is not None
    loss.backward()
    gc.collect()
    assert saved() is None


def test_backward_releases_graph_memory_tracemalloc():
    n = 250_000  # 1 MB per float32 array
    x = Tensor(np.linspace(-1, 1, n), requires_grad=True)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        loss = ((x.exp() * 2.0).tanh() * x).sum()
        held = tracemalloc.get_traced_memory()[0] - base
        loss.backward()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held > 3 * 4 * n, f"the graph held only {held} bytes"
    assert after < 1.5 * 4 * n, f"{after} bytes still held after backward (x.grad alone is {4 * n})"


# ---------------------------------------------------------------- grad mode


def test_no_grad_context_records_no_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with mg.no_grad():
        y = x * 2 + 1
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    assert x.grad is None


def test_no_grad_as_decorator_with_and_without_parentheses():
    x = Tensor([1.0], requires_grad=True)

    @mg.no_grad()
    def double(t):
        return t * 2

    @mg.no_grad
    def triple(t):
        return t * 3

    assert not double(x).requires_grad and not triple(x).requires_grad
    assert triple.__name__ == "triple"
    assert mg.is_grad_enabled() and (x * 2).requires_grad


def test_no_grad_decorator_survives_recursion_and_exceptions():
    @mg.no_grad()
    def depth(n):
        if n == 0:
            raise ValueError("bottom")
        return depth(n - 1)

    with pytest.raises(ValueError):
        depth(3)
    assert mg.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = Tensor([1.0], requires_grad=True)
    with mg.no_grad():
        with mg.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    with mg.set_grad_enabled(False):
        assert not (x * 2).requires_grad


# ---------------------------------------------------------------- dtype policy


def test_dtype_policy():
    assert Tensor(np.ones(3)).dtype == np.float32  # float64 ndarray -> float32
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(2.5).dtype == np.float32
    assert Tensor(np.ones(3), dtype=np.float64).dtype == np.float64
    assert Tensor(np.ones(3, dtype=np.float16)).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.int64 and Tensor(np.arange(3, dtype=np.int32)).dtype == np.int32
    assert Tensor([True, False]).dtype == np.bool_
    assert mg.zeros(2, 3).dtype == mg.ones((2,)).dtype == mg.randn(2).dtype == np.float32


def test_ops_keep_float32_with_python_numbers_and_arrays():
    x = Tensor([1.0, 2.0], requires_grad=True)
    results = [x * 2.5, x + 1, 3 - x, x / 3.0, 2.0**x, x**2, x**0.5, -x, x * np.float64(2.0), x + np.ones(2)]
    assert all(r.dtype == np.float32 for r in results)
    sum(r.sum() for r in results).backward()
    assert x.grad.dtype == np.float32


def test_float64_stays_float64():
    x = Tensor([1.0, 2.0], dtype=np.float64, requires_grad=True)
    y = (x * 2.5 + 1).exp().sum() / 3
    assert y.dtype == np.float64
    y.backward()
    assert x.grad.dtype == np.float64


def test_integer_tensors_stay_integer_and_divide_to_float32():
    i = Tensor([1, 2, 3])
    assert (i + 1).dtype == np.int64 and (i * i).dtype == np.int64
    assert (i / 2).dtype == np.float32 and (i * 0.5).dtype == np.float32  # as in PyTorch


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match=r"floating.*int64"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        mg.zeros(3, dtype=np.int32, requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        Tensor([True]).requires_grad_()


# ---------------------------------------------------------------- anomaly detection


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns too; the error is the point
def test_detect_anomaly_names_the_first_op_whose_forward_made_nan():
    x = Tensor([-1.0, 1.0], requires_grad=True)
    with mg.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"^Log \(forward\) produced NaN"):
            (x * 2).log().exp().sum()  # the NaN would flow on through Exp and Sum
    assert np.isnan((x * 2).log().exp().sum().item())  # without detection: no error


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns too; the error is the point
def test_detect_anomaly_names_the_first_op_whose_backward_made_inf():
    x = Tensor([0.0, 4.0], requires_grad=True)
    loss = (x.sqrt() * 3.0).sum()  # forward is finite; d√x/dx = 1/(2√x) is Inf at 0
    with mg.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"^Sqrt \(backward\) produced Inf"):
            loss.backward()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns too; the error is the point
def test_detect_anomaly_as_decorator_restores_the_previous_mode():
    @mg.detect_anomaly()
    def run(t):
        return t.log()

    with pytest.raises(FloatingPointError, match="Log"):
        run(Tensor([-1.0]))
    Tensor([-1.0]).log()  # detection is off again


# ---------------------------------------------------------------- error messages


def test_shape_mismatch_names_the_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"^Add .*\(2, 3\) and \(3, 2\)"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"^Mul .*\(4,\) and \(3,\)"):
        Tensor(np.ones(4)) * np.ones(3)
    with pytest.raises(ValueError, match=r"^MatMul .*\(2, 3\) and \(4, 5\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"^Concatenate .*\(2, 3\) and \(2, 4\)"):
        mg.concatenate([Tensor(np.ones((2, 3))), Tensor(np.ones((2, 4)))], axis=0)
    with pytest.raises(ValueError, match=r"^Reshape .*\(2, 3\).*\(4,\)"):
        Tensor(np.ones((2, 3))).reshape(4)


def test_backward_on_a_non_scalar_needs_a_gradient():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"non-scalar.*\(2, 3\).*backward\(grad\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(np.ones((3, 2)))


@pytest.mark.parametrize("index, name", [(1.5, "float"), ("a", "str"), ((0, {1}), "set"), (np.array([0.5]), "float64")])
def test_unsupported_index_types_are_named(index, name):
    x = Tensor(np.ones((3, 3)))
    with pytest.raises(TypeError, match=name):
        x[index]


def test_axis_out_of_range_is_named():
    with pytest.raises(ValueError, match="axis 2 is out of range for a tensor with 2 dimensions"):
        Tensor(np.ones((2, 3))).sum(axis=2)
