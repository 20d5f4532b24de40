"""Vision Transformer: patches are the image's pixels rearranged, the patch embedding is a
strided convolution, position embeddings are what breaks the encoder's indifference to order,
and every gradient is right."""

from __future__ import annotations

import numpy as np
import pytest
from test_gpt import module_gradcheck  # gradcheck over a module's parameters, bound back in place

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor
from transformer.blocks import TransformerEncoderLayer
from transformer.vit import VisionTransformer, ViTConfig, patchify

TINY = dict(image_size=4, patch_size=2, n_embd=8, n_layer=1, n_head=2, mlp_ratio=2)


def test_patchify_reads_patches_in_order():
    images = np.arange(2 * 3 * 4 * 6, dtype=float).reshape(2, 3, 4, 6)  # (B, C, H, W)
    patches = patchify(images, 2).data  # (2, 6, 12)
    assert patches.shape == (2, 6, 3 * 2 * 2)
    for b in range(2):
        for n in range(6):
            row, col = divmod(n, 3)  # reading order: left to right, then down
            expected = images[b, :, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2].reshape(-1)  # (C·P·P,)
            np.testing.assert_array_equal(patches[b, n], expected)
    with pytest.raises(ValueError, match="not divisible by the patch size 4"):
        patchify(images, 4)


def test_patch_embedding_is_a_strided_convolution():
    """Conv2d(C, E, kernel P, stride P), as torch's and timm's ViT write it, = Linear(C·P·P, E) on the patches."""
    rng = np.random.default_rng(0)
    mg.manual_seed(0)
    model = VisionTransformer(ViTConfig(image_size=6, patch_size=3, in_channels=2, n_embd=5, n_layer=1, n_head=1))
    model.to(np.float64)
    images = Tensor(rng.standard_normal((2, 2, 6, 6)), dtype=np.float64)
    weight, bias = model.patch_embed.weight, model.patch_embed.bias  # (E, C, P, P), (E,)
    forms = {
        "conv": lambda: model.patch_embed(images).flatten(2).swapaxes(1, 2),  # (2, 4, 5): a token per output pixel
        "linear": lambda: F.linear(patchify(images, 3), weight.reshape(5, -1), bias),  # (2, 4, 5) reshape-and-Linear
    }
    g = rng.standard_normal((2, 4, 5))
    results = {}
    for name, form in forms.items():
        model.zero_grad()
        tokens = form()
        tokens.backward(g)
        results[name] = [tokens.data, weight.grad, bias.grad]
    for conv, linear in zip(results["conv"], results["linear"]):
        np.testing.assert_allclose(conv, linear, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.embed(images).data[:, 1:] - model.pos_embed.weight.data[1:], results["conv"][0])


def test_names_shapes_and_loss():
    mg.manual_seed(1)
    model = VisionTransformer(ViTConfig(**TINY))
    names = dict(model.named_parameters())
    assert names["cls_token"].shape == (1, 1, 8)
    assert names["pos_embed.weight"].shape == (1 + 4, 8)  # one position per patch and one for the class token
    assert names["patch_embed.weight"].shape == (8, 1, 2, 2)  # (E, C, P, P), timm's patch_embed.proj layout
    assert "blocks.0.self_attn.in_proj_weight" in names  # the project's torch-named encoder layer
    block = model.blocks[0]
    assert isinstance(block, TransformerEncoderLayer) and block.norm_first
    logits, loss = model(np.zeros((3, 1, 4, 4)), np.array([0, 1, 2]))
    assert logits.shape == (3, 10)
    z = logits.data.astype(np.float64)
    log_probs = z - z.max(-1, keepdims=True) - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss.item(), -log_probs[np.arange(3), [0, 1, 2]].mean(), rtol=1e-5)
    assert model(np.zeros((3, 1, 4, 4)))[1] is None


def test_position_embeddings_are_what_makes_patch_order_matter():
    """Self-attention is blind to order: with the position embeddings zeroed, shuffling the
    patches leaves the class token (and so the logits) unchanged; with them, it does not."""
    mg.manual_seed(2)
    model = VisionTransformer(ViTConfig(**TINY))
    images = np.random.default_rng(2).standard_normal((2, 1, 4, 4))
    # swap the top-left and bottom-right 2×2 patches
    shuffled = images.copy()
    shuffled[..., :2, :2], shuffled[..., 2:, 2:] = images[..., 2:, 2:], images[..., :2, :2]
    with mg.no_grad():
        assert not np.allclose(model(images)[0].data, model(shuffled)[0].data, atol=1e-4)
        model.pos_embed.weight.data[...] = 0.0
        np.testing.assert_allclose(model(images)[0].data, model(shuffled)[0].data, rtol=1e-5, atol=1e-6)


def test_class_token_attention_maps():
    mg.manual_seed(3)
    model = VisionTransformer(ViTConfig(**{**TINY, "n_layer": 2}))
    images = np.random.default_rng(3).standard_normal((2, 1, 4, 4))
    maps = model.attention_maps(images)  # (B, n_layer, N)
    assert maps.shape == (2, 2, 4)
    # what is left out of each row is the class token's weight on itself: between 0 and 1
    assert np.all(maps >= 0) and np.all(maps.sum(-1) < 1) and np.all(maps.sum(-1) > 0)


def test_gradcheck_patchify_and_whole_model():
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((2, 1, 4, 4)), requires_grad=True)
    assert mg.gradcheck(lambda x: patchify(x, 2), x)
    mg.manual_seed(4)
    model = VisionTransformer(ViTConfig(**TINY))
    images, targets = rng.standard_normal((2, 1, 4, 4)), np.array([3, 8])
    assert module_gradcheck(model, lambda: model(images, targets)[1])
