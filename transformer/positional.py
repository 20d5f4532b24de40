"""Positional information: attention itself is blind to order, so positions must be told.

Four ways, from the literature:

- sinusoidal (Vaswani et al. 2017, section 3.5): a fixed pattern of sines and cosines added to
  the token embeddings;
- learned (GPT, BERT): one trained vector per position, added the same way;
- rotary, RoPE (Su et al. 2021): every query and key is rotated by an angle proportional to
  its position, so their dot product depends only on the distance between them;
- ALiBi (Press et al. 2022): no embedding at all, a penalty proportional to the distance
  between query and key is added to the attention scores, one slope per head.

The first two act on the embeddings (B, T, E); the last two plug into `MultiHeadAttention`.
"""

from __future__ import annotations

import math

import numpy as np

import minigrad as mg
from minigrad.creation import default_rng
from minigrad.nn import Module, Parameter
from minigrad.tensor import Tensor


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """PE (max_len, d_model): PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(same).

    The wavelengths form a geometric progression from 2π to 10000·2π, so that for any fixed
    offset k, PE(pos + k) is a linear function (a rotation) of PE(pos).
    """
    position = np.arange(max_len)[:, None]  # (max_len, 1)
    two_i = np.arange(0, d_model, 2)  # (ceil(d/2),) the even indices 2i
    angle = position / 10000.0 ** (two_i / d_model)  # (max_len, ceil(d/2))
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, : d_model // 2])  # an odd d_model has one sine more
    return table.astype(np.float32)


class SinusoidalPositionalEncoding(Module):
    """x (B, T, E) -> x + PE[:T]: the paper's fixed encoding, no parameters."""

    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.encoding = sinusoidal_table(max_len, d_model)  # (max_len, E), a constant, not learned

    def forward(self, x: Tensor) -> Tensor:
        _check_length(x.shape[-2], self.max_len)
        return x + self.encoding[: x.shape[-2]]  # (B, T, E)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositionalEmbedding(Module):
    """x (B, T, E) -> x + weight[:T]: one trained vector per position (GPT's wpe).

    weight (max_len, E) starts from N(0, 0.02²), GPT-2's scale, small beside the token embeddings.
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.weight = Parameter(0.02 * default_rng().standard_normal((max_len, d_model)))

    def forward(self, x: Tensor) -> Tensor:
        _check_length(x.shape[-2], self.max_len)
        return x + self.weight[: x.shape[-2]]  # (B, T, E)

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.d_model}"


class RotaryEmbedding(Module):
    """Rotate each pair (x_2i, x_2i+1) of a query or key at position m by the angle m·θ_i.

    θ_i = base^(-2i/d). Since rotations compose, (R_m q)·(R_n k) = q·(R_{n-m} k): after the
    rotation, attention scores depend on positions only through their difference n - m.
    Applied to queries and keys of shape (..., T, head_dim), positions 0..T-1.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings rotate pairs of features: head_dim must be even, not {head_dim}")
        self.head_dim, self.base = head_dim, base
        self.inv_freq = base ** (-np.arange(0, head_dim, 2) / head_dim)  # (D/2,) θ_i

    def forward(self, x: Tensor) -> Tensor:
        T, D = x.shape[-2], x.shape[-1]
        if D != self.head_dim:
            raise ValueError(f"RotaryEmbedding was built for head_dim {self.head_dim}, got inputs of shape {x.shape}")
        angle = np.outer(np.arange(T), self.inv_freq)  # (T, D/2) m·θ_i
        cos, sin = np.cos(angle).astype(x.dtype), np.sin(angle).astype(x.dtype)  # (T, D/2)
        pairs = x.reshape(*x.shape[:-1], D // 2, 2)  # (..., T, D/2, 2)
        x_even, x_odd = pairs[..., 0], pairs[..., 1]  # (..., T, D/2) each
        rotated = mg.stack([x_even * cos - x_odd * sin, x_even * sin + x_odd * cos], axis=-1)  # (..., T, D/2, 2)
        return rotated.reshape(x.shape)  # (..., T, D)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"


def alibi_slopes(num_heads: int) -> np.ndarray:
    """The per-head slopes (num_heads,): the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8).

    For n not a power of two, ALiBi's paper takes the slopes of the nearest smaller power of
    two, then every other slope of the next larger one.
    """

    def geometric(n: int) -> np.ndarray:
        start = 2.0 ** (-8.0 / n)
        return start ** np.arange(1, n + 1)

    if num_heads & (num_heads - 1) == 0:
        return geometric(num_heads)
    closest = 2 ** int(math.floor(math.log2(num_heads)))
    return np.concatenate([geometric(closest), geometric(2 * closest)[0::2][: num_heads - closest]])


class ALiBi(Module):
    """Attention with Linear Biases: score(i, j) += -slope_h · |i - j| for head h.

    Called with (q_len, k_len) it gives the float bias (num_heads, Tq, Tk) that
    `MultiHeadAttention` adds to its scores. Nearby keys are penalised little, distant ones
    more, the steep heads looking locally and the shallow ones far.
    """

    def __init__(self, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.slopes = alibi_slopes(num_heads)  # (H,)

    def forward(self, q_len: int, k_len: int) -> np.ndarray:
        distance = np.abs(np.arange(q_len)[:, None] - np.arange(k_len)[None, :])  # (Tq, Tk) |i - j|
        return (-self.slopes[:, None, None] * distance).astype(np.float32)  # (H, Tq, Tk)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}"


def _check_length(length: int, max_len: int) -> None:
    if length > max_len:
        raise ValueError(f"sequence of length {length} is longer than max_len {max_len}; build with a larger max_len")
