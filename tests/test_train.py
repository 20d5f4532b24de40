"""The training loop on tiny models and generated text: run files, best checkpoint, exact resume,
Ctrl-C, and a checkpoint PyTorch's nanoGPT loads with strict=True."""

import csv
import dataclasses
import json
import os
import signal
import tracemalloc

import numpy as np
import pytest

from transformer import GPT, GPTConfig, train_state
from transformer import checkpoint as ckpt
from transformer import run as run_module
from transformer import train as train_module
from transformer.checkpoint import load_run
from transformer.data import Corpus
from transformer.run import ConfigError
from transformer.rundir import LOCK_FILE
from transformer.train import TrainConfig, TrainingInterrupted, train
from transformer.train_config import resume_config


def generated_corpus(n_words: int = 3000, seed: int = 0) -> Corpus:
    """Words drawn from a small list: structure enough for the loss to fall within a few steps."""
    words = "the king is dead long live the queen and all her court now sing".split()
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(words, size=8)) for _ in range(n_words // 8)]
    return Corpus("\n".join(lines) + "\n", "generated")


def tiny(out, **overrides) -> TrainConfig:
    settings = dict(
        out=str(out), n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4,
        max_iters=30, warmup_iters=5, eval_interval=10, eval_iters=2, learning_rate=1e-2, seed=3,
    )  # fmt: skip
    return TrainConfig(**{**settings, **overrides})


def run(config, corpus=None, resume=False, **kwargs):
    return train(config, resume=resume, corpus=corpus or generated_corpus(), progress=False, sample_chars=0, **kwargs)


def quiet(line):
    pass


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def file_bytes(run_dir):
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def assert_same_checkpoint(run_a, run_b):
    """The same weights and metadata (safetensors may order its JSON header differently)."""
    arrays_a, metadata_a = ckpt.load_arrays(run_a / ckpt.CKPT_FILE)
    arrays_b, metadata_b = ckpt.load_arrays(run_b / ckpt.CKPT_FILE)
    assert metadata_a == metadata_b and sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def test_a_short_run_writes_every_run_file(tmp_path):
    summary = run(tiny(tmp_path / "run"), echo=quiet)
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [ckpt.CKPT_FILE, ckpt.STATE_ARRAYS_FILE, ckpt.STATE_JSON_FILE, ckpt.CONFIG_FILE, ckpt.VOCAB_FILE]
        + [ckpt.LOG_FILE, ckpt.PLOT_FILE, LOCK_FILE]
    )  # and no temporary files
    assert (run_dir / LOCK_FILE).read_bytes() == b""  # released, naming nobody

    rows = read_log(run_dir / ckpt.LOG_FILE)
    assert list(rows[0]) == ["iter", "train_loss", "val_loss", "lr", "val_bpc", "val_tokens"]
    assert [int(r["iter"]) for r in rows] == [0, 10, 20, 30]
    val = [float(r["val_loss"]) for r in rows]
    vocab_size = len(set(generated_corpus().text))
    assert val[0] == pytest.approx(np.log(vocab_size), abs=0.1)  # the untrained model is near uniform
    assert val[-1] < val[0] - 0.5 and summary["val_loss"] == val[-1]
    # iteration 10 of a cosine from 1e-2 (after 5 warm-up steps) down to 1e-4 at 30
    assert float(rows[1]["lr"]) == pytest.approx(1e-4 + (1e-2 - 1e-4) * (1 + np.cos(np.pi * 5 / 25)) / 2, rel=1e-12)

    config = json.loads((run_dir / ckpt.CONFIG_FILE).read_text())
    assert config["model"] == dict(
        vocab_size=vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0, bias=True, fused=True,
        rotary=False, norm="layernorm", qk_norm=False, activation="gelu", tie_embeddings=True, logit_softcap=0.0,
        gelu_approximate="none", layer_norm_eps=1e-5,
    )  # fmt: skip
    assert config["train"]["max_iters"] == 30 and config["train"]["lr_decay_iters"] == 30
    assert (run_dir / ckpt.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # ckpt.safetensors holds the weights with the best validation loss, and says when they were saved
    _, metadata = ckpt.load_arrays(run_dir / ckpt.CKPT_FILE)
    assert int(metadata["iter"]) == int(rows[int(np.argmin(val))]["iter"])
    assert float(metadata["val_loss"]) == min(val)


def test_the_defaults_are_nanogpts_cpu_recipe():
    c = TrainConfig()
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.batch_size) == (4, 4, 128, 64, 12)
    assert (c.max_iters, c.lr_decay_iters, c.learning_rate, c.min_lr, c.warmup_iters) == (2000, 2000, 1e-3, 1e-4, 100)
    assert (c.beta2, c.weight_decay, c.grad_clip, c.dropout) == (0.99, 0.1, 1.0, 0.0)
    assert (c.eval_interval, c.eval_iters) == (250, 20)


def test_resuming_takes_exactly_the_steps_of_an_uninterrupted_run(tmp_path):
    # dropout on, so the dropout generator's state must survive the stop as well
    straight = run(tiny(tmp_path / "straight", max_iters=40, dropout=0.1), echo=quiet)

    first = run(tiny(tmp_path / "split", max_iters=20, lr_decay_iters=40, dropout=0.1), echo=quiet)
    assert first["iter"] == 20
    resumed = run(resume_config(tmp_path / "split", {"max_iters": 40}), resume=True, echo=quiet)

    assert resumed["history"] == straight["history"]  # every logged loss, bit for bit
    assert_same_checkpoint(tmp_path / "straight", tmp_path / "split")
    assert file_bytes(tmp_path / "straight")[ckpt.LOG_FILE] == file_bytes(tmp_path / "split")[ckpt.LOG_FILE]
    arrays_a, info_a = train_state.load_train_state(tmp_path / "straight")
    arrays_b, info_b = train_state.load_train_state(tmp_path / "split")
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:  # weights and optimizer moments
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    assert info_a["rng"] == info_b["rng"] and info_a["optimizer"] == info_b["optimizer"]


