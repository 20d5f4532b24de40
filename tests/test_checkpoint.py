"""Run files: atomic writes, weights under nanoGPT's names, the run loader's checks, torn training states."""

import dataclasses
import os

import numpy as np
import pytest

from transformer import GPT, GPTConfig, atomic, train_state
from transformer import checkpoint as ckpt
from transformer.checkpoint import CheckpointError
from transformer.tokenizer import CharTokenizer

TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


def tiny_gpt(seed: int, config: GPTConfig = TINY) -> GPT:
    return GPT(config, rng=np.random.default_rng(seed))


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic.atomic_write_text(path, "old")
    atomic.atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_writes_let_the_umask_set_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(b"the good checkpoint")

    def crash(src, dst):
        raise KeyboardInterrupt  # Ctrl-C between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write_bytes(path, b"half a new checkpoint")
    assert path.read_bytes() == b"the good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def save_run(run_dir, model: GPT) -> None:
    """A run directory as training leaves it for the loader: config.json, vocab.json, ckpt.safetensors."""
    run_dir.mkdir(exist_ok=True)
    atomic.atomic_write_json(run_dir / ckpt.CONFIG_FILE, {"model": dataclasses.asdict(model.config), "train": {}})
    CharTokenizer.from_text("abcdefghijk"[: model.config.vocab_size]).save(run_dir / ckpt.VOCAB_FILE)
    ckpt.save_model(run_dir / ckpt.CKPT_FILE, model.state_dict())


def test_model_weights_round_trip_with_both_tied_names(tmp_path):
    model = tiny_gpt(0)
    path = tmp_path / "ckpt.safetensors"
    ckpt.save_model(path, model.state_dict(), iter=7, val_loss=1.5)
    arrays, metadata = ckpt.load_arrays(path)
    assert metadata == {"iter": "7", "val_loss": "1.5"}
    assert sorted(arrays) == sorted(model.state_dict())
    # nanoGPT's state dict lists the tied weight twice; so does the file
    np.testing.assert_array_equal(arrays["lm_head.weight"], arrays["transformer.wte.weight"])

    save_run(tmp_path / "run", model)
    loaded, tokenizer = ckpt.load_run(tmp_path / "run")
    assert not loaded.training and tokenizer.vocab_size == TINY.vocab_size
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)
    assert loaded.lm_head.weight is loaded.transformer.wte.weight  # still tied after loading


def test_a_mismatched_checkpoint_is_named(tmp_path):
    save_run(tmp_path, tiny_gpt(1))
    wider = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    ckpt.save_model(tmp_path / ckpt.CKPT_FILE, tiny_gpt(0, wider).state_dict())
    with pytest.raises(
        CheckpointError, match=r"transformer\.wte\.weight has shape \(11, 16\), the model's is \(11, 8\)"
    ):
        ckpt.load_run(tmp_path)

    shallower = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    ckpt.save_model(tmp_path / ckpt.CKPT_FILE, tiny_gpt(0, shallower).state_dict())
    with pytest.raises(CheckpointError, match=r"lacks transformer\.h\.1\."):
        ckpt.load_run(tmp_path)


def test_the_config_saved_with_the_weights_is_compared_and_older_files_by_shape(tmp_path):
    model = tiny_gpt(0)
    save_run(tmp_path, model)
    ckpt.save_model(tmp_path / ckpt.CKPT_FILE, model.state_dict(), model.config)
    ckpt.load_run(tmp_path)
    relu2 = dataclasses.replace(TINY, activation="relu2")  # the same tensors, other numbers
    atomic.atomic_write_json(tmp_path / ckpt.CONFIG_FILE, {"model": dataclasses.asdict(relu2), "train": {}})
    with pytest.raises(CheckpointError, match='saved by a model with activation = "gelu", but .* says "relu2"'):
        ckpt.load_run(tmp_path)
    ckpt.save_model(tmp_path / ckpt.CKPT_FILE, model.state_dict())  # as saved before the config was kept in it
    assert ckpt.load_run(tmp_path)[0].config.activation == "relu2"


@pytest.mark.parametrize("content", [b"", b"\x00" * 3, b"garbage that is not safetensors at all", None])
def test_corrupt_or_missing_weight_files_raise_checkpoint_errors(tmp_path, content):
    save_run(tmp_path, tiny_gpt(0))
    path = tmp_path / ckpt.CKPT_FILE
    path.unlink()
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="does not exist|not a readable safetensors file"):
        ckpt.load_run(tmp_path)


def test_a_truncated_weight_file_is_caught(tmp_path):
    save_run(tmp_path, tiny_gpt(0))
    path = tmp_path / ckpt.CKPT_FILE
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        ckpt.load_run(tmp_path)


def test_training_state_round_trips_and_torn_pairs_are_detected(tmp_path):
    arrays = {"model.w": np.arange(6, dtype=np.float32).reshape(2, 3), "optimizer.0.exp_avg": np.ones(3, np.float32)}
    info = {"iter": 5, "rng": {"state": 2**100 + 3}}  # bit-generator states are big ints, JSON keeps them
    train_state.save_train_state(tmp_path, arrays, info)
    loaded_arrays, loaded_info = train_state.load_train_state(tmp_path)
    assert loaded_info["iter"] == 5 and loaded_info["rng"]["state"] == 2**100 + 3
    np.testing.assert_array_equal(loaded_arrays["model.w"], arrays["model.w"])

    first_json = (tmp_path / ckpt.STATE_JSON_FILE).read_bytes()
    train_state.save_train_state(tmp_path, arrays, {**info, "iter": 6})
    (tmp_path / ckpt.STATE_JSON_FILE).write_bytes(first_json)  # as if a crash came between the two writes
    with pytest.raises(CheckpointError, match="different saves"):
        train_state.load_train_state(tmp_path)


def test_unwritable_run_directory_is_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write to the run directory"):
        atomic.check_writable_dir(blocker / "run")
    assert atomic.check_writable_dir(tmp_path / "new" / "run").is_dir()
