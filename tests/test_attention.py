"""Scaled dot-product attention and multi-head attention: values, masks, gradients.

functional.scaled_dot_product_attention (primitives only) is the definition; the fused kernel
of minigrad/kernels.py must agree with it in value and gradient, under every kind of mask and
with dropout. Multi-head attention is gradient-checked in float64 with respect to every parameter and input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, kernels
from transformer.attention import MultiHeadAttention
from transformer.positional import ALiBi, RotaryEmbedding


def gradcheck_module(module, call, *inputs) -> bool:
    """mg.gradcheck of `call(*inputs)` with respect to every parameter of `module` and the inputs.

    gradcheck differentiates with respect to its arguments (as float64 copies), so the module's
    parameters go in as arguments and each call puts the copies in their place in the module.
    """
    slots = []
    for name, _ in module.named_parameters():
        *path, attr = name.split(".")
        owner = module
        for part in path:
            owner = owner._modules[part]
        slots.append((owner, attr))

    def fn(*tensors):
        for (owner, attr), tensor in zip(slots, tensors):
            owner._parameters[attr] = tensor
            object.__setattr__(owner, attr, tensor)
        return call(*tensors[len(slots) :])

    return mg.gradcheck(fn, *module.parameters(), *inputs)


def randn(rng, *shape, requires_grad=True):
    return Tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=requires_grad)


# ---------------------------------------------------------------- scaled dot-product attention

ATTENTIONS = [kernels.scaled_dot_product_attention, F.scaled_dot_product_attention]
MASKS = {  # torch.nn.functional's convention: a boolean mask is True where attention MAY happen
    "none": lambda rng, T: None,
    "bool": lambda rng, T: (rng.random((T, T)) >= 0.3) | np.eye(T, dtype=bool),
    "float": lambda rng, T: rng.standard_normal((T, T)),
    "batched-bool": lambda rng, T: (rng.random((2, 1, T, T)) >= 0.3) | np.eye(T, dtype=bool),
    "bool-empty-row": lambda rng, T: MASKS["bool"](rng, T) & (np.arange(T)[:, None] != 2),  # query 2 sees no key
}


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("mask_kind", sorted(MASKS))
def test_kernel_equals_definition_in_value_and_gradient(mask_kind, is_causal):
    rng = np.random.default_rng(0)
    T = 5
    mask = MASKS[mask_kind](rng, T)
    q, k, v = (rng.standard_normal((2, 3, T, 4)) for _ in range(3))
    weights = rng.standard_normal((2, 3, T, 4))
    results = []
    for attention in ATTENTIONS:
        inputs = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (q, k, v)]
        out = attention(*inputs, attn_mask=mask, is_causal=is_causal)
        out.backward(weights)
        results.append([out.data] + [x.grad for x in inputs])
    for fused, defined in zip(*results):
        np.testing.assert_allclose(fused, defined, rtol=1e-12, atol=1e-12)


def test_kernel_equals_definition_with_dropout_from_the_same_seed():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 6, 4)) for _ in range(3))
    results = []
    for attention in ATTENTIONS:
        inputs = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (q, k, v)]
        out = attention(*inputs, dropout_p=0.4, is_causal=True, rng=np.random.default_rng(7))
        out.sum().backward()
        results.append([out.data] + [x.grad for x in inputs])
    for fused, defined in zip(*results):
        np.testing.assert_allclose(fused, defined, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_attention_gradcheck(attention):
    rng = np.random.default_rng(2)
    mask = rng.standard_normal((4, 5))
    q, k, v = randn(rng, 2, 4, 3), randn(rng, 2, 5, 3), randn(rng, 2, 5, 2)
    assert mg.gradcheck(lambda q, k, v: attention(q, k, v, mask), q, k, v)
    assert mg.gradcheck(lambda q, k, v: attention(q, k[:, :4], v[:, :4], is_causal=True), q, k, v)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_a_float_mask_that_requires_grad_receives_it(attention):
    """A learned bias passed as the float mask (Swin's relative positions) is trained through it."""
    rng = np.random.default_rng(12)
    q, k, v = randn(rng, 2, 3, 4, 2), randn(rng, 2, 3, 5, 2), randn(rng, 2, 3, 5, 2)
    bias = randn(rng, 3, 4, 5)  # one (Tq, Tk) bias per head
    out = attention(q, k, v, attn_mask=bias)
    out.backward(rng.standard_normal(out.shape))
    assert bias.grad is not None and bias.grad.shape == (3, 4, 5) and np.abs(bias.grad).sum() > 0
    assert mg.gradcheck(lambda bias: attention(q, k, v, attn_mask=bias, is_causal=True), bias)


def test_attention_is_the_formula_with_torch_meaning_of_masks():
    """softmax(Q Kᵀ / √d_k) V, written out in NumPy: a boolean mask is True where attention may happen."""
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((4, 8)), rng.standard_normal((6, 8)), rng.standard_normal((6, 3))
    allowed = rng.random((4, 6)) >= 0.4
    allowed[:, 0] = True
    scores = np.where(allowed, q @ k.T / np.sqrt(8), -np.inf)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    q, k, v = (Tensor(a, dtype=np.float64) for a in (q, k, v))
    got_weights = F.attention_weights(q, k, allowed)
    np.testing.assert_allclose(got_weights.data, weights, rtol=1e-12)
    assert (got_weights.data[~allowed] == 0).all()
    for attention in ATTENTIONS:
        np.testing.assert_allclose(attention(q, k, v, allowed).data, weights @ v.data, rtol=1e-12)
        scaled = attention(q, k, v, allowed, scale=0.5).data  # scale replaces 1/√d_k
        np.testing.assert_allclose(scaled, attention(q * (0.5 * np.sqrt(8)), k, v, allowed).data, rtol=1e-12)


@given(
    q_len=st.integers(1, 5),
    k_len=st.integers(1, 5),
    d_k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_weights_are_a_distribution_over_allowed_keys(q_len, k_len, d_k, seed):
    rng = np.random.default_rng(seed)
    q, k = randn(rng, q_len, d_k), randn(rng, k_len, d_k)
    allowed = rng.random((q_len, k_len)) >= 0.5
    allowed[:, 0] = True  # every query may see at least one key
    weights = F.attention_weights(q, k, allowed)
    np.testing.assert_allclose(weights.data.sum(axis=-1), 1.0, rtol=1e-12)
    assert (weights.data[~allowed] == 0).all() and (weights.data >= 0).all()


def test_causal_mask_float_minus_infinity_and_is_causal_agree():
    rng = np.random.default_rng(4)
    q, k, v = randn(rng, 3, 4), randn(rng, 3, 4), randn(rng, 3, 4)
    allowed = F.causal_mask(3, 3)
    np.testing.assert_array_equal(allowed, ~np.triu(np.ones((3, 3), dtype=bool), k=1))
    additive = np.where(allowed, 0.0, -np.inf)
    # a float mask may hold any bias, so the kernel shifts its scores by their max; a boolean one
    # leaves small scores unshifted: the same weights to a few roundings of each (Tk terms summed)
    atol = 8 * k.shape[0] * np.finfo(np.float64).eps * np.abs(v.data).max()
    for attention in ATTENTIONS:
        by_bool = attention(q, k, v, allowed).data
        np.testing.assert_allclose(by_bool, attention(q, k, v, additive).data, rtol=0, atol=atol)
        np.testing.assert_array_equal(by_bool, attention(q, k, v, is_causal=True).data)


def test_causal_mask_with_an_offset_lets_new_queries_see_earlier_keys():
    np.testing.assert_array_equal(F.causal_mask(2, 4, offset=2), [[1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(F.causal_mask(2, 3), [[1, 0, 0], [1, 1, 0]])  # torch's is_causal: top left


# ---------------------------------------------------------------- multi-head attention


def test_parameters_have_pytorch_names_and_shapes():
    mha = MultiHeadAttention(8, 2)
    assert {k: v.shape for k, v in mha.state_dict().items()} == {
        "in_proj_weight": (24, 8),
        "in_proj_bias": (24,),
        "out_proj.weight": (8, 8),
        "out_proj.bias": (8,),
    }
    assert "bias" not in " ".join(MultiHeadAttention(8, 2, bias=False).state_dict())


def test_embed_dim_must_split_into_heads():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(4\)"):
        MultiHeadAttention(10, 4)


@pytest.mark.parametrize("need_weights", [False, True])
def test_self_attention_gradcheck(need_weights):
    rng = np.random.default_rng(5)
    mha = MultiHeadAttention(4, 2)
    x = randn(rng, 2, 3, 4)
    padding = np.array([[False, False, True], [False, False, False]])
    causal = ~F.causal_mask(3, 3)  # torch.nn's convention: True above the diagonal, where a query may NOT look
    call = dict(key_padding_mask=padding, need_weights=need_weights, attn_mask=causal, is_causal=True)
    assert gradcheck_module(mha, lambda x: mha(x, x, x, **call)[0], x)


def test_cross_attention_gradcheck():
    rng = np.random.default_rng(6)
    mha = MultiHeadAttention(4, 2)
    query, memory = randn(rng, 2, 2, 4), randn(rng, 2, 3, 4)
    attn_mask = rng.standard_normal((2, 3))
    assert gradcheck_module(mha, lambda q, m: mha(q, m, m, attn_mask=attn_mask, need_weights=False)[0], query, memory)


@pytest.mark.parametrize("position", ["rotary", "alibi"])
def test_attention_with_relative_positions_gradcheck(position):
    rng = np.random.default_rng(7)
    extra = {"rotary": RotaryEmbedding(2)} if position == "rotary" else {"alibi": ALiBi(2)}
    mha = MultiHeadAttention(4, 2, **extra)
    x = randn(rng, 1, 4, 4)
    assert gradcheck_module(mha, lambda x: mha(x, x, x, need_weights=False)[0], x)


def test_alibi_is_a_per_head_float_mask():
    """ALiBi inside attention is exactly its bias passed as a (B·H, Tq, Tk) attention mask."""
    rng = np.random.default_rng(8)
    with_alibi = MultiHeadAttention(8, 4, alibi=ALiBi(4))
    plain = MultiHeadAttention(8, 4)
    plain.load_state_dict(with_alibi.state_dict())
    x = randn(rng, 2, 5, 8, requires_grad=False)
    bias = np.tile(ALiBi(4)(5, 5), (2, 1, 1))  # (B·H, T, T)
    expected = plain(x, x, x, attn_mask=bias)
    got = with_alibi(x, x, x)
    np.testing.assert_allclose(got[0].data, expected[0].data, rtol=1e-12)
    np.testing.assert_allclose(got[1].data, expected[1].data, rtol=1e-12)


def test_heads_weights_averaged_or_per_head():
    rng = np.random.default_rng(9)
    mha = MultiHeadAttention(8, 4)
    x, memory = randn(rng, 2, 3, 8), randn(rng, 2, 5, 8)
    out, averaged = mha(x, memory, memory)
    out_again, per_head = mha(x, memory, memory, average_attn_weights=False)
    assert averaged.shape == (2, 3, 5) and per_head.shape == (2, 4, 3, 5)
    np.testing.assert_allclose(per_head.data.mean(axis=1), averaged.data, rtol=1e-12)
    np.testing.assert_array_equal(out.data, out_again.data)
    fused, none = mha(x, memory, memory, need_weights=False)
    assert none is None
    np.testing.assert_allclose(fused.data, out.data, rtol=1e-12, atol=1e-14)


def test_padded_keys_get_zero_gradient():
    rng = np.random.default_rng(10)
    mha = MultiHeadAttention(8, 2)
    query, key, value = randn(rng, 2, 3, 8), randn(rng, 2, 5, 8), randn(rng, 2, 5, 8)
    padding = np.zeros((2, 5), dtype=bool)
    padding[0, 3:] = padding[1, 4:] = True
    for need_weights in (False, True):
        key.grad = value.grad = None
        out, _ = mha(query, key, value, key_padding_mask=padding, need_weights=need_weights)
        out.backward(rng.standard_normal(out.shape))
        assert (key.grad[padding] == 0).all() and (value.grad[padding] == 0).all()
        assert (np.abs(key.grad[~padding]).sum(axis=-1) > 0).all()


def test_dropout_draws_the_same_mask_on_both_paths():
    """With the same seed the fused path and the weights-returning path drop the same weights."""
    rng = np.random.default_rng(11)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = randn(rng, 2, 4, 8, requires_grad=False)
    mg.manual_seed(3)
    fused, _ = mha(x, x, x, need_weights=False)
    mg.manual_seed(3)
    composed, _ = mha(x, x, x, need_weights=True)
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-12)
    evaluated, _ = mha.eval()(x, x, x)
    assert not np.allclose(evaluated.data, fused.data)


def test_width_mismatch_is_explained():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"width 8.*\(1, 3, 6\)"):
        mha(mg.zeros(1, 3, 6), mg.zeros(1, 3, 6), mg.zeros(1, 3, 6))
