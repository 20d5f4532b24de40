"""Sampling from a trained run: load it, then print characters as the model produces them.

`GPT.generate` returns the whole sequence at the end; a person watching a terminal wants each
character the moment it exists. `stream_tokens` hands out every token as it is drawn, from
`GPT.generate_tokens`, the loop `generate` itself runs (the same KV cache, cropping and
sampling, so the same tokens for the same generator — a test holds it to that).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from transformer import checkpoint as ckpt
from transformer.gpt import GPT
from transformer.tokenizer import CharTokenizer


def load_vocab(path: str | Path) -> CharTokenizer:
    """The run's tokenizer; CheckpointError if the file is missing or not a vocabulary."""
    try:
        return CharTokenizer.load(path)
    except FileNotFoundError:
        raise ckpt.CheckpointError(f"{path} does not exist") from None
    except OSError as e:
        raise ckpt.CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ckpt.CheckpointError(f"{path} is not a vocabulary file ({e})") from None


def load_run(run_dir: str | Path) -> tuple[GPT, CharTokenizer]:
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
            f"{run_dir / ckpt.VOCAB_FILE} has {tokenizer.vocab_size} characters, "
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
    tokenizer: CharTokenizer,
    start: str,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
    file: TextIO | None = None,
) -> str:
    """Print `start`, then each generated character as soon as it is drawn; return the whole text."""
    file = sys.stdout if file is None else file
    idx = tokenizer.encode(start)[None, :]  # (1, T)
    pieces = [start]
    print(start, end="", file=file, flush=True)
    for next_id in stream_tokens(model, idx, max_new_tokens, temperature, top_k, top_p, rng):
        pieces.append(tokenizer.decode(next_id))
        print(pieces[-1], end="", file=file, flush=True)
    print(file=file, flush=True)
    return "".join(pieces)
