"""The corpus: where it is found, what counts as unreadable, the 90/10 split and the batches.

No test touches the network: the downloader is replaced by a fake that serves bytes or fails.
"""

import hashlib

import numpy as np
import pytest

from transformer import data
from transformer.data import (
    CorpusError,
    check_long_enough,
    get_batch,
    read_corpus,
    resolve_corpus,
    split_train_val,
)

FAKE_CORPUS = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $MINIGRAD_DATA, and a user cache inside tmp_path."""
    monkeypatch.delenv("MINIGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "minigrad"


@pytest.fixture
def fake_checksum(monkeypatch):
    """Make FAKE_CORPUS the file the checksum expects."""
    monkeypatch.setattr(data, "TINY_SHAKESPEARE_SHA256", hashlib.sha256(FAKE_CORPUS.encode()).hexdigest())


def no_network(url):
    raise OSError("Network is unreachable")


def must_not_fetch(url):
    raise AssertionError(f"fetched {url} although a local copy exists")


# ---------------------------------------------------------------- reading


def test_read_corpus_returns_text_and_source(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("ab\u00e9c", encoding="utf-8")
    corpus = read_corpus(path)
    assert corpus.text == "ab\u00e9c" and corpus.source == str(path)
    assert corpus.sha256 == hashlib.sha256("ab\u00e9c".encode()).hexdigest()


@pytest.mark.parametrize(
    "content, message",
    [(None, "does not exist"), (b"", "is empty"), (b"abc\xff\xfedef", r"not UTF-8 text \(byte 0xff at offset 3\)")],
)
def test_unreadable_corpora_raise_corpus_errors(tmp_path, content, message):
    path = tmp_path / "c.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        read_corpus(path)


def test_a_directory_is_not_a_corpus(tmp_path):
    with pytest.raises(CorpusError, match="is a directory"):
        read_corpus(tmp_path)


# ---------------------------------------------------------------- resolution order


def test_data_flag_wins_and_is_never_replaced_by_a_download(tmp_path, isolated):
    path = tmp_path / "mine.txt"
    path.write_text("my own text", encoding="utf-8")
    assert resolve_corpus(path, fetch=must_not_fetch).text == "my own text"
    with pytest.raises(CorpusError, match="does not exist"):
        resolve_corpus(tmp_path / "missing.txt", fetch=must_not_fetch)


def test_minigrad_data_folder_comes_before_the_cache(tmp_path, isolated, monkeypatch):
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "tinyshakespeare.txt").write_text("from the folder", encoding="utf-8")
    monkeypatch.setenv("MINIGRAD_DATA", str(folder))
    assert resolve_corpus(fetch=must_not_fetch).text == "from the folder"


def test_download_is_verified_and_cached_atomically(isolated, fake_checksum):
    fetched = []

    def fetch(url):
        fetched.append(url)
        return FAKE_CORPUS.encode()

    warnings = []
    corpus = resolve_corpus(fetch=fetch, warn=warnings.append)
    assert fetched == [data.TINY_SHAKESPEARE_URL]
    assert corpus.text == FAKE_CORPUS and warnings == []
    assert [p.name for p in isolated.iterdir()] == ["tinyshakespeare.txt"]  # no temporary file left
    # the second time the cache answers
    assert resolve_corpus(fetch=must_not_fetch).text == FAKE_CORPUS


def test_a_corrupted_cache_is_downloaded_again(isolated, fake_checksum):
    isolated.mkdir(parents=True)
    (isolated / "tinyshakespeare.txt").write_text("truncated", encoding="utf-8")
    assert resolve_corpus(fetch=lambda url: FAKE_CORPUS.encode()).text == FAKE_CORPUS
    assert (isolated / "tinyshakespeare.txt").read_text(encoding="utf-8") == FAKE_CORPUS


def test_without_network_the_pydoc_topics_are_used_and_said_in_one_line(isolated):
    warnings = []
    corpus = resolve_corpus(fetch=no_network, warn=warnings.append)
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "no network" in warnings[0] and "pydoc_data" in warnings[0]
    assert len(corpus.text) > 100_000 and "pydoc_data" in corpus.source
    assert not isolated.exists()  # nothing cached


def test_a_download_with_the_wrong_checksum_is_not_cached(isolated):
    warnings = []
    corpus = resolve_corpus(fetch=lambda url: b"<html>captive portal</html>", warn=warnings.append)
    assert "sha256" in warnings[0] and "pydoc_data" in corpus.source
    assert not (isolated / "tinyshakespeare.txt").exists()


def test_the_reference_corpus_is_the_one_design_md_describes(shakespeare_path, isolated):
    payload = shakespeare_path.read_bytes()
    assert hashlib.sha256(payload).hexdigest() == data.TINY_SHAKESPEARE_SHA256
    corpus = resolve_corpus(fetch=lambda url: payload)  # the real checksum accepts the real bytes
    assert len(corpus.text) == 1_115_394 and len(set(corpus.text)) == 65


# ---------------------------------------------------------------- split and batches


def test_split_is_nanogpts_90_10():
    ids = np.arange(1001)
    train, val = split_train_val(ids)
    assert len(train) == int(1001 * 0.9) == 900 and len(val) == 101
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)


def test_get_batch_cuts_contiguous_windows_and_shifts_targets_by_one():
    ids = np.arange(100, dtype=np.int32)  # each token is its own position
    x, y = get_batch(ids, batch_size=7, block_size=9, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (7, 9) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(9))  # contiguous
    np.testing.assert_array_equal(y, x + 1)  # next token
    assert x.min() >= 0 and y.max() <= 99


def test_get_batch_reaches_every_start_and_the_last_token():
    ids = np.arange(12)
    x, y = get_batch(ids, batch_size=2000, block_size=4, rng=np.random.default_rng(1))
    assert set(x[:, 0].tolist()) == set(range(12 - 4))  # starts 0..7, as torch.randint(N - T)
    assert y.max() == 11


def test_get_batch_is_reproducible_from_the_generator_state():
    ids = np.arange(500)
    a = get_batch(ids, 4, 16, np.random.default_rng(7))
    b = get_batch(ids, 4, 16, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])


def test_a_split_shorter_than_one_block_plus_one_is_an_error():
    train, val = split_train_val(np.arange(100))  # 90 and 10
    check_long_enough(train, val, block_size=9)
    with pytest.raises(CorpusError, match="leave 10 for validation, fewer than block_size \\+ 1 = 11"):
        check_long_enough(train, val, block_size=10)
