"""Every kind of bad input ends with one line on stderr and exit status 2, never a traceback,
and leaves an existing run directory exactly as it was."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transformer import atomic
from transformer import checkpoint as ckpt
from transformer.cli import main

REPO = Path(__file__).resolve().parent.parent
TINY_FLAGS = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
    "--max-iters", "4", "--warmup-iters", "1", "--eval-interval", "2", "--eval-iters", "1",
]  # fmt: skip


def corpus_text(n_lines=200):
    words = "now is the winter of our discontent made glorious summer".split()
    rng = np.random.default_rng(0)
    return "\n".join(" ".join(rng.choice(words, size=6)) for _ in range(n_lines)) + "\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    (root / "corpus.txt").write_text(corpus_text(), encoding="utf-8")
    assert main(["train", "--data", str(root / "corpus.txt"), "--out", str(root / "run"), *TINY_FLAGS]) == 0
    return root


@pytest.fixture
def run_dir(trained, tmp_path):
    """A private copy of the trained run; the test checks that a failure leaves it untouched."""
    shutil.copytree(trained / "run", tmp_path / "run")
    shutil.copy(trained / "corpus.txt", tmp_path / "corpus.txt")
    return tmp_path / "run"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def fails_cleanly(argv, capsys, *fragments) -> str:
    """Run main(argv); assert exit status 2, one stderr line holding every fragment, no traceback."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    _, err = capsys.readouterr()
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and err.startswith("minigrad-gpt")
    for fragment in fragments:
        assert fragment in err, err
    return err


# ---------------------------------------------------------------- the corpus


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        (b"", "is empty"),
        ("Caf\u00e9 na\u00efve\n".encode("latin-1") * 50, "is not UTF-8 text (byte 0xe9 at offset 3)"),
        (b"too short for a block of 8\n", "leave 3 for validation, fewer than block_size + 1 = 9"),
    ],
    ids=["missing", "empty", "not-utf8", "shorter-than-a-block"],
)
def test_bad_corpora(run_dir, capsys, content, message):
    corpus = run_dir.parent / "bad.txt"
    if content is not None:
        corpus.write_bytes(content)
    before = snapshot(run_dir)
    fails_cleanly(["train", "--data", corpus, "--out", run_dir, *TINY_FLAGS], capsys, message)
    assert snapshot(run_dir) == before


def test_a_corpus_too_short_counts_bpe_tokens_not_characters(run_dir, capsys):
    corpus = run_dir.parent / "short.txt"
    corpus.write_text("too short for a block of 8\n", encoding="utf-8")  # 256 tokens: the bytes, no merge
    err = fails_cleanly(
        [
            "train",
            "--data",
            corpus,
            "--out",
            run_dir.parent / "bpe",
            *TINY_FLAGS,
            "--tokenizer",
            "bpe",
            "--vocab-size",
            "256",
        ],
        capsys,
        "the corpus is too short: ",
        " tokens leave ",
    )
    assert "characters" not in err


def test_a_model_too_large_for_memory_is_refused_before_it_is_built(run_dir, capsys):
    """A million-wide, thousand-layer model needs ~2e17 bytes: more than any machine has, refused at once."""
    before = snapshot(run_dir)
    fails_cleanly(
        ["train", "--data", run_dir.parent / "corpus.txt", "--out", run_dir.parent / "huge", *TINY_FLAGS,
         "--n-embd", "1048576", "--n-layer", "1000"],
        capsys,
        "bytes to train (weights and AdamW moments ",
        "bytes of memory; use a smaller --n-layer",
    )  # fmt: skip
    assert not (run_dir.parent / "huge").exists()  # a new run's directory is made once its input is checked
    assert snapshot(run_dir) == before


def test_a_minigrad_data_folder_without_the_corpus(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "nonexistent"))
    fails_cleanly(
        ["train", "--out", tmp_path / "run", *TINY_FLAGS],
        capsys,
        f"MINIGRAD_DATA is {tmp_path / 'nonexistent'}, which holds no tinyshakespeare.txt",
    )
    assert not (tmp_path / "run").exists()


def test_a_directory_given_as_corpus(run_dir, capsys):
    fails_cleanly(["train", "--data", run_dir, "--out", run_dir.parent / "new"], capsys, "is a directory")


