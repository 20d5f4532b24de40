"""The tokenizers in Hugging Face's files: GPT-2's vocab.json + merges.txt, and tokenizer.json.

GPT-2's files spell tokens as text, one character per byte: the 188 bytes that print as
themselves (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for themselves, and the other 68 (space,
control bytes, ...) take the characters U+0100 onwards, in byte order; a space is "Ġ", a
newline "Ċ". So " the" is the token "Ġthe", and merges.txt's line "Ġ t" is the merge of the
byte tokens for space and "t". GPT-2's vocab.json numbers the 256 byte tokens in that table's
order (printable bytes first), then merge i as 256 + i, then "<|endoftext|>" (50256); a
`tokenizers`-trained BPE numbers its special tokens first. `BPETokenizer(numbering=...)`
keeps such numbering, so the ids here are the ids of the files, and a GPT-2 checkpoint's
embedding rows mean the same tokens.

`tokenizer.json` is the `tokenizers` library's whole pipeline in one file. Read here: a BPE
model over byte-level tokens with GPT-2's pre-tokenizer (ByteLevel with its regular
expression), or a Split by any regular expression followed by ByteLevel (as GPT-4-style
tokenizers are written), and added tokens that are matched whole. Written here: this project's
BPE that way (GPT-4's split pattern by default), and the character tokenizer as a BPE without
merges whose decoder joins the characters (Fuse). Anything else is refused with a
TokenizerFileError rather than read into a tokenizer that would encode otherwise.

Importing this module does not import the GPT: tokenizers and models load apart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformer.atomic import atomic_write_files
from transformer.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, CharTokenizer, Tokenizer

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
GPT2_VOCAB_FILE, GPT2_MERGES_FILE = "vocab.json", "merges.txt"
END_OF_TEXT = "<|endoftext|>"  # GPT-2's one special token


class TokenizerFileError(ValueError):
    """A tokenizer's files are missing, malformed, or describe a tokenizer that does not load here."""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: byte -> the character that spells it in vocab.json and merges.txt (256 entries)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    return table | {b: chr(256 + n) for n, b in enumerate(others)}  # in the order of GPT-2's ids 0..255


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def token_text(token: bytes) -> str:
    """A token's bytes as GPT-2's files spell them: b" the" -> "Ġthe"."""
    return "".join(BYTE_TO_CHAR[b] for b in token)


