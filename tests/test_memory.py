"""minigrad.memory: freed arrays' memory stays in the process for the next step."""

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


def run(code: str, **env) -> str:
    base = {k: v for k, v in os.environ.items() if k != "MINIGRAD_KEEP_FREED_MEMORY" and not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@glibc
def test_on_by_default_and_off_by_environment():
    code = "import minigrad.memory as m; print(m.keeps_freed_memory())"
    assert run(code) == "True"
    assert run(code, MINIGRAD_KEEP_FREED_MEMORY="0") == "False"


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
    kept = int(run(code))
    default = int(run(code, MINIGRAD_KEEP_FREED_MEMORY="0"))
    assert default >= 5 * 32  # each round trip faulted its pages in: at least one per 2 MB huge page
    assert kept < 32, (kept, default)


def test_arrays_still_work_after_switching():
    memory.keep_freed_memory(True)
    x = np.arange(10**6, dtype=np.float64)
    assert x.sum() == 10**6 * (10**6 - 1) / 2