# ---------------------------------------------------------------- flag values


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-iters", "-5"], "--max-iters must be an integer >= 0, got -5"),
        (["--n-head", "3"], "--n-embd (16) must be a multiple of --n-head (3)"),
        (["--dropout", "1.5"], "--dropout must lie in [0, 1), got 1.5"),
        (["--beta2", "1"], "--beta2 must lie in [0, 1), got 1.0"),
        (["--learning-rate", "nan"], "argument --learning-rate: expected a finite number, got 'nan'"),
        (["--batch-size", "abc"], "argument --batch-size: expected an integer, got 'abc'"),
        (["--eval-iters", "0"], "--eval-iters must be an integer >= 1, got 0"),
        (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--out", ""], "--out must be a path, got ''"),  # not the current directory
    ],
)
def test_bad_training_flags(run_dir, capsys, flags, message):
    before = snapshot(run_dir)
    fails_cleanly(
        ["train", "--data", run_dir.parent / "corpus.txt", "--out", run_dir, *TINY_FLAGS, *flags], capsys, message
    )
    assert snapshot(run_dir) == before


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required"),
        (["fly"], "invalid choice: 'fly'"),
        (["sample", "--top-p", "0"], "argument --top-p: must lie in (0, 1], got 0"),
        (["sample", "--temperature", "-1"], "argument --temperature: must lie in [0, inf], got -1"),
        (["sample", "--top-k", "0"], "argument --top-k: must lie in [1, inf], got 0"),
        (["sample", "--num-samples", "0"], "argument --num-samples: must lie in [1, inf], got 0"),
        (["sample", "--max-new-tokens", "1.5"], "argument --max-new-tokens: expected an integer, got '1.5'"),
        (["graph"], "give --out FILE.svg (the graph), --html FILE.html"),
        (["sample", "--out", ""], "--out must be a path, got ''"),
    ],
)
def test_bad_commands_and_sampling_flags(capsys, argv, message):
    fails_cleanly(argv, capsys, message)


# ---------------------------------------------------------------- the run directory


def test_an_unwritable_run_directory(run_dir, capsys):
    blocker = run_dir.parent / "a-file"
    blocker.write_text("not a directory")
    err = fails_cleanly(
        ["train", "--data", run_dir.parent / "corpus.txt", "--out", blocker / "run", *TINY_FLAGS],
        capsys,
        "cannot write to the run directory",
    )
    assert str(blocker / "run") in err
    for flag in ("--out", "--html"):
        path = blocker / ("gpt.dot" if flag == "--out" else "step.html")
        err = fails_cleanly(["graph", flag, path], capsys, f"cannot write {path}: Not a directory")
        assert err.count("cannot write") == 1, err


