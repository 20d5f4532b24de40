"""CharTokenizer: sorted vocabulary, exact round trips, clear errors, safe JSON files."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer.tokenizer import CharTokenizer, UnknownCharacterError


def test_vocabulary_is_the_sorted_distinct_characters():
    tok = CharTokenizer.from_text("hello, world\n")
    assert tok.chars == ["\n", " ", ",", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.vocab_size == 10
    assert tok.encode("hold").tolist() == [5, 7, 6, 3]
    assert tok.encode("hold").dtype == np.int64
    assert tok.decode([5, 4, 6, 6, 7]) == "hello"


def test_same_text_same_ids_whatever_the_order_of_first_appearance():
    assert CharTokenizer.from_text("abc") == CharTokenizer.from_text("cba")


@given(st.text(min_size=1, max_size=200))
def test_decode_inverts_encode(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert ids.shape == (len(text),)
    assert ids.min() >= 0 and ids.max() < tok.vocab_size
    assert tok.decode(ids) == text


def test_unknown_character_is_named_with_its_position():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(UnknownCharacterError, match=r"has no 'é', 'z' \(first at position 2\)"):
        tok.encode("abézz")


def test_unknown_characters_are_listed_at_most_ten():
    tok = CharTokenizer.from_text("a")
    with pytest.raises(UnknownCharacterError) as info:
        tok.encode("bcdefghijklmnop")
    assert str(info.value).count("'") == 20 and ", ..." in str(info.value)


def test_decode_rejects_ids_outside_the_vocabulary():
    tok = CharTokenizer.from_text("ab")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        tok.decode([0, 2])


def test_empty_text_has_no_vocabulary():
    with pytest.raises(ValueError, match="at least one character"):
        CharTokenizer.from_text("")


def test_json_round_trip_keeps_every_character(tmp_path):
    tok = CharTokenizer.from_text("To be, or not to be?\n\t'Tis — ça va ☃ \U0001f600\"\\")
    path = tmp_path / "vocab.json"
    tok.save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"type": "char", "chars": tok.chars}
    assert CharTokenizer.load(path) == tok
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ('{"type": "bpe", "chars": ["a"]}', "expected"),
        ('{"type": "char", "chars": ["ab"]}', "single character"),
        ('{"type": "char", "chars": ["a", "a"]}', "twice"),
        ('["a", "b"]', "expected"),
    ],
)
def test_bad_vocabulary_files_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        CharTokenizer.from_json(text)


def test_the_tokenizer_and_the_data_import_no_model():
    """The text side of the trainer stands alone: importing it builds no GPT, not even its module."""
    probe = (
        "import sys, transformer.tokenizer, transformer.hf_tokenizer, transformer.data; "
        "print(sorted(m for m in ('transformer.gpt', 'transformer.checkpoint') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_package_still_names_its_models():
    import transformer
    from transformer import GPT, GPTConfig, Transformer

    assert transformer.GPT is GPT and GPTConfig.__module__ == "transformer.gpt"
    assert Transformer.__module__ == "transformer.encoder_decoder"
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = transformer.Nothing
