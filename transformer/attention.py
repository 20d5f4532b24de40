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
from minigrad.tensor import Tensor, array_of
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


def check_mask_dtypes(**masks) -> None:
    """TypeError naming the first mask that is neither boolean nor floating, the two kinds torch.nn takes.

    An integer mask has no meaning of its own: 1 as "masked" (a boolean's True) and 1 as a score
    added (a float's) disagree, so it is refused rather than read as either.
    """
    for name, mask in masks.items():
        if mask is not None and array_of(mask).dtype.kind not in "bf":
            raise TypeError(
                f"{name} must be boolean (True where attention is NOT allowed) or floating (added to the scores), "
                f"as in torch.nn; got {array_of(mask).dtype}: convert it with .astype(bool)"
            )


class MultiHeadAttention(Module):
    """Multi-head attention with torch.nn.MultiheadAttention's arguments and parameters, batch first.

    in_proj_weight (3E, E) stacks W^Q, W^K, W^V (all heads side by side in each); in_proj_bias
    (3E,); out_proj is W^O, a Linear(E, E). A state dict moves to and from PyTorch unchanged.
    The arguments are torch's, in torch's order; batch_first defaults to True (torch's default
    is False, and batch_first=False takes torch's (T, B, E) inputs). torch's options that change
    the parameters (add_bias_kv, add_zero_attn, kdim or vdim other than embed_dim) are refused.

    This package's extras are keyword-only, so no positional torch argument lands on them:
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
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = True,
        *,
        rotary: RotaryEmbedding | None = None,
        alibi: ALiBi | None = None,
        fused: bool | None = None,
    ):
        super().__init__()
        for name, value in (("add_bias_kv", add_bias_kv), ("add_zero_attn", add_zero_attn)):
            if value:
                raise ValueError(f"MultiHeadAttention: {name}=True is not supported; leave it False")
        for name, dim in (("kdim", kdim), ("vdim", vdim)):
            if dim not in (None, embed_dim):
                raise ValueError(
                    f"MultiHeadAttention: {name}={dim} differs from embed_dim={embed_dim}, which is not supported; "
                    f"project the keys and values to {embed_dim} features first"
                )
        self.fused = fused
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
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

        With batch_first=False the inputs and the output are (T, B, E); unbatched, (T, E). Masks
        are boolean (True where attention is NOT allowed) or floating (added to the scores), as
        torch's: key_padding_mask (B, Tk), or (Tk,) unbatched; attn_mask (Tq, Tk), or
        (B·num_heads, Tq, Tk) for one mask per sequence and head. is_causal is torch's hint that
        attn_mask is the causal mask, and needs it: where nothing else needs the mask (no
        weights, no padding mask) the causal mask replaces it, as in torch. weights are None
        unless need_weights: then (B, Tq, Tk) averaged over heads, or (B, num_heads, Tq, Tk)
        with average_attn_weights=False — as PyTorch's, after dropout (the weights applied). A
        query the masks leave no key outputs out_proj's bias, with weights 0, as PyTorch's with
        need_weights=False (its need_weights=True gives NaN there).
        """
        batched = query.ndim == 3
        query, key, value = self._batch_first(query, key, value)  # (B, T, E) each
        B, q_len, _ = query.shape
        k_len = key.shape[1]
        self._check_masks(attn_mask, key_padding_mask, B, q_len, k_len, batched)
        if key_padding_mask is not None and not batched:
            key_padding_mask = array_of(key_padding_mask)[None]  # (1, Tk)
        if is_causal and attn_mask is None:
            raise ValueError(
                "MultiHeadAttention: is_causal=True is a hint that attn_mask is the causal mask and needs it, as "
                "in torch: pass attn_mask=Transformer.generate_square_subsequent_mask(T) as well"
            )
        causal = is_causal and key_padding_mask is None and not need_weights  # torch's: the hint replaces the mask
        # split E into H heads of D: each head attends in its own subspace
        q, k, v = (split_heads(t, self.num_heads) for t in self._in_projection(query, key, value))  # (B, H, T, D)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)  # (B, H, Tq, D), (B, H, Tk, D)
        bias = self._merged_bias(None if causal else attn_mask, key_padding_mask, B, q_len, k_len, query.dtype)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights and dropout_p > 0.0:  # the weights returned are those applied, dropout included
            weights = F.dropout(F.attention_weights(q, k, bias), dropout_p)  # (B, H, Tq, Tk)
            out = weights @ v  # (B, H, Tq, D)
        else:
            out = kernels.scaled_dot_product_attention(q, k, v, bias, dropout_p=dropout_p, is_causal=causal)
            if need_weights:  # the attention pattern, for reading: the definition's first steps again
                weights = F.attention_weights(q, k, bias)  # (B, H, Tq, Tk)
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)  # (B, Tq, Tk)
        out = self.out_proj(merge_heads(out))  # (B, Tq, E)
        if not batched:
            return out[0], None if weights is None else weights[0]  # (Tq, E), as the query came
        return (out if self.batch_first else out.transpose(1, 0, 2)), weights

    def _batch_first(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The inputs as (B, T, E), an unbatched (T, E) as a batch of one; self-attention's
        `query is key is value` stays true. Their widths, batch sizes and lengths are checked."""
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(
                "MultiHeadAttention expects query, key and value all batched (3-D) or all unbatched (T, E), "
                f"got {query.shape}, {key.shape} and {value.shape}"
            )

        def layout(x: Tensor) -> Tensor:
            if x.ndim == 2:
                return x[None]  # (1, T, E)
            return x if self.batch_first else x.transpose(1, 0, 2)  # (B, T, E)

        q = layout(query)
        k = q if key is query else layout(key)
        v = k if value is key else layout(value)
        E = self.embed_dim
        if q.shape[-1] != E or k.shape[-1] != E or k.shape != v.shape or k.shape[0] != q.shape[0]:
            raise ValueError(
                f"MultiHeadAttention expects inputs of width {E}, one batch size, and keys and values of one "
                f"shape; got query {query.shape}, key {key.shape}, value {value.shape} (batch_first={self.batch_first})"
            )
        return q, k, v

    def _check_masks(self, attn_mask, key_padding_mask, B: int, q_len: int, k_len: int, batched: bool) -> None:
        """TypeError for a mask neither boolean nor floating, ValueError for a shape torch refuses."""
        check_mask_dtypes(attn_mask=attn_mask, key_padding_mask=key_padding_mask)
        shapes = [(q_len, k_len), (B * self.num_heads, q_len, k_len)]
        if attn_mask is not None and array_of(attn_mask).shape not in shapes:
            raise ValueError(
                f"MultiHeadAttention: attn_mask must be {shapes[0]} or {shapes[1]} (one per sequence and head), "
                f"got {array_of(attn_mask).shape}"
            )
        padding_shape = (B, k_len) if batched else (k_len,)
        if key_padding_mask is not None and array_of(key_padding_mask).shape != padding_shape:
            raise ValueError(
                f"MultiHeadAttention: key_padding_mask must be {padding_shape}, got {array_of(key_padding_mask).shape}"
            )

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
