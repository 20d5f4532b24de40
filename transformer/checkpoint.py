"""Run files on disk: model weights in safetensors, checked before they are read, and the run loader.

A run directory holds

    ckpt.safetensors          the model's weights only, under nanoGPT's names, so PyTorch users
                              load it with `model.load_state_dict(load_file(path), strict=True)`
    train_state.safetensors   what resuming needs that is an array: the latest weights
                              ("model.<name>") and the optimizer's moments ("optimizer.<i>.<name>")
    train_state.json          the rest: iteration, best validation loss, RNG states, the
                              optimizer's numbers, the evaluation history (transformer/train_state.py)
    config.json               {"model": {GPTConfig fields}, "train": {training flags}}
    vocab.json                the tokenizer: its characters, or its BPE merges and split pattern
    log.csv, loss.png         the evaluations, as a table and as a plot (transformer/runlog.py)

Every file is written whole or not at all (transformer/atomic.py). The safetensors files
written here carry a sha256 of their contents (tensor entries, metadata and data) in their
metadata: a flipped bit anywhere in them is found at load time (files from elsewhere, e.g.
PyTorch's, carry no checksum and load as they are).

Loading reads and checks a file's header (names, dtypes, shapes, and offsets that fit the
file's size) before its data, and compares the shapes with the model they are meant for
(`parameter_shapes` of its config) before that model is built, so a config that disagrees
with its checkpoint is an error naming the first differing tensor, not a huge allocation.
ckpt.safetensors also keeps the model config its weights were saved with, and a config.json
that says otherwise (another n_head, activation, ...) is an error naming the field.
Loading runs no code: safetensors holds raw arrays, JSON holds numbers and strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from transformer.atomic import CheckpointError, atomic_write_bytes
from transformer.atomic import RunWriteError as RunWriteError  # the errors of run files, where loaders look for them
from transformer.gpt import GPT, GPTConfig, parameter_shapes
from transformer.tokenizer import Tokenizer, load_tokenizer

CKPT_FILE = "ckpt.safetensors"
STATE_ARRAYS_FILE = "train_state.safetensors"
STATE_JSON_FILE = "train_state.json"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
LOG_FILE = "log.csv"
PLOT_FILE = "loss.png"


# ---------------------------------------------------------------- safetensors

# bytes per element of each safetensors dtype
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
WEIGHT_DTYPES = ("F16", "F32", "F64")  # floating point that NumPy reads and a model copies from
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
CHECKSUM_KEY = "sha256"  # metadata key: the checksum of everything else in the file (file_checksum)
MODEL_CONFIG_KEY = "model_config"  # metadata key of ckpt.safetensors: the GPTConfig of its weights, as JSON
# GPTConfig fields the weights do not depend on: dropout acts in training only (a resumed run may
# change it), fused picks kernels that are tested equal to the definitions they replace
UNCHECKED_FIELDS = ("dropout", "fused")


def file_checksum(tensors: dict[str, tuple], metadata: dict[str, str], data: bytes | memoryview) -> str:
    """The sha256 of a safetensors file's contents: every tensor's entry, the metadata other than
    this checksum, and the data; a changed byte anywhere in the file changes it."""
    described = json.dumps({"tensors": tensors, "metadata": metadata}, sort_keys=True)
    digest = hashlib.sha256(described.encode("utf-8"))
    digest.update(data)
    return digest.hexdigest()


def safetensors_bytes(arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors file holding `arrays`, with its checksum in its metadata.

    safetensors refuses arrays that share memory (a tied weight seen under two names), so
    each array is copied into its own contiguous buffer first. The tensors' entries and data
    depend on the arrays alone, so the checksum of a first serialisation holds for the second.
    """
    arrays = {name: np.ascontiguousarray(array).copy() for name, array in arrays.items()}
    metadata = metadata or {}
    plain = safetensors_save(arrays, metadata=metadata)
    tensors, _, header_len = read_header(io.BytesIO(plain), len(plain), Path("a new safetensors file"))
    checksum = file_checksum(tensors, metadata, memoryview(plain)[8 + header_len :])
    return safetensors_save(arrays, metadata={**metadata, CHECKSUM_KEY: checksum})


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write named arrays as a safetensors file, atomically, with the checksum of its contents."""
    atomic_write_bytes(path, safetensors_bytes(arrays, metadata))


def unreadable(path: str | os.PathLike, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a readable safetensors file ({why})")


def read_header(file, size: int, path: Path) -> tuple[dict[str, tuple], dict[str, str], int]:
    """(tensors: name -> (dtype, shape, (begin, end)), metadata, header length) of an open safetensors file.

    Reads only the 8-byte length and the JSON header, and checks that every tensor's dtype,
    shape and byte range fit inside the file: shapes read here are safe to allocate.
    """
    prefix = file.read(8)
    if len(prefix) < 8:
        raise unreadable(path, f"{size} bytes, too short for a header")
    header_len = int.from_bytes(prefix, "little")
    if header_len > min(MAX_HEADER_BYTES, size - 8):
        raise unreadable(path, f"its header claims {header_len} bytes, the file holds {size - 8}")
    try:
        header = json.loads(file.read(header_len).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise unreadable(path, f"its header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise unreadable(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise unreadable(path, "its metadata are not strings")
    tensors = {name: tensor_entry(entry, size - 8 - header_len) for name, entry in header.items()}
    misfit = next((name for name, entry in tensors.items() if entry is None), None)
    if misfit is not None:
        raise unreadable(path, f"the entry of {misfit!r} does not fit the file")
    return tensors, metadata, header_len


def tensor_entry(entry: Any, data_size: int) -> tuple[str, tuple[int, ...], tuple[int, int]] | None:
    """(dtype, shape, (begin, end)) of a header entry whose dtype, shape and byte range fit
    `data_size` bytes of data; None for anything else."""
    try:
        dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        fits = (
            dtype in DTYPE_SIZES
            and all(type(n) is int and n >= 0 for n in shape)
            and type(begin) is int
            and type(end) is int
            and 0 <= begin <= end <= data_size
            and end - begin == math.prod(shape) * DTYPE_SIZES[dtype]
        )
    except (KeyError, TypeError, ValueError):
        return None
    return (dtype, shape, (begin, end)) if fits else None


def load_arrays(
    path: str | os.PathLike, expected: dict[str, tuple[int, ...]] | None = None, model: str = "the model"
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a safetensors file; CheckpointError if it is missing, corrupt or does not fit.

    The header is read and checked first (read_header). With `expected` (name -> shape, e.g.
    `parameter_shapes(config)`, the shapes of `model`), the file must hold exactly those names
    and shapes, as floating point, before its data are read. A file with a checksum in its
    metadata must match it (files written elsewhere, e.g. by PyTorch, carry none).
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            tensors, metadata, header_len = read_header(file, size, path)
            if expected is not None:
                check_shapes_fit({name: shape for name, (_, shape, _) in tensors.items()}, expected, str(path), model)
                for name in expected:
                    if tensors[name][0] not in WEIGHT_DTYPES:
                        raise CheckpointError(
                            f"{path}: {name} is stored as {tensors[name][0]}, expected floating point "
                            f"({', '.join(WEIGHT_DTYPES)})"
                        )
            file.seek(0)
            blob = file.read()  # the same open file: a checkpoint renamed over this one meanwhile is not mixed in
    except OSError as e:
        raise unreadable_file(path, e) from None
    saved_checksum = metadata.pop(CHECKSUM_KEY, None)  # the file's own business, not the caller's
    data = memoryview(blob)[8 + header_len :]
    if saved_checksum is not None and file_checksum(tensors, metadata, data) != saved_checksum:
        raise CheckpointError(f"{path} is damaged: its contents do not match the checksum saved with them")
    try:
        arrays = safetensors_load(blob)
    except (SafetensorError, ValueError) as e:
        raise unreadable(path, str(e)) from None
    return arrays, metadata


def model_bytes(state_dict: dict[str, np.ndarray], config: GPTConfig | None = None, **metadata: Any) -> bytes:
    """A model's state dict (nanoGPT names; a tied weight under both of its names) as safetensors,
    with `config`, the GPTConfig the weights belong to, as JSON in the metadata (check_saved_config)."""
    if config is not None:
        metadata[MODEL_CONFIG_KEY] = json.dumps(dataclasses.asdict(config), sort_keys=True)
    return safetensors_bytes(dict(state_dict), {k: str(v) for k, v in metadata.items()})


def save_model(
    path: str | os.PathLike, state_dict: dict[str, np.ndarray], config: GPTConfig | None = None, **metadata: Any
) -> None:
    """Write `model_bytes` atomically."""
    atomic_write_bytes(path, model_bytes(state_dict, config, **metadata))


def check_saved_config(metadata: dict[str, str], config: GPTConfig, path: str | os.PathLike, source: str) -> None:
    """CheckpointError naming the first field of `config` (read from `source`) that differs from
    the config saved with the weights in `path`. Shapes alone miss a changed n_head, activation,
    qk_norm or softcap: the same weights would compute other numbers. Checkpoints saved before
    the config went into their metadata hold none, and are checked by their shapes alone.
    """
    if MODEL_CONFIG_KEY not in metadata:
        return
    try:
        saved = json.loads(metadata[MODEL_CONFIG_KEY])
    except (json.JSONDecodeError, RecursionError):
        saved = None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: the model config saved with the weights is not a JSON object")
    defaults = dataclasses.asdict(GPTConfig())  # a field newer than the checkpoint: it was saved with the default
    for name, value in dataclasses.asdict(config).items():
        was = saved.get(name, defaults[name])
        if name not in UNCHECKED_FIELDS and was != value:
            raise CheckpointError(
                f"{path} was saved by a model with {name} = {json.dumps(was)}, but {source} says {json.dumps(value)}"
            )


def check_shapes_fit(
    found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], source: str, model: str = "the model"
) -> None:
    """CheckpointError naming the first tensor (in `expected`'s order) whose name or shape differs."""

    def mismatch(what: str) -> CheckpointError:
        return CheckpointError(f"{source} does not match {model}: {what}")

    for name, shape in expected.items():
        if name not in found:
            more = sum(1 for n in expected if n not in found) - 1
            raise mismatch(f"it lacks {name}" + (f" (and {more} more)" if more else ""))
        if tuple(found[name]) != tuple(shape):
            raise mismatch(f"{name} has shape {tuple(found[name])}, the model's is {tuple(shape)}")
    unexpected = [name for name in found if name not in expected]
    if unexpected:
        more = len(unexpected) - 1
        raise mismatch(f"it has unexpected {unexpected[0]}" + (f" (and {more} more)" if more else ""))


def check_state_fits(arrays: dict[str, np.ndarray], expected: dict[str, np.ndarray], source: str) -> None:
    """check_shapes_fit for two state dicts."""
    check_shapes_fit({k: a.shape for k, a in arrays.items()}, {k: a.shape for k, a in expected.items()}, source)


# ---------------------------------------------------------------- the run's model and tokenizer

# sane limits on a saved model's sizes, checked before anything is computed from them
MAX_LAYERS = 10_000
MAX_SIZE = 2**31 - 1


def check_model_sizes(fields: dict[str, Any], source: str | os.PathLike) -> None:
    """CheckpointError unless every size of a model config is an integer within the sane limits."""
    limits = dict(vocab_size=MAX_SIZE, block_size=MAX_SIZE, n_layer=MAX_LAYERS, n_head=MAX_SIZE, n_embd=MAX_SIZE)
    for name, limit in limits.items():
        value = fields.get(name)
        if type(value) is not int or not 1 <= value <= limit:
            raise CheckpointError(f"{source}: model.{name} must be an integer in [1, {limit}], got {value!r}")
    if type(fields.get("bias", True)) is not bool:
        raise CheckpointError(f"{source}: model.bias must be true or false, got {fields['bias']!r}")


def read_model_config(path: str | os.PathLike) -> GPTConfig:
    """The GPTConfig of config.json's "model" entry, its sizes checked (check_model_sizes).

    Nothing is allocated from the sizes here: `parameter_shapes` turns them into the shapes a
    checkpoint's header must have before a model is built.
    """
    saved = read_json(path)
    fields = saved.get("model") if isinstance(saved, dict) else None
    if not isinstance(fields, dict):
        raise CheckpointError(f'{path} holds no model config (expected {{"model": {{...}}, ...}})')
    check_model_sizes(fields, path)
    try:
        return GPTConfig(**fields)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path} holds no usable model config ({e})") from None


