"""BPETokenizer: the same merges as minbpe's slow loop (ties included), exact round trips, safe files, clear errors."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer import checkpoint as ckpt
from transformer.cli import main
from transformer.data import split_train_val
from transformer.rundir import LOCK_FILE
from transformer.tokenizer import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    UnknownCharacterError,
    VocabularyTooLargeError,
    learn_merges,
    learn_merges_by_recount,
    load_tokenizer,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from reference import minbpe  # noqa: E402
from test_cli_bad_input import fails_cleanly  # noqa: E402

# Many scripts, precomposed and combining accents, emoji with skin tones and joiners, digits,
# tabs, CRLF and runs of spaces: every branch of both split patterns, and multi-byte characters
# whose bytes get merged.
MULTILINGUAL = (
    "The quick brown fox jumps over the lazy dog. It's 12345 o'clock; we'll see, they've gone.\n"
    "Le cœur a ses raisons que la raison ne connaît point. Café, café, cafe\u0301!\r\n"
    "Größe, Straße, Übermaß — schön.\tÆsir ÐÞ\n"
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Ещё, ещё!\n"
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Ψυχή, ψυχή.\n"
    "我能吞下玻璃而不伤身体。我能吞下玻璃。日本語のテキスト、ひらがなとカタカナ。\n"
    "أنا قادر على أكل الزجاج و هذا لا يؤلمني. الزجاج\n"
    "मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती.\n"
    "👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️‍🔥 😀😀😀 x\u0302\u0303 ¯\\_(ツ)_/¯    indented    \n\n\n"
    "def f(x):\n    return x ** 2  # 3.14159\n"
) * 3


def test_a_worked_example():
    tok = BPETokenizer.train("low lower lowest", 258)
    assert tok.merges == [(ord("l"), ord("o")), (256, ord("w"))]  # "lo" first: the first of the pairs seen 3 times
    assert tok.vocab[256:] == [b"lo", b"low"]
    assert tok.encode("lowly").tolist() == [257, ord("l"), ord("y")]
    assert tok.encode(" lowest").tolist() == [ord(" "), 257, ord("e"), ord("s"), ord("t")]
    assert tok.vocab_size == 258


def test_split_patterns_cut_text_as_gpt2_and_gpt4_do():
    text = "Hello world's 123456 DON'T  stop!!\n\n   x\r\n\tcafé"
    gpt2 = BPETokenizer([], "gpt2").split(text)
    gpt4 = BPETokenizer([]).split(text)
    assert gpt2 == ["Hello", " world", "'s", " 123456", " DON", "'", "T", " ", " stop", "!!", "\n\n  ", " x",
                    "\r\n", "\t", "café"]  # fmt: skip
    assert gpt4 == ["Hello", " world", "'s", " ", "123", "456", " DON", "'T", " ", " stop", "!!\n\n", "  ", " x",
                    "\r\n", "\tcafé"]  # fmt: skip
    assert BPETokenizer([], "gpt2").pattern == GPT2_SPLIT_PATTERN and BPETokenizer([]).pattern == GPT4_SPLIT_PATTERN


# ---------------------------------------------------------------- the merges equal the naive reference's


def assert_same_as_reference(text: str, vocab_size: int, pattern: str) -> BPETokenizer:
    merges, chunks = minbpe.train(text, vocab_size, pattern)
    tok = BPETokenizer.train(text, vocab_size, pattern)
    assert tok.merges == merges
    # encoding the training text with the learned merges lands where training left it
    assert tok.encode(text).tolist() == [t for ids in chunks for t in ids]
    return tok


def test_merges_equal_the_reference_on_shakespeare(shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")[:20_000]
    tok = assert_same_as_reference(text, 356, GPT4_SPLIT_PATTERN)
    assert tok.vocab[256:262] == [b" t", b"he", b"ou", b" a", b" the", b"re"]


@pytest.mark.parametrize("pattern", [GPT4_SPLIT_PATTERN, GPT2_SPLIT_PATTERN], ids=["gpt4", "gpt2"])
def test_merges_equal_the_reference_on_multilingual_text(pattern):
    tok = assert_same_as_reference(MULTILINGUAL, 420, pattern)
    assert any(len(token.decode("utf-8", errors="ignore")) < len(token) for token in tok.vocab[256:])  # merged UTF-8


def test_ties_go_to_the_pair_seen_first_in_the_text():
    # every pair occurs once: the merges walk the text from its start, not in order of byte value
    assert BPETokenizer.train("zyx", 258).vocab[256:] == [b"zy", b"zyx"]
    # "yz", " a" and "ab" occur twice each; "yz" is seen first in one text, "ab" in the other
    assert BPETokenizer.train("yz ab ab yz", 257).vocab[256] == b"yz"
    assert BPETokenizer.train("ab yz yz ab", 257).vocab[256] == b"ab"


def test_a_tie_is_decided_by_the_text_as_it_stands_after_the_merges_so_far():
    # After "cc" is merged, "cccbbab" reads cc·c·b·b·a·b and every pair occurs once. The new pair
    # (cc, c) stands first, ahead of (c, b), which has been in the text from the start: it wins.
    assert BPETokenizer.train("cccbbab", 258).vocab[256:] == [b"cc", b"ccc"]
    assert_same_as_reference("cccbbab", 262, GPT4_SPLIT_PATTERN)
    assert_same_as_reference(" cacbaba ac b abbb", 264, GPT4_SPLIT_PATTERN)


@given(st.text(alphabet="ab c\n\u00e9", max_size=60), st.integers(256, 275), st.sampled_from(["gpt2", "gpt4"]))
def test_merges_equal_the_reference_on_random_text(text, vocab_size, name):
    pattern = GPT4_SPLIT_PATTERN if name == "gpt4" else GPT2_SPLIT_PATTERN
    try:
        merges, _ = minbpe.train(text, vocab_size, pattern)
    except ValueError:  # the reference's max() of no pairs: the text has too few
        with pytest.raises(VocabularyTooLargeError):
            BPETokenizer.train(text, vocab_size, name)
        return
    assert BPETokenizer.train(text, vocab_size, name).merges == merges


@given(st.text(alphabet="ab c\n\u00e9\U0001f600", max_size=80), st.integers(0, 30), st.sampled_from(["gpt2", "gpt4"]))
def test_the_fast_merges_are_the_definitions(text, num_merges, pattern):
    """learn_merges (counts updated in place, a heap) finds the merges of the readable loop that recounts."""
    chunks = [chunk.encode("utf-8") for chunk in BPETokenizer([], pattern).split(text)]
    try:
        expected = learn_merges_by_recount(chunks, num_merges)
    except VocabularyTooLargeError as too_large:
        with pytest.raises(VocabularyTooLargeError) as raised:
            learn_merges(chunks, num_merges)
        assert str(raised.value) == str(too_large)
        return
    assert learn_merges(chunks, num_merges) == expected


def test_the_definition_breaks_ties_by_the_text_as_it_stands():
    chunks = [b"cccbbab"]
    assert learn_merges_by_recount(chunks, 2) == [(ord("c"), ord("c")), (256, ord("c"))]
    assert learn_merges_by_recount([b"yz", b" ab", b" ab", b" yz"], 1) == [(ord("y"), ord("z"))]


# ---------------------------------------------------------------- round trips

TRAINED = BPETokenizer.train(MULTILINGUAL, 400)


@given(st.text())
def test_decode_inverts_encode_for_any_string(text):
    ids = TRAINED.encode(text)
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert TRAINED.decode(ids) == text


@given(st.text(min_size=1, max_size=300), st.integers(256, 300))
def test_a_tokenizer_trained_on_a_string_round_trips_it(text, vocab_size):
    try:
        tok = BPETokenizer.train(text, vocab_size)
    except VocabularyTooLargeError:
        return
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) <= len(text.encode("utf-8"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\n\n   \t\t  \r\n \u3000\u00a0",
        "cafe\u0301 e\u0300\u0301\u0302\u0303\u0304 Z\u0351\u0352\u0353",
        "👨‍👩‍👧‍👦👍🏽🇫🇷🏳️‍🌈",
        "\x00\x01\x7f\ufeff\U0010ffff",
        "العربية हिन्दी 中文 한국어 ไทย",
    ],
    ids=["empty", "space", "whitespace", "combining", "emoji", "controls", "scripts"],
)
def test_round_trips_on_hard_strings(text):
    for tok in (TRAINED, BPETokenizer([], "gpt2"), BPETokenizer.train(text * 3 + "ab ab", 258)):
        assert tok.decode(tok.encode(text)) == text


@given(st.text())
def test_characters_per_token_add_up_to_the_length(text):
    ids = TRAINED.encode(text)
    assert TRAINED.chars_per_token()[ids].sum() == len(text)


def test_ids_that_split_a_character_decode_as_errors_replace():
    tok = BPETokenizer([])  # bytes only: every multi-byte character is several tokens
    ids = tok.encode("é日👍").tolist()
    assert ids == list("é日👍".encode())
    assert tok.decode(ids[:1]) == "\ufffd"
    assert tok.decode(ids[1:]) == b"\xa9\xe6\x97\xa5\xf0\x9f\x91\x8d".decode("utf-8", errors="replace")
    assert tok.decode(ids[:-1]) == "é日\ufffd"
    assert tok.decode_bytes(ids[:-1]) == "é日👍".encode()[:-1]


@given(st.lists(st.integers(0, 399), max_size=40))
def test_any_id_sequence_decodes_as_its_bytes_would(ids):
    expected = b"".join(TRAINED.vocab[i] for i in ids).decode("utf-8", errors="replace")
    assert TRAINED.decode(ids) == expected
    assert TRAINED.decode(np.array(ids, dtype=np.int64)) == expected


def test_encode_applies_merges_in_rank_order_not_left_to_right():
    # merge 0 "bc", merge 1 "ab": "abc" must become a + bc, though "ab" comes first in the string
    tok = BPETokenizer([(ord("b"), ord("c")), (ord("a"), ord("b"))])
    assert tok.encode("abc").tolist() == [ord("a"), 256]
    assert tok.encode("abd").tolist() == [257, ord("d")]


def test_special_tokens_are_single_tokens_after_the_merges():
    tok = BPETokenizer([(ord("h"), ord("i"))], special_tokens=["<|endoftext|>", "<|end|>"])
    assert tok.vocab_size == 259
    ids = tok.encode("hi<|endoftext|>hi <|end|>")
    assert ids.tolist() == [256, 257, 256, ord(" "), 258]
    assert tok.decode(ids) == "hi<|endoftext|>hi <|end|>"


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("pattern", [None, "gpt2", r"\s+|\S+"])
def test_save_and_load_give_the_same_tokenizer(tmp_path, pattern):
    tok = BPETokenizer.train(MULTILINGUAL, 300, pattern)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["type"] == "bpe" and saved["merges"] == [list(p) for p in tok.merges]
    assert saved["pattern"] == tok.pattern and saved["special_tokens"] == []
    loaded = BPETokenizer.load(path)
    assert loaded == tok and load_tokenizer(path) == tok
    assert loaded.encode(MULTILINGUAL).tolist() == tok.encode(MULTILINGUAL).tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]


def test_special_tokens_survive_a_save(tmp_path):
    tok = BPETokenizer([(104, 105)], special_tokens=["<|endoftext|>"])
    tok.save(tmp_path / "t.json")
    assert BPETokenizer.load(tmp_path / "t.json").encode("<|endoftext|>hi").tolist() == [257, 256]


def test_load_tokenizer_reads_either_kind(tmp_path):
    CharTokenizer.from_text("abc").save(tmp_path / "char.json")
    assert load_tokenizer(tmp_path / "char.json") == CharTokenizer.from_text("abc")
    (tmp_path / "other.json").write_text('{"type": "wordpiece"}')
    with pytest.raises(ValueError, match="'bpe', 'char'"):
        load_tokenizer(tmp_path / "other.json")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"type": "bpe", "merges": [[1, 2]]}', "expected"),
        ('{"type": "bpe", "pattern": "gpt4", "merges": [[1, 2, 3]]}', "merge 0 must be a pair"),
        ('{"type": "bpe", "pattern": "gpt4", "merges": [[1, 256]]}', "only ids below 256"),
        ('{"type": "bpe", "pattern": "gpt4", "merges": [[1, 2], [1, 2]]}', "merged twice"),
        ('{"type": "bpe", "pattern": "gpt4", "merges": [[1, true]]}', "merge 0 must be a pair"),
        ('{"type": "bpe", "pattern": "(", "merges": []}', "not a regular expression"),
        ('{"type": "bpe", "pattern": "", "merges": []}', "pattern must be"),
        ('{"type": "bpe", "pattern": "gpt4", "merges": [], "special_tokens": ["a", "a"]}', "twice"),
    ],
)
def test_bad_tokenizer_files_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        BPETokenizer.from_json(text)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("vocab_size", [255, 0, -1, 256.0, "512", True])
def test_vocab_size_must_be_an_integer_of_at_least_256(vocab_size):
    with pytest.raises(ValueError, match=">= 256"):
        BPETokenizer.train("hello", vocab_size)


def test_a_vocabulary_larger_than_the_text_supports_says_how_large_it_can_be():
    # "hello" is one chunk of 5 bytes: 4 merges make it one token, then no pair is left
    assert BPETokenizer.train("hello", 260).vocab[-1] == b"hello"
    with pytest.raises(VocabularyTooLargeError, match="at most 260 tokens"):
        BPETokenizer.train("hello", 261)
    assert BPETokenizer.train("hello", 256).merges == []


def test_text_utf8_cannot_encode_is_named():
    # a lone surrogate: what Python makes of undecodable bytes in a command line argument
    with pytest.raises(UnknownCharacterError, match=r"'\\udcff' \(position 2\) is a lone surrogate"):
        TRAINED.encode("ab\udcff")
    with pytest.raises(UnknownCharacterError):
        BPETokenizer.train("ab\ud800", 300)
    with pytest.raises(TypeError, match="expected a str"):
        TRAINED.encode(b"bytes")


def test_a_pattern_that_skips_text_is_refused():
    tok = BPETokenizer([], r"\w+")
    with pytest.raises(ValueError, match="skips characters"):
        tok.encode("two words")


def test_decode_rejects_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match=r"\[0, 400\)"):
        TRAINED.decode([5, 400])
    with pytest.raises(ValueError, match=r"\[0, 400\)"):
        TRAINED.decode([-1])


# ---------------------------------------------------------------- the trainer and the command line

VERSE = (
    "Shall I compare thee to a summer's day?\n"
    "Thou art more lovely and more temperate:\n"
    "Rough winds do shake the darling buds of May,\n"
    "And summer's lease hath all too short a date.\n"
)
TINY_RUN = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
    "--max-iters", "4", "--warmup-iters", "1", "--eval-interval", "2", "--eval-iters", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bpe-run")
    (root / "corpus.txt").write_text(VERSE * 30, encoding="utf-8")
    argv = ["train", "--data", root / "corpus.txt", "--out", root / "run", "--tokenizer", "bpe", "--vocab-size", 300]
    assert main([str(a) for a in [*argv, *TINY_RUN]]) == 0
    return root


def read_log(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run / ckpt.LOG_FILE, encoding="utf-8")))


def test_a_bpe_run_trains_on_tokens_learned_from_the_training_split(bpe_run):
    run = bpe_run / "run"
    tokenizer = load_tokenizer(run / ckpt.VOCAB_FILE)
    train_text, _ = split_train_val((bpe_run / "corpus.txt").read_text(encoding="utf-8"))
    assert tokenizer == BPETokenizer.train(train_text, 300)
    saved = json.loads((run / ckpt.CONFIG_FILE).read_text())
    assert saved["model"]["vocab_size"] == 300
    assert saved["train"]["tokenizer"] == "bpe" and saved["train"]["vocab_size"] == 300
    rows = read_log(run)
    assert [r["iter"] for r in rows] == ["0", "2", "4"]
    # bits per character: the loss per token in bits over the characters a token holds, about two
    _, val_text = split_train_val((bpe_run / "corpus.txt").read_text(encoding="utf-8"))
    tokens_per_char = len(tokenizer.encode(val_text)) / len(val_text)
    assert 0.4 < tokens_per_char < 0.6
    for row in rows:
        bits_per_token = float(row["val_loss"]) / np.log(2)
        assert 0.25 * bits_per_token < float(row["val_bpc"]) < 0.75 * bits_per_token


def test_a_bpe_run_samples_text(bpe_run, capsys):
    assert main(["sample", "--out", str(bpe_run / "run"), "--start", "Le cœur ☕", "--max-new-tokens", "12"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("Le cœur ☕") and len(out) > len("Le cœur ☕\n")


def test_a_resumed_bpe_run_reuses_its_tokenizer(bpe_run, tmp_path, monkeypatch, capsys):
    shutil.copytree(bpe_run / "run", tmp_path / "run")
    before = (tmp_path / "run" / ckpt.VOCAB_FILE).read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed run must not learn its merges again")

    monkeypatch.setattr(BPETokenizer, "train", no_training)
    argv = ["train", "--data", bpe_run / "corpus.txt", "--out", tmp_path / "run", "--resume", "--max-iters", 6]
    assert main([str(a) for a in argv]) == 0
    assert (tmp_path / "run" / ckpt.VOCAB_FILE).read_bytes() == before
    assert [r["iter"] for r in read_log(tmp_path / "run")] == ["0", "2", "4", "6"]


def test_bits_per_character_of_a_char_run_are_its_loss_over_ln_2(tmp_path):
    (tmp_path / "corpus.txt").write_text(MULTILINGUAL * 4, encoding="utf-8")
    assert main(["train", "--data", str(tmp_path / "corpus.txt"), "--out", str(tmp_path / "run"), *TINY_RUN]) == 0
    rows = read_log(tmp_path / "run")
    assert len(rows) == 3
    for row in rows:
        assert float(row["val_bpc"]) == pytest.approx(float(row["val_loss"]) / np.log(2), rel=1e-6)


def test_streamed_bpe_text_is_the_decoded_sequence_even_when_tokens_split_characters():
    from transformer.gpt import GPT, GPTConfig
    from transformer.sample import stream_text

    tokenizer = BPETokenizer([])  # bytes: random ones split and break characters
    model = GPT(GPTConfig(vocab_size=256, block_size=8, n_layer=1, n_head=1, n_embd=8), rng=np.random.default_rng(0))
    generated = model.generate(tokenizer.encode("é")[None, :], 40, rng=np.random.default_rng(3))[0]
    text = stream_text(model, tokenizer, "é", 40, rng=np.random.default_rng(3), file=io.StringIO())
    assert text == tokenizer.decode(generated)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tokenizer", "bpe", "--vocab-size", "255"], "--vocab-size must be an integer >= 256"),
        (["--tokenizer", "bpe", "--vocab-size", "100000"], "--vocab-size 100000 is too large for this corpus"),
        (["--vocab-size", "300"], "--vocab-size applies to --tokenizer bpe"),
        (["--tokenizer", "wordpiece"], "invalid choice: 'wordpiece'"),
    ],
    ids=["below-256", "above-the-text", "char-with-vocab-size", "unknown-tokenizer"],
)
def test_bad_tokenizer_flags(bpe_run, tmp_path, capsys, flags, message):
    fails_cleanly(
        ["train", "--data", bpe_run / "corpus.txt", "--out", tmp_path / "new", *TINY_RUN, *flags], capsys, message
    )
    new = tmp_path / "new"
    left = sorted(p.name for p in new.iterdir()) if new.exists() else []
    assert left in ([], [LOCK_FILE]) and not (left and (new / LOCK_FILE).read_text())  # no run file written


def test_a_corrupt_tokenizer_file_is_one_line(bpe_run, tmp_path, capsys):
    shutil.copytree(bpe_run / "run", tmp_path / "run")
    (tmp_path / "run" / ckpt.VOCAB_FILE).write_text('{"type": "bpe", "pattern": "gpt4", "merges": [[1, 999]]}')
    fails_cleanly(["sample", "--out", tmp_path / "run"], capsys, "is not a tokenizer file", "only ids below 256")
    (tmp_path / "run" / ckpt.VOCAB_FILE).write_bytes(b"\xff\xfe garbage")
    fails_cleanly(["sample", "--out", tmp_path / "run"], capsys, "is not a tokenizer file")
    argv = ["train", "--data", bpe_run / "corpus.txt", "--out", tmp_path / "run", "--resume", "--max-iters", 6]
    fails_cleanly(argv, capsys, "is not a tokenizer file")
    (tmp_path / "run" / ckpt.VOCAB_FILE).unlink()
    fails_cleanly(["sample", "--out", tmp_path / "run"], capsys, "does not exist")


def test_resuming_with_another_tokenizer_is_refused(bpe_run, capsys):
    argv = ["train", "--data", bpe_run / "corpus.txt", "--out", bpe_run / "run", "--resume", "--tokenizer", "char"]
    fails_cleanly(argv, capsys, "--tokenizer char does not match the run", "tokenizer = bpe")
    argv[-2:] = ["--vocab-size", "400"]
    fails_cleanly(argv, capsys, "--vocab-size 400 does not match the run")


def test_a_start_text_utf8_cannot_encode_is_one_line(bpe_run, capsys):
    # a command-line argument holding bytes that are not UTF-8 reaches Python as lone surrogates
    fails_cleanly(["sample", "--out", bpe_run / "run", "--start", "ab\udcff"], capsys, "--start", "lone surrogate")


def test_the_example_lists_tokens_and_draws_the_compression_curve(tmp_path):
    (tmp_path / "corpus.txt").write_text(MULTILINGUAL * 4, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "bpe_vocabulary.py"), "--data", "corpus.txt",
         "--max-vocab-size", "400", "--out", "figs"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "144 merges learned" in result.stdout and "vocab   400:" in result.stdout
    assert (tmp_path / "figs" / "bpe_compression.png").stat().st_size > 1000
