"""The norms take PyTorch's arguments: F.layer_norm, F.rms_norm, nn.LayerNorm and nn.RMSNorm in torch's forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad.functional as F
from minigrad import Tensor, kernels, nn

torch = pytest.importorskip("torch")


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
    np.testing.assert_allclose(ours(Tensor(x, dtype=dtype)).data, expected, rtol=8 * np.finfo(dtype).eps * 18)


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
