"""Co-attention between two streams: ViLBERT (Lu et al., 2019).

ViLBERT reads an image and a sentence with two transformers side by side, one per modality,
and lets them talk through co-attention layers. In a co-attention layer each stream asks its
questions of the other: the image's queries attend to the words' keys and values, and the
words' queries attend to the image's:

    visual' = visual + MHA(Q = visual, K = V = text)       image regions gather from words
    text'   = text   + MHA(Q = text,   K = V = visual)     words gather from image regions

each followed by its own feed-forward network. Both directions read the streams as they were
before the layer, so neither stream is privileged. Between co-attention layers each stream has
ordinary self-attention layers of its own (a TransformerEncoderLayer), so what a word learned
from the image spreads to the other words, and likewise for regions.

The output is read as ViLBERT's alignment prediction: the image's summary token <IMG> and the
sentence's [CLS] token are multiplied elementwise and a linear layer says whether the two match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import minigrad as mg
from minigrad import kernels
from minigrad.nn import Embedding, LayerNorm, Linear, Module, ModuleList, Parameter
from minigrad.tensor import Tensor
from transformer.attention import MultiHeadAttention
from transformer.blocks import FeedForward, TransformerEncoderLayer
from transformer.positional import LearnedPositionalEmbedding


class CoAttentionLayer(Module):
    """ViLBERT's Co-TRM, pre-norm: cross-attention both ways, then a feed-forward per stream.

    visual (B, Nv, E), text (B, Nt, E) -> (visual (B, Nv, E), text (B, Nt, E), weights).
    text_padding_mask (B, Nt) is True at padded words. weights is None unless need_weights:
    then (image → text (B, Nv, Nt), text → image (B, Nt, Nv)), averaged over heads.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.0):
        super().__init__()
        self.visual_norm1 = LayerNorm(d_model)
        self.text_norm1 = LayerNorm(d_model)
        self.visual_attn = MultiHeadAttention(d_model, nhead, dropout=dropout)  # visual queries, text keys
        self.text_attn = MultiHeadAttention(d_model, nhead, dropout=dropout)  # text queries, visual keys
        self.visual_norm2 = LayerNorm(d_model)
        self.text_norm2 = LayerNorm(d_model)
        self.visual_ffn = FeedForward(d_model, dim_feedforward, dropout, activation="gelu")
        self.text_ffn = FeedForward(d_model, dim_feedforward, dropout, activation="gelu")

    def forward(
        self, visual: Tensor, text: Tensor, text_padding_mask=None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """visual (B, Nv, E), text (B, Nt, E) -> the two streams updated, and the weights if asked."""
        v, t = self.visual_norm1(visual), self.text_norm1(text)  # (B, Nv, E), (B, Nt, E)
        from_text, image_to_text = self.visual_attn(
            v, t, t, key_padding_mask=text_padding_mask, need_weights=need_weights
        )  # (B, Nv, E), (B, Nv, Nt)
        from_image, text_to_image = self.text_attn(t, v, v, need_weights=need_weights)  # (B, Nt, E), (B, Nt, Nv)
        visual = visual + from_text  # (B, Nv, E)
        text = text + from_image  # (B, Nt, E)
        visual = visual + self.visual_ffn(self.visual_norm2(visual))  # (B, Nv, E)
        text = text + self.text_ffn(self.text_norm2(text))  # (B, Nt, E)
        return visual, text, (image_to_text, text_to_image) if need_weights else None


@dataclass
class CoAttentionConfig:
    """Sizes of a two-stream model over image regions and word tokens."""

    region_dim: int = 64  # features per image region (here: the 8×8 pixels of one digit)
    max_regions: int = 4
    vocab_size: int = 10  # word ids 0..vocab_size-1; the id vocab_size is [CLS]
    max_words: int = 4
    n_embd: int = 32
    n_head: int = 2
    n_layer: int = 2  # rounds of (co-attention, then self-attention in each stream)
    mlp_ratio: int = 2
    dropout: float = 0.0


class CoAttentionTransformer(Module):
    """Does this caption describe this image? regions (B, Nv, region_dim), words (B, Nt) ids ->
    (logits (B, 2): [no match, match], and the loss when targets (B,) in {0, 1} are given).

    The visual stream is <IMG> (a learned token) followed by the linearly embedded regions;
    the text stream is [CLS] followed by the word embeddings; each with learned positions.
    """

    def __init__(self, config: CoAttentionConfig):
        super().__init__()
        self.config = c = config
        ffn = c.mlp_ratio * c.n_embd
        self.region_embed = Linear(c.region_dim, c.n_embd)
        self.img_token = Parameter(0.02 * mg.default_rng().standard_normal((1, 1, c.n_embd)))
        self.visual_pos = LearnedPositionalEmbedding(c.max_regions + 1, c.n_embd)
        self.word_embed = Embedding(c.vocab_size + 1, c.n_embd)  # the last row is [CLS]
        self.text_pos = LearnedPositionalEmbedding(c.max_words + 1, c.n_embd)
        self.co_layers = ModuleList(CoAttentionLayer(c.n_embd, c.n_head, ffn, c.dropout) for _ in range(c.n_layer))

        def self_attention_layers() -> ModuleList:
            return ModuleList(
                TransformerEncoderLayer(c.n_embd, c.n_head, ffn, c.dropout, activation="gelu", norm_first=True)
                for _ in range(c.n_layer)
            )

        self.visual_layers = self_attention_layers()
        self.text_layers = self_attention_layers()
        self.visual_norm = LayerNorm(c.n_embd)
        self.text_norm = LayerNorm(c.n_embd)
        self.head = Linear(c.n_embd, 2)

    def embed(self, regions, words) -> tuple[Tensor, Tensor]:
        """regions (B, Nv, region_dim), words (B, Nt) -> streams (B, 1 + Nv, E), (B, 1 + Nt, E)."""
        regions = regions if isinstance(regions, Tensor) else Tensor(regions)
        words = np.asarray(words)
        B = words.shape[0]
        visual = self.region_embed(regions)  # (B, Nv, E)
        img = self.img_token.broadcast_to(B, 1, self.config.n_embd)  # (B, 1, E)
        visual = self.visual_pos(mg.concatenate([img, visual], axis=1))  # (B, 1 + Nv, E)
        cls = np.full((B, 1), self.config.vocab_size)  # (B, 1) the [CLS] id
        text = self.text_pos(self.word_embed(np.concatenate([cls, words], axis=1)))  # (B, 1 + Nt, E)
        return visual, text

    def streams(self, regions, words, need_weights: bool = False):
        """The two streams after every layer, and each co-attention layer's weights if asked.

        -> (visual (B, 1 + Nv, E), text (B, 1 + Nt, E), [per layer: (image → text, text → image)]).
        """
        visual, text = self.embed(regions, words)
        weights = []
        for co, visual_layer, text_layer in zip(self.co_layers, self.visual_layers, self.text_layers):
            visual, text, w = co(visual, text, need_weights=need_weights)  # (B, 1 + Nv, E), (B, 1 + Nt, E)
            visual, text = visual_layer(visual), text_layer(text)  # each stream on its own
            weights.append(w)
        return self.visual_norm(visual), self.text_norm(text), weights

    def forward(self, regions, words, targets=None) -> tuple[Tensor, Tensor | None]:
        """regions (B, Nv, region_dim), words (B, Nt) ids, targets (B,) or None -> (logits (B, 2), loss or None)."""
        visual, text, _ = self.streams(regions, words)
        logits = self.head(visual[:, 0] * text[:, 0])  # (B, 2) from <IMG> ⊙ [CLS]
        loss = None if targets is None else kernels.cross_entropy(logits, np.asarray(targets))
        return logits, loss

    def cross_attention_maps(self, regions, words) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per co-attention layer: (image → text (B, 1 + Nv, 1 + Nt), text → image (B, 1 + Nt, 1 + Nv))."""
        with mg.no_grad():
            _, _, weights = self.streams(regions, words, need_weights=True)
        return [(image_to_text.data, text_to_image.data) for image_to_text, text_to_image in weights]