def test_ctrl_c_saves_the_state_and_the_run_resumes_exactly(tmp_path, monkeypatch):
    straight = run(tiny(tmp_path / "straight"), echo=quiet)

    real_get_batch, calls = train_module.get_batch, []

    def get_batch_then_ctrl_c(*args):
        calls.append(1)
        if len(calls) == 17:  # in the middle of training, between two evaluations
            os.kill(os.getpid(), signal.SIGINT)
        return real_get_batch(*args)

    monkeypatch.setattr(train_module, "get_batch", get_batch_then_ctrl_c)
    with pytest.raises(TrainingInterrupted) as stopped:
        run(tiny(tmp_path / "split"), echo=quiet)
    monkeypatch.setattr(train_module, "get_batch", real_get_batch)
    assert 0 < stopped.value.iter < 30
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is gone again
    _, info = train_state.load_train_state(tmp_path / "split")
    assert info["iter"] == stopped.value.iter

    resumed = run(resume_config(tmp_path / "split", {}), resume=True, echo=quiet)
    assert resumed["history"] == straight["history"]
    assert_same_checkpoint(tmp_path / "straight", tmp_path / "split")


def test_resume_keeps_the_architecture_and_the_corpus(tmp_path):
    run(tiny(tmp_path / "run", max_iters=10), echo=quiet)
    with pytest.raises(ckpt.CheckpointError, match="--n-embd 32 does not match the run .* n_embd = 16"):
        resume_config(tmp_path / "run", {"n_embd": 32})
    assert resume_config(tmp_path / "run", {"max_iters": 50, "n_embd": 16}).max_iters == 50
    before = file_bytes(tmp_path / "run")
    with pytest.raises(ckpt.CheckpointError, match="not the text the run .* was trained on"):
        run(resume_config(tmp_path / "run", {"max_iters": 20}), corpus=generated_corpus(seed=1), resume=True)
    assert file_bytes(tmp_path / "run") == before


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"max_iters": -1}, "--max-iters must be an integer >= 0, got -1"),
        ({"n_head": 3}, r"--n-embd \(16\) must be a multiple of --n-head \(3\)"),
        ({"dropout": 1.0}, r"--dropout must lie in \[0, 1\), got 1.0"),
        ({"learning_rate": float("nan")}, "--learning-rate must be a finite number >= 0, got nan"),
        ({"eval_interval": 0}, "--eval-interval must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, "--batch-size must be an integer >= 1, got 2.5"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run(tiny(tmp_path / "run", **overrides))
    assert not (tmp_path / "run").exists()


def test_the_checkpoint_loads_into_nanogpt_in_pytorch_with_the_same_logits(tmp_path):
    torch = pytest.importorskip("torch")
    from reference import nanogpt

    run(tiny(tmp_path / "run", max_iters=10), echo=quiet)
    from safetensors.torch import load_file

    ours, _ = load_run(tmp_path / "run")
    model_config = json.loads((tmp_path / "run" / ckpt.CONFIG_FILE).read_text())["model"]
    assert model_config["gelu_approximate"] == "none" and model_config["layer_norm_eps"] == 1e-5  # nanoGPT's
    nanogpt_fields = {field.name for field in dataclasses.fields(nanogpt.GPTConfig)}  # not minigrad's own (fused)
    theirs = nanogpt.GPT(nanogpt.GPTConfig(**{k: v for k, v in model_config.items() if k in nanogpt_fields}))
    state = load_file(str(tmp_path / "run" / ckpt.CKPT_FILE))
    assert "lm_head.weight" in state and "transformer.wte.weight" in state
    theirs.load_state_dict(state, strict=True)
    theirs.eval()

    idx = np.random.default_rng(0).integers(0, model_config["vocab_size"], size=(3, 8))
    with torch.no_grad():
        expected, _ = theirs(torch.from_numpy(idx), torch.from_numpy(idx))  # targets: logits at every position
    logits, _ = ours(idx)
    np.testing.assert_allclose(logits.data, expected.numpy(), rtol=1e-4, atol=2e-5)


def test_estimate_loss_leaves_no_graph_and_restores_training_mode():
    corpus_ids = np.arange(200) % 7
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=8), rng=np.random.default_rng(0))
    config = TrainConfig(block_size=4, batch_size=3, eval_iters=2)
    chars_per_token = np.ones(7, dtype=np.int64)  # characters: bits per character are the loss / ln 2
    losses = train_module.estimate_loss(model, {"val": corpus_ids}, config, np.random.default_rng(0), chars_per_token)
    assert model.training and set(losses) == {"val", "val_bpc"} and np.isfinite(losses["val"])
    assert losses["val_bpc"] == pytest.approx(losses["val"] / np.log(2), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("bias", [True, False])
def test_the_memory_estimate_counts_every_parameter_and_stays_below_real_steps(bias):
    """The parameter count is exact; the whole estimate stays under what two steps really hold."""
    config = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=32, bias=bias)
    estimate = run_module.training_memory_bytes(config, batch_size=4)
    tracemalloc.start()
    model = GPT(config, rng=np.random.default_rng(0))
    assert estimate["weights and AdamW moments"] == 12 * sum(p.data.size for p in model.parameters())
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    ids = np.random.default_rng(1).integers(0, config.vocab_size, (4, config.block_size))
    for _ in range(2):
        _, loss = model(ids, ids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(estimate.values()) <= peak
