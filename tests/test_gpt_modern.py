"""GPTConfig's later-recipe fields: rotary, RMSNorm, QK-norm, ReLU², untied head, logit soft cap.

Each is gradient-checked in float64, compared with PyTorch where torch has the op, and its
effect on the state dict's names is pinned; the KV-cached sampler agrees with the full
forward under rotary positions."""

import numpy as np
import pytest
from test_gpt import module_gradcheck, spread_weights, tiny_model

import minigrad as mg
from minigrad import Tensor, no_grad
from transformer import GPT, GPTConfig
from transformer.gpt import Block, CausalSelfAttention, ReLUSquared, parameter_shapes
from transformer.sample import KVCache, cached_logits

MODERN = dict(rotary=True, norm="rmsnorm", qk_norm=True, activation="relu2", tie_embeddings=False, logit_softcap=5.0)
EACH = [{name: value} for name, value in MODERN.items()] + [MODERN]


def config_id(overrides: dict) -> str:
    return "all" if len(overrides) > 1 else next(iter(overrides))


@pytest.mark.parametrize("overrides", EACH, ids=config_id)
def test_gradcheck_block(overrides):
    config = GPTConfig(**{**dict(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8), **overrides})
    block = Block(config, rng=np.random.default_rng(0))
    for _, p in block.named_parameters():
        p.data[...] = np.random.default_rng(1).normal(0.0, 0.5, p.shape)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 4, 8)), requires_grad=True)
    assert module_gradcheck(block, block, x)


@pytest.mark.parametrize("overrides", EACH, ids=config_id)
def test_gradcheck_whole_gpt_loss(overrides):
    model = tiny_model(**overrides)
    spread_weights(model)
    rng = np.random.default_rng(3)
    idx, targets = rng.integers(0, 7, (2, 4)), rng.integers(0, 7, (2, 4))
    assert module_gradcheck(model, lambda: model(idx, targets)[1])


def test_defaults_are_nanogpts():
    config = GPTConfig()
    assert (config.rotary, config.norm, config.qk_norm) == (False, "layernorm", False)
    assert (config.activation, config.tie_embeddings, config.logit_softcap) == ("gelu", True, 0.0)


@pytest.mark.parametrize("overrides", EACH, ids=config_id)
def test_state_dict_names_and_shapes_are_what_the_checkpoint_expects(overrides):
    model = tiny_model(**overrides, bias=True)
    shapes = {name: value.shape for name, value in model.state_dict().items()}
    assert shapes == parameter_shapes(model.config)
    assert list(shapes) == list(parameter_shapes(model.config))


def test_rotary_drops_the_position_table_and_rmsnorm_the_norm_biases():
    names = set(tiny_model(rotary=True, norm="rmsnorm", bias=True).state_dict())
    assert "transformer.wpe.weight" not in names
    assert not any(name.endswith(("ln_1.bias", "ln_2.bias", "ln_f.bias")) for name in names)
    assert "transformer.h.0.attn.c_attn.bias" in names  # bias=True still gives the Linears theirs


def test_untied_head_is_its_own_tensor():
    model = tiny_model(tie_embeddings=False)
    assert model.lm_head.weight is not model.transformer.wte.weight
    names = [name for name, _ in model.named_parameters()]
    assert "lm_head.weight" in names and "transformer.wte.weight" in names
    V, C = 7, 8
    assert model.num_parameters() == tiny_model().num_parameters() + V * C
    idx = np.random.default_rng(0).integers(0, V, (2, 4))
    model(idx, idx)[1].backward()
    assert not np.array_equal(model.lm_head.weight.grad, model.transformer.wte.weight.grad)


def test_bad_values_are_refused():
    for overrides, message in [
        (dict(norm="batchnorm"), "norm must be one of"),
        (dict(activation="tanh"), "activation must be one of"),
        (dict(logit_softcap=-1.0), "logit_softcap must be >= 0"),
        (dict(rotary=True, n_embd=6, n_head=2), "head size 3 must be even"),
    ]:
        with pytest.raises(ValueError, match=message):
            GPTConfig(**{**dict(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8), **overrides})


