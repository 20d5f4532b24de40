"""`minigrad-gpt train | sample | graph` end to end on a tiny model, and streamed sampling."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transformer import GPT, GPTConfig, train_state
from transformer import checkpoint as ckpt
from transformer.checkpoint import load_run
from transformer.cli import main
from transformer.sample import generate_tokens
from transformer.tokenizer import CharTokenizer

REPO = Path(__file__).resolve().parent.parent
TINY_FLAGS = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
    "--max-iters", "12", "--warmup-iters", "2", "--eval-interval", "6", "--eval-iters", "2",
    "--learning-rate", "1e-2",
]  # fmt: skip


def write_corpus(path, n_lines=300, seed=0):
    words = "to be or not that is the question whether tis nobler in mind".split()
    rng = np.random.default_rng(seed)
    path.write_text("\n".join(" ".join(rng.choice(words, size=6)) for _ in range(n_lines)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run, trained through the command line, shared by the sampling tests."""
    root = tmp_path_factory.mktemp("cli")
    corpus = write_corpus(root / "corpus.txt")
    assert main(["train", "--data", str(corpus), "--out", str(root / "run"), *TINY_FLAGS]) == 0
    return root / "run"


def test_train_writes_the_run_with_the_flags_given(trained_run):
    config = json.loads((trained_run / ckpt.CONFIG_FILE).read_text())
    assert config["train"]["max_iters"] == 12 and config["train"]["n_embd"] == 16
    assert config["train"]["data"].endswith("corpus.txt")
    assert {ckpt.CKPT_FILE, ckpt.LOG_FILE, ckpt.PLOT_FILE, ckpt.VOCAB_FILE} <= {p.name for p in trained_run.iterdir()}