def load_vocab(path: str | os.PathLike) -> Tokenizer:
    """The run's tokenizer, of either kind; CheckpointError if the file is missing or not a tokenizer."""
    try:
        return load_tokenizer(path)
    except OSError as e:
        raise unreadable_file(path, e) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path} is not a tokenizer file ({e})") from None


def load_run(run_dir: str | os.PathLike) -> tuple[GPT, Tokenizer]:
    """The model in `run_dir` (config.json + ckpt.safetensors), in eval mode, and its tokenizer.

    Every mismatch between the files (shapes, names, vocabulary size) is a CheckpointError, found
    before the model is built.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"no run in {run_dir}; train one with: minigrad-gpt train --out {run_dir}")
    config = read_model_config(run_dir / CONFIG_FILE)
    tokenizer = load_vocab(run_dir / VOCAB_FILE)
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{run_dir / VOCAB_FILE} has {tokenizer.vocab_size} tokens, "
            f"but the model in {run_dir / CONFIG_FILE} has vocab_size {config.vocab_size}"
        )
    model_name = f"the model in {run_dir / CONFIG_FILE}"
    arrays, metadata = load_arrays(run_dir / CKPT_FILE, parameter_shapes(config), model_name)
    check_saved_config(metadata, config, run_dir / CKPT_FILE, str(run_dir / CONFIG_FILE))
    model = GPT(config, rng=np.random.default_rng(0))  # the weights are replaced by the checkpoint's
    model.load_state_dict(arrays, strict=True)
    return model.eval(), tokenizer


# ---------------------------------------------------------------- JSON


def unreadable_file(path: str | os.PathLike, error: OSError) -> CheckpointError:
    """The one-line error for a run file that cannot be read: missing, or why not."""
    if isinstance(error, FileNotFoundError):
        return CheckpointError(f"{path} does not exist")
    return CheckpointError(f"cannot read {path}: {error.strerror or error}")


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of `path`; CheckpointError if it is missing or cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise unreadable_file(path, e) from None


def parse_json(data: bytes, path: str | os.PathLike) -> Any:
    """The JSON value in `data` (read from `path`, named in errors); CheckpointError if it is not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in `path`; CheckpointError if it is missing or not JSON."""
    return parse_json(read_bytes(path), path)
