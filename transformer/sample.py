"""Sampling from a trained GPT, fast: a KV cache, and the text printed as it is drawn.

nanoGPT's loop runs the model over the whole context again for every new token. Here
`generate_tokens` draws the same tokens (the same cropping and sampling, so the same tokens
for the same generator — a test holds it to that), but keeps every layer's keys and values
in a `KVCache`, which `GPT.forward` accepts: as long as the context fits the block, a step
feeds only the new token through the model's own blocks. Past the block size the window
slides, every token moves to a new position, and the whole window is recomputed, as in
nanoGPT (the last block for the last position only: `logits_to_keep=1`); those steps run the
same ops on windows of one shape, so they are recorded once and replayed without the Python
around them (minigrad/replay.py), to the same values. It is the one
generation loop: `GPT.generate` and `generate` below both run it. `sample` draws each token
from the logits (temperature, top-k, top-p, by `filter_logits`); `stream_text` prints the
text the moment it exists.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterator
from typing import TextIO

import numpy as np

from minigrad import concatenate, default_rng, no_grad
from minigrad.ops import softmax_array
from minigrad.replay import Replay
from minigrad.tensor import Tensor
from transformer.checkpoint import load_run as load_run  # the run loader, where sampling scripts look for it
from transformer.gpt import GPT, token_ids
from transformer.tokenizer import Tokenizer


class LayerKVCache:
    """The keys and values one attention layer has computed so far, each (B, nh, T_seen, hs).

    A new token's query must meet the keys and values of every earlier position. They do not
    change once computed (causal attention: position t never looks ahead), so they are kept
    and a step costs one position instead of the whole context.
    """

    def __init__(self):
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new positions' k, v (B, nh, T, hs); return all of them (B, nh, T_seen + T, hs)."""
        if self.k is not None:
            k = concatenate([self.k, k], axis=2)  # (B, nh, T_seen + T, hs)
            v = concatenate([self.v, v], axis=2)  # (B, nh, T_seen + T, hs)
        self.k, self.v = k, v
        return k, v


class KVCache:
    """One `LayerKVCache` per block; its length is the number of positions already seen."""

    def __init__(self, n_layer: int):
        self.layers = [LayerKVCache() for _ in range(n_layer)]

    def __len__(self) -> int:
        return len(self.layers[0])


def cached_logits(model: GPT, idx, cache: KVCache, logits_to_keep: int = 0) -> Tensor:
    """The GPT's logits (B, T, V) for the new tokens idx (B, T) after the positions `cache` has seen
    (only the last `logits_to_keep` of them when that is > 0, as in `GPT.forward`).

    The model's own forward with the cache: each block's attention meets the cached keys and
    values of the earlier positions, and the cache learns the new ones.
    """
    idx = token_ids(idx, model.config.vocab_size)
    if len(cache) + idx.shape[1] > model.config.block_size:
        raise ValueError(
            f"KV cache: {len(cache) + idx.shape[1]} positions do not fit the block size {model.config.block_size}"
        )
    logits, _ = model(idx, kv_cache=cache, logits_to_keep=logits_to_keep)  # (B, T or logits_to_keep, V)
    return logits


def filter_logits(logits: np.ndarray, top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """A copy of logits (B, V) with -inf outside the allowed support.

    top_k keeps the k largest logits of each row (ties with the k-th are kept, as nanoGPT's
    `logits < v[:, [-1]]`). top_p keeps the smallest set of most likely tokens whose
    probability reaches p: a token stays if the tokens more likely than it hold less than p.
    top_p=1.0 keeps every token, as Hugging Face's TopPLogitsWarper (the mass before a tail
    token can round to 1.0, which would drop it).
    """
    logits = np.array(logits, dtype=np.float64)
    V = logits.shape[-1]
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        kth = -np.sort(-logits, axis=-1)[:, min(top_k, V) - 1 : min(top_k, V)]  # (B, 1)
        logits[logits < kth] = -np.inf
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    if top_p is not None and top_p < 1.0:  # 1.0 keeps every token
        order = np.argsort(-logits, axis=-1, kind="stable")  # (B, V) most likely first
        probs, _ = softmax_array(np.take_along_axis(logits, order, axis=-1))  # (B, V) most likely first
        mass_before = np.cumsum(probs, axis=-1) - probs  # (B, V) probability of the more likely tokens
        drop_sorted = mass_before >= top_p  # the first token always stays: its mass_before is 0
        drop = np.empty_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)  # back to vocabulary order
        logits[drop] = -np.inf
    return logits


