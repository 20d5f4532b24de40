"""Swin Transformer: "Hierarchical Vision Transformer using Shifted Windows" (Liu et al., 2021).

Global self-attention over an H×W image of tokens compares every token with every other one:
(HW)² scores, quadratic in the image's area. Swin restricts attention to non-overlapping
M×M windows, so each token is compared with M² others only: HW·M² scores, linear in the area.

Windows alone would never let information cross their borders, so every second block shifts
the window grid by M/2 along both axes. Rather than pad the uneven windows this creates at the
edges, the image is rolled cyclically (the top M/2 rows move to the bottom, the left M/2
columns to the right), which keeps the number of windows the same; the windows at the edges
then hold pieces of the image that are not neighbours, and a mask stops those pieces from
attending to each other. After the block the roll is undone.

Inside a window, attention gets a learned bias per head for every relative offset between two
tokens: with offsets from -(M-1) to M-1 along each axis, a table of (2M-1)² × heads numbers:

    Attention(Q, K, V) = softmax(Q Kᵀ / √d + B) V,   B[i, j] = table[offset(i, j)]

Between stages, patch merging concatenates each 2×2 group of tokens and projects 4C to 2C:
half the resolution, twice the width, as a convolutional network's pyramid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad import kernels
from minigrad.nn import LayerNorm, Linear, Module, ModuleList, Parameter
from minigrad.tensor import Tensor
from transformer.attention import merge_heads, split_heads
from transformer.blocks import FeedForward
from transformer.vit import patchify


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Split a grid of tokens into non-overlapping windows: (B, H, W, C) -> (B, nW, M·M, C).

    nW = (H/M)·(W/M) windows in reading order; the tokens of each window in reading order too.
    """
    B, H, W, C = x.shape
    M = window_size
    if H % M or W % M:
        raise ValueError(f"a grid of {(H, W)} tokens does not split into {M}×{M} windows")
    x = x.reshape(B, H // M, M, W // M, M, C)  # (B, window row, row in window, window col, col in window, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, H/M, W/M, M, M, C) each window's tokens together
    return x.reshape(B, (H // M) * (W // M), M * M, C)  # (B, nW, M², C)


def window_merge(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """The inverse of window_partition: (B, nW, M·M, C) -> (B, H, W, C)."""
    B, _, _, C = windows.shape
    M = window_size
    x = windows.reshape(B, height // M, width // M, M, M, C)  # (B, H/M, W/M, M, M, C)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(B, height, width, C)  # (B, H, W, C)


def cyclic_shift(x: Tensor, shift: int) -> Tensor:
    """Roll a grid (B, H, W, C) up and left by `shift` (down and right when negative).

    out[:, i, j] = x[:, (i + shift) mod H, (j + shift) mod W], as np.roll(x, (-shift, -shift), axis=(1, 2)).
    """
    _, H, W, _ = x.shape
    s_row, s_col = shift % H, shift % W
    # a roll is two slices put back together the other way round (basic indexing, cheap to differentiate)
    x = mg.concatenate([x[:, s_row:], x[:, :s_row]], axis=1)  # (B, H, W, C) rows rolled
    return mg.concatenate([x[:, :, s_col:], x[:, :, :s_col]], axis=2)  # (B, H, W, C) columns rolled


def shifted_window_mask(height: int, width: int, window_size: int, shift: int) -> np.ndarray:
    """Which pairs of tokens may not attend to each other in the windows of a rolled grid.

    -> (nW, M², M²) boolean, True where attention is not allowed (PyTorch's convention).
    After rolling by `shift`, the last window row and column hold tokens from up to three
    regions that were not neighbours in the image: the rows [0, H-M) are one band, [H-M, H-s)
    another, [H-s, H) the rows that wrapped round from the top (and the same for columns).
    Tokens may only attend to tokens of their own region.
    """
    M, s = window_size, shift
    region = np.zeros((height, width), dtype=np.int64)  # a label per token of the rolled grid
    bands = (slice(0, -M), slice(-M, -s), slice(-s, None))
    for i, rows in enumerate(bands):
        for j, cols in enumerate(bands):
            region[rows, cols] = 3 * i + j
    windows = region.reshape(height // M, M, width // M, M).transpose(0, 2, 1, 3)  # (H/M, W/M, M, M)
    windows = windows.reshape(-1, M * M)  # (nW, M²) the region of each token of each window
    return windows[:, :, None] != windows[:, None, :]  # (nW, M², M²)


def relative_position_index(window_size: int) -> np.ndarray:
    """For every pair of tokens (i, j) of an M×M window, the row of its offset in the bias table.

    -> (M², M²) ints in [0, (2M-1)²): the offset (Δrow, Δcol) = pos(i) - pos(j), each in
    [-(M-1), M-1], shifted to start at 0 and read as a two-digit number in base 2M-1.
    """
    M = window_size
    coords = np.stack(np.meshgrid(np.arange(M), np.arange(M), indexing="ij")).reshape(2, -1)  # (2, M²) row, col
    offset = coords[:, :, None] - coords[:, None, :] + (M - 1)  # (2, M², M²) each in [0, 2M-2]
    return offset[0] * (2 * M - 1) + offset[1]  # (M², M²)


class WindowAttention(Module):
    """Multi-head self-attention inside each window, with a learned relative position bias.

    x (B, nW, N, C) with N = M² tokens per window -> (B, nW, N, C); mask (nW, N, N) boolean,
    True where attention is not allowed (from shifted_window_mask), or None. Parameters as in
    the Swin code: qkv (Linear(C, 3C)), proj (Linear(C, C)), relative_position_bias_table
    ((2M-1)², heads).

    The bias B is a parameter: passed to scaled_dot_product_attention as its float mask, it
    is added to the scores and receives its gradient there.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.qkv = Linear(dim, 3 * dim)
        self.proj = Linear(dim, dim)
        table = 0.02 * mg.default_rng().standard_normal(((2 * window_size - 1) ** 2, num_heads))
        self.relative_position_bias_table = Parameter(table)
        self.relative_position_index = relative_position_index(window_size)  # (N, N) constant

    def relative_position_bias(self) -> Tensor:
        """B for every head: (heads, N, N), gathered from the table by relative offset."""
        bias = self.relative_position_bias_table[self.relative_position_index]  # (N, N, heads)
        return bias.transpose(2, 0, 1)  # (heads, N, N)

    def forward(self, x: Tensor, mask: np.ndarray | None = None) -> Tensor:
        """x (B, nW, N, C), mask (nW, N, N) or None -> (B, nW, N, C): attention within each window."""
        C = x.shape[-1]
        qkv = self.qkv(x)  # (B, nW, N, 3C): [q | k | v]
        q, k, v = (split_heads(qkv[..., i * C : (i + 1) * C], self.num_heads) for i in range(3))  # (B, nW, h, N, d)
        bias = self.relative_position_bias()  # (h, N, N) the same in every window
        if mask is not None:  # (nW, 1, N, N) against (h, N, N): -inf where a window's pieces may not meet
            bias = bias + F.attention_bias(mask[:, None], x.dtype, blocked_where=True)  # (nW, h, N, N)
        out = kernels.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, nW, h, N, d)
        return self.proj(merge_heads(out))  # (B, nW, N, C)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class SwinBlock(Module):
    """A pre-norm transformer block whose self-attention is (shifted) window attention.

    x (B, H, W, C) -> (B, H, W, C). shift_size 0 gives regular windows, M/2 the shifted ones.
    When the grid is no larger than one window, the window shrinks to the grid and there is
    nothing to shift (the Swin rule): attention is then global.
    """

    def __init__(self, dim: int, resolution: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: int):
        super().__init__()
        if resolution <= window_size:
            window_size, shift_size = resolution, 0
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must lie in [0, window_size={window_size}), got {shift_size}")
        self.resolution, self.window_size, self.shift_size = resolution, window_size, shift_size
        self.norm1 = LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio * dim, activation="gelu")
        self.attn_mask = (
            shifted_window_mask(resolution, resolution, window_size, shift_size) if shift_size else None
        )  # (nW, M², M²)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, H, W, C) -> (B, H, W, C)."""
        _, H, W, _ = x.shape
        M, s = self.window_size, self.shift_size
        h = self.norm1(x)  # (B, H, W, C)
        if s:
            h = cyclic_shift(h, s)  # (B, H, W, C) the window grid now sits M/2 further down and right
        windows = self.attn(window_partition(h, M), self.attn_mask)  # (B, nW, M², C)
        h = window_merge(windows, M, H, W)  # (B, H, W, C)
        if s:
            h = cyclic_shift(h, -s)  # (B, H, W, C) every token back in its place
        x = x + h  # (B, H, W, C)
        return x + self.mlp(self.norm2(x))  # (B, H, W, C)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, window_size={self.window_size}, shift_size={self.shift_size}"


class PatchMerging(Module):
    """Halve the resolution, double the width: each 2×2 group of tokens becomes one.

    x (B, H, W, C) -> concatenate the four tokens (B, H/2, W/2, 4C) -> norm -> reduction
    (Linear(4C, 2C, no bias)) -> (B, H/2, W/2, 2C). The four are taken in the Swin code's order
    (top-left, bottom-left, top-right, bottom-right), so its weights would load unchanged.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = LayerNorm(4 * dim)
        self.reduction = Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, C = x.shape
        x = x.reshape(B, H // 2, 2, W // 2, 2, C)  # (B, H/2, row in group, W/2, col in group, C)
        x = x.transpose(0, 1, 3, 4, 2, 5).reshape(B, H // 2, W // 2, 4 * C)  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x))  # (B, H/2, W/2, 2C)


class SwinStage(Module):
    """depth blocks at one resolution, alternating regular and shifted windows; then merging."""

    def __init__(
        self, dim: int, resolution: int, depth: int, num_heads: int, window_size: int, mlp_ratio: int, downsample: bool
    ):
        super().__init__()
        self.blocks = ModuleList(
            SwinBlock(dim, resolution, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio)
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)  # (B, H, W, C)
        return x if self.downsample is None else self.downsample(x)  # (B, H, W, C) or (B, H/2, W/2, 2C)


@dataclass
class SwinConfig:
    """The sizes of a small Swin Transformer. The defaults fit scikit-learn's 8×8 digits."""

    image_size: int = 8
    patch_size: int = 2  # 2×2 pixels per token: a 4×4 grid of tokens
    in_channels: int = 1
    num_classes: int = 10
    embed_dim: int = 32  # C of the first stage; each later stage doubles it
    depths: tuple[int, ...] = (2, 2)  # blocks per stage
    num_heads: tuple[int, ...] = (2, 4)
    window_size: int = 2  # M, in tokens
    mlp_ratio: int = 2


class SwinTransformer(Module):
    """images (B, C, H, W) -> class logits (B, num_classes), and the loss when targets are given.

    patch_embed (a linear map of each P×P patch, with patch_norm), stages of Swin blocks with
    patch merging between them, a final norm, the mean over all tokens, head.
    """

    def __init__(self, config: SwinConfig):
        super().__init__()
        self.config = c = config
        if len(c.depths) != len(c.num_heads):
            raise ValueError(f"depths {c.depths} and num_heads {c.num_heads} must have one entry per stage")
        resolution = c.image_size // c.patch_size
        self.patch_embed = Linear(c.in_channels * c.patch_size**2, c.embed_dim)
        self.patch_norm = LayerNorm(c.embed_dim)
        stages = []
        for i, (depth, heads) in enumerate(zip(c.depths, c.num_heads)):
            last = i == len(c.depths) - 1
            dim = c.embed_dim * 2**i
            stages.append(SwinStage(dim, resolution, depth, heads, c.window_size, c.mlp_ratio, downsample=not last))
            resolution //= 1 if last else 2
        self.layers = ModuleList(stages)
        self.num_features = c.embed_dim * 2 ** (len(c.depths) - 1)
        self.norm = LayerNorm(self.num_features)
        self.head = Linear(self.num_features, c.num_classes)

    def forward(self, images, targets=None) -> tuple[Tensor, Tensor | None]:
        """images (B, C, H, W), targets (B,) class ids or None -> (logits (B, classes), loss or None)."""
        c = self.config
        side = c.image_size // c.patch_size
        tokens = self.patch_embed(patchify(images, c.patch_size))  # (B, N, C0)
        x = self.patch_norm(tokens).reshape(tokens.shape[0], side, side, c.embed_dim)  # (B, H, W, C0)
        for stage in self.layers:
            x = stage(x)  # (B, H', W', C')
        pooled = self.norm(x).mean(axis=(1, 2))  # (B, C_last) the average token
        logits = self.head(pooled)  # (B, classes)
        loss = None if targets is None else kernels.cross_entropy(logits, np.asarray(targets))
        return logits, loss
