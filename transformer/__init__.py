"""transformer: the Transformer layer stack and a character-level GPT, built on minigrad alone."""

from transformer.encoder_decoder import Transformer
from transformer.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "Transformer"]
