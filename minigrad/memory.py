"""Keep the memory of freed arrays for the next step, instead of handing it back to the OS.

A training step allocates the same large arrays every time: activations in forward,
gradients in backward, tens to hundreds of megabytes each at nanoGPT's GPU-recipe size.
glibc's malloc serves every large block with a fresh `mmap` and returns it with `munmap`
when the array is freed, so each step asks the kernel for new pages, and the kernel zeroes
every page on its first touch (docs/performance.md has the measurements).

`keep_freed_memory()` tells glibc to take large blocks from its heap like small ones and
never shrink the heap: freed arrays become free heap, and the next step's arrays reuse it
without faulting. The process then holds its peak memory until it exits, as PyTorch's GPU
caching allocator does. It changes the whole process, so `import minigrad` never calls it:
the trainer and the benchmarks do, at their start. It works on Linux with glibc; elsewhere
it does nothing.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt's parameter numbers, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1  # free heap top larger than this goes back to the OS
_M_MMAP_MAX = -4  # how many blocks may be served by mmap at once; 0: none
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_NEVER = -1  # as a trim threshold: never trim

_state = {"kept": False}


def keep_freed_memory(enabled: bool = True) -> bool:
    """Reuse freed arrays' memory (True) or restore glibc's defaults (False).

    Returns whether the setting took effect: False where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    trim, mmap_max = (_NEVER, 0) if enabled else (_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX)
    done = mallopt(_M_TRIM_THRESHOLD, trim) == 1 and mallopt(_M_MMAP_MAX, mmap_max) == 1
    _state["kept"] = bool(enabled and done)
    return done


def keeps_freed_memory() -> bool:
    """Whether keep_freed_memory() is in effect."""
    return _state["kept"]


__all__ = ["keep_freed_memory", "keeps_freed_memory"]
