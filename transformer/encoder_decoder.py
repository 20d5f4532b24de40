"""The encoder-decoder Transformer of "Attention Is All You Need" (figure 1).

The encoder turns the source sequence into a sequence of vectors, the memory; the decoder
produces the target sequence one position at a time, attending to what it has produced so
far (masked self-attention) and to the memory (cross-attention). Both stacks end with a layer
norm, as torch.nn.Transformer's do, and `Transformer`'s state dict is exactly that of
torch.nn.Transformer(batch_first=True) of the same sizes.

The Transformer works on vectors: token embeddings, positional encodings and the output
projection to a vocabulary belong to the model that uses it (see examples/reverse.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

import minigrad.functional as F
from minigrad.nn import LayerNorm, Module, ModuleList
from minigrad.tensor import Tensor
from transformer.attention import xavier_uniform_
from transformer.blocks import TransformerDecoderLayer, TransformerEncoderLayer


class TransformerEncoder(Module):
    """A stack of encoder layers, then an optional final layer norm: src (B, S, E) -> memory (B, S, E)."""

    def __init__(self, layers: Iterable[TransformerEncoderLayer], norm: LayerNorm | None = None):
        super().__init__()
        self.layers = ModuleList(layers)
        self.norm = norm

    def forward(self, src: Tensor, mask=None, src_key_padding_mask=None, is_causal: bool = False) -> Tensor:
        x = src  # (B, S, E)
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)  # (B, S, E)
        return self.norm(x) if self.norm is not None else x  # (B, S, E)


class TransformerDecoder(Module):
    """A stack of decoder layers, then an optional final layer norm: tgt (B, T, E), memory (B, S, E) -> (B, T, E)."""

    def __init__(self, layers: Iterable[TransformerDecoderLayer], norm: LayerNorm | None = None):
        super().__init__()
        self.layers = ModuleList(layers)
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, *masks, **named_masks) -> Tensor:
        """The masks (tgt_mask, memory_mask, the padding masks, tgt_is_causal) as TransformerDecoderLayer takes them."""
        x = tgt  # (B, T, E)
        for layer in self.layers:
            x = layer(x, memory, *masks, **named_masks)  # (B, T, E)
        return self.norm(x) if self.norm is not None else x  # (B, T, E)


class Transformer(Module):
    """Encoder-decoder Transformer, batch first, with torch.nn.Transformer's parameters and masks.

    src (B, S, d_model), tgt (B, T, d_model) -> (B, T, d_model). Masks follow PyTorch: a
    boolean mask is True where attention is NOT allowed, a float mask is added to the scores;
    src_mask (S, S), tgt_mask (T, T), memory_mask (T, S); the key padding masks are (B, S),
    (B, T) and (B, S), True at padded positions. For the decoder to see only earlier targets,
    pass tgt_mask=Transformer.generate_square_subsequent_mask(T).
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        self.d_model, self.nhead = d_model, nhead
        sizes = dict(
            d_model=d_model,
            nhead=nhead,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation=activation,
            layer_norm_eps=layer_norm_eps,
            norm_first=norm_first,
            bias=bias,
        )
        self.encoder = TransformerEncoder(
            [TransformerEncoderLayer(**sizes) for _ in range(num_encoder_layers)],
            norm=LayerNorm(d_model, eps=layer_norm_eps, bias=bias),
        )
        self.decoder = TransformerDecoder(
            [TransformerDecoderLayer(**sizes) for _ in range(num_decoder_layers)],
            norm=LayerNorm(d_model, eps=layer_norm_eps, bias=bias),
        )
        # As torch.nn.Transformer: every weight matrix starts Xavier-uniform.
        for param in self.parameters():
            if param.ndim > 1:
                xavier_uniform_(param)

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_mask=None,
        tgt_mask=None,
        memory_mask=None,
        src_key_padding_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
    ) -> Tensor:
        if src.ndim != 3 or tgt.ndim != 3 or src.shape[0] != tgt.shape[0]:
            raise ValueError(
                f"src and tgt must be (B, S, E) and (B, T, E) with one batch size, got {src.shape} and {tgt.shape}"
            )
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"src and tgt must have d_model={self.d_model} features, got {src.shape} and {tgt.shape}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask)  # (B, S, E)
        return self.decoder(
            tgt,
            memory,
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
        )  # (B, T, E)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, dtype=np.float32) -> np.ndarray:
        """The causal mask (sz, sz) as PyTorch's: -inf above the diagonal (the future), 0 elsewhere."""
        return F.attention_bias(F.causal_mask(sz, sz), dtype)
