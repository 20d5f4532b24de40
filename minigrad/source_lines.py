"""Which lines of code made each op: noted as the graph is built, read when a picture is drawn.

A picture of a graph (`minigrad.viz`) names, for each op, the line that asked for it: the
model's line (`transformer/gpt.py:97  y = attention(q, k, v, ...)`) and the line of the
caller's own code that led there (a notebook cell or a script). While the graph is built,
`Function.apply` keeps for each op two (code object, instruction offset) pairs, found by
walking up the call stack past minigrad's own frames: no frame is kept alive and no text is
read. The file names, line numbers and text are looked up only by `describe`, when drawn.

The note costs a short walk up the stack per recorded op, 3 to 5 µs, 0.1 to 0.3 % of a GPT
training step (docs/performance.md, benchmarks/bench_source_lines.py); `record(False)` stops
it for the whole process.
"""

from __future__ import annotations

import linecache
import os
import sys
from types import CodeType

_MINIGRAD = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# The libraries a model is built from: the first frame outside them is the caller's own code.
_LIBRARIES = (_MINIGRAD, _CHECKOUT + "transformer" + os.sep)


class _Switch:
    enabled = True


_switch = _Switch()


def record(enabled: bool = True) -> None:
    """Note (True, the default) or not (False) the lines that make ops, for the whole process."""
    _switch.enabled = bool(enabled)


def is_recording() -> bool:
    return _switch.enabled


def caller() -> tuple | None:
    """Where the op being made was asked for: (model code, offset, caller code, offset), or None.

    The model's frame is the first outside minigrad; the caller's the first outside minigrad and
    transformer (the same frame when a learner's own code called minigrad directly).
    """
    if not _switch.enabled:
        return None
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_MINIGRAD):
        frame = frame.f_back
    if frame is None:
        return None
    model = frame
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARIES):
        frame = frame.f_back
    own = frame or model
    return (model.f_code, model.f_lasti, own.f_code, own.f_lasti)


def describe(origin: tuple | None) -> list[str]:
    """The lines an origin names, as `file:line  text`: the caller's own line first, then the
    model's when it is another; [] for an op made while recording was off."""
    if origin is None:
        return []
    model_code, model_offset, own_code, own_offset = origin
    places = [(own_code, own_offset)]
    if (model_code, model_offset) != (own_code, own_offset):
        places.append((model_code, model_offset))
    return [_line(code, offset) for code, offset in places]


def _line(code: CodeType, offset: int) -> str:
    number = next((line for start, end, line in code.co_lines() if start <= offset < end and line), None)
    number = number or code.co_firstlineno
    text = linecache.getline(code.co_filename, number).strip()
    return f"{_place(code.co_filename)}:{number}  {text}"


def _place(filename: str) -> str:
    """A file as a reader knows it: relative to the checkout or to the working directory; a
    notebook's cell (IPython compiles each into a file of its own) as `cell`."""
    if "ipykernel_" in filename or filename.startswith("<ipython-input"):
        return "cell"
    if filename.startswith(_CHECKOUT):
        return filename[len(_CHECKOUT) :]
    here = os.getcwd() + os.sep
    return filename[len(here) :] if filename.startswith(here) else filename
