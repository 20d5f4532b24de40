"""Parity with PyTorch: our state dicts load into torch.nn.Transformer and torch.nn.MultiheadAttention
with strict=True (and theirs into ours), and outputs and every gradient agree at float32."""

from __future__ import annotations

import numpy as np
import pytest

from minigrad import Tensor
from transformer import Transformer
from transformer.attention import MultiHeadAttention

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4  # float32: both sides round differently at every op, ~1e-6 per layer in practice
B, S, T, E, H, FF = 2, 5, 4, 16, 4, 32


def assert_close(ours: np.ndarray, theirs, what: str) -> None:
    theirs = theirs.detach().numpy()
    error = np.abs(ours - theirs).max()
    assert error < TOLERANCE, f"{what}: max abs error {error:.3g}"


def torch_state(state: dict) -> dict:
    return {name: torch.tensor(array) for name, array in state.items()}


def masks(kind: str) -> dict:
    """A causal target mask and key padding masks for source and target, boolean or float."""
    src_padding = np.zeros((B, S), dtype=bool)
    src_padding[0, 3:] = True
    tgt_padding = np.zeros((B, T), dtype=bool)
    tgt_padding[1, 3:] = True
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)
    boolean = {
        "tgt_mask": causal,
        "src_key_padding_mask": src_padding,
        "tgt_key_padding_mask": tgt_padding,
        "memory_key_padding_mask": src_padding,
    }
    if kind == "bool":
        return boolean
    return {name: np.where(mask, -np.inf, 0.0).astype(np.float32) for name, mask in boolean.items()}


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("direction", ["ours-to-torch", "torch-to-ours"])
@pytest.mark.parametrize("mask_kind", ["bool", "float"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(norm_first, activation, mask_kind, direction):
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(
        E, H, 2, 2, FF, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=True
    )
    ours = Transformer(E, H, 2, 2, FF, activation=activation, norm_first=norm_first)
    if direction == "ours-to-torch":
        theirs.load_state_dict(torch_state(ours.state_dict()), strict=True)
    else:
        ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())

    rng = np.random.default_rng(0)
    src = rng.standard_normal((B, S, E)).astype(np.float32)
    tgt = rng.standard_normal((B, T, E)).astype(np.float32)
    out_grad = rng.standard_normal((B, T, E)).astype(np.float32)
    mask_arrays = masks(mask_kind)

    our_src, our_tgt = Tensor(src, requires_grad=True), Tensor(tgt, requires_grad=True)
    our_out = ours(our_src, our_tgt, **mask_arrays)
    our_out.backward(out_grad)

    their_src = torch.tensor(src, requires_grad=True)
    their_tgt = torch.tensor(tgt, requires_grad=True)
    their_out = theirs(their_src, their_tgt, **{name: torch.tensor(m) for name, m in mask_arrays.items()})
    their_out.backward(torch.tensor(out_grad))

    assert_close(our_out.data, their_out, "output")
    assert_close(our_src.grad, their_src.grad, "d/d src")
    assert_close(our_tgt.grad, their_tgt.grad, "d/d tgt")
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, their_params[name].grad, f"d/d {name}")


@pytest.mark.parametrize("average_attn_weights", [True, False])
@pytest.mark.parametrize("attention", ["self", "cross"])
def test_multi_head_attention_matches_torch(attention, average_attn_weights):
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True)
    ours = MultiHeadAttention(E, H)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())

    rng = np.random.default_rng(1)
    query = rng.standard_normal((B, T, E)).astype(np.float32)
    memory = query if attention == "self" else rng.standard_normal((B, S, E)).astype(np.float32)
    k_len = memory.shape[1]
    key_padding = np.zeros((B, k_len), dtype=bool)
    key_padding[1, 2:] = True
    attn_mask = rng.random((T, k_len)) < 0.3
    attn_mask[:, 0] = False  # no query loses every key
    out_grad = rng.standard_normal((B, T, E)).astype(np.float32)

    our_inputs = [Tensor(query, requires_grad=True)]
    our_inputs.append(our_inputs[0] if attention == "self" else Tensor(memory, requires_grad=True))
    our_out, our_weights = ours(
        our_inputs[0],
        our_inputs[1],
        our_inputs[1],
        key_padding_mask=key_padding,
        attn_mask=attn_mask,
        average_attn_weights=average_attn_weights,
    )
    our_out.backward(out_grad)

    their_inputs = [torch.tensor(query, requires_grad=True)]
    their_inputs.append(their_inputs[0] if attention == "self" else torch.tensor(memory, requires_grad=True))
    their_out, their_weights = theirs(
        their_inputs[0],
        their_inputs[1],
        their_inputs[1],
        key_padding_mask=torch.tensor(key_padding),
        attn_mask=torch.tensor(attn_mask),
        average_attn_weights=average_attn_weights,
    )
    their_out.backward(torch.tensor(out_grad))

    assert our_weights.shape == tuple(their_weights.shape)
    assert_close(our_out.data, their_out, "output")
    assert_close(our_weights.data, their_weights, "attention weights")
    for i, (mine, yours) in enumerate(zip(our_inputs, their_inputs)):
        assert_close(mine.grad, yours.grad, f"d/d input {i}")
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, their_params[name].grad, f"d/d {name}")


