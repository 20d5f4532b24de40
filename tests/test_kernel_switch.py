"""One switch for speed: `mg.use_kernels` decides whether the functions of minigrad/kernels.py run
their fused kernel or their readable definition, a Module's `fused` pins it for its own forward,
and every model of the transformer package follows it. Also the single helpers the models share:
the mask-to-bias conversion, the head split and merge, the softmax of arrays, cross-entropy's checks."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import kernels, nn
from minigrad.ops import softmax_array
from minigrad.viz import draw_graph
from transformer import GPT, GPTConfig, Transformer
from transformer import sample as sampling
from transformer.attention import MultiHeadAttention, merge_heads, split_heads
from transformer.coattention import CoAttentionConfig, CoAttentionTransformer
from transformer.swin import SwinConfig, SwinTransformer
from transformer.vit import VisionTransformer, ViTConfig

# the Function names of the fused kernels, as draw_graph labels their nodes
KERNEL_OPS = {"Linear", "LayerNorm", "GELU", "CrossEntropy", "Embedding", "ScaledDotProductAttention"}


def ops_drawn(output) -> set[str]:
    """The names of the ops in the graph that produced `output`."""
    return set(re.findall(r"<b>(\w+)</b>", draw_graph(output).source))


def float64_input(*shape, seed: int = 0) -> mg.Tensor:
    return mg.Tensor(np.random.default_rng(seed).standard_normal(shape), dtype=np.float64, requires_grad=True)


# ---------------------------------------------------------------- the switch


def test_the_switch_is_on_by_default_nests_and_comes_back_after_an_error():
    assert mg.kernels.kernels_enabled()
    with mg.use_kernels(False):
        assert not kernels.kernels_enabled()
        with mg.use_kernels(True):
            assert kernels.kernels_enabled()
        assert not kernels.kernels_enabled()
    with pytest.raises(RuntimeError), mg.use_kernels(False):
        raise RuntimeError("inside")
    assert kernels.kernels_enabled()


def test_the_switch_decorates_a_function_and_each_call_sets_it_anew():
    @mg.use_kernels(False)
    def readable_gelu(x):
        return kernels.gelu(x)

    x = float64_input(3, 4)
    assert readable_gelu(x).grad_fn.name != "GELU"  # the definition's last op (a Mul)
    assert readable_gelu(x).grad_fn.name != "GELU"  # the same decorator object, called again
    assert kernels.gelu(x).grad_fn.name == "GELU" and kernels.kernels_enabled()


@pytest.mark.parametrize(
    "name, arguments",
    [
        ("linear", lambda: (float64_input(2, 3), float64_input(4, 3, seed=1), float64_input(4, seed=2))),
        ("gelu", lambda: (float64_input(2, 3),)),
        ("layer_norm", lambda: (float64_input(2, 3), float64_input(3, seed=1), float64_input(3, seed=2))),
        ("cross_entropy", lambda: (float64_input(4, 5), np.array([0, 4, 2, 1]))),
        ("embedding", lambda: (np.array([[0, 2], [1, 1]]), float64_input(3, 4))),
        ("scaled_dot_product_attention", lambda: tuple(float64_input(2, 3, 4, seed=s) for s in range(3))),
    ],
)
def test_each_twin_runs_its_kernel_or_its_definition_with_the_same_values(name, arguments):
    twin, args = getattr(kernels, name), arguments()
    assert twin.definition is getattr(F, name)
    fused = twin(*args)
    with mg.use_kernels(False):
        defined = twin(*args)
    assert fused.grad_fn.name in KERNEL_OPS and ops_drawn(defined).isdisjoint(KERNEL_OPS)
    np.testing.assert_allclose(fused.data, defined.data, rtol=1e-12, atol=1e-12)


def test_a_module_with_fused_set_pins_the_switch_for_its_forward():
    x = float64_input(2, 3)
    follows, readable, fast = (nn.Linear(3, 2, fused=f).to(np.float64) for f in (None, False, True))
    assert follows(x).grad_fn.name == "Linear" and readable(x).grad_fn.name != "Linear"
    with mg.use_kernels(False):
        assert follows(x).grad_fn.name != "Linear" and fast(x).grad_fn.name == "Linear"
    assert kernels.kernels_enabled()


def test_a_gpt_runs_under_its_config_whatever_the_switch_says_outside():
    config = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    idx = np.random.default_rng(0).integers(0, 11, (2, 8))
    readable = GPT(GPTConfig(**config, fused=False))
    fused = GPT(GPTConfig(**config, fused=True))
    assert ops_drawn(readable(idx, idx)[1]).isdisjoint(KERNEL_OPS)
    with mg.use_kernels(False):
        assert "ScaledDotProductAttention" in ops_drawn(fused(idx, idx)[1])


def model_and_loss(name: str) -> tuple:
    """One model of the package, and a call that gives its scalar loss."""
    rng = np.random.default_rng(0)
    images, labels = rng.standard_normal((2, 1, 8, 8)), np.array([1, 3])
    mg.manual_seed(0)
    if name == "vit":
        return VisionTransformer(ViTConfig()), lambda m: m(images, labels)[1]
    if name == "swin":
        return SwinTransformer(SwinConfig()), lambda m: m(images, labels)[1]
    if name == "coattention":
        regions, words = rng.standard_normal((2, 4, 64)), rng.integers(0, 10, (2, 4))
        return CoAttentionTransformer(CoAttentionConfig()), lambda m: m(regions, words, np.array([0, 1]))[1]
    src, tgt = mg.Tensor(rng.standard_normal((2, 5, 8))), mg.Tensor(rng.standard_normal((2, 4, 8)))
    causal = Transformer.generate_square_subsequent_mask(4)
    return Transformer(8, 2, 1, 1, 16), lambda m: (m(src, tgt, tgt_mask=causal) ** 2).mean()


@pytest.mark.parametrize("name", ["vit", "swin", "coattention", "transformer"])
def test_every_model_follows_the_switch_and_computes_the_same_either_way(name):
    model, loss_of = model_and_loss(name)
    fused = loss_of(model)
    assert "ScaledDotProductAttention" in ops_drawn(fused)
    with mg.use_kernels(False):
        defined = loss_of(model)
    assert ops_drawn(defined).isdisjoint(KERNEL_OPS)  # every op of every definition in view
    model.fused = False  # the model's own setting, as GPTConfig(fused=False)
    assert ops_drawn(loss_of(model)).isdisjoint(KERNEL_OPS)
    # float32 forward of a few layers: each op rounds to ~6e-8, over a few dozen ops
    np.testing.assert_allclose(fused.item(), defined.item(), rtol=1e-5)


def test_multi_head_attention_runs_the_fused_attention_when_it_returns_weights():
    mha = MultiHeadAttention(8, 2)
    x = mg.randn(2, 5, 8)
    out, weights = mha(x, x, x)  # need_weights=True, the default
    assert "ScaledDotProductAttention" in ops_drawn(out) and weights.shape == (2, 5, 5)
    mha.fused = False
    out_defined, weights_defined = mha(x, x, x)
    assert "ScaledDotProductAttention" not in ops_drawn(out_defined)
    np.testing.assert_allclose(out.data, out_defined.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights.data, weights_defined.data, rtol=1e-6)


# ---------------------------------------------------------------- the shared helpers


def test_attention_bias_keeps_each_apis_meaning_of_a_boolean_mask():
    may_attend = np.array([[True, False], [True, True]])
    np.testing.assert_array_equal(F.attention_bias(may_attend, np.float32), [[0, -np.inf], [0, 0]])
    masked_out = ~may_attend  # torch.nn's convention: True where attention is NOT allowed
    np.testing.assert_array_equal(F.attention_bias(masked_out, np.float32, blocked_where=True), [[0, -np.inf], [0, 0]])
    floats = np.array([[0.5, -1.0]])
    assert F.attention_bias(floats, np.float32).dtype == np.float32
    np.testing.assert_array_equal(F.attention_bias(mg.Tensor(floats), np.float64), floats)


def test_a_torch_nn_mask_and_a_functional_mask_give_the_same_attention():
    rng = np.random.default_rng(3)
    mha = MultiHeadAttention(4, 2).to(np.float64)
    x = mg.Tensor(rng.standard_normal((1, 3, 4)), dtype=np.float64)
    blocked = np.array([[False, True, True], [False, False, True], [False, False, False]])
    out, _ = mha(x, x, x, attn_mask=blocked)
    causal, _ = mha(x, x, x, attn_mask=blocked, is_causal=True, need_weights=False)  # the hint: the causal mask
    np.testing.assert_allclose(out.data, causal.data, rtol=1e-12)


def test_split_and_merge_heads_are_inverse_and_give_each_head_its_run_of_channels():
    x = mg.Tensor(np.arange(2 * 3 * 5 * 6, dtype=np.float64).reshape(2, 3, 5, 6))  # (..., T, C) with two batch axes
    heads = split_heads(x, 3)  # (2, 3, 3, 5, 2)
    assert heads.shape == (2, 3, 3, 5, 2)
    np.testing.assert_array_equal(heads.data[:, :, 1], x.data[..., 2:4])  # head 1 holds channels 2 and 3
    np.testing.assert_array_equal(merge_heads(heads).data, x.data)


def test_softmax_of_arrays_is_the_ops_softmax_and_reuses_its_statistics():
    x = np.random.default_rng(4).standard_normal((3, 7)) * 10
    probs, stats = softmax_array(x)
    np.testing.assert_allclose(probs, mg.Tensor(x, dtype=np.float64).softmax(axis=-1).data, rtol=1e-15)
    again, _ = softmax_array(x.copy(), stats=stats)
    np.testing.assert_array_equal(again, probs)
    in_place = x.copy()
    assert softmax_array(in_place, out=in_place)[0] is in_place


@pytest.mark.parametrize(
    "targets, options, message",
    [
        (np.array([0, 1, 2]), {}, "need 2 targets"),
        (np.array([0, 5]), {}, r"targets must lie in \[0, 5\)"),
        (np.array([0, 1]), {"reduction": "max"}, "reduction must be"),
    ],
)
def test_cross_entropy_and_its_kernel_refuse_bad_input_with_the_same_words(targets, options, message):
    logits = mg.randn(2, 5)
    for cross_entropy in (F.cross_entropy, kernels.cross_entropy.kernel):
        with pytest.raises(ValueError, match=message):
            cross_entropy(logits, targets, **options)


def test_one_name_one_meaning_for_erf():
    assert not hasattr(kernels, "erf")  # the array-level one is erf_array; F.erf is the Tensor op
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(kernels.erf_array(x), F.erf(mg.Tensor(x, dtype=np.float64)).data, rtol=1e-15)


def test_sampling_has_one_loop_and_the_gpt_forward_takes_the_cache():
    assert sampling.generate is GPT.generate
    model = GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=2, n_embd=8))
    cache = sampling.KVCache(1)
    with mg.no_grad():
        model(np.array([[1, 2, 3]]), kv_cache=cache)
        assert len(cache) == 3
        with pytest.raises(ValueError, match="block size is only 4"):
            model(np.array([[1, 2]]), kv_cache=cache)


def test_the_gpts_parts_built_alone_keep_their_configs_setting():
    from transformer.gpt import Block

    config = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, fused=False)
    block = Block(config, np.random.default_rng(0))
    assert ops_drawn(block(mg.randn(2, 8, 8))).isdisjoint(KERNEL_OPS)
