"""Our GPT against nanoGPT's, in PyTorch (tests/reference/nanogpt.py): state dicts move both
ways with strict=True, and logits, loss and every parameter gradient agree in float32."""

import dataclasses

import numpy as np
import pytest

from transformer import GPT, GPTConfig, sample

torch = pytest.importorskip("torch")
from reference import nanogpt  # noqa: E402  (needs torch)

# float32 on both sides, the same formulas summed in other orders. A reordered sum of n terms
# moves by at most n·eps32·sum|terms| (Higham); the longest sums here are the MLP's 4·n_embd = 512
# terms ("baby"), 6.1e-5 of their size: RTOL rounds that up, and ATOL is the same bound for the
# entries whose terms (up to ~0.3 in size) cancel to near 0.
RTOL = 1e-4
ATOL = 4 * 128 * float(np.finfo(np.float32).eps) * 0.3

CONFIGS = {
    "baby": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128),
    "no-bias": dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=False),
    "one-head": dict(vocab_size=5, block_size=6, n_layer=1, n_head=1, n_embd=12),
    "readable": dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, fused=False),
}


def spread_weights(model, seed: int, std: float = 0.3) -> None:
    """Larger random weights than GPT-2's init: attention far from uniform, a sharper test."""
    rng = np.random.default_rng(seed)
    for _, p in model.named_parameters():
        p.data[...] = rng.normal(0.0, std, p.shape)


def to_torch(state: dict) -> dict:
    return {name: torch.from_numpy(array.copy()) for name, array in state.items()}


def torch_twin(ours: GPT) -> "nanogpt.GPT":
    nanogpt_fields = {field.name for field in dataclasses.fields(nanogpt.GPTConfig)}
    config = {k: v for k, v in vars(ours.config).items() if k in nanogpt_fields}
    twin = nanogpt.GPT(nanogpt.GPTConfig(**config))
    twin.load_state_dict(to_torch(ours.state_dict()), strict=True)
    return twin


def batch(cfg: dict, seed: int, B: int = 3):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, cfg["vocab_size"], (B, cfg["block_size"]))
    targets = rng.integers(0, cfg["vocab_size"], (B, cfg["block_size"]))
    targets[0, :3] = -1  # ignored positions, as nanoGPT's ignore_index
    return idx, targets


@pytest.mark.parametrize("weights", ["gpt2-init", "spread"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_ours_to_torch_outputs_and_all_gradients_agree(name, weights):
    cfg = CONFIGS[name]
    ours = GPT(GPTConfig(**cfg), rng=np.random.default_rng(0))
    if weights == "spread":
        spread_weights(ours, seed=1)
    theirs = torch_twin(ours)
    assert theirs.lm_head.weight is theirs.transformer.wte.weight  # loading kept nanoGPT's tie
    idx, targets = batch(cfg, seed=2)

    logits, loss = ours(idx, targets)
    loss.backward()
    t_logits, t_loss = theirs(torch.from_numpy(idx), torch.from_numpy(targets))
    t_loss.backward()

    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), atol=ATOL, rtol=RTOL)
    assert loss.item() == pytest.approx(t_loss.item(), abs=ATOL)
    their_params = dict(theirs.named_parameters())
    our_params = dict(ours.named_parameters())
    assert list(our_params) == list(their_params)  # the same names, the tied weight once
    for param_name, p in our_params.items():
        np.testing.assert_allclose(
            p.grad, their_params[param_name].grad.numpy(), atol=ATOL, rtol=RTOL, err_msg=param_name
        )


@pytest.mark.parametrize("name", list(CONFIGS))
def test_torch_to_ours_gives_the_same_outputs(name):
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    theirs = nanogpt.GPT(nanogpt.GPTConfig(**{k: v for k, v in cfg.items() if k != "fused"}))
    ours = GPT(GPTConfig(**cfg), rng=np.random.default_rng(0))
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    assert ours.lm_head.weight is ours.transformer.wte.weight  # still one tensor after loading
    np.testing.assert_array_equal(ours.lm_head.weight.data, state["lm_head.weight"])
    idx, targets = batch(cfg, seed=3)
    logits, loss = ours(idx, targets)
    t_logits, t_loss = theirs(torch.from_numpy(idx), torch.from_numpy(targets))
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), atol=ATOL, rtol=RTOL)
    assert loss.item() == pytest.approx(t_loss.item(), abs=ATOL)


