"""Tokenizers: text to integer ids and back, and the vocabulary file saved beside a run.

`CharTokenizer` gives every distinct character of the corpus one id. The vocabulary is the
corpus's characters in sorted order, so token ids do not depend on where a character first
appears, and the same corpus always gives the same ids (as nanoGPT's
shakespeare_char/prepare.py).

`BPETokenizer` is byte-level byte-pair encoding, as GPT-2 and GPT-4 tokenize: it starts from
the 256 byte values and learns merges of frequent adjacent pairs from a corpus, so common
words become single tokens and a context of `block_size` tokens covers several times as many
characters. Its merges follow minbpe's RegexTokenizer (the same split patterns, the same
merges in the same order, ties included). Training is defined by `learn_merges_by_recount`,
a loop to read first: count every adjacent pair, merge the most frequent, repeat.
`learn_merges` is its fast twin, tested equal: the same loop, with counts that are updated
where a merge changed the text instead of recounted everywhere.

Both are saved as JSON (`load_tokenizer` reads either), readable and safe to load: loading
runs no code.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import numpy as np
import regex

from transformer.atomic import atomic_write_text


class UnknownCharacterError(ValueError):
    """Text holds a character the vocabulary does not have."""


class TokenizerFiles:
    """Saving and loading for a tokenizer that has `to_json` and `from_json`: its own JSON file,
    and Hugging Face's files (transformer/hf_tokenizer.py)."""

    def save(self, path: str | os.PathLike) -> None:
        """Write `to_json()` to `path`, atomically (a reader never sees half a file)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """The tokenizer saved in `path`; OSError if it cannot be read, ValueError if it is not this kind."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> Self:
        """The tokenizer in a Hugging Face directory: for BPE, GPT-2's vocab.json + merges.txt or a
        tokenizer.json, encoding as transformers' tokenizer of those files does; for characters, the
        tokenizer.json `save_pretrained` wrote (a map from each character to its id)."""
        from transformer.hf_tokenizer import load_pretrained  # that module imports this one

        return load_pretrained(directory, cls)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write tokenizer.json and tokenizer_config.json, which transformers.AutoTokenizer loads."""
        from transformer.hf_tokenizer import save_pretrained

        save_pretrained(self, directory)


class CharTokenizer(TokenizerFiles):
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

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """ids (N,) -> the UTF-8 bytes of their text (the interface `BPETokenizer` has)."""
        return self.decode(ids).encode("utf-8")

    def chars_per_token(self) -> np.ndarray:
        """(vocab_size,) int64 ones: every token is one character."""
        return np.ones(self.vocab_size, dtype=np.int64)

    def to_json(self) -> str:
        return json.dumps({"type": "char", "chars": self.chars}, ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CharTokenizer:
        """The tokenizer `to_json` wrote; a ValueError says what is wrong with anything else."""
        obj = _json_object(text)
        if obj.get("type") != "char" or not isinstance(obj.get("chars"), list):
            raise ValueError('expected {"type": "char", "chars": [...]}')
        return cls(obj["chars"])

    def __eq__(self, other) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# ---------------------------------------------------------------- byte-level BPE

# The split patterns of OpenAI's tokenizers (tiktoken's openai_public.py): contractions, letter
# runs with one leading non-letter, numbers of up to three digits (GPT-4; GPT-2 any length),
# punctuation runs, newlines, and whitespace that leaves its last space to the next word.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
SPLIT_PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}

Pair = tuple[int, int]


class VocabularyTooLargeError(ValueError):
    """The text runs out of pairs to merge before the vocabulary reaches the size asked for."""


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """`ids` with every occurrence of `pair`, left to right, replaced by `new_id`.

    [1, 2, 3, 1, 2], (1, 2), 9 -> [9, 3, 9]; [1, 1, 1], (1, 1), 9 -> [9, 1].
    """
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def too_large(merges_made: int) -> VocabularyTooLargeError:
    """The error for a text that ran out of pairs after `merges_made` merges."""
    most = 256 + merges_made
    return VocabularyTooLargeError(
        f"the text supports at most {most} tokens: after {merges_made} merges "
        f"every chunk is a single token; ask for a vocabulary of at most {most}"
    )


def learn_merges_by_recount(chunks: Iterable[bytes], num_merges: int) -> list[Pair]:
    """BPE training as defined: count every adjacent pair, merge the most frequent, repeat.

    `chunks` are the text's pieces in text order; pairs never cross from one chunk into the
    next. The counts fill a dict in text order, so among equally frequent pairs `max` returns
    the pair seen first. Every merge recounts the whole text, which makes this the readable
    definition and a slow one: `learn_merges` finds the same merges by updating the counts.
    """
    words = [list(chunk) for chunk in chunks]  # each chunk's current token ids
    merges: list[Pair] = []
    while len(merges) < num_merges:
        counts: dict[Pair, int] = {}
        for ids in words:
            for pair in zip(ids, ids[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            raise too_large(len(merges))
        pair = max(counts, key=counts.get)  # the most frequent; of equals, the first seen
        words = [merge_pair(ids, pair, 256 + len(merges)) for ids in words]
        merges.append(pair)
    return merges


def learn_merges(chunks: Iterable[bytes], num_merges: int) -> list[Pair]:
    """The first `num_merges` BPE merges of `chunks`: those of `learn_merges_by_recount`, found fast.

    The loop is the definition's; only the counting differs (see PairCounts): a merge
    recounts the few chunks that hold its pair instead of the whole text.
    """
    counts = PairCounts(chunks)
    merges: list[Pair] = []
    while len(merges) < num_merges:
        pair = counts.most_frequent()
        if pair is None:
            raise too_large(len(merges))
        counts.merge(pair, 256 + len(merges))
        merges.append(pair)
    return merges


class PairCounts:
    """The adjacent-pair counts of a text's chunks, kept exact while merges rewrite the chunks.

    The pairs are counted once over the distinct chunks (a chunk that occurs f times counts f
    times), and each merge recounts only the chunks that hold its pair (`where[pair]`, kept
    exact), adjusting the totals by the difference. The largest count comes from a heap of
    (-count, pair) entries that is never searched: an entry whose count is no longer the
    pair's count is dropped when it surfaces.
    """

    def __init__(self, chunks: Iterable[bytes]):
        counted = Counter(chunks)  # insertion order: the distinct chunks in order of first appearance
        self.words = [list(chunk) for chunk in counted]  # words[w]: the current token ids of distinct chunk w
        self.freq = list(counted.values())
        self.count: dict[Pair, int] = defaultdict(int)  # pair -> occurrences in the whole text
        self.where: dict[Pair, set[int]] = defaultdict(set)  # pair -> the distinct chunks it occurs in now
        for w, ids in enumerate(self.words):
            for pair, n in Counter(zip(ids, ids[1:])).items():
                self.count[pair] += n * self.freq[w]
                self.where[pair].add(w)
        self.heap = [(-n, pair) for pair, n in self.count.items()]
        heapq.heapify(self.heap)

    def first_occurrence(self, pair: Pair) -> tuple[int, int]:
        """(chunk, position) of the pair's first occurrence in the text."""
        # distinct chunks are numbered in order of first appearance: the lowest-numbered one wins
        w = min(self.where[pair])
        ids = self.words[w]
        return w, next(i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == pair)

    def most_frequent(self) -> Pair | None:
        """The most frequent pair, of equals the one that occurs first in the text; None if no pair is left."""
        heap, count = self.heap, self.count
        while heap and count.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)  # stale: the pair's count changed since this entry was pushed
        if not heap:
            return None
        top = -heap[0][0]
        tied = set()
        while heap and -heap[0][0] == top:
            _, pair = heapq.heappop(heap)
            if count.get(pair, 0) == top:
                tied.add(pair)
        pair = min(tied, key=self.first_occurrence) if len(tied) > 1 else tied.pop()
        for other in tied - {pair}:
            heapq.heappush(heap, (-top, other))
        return pair

    def merge(self, pair: Pair, new_id: int) -> None:
        """Replace `pair` by `new_id` in every chunk that holds it, and bring the counts up to date."""
        changed = {}
        for w in self.where[pair].copy():
            before = Counter(zip(self.words[w], self.words[w][1:]))
            self.words[w] = merge_pair(self.words[w], pair, new_id)
            after = Counter(zip(self.words[w], self.words[w][1:]))
            for p in before.keys() | after.keys():
                delta = after[p] - before[p]
                if delta:
                    self.count[p] += delta * self.freq[w]
                    changed[p] = self.count[p]
                if p not in after:
                    self.where[p].discard(w)
                elif p not in before:
                    self.where[p].add(w)
        for p, n in changed.items():
            if n:
                heapq.heappush(self.heap, (-n, p))
            else:
                del self.count[p], self.where[p]


