"""The readable definitions run the whole model: a GPT with fused=False computes what the fused
kernels compute, its graph shows every op, and the library behaves as a reader expects
(seeded programs repeat, torch's submodule names work)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad.viz import draw_graph
from transformer import GPT, GPTConfig, sample

CFG = dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16)


def twins(dropout: float = 0.0) -> tuple[GPT, GPT]:
    """The same weights in a fused GPT and in one on the readable definitions only."""
    mg.manual_seed(0)
    fused = GPT(GPTConfig(**CFG, dropout=dropout, fused=True))
    rng = np.random.default_rng(1)
    for _, p in fused.named_parameters():  # away from GPT-2's tiny init: attention far from uniform
        p.data[...] = rng.normal(0.0, 0.3, p.shape)
    readable = GPT(GPTConfig(**CFG, dropout=dropout, fused=False))
    readable.load_state_dict(fused.state_dict())
    return fused, readable


def test_fused_and_readable_gpts_give_the_same_logits_loss_and_gradients():
    fused, readable = twins()
    idx = np.random.default_rng(2).integers(0, 13, (3, 8))
    targets = np.random.default_rng(3).integers(0, 13, (3, 8))
    results = []
    for model in (fused, readable):
        logits, loss = model(idx, targets)
        loss.backward()
        results.append((logits.data, loss.item(), dict((n, p.grad) for n, p in model.named_parameters())))
    (logits_f, loss_f, grads_f), (logits_r, loss_r, grads_r) = results
    np.testing.assert_allclose(logits_f, logits_r, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(loss_f, loss_r, rtol=2e-5)
    assert grads_f.keys() == grads_r.keys()
    for name in grads_f:
        np.testing.assert_allclose(grads_f[name], grads_r[name], rtol=2e-5, atol=2e-5, err_msg=name)


def test_with_dropout_the_same_seed_gives_the_same_training_step():
    fused, readable = twins(dropout=0.2)
    idx = np.random.default_rng(2).integers(0, 13, (2, 8))
    losses = []
    for model in (fused, readable):
        mg.manual_seed(11)  # the dropout modules hold no generator: they draw from the default one
        losses.append(model(idx, idx)[1].item())
    np.testing.assert_allclose(*losses, rtol=2e-5)


def test_readable_gpt_samples_the_same_tokens():
    fused, readable = twins()
    start = np.array([[1, 2, 3]])
    for generate in (GPT.generate, sample.generate):
        tokens = [generate(m, start, 12, temperature=0.0) for m in (fused, readable)]
        np.testing.assert_array_equal(*tokens)


def op_names(dot_source: str) -> set[str]:
    return {op for op in ("MatMul", "Softmax", "Where", "Erf", "Exp", "Sqrt", "Sum") if op in dot_source}


def test_the_readable_graph_shows_every_op_of_attention():
    """fused=False draws q kᵀ, the causal mask, the softmax and @ v; fused=True one attention node."""
    fused, readable = twins()
    idx = np.random.default_rng(2).integers(0, 13, (1, 8))
    readable_dot = draw_graph(readable(idx, idx)[1], model=readable).source
    fused_dot = draw_graph(fused(idx, idx)[1], model=fused).source
    assert {"MatMul", "Softmax", "Where", "Erf", "Sqrt"} <= op_names(readable_dot)
    assert "ScaledDotProductAttention" not in readable_dot and "LayerNorm " not in readable_dot
    assert "ScaledDotProductAttention" in fused_dot and "Softmax" not in fused_dot


def test_manual_seed_makes_a_whole_program_repeat():
    def program() -> tuple:
        mg.manual_seed(3)
        model = GPT(GPTConfig(**CFG, dropout=0.3))  # weights and dropout masks from the default generator
        x = mg.randn(4, 5)
        dropped = mg.functional.dropout(x, 0.5)
        attended = mg.kernels.scaled_dot_product_attention(x, x, x, dropout_p=0.5)
        layer = mg.nn.Dropout(0.5)(x)
        idx = np.random.default_rng(0).integers(0, 13, (2, 8))
        loss = model(idx, idx)[1].item()
        tokens = model.generate(idx[:, :2], 5)
        return dropped.data, attended.data, layer.data, loss, tokens

    first, second = program(), program()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_submodules_work_without_extra_imports():
    code = "import minigrad as mg; print(mg.nn.Linear(2, 3).weight.shape, mg.optim.AdamW.__name__, mg.functional.gelu.__name__)"  # noqa: E501
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["(3,", "2)", "AdamW", "gelu"]


@pytest.mark.parametrize("fused", [True, False])
def test_layer_norm_over_two_axes_normalises_both(fused):
    """nn.LayerNorm((3, 4)) normalises each (3, 4) block, as torch.nn.LayerNorm((3, 4)) does."""
    x = mg.Tensor(np.random.default_rng(0).standard_normal((2, 3, 4)) * 5 + 2, dtype=np.float64)
    norm = mg.nn.LayerNorm((3, 4), fused=fused).to(np.float64)
    y = norm(x).data
    blocks = x.data - x.data.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, blocks / np.sqrt(blocks.var(axis=(1, 2), keepdims=True) + 1e-5), rtol=1e-12)
    single = norm(mg.Tensor(x.data[0], dtype=np.float64)).data  # (3, 4): one block, not three rows
    np.testing.assert_allclose(single, y[0], rtol=1e-12)
    assert norm(mg.Tensor(np.ones((5, 2, 3, 4)))).shape == (5, 2, 3, 4)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        norm(mg.Tensor(np.ones((2, 4, 3))))