def test_without_targets_our_last_position_is_nanogpts_only_position():
    cfg = CONFIGS["no-bias"]
    ours = GPT(GPTConfig(**cfg), rng=np.random.default_rng(0))
    spread_weights(ours, seed=4)
    theirs = torch_twin(ours)
    idx, _ = batch(cfg, seed=5)
    logits, loss = ours(idx[:, :5])
    t_logits, t_loss = theirs(torch.from_numpy(idx[:, :5]))
    assert loss is None and t_loss is None
    assert logits.shape == (3, 5, 13) and tuple(t_logits.shape) == (3, 1, 13)
    np.testing.assert_allclose(logits.data[:, -1:], t_logits.detach().numpy(), atol=ATOL, rtol=RTOL)


def test_parameter_counts_agree():
    cfg = CONFIGS["baby"]
    ours = GPT(GPTConfig(**cfg), rng=np.random.default_rng(0))
    theirs = nanogpt.GPT(nanogpt.GPTConfig(**cfg))
    assert ours.num_parameters() == theirs.get_num_params(non_embedding=False)
    assert ours.num_parameters(non_embedding=True) == theirs.get_num_params()


@pytest.mark.parametrize("cached", [True, False])
def test_greedy_generation_matches_nanogpt_past_the_block_size(cached):
    """nanoGPT's generate with top_k=1 is greedy; both crop the context to the last block_size
    tokens once it grows past it, so the tokens agree one for one."""
    cfg = CONFIGS["no-bias"]
    ours = GPT(GPTConfig(**cfg), rng=np.random.default_rng(0))
    spread_weights(ours, seed=6, std=0.5)
    theirs = torch_twin(ours).eval()
    prompt = np.random.default_rng(7).integers(0, cfg["vocab_size"], (2, 3))
    new = 2 * cfg["block_size"] + 3
    generate = sample.generate if cached else GPT.generate  # with the KV cache, or nanoGPT's loop
    ours_out = generate(ours, prompt, new, temperature=0.0)
    their_out = theirs.generate(torch.from_numpy(prompt), new, top_k=1).numpy()
    np.testing.assert_array_equal(ours_out, their_out)


def test_training_steps_with_configure_optimizers_match_nanogpts():
    """Five AdamW steps with weight decay on the matrices only, on both sides: the groups,
    the tied weight's summed gradient and the update rule all have to agree.

    In float64: AdamW divides each gradient by its own running size, so a gradient's relative
    rounding error becomes the same relative error of a step of at most ~2.35 lr (see
    test_distributed.adamw_drift_bound), and a float32 gradient near zero would make that error
    as large as the step, on one BLAS kernel and not another.
    """
    cfg = CONFIGS["one-head"]
    ours = GPT(GPTConfig(**cfg), rng=np.random.default_rng(0))
    spread_weights(ours, seed=8)
    theirs = torch_twin(ours).double()
    ours.to(np.float64)
    settings = dict(weight_decay=0.1, learning_rate=1e-2, betas=(0.9, 0.99))
    opt, t_opt = ours.configure_optimizers(**settings), theirs.configure_optimizers(**settings)
    for step in range(5):
        idx, targets = batch(cfg, seed=10 + step)
        opt.zero_grad()
        ours(idx, targets)[1].backward()
        opt.step()
        t_opt.zero_grad()
        theirs(torch.from_numpy(idx), torch.from_numpy(targets))[1].backward()
        t_opt.step()
        # The key bias adds the same q·b_k to every score of a query's row, and softmax ignores
        # a constant shift: its true gradient is zero, so both sides hold only rounding noise
        # there, which Adam divides by its own size into steps of ±lr. Those entries are left out.
        C = cfg["n_embd"]
        key_bias_grad = ours.transformer.h[0].attn.c_attn.bias.grad[C : 2 * C]
        assert np.abs(key_bias_grad).max() < 1e-6
    # A gradient sums its B·T positions' terms, to n·eps64 of their size; those not within 1e-6
    # of cancelling (only the key bias's exact zeros are, left out below) keep a relative error
    # under B·T·eps64·1e6, and five steps of at most 2.35·lr carry it into the weights.
    gradient_error = idx.size * np.finfo(np.float64).eps * 1e6
    tolerance = 5 * 2.35 * settings["learning_rate"] * gradient_error
    their_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        expected = their_state[name].numpy()
        if name.endswith("c_attn.bias"):
            value, expected = np.delete(value, np.s_[C : 2 * C]), np.delete(expected, np.s_[C : 2 * C])
        np.testing.assert_allclose(value, expected, atol=tolerance, rtol=0, err_msg=name)
