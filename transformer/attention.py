"""Attention, section 3.2 of "Attention Is All You Need".

Scaled dot-product attention lets every query position take a weighted average of the value
vectors, weighted by how well its query matches each key:

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

Multi-head attention runs h of these side by side on learned projections of the inputs,
each head in a d_k = d_model / h dimensional subspace, and mixes the heads' outputs back:

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,   head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

Attention itself is `minigrad.functional.scaled_dot_product_attention`, the readable
definition (softmax(Q Kᵀ / √d_k + mask) V), run by its fused twin in minigrad/kernels.py
unless `minigrad.use_kernels(False)` says otherwise. Every model of this package (the GPT,
the encoder-decoder, ViT, Swin, co-attention) attends through it, with the heads split and
merged by `split_heads` and `merge_heads` below.
The masks of this module follow torch.nn: a boolean mask is True where attention is NOT
allowed, a float mask is added to the scores (so -inf forbids, and a finite value such as
ALiBi's distance penalty biases); `functional.attention_bias` turns them into that bias.
"""

from __future__ import annotations

import math

import numpy as np

import minigrad.functional as F
from minigrad import kernels
from minigrad.creation import default_rng
from minigrad.nn import Linear, Module, Parameter
from minigrad.tensor import Tensor
from transformer.positional import ALiBi, RotaryEmbedding


def xavier_uniform_(param: Tensor, rng: np.random.Generator | None = None) -> Tensor:
    """Fill a (fan_out, fan_in) matrix in place from U(-a, a), a = √(6 / (fan_in + fan_out)).

    Glorot & Bengio's initialisation, which torch.nn.MultiheadAttention and torch.nn.Transformer
    use: it keeps the variance of activations and of gradients about equal across a layer.
    """
    rng = default_rng() if rng is None else rng
    fan_out, fan_in = param.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    param.data[...] = rng.uniform(-bound, bound, param.shape)
    return param


