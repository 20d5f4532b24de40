"""Co-attention: each stream's queries read the other stream's keys and values, the streams meet
nowhere else, padded words are ignored, and every gradient is right."""

from __future__ import annotations

import numpy as np
from test_gpt import module_gradcheck  # gradcheck over a module's parameters, bound back in place

import minigrad as mg
from minigrad import Tensor
from transformer.coattention import CoAttentionConfig, CoAttentionLayer, CoAttentionTransformer

TINY = dict(region_dim=4, max_regions=2, vocab_size=3, max_words=3, n_embd=4, n_head=2, n_layer=1, mlp_ratio=1)


def streams(rng, B=2, Nv=3, Nt=4, E=4):
    visual = Tensor(rng.standard_normal((B, Nv, E)), requires_grad=True)
    text = Tensor(rng.standard_normal((B, Nt, E)), requires_grad=True)
    return visual, text


def test_weights_go_from_each_stream_to_the_other():
    mg.manual_seed(0)
    layer = CoAttentionLayer(d_model=4, nhead=2, dim_feedforward=8)
    visual, text = streams(np.random.default_rng(0))
    new_visual, new_text, (image_to_text, text_to_image) = layer(visual, text, need_weights=True)
    assert new_visual.shape == (2, 3, 4) and new_text.shape == (2, 4, 4)
    assert image_to_text.shape == (2, 3, 4)  # each region's query over the 4 words
    assert text_to_image.shape == (2, 4, 3)  # each word's query over the 3 regions
    np.testing.assert_allclose(image_to_text.data.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(text_to_image.data.sum(-1), 1.0, rtol=1e-5)
    assert layer(visual, text)[2] is None


def test_text_learns_about_the_image_only_through_its_cross_attention():
    """d text_out / d visual is nonzero, and exactly zero once text_attn's output is cut off."""
    mg.manual_seed(1)
    layer = CoAttentionLayer(d_model=4, nhead=2, dim_feedforward=8)
    visual, text = streams(np.random.default_rng(1))
    _, new_text, _ = layer(visual, text)
    new_text.sum().backward()
    assert np.abs(visual.grad).max() > 1e-3
    layer.text_attn.out_proj.weight.data[...] = 0.0
    layer.text_attn.out_proj.bias.data[...] = 0.0
    visual.grad = None
    _, new_text, _ = layer(visual, text)
    new_text.sum().backward()
    assert np.all(visual.grad == 0)
    # and symmetrically the image stream reads the text through visual_attn
    new_visual, _, _ = layer(visual, text)
    text.grad = None
    new_visual.sum().backward()
    assert np.abs(text.grad).max() > 1e-3


def test_both_directions_read_the_streams_from_before_the_layer():
    """The two cross-attentions are computed from the same inputs, in parallel: swapping the
    streams' roles (and the matching weights) swaps the outputs."""
    mg.manual_seed(2)
    layer = CoAttentionLayer(d_model=4, nhead=2, dim_feedforward=8)
    swapped = CoAttentionLayer(d_model=4, nhead=2, dim_feedforward=8)
    state = layer.state_dict()
    swapped.load_state_dict(
        {
            name.replace("visual", "@").replace("text", "visual").replace("@", "text"): value
            for name, value in state.items()
        }
    )
    visual, text = streams(np.random.default_rng(2), Nv=3, Nt=3)
    a_visual, a_text, _ = layer(visual, text)
    b_visual, b_text, _ = swapped(text, visual)
    np.testing.assert_allclose(a_visual.data, b_text.data, rtol=1e-6)
    np.testing.assert_allclose(a_text.data, b_visual.data, rtol=1e-6)


def test_padded_words_get_no_attention_and_no_gradient():
    mg.manual_seed(3)
    layer = CoAttentionLayer(d_model=4, nhead=2, dim_feedforward=8)
    visual, text = streams(np.random.default_rng(3))
    padding = np.array([[False, False, True, True], [False, False, False, True]])  # (B, Nt)
    new_visual, _, (image_to_text, _) = layer(visual, text, text_padding_mask=padding, need_weights=True)
    assert np.all(image_to_text.data[np.broadcast_to(padding[:, None, :], image_to_text.shape)] == 0)
    new_visual.sum().backward()
    assert np.all(text.grad[padding] == 0)  # the image stream never read a padded word


def test_gradcheck_layer_with_padding_and_whole_model():
    mg.manual_seed(4)
    rng = np.random.default_rng(4)
    layer = CoAttentionLayer(d_model=4, nhead=2, dim_feedforward=4)
    visual, text = streams(rng, B=1, Nv=2, Nt=3)
    padding = np.array([[False, False, True]])

    def both(visual, text):
        new_visual, new_text, _ = layer(visual, text, text_padding_mask=padding)
        return mg.concatenate([new_visual, new_text], axis=1)  # (1, 5, 4)

    assert module_gradcheck(layer, both, visual, text)
    model = CoAttentionTransformer(CoAttentionConfig(**{**TINY, "n_embd": 2, "n_head": 1}))
    regions, words, targets = rng.standard_normal((2, 2, 4)), np.array([[0, 2, 1], [1, 1, 0]]), np.array([1, 0])
    assert module_gradcheck(model, lambda: model(regions, words, targets)[1])


def test_model_shapes_and_attention_maps():
    mg.manual_seed(5)
    config = CoAttentionConfig(**{**TINY, "n_layer": 2})
    model = CoAttentionTransformer(config)
    regions, words = np.zeros((3, 2, 4)), np.array([[0, 1, 2]] * 3)
    logits, loss = model(regions, words, np.array([0, 1, 1]))
    assert logits.shape == (3, 2) and loss.shape == ()
    maps = model.cross_attention_maps(regions, words)
    assert len(maps) == 2
    image_to_text, text_to_image = maps[0]
    assert image_to_text.shape == (3, 1 + 2, 1 + 3)  # <IMG> + regions over [CLS] + words
    assert text_to_image.shape == (3, 1 + 3, 1 + 2)
    names = dict(model.named_parameters())
    assert "co_layers.1.visual_attn.in_proj_weight" in names and "text_layers.0.self_attn.in_proj_weight" in names
    assert names["word_embed.weight"].shape == (config.vocab_size + 1, 4)  # the extra row is [CLS]
