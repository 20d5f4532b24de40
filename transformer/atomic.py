"""Run files written whole or not at all: atomic, fsync'd writes, and the errors of run files.

Every file is written to a temporary file in the same directory, flushed to the disk, and
renamed over the old one (`os.replace` is atomic on POSIX and Windows), so a crash, Ctrl-C or
a full disk mid-write leaves the previous version whole, and a failed write removes its
temporary file. `atomic_write_files` stages several files before renaming any, so files that
belong together (the two halves of the training state) are both written or neither is.

The tokenizer, the corpus cache and the checkpoints all write through here; this module
knows files only, never a model.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

# the files atomic writes rename into place: ".<name>.<32 hex digits>.tmp", the group <name>
TEMPORARY_NAME = re.compile(r"\.(.+)\.[0-9a-f]{32}\.tmp")


class CheckpointError(ValueError):
    """A run directory cannot be written, or a run file is missing, corrupt, or does not fit its model."""


class RunWriteError(CheckpointError, OSError):
    """A file could not be written: disk full, file too large, permission or file system lost.

    Also an OSError, so code that treats any failed write as "not cached" keeps doing so.
    """


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
    kept = f"; the previous {Path(path).name} is intact" if os.path.isfile(path) else ""
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
