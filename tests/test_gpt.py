"""GPT: parameter names and tying, GPT-2 initialisation, loss, errors, float64 gradient checks
of every submodule, causality, dropout, and the optimizer's parameter groups."""

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor
from minigrad.nn import Module, Parameter
from minigrad.optim import AdamW
from transformer import GPT, GPTConfig
from transformer.gpt import MLP, Block, CausalSelfAttention

TINY = dict(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8)


def tiny_model(seed: int = 0, **overrides) -> GPT:
    return GPT(GPTConfig(**{**TINY, **overrides}), rng=np.random.default_rng(seed))


def spread_weights(model, seed: int = 1, std: float = 0.5) -> None:
    """Replace GPT-2's small initial weights by larger random ones, so that attention is far
    from uniform and the LayerNorm gains and biases are not trivial: a sharper test."""
    rng = np.random.default_rng(seed)
    for _, p in model.named_parameters():
        p.data[...] = rng.normal(0.0, std, p.shape)


def module_gradcheck(module, fn, *inputs, dropout_rng=None):
    """mg.gradcheck of fn(*inputs) with respect to the inputs and every parameter of `module`.

    gradcheck differentiates its own float64 copies of what it is given, so the parameters are
    passed as extra inputs and bound back into the module for each evaluation (into every
    attribute that holds them: a tied weight has two). With `dropout_rng`, the generator is
    rewound before each evaluation so that every one draws the same dropout masks.
    """
    params = [p for _, p in module.named_parameters()]
    slots = [[(m, name) for m in module.modules() for name, q in m._parameters.items() if q is p] for p in params]
    rng_state = dropout_rng.bit_generator.state if dropout_rng is not None else None

    def bind(tensors):
        for holders, tensor in zip(slots, tensors):
            for owner, name in holders:
                object.__setattr__(owner, name, tensor)  # bypass registration: just compute with it

    def run(*args):
        if dropout_rng is not None:
            dropout_rng.bit_generator.state = rng_state
        bind(args[len(inputs) :])
        return fn(*args[: len(inputs)])

    try:
        return mg.gradcheck(run, *inputs, *params)
    finally:
        bind(params)


# ---------------------------------------------------------------- names, tying, sizes


def expected_names(n_layer: int, bias: bool) -> list[str]:
    """nanoGPT's state-dict keys, in its order."""
    suffixes = ("weight", "bias") if bias else ("weight",)
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(n_layer):
        for layer in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            names += [f"transformer.h.{i}.{layer}.{s}" for s in suffixes]
    names += [f"transformer.ln_f.{s}" for s in suffixes] + ["lm_head.weight"]
    return names


@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_has_nanogpts_names_and_shapes(bias):
    cfg = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8, bias=bias)
    model = GPT(cfg, rng=np.random.default_rng(0))
    state = model.state_dict()
    assert list(state) == expected_names(2, bias)
    C, V = 8, 11
    assert state["transformer.wte.weight"].shape == (V, C)
    assert state["transformer.wpe.weight"].shape == (5, C)
    assert state["transformer.h.1.attn.c_attn.weight"].shape == (3 * C, C)
    assert state["transformer.h.1.mlp.c_fc.weight"].shape == (4 * C, C)
    assert state["transformer.h.1.mlp.c_proj.weight"].shape == (C, 4 * C)
    assert state["lm_head.weight"].shape == (V, C)
    assert all(v.dtype == np.float32 for v in state.values())


def test_tied_weight_is_one_tensor_listed_once():
    model = tiny_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    names = [n for n, _ in model.named_parameters()]
    assert "transformer.wte.weight" in names and "lm_head.weight" not in names
    assert names == [n for n in expected_names(1, True) if n != "lm_head.weight"]
    state = model.state_dict()
    np.testing.assert_array_equal(state["lm_head.weight"], state["transformer.wte.weight"])
    # loading writes the one tensor; both keys must agree, and the last one written wins
    state["transformer.wte.weight"] = state["transformer.wte.weight"] + 1.0
    state["lm_head.weight"] = state["transformer.wte.weight"]
    model.load_state_dict(state, strict=True)
    np.testing.assert_array_equal(model.lm_head.weight.data, state["lm_head.weight"])


def test_num_parameters_counts_the_tied_weight_once():
    cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    model = GPT(cfg, rng=np.random.default_rng(0))
    C, V, L = 128, 65, 4
    per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    total = V * C + 64 * C + L * per_block + 2 * C
    assert model.num_parameters() == total == 809_856
    assert model.num_parameters(non_embedding=True) == total - 64 * C  # nanoGPT prints 0.80M here


