"""torch.nn's calls, made here: the layers' positional arguments, the sequence-first and
unbatched layouts, the stacks built from one layer, the causal hints, and the masks torch refuses.

Each test makes the same call on torch.nn's module and on this package's namesake, with the
same weights, in float64: they give the same numbers, or both refuse.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor
from minigrad.nn import LayerNorm
from transformer import Transformer
from transformer.attention import MultiHeadAttention
from transformer.blocks import TransformerDecoderLayer, TransformerEncoderLayer
from transformer.encoder_decoder import TransformerDecoder, TransformerEncoder

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")

B, S, T, E, H, FF = 2, 5, 4, 8, 2, 16
# float64 rounds each op at 1.1e-16; a value here passes ~20 sums of at most E + FF = 24 terms
# from input to output (layer norms divide by standard deviations near 1): 1.1e-16 · 24 · 20 ≈ 5e-14
TOLERANCE = 1e-12


def assert_close(ours, theirs, what: str = "output") -> None:
    ours = ours.data if isinstance(ours, Tensor) else ours
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, torch's {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=TOLERANCE, atol=TOLERANCE, err_msg=what)


def twin(theirs, ours):
    """ours with theirs's weights, both float64 (torch's in place)."""
    theirs.double()
    ours.load_state_dict({name: t.detach().numpy() for name, t in theirs.state_dict().items()}, strict=True)
    return ours.to(np.float64)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------- positional arguments

TWINS = {
    MultiHeadAttention: torch.nn.MultiheadAttention,
    TransformerEncoderLayer: torch.nn.TransformerEncoderLayer,
    TransformerDecoderLayer: torch.nn.TransformerDecoderLayer,
    TransformerEncoder: torch.nn.TransformerEncoder,
    TransformerDecoder: torch.nn.TransformerDecoder,
    Transformer: torch.nn.Transformer,
}
# where a default differs, and why: the contract (DESIGN.md) fixes batch-first modules and a
# Transformer without dropout; activation "relu" is the name of torch's F.relu
OWN_DEFAULTS = {"batch_first": True, "activation": "relu", ("Transformer", "dropout"): 0.0}


def positional(cls) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
    return [p for p in parameters if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]


@pytest.mark.parametrize("ours", list(TWINS), ids=lambda cls: cls.__name__)
def test_positional_parameters_are_torchs_in_torchs_order(ours):
    """A positional torch call binds the same parameters here, or has too many arguments (a TypeError)."""
    theirs = positional(TWINS[ours])
    mine = positional(ours)
    assert [p.name for p in mine] == [p.name for p in theirs[: len(mine)]]
    for p, q in zip(mine, theirs):
        expected = OWN_DEFAULTS.get((ours.__name__, p.name), OWN_DEFAULTS.get(p.name, q.default))
        assert p.default == expected, f"{ours.__name__}({p.name}=...): default {p.default!r}, expected {expected!r}"


@pytest.mark.parametrize("layer", ["encoder", "decoder"])
def test_a_positional_torch_call_builds_torchs_layer(layer):
    """torch's 7th argument is batch_first: a call (E, H, FF, 0.0, "relu", 1e-5, True) is a post-norm,
    batch-first layer in both, not a pre-norm one."""
    arguments = (E, H, FF, 0.0, "relu", 1e-5, True)
    torch.manual_seed(0)
    if layer == "encoder":
        theirs = torch.nn.TransformerEncoderLayer(*arguments)
        ours = twin(theirs, TransformerEncoderLayer(*arguments))
        x = randn(B, S, E)
        assert_close(ours(Tensor(x, dtype=np.float64)), theirs(torch.from_numpy(x)))
    else:
        theirs = torch.nn.TransformerDecoderLayer(*arguments)
        ours = twin(theirs, TransformerDecoderLayer(*arguments))
        x, memory = randn(B, T, E), randn(B, S, E, seed=1)
        ours_out = ours(Tensor(x, dtype=np.float64), Tensor(memory, dtype=np.float64))
        assert_close(ours_out, theirs(torch.from_numpy(x), torch.from_numpy(memory)))
    assert ours.norm_first is False and ours.self_attn.batch_first is True


def test_multi_head_attention_extras_are_keyword_only():
    """torch's 5th to 9th arguments (add_bias_kv, add_zero_attn, kdim, vdim, batch_first) can never
    land on rotary, alibi or fused; the values computed here are taken, the others refused."""
    extras = {"rotary", "alibi", "fused"}
    kinds = {p.name: p.kind for p in inspect.signature(MultiHeadAttention.__init__).parameters.values()}
    assert all(kinds[name] == inspect.Parameter.KEYWORD_ONLY for name in extras)
    MultiHeadAttention(E, H, 0.0, True, False, False, E, E, True)  # torch's values that mean what is computed here
    for call in (dict(add_bias_kv=True), dict(add_zero_attn=True), dict(kdim=6), dict(vdim=3)):
        name = next(iter(call))
        with pytest.raises(ValueError, match=name):
            MultiHeadAttention(E, H, **call)


# ---------------------------------------------------------------- layouts


@pytest.mark.parametrize("need_weights", [True, False])
def test_multi_head_attention_sequence_first_and_unbatched_as_torch(need_weights):
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(E, H)  # torch's default: batch_first=False, (T, B, E)
    ours = twin(theirs, MultiHeadAttention(E, H, batch_first=False))
    query, memory = randn(T, B, E), randn(S, B, E, seed=1)
    padding = np.zeros((B, S))
    padding[1, 3:] = -np.inf  # float, as the attention mask: torch deprecates mixing the kinds
    per_head = randn(B * H, T, S, seed=2)
    for q, kv, masks in [
        (query, memory, dict(key_padding_mask=padding, attn_mask=per_head)),
        (query[:, 0], memory[:, 0], dict(key_padding_mask=padding[1], attn_mask=per_head[:H])),  # unbatched
        (query[:, 0], memory[:, 0], dict(attn_mask=per_head[0])),
    ]:
        call = dict(need_weights=need_weights, average_attn_weights=False)
        q_ours, kv_ours = Tensor(q, dtype=np.float64, requires_grad=True), Tensor(kv, dtype=np.float64)
        out, weights = ours(q_ours, kv_ours, kv_ours, **masks, **call)
        q_theirs = torch.tensor(q, requires_grad=True)
        torch_masks = {name: torch.from_numpy(m) for name, m in masks.items()}
        their_out, their_weights = theirs(q_theirs, torch.from_numpy(kv), torch.from_numpy(kv), **torch_masks, **call)
        assert_close(out, their_out)
        if need_weights:
            assert_close(weights, their_weights, "weights")
        else:
            assert weights is None and their_weights is None
        out.backward(np.ones(out.shape))
        their_out.backward(torch.ones(their_out.shape, dtype=torch.float64))
        assert_close(q_ours.grad, q_theirs.grad, "d/d query")


@pytest.mark.parametrize("batched", [True, False])
def test_transformer_sequence_first_and_unbatched_as_torch(batched):
    torch.manual_seed(2)
    theirs = torch.nn.Transformer(E, H, 2, 1, FF, 0.0)  # batch_first=False, as torch's default
    ours = twin(theirs, Transformer(E, H, 2, 1, FF, 0.0, batch_first=False))
    src, tgt = randn(S, B, E), randn(T, B, E, seed=1)
    padding = np.zeros((B, S), dtype=bool)
    padding[0, 4:] = True
    masks = dict(tgt_mask=Transformer.generate_square_subsequent_mask(T).astype(np.float64))
    if batched:
        masks |= dict(src_key_padding_mask=padding, memory_key_padding_mask=padding)
    else:
        src, tgt = src[:, 1], tgt[:, 1]
    src_ours = Tensor(src, dtype=np.float64, requires_grad=True)
    out = ours(src_ours, Tensor(tgt, dtype=np.float64), **masks)
    src_theirs = torch.tensor(src, requires_grad=True)
    their_out = theirs(src_theirs, torch.from_numpy(tgt), **{n: torch.from_numpy(m) for n, m in masks.items()})
    assert_close(out, their_out)
    grad = randn(*out.shape, seed=3)
    out.backward(grad)
    their_out.backward(torch.from_numpy(grad))
    assert_close(src_ours.grad, src_theirs.grad, "d/d src")


# ---------------------------------------------------------------- stacks and hints


def test_stacks_take_torchs_one_layer_and_a_count():
    torch.manual_seed(3)
    their_layer = torch.nn.TransformerDecoderLayer(E, H, FF, 0.0, batch_first=True)
    theirs = torch.nn.TransformerDecoder(their_layer, 3, torch.nn.LayerNorm(E))
    ours = TransformerDecoder(TransformerDecoderLayer(E, H, FF, 0.0), 3, LayerNorm(E))
    assert list(ours.state_dict()) == list(theirs.state_dict())  # layers.{i}.*, norm.*
    assert ours.num_layers == 3
    ours = twin(theirs, ours)
    tgt, memory = randn(B, T, E), randn(B, S, E, seed=1)
    causal = Transformer.generate_square_subsequent_mask(T).astype(np.float64)
    out = ours(Tensor(tgt, dtype=np.float64), Tensor(memory, dtype=np.float64), tgt_mask=causal)
    assert_close(out, theirs(torch.from_numpy(tgt), torch.from_numpy(memory), tgt_mask=torch.from_numpy(causal)))

    layer = TransformerEncoderLayer(E, H, FF, 0.0)
    encoder = TransformerEncoder(layer, 2, None, False)  # torch's norm, enable_nested_tensor: same values
    their_encoder = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, H, FF, 0.0), 2, None, False)
    assert list(encoder.state_dict()) == list(their_encoder.state_dict())
    copies = [encoder.layers[0].linear1.weight, encoder.layers[1].linear1.weight, layer.linear1.weight]
    assert len({id(w) for w in copies}) == 3  # deep copies: each layer trains its own weights
    with pytest.raises(TypeError, match="one layer and the number of layers"):
        TransformerEncoder([TransformerEncoderLayer(E, H) for _ in range(2)], 2)


def test_custom_encoder_and_decoder_take_torchs_place():
    encoder = TransformerEncoder(TransformerEncoderLayer(E, H, FF), 1)
    model = Transformer(E, H, 1, 1, FF, 0.0, "relu", encoder)
    assert model.encoder is encoder
    with pytest.raises(TypeError, match="custom_encoder"):
        Transformer(E, H, 1, 1, FF, 0.0, "relu", True)  # norm_first given where torch has custom_encoder


@pytest.mark.parametrize("need_weights", [True, False])
def test_is_causal_is_torchs_hint_beside_the_mask(need_weights):
    """torch's MultiheadAttention needs the mask beside the hint; where nothing else needs the mask
    (no weights, no padding) the hint's causal mask replaces it, else the mask is used."""
    torch.manual_seed(4)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True)
    ours = twin(theirs, MultiHeadAttention(E, H))
    x = randn(B, T, E)
    ours_x, theirs_x = Tensor(x, dtype=np.float64), torch.from_numpy(x)
    with pytest.raises(ValueError, match="needs it"):
        ours(ours_x, ours_x, ours_x, is_causal=True)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        theirs(theirs_x, theirs_x, theirs_x, is_causal=True)
    for mask in (np.triu(np.ones((T, T), dtype=bool), 1), np.eye(T, dtype=bool)):  # the causal mask, and another
        call = dict(attn_mask=mask, is_causal=True, need_weights=need_weights)
        out, _ = ours(ours_x, ours_x, ours_x, **call)
        their_out, _ = theirs(theirs_x, theirs_x, theirs_x, **{**call, "attn_mask": torch.from_numpy(mask)})
        assert_close(out, their_out)


