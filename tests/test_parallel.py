"""minigrad.parallel: the fused kernels on several threads compute what they compute on one."""

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, parallel


@pytest.fixture
def threads(monkeypatch):
    """Run with `threads.use(n)` threads, every input big enough to be split; restore after."""
    before = parallel.num_threads()
    monkeypatch.setattr(parallel, "MIN_PARALLEL_SIZE", 1)
    monkeypatch.setattr(F, "_ATTENTION_BLOCK", 1 << 12)  # several batch blocks even for small inputs
    run = parallel.run
    parts_seen = []

    def counting_run(work, parts):
        parts_seen.append(len(parts))
        return run(work, parts)

    monkeypatch.setattr(parallel, "run", counting_run)

    class Threads:
        parts = parts_seen

        @staticmethod
        def use(n: int) -> None:
            parallel.set_num_threads(n)

    yield Threads
    parallel.set_num_threads(before)


def forward_backward(fn, arrays, seed=0):
    """fn's output and the gradients of a fixed random projection of it, as arrays."""
    inputs = [Tensor(a, dtype=a.dtype, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    g = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    out.backward(g)
    return [out.data] + [x.grad for x in inputs]


def test_ranges_cover_everything_once_with_aligned_cuts(threads):
    threads.use(3)
    for n, align in [(10, 1), (1000, 64), (65, 64), (1, 8)]:
        parts = parallel.ranges(n, n, align=align)
        assert parts[0][0] == 0 and parts[-1][1] == n
        assert all(stop == start for (_, stop), (start, _) in zip(parts, parts[1:]))
        assert all(start % align == 0 for start, _ in parts)
        assert len(parts) <= 3
    assert len(parallel.ranges(1000, 1000)) == 3


def test_small_work_and_one_thread_stay_serial(threads, monkeypatch):
    threads.use(2)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_SIZE", 1000)
    assert parallel.ranges(100, 999) == [(0, 100)]
    assert len(parallel.ranges(100, 1000)) == 2
    threads.use(1)
    assert parallel.ranges(100, 10**9) == [(0, 100)]


def test_run_uses_worker_threads_with_blas_on_one_thread(threads):
    threads.use(2)
    controller = ThreadpoolController()
    blas_before = [info["num_threads"] for info in controller.info() if info["user_api"] == "blas"]

    def work(start, stop):
        blas = [info["num_threads"] for info in controller.info() if info["user_api"] == "blas"]
        nested = parallel.ranges(100, 10**9)  # a kernel called from a worker runs serially
        return threading.current_thread().name, blas, nested, list(range(start, stop))

    results = parallel.run(work, parallel.ranges(10, 10))
    assert [r[3] for r in results] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # in order
    assert all(name.startswith("minigrad") for name, *_ in results)
    assert all(blas == [1] * len(blas_before) for _, blas, _, _ in results)
    assert all(nested == [(0, 100)] for _, _, nested, _ in results)
    after = [info["num_threads"] for info in controller.info() if info["user_api"] == "blas"]
    assert after == blas_before


def test_run_raises_a_workers_error(threads):
    threads.use(2)

    def work(start, stop):
        if start > 0:
            raise ValueError("second part failed")

    with pytest.raises(ValueError, match="second part failed"):
        parallel.run(work, [(0, 1), (1, 2)])


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match="at least 1"):
        mg.set_num_threads(0)


def test_the_thread_count_follows_blas_in_a_fresh_process():
    code = "import minigrad as mg; print(mg.num_threads())"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1"


RNG = np.random.default_rng(0)
CASES = {
    # name: (fn, arrays); each array large enough for several chunks or blocks
    "gelu": (F.gelu, [RNG.standard_normal((3, 70_000)).astype(np.float32)]),
    "layer_norm": (
        F.layer_norm,
        [RNG.standard_normal((7, 33, 24)).astype(np.float32)]
        + [RNG.standard_normal(24).astype(np.float32) for _ in range(2)],
    ),
    "causal_packed": (
        lambda qkv: F.causal_self_attention_packed(qkv, 2),
        [RNG.standard_normal((5, 150, 24)).astype(np.float32)],
    ),
    "masked": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask=np.triu(np.ones((40, 30), bool), k=1)),
        [RNG.standard_normal(s).astype(np.float32) for s in [(6, 3, 40, 8), (6, 3, 30, 8), (6, 3, 30, 5)]],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_threads_give_the_serial_results(threads, name):
    fn, arrays = CASES[name]
    threads.use(1)
    serial = forward_backward(fn, arrays)
    assert set(threads.parts) == {1}
    threads.use(2)
    threaded = forward_backward(fn, arrays)
    assert max(threads.parts) == 2  # forward and backward did run on two threads
    for a, b in zip(serial, threaded):
        if name == "layer_norm":  # weight and bias gradients add the threads' partial column sums
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, b)


def test_causal_tiles_match_the_composed_attention_in_float64():
    # T = 150 is two whole tiles of 64 queries and a last one of 22
    rng = np.random.default_rng(1)
    qkv = rng.standard_normal((2, 150, 12))
    fused = forward_backward(lambda x: F.causal_self_attention_packed(x, 2), [qkv])
    composed = forward_backward(lambda x: F.causal_self_attention_packed_composed(x, 2), [qkv])
    for a, b in zip(fused, composed):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shapes", [[(100, 4)] * 3, [(2, 100, 4), (1, 100, 4), (2, 100, 3)]])
def test_causal_attention_longer_than_a_tile_without_batch_blocks(shapes):
    # 2-D or broadcasting inputs run everything at once: one tile, whatever the length
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in shapes]
    fused = forward_backward(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), arrays)
    composed = forward_backward(
        lambda q, k, v: F.scaled_dot_product_attention_composed(q, k, v, is_causal=True), arrays
    )
    for a, b in zip(fused, composed):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_causal_tiles_gradcheck():
    rng = np.random.default_rng(2)
    qkv = Tensor(rng.standard_normal((1, 70, 6)), dtype=np.float64, requires_grad=True)
    assert mg.gradcheck(lambda x: F.causal_self_attention_packed(x, 1), qkv)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_workers(threads):
    threads.use(2)
    both = threading.Barrier(2, timeout=10)
    parallel.run(lambda start, stop: both.wait(), [(0, 1), (1, 2)])  # two parent workers exist now
    pid = os.fork()
    if pid == 0:  # the child: its parent's worker threads are gone; new ones must be started
        signal.alarm(20)  # a child waiting on workers that do not exist dies instead of hanging
        try:
            results = parallel.run(lambda start, stop: stop - start, [(0, 1), (1, 3)])
            os._exit(0 if results == [1, 2] else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