def test_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(n_embd=10, n_head=3)


# ---------------------------------------------------------------- initialisation


def test_gpt2_initialisation():
    n_layer = 3
    cfg = GPTConfig(vocab_size=200, block_size=64, n_layer=n_layer, n_head=4, n_embd=96)
    params = dict(GPT(cfg, rng=np.random.default_rng(0)).named_parameters())
    residual_std = 0.02 / math.sqrt(2 * n_layer)
    for name, p in params.items():
        if name.endswith("c_proj.weight"):
            assert p.data.std() == pytest.approx(residual_std, rel=0.05), name
        elif p.ndim == 2:
            assert p.data.std() == pytest.approx(0.02, rel=0.05), name
        elif ".ln_" in name and name.endswith("weight"):
            np.testing.assert_array_equal(p.data, 1.0)
        else:
            np.testing.assert_array_equal(p.data, 0.0)
        if p.ndim == 2:
            assert abs(p.data.mean()) < 0.1 * p.data.std(), name


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = tiny_model(seed=3), tiny_model(seed=3), tiny_model(seed=4)
    for (name, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
        if pa.ndim == 2:
            assert not np.array_equal(pa.data, pc.data), name


# ---------------------------------------------------------------- forward, loss, errors


def test_forward_shapes_and_loss_as_mean_cross_entropy():
    model = tiny_model()
    spread_weights(model)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 7, (3, 4))
    targets = rng.integers(0, 7, (3, 4))
    targets[0, 1] = targets[2, 3] = -1  # ignored positions
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 4, 7) and loss.shape == ()
    z = logits.data.astype(np.float64)
    log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
    kept = targets != -1
    expected = -log_probs[kept, targets[kept]].mean()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    logits_only, no_loss = model(idx)
    assert no_loss is None
    np.testing.assert_array_equal(logits_only.data, logits.data)  # all positions, not only the last


def test_loss_at_initialisation_is_near_uniform():
    cfg = GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = GPT(cfg, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 65, (4, 16)), rng.integers(0, 65, (4, 16))
    _, loss = model(idx, targets)
    assert loss.item() == pytest.approx(math.log(65), abs=0.05)


def test_clear_errors_for_bad_input():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"length 5, block size is only 4"):
        model(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 7\)"):
        model(np.array([[0, 7]]))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"targets have shape \(1, 3\), expected \(1, 2\)"):
        model(np.zeros((1, 2), dtype=np.int64), np.zeros((1, 3), dtype=np.int64))


def test_accepts_tensors_and_lists_as_ids():
    model = tiny_model()
    ids = [[1, 2, 3]]
    a, _ = model(ids)
    b, _ = model(Tensor(np.array(ids)))
    np.testing.assert_array_equal(a.data, b.data)


# ---------------------------------------------------------------- gradient checks in float64


def tiny_config(**overrides) -> GPTConfig:
    return GPTConfig(**{**TINY, **overrides})


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_causal_self_attention(bias):
    attn = CausalSelfAttention(tiny_config(bias=bias), np.random.default_rng(0))
    spread_weights(attn)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 4, 8)), requires_grad=True)
    assert module_gradcheck(attn, attn, x)


def test_gradcheck_mlp():
    mlp = MLP(tiny_config(), np.random.default_rng(0))
    spread_weights(mlp)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 8)), requires_grad=True)
    assert module_gradcheck(mlp, mlp, x)


def test_gradcheck_block():
    block = Block(tiny_config(), np.random.default_rng(0))
    spread_weights(block, std=0.3)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 4, 8)), requires_grad=True)
    assert module_gradcheck(block, block, x)


def test_gradcheck_block_with_dropout_in_training_mode():
    rng = np.random.default_rng(0)
    block = Block(tiny_config(dropout=0.3), rng)
    spread_weights(block, std=0.3)
    x = Tensor(np.random.default_rng(2).standard_normal((1, 4, 8)), requires_grad=True)
    assert module_gradcheck(block, block, x, dropout_rng=rng)


def test_gradcheck_whole_gpt_loss_through_the_tied_weight():
    model = tiny_model(n_head=2)
    spread_weights(model, std=0.3)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 7, (2, 4))
    targets = rng.integers(0, 7, (2, 4))
    targets[1, 0] = -1
    assert module_gradcheck(model, lambda: model(idx, targets)[1])


