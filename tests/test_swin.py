"""Swin window attention: windows confine attention, shifted windows cross their borders and
respect the masks, cost grows linearly with the image, and every gradient is right.

The locality tests read the receptive field off the gradient: d out[i, j] / d x is exactly zero
(not merely small) at every token that cannot influence token (i, j).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gpt import module_gradcheck  # gradcheck over a module's parameters, bound back in place

import minigrad as mg
from minigrad import Tensor, kernels
from transformer.swin import (
    PatchMerging,
    SwinBlock,
    SwinConfig,
    SwinTransformer,
    WindowAttention,
    cyclic_shift,
    relative_position_index,
    shifted_window_mask,
    window_merge,
    window_partition,
)


def receptive_field(block, H: int, W: int, C: int, i: int, j: int) -> np.ndarray:
    """(H, W) boolean: which input tokens the output token (i, j) of `block` depends on."""
    x = Tensor(np.random.default_rng(0).standard_normal((1, H, W, C)), requires_grad=True)
    out = block(x)  # (1, H, W, C)
    out[0, i, j].sum().backward()
    return (x.grad[0] != 0).any(axis=-1)  # (H, W)


def test_partition_and_merge_are_inverse_and_group_windows():
    x = np.arange(2 * 4 * 6 * 1).reshape(2, 4, 6, 1).astype(float)
    windows = window_partition(Tensor(x), 2)  # (2, 6, 4, 1)
    assert windows.shape == (2, 6, 4, 1)
    np.testing.assert_array_equal(windows.data[0, 1, :, 0], [2, 3, 8, 9])  # the second window of row 0
    np.testing.assert_array_equal(window_merge(windows, 2, 4, 6).data, x)


def test_cyclic_shift_matches_numpy_roll_and_undoes():
    x = np.arange(5 * 7, dtype=float).reshape(1, 5, 7, 1)
    np.testing.assert_array_equal(cyclic_shift(Tensor(x), 2).data, np.roll(x, (-2, -2), axis=(1, 2)))
    np.testing.assert_array_equal(cyclic_shift(cyclic_shift(Tensor(x), 2), -2).data, x)


def test_relative_position_index_covers_the_table_by_offset():
    M = 3
    index = relative_position_index(M)  # (9, 9)
    assert index.shape == (M * M, M * M)
    assert set(index.ravel()) == set(range((2 * M - 1) ** 2))
    # pairs with the same offset share a row: (0,0)-(1,1) and (1,1)-(2,2) are both (-1, -1)
    assert index[0, 4] == index[4, 8]
    assert np.all(np.diag(index) == (2 * M - 1) * (M - 1) + (M - 1))  # offset (0, 0)


def test_shifted_window_mask_separates_the_wrapped_regions():
    H = W = 8
    M, s = 4, 2
    mask = shifted_window_mask(H, W, M, s)  # (4, 16, 16)
    assert mask.shape == (4, 16, 16)
    assert not mask[0].any()  # the top-left window of the rolled grid is one region of the image
    # in the last window the rolled grid holds 4 regions of 2×2 tokens each: a token sees 4 tokens
    assert (~mask[3]).sum(axis=-1).tolist() == [4] * 16
    assert (~mask[1]).sum(axis=-1).tolist() == [8] * 16  # right column of windows: two regions of 2×4
    assert np.array_equal(mask, mask.transpose(0, 2, 1))  # "may not attend" is symmetric


def test_output_depends_only_on_its_own_window():
    mg.manual_seed(0)
    H, W, C, M = 8, 8, 4, 4
    block = SwinBlock(C, H, num_heads=2, window_size=M, shift_size=0, mlp_ratio=2)
    for i, j in [(0, 0), (5, 2), (3, 4), (7, 7)]:
        field = receptive_field(block, H, W, C, i, j)
        expected = np.zeros((H, W), dtype=bool)
        expected[i // M * M : i // M * M + M, j // M * M : j // M * M + M] = True
        np.testing.assert_array_equal(field, expected)


def test_shifted_windows_cross_the_old_borders_but_not_the_wrap():
    mg.manual_seed(0)
    H, W, C, M, s = 8, 8, 4, 4, 2
    block = SwinBlock(C, H, num_heads=2, window_size=M, shift_size=s, mlp_ratio=2)
    # token (3, 3) sits at the corner of regular window 0; its shifted window spans rows and columns 2..5
    field = receptive_field(block, H, W, C, 3, 3)
    expected = np.zeros((H, W), dtype=bool)
    expected[2:6, 2:6] = True
    np.testing.assert_array_equal(field, expected)
    assert field[4, 4] and field[2, 5]  # tokens of regular windows 3 and 1: the border is crossed
    # token (0, 0) shares its rolled window with rows and columns 6..7 (the wrap-around), which the
    # mask hides: only its own 2×2 corner remains
    field = receptive_field(block, H, W, C, 0, 0)
    expected = np.zeros((H, W), dtype=bool)
    expected[:s, :s] = True
    np.testing.assert_array_equal(field, expected)


def test_two_blocks_spread_information_beyond_one_window():
    mg.manual_seed(0)
    H, W, C, M = 8, 8, 4, 4
    regular = SwinBlock(C, H, 2, M, 0, 2)
    shifted = SwinBlock(C, H, 2, M, M // 2, 2)
    field = receptive_field(lambda x: shifted(regular(x)), H, W, C, 3, 3)
    assert field.sum() > M * M  # more than any single window
    assert field[0, 0] and field[7, 7]  # two blocks reach from the centre into every window


def test_attention_cost_grows_linearly_with_image_area(monkeypatch):
    """Count the attention scores (the elements that go through softmax) at fixed M."""
    counted = []
    softmax = Tensor.softmax

    def counting_softmax(self, axis=-1):
        counted.append(self.size)
        return softmax(self, axis)

    monkeypatch.setattr(Tensor, "softmax", counting_softmax)
    # the readable definition of attention, whose softmax is Tensor.softmax, in place of the kernel
    monkeypatch.setattr(kernels, "scaled_dot_product_attention", mg.functional.scaled_dot_product_attention)
    mg.manual_seed(0)
    C, M, heads = 4, 4, 2
    costs = {}
    for side in (8, 16, 32):
        block = SwinBlock(C, side, heads, M, M // 2, 2)
        counted.clear()
        with mg.no_grad():
            block(Tensor(np.zeros((1, side, side, C))))
        costs[side] = sum(counted)
        # every token scores M² keys in each head
        assert costs[side] == heads * side * side * M * M
    assert costs[16] == 4 * costs[8] and costs[32] == 4 * costs[16]  # area × 4 -> cost × 4
    # global attention over the same tokens would grow as the square of the area
    assert heads * (32 * 32) ** 2 == 256 * heads * (8 * 8) ** 2


def test_window_attention_gradcheck_with_mask():
    mg.manual_seed(1)
    attn = WindowAttention(dim=4, window_size=2, num_heads=2)
    mask = shifted_window_mask(4, 4, 2, 1)  # (4, 4, 4)
    x = Tensor(np.random.default_rng(1).standard_normal((1, 4, 4, 4)), requires_grad=True)
    assert module_gradcheck(attn, lambda x: attn(x, mask), x)


def test_relative_position_bias_receives_its_gradient():
    """Every table row used by a 2×2 window gets a gradient; the bias is trained, not a constant."""
    mg.manual_seed(2)
    attn = WindowAttention(dim=4, window_size=2, num_heads=2)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 4, 4)))
    attn(x).sum().backward()
    assert np.all(attn.relative_position_bias_table.grad != 0)


def test_swin_block_patch_merging_and_classifier_gradcheck():
    mg.manual_seed(3)
    rng = np.random.default_rng(3)
    block = SwinBlock(4, 4, num_heads=2, window_size=2, shift_size=1, mlp_ratio=2)
    assert module_gradcheck(block, block, Tensor(rng.standard_normal((1, 4, 4, 4)), requires_grad=True))
    merge = PatchMerging(2)
    assert module_gradcheck(merge, merge, Tensor(rng.standard_normal((1, 4, 4, 2)), requires_grad=True))
    config = SwinConfig(
        image_size=4, patch_size=1, embed_dim=2, depths=(2, 1), num_heads=(1, 2), window_size=2, mlp_ratio=1
    )
    model = SwinTransformer(config)
    images, targets = rng.random((2, 1, 4, 4)), np.array([3, 7])
    assert module_gradcheck(model, lambda: model(images, targets)[1])


def test_patch_merging_takes_the_swin_order():
    x = np.arange(2 * 2 * 1, dtype=float).reshape(1, 2, 2, 1)  # tokens 0 1 / 2 3
    merge = PatchMerging(1)
    merge.reduction.weight.data = np.eye(2, 4, dtype=np.float32)  # keep the first two features
    concatenated = np.array([0.0, 2.0, 1.0, 3.0])  # x0 top-left, x1 bottom-left, x2 top-right, x3 bottom-right
    normalized = (concatenated - concatenated.mean()) / np.sqrt(concatenated.var() + 1e-5)
    np.testing.assert_allclose(merge(Tensor(x)).data[0, 0, 0], normalized[:2], rtol=1e-5)


def test_classifier_shapes_and_window_clamp():
    mg.manual_seed(4)
    model = SwinTransformer(SwinConfig())
    logits, loss = model(np.zeros((3, 1, 8, 8)), np.array([0, 1, 2]))
    assert logits.shape == (3, 10) and loss.shape == ()
    last = model.layers[1].blocks[1]
    assert (last.window_size, last.shift_size) == (2, 0)  # a 2×2 grid is one window: nothing to shift
    with pytest.raises(ValueError, match="depths"):
        SwinTransformer(SwinConfig(depths=(2,), num_heads=(2, 4)))
