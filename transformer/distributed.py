"""Data-parallel training over MPI: the ranks of one job, and what they say to each other.

`mpiexec -n N minigrad-gpt train ...` starts N copies of the trainer, the ranks 0..N-1.
Each holds the whole model and draws the same global batch the one-process run would draw
(their batch generators start from the same seed); rank r runs forward and backward on its
own rows of it, its shard. The gradient of the whole batch's mean loss is the ranks'
gradients summed, each weighted by its share of the rows:

    loss(batch) = sum_r  (B_r / B) * loss(shard_r)        (mean loss over B rows, B_r of them on rank r)

Each parameter is updated by one rank, its owner (`World.owners`: contiguous runs of the
parameters, about 1/N of the numbers each). One reduce-scatter sums the weighted gradients
and hands each rank the sum for its own parameters only; each rank clips (with the norm of
all of them, `total_norm`) and takes the optimizer step for its parameters, a 1/N share of
AdamW's work; one all-gather then gives every rank every new value (`share_parameters`), so
the model stays identical everywhere. The optimizer's moments stay with their owners until
a save, when every rank gets them all (`share_optimizer_state`): a checkpoint is the same
as one process's, and resumes on any number of ranks.

A batch that does not divide by N is split exactly this way too (shards of 3, 3, 2, 2, 2
rows for 12 rows on 5 ranks); fewer rows than ranks is refused.

Started without mpiexec (or with one rank), `world()` is a single process and every method
here returns at once: the one-process trainer runs no MPI code and needs no mpi4py.
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from minigrad.optim import get_total_norm

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
        self._buffer = np.zeros(0, dtype=np.float32)  # the gradients of a step, side by side
        # the parameters side by side, and the views of it their .data are (share_parameters)
        self._parameters: tuple[np.ndarray, list[np.ndarray]] = (np.zeros(0, dtype=np.float32), [])

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

    def owners(self, params: list) -> list[int]:
        """The rank that updates each parameter: contiguous runs of `params`, about 1/size of their numbers each.

        Parameter i goes to the rank whose 1/size stretch of all the numbers holds its middle,
        so the runs are contiguous and in rank order (rank r's parameters are one stretch of a
        flat buffer) and every rank gets the same answer without a word exchanged.
        """
        sizes = [p.data.size for p in params]
        total, start, owner = max(sum(sizes), 1), 0, []
        for n in sizes:
            owner.append(min(self.size - 1, (2 * start + n) * self.size // (2 * total)))
            start += n
        return owner

    def sum_gradients(self, params: list, weight: float, extras: list[float]) -> list[float]:
        """Sum weight * grad over the ranks for the parameters this rank updates; drop the others' .grad.

        The gradients are copied into one flat buffer (one call, not one per parameter) and one
        reduce-scatter sums it over the ranks, handing each rank the sum of its own stretch only
        (`owners`). An all-reduce is a reduce-scatter followed by an all-gather of the sums; here
        the all-gather carries the new weights instead, and no rank updates what another will.
        Each owned .grad becomes its piece of that sum (a view, nothing copied back);
        every other .grad becomes None, so `optimizer.step()` updates this rank's parameters alone
        and `share_parameters` then gives every rank all the new values. `extras` (numbers such as
        the shard's loss) are summed unweighted, on every rank, and returned.
        """
        if self.comm is None:
            return list(extras)
        from mpi4py import MPI

        owners, sizes, counts = self._stretches(params)
        buffer = self._flat_buffer(sum(sizes), params[0].grad.dtype)
        offset = 0
        for p, n in zip(params, sizes):
            np.multiply(p.grad.reshape(-1), weight, out=buffer[offset : offset + n])
            offset += n
        mine = np.empty(counts[self.rank], dtype=buffer.dtype)
        self.comm.Reduce_scatter(buffer, mine, counts, op=MPI.SUM)
        offset = 0
        for p, n, owner in zip(params, sizes, owners):
            if owner == self.rank:
                p.grad = mine[offset : offset + n].reshape(p.grad.shape)
                offset += n
            else:
                p.grad = None
        return [float(v) for v in self.sum_in_place(np.array(extras, dtype=np.float64))]

    def total_norm(self, params: list) -> float:
        """The 2-norm of all the parameters' gradients as one vector, each rank holding its own
        (`sum_gradients`): the squares of the ranks' norms summed over the ranks."""
        local = get_total_norm([p.grad for p in params if p.grad is not None])
        if self.comm is None:
            return local
        return math.sqrt(float(self.sum_in_place(np.array([local * local]))[0]))

    def share_parameters(self, params: list) -> None:
        """After each rank has updated its own parameters, give every rank all the new values: one
        all-gather, straight into the parameters (`_parameters_in_one_buffer`)."""
        if self.comm is None:
            return
        from mpi4py import MPI

        _, _, counts = self._stretches(params)
        flat = self._parameters_in_one_buffer(params)
        self.comm.Allgatherv(MPI.IN_PLACE, [flat, (counts, np.cumsum([0] + counts[:-1]).tolist())])

    def _parameters_in_one_buffer(self, params: list) -> np.ndarray:
        """One flat array of which every parameter's values are a stretch, in order: made on the first
        call (each .data becomes a view of it, values unchanged) and again whenever a .data was
        replaced since (a loaded state, say). The optimizer updates .data in place, so an all-gather
        into this array updates the parameters themselves, with no copy in or out."""
        flat, views = self._parameters
        if len(views) != len(params) or any(p.data is not view for p, view in zip(params, views)):
            if len({p.data.dtype for p in params}) > 1:
                raise ValueError("the ranks share the parameters in one flat array: they must have one dtype")
            flat = np.concatenate([p.data.reshape(-1) for p in params])
            starts = np.cumsum([0] + [p.data.size for p in params]).tolist()
            for p, a, b in zip(params, starts, starts[1:]):
                p.data = flat[a:b].reshape(p.data.shape)
            self._parameters = flat, [p.data for p in params]
        return flat

    def share_optimizer_state(self, optimizer, params: list) -> None:
        """Each parameter's optimizer state (moments, step count), from the rank that updates it to
        every rank: before the state is saved, so a checkpoint holds all of it, whatever the ranks."""
        if self.comm is None:
            return
        for p, owner in zip(params, self.owners(params)):
            entry = optimizer.state.get(id(p), {})
            layout = {name: _array_layout(value) for name, value in entry.items()} if owner == self.rank else None
            layout = json.loads(self._broadcast_bytes(json.dumps(layout).encode("utf-8"), owner))
            if owner != self.rank:
                entry = {name: np.empty(how["shape"], how["dtype"]) if isinstance(how, dict) else how
                         for name, how in layout.items()}  # fmt: skip
            for name, how in layout.items():
                if isinstance(how, dict):
                    self.comm.Bcast(entry[name], root=owner)
            if entry:
                optimizer.state[id(p)] = entry

    def _stretches(self, params: list) -> tuple[list[int], list[int], list[int]]:
        """Each parameter's owner and size, and how many numbers each rank owns (its stretch of the flat buffer)."""
        owners, sizes = self.owners(params), [p.data.size for p in params]
        return owners, sizes, [sum(n for n, r in zip(sizes, owners) if r == rank) for rank in range(self.size)]

    def _flat_buffer(self, n: int, dtype) -> np.ndarray:
        """A reused flat array of n numbers: every step's weighted gradients, side by side."""
        if self._buffer.size != n or self._buffer.dtype != dtype:
            self._buffer = np.empty(n, dtype=dtype)
        return self._buffer

    def _broadcast_bytes(self, data: bytes, root: int) -> bytes:
        """Rank root's bytes on every rank, sent as a plain uint8 buffer: raw bytes, never Python objects."""
        length = np.array([len(data)], dtype=np.int64)
        self.comm.Bcast(length, root=root)
        text = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == root else np.empty(int(length[0]), np.uint8)
        self.comm.Bcast(text, root=root)
        return text.tobytes()

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
        root, said = int(first[0]), b""
        if self.rank == root:  # the error's class, by its index in `errors`, and its message
            said = json.dumps([next(i for i, kind in enumerate(errors) if isinstance(failure, kind)), str(failure)])
            said = said.encode("utf-8")
        kind, message = json.loads(self._broadcast_bytes(said, root))
        if self.rank == root:
            raise failure
        raise errors[kind](message)

    def abort(self, status: int = 1) -> None:
        """End every rank of the job at once (MPI_Abort)."""
        if self.comm is not None:
            self.comm.Abort(status)


def _array_layout(value: Any) -> Any:
    """An optimizer state entry as JSON: {"dtype", "shape"} for an array (its numbers follow as a
    byte buffer), the number itself otherwise."""
    if isinstance(value, np.ndarray):
        return {"dtype": value.dtype.str, "shape": list(value.shape)}
    return value.item() if isinstance(value, np.generic) else value


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
