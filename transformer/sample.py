"""Sampling from a trained run: load it, then print text as the model produces it.

`GPT.generate` returns the whole sequence at the end; a person watching a terminal wants each
character the moment it exists. `stream_tokens` hands out every token as it is drawn, from
`GPT.generate_tokens`, the loop `generate` itself runs (the same KV cache, cropping and
sampling, so the same tokens for the same generator — a test holds it to that).
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from transformer import checkpoint as ckpt
from transformer.gpt import GPT
from transformer.tokenizer import Tokenizer, load_tokenizer


def load_vocab(path: str | Path) -> Tokenizer:
    """The run's tokenizer, of either kind; CheckpointError if the file is missing or not a tokenizer."""
    try:
        return load_tokenizer(path)
    except FileNotFoundError:
        raise ckpt.CheckpointError(f"{path} does not exist") from None
    except OSError as e:
        raise ckpt.CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ckpt.CheckpointError(f"{path} is not a tokenizer file ({e})") from None


def load_run(run_dir: str | Path) -> tuple[GPT, Tokenizer]:
    """The model in `run_dir` (config.json + ckpt.safetensors), in eval mode, and its tokenizer.

    Every mismatch between the files (shapes, names, vocabulary size) is a CheckpointError.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ckpt.CheckpointError(f"no run in {run_dir}; train one with: minigrad-gpt train --out {run_dir}")
    config = ckpt.read_model_config(run_dir / ckpt.CONFIG_FILE)
    tokenizer = load_vocab(run_dir / ckpt.VOCAB_FILE)
    if tokenizer.vocab_size != config.vocab_size:
        raise ckpt.CheckpointError(
            f"{run_dir / ckpt.VOCAB_FILE} has {tokenizer.vocab_size} tokens, "
            f"but the model in {run_dir / ckpt.CONFIG_FILE} has vocab_size {config.vocab_size}"
        )
    # the checkpoint's header must have the config's shapes before the model is built
    expected = ckpt.gpt_state_shapes(config)
    arrays, _ = ckpt.load_arrays(run_dir / ckpt.CKPT_FILE, expected, f"the model in {run_dir / ckpt.CONFIG_FILE}")
    model = GPT(config, rng=np.random.default_rng(0))  # the weights are replaced by the checkpoint's
    model.load_state_dict(arrays, strict=True)
    return model.eval(), tokenizer


def stream_tokens(
    model: GPT,
    idx: np.ndarray,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
) -> Iterator[np.ndarray]:
    """Yield the next token ids (B,) of idx (B, T), max_new_tokens times, as `model.generate` draws them."""
    yield from model.generate_tokens(idx, max_new_tokens, temperature, top_k, top_p, rng)


def stream_text(
    model: GPT,
    tokenizer: Tokenizer,
    start: str,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
    file: TextIO | None = None,
) -> str:
    """Print `start`, then the text of each generated token as soon as it is drawn; return the whole text.

    A BPE token may end inside a multi-byte character: its bytes wait for the next token's, so
    what is printed is what `tokenizer.decode` gives for the whole sequence.
    """
    file = sys.stdout if file is None else file
    idx = tokenizer.encode(start)[None, :]  # (1, T)
    pieces = [start]
    print(start, end="", file=file, flush=True)
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for next_id in stream_tokens(model, idx, max_new_tokens, temperature, top_k, top_p, rng):
        pieces.append(utf8.decode(tokenizer.decode_bytes(next_id)))
        print(pieces[-1], end="", file=file, flush=True)
    pieces.append(utf8.decode(b"", final=True))
    print(pieces[-1], file=file, flush=True)
    return "".join(pieces)