def test_a_new_run_stopped_before_its_first_save_leaves_the_old_run_whole(run_dir, capsys, monkeypatch):
    """A new run (here of another shape) keeps its config.json and vocabulary for its first save:
    stopped before it, the run already there is untouched and still loads; once saved, the new
    run is whole in its place."""
    before = snapshot(run_dir)

    class Stopped(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stopped  # the moment before the first save: the evaluation at iteration 0

    argv = ["train", "--data", run_dir.parent / "corpus.txt", "--out", run_dir, *TINY_FLAGS, "--n-head", "4"]
    with monkeypatch.context() as patch:
        patch.setattr("transformer.train.estimate_loss", stop)
        with pytest.raises(Stopped):
            main([str(a) for a in argv])
    assert snapshot(run_dir) == before
    assert main(["sample", "--out", str(run_dir), "--max-new-tokens", "5"]) == 0
    assert main([str(a) for a in argv]) == 0
    assert "the run there is replaced at this one's first save" in capsys.readouterr().out
    model, _ = ckpt.load_run(run_dir)
    assert model.config.n_head == 4


def test_a_new_run_with_bad_input_creates_nothing(tmp_path, capsys):
    fails_cleanly(
        ["train", "--data", tmp_path / "missing.txt", "--out", tmp_path / "a" / "run"], capsys, "does not exist"
    )
    assert not (tmp_path / "a").exists()


def test_resume_without_a_saved_run(tmp_path, capsys):
    fails_cleanly(["train", "--out", tmp_path / "nothing", "--resume"], capsys, "config.json does not exist")


def test_resume_with_a_corrupt_training_state(run_dir, capsys):
    (run_dir / ckpt.STATE_ARRAYS_FILE).write_bytes(b"\x00garbage")
    before = snapshot(run_dir)
    fails_cleanly(["train", "--out", run_dir, "--resume"], capsys, "not a readable safetensors file")
    assert snapshot(run_dir) == before


def test_resume_with_a_torn_training_state(run_dir, capsys):
    info = json.loads((run_dir / ckpt.STATE_JSON_FILE).read_text())
    atomic.atomic_write_json(run_dir / ckpt.STATE_JSON_FILE, {**info, "save_id": "another save"})
    before = snapshot(run_dir)
    fails_cleanly(["train", "--out", run_dir, "--resume"], capsys, "come from different saves")
    assert snapshot(run_dir) == before


def test_resume_to_fewer_iterations_than_were_done(run_dir, capsys):
    before = snapshot(run_dir)
    fails_cleanly(
        ["train", "--out", run_dir, "--resume", "--max-iters", "2"], capsys, "below the iteration the run reached, 4"
    )
    assert snapshot(run_dir) == before


def test_resume_with_another_architecture_or_corpus(run_dir, capsys):
    before = snapshot(run_dir)
    fails_cleanly(["train", "--out", run_dir, "--resume", "--n-layer", "2"], capsys, "--n-layer 2 does not match")
    fails_cleanly(
        ["train", "--out", run_dir, "--resume", "--no-bias"],
        capsys,
        "--no-bias does not match",
        "which has bias = True;",
    )
    other = run_dir.parent / "other.txt"
    other.write_text(corpus_text(300), encoding="utf-8")
    fails_cleanly(["train", "--out", run_dir, "--resume", "--data", other], capsys, "not the text the run")
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------- sampling


def test_sample_without_a_run(tmp_path, capsys):
    fails_cleanly(["sample", "--out", tmp_path / "nothing"], capsys, "no run in")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / ckpt.CKPT_FILE).write_bytes(b"not safetensors"), "not a readable safetensors file"),
        (lambda d: (d / ckpt.CKPT_FILE).unlink(), "ckpt.safetensors does not exist"),
        (lambda d: (d / ckpt.CONFIG_FILE).write_text("{"), "config.json is not valid JSON"),
        (lambda d: (d / ckpt.VOCAB_FILE).write_text('{"type": "char", "chars": ["a"]}'), "has 1 tokens"),
        (
            lambda d: atomic.atomic_write_json(d / ckpt.CONFIG_FILE, _with_model(d, n_embd=32)),
            "has shape",
        ),
        (lambda d: atomic.atomic_write_json(d / ckpt.CONFIG_FILE, _with_model(d, n_layer=2)), "lacks transformer.h.1"),
    ],
    ids=["corrupt", "missing", "bad-config", "vocab-mismatch", "shape-mismatch", "layer-mismatch"],
)
def test_sample_from_a_damaged_or_mismatched_run(run_dir, capsys, damage, message):
    damage(run_dir)
    before = snapshot(run_dir)
    fails_cleanly(["sample", "--out", run_dir, "--max-new-tokens", "3"], capsys, message)
    assert snapshot(run_dir) == before


def _with_model(run_dir, **changes):
    config = json.loads((run_dir / ckpt.CONFIG_FILE).read_text())
    config["model"].update(changes)
    return config


def test_sample_with_characters_the_vocabulary_lacks(run_dir, capsys):
    err = fails_cleanly(["sample", "--out", run_dir, "--start", "now Zebra"], capsys, "--start:", "has no 'Z'")
    assert "first at position 4" in err
    fails_cleanly(["sample", "--out", run_dir, "--start", ""], capsys, "--start must hold at least one character")


def test_graph_with_an_unknown_format(tmp_path, capsys):
    fails_cleanly(["graph", "--out", tmp_path / "gpt.jpeg"], capsys, "must end in .svg, .png, .pdf or .dot")


# ---------------------------------------------------------------- the real process


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "/nonexistent/corpus.txt"], "corpus /nonexistent/corpus.txt does not exist"),
        (["train", "--max-iters", "-1"], "--max-iters must be an integer >= 0"),
        (["sample", "--out", "/nonexistent/run"], "no run in /nonexistent/run"),
    ],
)
def test_the_installed_command_exits_2_with_one_line(argv, message):
    result = subprocess.run(
        [sys.executable, "-m", "transformer", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