def test_module_gradcheck_sees_a_wrong_parameter_gradient():
    """The helper can fail: a parameter gradient that backward doubles makes it raise, so the
    parameters really are perturbed and differentiated, not only the inputs."""

    class DoubledGradient(mg.Function):
        def forward(self, w):
            return w.copy()

        def backward(self, g):
            return 2.0 * g

    class Scale(Module):
        def __init__(self):
            super().__init__()
            self.weight = Parameter(np.array([0.5, -1.5, 2.0]))

        def forward(self, x):
            return x * DoubledGradient.apply(self.weight)

    scale = Scale()
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3)), requires_grad=True)
    with pytest.raises(mg.GradcheckError, match="input 1"):
        module_gradcheck(scale, scale, x)


# ---------------------------------------------------------------- causality


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_no_position_receives_information_from_a_later_one(dropout):
    """d output[t] / d input[t'] is exactly zero for every t' > t, through the whole stack."""
    cfg = GPTConfig(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=dropout)
    model = GPT(cfg, rng=np.random.default_rng(0))
    spread_weights(model)
    T = 6
    x = Tensor(np.random.default_rng(1).standard_normal((2, T, 8)), requires_grad=True)
    for t in range(T):
        x.grad = None
        h = x
        for block in model.transformer.h:
            h = block(h)
        out = model.lm_head(model.transformer.ln_f(h))  # (B, T, V)
        seed = np.zeros(out.shape, dtype=np.float32)
        seed[:, t] = 1.0
        out.backward(seed)
        assert np.all(x.grad[:, t + 1 :] == 0.0), f"position {t} saw the future"
        assert np.all(np.abs(x.grad[:, : t + 1]).sum(axis=-1) > 0), f"position {t} lost its past"


def test_logits_at_t_do_not_depend_on_later_position_embeddings():
    model = GPT(GPTConfig(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=8), rng=np.random.default_rng(0))
    spread_weights(model)
    idx = np.random.default_rng(1).integers(0, 7, (2, 5))
    for t in range(5):
        model.zero_grad()
        logits, _ = model(idx)
        logits[:, t].sum().backward()
        wpe_grad = model.transformer.wpe.weight.grad
        assert np.all(wpe_grad[t + 1 :] == 0.0) and np.all(np.abs(wpe_grad[: t + 1]).sum(-1) > 0)


# ---------------------------------------------------------------- dropout


def test_dropout_is_seeded_active_in_training_and_off_in_eval():
    idx = np.random.default_rng(1).integers(0, 7, (2, 4))
    a, b = tiny_model(seed=0, dropout=0.3), tiny_model(seed=0, dropout=0.3)
    la, lb = a(idx, idx)[1].item(), b(idx, idx)[1].item()
    assert la == lb  # the same generator draws the same masks
    assert a(idx, idx)[1].item() != la  # and the next draw is another mask
    a.eval()
    first, second = a(idx, idx)[1].item(), a(idx, idx)[1].item()
    assert first == second
    reference = tiny_model(seed=0)  # the same weights without dropout
    reference.load_state_dict(a.state_dict())
    assert reference(idx, idx)[1].item() == first


# ---------------------------------------------------------------- optimizer groups


def test_optimizer_groups_decay_matrices_only():
    model = GPT(GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8), rng=np.random.default_rng(0))
    decay, no_decay = model.optimizer_groups(weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay["params"])
    assert decayed == sorted(n for n, p in model.named_parameters() if p.ndim == 2)
    assert "transformer.wte.weight" in decayed and "transformer.wpe.weight" in decayed
    assert all(p.ndim == 1 for p in no_decay["params"])  # biases and LayerNorm gains
    all_ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert sorted(all_ids) == sorted(names) and len(set(all_ids)) == len(all_ids)  # each once


def test_configure_optimizers_gives_adamw_over_the_groups():
    model = tiny_model()
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.99))
    assert isinstance(opt, AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(g["lr"] == 1e-3 and tuple(g["betas"]) == (0.9, 0.99) for g in opt.param_groups)
    idx = np.random.default_rng(0).integers(0, 7, (2, 4))
    before = model(idx, idx)[1].item()
    for _ in range(5):
        opt.zero_grad()
        model(idx, idx)[1].backward()
        opt.step()
    assert model(idx, idx)[1].item() < before
