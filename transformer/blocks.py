"""The layers of the Transformer, section 3.1 and 3.3 of "Attention Is All You Need".

Each layer is a few sublayers — self-attention, cross-attention over the encoder's output,
a position-wise feed-forward network — and each sublayer sits in a residual connection with
layer normalisation, in one of two arrangements:

    post-norm (the paper, norm_first=False):   x = LayerNorm(x + Sublayer(x))
    pre-norm  (GPT-2,     norm_first=True):    x = x + Sublayer(LayerNorm(x))

Pre-norm leaves a clean identity path from input to output; Xiong et al. (2020) show that deep
pre-norm stacks can then train without a learning-rate warm-up, though GPT-2, nanoGPT and this
project's trainer still warm up. Post-norm is what the paper (and PyTorch's default) does.
Parameter names are PyTorch's (self_attn, multihead_attn, linear1, linear2, norm1..norm3), so
state dicts move between the two unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from minigrad.nn import GELU, Dropout, LayerNorm, Linear, Module, ReLU
from minigrad.tensor import Tensor
from transformer.attention import MultiHeadAttention, check_mask_dtypes
from transformer.positional import ALiBi, RotaryEmbedding


def _activation(activation: str | Callable) -> Callable:
    if callable(activation):
        return activation
    if activation == "relu":
        return ReLU()
    if activation == "gelu":
        return GELU()
    raise ValueError(f'activation must be "relu", "gelu" or a callable, not {activation!r}')


class FeedForward(Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2, applied to each position separately (section 3.3).

    x (B, T, d_model) -> (B, T, d_model) through a wider hidden layer (B, T, dim_feedforward);
    activation "relu" (the paper) or "gelu" (GPT, BERT). The encoder and decoder layers are
    built on it too: they hold its parts directly, under torch.nn's names linear1, dropout and
    linear2, and run its forward on them.
    """

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0, activation="relu", bias: bool = True):
        super().__init__()
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.activation = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))  # (B, T, d_model)


class _TransformerLayer(Module):
    """What the encoder and decoder layers share, with torch.nn's arguments and parameters in torch.nn's order.

    The arguments are torch's, positions included; batch_first defaults to True (torch's to
    False), and this package's extras, `rotary` and `alibi`, are keyword-only. self_attn (a
    MultiHeadAttention; `rotary` or `alibi` give it positions), the decoder's multihead_attn
    over the encoder's output, the feed-forward's linear1, dropout and linear2 (held directly,
    under torch.nn's names), a norm and a residual dropout per sublayer.
    """

    cross_attention = False  # the decoder's: a sublayer attending to the encoder's output

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
        *,
        rotary: RotaryEmbedding | None = None,
        alibi: ALiBi | None = None,
    ):
        super().__init__()
        attention = dict(dropout=dropout, bias=bias, batch_first=batch_first)
        self.self_attn = MultiHeadAttention(d_model, nhead, **attention, rotary=rotary, alibi=alibi)
        if self.cross_attention:  # queries from the decoder, keys and values from the encoder: no positions
            self.multihead_attn = MultiHeadAttention(d_model, nhead, **attention)
        feed_forward = FeedForward(d_model, dim_feedforward, dropout, activation, bias)
        self.linear1, self.dropout, self.linear2 = feed_forward.linear1, feed_forward.dropout, feed_forward.linear2
        self.norm_first = norm_first
        sublayers = 3 if self.cross_attention else 2
        for i in range(1, sublayers + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        for i in range(1, sublayers + 1):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = feed_forward.activation

    def _self_attention(self, x: Tensor, attn_mask, key_padding_mask, is_causal: bool) -> Tensor:
        out, _ = self.self_attn(
            x, x, x, key_padding_mask=key_padding_mask, need_weights=False, attn_mask=attn_mask, is_causal=is_causal
        )  # (B, T, E)
        return self.dropout1(out)

    def _feed_forward(self, x: Tensor, residual_dropout: Dropout) -> Tensor:
        # FeedForward's forward, on this layer's own linear1, activation, dropout and linear2
        return residual_dropout(FeedForward.forward(self, x))  # (B, T, E)


class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention, then feed-forward; each in a residual connection with layer norm.

    src (B, S, d_model) -> (B, S, d_model); (S, B, d_model) with batch_first=False, (S, d_model)
    unbatched. The parameters (and the constructor's arguments) are those of
    torch.nn.TransformerEncoderLayer; `rotary` or `alibi` give the self-attention positions.
    """

    def forward(self, src: Tensor, src_mask=None, src_key_padding_mask=None, is_causal: bool = False) -> Tensor:
        """src (B, S, E); src_mask (S, S); src_key_padding_mask (B, S), True at padding.

        is_causal is torch's hint that src_mask is the causal mask (see MultiHeadAttention)."""
        check_mask_dtypes(src_mask=src_mask, src_key_padding_mask=src_key_padding_mask)
        x = src  # (B, S, E)
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask, is_causal)  # (B, S, E)
            x = x + self._feed_forward(self.norm2(x), self.dropout2)  # (B, S, E)
        else:
            x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask, is_causal))  # (B, S, E)
            x = self.norm2(x + self._feed_forward(x, self.dropout2))  # (B, S, E)
        return x


class TransformerDecoderLayer(_TransformerLayer):
    """Masked self-attention, cross-attention over the encoder's output (memory), feed-forward.

    tgt (B, T, d_model), memory (B, S, d_model) -> (B, T, d_model); sequence first with
    batch_first=False, as torch's. The parameters (and the constructor's arguments) are those of
    torch.nn.TransformerDecoderLayer. Pass the causal mask as tgt_mask so that position t sees
    the targets before it only (tgt_is_causal=True beside it is torch's hint that it is causal).
    `rotary` or `alibi` give the self-attention positions; cross-attention compares positions of
    two different sequences and gets none.
    """

    cross_attention = True

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """tgt (B, T, E), memory (B, S, E); tgt_mask (T, T), memory_mask (T, S); padding masks (B, T), (B, S).

        tgt_is_causal and memory_is_causal are torch's hints that tgt_mask and memory_mask are causal."""
        check_mask_dtypes(
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
        )
        x = tgt  # (B, T, E)
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)  # (B, T, E)
            x = x + self._cross_attention(
                self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal
            )  # (B, T, E)
            x = x + self._feed_forward(self.norm3(x), self.dropout3)  # (B, T, E)
        else:
            x = self.norm1(x + self._self_attention(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))  # (B, T, E)
            x = self.norm2(
                x + self._cross_attention(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            )  # (B, T, E)
            x = self.norm3(x + self._feed_forward(x, self.dropout3))  # (B, T, E)
        return x

    def _cross_attention(self, x: Tensor, memory: Tensor, attn_mask, key_padding_mask, is_causal: bool) -> Tensor:
        # queries from the decoder, keys and values from the encoder's output
        out, _ = self.multihead_attn(
            x,
            memory,
            memory,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            attn_mask=attn_mask,
            is_causal=is_causal,
        )  # (B, T, E)
        return self.dropout2(out)
