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
(`os.replace` is atomic on POSIX and Windows), so a crash, Ctrl-C or a full disk mid-write
leaves the previous version whole, and a failed write removes its temporary file. The two
training-state files are both written before either is renamed; both carry the same save id,
so a pair torn apart by a crash between the two renames is detected.

The safetensors files this module writes carry a sha256 of their contents (tensor entries,
metadata and data) in their metadata, and train_state.safetensors also the sha256 of
train_state.json: a flipped bit anywhere in them is found at load time (files from elsewhere,
e.g. PyTorch's, carry no checksum and load as they are).

Loading reads and checks a file's header (names, dtypes, shapes, and offsets that fit the
file's size) before its data, and compares the shapes with the model they are meant for
before that model is built, so a config that disagrees with its checkpoint is an error
naming the first differing tensor, not a huge allocation. Loading runs no code: safetensors
holds raw arrays, JSON holds numbers and strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from transformer.gpt import GPTConfig

CKPT_FILE = "ckpt.safetensors"
STATE_ARRAYS_FILE = "train_state.safetensors"
STATE_JSON_FILE = "train_state.json"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
LOG_FILE = "log.csv"
PLOT_FILE = "loss.png"
# the files atomic writes rename into place: ".<name>.<32 hex digits>.tmp", the group <name>
TEMPORARY_NAME = re.compile(r"\.(.+)\.[0-9a-f]{32}\.tmp")


class CheckpointError(ValueError):
    """A run directory cannot be written, or a run file is missing, corrupt, or does not fit its model."""


class RunWriteError(CheckpointError, OSError):
    """A file could not be written: disk full, file too large, permission or file system lost.

    Also an OSError, so code that treats any failed write as "not cached" keeps doing so.
    """


# ---------------------------------------------------------------- atomic writes


def atomic_write_files(files: dict[str | os.PathLike, bytes]) -> None:
    """Write every file so that readers see either its old version or its new one, never half.

    Each file's bytes go to a temporary file beside it and reach the disk (fsync) before any
    file is renamed into place, so a failure while writing (an OSError: disk full, file too
    large, no permission, read-only file system) leaves every old file as it was. The
    temporary files are removed on every failure, Ctrl-C included, and the error becomes a
    RunWriteError naming the file and the reason.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in files.items():
            target = Path(target)
            temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
            staged.append((temporary, target))
            _write_durably(temporary, data)
        for temporary, target in staged:
            os.replace(temporary, target)
    except BaseException as error:
        for temporary, _ in staged:
            try:
                os.unlink(temporary)
            except OSError:
                pass  # already renamed into place, or never created
        if isinstance(error, OSError):
            raise write_error(target, error) from None
        raise


def _write_durably(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist) holding `data`, flushed to the disk."""
    # mode 0o666 lets the umask decide the permissions, as for any new file (tempfile.mkstemp
    # would make the run files readable by their owner only); O_BINARY matters on Windows only
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than it was given
            view = view[os.write(fd, view) :]
        os.fsync(fd)  # a full disk may only say so here, when the data are really written
    finally:
        os.close(fd)


def write_error(path: str | os.PathLike, error: OSError) -> RunWriteError:
    """The one-line error for a failed write of `path`: the file, the reason, and what survived."""
    reason = error.strerror or str(error)
    kept = f"; the previous {Path(path).name} is intact" if os.path.exists(path) else ""
    return RunWriteError(f"cannot write {path}: {reason}{kept}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see atomic_write_files); RunWriteError if it cannot be written."""
    atomic_write_files({path: data})


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """`obj` as the indented JSON text the run files hold."""
    return (json.dumps(obj, indent=1) + "\n").encode("utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def remove_temporaries(directory: str | os.PathLike) -> None:
    """Delete the temporary files a killed writer left in `directory`, as far as it may.

    Only safe while no other process writes there: the trainer calls it holding the run's lock.
    A leftover that cannot be deleted is harmless (nothing reads it) and stays.
    """
    for path in Path(directory).iterdir():
        if TEMPORARY_NAME.fullmatch(path.name):
            try:
                path.unlink()
            except OSError:
                pass


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

# bytes per element of each safetensors dtype
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
WEIGHT_DTYPES = ("F16", "F32", "F64")  # floating point that NumPy reads and a model copies from
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
CHECKSUM_KEY = "sha256"  # metadata key: the checksum of everything else in the file (file_checksum)


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


def read_header(file, size: int, path: Path) -> tuple[dict[str, tuple], dict[str, str], int]:
    """(tensors: name -> (dtype, shape, (begin, end)), metadata, header length) of an open safetensors file.

    Reads only the 8-byte length and the JSON header, and checks that every tensor's dtype,
    shape and byte range fit inside the file: shapes read here are safe to allocate.
    """

    def corrupt(why: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a readable safetensors file ({why})")

    prefix = file.read(8)
    if len(prefix) < 8:
        raise corrupt(f"{size} bytes, too short for a header")
    header_len = int.from_bytes(prefix, "little")
    if header_len > min(MAX_HEADER_BYTES, size - 8):
        raise corrupt(f"its header claims {header_len} bytes, the file holds {size - 8}")
    try:
        header = json.loads(file.read(header_len).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise corrupt(f"its header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise corrupt("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise corrupt("its metadata are not strings")
    data_size = size - 8 - header_len
    tensors = {}
    for name, entry in header.items():
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
            fits = False
        if not fits:
            raise corrupt(f"the entry of {name!r} does not fit the file")
        tensors[name] = (dtype, shape, (begin, end))
    return tensors, metadata, header_len


def load_arrays(
    path: str | os.PathLike, expected: dict[str, tuple[int, ...]] | None = None, model: str = "the model"
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a safetensors file; CheckpointError if it is missing, corrupt or does not fit.

    The header is read and checked first (read_header). With `expected` (name -> shape, e.g.
    `gpt_state_shapes(config)`, the shapes of `model`), the file must hold exactly those names
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
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    saved_checksum = metadata.pop(CHECKSUM_KEY, None)  # the file's own business, not the caller's
    data = memoryview(blob)[8 + header_len :]
    if saved_checksum is not None and file_checksum(tensors, metadata, data) != saved_checksum:
        raise CheckpointError(f"{path} is damaged: its contents do not match the checksum saved with them")
    try:
        arrays = safetensors_load(blob)
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    return arrays, metadata


def save_model(path: str | os.PathLike, state_dict: dict[str, np.ndarray], **metadata: Any) -> None:
    """A model's state dict (nanoGPT names; a tied weight under both of its names) as safetensors."""
    save_arrays(path, dict(state_dict), {k: str(v) for k, v in metadata.items()})


def load_model(path: str | os.PathLike, model) -> dict[str, str]:
    """Load `path` into `model` (strict: every name must match, every shape fit); return the metadata.

    The file's header is checked against the model before its data are read, so a mismatched
    file leaves the model as it was.
    """
    expected = {name: array.shape for name, array in model.state_dict().items()}
    arrays, metadata = load_arrays(path, expected)
    model.load_state_dict(arrays, strict=True)
    return metadata


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


# ---------------------------------------------------------------- the model's config and shapes

# sane limits on a saved model's sizes, checked before anything is computed from them
MAX_LAYERS = 10_000
MAX_SIZE = 2**31 - 1


def gpt_state_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """The names and shapes of `GPT(config).state_dict()`, in its order, without building the model."""
    V, T, C = config.vocab_size, config.block_size, config.n_embd

    def norm(name: str) -> dict[str, tuple[int, ...]]:
        has_bias = config.bias and config.norm == "layernorm"  # RMSNorm has a weight only
        return {f"{name}.weight": (C,), **({f"{name}.bias": (C,)} if has_bias else {})}

    def linear(name: str, out_features: int, in_features: int) -> dict[str, tuple[int, ...]]:
        bias = {f"{name}.bias": (out_features,)} if config.bias else {}
        return {f"{name}.weight": (out_features, in_features), **bias}

    shapes = {"transformer.wte.weight": (V, C), **({} if config.rotary else {"transformer.wpe.weight": (T, C)})}
    for i in range(config.n_layer):
        block = f"transformer.h.{i}"
        shapes |= norm(f"{block}.ln_1") | linear(f"{block}.attn.c_attn", 3 * C, C)
        shapes |= linear(f"{block}.attn.c_proj", C, C) | norm(f"{block}.ln_2")
        shapes |= linear(f"{block}.mlp.c_fc", 4 * C, C) | linear(f"{block}.mlp.c_proj", C, 4 * C)
    return shapes | norm("transformer.ln_f") | {"lm_head.weight": (V, C)}


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

    Nothing is allocated from the sizes here: `gpt_state_shapes` turns them into the shapes a
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


# ---------------------------------------------------------------- training state

STATE_JSON_SHA256 = "json_sha256"  # metadata key of train_state.safetensors: the checksum of train_state.json


def save_train_state(run_dir: str | os.PathLike, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
    """Write the training state: `arrays` to train_state.safetensors, `info` (JSON-able) to train_state.json.

    Both files are written before either replaces its old version (atomic_write_files), so a
    failed write leaves the previous pair whole; the arrays' metadata hold the JSON's checksum.
    """
    run_dir = Path(run_dir)
    save_id = uuid.uuid4().hex
    info_bytes = json_bytes({**info, "save_id": save_id})
    metadata = {"save_id": save_id, STATE_JSON_SHA256: hashlib.sha256(info_bytes).hexdigest()}
    atomic_write_files(
        {run_dir / STATE_ARRAYS_FILE: safetensors_bytes(arrays, metadata), run_dir / STATE_JSON_FILE: info_bytes}
    )


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
    """Before a resumed model is built: the training state's weights and ckpt.safetensors must be whole
    and have the shapes of `config`; CheckpointError naming the first differing tensor otherwise."""
    run_dir = Path(run_dir)
    check_model_sizes(dataclasses.asdict(config), run_dir / CONFIG_FILE)
    expected, model = gpt_state_shapes(config), f"the model in {run_dir / CONFIG_FILE}"
    weights = {name[len("model.") :]: a.shape for name, a in state_arrays.items() if name.startswith("model.")}
    check_shapes_fit(weights, expected, str(run_dir / STATE_ARRAYS_FILE), model)
    load_arrays(run_dir / CKPT_FILE, expected, model)  # the best weights so far: resuming keeps them


# ---------------------------------------------------------------- JSON


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of `path`; CheckpointError if it is missing or cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None


def parse_json(data: bytes, path: str | os.PathLike) -> Any:
    """The JSON value in `data` (read from `path`, named in errors); CheckpointError if it is not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in `path`; CheckpointError if it is missing or not JSON."""
    return parse_json(read_bytes(path), path)
