"""The speedrun recipe: what --recipe sets and what overrides it, the whole-split measurement
that ends a run with a target, the stopping rule, the trapezoid schedule, and Muon in the trainer."""

import json
import math

import numpy as np
import pytest
from test_train import generated_corpus, quiet, read_log, run, tiny

from minigrad import no_grad
from minigrad.optim import MuonWithAdamW
from transformer import GPT, GPTConfig, train_state
from transformer import checkpoint as ckpt
from transformer.cli import main
from transformer.data import split_train_val
from transformer.run import ConfigError
from transformer.speedrun import RECIPES, TARGET_BPC, make_optimizer, trapezoid_lr, whole_split_loss
from transformer.train_config import TrainConfig, resume_config


def test_the_target_is_nanogpts_loss_in_bits():
    assert TARGET_BPC == pytest.approx(1.8857 / math.log(2)) and round(TARGET_BPC, 4) == 2.7205
    assert RECIPES["speedrun"]["target_bpc"] == 2.7205


def test_the_recipe_sets_its_flags_and_given_flags_override_them():
    config = TrainConfig.from_recipe("speedrun", {"optimizer": "adamw", "n_layer": 2})
    for name, value in RECIPES["speedrun"].items():
        if name not in ("optimizer",):
            assert getattr(config, name) == value, name
    assert (config.optimizer, config.n_layer, config.recipe) == ("adamw", 2, "speedrun")
    assert TrainConfig.from_recipe(None, {}) == TrainConfig()
    with pytest.raises(ConfigError, match="--recipe must be one of speedrun"):
        TrainConfig.from_recipe("marathon", {})


