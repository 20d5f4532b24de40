"""The training state on disk: what resuming needs, in train_state.safetensors and train_state.json.

The arrays (the latest weights as "model.<name>", the optimizer's moments as
"optimizer.<i>.<name>") go to safetensors; everything else (iteration, best validation loss,
random generators' states, the optimizer's step counts and hyper-parameters, the evaluation
history) to JSON. Both files are written before either is renamed into place and carry the
same save id, so a pair torn apart by a crash between the two renames is detected; the
arrays' metadata also hold the sha256 of the JSON file, so a flipped bit in either is found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from minigrad.nn import Module
from transformer.atomic import CheckpointError, atomic_write_files, json_bytes
from transformer.checkpoint import (
    CKPT_FILE,
    CONFIG_FILE,
    STATE_ARRAYS_FILE,
    STATE_JSON_FILE,
    check_model_sizes,
    check_saved_config,
    check_shapes_fit,
    check_state_fits,
    load_arrays,
    parse_json,
    read_bytes,
    safetensors_bytes,
)
from transformer.gpt import GPTConfig, parameter_shapes

STATE_JSON_SHA256 = "json_sha256"  # metadata key of train_state.safetensors: the checksum of train_state.json

TUPLE_SETTINGS = ("betas", "ns_coefficients")  # optimizer settings that JSON gives back as lists


def save_train_state(
    run_dir: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    info: dict[str, Any],
    also: dict[Path, bytes] | None = None,
) -> None:
    """Write the training state: `arrays` to train_state.safetensors, `info` (JSON-able) to train_state.json,
    and the files `also` holds (path -> bytes) with them.

    Every file is written before any replaces its old version (atomic_write_files), so a
    failed write leaves the previous ones whole; the arrays' metadata hold the JSON's checksum.
    """
    run_dir = Path(run_dir)
    save_id = uuid.uuid4().hex
    info_bytes = json_bytes({**info, "save_id": save_id})
    metadata = {"save_id": save_id, STATE_JSON_SHA256: hashlib.sha256(info_bytes).hexdigest()}
    state = {run_dir / STATE_ARRAYS_FILE: safetensors_bytes(arrays, metadata), run_dir / STATE_JSON_FILE: info_bytes}
    atomic_write_files({**(also or {}), **state})


def load_train_state(run_dir: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, info) as `save_train_state` wrote them; CheckpointError if missing, corrupt or torn."""
    run_dir = Path(run_dir)
    json_path, arrays_path = run_dir / STATE_JSON_FILE, run_dir / STATE_ARRAYS_FILE
    info_bytes = read_bytes(json_path)
    info = parse_json(info_bytes, json_path)
    if not isinstance(info, dict):
        raise CheckpointError(f"{json_path} is not a training state (expected a JSON object)")
    arrays, metadata = load_arrays(arrays_path)
    if info.get("save_id") != metadata.get("save_id"):
        raise CheckpointError(
            f"{arrays_path} and {json_path} come from different saves "
            "(the run was stopped while saving); the training state cannot be resumed"
        )
    saved_digest = metadata.get(STATE_JSON_SHA256)
    if saved_digest is not None and hashlib.sha256(info_bytes).hexdigest() != saved_digest:
        raise CheckpointError(f"{json_path} is damaged: it does not match the checksum saved in {arrays_path}")
    return arrays, info


def check_resume_fits(run_dir: str | os.PathLike, config: GPTConfig, state_arrays: dict[str, np.ndarray]) -> None:
    """Before a resumed model is built: the training state's weights and ckpt.safetensors must be whole,
    have the shapes of `config` and (the checkpoint) have been saved with it; CheckpointError naming
    the first differing tensor or field otherwise."""
    run_dir = Path(run_dir)
    check_model_sizes(dataclasses.asdict(config), run_dir / CONFIG_FILE)
    expected, model = parameter_shapes(config), f"the model in {run_dir / CONFIG_FILE}"
    weights = {name: array.shape for name, array in model_weights(state_arrays).items()}
    check_shapes_fit(weights, expected, str(run_dir / STATE_ARRAYS_FILE), model)
    _, metadata = load_arrays(run_dir / CKPT_FILE, expected, model)  # the best weights so far: resuming keeps them
    check_saved_config(metadata, config, run_dir / CKPT_FILE, f"{run_dir / CONFIG_FILE} (its training flags)")


def model_weights(state_arrays: dict[str, Any]) -> dict[str, Any]:
    """The model's entries of the training state's arrays, under the model's own names."""
    return {name[len("model.") :]: value for name, value in state_arrays.items() if name.startswith("model.")}


# ---------------------------------------------------------------- weights and optimizer <-> files


def pack_state(model: Module, optimizer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The weights and optimizer state split into arrays (for safetensors) and numbers (for JSON)."""
    arrays = {f"model.{name}": value for name, value in model.state_dict().items()}
    opt = optimizer.state_dict()
    numbers: dict[str, dict[str, Any]] = {}
    for index, entry in opt["state"].items():
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                arrays[f"optimizer.{index}.{name}"] = value
            else:
                numbers.setdefault(str(index), {})[name] = value
    return arrays, {"state": numbers, "param_groups": opt["param_groups"]}  # JSON turns tuples into lists


def unpack_state(model: Module, optimizer, arrays: dict[str, np.ndarray], numbers: dict, source: str) -> None:
    """Put what `pack_state` gave back into the model and optimizer (checked first: a bad file changes nothing)."""
    weights = model_weights(arrays)
    check_state_fits(weights, model.state_dict(), source)
    state: dict[int, dict[str, Any]] = {int(i): dict(entry) for i, entry in numbers["state"].items()}
    for name, value in arrays.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    groups = [
        {name: tuple(value) if name in TUPLE_SETTINGS else value for name, value in g.items()}
        for g in numbers["param_groups"]
    ]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{source}: the optimizer state does not fit the model ({e})") from None
    model.load_state_dict(weights, strict=True)