class BPETokenizer(TokenizerFiles):
    """Byte-level byte-pair encoding, as GPT-2 and GPT-4 tokenize: 256 byte tokens plus learned merges.

    Text is cut into chunks by a split pattern (words with their leading space, numbers,
    punctuation runs, whitespace); each chunk's UTF-8 bytes start as tokens 0..255, and merge i
    replaces the pair `merges[i]` by token 256 + i. Any string encodes (there is no unknown
    character, only unknown pairs), and `decode` gives it back exactly.

    >>> tok = BPETokenizer.train("low lower lowest", 258)
    >>> [tok.vocab[t] for t in range(256, tok.vocab_size)]
    [b'lo', b'low']
    >>> tok.encode("lowly").tolist(), tok.decode(tok.encode("lowly"))
    ([257, 108, 121], 'lowly')
    """

    def __init__(
        self,
        merges: Iterable[Pair],
        pattern: str | None = None,
        special_tokens: Iterable[str] = (),
        numbering: Iterable[int] | None = None,
    ):
        """`merges`: the pairs in order, merge i minting 256 + i. `pattern`: "gpt4" (None), "gpt2",
        or a regular expression (`regex` syntax). `special_tokens`: strings that always encode as
        one token each, numbered after the merges. `numbering`: the ids the tokens have outside
        (token t, in the order above, is id numbering[t] to encode and decode), for vocabularies
        numbered otherwise, as GPT-2's, whose first ids are the byte tokens in another order;
        `vocab` and `merges` keep the order above."""
        self.merges: list[Pair] = []
        self.vocab: list[bytes] = [bytes([b]) for b in range(256)]  # token id -> its bytes
        for i, pair in enumerate(merges):
            if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(type(t) is int for t in pair)):
                raise ValueError(f"merge {i} must be a pair of token ids, got {pair!r}")
            if not all(0 <= t < 256 + i for t in pair):
                raise ValueError(f"merge {i} joins {tuple(pair)}, but only ids below {256 + i} exist before it")
            self.merges.append(tuple(pair))
            self.vocab.append(self.vocab[pair[0]] + self.vocab[pair[1]])
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        if len(self.ranks) != len(self.merges):
            raise ValueError("the same pair is merged twice")

        self.pattern = SPLIT_PATTERNS.get("gpt4" if pattern is None else pattern, pattern)
        if not isinstance(self.pattern, str) or not self.pattern:
            raise ValueError(f"pattern must be 'gpt2', 'gpt4' or a regular expression, got {pattern!r}")
        try:
            self.compiled_pattern = regex.compile(self.pattern)
        except regex.error as e:
            raise ValueError(f"the split pattern is not a regular expression ({e})") from None

        self.special_tokens = list(special_tokens)
        if any(not isinstance(s, str) or not s for s in self.special_tokens):
            raise ValueError("special tokens must be non-empty strings")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError("a special token is listed twice")
        self.special_ids = {s: len(self.vocab) + i for i, s in enumerate(self.special_tokens)}
        self.vocab += [s.encode("utf-8") for s in self.special_tokens]
        # longest first, so a special token that contains another wins
        longest_first = sorted(self.special_tokens, key=len, reverse=True)
        self.special_pattern = regex.compile("|".join(map(regex.escape, longest_first))) if longest_first else None

        self.numbering = None if numbering is None else np.array(list(numbering), dtype=np.int64)  # ours -> outside
        if self.numbering is not None and sorted(self.numbering.tolist()) != list(range(len(self.vocab))):
            raise ValueError(
                f"numbering must give each of the {len(self.vocab)} tokens one id in 0..{len(self.vocab) - 1}"
            )
        self.own_ids = None if numbering is None else np.argsort(self.numbering)  # outside -> ours

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str | None = None) -> BPETokenizer:
        """Learn vocab_size - 256 merges from `text` (see `learn_merges`).

        ValueError if vocab_size is below 256, and VocabularyTooLargeError if the text runs out of
        pairs first.
        """
        if type(vocab_size) is not int or vocab_size < 256:
            raise ValueError(f"vocab_size must be an integer >= 256 (the byte tokens), got {vocab_size!r}")
        tokenizer = cls([], pattern)
        chunks = (chunk.encode("utf-8") for chunk in tokenizer.split(text))
        return cls(learn_merges(chunks, vocab_size - 256), tokenizer.pattern)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, text: str) -> list[str]:
        """The chunks of `text`, in order; merges never cross from one chunk into the next.

        UnknownCharacterError if `text` holds something UTF-8 cannot encode (a lone surrogate), and
        ValueError if the pattern skips part of the text (a custom pattern can).
        """
        if not isinstance(text, str):
            raise TypeError(f"expected a str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise UnknownCharacterError(
                f"{text[e.start]!r} (position {e.start}) is a lone surrogate, which UTF-8 cannot encode; "
                "pass text decoded from valid UTF-8"
            ) from None
        chunks = self.compiled_pattern.findall(text)
        if sum(map(len, chunks)) != len(text):
            raise ValueError("the split pattern skips characters of the text, so encoding would lose them")
        return chunks

    def encode_chunk(self, chunk: bytes) -> list[int]:
        """One chunk's bytes -> its tokens: apply the lowest-ranked merge present, again and again."""
        ids = list(chunk)
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            ids = merge_pair(ids, pair, 256 + self.ranks[pair])
        return ids

    def encode(self, text: str) -> np.ndarray:
        """text -> token ids (N,) int64. Special tokens in the text become their own ids."""
        pieces = self.special_pattern.split(text) if self.special_pattern else [text]
        specials = self.special_pattern.findall(text) if self.special_pattern else []
        ids: list[int] = []
        known: dict[str, list[int]] = {}  # a text repeats its words: encode each distinct chunk once
        for i, piece in enumerate(pieces):
            for chunk in self.split(piece):
                if chunk not in known:
                    known[chunk] = self.encode_chunk(chunk.encode("utf-8"))
                ids += known[chunk]
            if i < len(specials):
                ids.append(self.special_ids[specials[i]])
        ids = np.array(ids, dtype=np.int64)
        return ids if self.numbering is None else self.numbering[ids]

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """ids (N,) -> the bytes they stand for (a piece may end inside a character)."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {ids.min()}..{ids.max()}")
        ids = ids if self.own_ids is None else self.own_ids[ids.astype(np.int64)]
        return b"".join(self.vocab[i] for i in ids.tolist())

    def decode(self, ids: Iterable[int]) -> str:
        """ids (N,) -> text. Bytes that are not valid UTF-8 (ids that split a character) become U+FFFD,
        as bytes.decode(errors="replace") does."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def chars_per_token(self) -> np.ndarray:
        """(vocab_size,) int64: how many characters each token begins. A character is counted in
        the token that holds its first byte, so a text's tokens sum to its length."""
        counts = np.array([sum((b & 0xC0) != 0x80 for b in token) for token in self.vocab], dtype=np.int64)
        return counts if self.own_ids is None else counts[self.own_ids]

    def to_json(self) -> str:
        obj = {
            "type": "bpe",
            "pattern": self.pattern,
            "merges": [list(pair) for pair in self.merges],
            "special_tokens": self.special_tokens,
            **({} if self.numbering is None else {"numbering": self.numbering.tolist()}),
        }
        return json.dumps(obj, ensure_ascii=False, indent=None) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BPETokenizer:
        """The tokenizer `to_json` wrote; a ValueError says what is wrong with anything else."""
        obj = _json_object(text)
        well_formed = isinstance(obj.get("merges"), list) and isinstance(obj.get("pattern"), str)
        if obj.get("type") != "bpe" or not well_formed:
            raise ValueError('expected {"type": "bpe", "pattern": "...", "merges": [[a, b], ...]}')
        return cls(obj["merges"], obj["pattern"], obj.get("special_tokens", []), obj.get("numbering"))

    def __eq__(self, other) -> bool:
        if not isinstance(other, BPETokenizer):
            return False
        numbering, other_numbering = (None if t.numbering is None else t.numbering.tolist() for t in (self, other))
        return (self.merges, self.pattern, self.special_tokens, numbering) == (
            other.merges,
            other.pattern,
            other.special_tokens,
            other_numbering,
        )

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


# ---------------------------------------------------------------- files


def _json_object(text: str) -> dict:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


Tokenizer = CharTokenizer | BPETokenizer
TOKENIZERS = {"char": CharTokenizer, "bpe": BPETokenizer}


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """The tokenizer saved in `path`, of whichever kind its "type" names.

    FileNotFoundError (or another OSError) if it cannot be read; ValueError if it is not a tokenizer file.
    """
    text = Path(path).read_text(encoding="utf-8")
    kind = _json_object(text).get("type")
    if kind not in TOKENIZERS:
        raise ValueError(f'expected "type" to be one of {sorted(TOKENIZERS)}, got {kind!r}')
    return TOKENIZERS[kind].from_json(text)