def test_train_prints_evaluations_timing_and_a_sample(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    assert main(["train", "--data", str(corpus), "--out", str(tmp_path / "run"), *TINY_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "iter 0: train loss" in out and "iter 12: train loss" in out
    assert "ms per training step" in out and "sample:\n" in out


def test_resume_through_the_command_line_continues_to_the_new_total(trained_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    assert main(["train", "--out", str(run_dir), "--resume", "--max-iters", "18"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run_dir} at iteration 12 of 18" in out and "iter 18:" in out
    _, info = train_state.load_train_state(run_dir)
    assert info["iter"] == 18 and [row["iter"] for row in info["history"]] == [0, 6, 12, 18]
    # the decay kept the end the run started with (docs/training.md): the extra steps run at --min-lr
    assert json.loads((run_dir / ckpt.CONFIG_FILE).read_text())["train"]["lr_decay_iters"] == 12
    assert info["history"][-1]["lr"] == 1e-4

    assert main(["train", "--out", str(run_dir), "--resume", "--max-iters", "18"]) == 0  # nothing left to do
    out = capsys.readouterr().out
    assert "done: 0 iterations in" in out and "nan" not in out


def test_the_help_gives_each_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert help_text.count("(default: --max-iters)") == 1


def test_biases_are_on_by_default_and_no_bias_drops_them(trained_run, tmp_path, capsys):
    with_bias, _ = ckpt.load_arrays(trained_run / ckpt.CKPT_FILE)
    assert "transformer.h.0.attn.c_attn.bias" in with_bias and "transformer.ln_f.bias" in with_bias
    corpus = write_corpus(tmp_path / "corpus.txt")
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--out", str(run_dir), *TINY_FLAGS, "--no-bias"]) == 0
    without_bias, _ = ckpt.load_arrays(run_dir / ckpt.CKPT_FILE)
    assert not [name for name in without_bias if name.endswith(".bias")]
    assert json.loads((run_dir / ckpt.CONFIG_FILE).read_text())["model"]["bias"] is False
    capsys.readouterr()
    # the architecture of a run cannot change on resume
    assert main(["train", "--out", str(run_dir), "--resume", "--max-iters", "18", "--bias"]) == 2
    assert "--bias" in capsys.readouterr().err


def test_sample_starts_with_the_prompt_and_is_reproducible(trained_run, capsys):
    argv = ["sample", "--out", str(trained_run), "--start", "to be", "--max-new-tokens", "40", "--seed", "5"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("to be") and len(first) == len("to be") + 40 + 1  # and a final newline
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert main([*argv[:-1], "6"]) == 0
    assert capsys.readouterr().out != first


def test_greedy_sampling_follows_the_argmax(trained_run, capsys):
    argv = ["sample", "--out", str(trained_run), "--start", "the", "--max-new-tokens", "20", "--temperature", "0"]
    assert main(argv) == 0
    text = capsys.readouterr().out.rstrip("\n")
    model, tokenizer = load_run(trained_run)
    expected = model.generate(tokenizer.encode("the")[None, :], 20, temperature=0.0)[0]
    assert text == tokenizer.decode(expected)


def test_several_samples_are_separated(trained_run, capsys):
    argv = ["sample", "--out", str(trained_run), "--num-samples", "3", "--max-new-tokens", "10", "--top-k", "3"]
    assert main([*argv, "--top-p", "0.9"]) == 0
    samples = capsys.readouterr().out.split("-" * 40 + "\n")
    assert len(samples) == 3 and all(len(s) == 1 + 10 + 1 for s in samples)


@pytest.mark.parametrize("start_len", [1, 5, 12])  # the block (8) is crossed: cache rebuilt every step
def test_streamed_tokens_are_the_ones_generate_draws(start_len):
    config = GPTConfig(vocab_size=9, block_size=8, n_layer=2, n_head=2, n_embd=8)
    model = GPT(config, rng=np.random.default_rng(0))
    idx = np.random.default_rng(1).integers(0, 9, size=(2, start_len))
    expected = model.generate(idx, 15, temperature=0.9, top_k=5, top_p=0.95, rng=np.random.default_rng(2))
    streamed = list(generate_tokens(model, idx, 15, temperature=0.9, top_k=5, top_p=0.95, rng=np.random.default_rng(2)))
    np.testing.assert_array_equal(np.stack(streamed, axis=1), expected[:, start_len:])
    assert model.training  # the mode it had before


def test_stream_text_prints_each_character_as_it_comes():
    class Recorder:
        def __init__(self):
            self.writes = []

        def write(self, s):
            self.writes.append(s)

        def flush(self):
            self.writes.append("<flush>")

    from transformer.sample import stream_text

    tokenizer = CharTokenizer.from_text("abcdefgh")
    model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=1, n_embd=8), rng=np.random.default_rng(0))
    recorder = Recorder()
    text = stream_text(model, tokenizer, "ab", 5, rng=np.random.default_rng(0), file=recorder)
    assert len(text) == 7 and text.startswith("ab")
    assert recorder.writes.count("<flush>") >= 6  # the prompt, then every new character


def test_graph_draws_a_small_gpt(tmp_path, capsys):
    assert main(["graph", "--out", str(tmp_path / "gpt.dot")]) == 0
    dot = (tmp_path / "gpt.dot").read_text()
    assert dot.startswith("digraph") and "transformer.h.1.attn" in dot
    if shutil.which("dot"):
        assert main(["graph", "--out", str(tmp_path / "gpt.svg")]) == 0
        assert "<svg" in (tmp_path / "gpt.svg").read_text()


def test_python_dash_m_transformer_is_the_same_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "transformer", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "{train,sample,graph,export}" in result.stdout


def test_ctrl_c_during_training_saves_and_exits_with_130(tmp_path, capsys, monkeypatch):
    import os
    import signal

    from transformer import train as train_module

    real_get_batch, calls = train_module.get_batch, []

    def get_batch_then_ctrl_c(*args):
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return real_get_batch(*args)

    monkeypatch.setattr(train_module, "get_batch", get_batch_then_ctrl_c)
    corpus = write_corpus(tmp_path / "corpus.txt")
    assert main(["train", "--data", str(corpus), "--out", str(tmp_path / "run"), *TINY_FLAGS]) == 130
    err = capsys.readouterr().err
    assert "interrupted at iteration" in err and f"train --out {tmp_path / 'run'} --resume" in err
    _, info = train_state.load_train_state(tmp_path / "run")
    assert 0 < info["iter"] < 12