def test_the_command_line_recipe_run_records_its_flags_and_ends_on_a_whole_split_row(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(generated_corpus().text)
    out = tmp_path / "run"
    argv = ["train", "--recipe", "speedrun", "--data", str(corpus), "--out", str(out), "--no-rotary",
            "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
            "--max-iters", "6", "--eval-interval", "3", "--eval-iters", "1", "--target-bpc", "0.01"]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads((out / ckpt.CONFIG_FILE).read_text())
    assert saved["train"]["recipe"] == "speedrun" and saved["train"]["optimizer"] == "muon"
    assert saved["train"]["rotary"] is False and saved["model"]["rotary"] is False  # the flag given wins
    assert saved["model"]["norm"] == "rmsnorm" and saved["model"]["qk_norm"] is True
    rows = read_log(out / ckpt.LOG_FILE)
    assert [row["iter"] for row in rows] == ["0", "3", "6"]
    assert [row["val_tokens"] for row in rows[:-1]] == ["", ""]  # cheap estimates above the target
    _, val_text = split_train_val(corpus.read_text())
    assert rows[-1]["val_tokens"] == str(len(val_text) - 1)  # the last row: every validation character
    assert float(rows[-1]["val_bpc"]) == pytest.approx(float(rows[-1]["val_loss"]) / math.log(2))


def test_recipe_and_resume_do_not_mix(tmp_path, capsys):
    assert main(["train", "--recipe", "speedrun", "--resume", "--out", str(tmp_path)]) == 2
    assert "--recipe starts a new run" in capsys.readouterr().err


def test_recipe_and_a_pretrained_model_do_not_mix(tmp_path, capsys):
    assert main(["train", "--recipe", "speedrun", "--init-from", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "--recipe trains a model of its own design" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def brute_force_loss(model: GPT, ids: np.ndarray, block_size: int) -> float:
    """The mean cross-entropy of every next token, window by window, in float64 NumPy."""
    total, count = 0.0, 0
    with no_grad():
        for start in range(0, len(ids) - 1, block_size):
            x = ids[start : min(start + block_size, len(ids) - 1)]
            y = ids[start + 1 : start + 1 + len(x)]
            logits = model(x[None].astype(np.int64))[0].data[0].astype(np.float64)  # (T, V)
            shifted = logits - logits.max(axis=-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            total -= log_probs[np.arange(len(y)), y].sum()
            count += len(y)
    return total / count


@pytest.mark.parametrize("length", [8 * 70 + 1, 8 * 70 + 5])  # whole windows only, and a shorter last one
def test_whole_split_loss_covers_every_token_once(length):
    model = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8), rng=np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 7, length).astype(np.int32)
    chars = np.array([1, 1, 2, 1, 3, 1, 1], dtype=np.float64)  # characters each token stands for
    result = whole_split_loss(model, ids, 8, chars)
    assert result["tokens"] == length - 1
    # float32 losses summed over ~600 tokens in windows: a few float32 eps per window sum
    assert result["loss"] == pytest.approx(brute_force_loss(model, ids, 8), rel=1e-5)
    nats = result["loss"] * (length - 1)
    assert result["bpc"] == pytest.approx(nats / chars[ids[1:]].sum() / math.log(2), rel=1e-12)
    assert model.training  # left as found


def test_a_reached_target_stops_the_run_at_that_evaluation(tmp_path):
    summary = run(tiny(tmp_path / "run", target_bpc=100.0, max_iters=30), echo=quiet)
    assert summary["reached_target"] and summary["iter"] == 0
    rows = read_log(tmp_path / "run" / ckpt.LOG_FILE)
    assert len(rows) == 1 and rows[0]["val_tokens"] != ""


def test_an_unreached_target_runs_the_budget_and_measures_the_last_row_whole(tmp_path):
    summary = run(tiny(tmp_path / "run", target_bpc=0.01, max_iters=20), echo=quiet)
    assert not summary["reached_target"] and summary["iter"] == 20
    rows = read_log(tmp_path / "run" / ckpt.LOG_FILE)
    assert [r["iter"] for r in rows] == ["0", "10", "20"] and [r["val_tokens"] != "" for r in rows] == [0, 0, 1]
    assert summary["val_bpc"] == pytest.approx(float(rows[-1]["val_bpc"]))


def test_without_a_target_the_log_has_no_whole_split_rows(tmp_path):
    run(tiny(tmp_path / "run", max_iters=10), echo=quiet)
    assert all(row["val_tokens"] == "" for row in read_log(tmp_path / "run" / ckpt.LOG_FILE))


def test_trapezoid_by_hand():
    lr = [trapezoid_lr(it, 1.0, 0.1, warmup_iters=4, total_iters=20, warmdown_frac=0.5) for it in range(22)]
    assert lr[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr[4:10] == [1.0] * 6  # flat until the last half of 20 iterations
    assert lr[10] == 1.0 and lr[15] == pytest.approx(0.55) and lr[20] == pytest.approx(0.1) == lr[21]


def test_muon_gets_the_blocks_matrices_and_adamw_the_rest():
    model = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=2, n_head=2, n_embd=8, tie_embeddings=False))
    optimizer = make_optimizer(model, TrainConfig(optimizer="muon", learning_rate=1e-3, muon_lr=0.02))
    assert isinstance(optimizer, MuonWithAdamW)
    owner = {id(p): g["use_muon"] for g in optimizer.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert len(owner) == len(names)  # every parameter once
    for name, p in names.items():
        assert owner[id(p)] == (name.startswith("transformer.h.") and p.ndim == 2), name
    assert optimizer.param_groups[0]["lr_scale"] == pytest.approx(20.0)


def test_a_muon_run_resumes_exactly(tmp_path):
    settings = dict(optimizer="muon", muon_lr=0.02, lr_schedule="trapezoid", rotary=True, norm="rmsnorm")
    straight = run(tiny(tmp_path / "straight", max_iters=20, **settings), echo=quiet)
    run(tiny(tmp_path / "split", max_iters=10, lr_decay_iters=20, **settings), echo=quiet)
    resumed = run(resume_config(tmp_path / "split", {"max_iters": 20}), resume=True, echo=quiet)
    assert resumed["history"] == straight["history"]
    arrays_a, _ = train_state.load_train_state(tmp_path / "straight")
    arrays_b, _ = train_state.load_train_state(tmp_path / "split")
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(optimizer="sgd"), "--optimizer must be one of adamw, muon"),
        (dict(norm="batchnorm"), "--norm must be one of"),
        (dict(lr_schedule="step"), "--lr-schedule must be one of"),
        (dict(target_bpc=-1.0), "--target-bpc must be a number > 0"),
        (dict(optimizer="muon", learning_rate=0.0), "--learning-rate must be > 0"),
        (dict(rotary=True, n_embd=6, n_head=2), "--rotary needs an even head size"),
    ],
)
def test_bad_speedrun_flags_are_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run(tiny(tmp_path / "run", **overrides), echo=quiet)
    assert not (tmp_path / "run").exists()