def test_transformer_takes_torchs_causal_hints():
    torch.manual_seed(5)
    theirs = torch.nn.Transformer(E, H, 1, 2, FF, 0.0, batch_first=True)
    ours = twin(theirs, Transformer(E, H, 1, 2, FF))
    src, tgt = randn(B, T, E), randn(B, T, E, seed=1)
    causal = Transformer.generate_square_subsequent_mask(T).astype(np.float64)
    masks = dict(src_mask=causal, tgt_mask=causal, memory_mask=causal)
    hints = dict(src_is_causal=True, tgt_is_causal=True, memory_is_causal=True)
    out = ours(Tensor(src, dtype=np.float64), Tensor(tgt, dtype=np.float64), **masks, **hints)
    torch_masks = {name: torch.from_numpy(m) for name, m in masks.items()}
    assert_close(out, theirs(torch.from_numpy(src), torch.from_numpy(tgt), **torch_masks, **hints))
    without = ours(Tensor(src, dtype=np.float64), Tensor(tgt, dtype=np.float64), **masks)
    assert_close(out, without.data, "with and without the hints")


# ---------------------------------------------------------------- what torch refuses


MASK_NAMES = [
    "src_mask",
    "tgt_mask",
    "memory_mask",
    "src_key_padding_mask",
    "tgt_key_padding_mask",
    "memory_key_padding_mask",
]


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
@pytest.mark.parametrize("name", MASK_NAMES)
def test_integer_masks_are_refused_as_torch_refuses_them(name, dtype):
    """An integer 1 would be added to the scores (a boost) where a user means "masked": torch
    refuses such masks, and so does every module here."""
    torch.manual_seed(6)
    theirs = torch.nn.Transformer(E, H, 1, 1, FF, 0.0, batch_first=True)
    ours = Transformer(E, H, 1, 1, FF)
    shapes = {"src_mask": (S, S), "tgt_mask": (T, T), "memory_mask": (T, S), "tgt_key_padding_mask": (B, T)}
    mask = np.zeros(shapes.get(name, (B, S)), dtype=dtype)
    mask[..., -1] = 1
    src, tgt = randn(B, S, E).astype(np.float32), randn(B, T, E, seed=1).astype(np.float32)
    with pytest.raises((AssertionError, RuntimeError)):  # tgt_mask fails in torch's causal-mask detection
        theirs(torch.from_numpy(src), torch.from_numpy(tgt), **{name: torch.from_numpy(mask)})
    with pytest.raises(TypeError, match=rf"{name} must be boolean .* or floating .* got {np.dtype(dtype)}"):
        ours(Tensor(src), Tensor(tgt), **{name: mask})