def test_per_sequence_and_head_masks_match_torch():
    """A (B·H, Tq, Tk) float mask, one per sequence and head, as PyTorch lays it out."""
    torch.manual_seed(2)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True)
    ours = MultiHeadAttention(E, H)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, E)).astype(np.float32)
    attn_mask = rng.standard_normal((B * H, T, T)).astype(np.float32)
    our_out, our_weights = ours(Tensor(x), Tensor(x), Tensor(x), attn_mask=attn_mask, average_attn_weights=False)
    xt = torch.tensor(x)
    their_out, their_weights = theirs(xt, xt, xt, attn_mask=torch.tensor(attn_mask), average_attn_weights=False)
    assert_close(our_out.data, their_out, "output")
    assert_close(our_weights.data, their_weights, "attention weights")


def masks_that_leave_queries_no_key(kind: str) -> dict:
    """Query 1 may see no key (attn_mask), nor may any query of sequence 1 (every key is padding)."""
    attn_mask = np.zeros((T, T), dtype=bool)  # torch.nn's convention: True where attention is NOT allowed
    attn_mask[1] = True
    key_padding = np.zeros((B, T), dtype=bool)
    key_padding[1] = True
    if kind == "float":
        attn_mask, key_padding = (np.where(m, -np.inf, 0.0).astype(np.float32) for m in (attn_mask, key_padding))
    return {"attn_mask": attn_mask, "key_padding_mask": key_padding}


@pytest.mark.parametrize("mask_kind", ["bool", "float"])
def test_multi_head_attention_gives_a_query_with_no_key_zeros_as_torchs_sdpa(mask_kind):
    """torch.nn.MultiheadAttention goes through scaled_dot_product_attention with need_weights=False,
    and its safe softmax gives such a query's heads 0 (the output is out_proj's bias) and no gradient.
    With need_weights=True (and in its no-grad inference fast path) torch makes those rows NaN; ours
    stay what they are without the weights, and their weights are 0 (docs/transformer.md)."""
    torch.manual_seed(3)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True)
    with torch.no_grad():
        theirs.out_proj.bias.normal_()  # what a query with no key outputs
    ours = MultiHeadAttention(E, H)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, T, E)).astype(np.float32)
    out_grad = rng.standard_normal((B, T, E)).astype(np.float32)
    masks = masks_that_leave_queries_no_key(mask_kind)
    nobody = np.zeros((B, T), dtype=bool)  # the queries that see no key
    nobody[:, 1] = nobody[1] = True

    outputs = {}
    for need_weights in (False, True):
        ours.zero_grad()
        mine = Tensor(x, requires_grad=True)
        out, weights = ours(mine, mine, mine, need_weights=need_weights, average_attn_weights=False, **masks)
        out.backward(out_grad)
        outputs[need_weights] = out.data, mine.grad, weights
        assert np.isfinite(out.data).all() and np.isfinite(mine.grad).all()
    np.testing.assert_array_equal(outputs[True][0], outputs[False][0])
    np.testing.assert_array_equal(outputs[True][1], outputs[False][1])
    our_out, our_grad, _ = outputs[False]
    np.testing.assert_array_equal(our_out[nobody], np.broadcast_to(ours.out_proj.bias.data, (nobody.sum(), E)))

    yours = torch.tensor(x, requires_grad=True)
    torch_masks = {name: torch.tensor(m) for name, m in masks.items()}
    their_out, _ = theirs(yours, yours, yours, need_weights=False, **torch_masks)
    their_out.backward(torch.tensor(out_grad))
    assert_close(our_out, their_out, "output")
    assert_close(our_grad, yours.grad, "d/d input")
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, their_params[name].grad, f"d/d {name}")

    with torch.no_grad():
        their_out, their_weights = theirs(yours, yours, yours, average_attn_weights=False, **torch_masks)
    our_weights = outputs[True][2].data  # (B, H, Tq, Tk)
    assert (our_weights.transpose(0, 2, 1, 3)[nobody] == 0).all()
    seen = ~nobody
    assert_close(our_out[seen], their_out[torch.from_numpy(seen)], "output where a key is seen")
    assert_close(
        our_weights.transpose(0, 2, 1, 3)[seen], their_weights.transpose(1, 2)[torch.from_numpy(seen)], "weights"
    )
