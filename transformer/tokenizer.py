"""A character-level tokenizer: every distinct character of the corpus is one token.

The vocabulary is the corpus's characters in sorted order, so token ids do not depend on where
a character first appears, and the same corpus always gives the same ids (as nanoGPT's
shakespeare_char/prepare.py). It is saved beside a run as JSON: a list of characters, readable
and safe to load (loading runs no code).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from transformer.checkpoint import atomic_write_text


class UnknownCharacterError(ValueError):
    """Text holds a character the vocabulary does not have."""


class CharTokenizer:
    """Maps characters to ids 0..vocab_size-1 and back.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.chars, tok.encode("hole").tolist(), tok.decode([3, 1])
    (['e', 'h', 'l', 'o'], [1, 3, 2, 0], 'oh')
    """

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("every vocabulary entry must be a single character")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary lists a character twice")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The vocabulary of `text`: its distinct characters, sorted."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """text of length N -> ids (N,) int64. A character outside the vocabulary is an error naming it."""
        try:
            return np.fromiter((self.stoi[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError:
            unknown = list(dict.fromkeys(c for c in text if c not in self.stoi))  # in order of appearance
            shown = ", ".join(repr(c) for c in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
            first = next(i for i, c in enumerate(text) if c not in self.stoi)
            raise UnknownCharacterError(
                f"the vocabulary ({self.vocab_size} characters) has no {shown} "
                f"(first at position {first}); use only characters the model was trained on"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """ids (N,) -> text of length N."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {ids.min()}..{ids.max()}")
        return "".join(self.chars[i] for i in ids.tolist())

    def to_json(self) -> str:
        return json.dumps({"type": "char", "chars": self.chars}, ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CharTokenizer:
        """The tokenizer `to_json` wrote; a ValueError says what is wrong with anything else."""
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(obj, dict) or obj.get("type") != "char" or not isinstance(obj.get("chars"), list):
            raise ValueError('expected {"type": "char", "chars": [...]}')
        return cls(obj["chars"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON, atomically (a reader never sees half a file)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def __eq__(self, other) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