@pytest.mark.parametrize("name", ["attn_mask", "key_padding_mask"])
def test_multi_head_attention_refuses_integer_masks(name):
    mha, x = MultiHeadAttention(E, H), mg.randn(B, T, E)
    mask = np.zeros((T, T) if name == "attn_mask" else (B, T), dtype=np.int64)
    with pytest.raises(TypeError, match=f"{name} must be boolean"):
        mha(x, x, x, **{name: mask})


def test_multi_head_attention_refuses_what_torch_refuses():
    torch.manual_seed(7)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True)
    ours = twin(theirs, MultiHeadAttention(E, H))
    query, memory = randn(B, T, E), randn(B, S, E, seed=1)
    cases = {
        "a key and value batch of 1 beside a query batch of 2": (memory[:1], None),
        "a 4-D attn_mask": (memory, np.zeros((B, H, T, S))),
    }
    for what, (kv, attn_mask) in cases.items():
        with pytest.raises((RuntimeError, AssertionError)):
            mask = None if attn_mask is None else torch.from_numpy(attn_mask)
            theirs(torch.from_numpy(query), torch.from_numpy(kv), torch.from_numpy(kv), attn_mask=mask)
        with pytest.raises(ValueError, match="batch size" if attn_mask is None else "attn_mask must be"):
            ours_kv = Tensor(kv, dtype=np.float64)
            ours(Tensor(query, dtype=np.float64), ours_kv, ours_kv, attn_mask=attn_mask)
            pytest.fail(f"{what} was taken")


