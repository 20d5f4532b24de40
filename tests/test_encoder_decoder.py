"""Feed-forward, encoder and decoder layers, the stacks and `Transformer`, without PyTorch.

Every module is gradient-checked in float64 with respect to all its parameters and inputs;
the masks are checked by the gradients they must cut: output t never depends on a later
target, and no output depends on a padded position.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_attention import gradcheck_module, randn

import minigrad as mg
from minigrad import Tensor
from transformer import Transformer
from transformer.blocks import FeedForward, TransformerDecoderLayer, TransformerEncoderLayer
from transformer.positional import ALiBi, RotaryEmbedding

SMALL = dict(d_model=4, nhead=2, dim_feedforward=6, dropout=0.0)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_gradcheck_and_formula(activation):
    rng = np.random.default_rng(0)
    ffn = FeedForward(4, 6, activation=activation)
    x = randn(rng, 2, 3, 4)
    expected_hidden = x.data @ ffn.linear1.weight.data.T + ffn.linear1.bias.data  # (2, 3, 6)
    if activation == "relu":
        expected_hidden = np.maximum(expected_hidden, 0)
    else:
        expected_hidden = mg.functional.gelu(Tensor(expected_hidden, dtype=np.float64)).data
    expected = expected_hidden @ ffn.linear2.weight.data.T + ffn.linear2.bias.data
    np.testing.assert_allclose(ffn(x).data, expected, rtol=1e-5)
    assert gradcheck_module(ffn, ffn, x)


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="'swish'"):
        FeedForward(4, 6, activation="swish")


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_gradcheck(norm_first):
    rng = np.random.default_rng(1)
    layer = TransformerEncoderLayer(**SMALL, norm_first=norm_first)
    src = randn(rng, 2, 3, 4)
    padding = np.array([[False, False, True], [False, False, False]])
    assert gradcheck_module(layer, lambda src: layer(src, src_key_padding_mask=padding), src)


@pytest.mark.parametrize("position", ["rotary", "alibi"])
def test_encoder_layer_with_relative_positions_gradcheck(position):
    rng = np.random.default_rng(2)
    extra = {"rotary": RotaryEmbedding(2)} if position == "rotary" else {"alibi": ALiBi(2)}
    layer = TransformerEncoderLayer(**SMALL, norm_first=True, **extra)
    src = randn(rng, 1, 3, 4)
    causal = Transformer.generate_square_subsequent_mask(3)
    assert gradcheck_module(layer, lambda src: layer(src, src_mask=causal, is_causal=True), src)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_gradcheck(norm_first):
    rng = np.random.default_rng(3)
    layer = TransformerDecoderLayer(**SMALL, activation="gelu", norm_first=norm_first)
    tgt, memory = randn(rng, 2, 2, 4), randn(rng, 2, 3, 4)
    memory_padding = np.array([[False, True, True], [False, False, False]])
    causal = Transformer.generate_square_subsequent_mask(2)
    assert gradcheck_module(
        layer,
        lambda tgt, memory: layer(tgt, memory, tgt_mask=causal, memory_key_padding_mask=memory_padding),
        tgt,
        memory,
    )


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_gradcheck(norm_first):
    rng = np.random.default_rng(4)
    model = Transformer(4, 2, 1, 1, 6, norm_first=norm_first)
    src, tgt = randn(rng, 1, 3, 4), randn(rng, 1, 2, 4)
    causal = Transformer.generate_square_subsequent_mask(2)
    assert gradcheck_module(model, lambda src, tgt: model(src, tgt, tgt_mask=causal), src, tgt)


def test_norm_first_places_the_norm_inside_the_residual():
    """Pre-norm: x + Sublayer(LayerNorm(x)); post-norm: LayerNorm(x + Sublayer(x)). With the
    sublayers' output projections zeroed, pre-norm is the identity and post-norm two norms."""

    def norm(x):
        centered = x - x.mean(axis=-1, keepdims=True)
        return centered / np.sqrt((centered**2).mean(axis=-1, keepdims=True) + 1e-5)

    rng = np.random.default_rng(5)
    x = randn(rng, 2, 3, 4, requires_grad=False)
    for norm_first in (True, False):
        layer = TransformerEncoderLayer(**SMALL, norm_first=norm_first)
        for linear in (layer.self_attn.out_proj, layer.linear2):
            linear.weight.data[...] = 0.0
            linear.bias.data[...] = 0.0
        expected = x.data if norm_first else norm(norm(x.data))
        np.testing.assert_allclose(layer(x).data, expected, rtol=1e-10, atol=1e-12)


