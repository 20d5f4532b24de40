"""transformer: the Transformer layer stack and a character-level GPT, built on minigrad alone."""

from transformer.encoder_decoder import Transformer

__all__ = ["Transformer"]
