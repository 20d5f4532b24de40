"""The training text: finding it, reading it, splitting it, and cutting it into batches.

Tiny Shakespeare (Karpathy's char-rnn corpus, 1,115,394 characters) is the default. It is
looked for, in order:

1. the file given as `--data PATH` (then nothing else is tried);
2. `$MINIGRAD_DATA/tinyshakespeare.txt` (when the variable is set, the file must be there);
3. the user cache, `~/.cache/minigrad/tinyshakespeare.txt` (`$XDG_CACHE_HOME/minigrad/` when set);
4. a download from its canonical public address, checked against its sha256 and cached in (3).

Without a network the trainer still runs: it falls back to a text every Python ships with,
the standard library's `pydoc_data` topics (the help texts of the language's statements and
operators, about 465,000 characters), and says so in one line.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

import numpy as np

from transformer.atomic import atomic_write_bytes

TINY_SHAKESPEARE_NAME = "tinyshakespeare.txt"
TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TRAIN_FRACTION = 0.9  # nanoGPT's split: the first 90% trains, the last 10% validates


class CorpusError(ValueError):
    """The corpus is missing, unreadable, empty, not UTF-8, or too short."""


@dataclass
class Corpus:
    """The text to train on and where it came from (a path, or a description of the fallback)."""

    text: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def read_corpus(path: str | os.PathLike) -> Corpus:
    """The UTF-8 text in `path`; CorpusError if it is missing, unreadable, empty or not UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"corpus {path} does not exist") from None
    except IsADirectoryError:
        raise CorpusError(f"corpus {path} is a directory, not a text file") from None
    except OSError as e:
        raise CorpusError(f"cannot read corpus {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"corpus {path} is not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); convert it to UTF-8"
        ) from None
    if not text:
        raise CorpusError(f"corpus {path} is empty")
    return Corpus(text, str(path))


def cache_dir() -> Path:
    """Where downloads are kept: $XDG_CACHE_HOME/minigrad, by default ~/.cache/minigrad."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minigrad"


def download(url: str, timeout: float = 30.0) -> bytes:
    """The bytes at `url` (OSError, e.g. urllib.error.URLError, when there is no network)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fallback_corpus() -> Corpus:
    """The standard library's pydoc topics, every entry in key order: English prose and Python."""
    from pydoc_data.topics import topics

    return Corpus("".join(topics[key] for key in sorted(topics)), "the Python documentation's pydoc_data topics")


def resolve_corpus(
    data: str | os.PathLike | None = None,
    fetch: Callable[[str], bytes] = download,
    warn: Callable[[str], None] = print,
) -> Corpus:
    """The corpus to train on, found as the module docstring describes.

    `fetch(url) -> bytes` downloads (tests pass a fake); `warn` receives the one line said
    when the download fails and the fallback text is used.
    """
    if data is not None:
        return read_corpus(data)
    if os.environ.get("MINIGRAD_DATA"):  # asked for by name: never quietly another text
        candidate = Path(os.environ["MINIGRAD_DATA"]) / TINY_SHAKESPEARE_NAME
        if not candidate.is_file():
            raise CorpusError(
                f"MINIGRAD_DATA is {os.environ['MINIGRAD_DATA']}, which holds no {TINY_SHAKESPEARE_NAME}; "
                "point it at the folder that does, or unset it"
            )
        return read_corpus(candidate)
    cached = cache_dir() / TINY_SHAKESPEARE_NAME
    if cached.is_file() and sha256_of(cached.read_bytes()) == TINY_SHAKESPEARE_SHA256:
        return read_corpus(cached)
    try:
        payload = fetch(TINY_SHAKESPEARE_URL)
    except (OSError, HTTPException) as e:  # URLError and timeouts are OSErrors
        reason = f"no network ({getattr(e, 'reason', None) or e})"
    else:
        if sha256_of(payload) == TINY_SHAKESPEARE_SHA256:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(cached, payload)
            except OSError:
                return Corpus(payload.decode("utf-8"), TINY_SHAKESPEARE_URL)  # usable, just not cached
            return read_corpus(cached)
        reason = f"the download's sha256 is {sha256_of(payload)[:12]}..., expected {TINY_SHAKESPEARE_SHA256[:12]}..."
    corpus = fallback_corpus()
    warn(
        f"could not get Tiny Shakespeare: {reason}; training on {corpus.source} instead "
        f"({len(corpus.text):,} characters). Pass --data PATH to use another text."
    )
    return corpus


def split_train_val(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first 90% of a sequence (token ids (N,), or a text) for training, the last 10% for validation."""
    n = int(len(ids) * TRAIN_FRACTION)
    return ids[:n], ids[n:]


def check_long_enough(train: np.ndarray, val: np.ndarray, block_size: int, unit: str = "characters") -> None:
    """CorpusError unless both splits hold one window of block_size + 1 tokens (inputs and the next token).

    `unit` names the tokens in the message: "characters", or "tokens" for BPE.
    """
    for name, split in (("training", train), ("validation", val)):
        if len(split) < block_size + 1:
            total = len(train) + len(val)
            raise CorpusError(
                f"the corpus is too short: {total} {unit} leave {len(split)} for {name}, "
                f"fewer than block_size + 1 = {block_size + 1}; use a longer text or a smaller --block-size"
            )


def get_batch(
    data: np.ndarray, batch_size: int, block_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """batch_size random windows of `data` (N,) -> inputs x (B, T) and targets y (B, T), int64.

    y is x shifted by one: at every position the model learns to predict the next character.
    Window starts are uniform over [0, N - T), as nanoGPT's get_batch.
    """
    starts = rng.integers(0, len(data) - block_size, size=batch_size)  # (B,)
    rows = starts[:, None] + np.arange(block_size)  # (B, T) positions of each window
    return data[rows].astype(np.int64), data[rows + 1].astype(np.int64)
