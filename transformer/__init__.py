"""transformer: the Transformer layer stack and a character-level GPT, built on minigrad alone.

`GPT`, `GPTConfig` and `Transformer` are imported when first asked for (PEP 562), so that the
modules that need no model (the tokenizer, the data, the run files) import none.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformer.encoder_decoder import Transformer
    from transformer.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "Transformer"]
_HOMES = {"GPT": "transformer.gpt", "GPTConfig": "transformer.gpt", "Transformer": "transformer.encoder_decoder"}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'transformer' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
