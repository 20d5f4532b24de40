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

import copy

import numpy as np

import minigrad.functional as F
from minigrad.nn import LayerNorm, Module, ModuleList
from minigrad.tensor import Tensor
from transformer.attention import xavier_uniform_
from transformer.blocks import TransformerDecoderLayer, TransformerEncoderLayer


def clones(layer: Module, num_layers: int) -> ModuleList:
    """num_layers deep copies of layer, as torch.nn.TransformerEncoder and TransformerDecoder stack them."""
    if not isinstance(layer, Module) or isinstance(num_layers, bool) or not isinstance(num_layers, int):
        raise TypeError(
            "a stack takes one layer and the number of layers, as torch.nn's (layers are copies of the one), "
            f"got {type(layer).__name__} and {num_layers!r}"
        )
    return ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])


class TransformerEncoder(Module):
    """num_layers copies of encoder_layer, then an optional final norm: src (B, S, E) -> memory (B, S, E).

    torch.nn.TransformerEncoder's arguments, and its parameter names (layers.{i}.*, norm.*);
    enable_nested_tensor and mask_check switch torch's fast path, which gives the same values,
    so they change nothing here.
    """

    def __init__(
        self,
        encoder_layer: TransformerEncoderLayer,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ):
        super().__init__()
        self.layers = clones(encoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def forward(self, src: Tensor, mask=None, src_key_padding_mask=None, is_causal: bool | None = None) -> Tensor:
        """The masks as TransformerEncoderLayer takes them; is_causal is torch's hint that mask is causal.

        torch's is_causal=None looks whether mask is the causal mask: where it is, the hint and the
        mask give the same attention, so None computes what False does.
        """
        x = src  # (B, S, E)
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x  # (B, S, E)


class TransformerDecoder(Module):
    """num_layers copies of decoder_layer, then an optional final norm: tgt (B, T, E), memory (B, S, E) -> (B, T, E).

    torch.nn.TransformerDecoder's arguments and parameter names (layers.{i}.*, norm.*).
    """

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = clones(decoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """The masks and hints as TransformerDecoderLayer takes them; tgt_is_causal=None as False
        (see TransformerEncoder.forward)."""
        x = tgt  # (B, T, E)
        for layer in self.layers:
            x = layer(
                x,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=bool(tgt_is_causal),
                memory_is_causal=memory_is_causal,
            )  # (B, T, E)
        return self.norm(x) if self.norm is not None else x  # (B, T, E)


class Transformer(Module):
    """Encoder-decoder Transformer with torch.nn.Transformer's arguments, parameters and masks.

    src (B, S, d_model), tgt (B, T, d_model) -> (B, T, d_model): batch first by default (torch's
    default is batch_first=False, sequence first, which batch_first=False gives here too), and
    unbatched (S, d_model), (T, d_model) -> (T, d_model). dropout defaults to 0. Masks follow
    PyTorch: a boolean mask is True where attention is NOT allowed, a float mask is added to
    the scores; src_mask (S, S), tgt_mask (T, T), memory_mask (T, S); the key padding masks are
    (B, S), (B, T) and (B, S), True at padded positions. For the decoder to see only earlier
    targets, pass tgt_mask=Transformer.generate_square_subsequent_mask(T); the *_is_causal
    arguments are torch's hints that the mask beside them is causal. custom_encoder and
    custom_decoder replace the stacks, as in torch.
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
        custom_encoder: Module | None = None,
        custom_decoder: Module | None = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        for name, custom in (("custom_encoder", custom_encoder), ("custom_decoder", custom_decoder)):
            if custom is not None and not isinstance(custom, Module):
                raise TypeError(
                    f"Transformer: {name} (torch's 8th and 9th arguments) must be a Module or None, got {custom!r}; "
                    "pass norm_first= and the other options by name"
                )
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        sizes = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first, bias)
        if custom_encoder is None:
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
            custom_encoder = TransformerEncoder(TransformerEncoderLayer(*sizes), num_encoder_layers, norm)
        if custom_decoder is None:
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
            custom_decoder = TransformerDecoder(TransformerDecoderLayer(*sizes), num_decoder_layers, norm)
        self.encoder, self.decoder = custom_encoder, custom_decoder
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
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        batch_axis = 0 if self.batch_first else 1
        if (
            src.ndim not in (2, 3)
            or tgt.ndim != src.ndim
            or (src.ndim == 3 and src.shape[batch_axis] != tgt.shape[batch_axis])
        ):
            raise ValueError(
                f"src and tgt must be batched with one batch size (batch_first={self.batch_first}) or both "
                f"unbatched, got {src.shape} and {tgt.shape}"
            )
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"src and tgt must have d_model={self.d_model} features, got {src.shape} and {tgt.shape}")
        memory = self.encoder(
            src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal
        )  # (B, S, E)
        return self.decoder(
            tgt,
            memory,
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal,
            memory_is_causal=memory_is_causal,
        )  # (B, T, E)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, dtype=np.float32) -> np.ndarray:
        """The causal mask (sz, sz) as PyTorch's: -inf above the diagonal (the future), 0 elsewhere."""
        return F.attention_bias(F.causal_mask(sz, sz), dtype)
