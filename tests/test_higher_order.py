"""Gradients of gradients: `mg.grad`, `create_graph=True`, `mg.hvp`, `mg.hessian`.

Every op's second derivative is checked against central differences by `check` in
test_ops_gradcheck.py (gradcheck and gradgradcheck on the same hypothesis shapes). Here: the
engine's contract as torch.autograd.grad states it, second derivatives of every op of the
torch parity table against PyTorch's, Hessian-vector products and Hessians against
torch.autograd.functional, a GPT's Hessian-vector product over all its parameters against
nanoGPT's, and the errors that stop a second derivative from being silently wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, kernels
from transformer import GPT, GPTConfig


def leaf(*values, seed: int | None = None, shape: tuple = ()) -> Tensor:
    data = np.random.default_rng(seed).standard_normal(shape) if seed is not None else np.array(values)
    return Tensor(data, dtype=np.float64, requires_grad=True)


# ---------------------------------------------------------------- mg.grad, first order


def test_grad_returns_one_tensor_per_input_and_leaves_grad_alone():
    x, w = leaf(1.0, 2.0, 3.0), leaf(0.5, -1.0, 2.0)
    gx, gw = mg.grad((x * w).sum(), [x, w])
    assert isinstance(gx, Tensor) and gx.grad_fn is None
    np.testing.assert_array_equal(gx.data, w.data)
    np.testing.assert_array_equal(gw.data, x.data)
    assert x.grad is None and w.grad is None


def test_grad_of_several_outputs_with_grad_outputs_sums_their_products():
    x = leaf(seed=0, shape=(3,))
    y1, y2 = x * 2, (x * x).sum()
    (gx,) = mg.grad([y1, y2], x, grad_outputs=[np.array([1.0, 0.0, -1.0]), None])
    np.testing.assert_allclose(gx.data, np.array([2.0, 0.0, -2.0]) + 2 * x.data)


def test_grad_with_respect_to_an_intermediate_tensor():
    x = leaf(seed=1, shape=(4,))
    h = x.exp()
    gh, gx = mg.grad((h * h).sum(), [h, x])
    np.testing.assert_allclose(gh.data, 2 * h.data)
    np.testing.assert_allclose(gx.data, 2 * np.exp(2 * x.data))


def test_an_unused_input_is_named_or_given_none():
    x, unused = leaf(1.0, 2.0), Tensor(np.zeros(3), requires_grad=True, name="bias")
    with pytest.raises(RuntimeError, match=r"inputs\[1\] 'bias' \(shape \(3,\), float32\) was not used.*allow_unused"):
        mg.grad((x * x).sum(), [x, unused])
    gx, none = mg.grad((x * x).sum(), [x, unused], allow_unused=True)
    assert none is None and np.allclose(gx.data, 2 * x.data)


def test_a_non_scalar_output_needs_grad_outputs():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match=r"outputs\[0\] has shape \(2,\).*grad_outputs"):
        mg.grad(x * 2, x)


def test_retain_graph_follows_create_graph_as_in_torch():
    x = leaf(1.0, 2.0)
    y = (x.exp() * x).sum()
    mg.grad(y, x)  # retain_graph defaults to create_graph=False: the graph is released
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        mg.grad(y, x)
    z = (x.exp() * x).sum()
    first = mg.grad(z, x, create_graph=True)[0]
    second = mg.grad(z, x)[0]  # create_graph=True retained it
    np.testing.assert_allclose(first.data, second.data)


def test_backward_still_fills_grad_with_arrays():
    x = leaf(1.0, 2.0)
    (x**3).sum().backward()
    assert type(x.grad) is np.ndarray
    np.testing.assert_allclose(x.grad, 3 * x.data**2)


# ---------------------------------------------------------------- higher orders


def test_derivatives_to_any_order():
    x = leaf(0.5, -1.5, 2.0)
    y = (x**5).sum()
    expected = [5 * x.data**4, 20 * x.data**3, 60 * x.data**2, 120 * x.data, 120 + 0 * x.data, 0 * x.data]
    for order, want in enumerate(expected, start=1):
        (y,) = mg.grad(y, x, create_graph=True)
        np.testing.assert_allclose(y.data, want, err_msg=f"derivative {order}")
        y = y.sum()


def test_a_mixed_second_derivative_of_a_small_network():
    """∂/∂w of ‖∂L/∂x‖², a gradient penalty, by double backward against finite differences."""
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((4, 3)), dtype=np.float64, requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2)), dtype=np.float64, requires_grad=True)

    def penalty(x, w):
        with mg.enable_grad():  # gradcheck runs fn under no_grad for its finite differences
            (gx,) = mg.grad(((x @ w).tanh() ** 2).sum(), x, create_graph=True)
            return (gx * gx).sum()

    assert mg.gradcheck(penalty, x, w, atol=1e-7, rtol=1e-6)


def test_a_deep_chain_under_create_graph_needs_no_recursion():
    x = leaf(0.3)
    y = x
    for _ in range(3000):
        y = (y * 0.999).tanh()
    (g,) = mg.grad(y, x, create_graph=True)
    (h,) = mg.grad(g, x)
    assert np.isfinite(h.data).all()


# ---------------------------------------------------------------- fused kernels and their definitions


class Cube(mg.Function):
    """x³ with its derivative computed into a saved array: it cannot run on Tensors."""

    def forward(self, x):
        self.slope = 3 * x * x
        return x**3

    def backward(self, g):
        return g * self.slope


def cube_definition(x):
    return x * x * x


def test_an_op_without_a_tensor_backward_or_definition_is_refused_by_name():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match="backward of Cube runs on NumPy arrays only"):
        mg.grad(Cube.apply(x).sum(), x, create_graph=True)
    (g,) = mg.grad(Cube.apply(x).sum(), x)  # a first derivative is fine
    np.testing.assert_allclose(g.data, 3 * x.data**2)


def test_an_op_with_a_definition_is_differentiated_through_it(monkeypatch):
    monkeypatch.setattr(Cube, "definition", staticmethod(cube_definition))
    x = leaf(1.0, -2.0)
    (g,) = mg.grad(Cube.apply(x).sum(), x, create_graph=True)
    (h,) = mg.grad(g.sum(), x)
    np.testing.assert_allclose(g.data, 3 * x.data**2)
    np.testing.assert_allclose(h.data, 6 * x.data)
    assert mg.gradgradcheck(Cube.apply, x)


def test_a_definition_that_does_not_match_the_op_is_refused(monkeypatch):
    monkeypatch.setattr(Cube, "definition", staticmethod(lambda x: x * x))
    x = leaf(1.5, 2.0)
    with pytest.raises(RuntimeError, match="definition of Cube run again does not give the values"):
        mg.grad(Cube.apply(x).sum(), x, create_graph=True)


def test_a_definition_that_calls_its_own_op_is_refused(monkeypatch):
    monkeypatch.setattr(Cube, "definition", staticmethod(lambda x: Cube.apply(x)))
    x = leaf(1.5, 2.0)
    with pytest.raises(RuntimeError, match="the definition of Cube runs Cube itself"):
        mg.grad(Cube.apply(x).sum(), x, create_graph=True)


def test_an_input_passed_twice_to_a_fused_op_gets_its_gradient_once():
    x = leaf(seed=4, shape=(2, 3, 4))
    assert mg.gradgradcheck(lambda x: kernels.scaled_dot_product_attention(x, x, x), x, atol=1e-6, rtol=1e-5)


def test_a_fused_op_whose_inputs_depend_on_each_other_gets_partial_derivatives():
    """linear(e^x, x): the definition's gradient for x must not flow on through e^x as well."""
    x = leaf(seed=10, shape=(3, 3))
    assert mg.gradgradcheck(lambda x: kernels.linear(x.exp(), x), x, atol=1e-6, rtol=1e-5)
    ids = np.array([[0, 2, 2], [1, 0, 3]])
    w = leaf(seed=11, shape=(4, 3))  # a GPT's tied embedding: the table is also the output layer
    assert mg.gradgradcheck(lambda w: kernels.linear(kernels.embedding(ids, w), w), w, atol=1e-6, rtol=1e-5)


