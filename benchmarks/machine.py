"""One line naming the machine a figure was measured on: the processor and NumPy's BLAS kernel.

Ratios between minigrad and PyTorch move between processors and BLAS builds, so every
benchmark prints this beside its numbers.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np


def processor() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_kernel() -> str:
    """NumPy's BLAS library, version, the kernel it picked for this processor, and its threads."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info["user_api"] == "blas":
            kernel = f"{info['internal_api']} {info['version']} {info.get('architecture') or ''}".strip()
            return f"{kernel} ({info['num_threads']} threads)"
    return "unknown BLAS"


def machine() -> str:
    """One line naming the machine a figure was measured on."""
    return f"{processor()}, {os.cpu_count()} cores; NumPy {np.__version__} with {blas_kernel()}"