# ---------------------------------------------------------------- dropout


def test_weights_returned_in_training_are_the_dropped_ones_applied():
    """torch returns the attention weights after dropout, the ones that multiply the values: its
    output is out_proj(weights @ v). Its generator cannot be shared, so the property is checked on both."""
    p = 0.5
    torch.manual_seed(8)
    theirs = torch.nn.MultiheadAttention(E, H, dropout=p, batch_first=True)
    ours = twin(theirs, MultiHeadAttention(E, H, dropout=p))
    x = randn(B, T, E)

    def applied(out, weights, in_proj_weight, in_proj_bias, out_weight, out_bias):
        """out_proj(weights @ v) from the returned per-head weights (B, H, T, T): the output, if they were applied."""
        v = x @ in_proj_weight[2 * E :].T + in_proj_bias[2 * E :]  # (B, T, E)
        v = v.reshape(B, T, H, E // H).transpose(0, 2, 1, 3)  # (B, H, T, D)
        heads = (weights @ v).transpose(0, 2, 1, 3).reshape(B, T, E)  # (B, T, E)
        np.testing.assert_allclose(heads @ out_weight.T + out_bias, out, rtol=TOLERANCE, atol=TOLERANCE)

    mg.manual_seed(0)
    xs = Tensor(x, dtype=np.float64)
    out, weights = ours(xs, xs, xs, average_attn_weights=False)
    parameters = {name: t.data for name, t in ours.named_parameters()}
    applied(out.data, weights.data, *parameters.values())
    xt = torch.from_numpy(x)
    their_out, their_weights = theirs(xt, xt, xt, average_attn_weights=False)
    applied(their_out.detach().numpy(), their_weights.detach().numpy(), *parameters.values())

    _, undropped = ours.eval()(xs, xs, xs, average_attn_weights=False)
    kept = weights.data != 0
    assert 0 < kept.mean() < 1  # some weights dropped, some kept
    np.testing.assert_allclose(weights.data[kept], undropped.data[kept] / (1 - p), rtol=TOLERANCE)