def test_state_dict_names_are_pytorchs():
    names = list(Transformer(4, 2, 1, 1, 6).state_dict())
    attention = ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    linear_and_norms = [f"{m}.{p}" for m in ("linear1", "linear2", "norm1", "norm2") for p in ("weight", "bias")]
    encoder = [f"encoder.layers.0.self_attn.{a}" for a in attention] + [
        f"encoder.layers.0.{n}" for n in linear_and_norms
    ]
    decoder = (
        [f"decoder.layers.0.self_attn.{a}" for a in attention]
        + [f"decoder.layers.0.multihead_attn.{a}" for a in attention]
        + [f"decoder.layers.0.{n}" for n in linear_and_norms + ["norm3.weight", "norm3.bias"]]
    )
    assert names == encoder + ["encoder.norm.weight", "encoder.norm.bias"] + decoder + [
        "decoder.norm.weight",
        "decoder.norm.bias",
    ]


def test_generate_square_subsequent_mask():
    mask = Transformer.generate_square_subsequent_mask(3)
    inf = np.inf
    np.testing.assert_array_equal(mask, [[0, -inf, -inf], [0, 0, -inf], [0, 0, 0]])
    assert mask.dtype == np.float32


def causal_and_padded_model():
    mg.manual_seed(6)
    return Transformer(8, 2, 2, 2, 16)


@pytest.mark.parametrize("mask", ["float", "bool", "float and is_causal"])
def test_output_t_never_depends_on_a_later_target(mask):
    rng = np.random.default_rng(7)
    model = causal_and_padded_model()
    T = 5
    src, tgt = randn(rng, 2, 4, 8, requires_grad=False), randn(rng, 2, T, 8)
    memory = model.encoder(src).detach()  # (2, 4, 8) outside the graph: each backward below reaches tgt only
    for t in range(T):
        tgt.grad = None
        causal = Transformer.generate_square_subsequent_mask(T)
        tgt_mask = np.isinf(causal) if mask == "bool" else causal
        out = model.decoder(tgt, memory, tgt_mask=tgt_mask, tgt_is_causal=mask == "float and is_causal")
        # a random projection: a plain sum of a layer norm's output is the constant sum of its bias
        (out[:, t] * Tensor(rng.standard_normal((2, 8)))).sum().backward()
        assert (tgt.grad[:, t + 1 :] == 0).all(), f"output {t} sees a later target"
        assert (np.abs(tgt.grad[:, : t + 1]).sum(axis=-1) > 0).all()


def test_no_output_depends_on_a_padded_position():
    rng = np.random.default_rng(8)
    model = causal_and_padded_model()
    src, tgt = randn(rng, 2, 5, 8), randn(rng, 2, 4, 8)
    src_padding = np.zeros((2, 5), dtype=bool)
    src_padding[0, 3:] = True
    tgt_padding = np.zeros((2, 4), dtype=bool)
    tgt_padding[1, 2:] = True
    out = model(
        src,
        tgt,
        tgt_mask=Transformer.generate_square_subsequent_mask(4),
        src_key_padding_mask=src_padding,
        tgt_key_padding_mask=tgt_padding,
        memory_key_padding_mask=src_padding,
    )
    # the loss reads only the real target positions
    (out * Tensor(~tgt_padding[..., None] * rng.standard_normal(out.shape))).sum().backward()
    assert (src.grad[src_padding] == 0).all() and (tgt.grad[tgt_padding] == 0).all()
    assert (np.abs(src.grad[~src_padding]).sum(axis=-1) > 0).all()
    assert (np.abs(tgt.grad[~tgt_padding]).sum(axis=-1) > 0).all()


def test_dropout_acts_in_training_only():
    rng = np.random.default_rng(9)
    mg.manual_seed(10)
    model = Transformer(8, 2, 1, 1, 16, dropout=0.5)
    without = Transformer(8, 2, 1, 1, 16)
    without.load_state_dict(model.state_dict())
    src, tgt = randn(rng, 2, 3, 8, requires_grad=False), randn(rng, 2, 4, 8, requires_grad=False)
    assert not np.allclose(model(src, tgt).data, model(src, tgt).data)  # a fresh mask each call
    np.testing.assert_array_equal(model.eval()(src, tgt).data, without(src, tgt).data)


def test_shape_errors_are_explained():
    model = Transformer(8, 2, 1, 1, 16)
    with pytest.raises(ValueError, match=r"d_model=8.*\(1, 3, 6\)"):
        model(mg.zeros(1, 3, 6), mg.zeros(1, 2, 6))
    with pytest.raises(ValueError, match=r"one batch size.*\(2, 3, 8\) and \(1, 2, 8\)"):
        model(mg.zeros(2, 3, 8), mg.zeros(1, 2, 8))