def test_fused_and_composed_twins_give_the_same_second_derivatives():
    x, w, b = leaf(seed=5, shape=(2, 3, 4)), leaf(seed=6, shape=(4,)), leaf(seed=7, shape=(4,))
    v = [np.random.default_rng(8).standard_normal(t.shape) for t in (x, w, b)]
    _, fused = mg.hvp(lambda x, w, b: (kernels.gelu(kernels.layer_norm(x, w, b)) ** 2).sum(), (x, w, b), v)
    _, composed = mg.hvp(lambda x, w, b: (F.gelu(F.layer_norm(x, w, b)) ** 2).sum(), (x, w, b), v)
    for a, c in zip(fused, composed):
        np.testing.assert_allclose(a.data, c.data, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- what has no second derivative


def test_integer_and_comparison_results_are_refused_with_their_dtype():
    x = leaf(1.0, -2.0)
    with pytest.raises(RuntimeError, match=r"outputs\[0\] \(shape \(2,\), bool\) does not require a gradient"):
        mg.grad(x > 0, x, grad_outputs=np.ones(2), create_graph=True)
    with pytest.raises(RuntimeError, match=r"outputs\[0\] \(shape \(\), int64\) does not require a gradient"):
        mg.grad(x.argmax(), x, create_graph=True)
    through_integers = (x.long() * 2.0).sum()  # the graph ends at the cast to integers, as in PyTorch
    with pytest.raises(RuntimeError, match=r"outputs\[0\] \(shape \(\), float32\) does not require a gradient"):
        mg.grad(through_integers, x, create_graph=True)
    ids = Tensor(np.array([0, 1]))
    with pytest.raises(RuntimeError, match=r"inputs\[1\] \(shape \(2,\), int64\) .*integers and booleans have no"):
        mg.grad((x * 2).sum(), [x, ids], create_graph=True)


def test_two_tensors_over_one_array_are_refused_rather_than_guessed():
    """x * x.detach(): Mul saved one array for both; which one it meant decides the answer."""
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match="two arguments of Mul are different tensors over one array"):
        mg.grad((x * x.detach()).sum(), x, create_graph=True)
    copy = Tensor(x.data)  # its own array: the second derivative is then clearly 1, not 2
    (g,) = mg.grad((x * copy).sum(), x, create_graph=True)
    assert not g.requires_grad


