"""Run files on disk: atomic writes, model weights and the training state, in safetensors and JSON.

A run directory holds

    ckpt.safetensors          the model's weights only, under nanoGPT's names, so PyTorch users
                              load it with `model.load_state_dict(load_file(path), strict=True)`
    train_state.safetensors   what resuming needs that is an array: the latest weights
                              ("model.<name>") and the optimizer's moments ("optimizer.<i>.<name>")
    train_state.json          the rest: iteration, best validation loss, RNG states, the
                              optimizer's numbers, the evaluation history
    config.json               {"model": {GPTConfig fields}, "train": {training flags}}
    vocab.json                the tokenizer's characters

Every file is written to a temporary file in the same directory and renamed over the old one
(`os.replace` is atomic on POSIX and Windows), so a crash or Ctrl-C mid-write leaves the
previous version whole. The two training-state files are written one after the other; both
carry the same save id, so a pair torn apart by a crash between the writes is detected.
Loading runs no code: safetensors holds raw arrays, JSON holds numbers and strings.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

CKPT_FILE = "ckpt.safetensors"
STATE_ARRAYS_FILE = "train_state.safetensors"
STATE_JSON_FILE = "train_state.json"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
LOG_FILE = "log.csv"
PLOT_FILE = "loss.png"


class CheckpointError(ValueError):
    """A run directory cannot be written, or a run file is missing, corrupt, or does not fit its model."""


# ---------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the new one, never half."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    # os.open with mode 0o666 lets the umask decide the permissions, as for any new file
    # (tempfile.mkstemp would make the run files readable by their owner only)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create the directory if needed and prove a file can be written in it; CheckpointError otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise CheckpointError(f"cannot write to the run directory {path}: {e.strerror or e}") from None
    return path


# ---------------------------------------------------------------- safetensors


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write named arrays as a safetensors file, atomically.

    safetensors refuses arrays that share memory (a tied weight seen under two names), so
    each array is copied into its own contiguous buffer first.
    """
    arrays = {name: np.ascontiguousarray(array).copy() for name, array in arrays.items()}
    atomic_write_bytes(path, safetensors_save(arrays, metadata=metadata))


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a safetensors file; CheckpointError if it is missing or corrupt."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    try:
        arrays = safetensors_load(data)
        # the header is JSON: its first 8 bytes give its length, "__metadata__" holds the strings
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    return arrays, metadata


def save_model(path: str | os.PathLike, state_dict: dict[str, np.ndarray], **metadata: Any) -> None:
    """A model's state dict (nanoGPT names; a tied weight under both of its names) as safetensors."""
    save_arrays(path, dict(state_dict), {k: str(v) for k, v in metadata.items()})


def load_model(path: str | os.PathLike, model) -> dict[str, str]:
    """Load `path` into `model` (strict: every name must match, every shape fit); return the metadata.

    The arrays are checked before anything is copied, so a mismatched file leaves the model as it was.
    """
    arrays, metadata = load_arrays(path)
    check_state_fits(arrays, model.state_dict(), str(path))
    model.load_state_dict(arrays, strict=True)
    return metadata


def check_state_fits(arrays: dict[str, np.ndarray], expected: dict[str, np.ndarray], source: str) -> None:
    """CheckpointError naming the first difference in names or shapes between two state dicts."""
    missing = [k for k in expected if k not in arrays]
    unexpected = [k for k in arrays if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
        if unexpected:
            parts.append(f"has unexpected {', '.join(unexpected[:3])}" + (" ..." if len(unexpected) > 3 else ""))
        raise CheckpointError(f"{source} does not match the model: it {' and '.join(parts)}")
    for name, array in expected.items():
        if arrays[name].shape != array.shape:
            raise CheckpointError(
                f"{source} does not match the model: {name} has shape {tuple(arrays[name].shape)}, "
                f"the model's is {tuple(array.shape)}"
            )


# ---------------------------------------------------------------- training state


def save_train_state(run_dir: str | os.PathLike, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
    """Write the training state: `arrays` to train_state.safetensors, `info` (JSON-able) to train_state.json."""
    run_dir = Path(run_dir)
    save_id = uuid.uuid4().hex
    save_arrays(run_dir / STATE_ARRAYS_FILE, arrays, {"save_id": save_id})
    atomic_write_json(run_dir / STATE_JSON_FILE, {**info, "save_id": save_id})


def load_train_state(run_dir: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, info) as `save_train_state` wrote them; CheckpointError if missing, corrupt or torn."""
    run_dir = Path(run_dir)
    info = read_json(run_dir / STATE_JSON_FILE)
    arrays, metadata = load_arrays(run_dir / STATE_ARRAYS_FILE)
    if metadata.get("save_id") != info.get("save_id"):
        raise CheckpointError(
            f"{run_dir / STATE_ARRAYS_FILE} and {run_dir / STATE_JSON_FILE} come from different saves "
            "(the run was stopped while saving); the training state cannot be resumed"
        )
    return arrays, info


def read_json(path: str | os.PathLike) -> Any:
    """The JSON object in `path`; CheckpointError if it is missing or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
