"""minigrad.memory: freed arrays' memory stays in the process for the next step, when asked."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from minigrad import memory

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc's mallopt"
)


def run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_importing_minigrad_changes_nothing_in_the_process():
    """No malloc settings, no threads, no fork hooks: an import leaves the process as it was."""
    code = """
import os, threading
hooks = []
register = os.register_at_fork
def recording(**hooks_by_moment):
    hooks.extend(getattr(fn, "__module__", "") for fn in hooks_by_moment.values())
    register(**hooks_by_moment)
os.register_at_fork = recording
before = threading.active_count()
import minigrad, minigrad.nn, minigrad.optim, minigrad.functional, minigrad.kernels, transformer
import transformer.gpt, transformer.encoder_decoder, transformer.train
import minigrad.memory as m
ours = [name for name in hooks if name.split(".")[0] in ("minigrad", "transformer")]
print(m.keeps_freed_memory(), threading.active_count() - before, len(ours))
"""
    assert run(code) == "False 0 0"


@glibc
def test_the_trainer_switches_it_on():
    code = """
import tempfile
import minigrad.memory as m
from transformer.train import TrainConfig, train
folder = tempfile.mkdtemp()
try:  # a corpus that does not exist: the run stops at its first check, having set up the process
    train(TrainConfig(data=folder + "/missing.txt", out=folder + "/run"))
except Exception:
    pass
print(m.keeps_freed_memory())
"""
    assert run(code) == "True"


@glibc
def test_switching_back_and_forth():
    try:
        assert memory.keep_freed_memory(False) is True
        assert not memory.keeps_freed_memory()
        assert memory.keep_freed_memory(True) is True
        assert memory.keeps_freed_memory()
    finally:
        memory.keep_freed_memory(True)


@glibc
def test_a_freed_large_array_is_reused_without_new_page_faults():
    # 64 MB, above glibc's mmap threshold: by default each new array faults its pages in again
    code = """
import resource, numpy as np
import minigrad
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(16 * 2**20, dtype=np.float32); del a
before = faults()
for _ in range(5):
    a = np.ones(16 * 2**20, dtype=np.float32); del a
print(faults() - before)
"""
    default = int(run(code))
    kept = int(run(code.replace("import minigrad", "import minigrad.memory; minigrad.memory.keep_freed_memory()")))
    assert default >= 5 * 32  # each round trip faulted its pages in: at least one per 2 MB huge page
    assert kept < 32, (kept, default)


def test_arrays_still_work_after_switching():
    memory.keep_freed_memory(True)
    x = np.arange(10**6, dtype=np.float64)
    assert x.sum() == 10**6 * (10**6 - 1) / 2