def sample(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One token id per row of logits (B, V) -> (B,) int64; temperature 0 is greedy (argmax)."""
    if not temperature >= 0:  # NaN too
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    rng = default_rng() if rng is None else rng
    # the largest logit becomes 0 before the division, so a tiny temperature sends the others to
    # -inf (probability 0), never the largest to +inf (inf - inf = NaN in the softmax)
    scaled = np.subtract(logits, np.max(logits, axis=-1, keepdims=True), dtype=np.float64)  # (B, V), a new array
    with np.errstate(over="ignore"):  # -x / tiny is -inf, a probability of 0
        scaled /= temperature
    if top_k is not None or top_p is not None:
        scaled = filter_logits(scaled, top_k, top_p)  # -inf outside the support; the largest stays
    probs, _ = softmax_array(scaled, shift=0.0)  # (B, V), 0 outside the support; the largest is 0 already
    cdf = np.cumsum(probs, axis=-1)  # (B, V)
    # inverse-CDF sampling: the first token whose cumulative probability exceeds u ~ U[0, total)
    u = rng.random((cdf.shape[0], 1)) * cdf[:, -1:]  # (B, 1)
    return np.minimum((cdf <= u).sum(axis=-1), cdf.shape[-1] - 1).astype(np.int64)


def generate_tokens(model: GPT, idx, max_new_tokens: int, **sampling) -> Iterator[np.ndarray]:
    """`model.generate`'s loop, one step at a time: yield each step's token ids (B,).

    `sampling` is what `sample` below takes (temperature, top_k, top_p, rng); one
    generator serves every step, minigrad's default one when rng is None. Between steps the
    model is in eval mode and gradients are recorded as they were before, so the caller may do
    anything with the tokens; the model's mode comes back when the loop ends or is abandoned.
    """
    idx = token_ids(idx, model.config.vocab_size)
    sampling["rng"] = default_rng() if sampling.get("rng") is None else sampling["rng"]
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        cache = KVCache(model.config.n_layer)
        # past the block every step is the same ops on a new window: recorded once, then replayed
        window_logits = Replay(lambda window: model(window, logits_to_keep=1)[0])
        for _ in range(max_new_tokens):
            with no_grad():
                if idx.shape[1] <= block_size:
                    logits = cached_logits(model, idx[:, len(cache) :], cache, logits_to_keep=1)  # (B, 1, V)
                else:  # the window slides: every position changes, the cache no longer holds
                    logits = window_logits(idx[:, -block_size:])  # (B, 1, V)
                next_ids = sample(logits.data[:, -1, :], **sampling)  # (B,)
            idx = np.concatenate([idx, next_ids[:, None]], axis=1)  # (B, T + 1)
            yield next_ids
    finally:
        model.train(was_training)


# `generate(model, idx, max_new_tokens, ...)` is `model.generate(idx, max_new_tokens, ...)`, which runs the loop above
generate = GPT.generate


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
    steps = generate_tokens(model, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, rng=rng)
    for next_id in steps:
        pieces.append(utf8.decode(tokenizer.decode_bytes(next_id)))
        print(pieces[-1], end="", file=file, flush=True)
    pieces.append(utf8.decode(b"", final=True))
    print(pieces[-1], file=file, flush=True)
    return "".join(pieces)
