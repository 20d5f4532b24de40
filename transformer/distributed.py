"""Data-parallel training over MPI: the ranks of one job, and what they say to each other.

`mpiexec -n N minigrad-gpt train ...` starts N copies of the trainer, the ranks 0..N-1.
Each holds the whole model and draws the same global batch the one-process run would draw
(their batch generators start from the same seed); rank r runs forward and backward on its
own rows of it, its shard. One all-reduce then sums the ranks' gradients, each weighted by
its share of the rows, into the gradient of the whole batch's mean loss, so every rank
takes the same AdamW step and the model stays identical everywhere:

    loss(batch) = sum_r  (B_r / B) * loss(shard_r)        (mean loss over B rows, B_r of them on rank r)

A batch that does not divide by N is split exactly this way too (shards of 3, 3, 2, 2, 2
rows for 12 rows on 5 ranks); fewer rows than ranks is refused.

Started without mpiexec (or with one rank), `world()` is a single process and every method
here returns at once: the one-process trainer runs no MPI code and needs no mpi4py.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

# What launchers put in each rank's environment before MPI starts: MPICH (PMI), Open MPI, PMIx.
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


class DistributedError(RuntimeError):
    """The job was started by mpiexec but cannot run as one (mpi4py is missing)."""


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 when not launched by mpiexec); needs no MPI.

    The command line reads it to print usage errors once, before MPI has started.
    """
    for name in RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def launched_size() -> int:
    for name in SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def shard_rows(batch_size: int, rank: int, size: int) -> slice:
    """Rank `rank`'s rows of a batch of `batch_size`: contiguous, the first batch_size % size ranks one more."""
    per, extra = divmod(batch_size, size)
    start = rank * per + min(rank, extra)
    return slice(start, start + per + (rank < extra))


class World:
    """The ranks of one training job: `rank`, `size`, and the collective calls the trainer makes."""

    def __init__(self, comm: Any = None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self._buffer = np.zeros(0, dtype=np.float32)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run directory and prints."""
        return self.rank == 0

    def ranks_on_this_machine(self) -> int:
        if self.comm is None:
            return 1
        from mpi4py import MPI

        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return node.Get_size()
        finally:
            node.Free()

    def shard(self, batch_size: int) -> slice:
        """This rank's rows of every global batch of `batch_size` rows."""
        return shard_rows(batch_size, self.rank, self.size)

    def sum_gradients(self, params: list, weight: float, extras: list[float]) -> list[float]:
        """Replace each parameter's .grad by the sum over ranks of weight * grad, in one all-reduce.

        The gradients are copied into one flat float32 buffer (one call, not one per parameter),
        summed there, and each .grad becomes its stretch of the buffer (a view: nothing is copied
        back; the next step's backward makes new gradients before the buffer is filled again).
        `extras` (numbers such as the shard's loss) ride along at its end, summed unweighted, and
        their sums are returned.
        """
        if self.comm is None:
            return list(extras)
        sizes = [p.grad.size for p in params]
        total = sum(sizes) + len(extras)
        if self._buffer.size != total:
            self._buffer = np.empty(total, dtype=np.float32)
        buffer, offset = self._buffer, 0
        for p, n in zip(params, sizes):
            np.multiply(p.grad.reshape(-1), weight, out=buffer[offset : offset + n])
            offset += n
        buffer[offset:] = extras
        self.sum_in_place(buffer)
        offset = 0
        for p, n in zip(params, sizes):
            p.grad = buffer[offset : offset + n].reshape(p.grad.shape)
            offset += n
        return [float(v) for v in buffer[offset:]]

    def sum_in_place(self, values: np.ndarray) -> np.ndarray:
        """values summed element by element over the ranks, in place (the same result on every rank)."""
        if self.comm is not None:
            from mpi4py import MPI

            self.comm.Allreduce(MPI.IN_PLACE, values, op=MPI.SUM)
        return values

    def agree(self, work: Callable[[], T], errors: tuple[type[Exception], ...]) -> T:
        """work() on every rank; if it raised one of `errors` anywhere, raise it on every rank.

        The lowest failing rank's error is raised everywhere, so bad input ends every rank the
        same way (and rank 0 says so once) instead of leaving some ranks waiting for the others.
        Only a class index and the message cross the wire, as plain byte buffers.
        """
        try:
            result, failure = work(), None
        except errors as e:
            if self.comm is None:
                raise
            result, failure = None, e
        if self.comm is None:
            return result
        from mpi4py import MPI

        first = np.array([self.rank if failure is not None else self.size], dtype=np.int64)
        self.comm.Allreduce(MPI.IN_PLACE, first, op=MPI.MIN)
        if first[0] == self.size:
            return result
        header = np.zeros(2, dtype=np.int64)  # the error's class index, its message's length
        if failure is not None and self.rank == first[0]:
            message = str(failure).encode("utf-8")
            header[:] = [next(i for i, kind in enumerate(errors) if isinstance(failure, kind)), len(message)]
        self.comm.Bcast(header, root=int(first[0]))
        text = np.zeros(int(header[1]), dtype=np.uint8)
        if self.rank == first[0]:
            text[:] = np.frombuffer(message, dtype=np.uint8)
        self.comm.Bcast(text, root=int(first[0]))
        if failure is not None and self.rank == first[0]:
            raise failure
        raise errors[int(header[0])](text.tobytes().decode("utf-8"))

    def abort(self, status: int = 1) -> None:
        """End every rank of the job at once (MPI_Abort)."""
        if self.comm is not None:
            self.comm.Abort(status)


_world: dict[str, World] = {}


def world() -> World:
    """The job this process belongs to: N ranks under mpiexec -n N, else a World of one.

    Under MPI an uncaught exception on any rank prints its traceback and aborts the whole job:
    the other ranks would otherwise wait for it in the next all-reduce forever.
    """
    if "world" not in _world:
        _world["world"] = _start() if launched_size() > 1 else World()
    return _world["world"]


def _start() -> World:
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(
            f"mpiexec started {launched_size()} processes, but mpi4py is not installed, so they cannot "
            "train as one; install it with pip install 'minigrad[mpi]' or run without mpiexec"
        ) from None
    w = World(MPI.COMM_WORLD)
    previous_hook = sys.excepthook

    def abort_on_uncaught(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):  # Ctrl-C reaches every rank: let each end itself
            previous_hook(kind, value, tb)
            return
        traceback.print_exception(kind, value, tb)
        sys.stderr.flush()
        w.abort(1)

    sys.excepthook = abort_on_uncaught
    return w


__all__ = ["DistributedError", "World", "launched_rank", "launched_size", "shard_rows", "world"]