def token_bytes(text: str, source: str) -> bytes:
    """The bytes a GPT-2-spelled token stands for: "Ġthe" -> b" the"."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in text)
    except KeyError as e:
        raise TokenizerFileError(
            f"{source}: {text!r} is not a byte-level token ({e.args[0]!r} spells no byte)"
        ) from None


# ---------------------------------------------------------------- reading


def bpe_from_vocab(
    vocab: dict[str, int], merges: list[tuple[str, str]], pattern: str, special_tokens: dict[str, int], source: str
) -> BPETokenizer:
    """The BPETokenizer of a byte-level vocabulary (token text -> id), its merges in order and its
    special tokens (text -> id), numbered as the files number them.

    Every merge must make a token no earlier merge made, and the vocabulary must hold exactly
    the 256 bytes, the merges' tokens and the special tokens, with ids 0..n-1.
    """
    ours = {bytes([b]): b for b in range(256)}  # token bytes -> id here (merge i mints 256 + i)
    pairs = []
    for i, (left, right) in enumerate(merges):
        left_bytes, right_bytes = token_bytes(left, source), token_bytes(right, source)
        if left_bytes not in ours or right_bytes not in ours:
            raise TokenizerFileError(f"{source}: merge {i} ({left} {right}) joins a token that no earlier merge made")
        if left_bytes + right_bytes in ours:
            raise TokenizerFileError(f"{source}: merge {i} ({left} {right}) makes {left + right!r} a second time")
        pairs.append((ours[left_bytes], ours[right_bytes]))
        ours[left_bytes + right_bytes] = 256 + i
    numbering: list[int | None] = [None] * (len(ours) + len(special_tokens))
    for text, token_id in vocab.items():
        if text in special_tokens:
            continue
        token = token_bytes(text, source)
        if token not in ours:
            raise TokenizerFileError(
                f"{source}: the token {text!r} is neither a byte, nor made by a merge, nor special"
            )
        numbering[ours[token]] = token_id
    for i, token_id in enumerate(special_tokens.values()):
        numbering[len(ours) + i] = token_id
    if None in numbering[:256]:
        missing = BYTE_TO_CHAR[numbering.index(None)]
        raise TokenizerFileError(
            f"{source}: the vocabulary lacks the byte token {missing!r}; byte-level BPE needs all 256"
        )
    if sorted(n for n in numbering if n is not None) != list(range(len(numbering))):
        raise TokenizerFileError(f"{source}: the {len(numbering)} tokens must have the ids 0..{len(numbering) - 1}")
    identity = numbering == list(range(len(numbering)))  # this project's own order: nothing to renumber
    return BPETokenizer(pairs, pattern, list(special_tokens), None if identity else numbering)


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TokenizerFileError(f"cannot read {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise TokenizerFileError(f"{path} is not valid JSON ({e})") from None


def read_gpt2_files(directory: Path) -> BPETokenizer:
    """GPT-2's vocab.json + merges.txt: byte-level BPE, GPT-2's split pattern, "<|endoftext|>" special."""
    vocab_path, merges_path = directory / GPT2_VOCAB_FILE, directory / GPT2_MERGES_FILE
    vocab = read_json_file(vocab_path)
    if not isinstance(vocab, dict) or not all(type(i) is int for i in vocab.values()):
        raise TokenizerFileError(f"{vocab_path} is not a vocabulary (expected {{token: id, ...}})")
    try:
        lines = merges_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerFileError(f"cannot read {merges_path}: {getattr(e, 'strerror', None) or e}") from None
    merges = [merge_pair(line, merges_path) for line in lines if line and not line.startswith("#version")]
    special = {END_OF_TEXT: vocab[END_OF_TEXT]} if END_OF_TEXT in vocab else {}
    return bpe_from_vocab(vocab, merges, "gpt2", special, str(directory))


def merge_pair(merge: str | list, source: Path) -> tuple[str, str]:
    """One merge as merges.txt ("a b") or a newer tokenizer.json (["a", "b"]) writes it."""
    pair = merge.split(" ") if isinstance(merge, str) else merge
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) and t for t in pair)):
        raise TokenizerFileError(f"{source}: {merge!r} is not a merge of two tokens")
    return pair[0], pair[1]


def split_pattern(pre_tokenizer: dict | None, source: Path) -> str:
    """The split pattern of a byte-level pre-tokenizer: GPT-2's ByteLevel, or Split(regex) + ByteLevel."""
    kind = (pre_tokenizer or {}).get("type")
    if kind == "ByteLevel" and pre_tokenizer.get("use_regex", True) and not pre_tokenizer.get("add_prefix_space"):
        return GPT2_SPLIT_PATTERN
    steps = pre_tokenizer.get("pretokenizers", []) if kind == "Sequence" else []
    if len(steps) == 2 and steps[0].get("type") == "Split" and steps[1].get("type") == "ByteLevel":
        split, byte_level = steps
        regex = split.get("pattern", {}).get("Regex")
        plain = not (byte_level.get("use_regex", True) or byte_level.get("add_prefix_space") or split.get("invert"))
        if isinstance(regex, str) and plain and split.get("behavior") == "Isolated":
            return regex
    raise TokenizerFileError(
        f"{source}: the pre-tokenizer {json.dumps(pre_tokenizer)[:120]} is not one that loads here "
        "(GPT-2's ByteLevel, or a Split by a regular expression then ByteLevel)"
    )


