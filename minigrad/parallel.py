"""Elementwise work on every core.

NumPy runs each elementwise pass (`np.exp`, `+=`, ...) on one core, while BLAS runs the
matrix products on all of them; at the sizes of a real model (tens of millions of numbers
per activation) a fused kernel's elementwise chains then leave the other cores idle.
NumPy lets go of Python's global lock inside each pass, so a few Python threads, each
running the same chain over its own part of the array, do use every core.

While they run, BLAS is held to one thread: each worker's matrix products (attention's
q kᵀ, layer norm's row sums) then run beside each other instead of fighting over the
same BLAS threads, which was measured to be twice as slow as running serially.

Every part is computed by the same operations whether it runs on a worker or not, so each
output number is the same whatever the number of threads; only a sum over the parts (layer
norm's weight and bias gradients add the threads' partial sums) may round differently.
Work below MIN_PARALLEL_SIZE numbers runs serially: handing it to a thread costs more than
it saves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Below this many numbers a kernel stays on the calling thread (measured: GELU on 393K
# numbers gained nothing from a second thread, on 25M it ran 1.5x faster).
MIN_PARALLEL_SIZE = 1 << 20

_lock = threading.Lock()
_settings: dict[str, Any] = {"threads": None, "pool": None, "controller": None}
_inside = threading.local()  # set on a worker, so nested calls run serially


def _forget_pool_in_child() -> None:
    """A forked child has none of its parent's worker threads: start afresh when needed."""
    global _lock
    _lock = threading.Lock()
    _settings["pool"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _controller():
    """threadpoolctl's handle on the BLAS library NumPy loaded (built once, it scans libraries)."""
    if _settings["controller"] is None:
        from threadpoolctl import ThreadpoolController

        _settings["controller"] = ThreadpoolController()
    return _settings["controller"]


def num_threads() -> int:
    """How many threads the fused kernels use: set_num_threads's value, else BLAS's own count."""
    if _settings["threads"] is None:
        counts = [info["num_threads"] for info in _controller().info() if info["user_api"] == "blas"]
        _settings["threads"] = max(counts, default=1)
    return _settings["threads"]


def set_num_threads(n: int) -> None:
    """Use n threads for the elementwise work of the fused kernels (1: everything serial)."""
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    with _lock:
        _settings["threads"] = int(n)
        if _settings["pool"] is not None:
            _settings["pool"].shutdown()
            _settings["pool"] = None


def _pool(threads: int) -> ThreadPoolExecutor:
    with _lock:
        if _settings["pool"] is None:
            _settings["pool"] = ThreadPoolExecutor(threads, thread_name_prefix="minigrad")
        return _settings["pool"]


def ranges(n: int, size: int, align: int = 1) -> list[tuple[int, int]]:
    """Split range(n) into one contiguous (start, stop) per thread, each a multiple of `align`.

    `size` is the amount of work (numbers touched) the n items stand for: below
    MIN_PARALLEL_SIZE, or with one thread, there is a single range. Aligning the cuts to a
    kernel's chunk length keeps its chunks where they are when run serially.
    """
    threads = num_threads() if size >= MIN_PARALLEL_SIZE else 1
    if threads == 1 or getattr(_inside, "active", False):
        return [(0, n)]
    per = -(-n // threads)  # ceil(n / threads)
    per = -(-per // align) * align
    return [(start, min(start + per, n)) for start in range(0, n, per)]


def run(work: Callable[..., Any], parts: Sequence) -> list:
    """[work(*part) for part in parts], the parts side by side on the worker threads.

    One part runs on the calling thread, as plain code. Otherwise BLAS is held to one thread
    until every part is done; the results come back in order, and the first error is raised.
    """
    if len(parts) == 1:
        return [work(*parts[0])]

    def on_worker(part):
        _inside.active = True
        try:
            return work(*part)
        finally:
            _inside.active = False

    pool = _pool(num_threads())
    with _controller().limit(limits=1, user_api="blas"):
        futures = [pool.submit(on_worker, part) for part in parts]
        return [future.result() for future in futures]


__all__ = ["MIN_PARALLEL_SIZE", "num_threads", "ranges", "run", "set_num_threads"]