def test_softcap_bounds_the_logits():
    idx = np.random.default_rng(0).integers(0, 7, (2, 4))
    capped, uncapped = tiny_model(logit_softcap=2.0), tiny_model()
    spread_weights(capped, std=3.0)
    spread_weights(uncapped, std=3.0)  # the same weights: the cap is the only difference
    logits, raw = capped(idx)[0].data, uncapped(idx)[0].data
    assert np.abs(raw).max() > 2.0 >= np.abs(logits).max()
    np.testing.assert_allclose(logits, 2.0 * np.tanh(raw / 2.0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("overrides", [dict(rotary=True), MODERN], ids=["rotary", "all"])
def test_kv_cached_logits_equal_the_full_forward(overrides):
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, **overrides))
    spread_weights(model)
    model.eval()
    idx = np.random.default_rng(2).integers(0, 11, (3, 8))
    with no_grad():
        full, _ = model(idx)  # (B, T, V)
        cache = KVCache(2)
        steps = [cached_logits(model, idx[:, :3], cache)]
        steps += [cached_logits(model, idx[:, t : t + 1], cache) for t in range(3, 8)]
    # float32 logits of size ~10 after two blocks: a few hundred roundings of 6e-8 each
    np.testing.assert_allclose(np.concatenate([s.data for s in steps], axis=1), full.data, atol=1e-4, rtol=1e-4)


def test_rotary_attention_is_causal_and_sees_only_relative_positions():
    config = GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8, rotary=True, bias=False)
    attn = CausalSelfAttention(config, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((1, 4, 8)).astype(np.float32)
    with no_grad():
        # the same tokens at positions 0..3 and at 3..6: rotary scores depend on distances only
        q0, k0, v0 = attn.heads(Tensor(x))
        q3, k3, v3 = attn.heads(Tensor(x), offset=3)
        scores0 = q0.data @ k0.data.transpose(0, 1, 3, 2)
        scores3 = q3.data @ k3.data.transpose(0, 1, 3, 2)
        np.testing.assert_allclose(scores0, scores3, atol=1e-5)
        later = x.copy()
        later[:, 3] += 1.0
        np.testing.assert_array_equal(attn(Tensor(x)).data[:, :3], attn(Tensor(later)).data[:, :3])


# ---------------------------------------------------------------- against PyTorch


def test_relu_squared_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-3, 3, 25)
    ours = Tensor(x, requires_grad=True, dtype=np.float64)
    y = ReLUSquared()(ours)
    y.sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    torch.relu(theirs).square().sum().backward()
    np.testing.assert_allclose(y.data, torch.relu(theirs).square().detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-15)


def test_qk_norm_and_rmsnorm_match_torchs_rms_norm():
    torch = pytest.importorskip("torch")
    config = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8, qk_norm=True, norm="rmsnorm")
    block = Block(config, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 4, 8)).astype(np.float32)
    with no_grad():
        q, k, _ = block.attn.heads(Tensor(x))
        qkv = block.attn.c_attn(Tensor(x)).data
        normed = block.ln_1(Tensor(x)).data
    torch_q = torch.tensor(qkv[..., :8]).reshape(2, 4, 2, 4).transpose(1, 2)
    torch_k = torch.tensor(qkv[..., 8:16]).reshape(2, 4, 2, 4).transpose(1, 2)
    eps = np.finfo(np.float32).eps
    for ours, theirs in [(q, torch_q), (k, torch_k)]:
        expected = torch.nn.functional.rms_norm(theirs, (4,), eps=1e-6).numpy()
        np.testing.assert_allclose(ours.data, expected, rtol=8 * eps, atol=8 * eps)
    rms = torch.nn.RMSNorm(8, eps=1e-6)
    np.testing.assert_allclose(normed, rms(torch.tensor(x)).detach().numpy(), rtol=8 * eps, atol=8 * eps)


def test_softcap_matches_torch_in_value_and_gradient():
    torch = pytest.importorskip("torch")
    model = tiny_model(logit_softcap=3.0)
    spread_weights(model, std=2.0)
    x = Tensor(np.random.default_rng(0).standard_normal((1, 4, 8)), requires_grad=True)
    logits = model.head(x)
    (logits * logits).sum().backward()
    h = torch.tensor(model.transformer.ln_f(Tensor(x.data)).data.astype(np.float64))
    w = torch.tensor(model.lm_head.weight.data.astype(np.float64))
    expected = 3.0 * torch.tanh(h @ w.T / 3.0)
    np.testing.assert_allclose(logits.data, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert mg.gradcheck(lambda t: model.head(t), Tensor(x.data, dtype=np.float64, requires_grad=True))