def split_heads(x: Tensor, n_head: int) -> Tensor:
    """(..., T, C) -> (..., n_head, T, C / n_head): each head's run of channels as a sequence of its own."""
    *batch, T, C = x.shape
    x = x.reshape(*batch, T, n_head, C // n_head)  # (..., T, nh, hs)
    return _swap_head_and_time(x)  # (..., nh, T, hs)


def merge_heads(x: Tensor) -> Tensor:
    """The inverse of split_heads: (..., nh, T, hs) -> (..., T, nh · hs), the heads side by side again."""
    *batch, nh, T, hs = x.shape
    return _swap_head_and_time(x).reshape(*batch, T, nh * hs)  # (..., T, C)


def _swap_head_and_time(x: Tensor) -> Tensor:
    """(..., a, b, hs) -> (..., b, a, hs)."""
    n = x.ndim
    return x.transpose(*range(n - 3), n - 2, n - 3, n - 1)


class MultiHeadAttention(Module):
    """Multi-head attention with torch.nn.MultiheadAttention(batch_first=True)'s parameters.

    in_proj_weight (3E, E) stacks W^Q, W^K, W^V (all heads side by side in each); in_proj_bias
    (3E,); out_proj is W^O, a Linear(E, E). A state dict moves to and from PyTorch unchanged.

    `rotary` (a RotaryEmbedding over head_dim) rotates every head's queries and keys by their
    positions; `alibi` (an ALiBi over num_heads) adds its distance penalty to the scores. Both
    carry no parameters, so the state dict is the same with or without them. `fused` pins
    minigrad/kernels.py's attention (True) or functional.py's definition (False) for this
    module; None follows `minigrad.use_kernels`.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        rotary: RotaryEmbedding | None = None,
        alibi: ALiBi | None = None,
        fused: bool | None = None,
    ):
        super().__init__()
        self.fused = fused
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout = dropout
        self.in_proj_weight = xavier_uniform_(Parameter(np.zeros((3 * embed_dim, embed_dim))))
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias.data[...] = 0.0  # as PyTorch: attention starts without offsets
        self.rotary, self.alibi = rotary, alibi

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask=None,
        need_weights: bool = True,
        attn_mask=None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """query (B, Tq, E), key (B, Tk, E), value (B, Tk, E) -> (output (B, Tq, E), weights).

        key_padding_mask (B, Tk): True (or -inf) at padded keys. attn_mask (Tq, Tk), or
        (B·num_heads, Tq, Tk) for one mask per sequence and head. is_causal adds the causal
        mask. weights are None unless need_weights: then (B, Tq, Tk) averaged over heads, or
        (B, num_heads, Tq, Tk) with average_attn_weights=False — as PyTorch's. A query the masks
        leave no key outputs out_proj's bias, with weights 0, as PyTorch's with need_weights=False
        (its need_weights=True gives NaN there).
        """
        B, q_len, E = query.shape
        k_len = key.shape[1]
        if E != self.embed_dim or key.shape[-1] != E or value.shape[-1] != E:
            raise ValueError(
                f"MultiHeadAttention expects inputs of width {self.embed_dim}, got query {query.shape}, "
                f"key {key.shape}, value {value.shape}"
            )
        # split E into H heads of D: each head attends in its own subspace
        q, k, v = (split_heads(t, self.num_heads) for t in self._in_projection(query, key, value))  # (B, H, T, D)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)  # (B, H, Tq, D), (B, H, Tk, D)
        bias = self._merged_bias(attn_mask, key_padding_mask, B, q_len, k_len, query.dtype)
        dropout_p = self.dropout if self.training else 0.0
        out = kernels.scaled_dot_product_attention(q, k, v, bias, dropout_p=dropout_p, is_causal=is_causal)
        weights = None
        if need_weights:  # the attention pattern, for reading: the definition's first steps again
            weights = F.attention_weights(q, k, bias, is_causal)  # (B, H, Tq, Tk)
            if average_attn_weights:
                weights = weights.mean(axis=1)  # (B, Tq, Tk)
        return self.out_proj(merge_heads(out)), weights  # (B, Tq, E)

    def _in_projection(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q W^Q, K W^K, V W^V; in self-attention one product with the packed (3E, E) matrix."""
        E, w, b = self.embed_dim, self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:
            qkv = kernels.linear(query, w, b)  # (B, T, 3E)
            return qkv[..., :E], qkv[..., E : 2 * E], qkv[..., 2 * E :]  # (B, T, E) each
        b_q, b_k, b_v = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        q = kernels.linear(query, w[:E], b_q)  # (B, Tq, E)
        k = kernels.linear(key, w[E : 2 * E], b_k)  # (B, Tk, E)
        v = kernels.linear(value, w[2 * E :], b_v)  # (B, Tk, E)
        return q, k, v

    def _merged_bias(self, attn_mask, key_padding_mask, B: int, q_len: int, k_len: int, dtype):
        """One additive bias (B or 1, H or 1, Tq, Tk) from the attention mask, the padding mask and ALiBi."""
        bias = None
        if attn_mask is not None:
            mask = F.attention_bias(attn_mask, dtype, blocked_where=True)
            if mask.ndim == 3:  # one (Tq, Tk) mask per sequence and head, PyTorch's (B·H, Tq, Tk)
                mask = mask.reshape(B, self.num_heads, q_len, k_len)
            bias = mask  # (Tq, Tk) or (B, H, Tq, Tk)
        if key_padding_mask is not None:
            padding = F.attention_bias(key_padding_mask, dtype, blocked_where=True).reshape(B, 1, 1, k_len)
            bias = padding if bias is None else bias + padding
        if self.alibi is not None:
            distance = self.alibi(q_len, k_len).astype(dtype)  # (H, Tq, Tk)
            bias = distance if bias is None else bias + distance
        return bias

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