def test_dropout_inside_fused_attention_is_refused_under_create_graph():
    q = leaf(seed=9, shape=(2, 3, 4))
    out = kernels.scaled_dot_product_attention(q, q, q, dropout_p=0.5, rng=np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="definition of ScaledDotProductAttention run again"):
        mg.grad(out.sum(), q, create_graph=True)


# ---------------------------------------------------------------- hessian and hvp by hand


def test_hessian_of_a_quadratic_is_its_matrix():
    A = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, -1.0], [0.0, -1.0, 4.0]])
    x = leaf(1.0, -1.0, 0.5)
    H = mg.hessian(lambda x: 0.5 * (x @ (Tensor(A, dtype=np.float64) @ x)), x)
    np.testing.assert_allclose(H.data, A)
    _, Hv = mg.hvp(lambda x: 0.5 * (x @ (Tensor(A, dtype=np.float64) @ x)), x, np.array([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(Hv.data, A @ [1.0, 0.0, 2.0])


def test_hessian_of_a_linear_function_is_zero_or_refused_when_strict():
    x = leaf(1.0, 2.0)
    np.testing.assert_array_equal(mg.hessian(lambda x: (x * 3).sum(), x).data, np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="hvp: the output does not depend twice on input 0"):
        mg.hvp(lambda x: (x * 3).sum(), x, np.ones(2), strict=True)


def test_hvp_of_one_number_needs_no_vector_and_can_keep_its_graph():
    x = leaf(0.5)
    value, h = mg.hvp(lambda x: x**4, x, create_graph=True)  # 12 x², with a graph
    assert value.item() == pytest.approx(0.0625) and h.item() == pytest.approx(3.0)
    (third,) = mg.grad(h, x)
    assert third.item() == pytest.approx(12.0)  # 24 x
    with pytest.raises(ValueError, match="v can be None only"):
        mg.hvp(lambda x: (x**4).sum(), leaf(1.0, 2.0))


# ---------------------------------------------------------------- against PyTorch

torch = pytest.importorskip("torch")
from reference import nanogpt  # noqa: E402  (needs torch)
from test_gpt_torch_parity import batch, spread_weights, torch_twin  # noqa: E402
from test_torch_parity_ops import CASES  # noqa: E402


def second_order_minigrad(fn, arrays: list, weights: np.ndarray, directions: list) -> list:
    """∂/∂x of Σ u ⊙ (∂/∂x Σ w ⊙ fn(x)): the Hessian of Σ w ⊙ fn applied to the directions u."""
    xs = [Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]
    firsts = mg.grad(fn(*xs), xs, weights, create_graph=True, allow_unused=True)
    terms = [(g * u).sum() for g, u in zip(firsts, directions) if g is not None and g.requires_grad]
    if not terms:
        return [np.zeros_like(a) for a in arrays]
    seconds = mg.grad(sum(terms[1:], terms[0]), xs, allow_unused=True)
    return [np.zeros_like(a) if s is None else s.data for s, a in zip(seconds, arrays)]


def second_order_torch(fn, arrays: list, weights: np.ndarray, directions: list) -> list:
    xs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    with math_attention():
        out = fn(*xs)
    firsts = torch.autograd.grad(out, xs, torch.from_numpy(weights), create_graph=True, allow_unused=True)
    terms = [(g * torch.from_numpy(u)).sum() for g, u in zip(firsts, directions) if g is not None and g.requires_grad]
    if not terms:
        return [np.zeros_like(a) for a in arrays]
    seconds = torch.autograd.grad(sum(terms), xs, allow_unused=True)
    # force: torch gives a "ZeroTensor" for a second derivative it knows is zero (abs, relu)
    return [np.zeros_like(a) if s is None else s.numpy(force=True) for s, a in zip(seconds, arrays)]


def math_attention():
    """torch's attention as its composed formula: its fused CPU kernel has no double backward."""
    return torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH)


# Cases whose inputs sit exactly where the first derivative jumps: there is no second
# derivative there, and torch's double backward picks another side than its backward does.
# These are compared just off the jump.
AT_A_JUMP = {
    "elu": "x = 0, where ELU's slope jumps from alpha to 1",
    "softplus": "βx = threshold, where softplus switches to x",
    "softplus_beta": "βx = threshold, where softplus switches to x",
}


@pytest.mark.parametrize("name", CASES)
def test_second_derivatives_of_every_op_match_torch(name):
    ours, theirs, arrays = CASES[name]
    if name in AT_A_JUMP:
        arrays = [a + 1e-3 for a in arrays]
    rng = np.random.default_rng(11)
    with mg.no_grad():
        out_shape = ours(*[Tensor(a, dtype=np.float64) for a in arrays]).shape
    weights = rng.standard_normal(out_shape)
    directions = [rng.standard_normal(np.shape(a)) for a in arrays]
    with np.errstate(all="ignore"):  # pow_zero_base: 0 · ln 0 inside the second derivative
        got = second_order_minigrad(ours, arrays, weights, directions)
    expected = second_order_torch(theirs, arrays, weights, directions)
    for i, (g, e) in enumerate(zip(got, expected)):
        # where torch's is NaN ours may be too, or finite: ∂²(0ᵇ)/∂b² = 0 for b > 0, which torch
        # reaches through 0 · ln 0; everywhere else the two agree
        assert not (np.isnan(g) & ~np.isnan(e)).any(), f"second derivative of input {i}: NaN where torch has none"
        finite = ~np.isnan(e)
        np.testing.assert_allclose(g[finite], e[finite], rtol=1e-10, atol=1e-10, err_msg=f"input {i}")


def test_hvp_and_hessian_match_torch_autograd_functional():
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    va, vb = rng.standard_normal((3, 4)), rng.standard_normal((4,))

    def ours(x, y):
        return ((x @ y).tanh() * x.sum(axis=1)).sum() + (y.exp() * y).sum()

    def theirs(x, y):
        return ((x @ y).tanh() * x.sum(dim=1)).sum() + (y.exp() * y).sum()

    value, products = mg.hvp(ours, (Tensor(a, dtype=np.float64), Tensor(b, dtype=np.float64)), (va, vb))
    t_value, t_products = torch.autograd.functional.hvp(
        theirs, (torch.from_numpy(a), torch.from_numpy(b)), (torch.from_numpy(va), torch.from_numpy(vb))
    )
    assert value.item() == pytest.approx(t_value.item(), abs=1e-12)
    for p, t in zip(products, t_products):
        np.testing.assert_allclose(p.data, t.numpy(), rtol=1e-10, atol=1e-10)

    blocks = mg.hessian(ours, (Tensor(a, dtype=np.float64), Tensor(b, dtype=np.float64)))
    t_blocks = torch.autograd.functional.hessian(theirs, (torch.from_numpy(a), torch.from_numpy(b)))
    for i in range(2):
        for j in range(2):
            assert blocks[i][j].shape == tuple(t_blocks[i][j].shape)
            np.testing.assert_allclose(blocks[i][j].data, t_blocks[i][j].numpy(), rtol=1e-10, atol=1e-10)


def float64_gpt(cfg: dict) -> GPT:
    model = GPT(GPTConfig(**cfg), rng=np.random.default_rng(0))
    spread_weights(model, seed=1)
    for _, p in model.named_parameters():
        p.data = p.data.astype(np.float64)
    return model


def test_gpt_hessian_vector_product_over_all_parameters_matches_nanogpt():
    cfg = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8)
    ours = float64_gpt(cfg)
    theirs = torch_twin(ours).double()
    idx, targets = batch(cfg, seed=2, B=2)
    names, params = zip(*ours.named_parameters())
    rng = np.random.default_rng(13)
    v = [rng.standard_normal(p.shape) for p in params]

    loss, products = mg.hvp(lambda *params: ours(idx, targets)[1], params, v)

    t_params = dict(theirs.named_parameters())
    assert list(t_params) == list(names)
    with math_attention():
        _, t_loss = theirs(torch.from_numpy(idx), torch.from_numpy(targets))
    t_grads = torch.autograd.grad(t_loss, list(t_params.values()), create_graph=True)
    t_products = torch.autograd.grad(t_grads, list(t_params.values()), [torch.from_numpy(x) for x in v])
    assert loss.item() == pytest.approx(t_loss.item(), abs=1e-12)
    worst = max(np.abs(p.data - t.numpy()).max() for p, t in zip(products, t_products))
    for name, p, t in zip(names, products, t_products):
        np.testing.assert_allclose(p.data, t.numpy(), rtol=1e-10, atol=1e-10, err_msg=name)
    assert worst < 1e-10
    assert nanogpt is not None
