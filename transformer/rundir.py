"""One trainer at a time: the lock on a run directory.

A trainer holds an OS file lock (`flock`) on `train.lock` in the run directory for as long
as it writes there. The operating system drops the lock when the process ends, however it
ends (SIGKILL and power loss included), so a killed run never leaves a stale lock behind and
`--resume` needs no clean-up. The lock file keeps the holder's pid while it is held, so a
second trainer can say whom it is waiting for.

Readers take no lock: every run file is replaced by an atomic rename, so `sample` reads the
last complete checkpoint even while a trainer writes the next one.

The lock is taken wherever the run directory is written; with data-parallel training that
is rank 0 alone. On systems without `fcntl` (Windows) the directory is not locked (and no lock file is made).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformer.atomic import CheckpointError, RunWriteError, remove_temporaries

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = "train.lock"
# A trainer that was just stopped (Ctrl-C, an MPI abort ending its job) may still be exiting,
# its lock not yet dropped, when the next command starts: give it this long.
EXIT_GRACE_SECONDS = 2.0


@contextmanager
def locked_run_dir(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock on `run_dir` (which must exist) for the duration of the `with` block.

    Raises CheckpointError naming the other trainer's pid if one holds it already, or a
    RunWriteError if the lock file cannot be written. Once locked, temporary files that a
    killed writer left behind are removed: no other process can be writing them.
    """
    if fcntl is None:
        yield Path(run_dir)
        return
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        if not _lock_within(fd, EXIT_GRACE_SECONDS):
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise CheckpointError(
                f"{run_dir} is being written by another trainer "
                f"({f'pid {holder}' if holder else 'starting up'}); wait for it to finish or stop it"
            )
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError as e:
            raise cannot_write(path, e) from None
        remove_temporaries(run_dir)
        try:
            yield Path(run_dir)
        finally:
            try:
                os.ftruncate(fd, 0)  # an unheld lock names nobody
            except OSError:
                pass  # the lock goes with the file descriptor all the same
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _lock_within(fd: int, seconds: float) -> bool:
    """Take the exclusive lock on `fd`, trying again for up to `seconds`; whether it was taken."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def cannot_write(path: Path, error: OSError) -> RunWriteError:
    return RunWriteError(f"cannot write {path}: {error.strerror or error}")