def read_tokenizer_json(path: Path) -> Tokenizer:
    """A tokenizer.json holding a byte-level BPE, or the character tokenizer `save_pretrained` writes."""
    obj = read_json_file(path)
    model = obj.get("model") if isinstance(obj, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise TokenizerFileError(f'{path} holds no BPE model (expected a tokenizer.json with a BPE "model")')
    plain = not any(
        model.get(k) for k in ("dropout", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback")
    )
    if obj.get("normalizer") or not plain or model.get("ignore_merges"):
        raise TokenizerFileError(
            f"{path}: a normalizer, BPE dropout, affixes, byte fallback or ignore_merges do not load here"
        )
    added = obj.get("added_tokens") or []
    if any(token.get(k) for token in added for k in ("lstrip", "rstrip", "single_word")):
        raise TokenizerFileError(f"{path}: added tokens that strip spaces or match single words do not load here")
    merges = [merge_pair(merge, path) for merge in model.get("merges") or []]
    decoder = (obj.get("decoder") or {}).get("type")
    if decoder == "Fuse" and not merges and not added and obj.get("pre_tokenizer") is None:
        by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise TokenizerFileError(f"{path}: the characters must have the ids 0..{len(by_id) - 1}")
        try:
            return CharTokenizer(c for c, _ in by_id)
        except ValueError as e:
            raise TokenizerFileError(f"{path}: {e}") from None
    pattern = split_pattern(obj.get("pre_tokenizer"), path)
    special = {token["content"]: token["id"] for token in added}
    return bpe_from_vocab(model["vocab"], merges, pattern, special, str(path))


def load_pretrained(directory: str | os.PathLike, kind: type | None = None) -> Tokenizer:
    """The tokenizer in `directory`: its tokenizer.json, else GPT-2's vocab.json + merges.txt.

    With `kind` (BPETokenizer or CharTokenizer) it must be of that kind. TokenizerFileError says
    what is missing or wrong.
    """
    directory = Path(directory)
    if (directory / TOKENIZER_FILE).is_file():
        tokenizer = read_tokenizer_json(directory / TOKENIZER_FILE)
    elif (directory / GPT2_VOCAB_FILE).is_file() and (directory / GPT2_MERGES_FILE).is_file():
        tokenizer = read_gpt2_files(directory)
    else:
        raise TokenizerFileError(
            f"{directory} holds no tokenizer (expected {TOKENIZER_FILE}, or {GPT2_VOCAB_FILE} and {GPT2_MERGES_FILE})"
        )
    if kind is not None and not isinstance(tokenizer, kind):
        raise TokenizerFileError(f"{directory} holds a {type(tokenizer).__name__}, not a {kind.__name__}")
    return tokenizer


# ---------------------------------------------------------------- writing


def bpe_tokenizer_json(tokenizer: BPETokenizer) -> dict[str, Any]:
    """tokenizer.json for a BPETokenizer: the same split, the same merges, the same ids."""
    n_plain = 256 + len(tokenizer.merges)
    numbering = range(tokenizer.vocab_size) if tokenizer.numbering is None else tokenizer.numbering.tolist()
    vocab = {token_text(tokenizer.vocab[t]): numbering[t] for t in range(n_plain)}
    vocab |= {s: numbering[tokenizer.special_ids[s]] for s in tokenizer.special_tokens}
    merges = [f"{token_text(tokenizer.vocab[a])} {token_text(tokenizer.vocab[b])}" for a, b in tokenizer.merges]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
    if tokenizer.pattern == GPT2_SPLIT_PATTERN:
        pre_tokenizer = {**byte_level, "use_regex": True}
    else:
        split = {"type": "Split", "pattern": {"Regex": tokenizer.pattern}, "behavior": "Isolated", "invert": False}
        pre_tokenizer = {"type": "Sequence", "pretokenizers": [split, {**byte_level, "use_regex": False}]}
    added = [
        {"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": True}
        for s in tokenizer.special_tokens
    ]  # fmt: skip
    return pipeline(vocab, merges, pre_tokenizer, {**byte_level, "use_regex": True}, added)


def char_tokenizer_json(tokenizer: CharTokenizer) -> dict[str, Any]:
    """tokenizer.json for a CharTokenizer: a BPE without merges over the characters, whose decoder
    joins them (Fuse) instead of putting spaces between them."""
    return pipeline({c: i for i, c in enumerate(tokenizer.chars)}, [], None, {"type": "Fuse"}, [])


def pipeline(vocab: dict, merges: list, pre_tokenizer: dict | None, decoder: dict, added: list) -> dict[str, Any]:
    """The whole tokenizer.json around a BPE model; no normalizer, no tokens added around the text."""
    model = {
        "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
        "vocab": vocab, "merges": merges,
    }  # fmt: skip
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": pre_tokenizer, "post_processor": None, "decoder": decoder, "model": model,
    }  # fmt: skip


def save_pretrained(tokenizer: Tokenizer, directory: str | os.PathLike) -> None:
    """Write tokenizer.json and tokenizer_config.json (and, for GPT-2's split pattern, GPT-2's own
    vocab.json + merges.txt) into `directory`, all renamed into place together."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    is_bpe = isinstance(tokenizer, BPETokenizer)
    obj = bpe_tokenizer_json(tokenizer) if is_bpe else char_tokenizer_json(tokenizer)
    config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    if is_bpe and END_OF_TEXT in tokenizer.special_tokens:
        config |= {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT}
    files = {
        directory / TOKENIZER_FILE: json.dumps(obj, ensure_ascii=False, indent=1) + "\n",
        directory / TOKENIZER_CONFIG_FILE: json.dumps(config, indent=1) + "\n",
    }
    if is_bpe and tokenizer.pattern == GPT2_SPLIT_PATTERN:
        files[directory / GPT2_VOCAB_FILE] = json.dumps(obj["model"]["vocab"], ensure_ascii=False) + "\n"
        files[directory / GPT2_MERGES_FILE] = "\n".join(["#version: 0.2", *obj["model"]["merges"]]) + "\n"
    atomic_write_files({path: text.encode("utf-8") for path, text in files.items()})
