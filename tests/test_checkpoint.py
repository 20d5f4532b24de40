"""Run files: atomic writes, weights under nanoGPT's names, checked loads, torn training states."""

import os

import numpy as np
import pytest

from transformer import GPT, GPTConfig
from transformer import checkpoint as ckpt
from transformer.checkpoint import CheckpointError

TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


def tiny_gpt(seed: int, config: GPTConfig = TINY) -> GPT:
    return GPT(config, rng=np.random.default_rng(seed))


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "f.txt"
    ckpt.atomic_write_text(path, "old")
    ckpt.atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_writes_let_the_umask_set_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        ckpt.atomic_write_text(tmp_path / "f.txt", "x")
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
        ckpt.atomic_write_bytes(path, b"half a new checkpoint")
    assert path.read_bytes() == b"the good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_model_weights_round_trip_with_both_tied_names(tmp_path):
    model = tiny_gpt(0)
    path = tmp_path / "ckpt.safetensors"
    ckpt.save_model(path, model.state_dict(), iter=7, val_loss=1.5)
    arrays, metadata = ckpt.load_arrays(path)
    assert metadata == {"iter": "7", "val_loss": "1.5"}
    assert sorted(arrays) == sorted(model.state_dict())
    # nanoGPT's state dict lists the tied weight twice; so does the file
    np.testing.assert_array_equal(arrays["lm_head.weight"], arrays["transformer.wte.weight"])

    other = tiny_gpt(1)
    ckpt.load_model(path, other)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[name], value, err_msg=name)
    assert other.lm_head.weight is other.transformer.wte.weight  # still tied after loading


def test_a_mismatched_checkpoint_is_named_and_leaves_the_model_untouched(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    ckpt.save_model(
        path, tiny_gpt(0, GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)).state_dict()
    )
    model = tiny_gpt(1)
    before = model.state_dict()
    with pytest.raises(
        CheckpointError, match=r"transformer\.wte\.weight has shape \(11, 16\), the model's is \(11, 8\)"
    ):
        ckpt.load_model(path, model)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])

    ckpt.save_model(
        path, tiny_gpt(0, GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)).state_dict()
    )
    with pytest.raises(CheckpointError, match=r"lacks transformer\.h\.1\."):
        ckpt.load_model(path, model)


@pytest.mark.parametrize("content", [b"", b"\x00" * 3, b"garbage that is not safetensors at all", None])
def test_corrupt_or_missing_weight_files_raise_checkpoint_errors(tmp_path, content):
    path = tmp_path / "ckpt.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="does not exist|not a readable safetensors file"):
        ckpt.load_model(path, tiny_gpt(0))


def test_a_truncated_weight_file_is_caught(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    ckpt.save_model(path, tiny_gpt(0).state_dict())
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        ckpt.load_model(path, tiny_gpt(0))


def test_training_state_round_trips_and_torn_pairs_are_detected(tmp_path):
    arrays = {"model.w": np.arange(6, dtype=np.float32).reshape(2, 3), "optimizer.0.exp_avg": np.ones(3, np.float32)}
    info = {"iter": 5, "rng": {"state": 2**100 + 3}}  # bit-generator states are big ints, JSON keeps them
    ckpt.save_train_state(tmp_path, arrays, info)
    loaded_arrays, loaded_info = ckpt.load_train_state(tmp_path)
    assert loaded_info["iter"] == 5 and loaded_info["rng"]["state"] == 2**100 + 3
    np.testing.assert_array_equal(loaded_arrays["model.w"], arrays["model.w"])

    first_json = (tmp_path / ckpt.STATE_JSON_FILE).read_bytes()
    ckpt.save_train_state(tmp_path, arrays, {**info, "iter": 6})
    (tmp_path / ckpt.STATE_JSON_FILE).write_bytes(first_json)  # as if a crash came between the two writes
    with pytest.raises(CheckpointError, match="different saves"):
        ckpt.load_train_state(tmp_path)


def test_unwritable_run_directory_is_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write to the run directory"):
        ckpt.check_writable_dir(blocker / "run")
    assert ckpt.check_writable_dir(tmp_path / "new" / "run").is_dir()
