"""Vision Transformer: "An Image is Worth 16x16 Words" (Dosovitskiy et al., 2021).

A transformer reads sequences, so the image is made one: cut it into P×P patches, flatten
each patch, and project it linearly to a token of width E. Nothing else about the encoder
changes — it is the same pre-norm TransformerEncoderLayer a language model would use:

    z_0 = [x_class; x_p¹ E; x_p² E; ...; x_pᴺ E] + E_pos        patches as tokens (eq. 1)
    z'_l = z_{l-1} + MSA(LN(z_{l-1}))                             (eq. 2)
    z_l  = z'_l + MLP(LN(z'_l))                                   (eq. 3)
    y    = head(LN(z_L⁰))                                         read the class token (eq. 4)

x_class is a learned vector prepended to the patches (BERT's [CLS]): it carries no pixel of
its own, so what it gathers through attention is a summary of the whole image, and the
classifier reads that one token. The position embeddings E_pos are learned, one per token, as
GPT's: attention is blind to order, and this is how a patch knows where in the image it sits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import minigrad as mg
from minigrad import kernels
from minigrad.nn import Conv2d, LayerNorm, Linear, Module, ModuleList, Parameter
from minigrad.tensor import Tensor
from transformer.blocks import TransformerEncoderLayer
from transformer.positional import LearnedPositionalEmbedding


@dataclass
class ViTConfig:
    """The sizes of a Vision Transformer. The defaults fit scikit-learn's 8×8 digits."""

    image_size: int = 8  # height = width of the (square) input image
    patch_size: int = 2  # P: the image becomes (image_size / P)² patches
    in_channels: int = 1
    num_classes: int = 10
    n_embd: int = 64  # E, the token width
    n_layer: int = 2
    n_head: int = 4
    mlp_ratio: int = 2  # the feed-forward layer is mlp_ratio · E wide
    dropout: float = 0.0

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def patchify(images, patch_size: int) -> Tensor:
    """Cut images into non-overlapping square patches, each flattened to one vector.

    images (B, C, H, W) (an ndarray or a Tensor) -> (B, N, C·P·P) with N = (H/P)·(W/P) patches
    in reading order (left to right, then top to bottom). A linear layer on these vectors is
    exactly a convolution with kernel P and stride P, the way ViT implementations write it.
    """
    images = images if isinstance(images, Tensor) else Tensor(images)
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"image size {(H, W)} is not divisible by the patch size {P}")
    x = images.reshape(B, C, H // P, P, W // P, P)  # (B, C, rows, P, cols, P)
    x = x.transpose(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, P, P) patches side by side
    return x.reshape(B, (H // P) * (W // P), C * P * P)  # (B, N, C·P·P)


class VisionTransformer(Module):
    """images (B, C, H, W) -> class logits (B, num_classes), and the loss when targets are given.

    Parameters, named as in timm's ViT: patch_embed (Conv2d(C, E, kernel P, stride P): a linear
    map of each patch, weight (E, C, P, P) as timm's patch_embed.proj), cls_token (1, 1, E),
    pos_embed (a LearnedPositionalEmbedding over N + 1 tokens), blocks (pre-norm
    TransformerEncoderLayers with GELU), norm (the final LayerNorm), head (Linear(E, classes)).
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = c = config
        if c.image_size % c.patch_size:
            raise ValueError(f"image_size {c.image_size} is not divisible by patch_size {c.patch_size}")
        self.patch_embed = Conv2d(c.in_channels, c.n_embd, kernel_size=c.patch_size, stride=c.patch_size)
        self.cls_token = Parameter(0.02 * mg.default_rng().standard_normal((1, 1, c.n_embd)))
        self.pos_embed = LearnedPositionalEmbedding(c.num_patches + 1, c.n_embd)
        self.blocks = ModuleList(
            TransformerEncoderLayer(
                c.n_embd,
                c.n_head,
                dim_feedforward=c.mlp_ratio * c.n_embd,
                dropout=c.dropout,
                activation="gelu",
                norm_first=True,  # ViT is pre-norm, eq. 2 and 3
            )
            for _ in range(c.n_layer)
        )
        self.norm = LayerNorm(c.n_embd)
        self.head = Linear(c.n_embd, c.num_classes)

    def embed(self, images) -> Tensor:
        """images (B, C, H, W) -> the encoder's input tokens z_0 (B, 1 + N, E), class token first."""
        images = images if isinstance(images, Tensor) else Tensor(images)
        # one output pixel per patch = patchify, then a Linear(C·P·P, E) (docs/vision.md says why)
        tokens = self.patch_embed(images).flatten(2).swapaxes(1, 2)  # (B, E, H/P, W/P) -> (B, N, E)
        B, _, E = tokens.shape
        cls = self.cls_token.broadcast_to(B, 1, E)  # (B, 1, E) the same learned vector for every image
        return self.pos_embed(mg.concatenate([cls, tokens], axis=1))  # (B, 1 + N, E)

    def forward(self, images, targets=None) -> tuple[Tensor, Tensor | None]:
        """images (B, C, H, W), targets (B,) class ids or None -> (logits (B, classes), loss or None)."""
        x = self.embed(images)  # (B, 1 + N, E)
        for block in self.blocks:
            x = block(x)  # (B, 1 + N, E)
        logits = self.head(self.norm(x[:, 0]))  # (B, classes) from the class token alone
        loss = None if targets is None else kernels.cross_entropy(logits, np.asarray(targets))
        return logits, loss

    def attention_maps(self, images) -> np.ndarray:
        """Where the class token looks: the head-averaged weights of every layer.

        images (B, C, H, W) -> (B, n_layer, N) — layer l's attention from the class token to
        each patch (its weight on itself is left out), recomputed from each block's own
        self-attention on the same normalised input the block sees.
        """
        maps = []
        with mg.no_grad():
            x = self.embed(images)  # (B, 1 + N, E)
            for block in self.blocks:
                h = block.norm1(x)  # (B, 1 + N, E) the attention's input in a pre-norm block
                _, weights = block.self_attn(h, h, h, need_weights=True)  # (B, 1 + N, 1 + N)
                maps.append(weights.data[:, 0, 1:])  # (B, N) row of the class token, patch columns
                x = block(x)  # (B, 1 + N, E)
        return np.stack(maps, axis=1)  # (B, n_layer, N)
