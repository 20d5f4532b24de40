"""Run a function's ops again without the Python around them.

Every op pays for the Python that leads to it: `Function.apply`, the `Module` calls, the
shape bookkeeping of the layers. In a window forward of the baby GPT (64 positions, 75 ops)
that is about a sixth of the time. When the same function runs again and again on inputs of
one shape, as a sampler does once the context fills the block, the ops are the same every
time and only their values change. `Replay` records the ops once and then runs only their
forwards, on the new arrays, in the recorded order: the same arithmetic, so the same values
to the bit. It is a tiny cousin of tinygrad's TinyJit and of CUDA graphs.

    forward = Replay(lambda ids: model(ids, logits_to_keep=1)[0])
    with mg.no_grad():
        logits = forward(window)   # records, then replays once two different inputs agreed

What a recording keeps, for each op: its class, and where each argument comes from, which is
one of an input of the function, the output of an earlier op, a tensor that lives outside
the call (a parameter: its current `.data` is read at each replay, so an optimizer step or a
loaded checkpoint is seen), or a constant made inside the call (a mask, a range of positions).
A recording is trusted only after two calls with different inputs recorded the same ops with
the same constants. A function that branches on its inputs' values, or that uses a copy of an
input outside the ops, records something else the second time, and `Replay` raises instead
of replaying an answer that would be wrong. Until then a call with an input equal to the
first one's runs the function unrecorded: it proves nothing, and recording costs about a
quarter more than running (a greedy sampler stuck on one token sends the same window each
step). It cannot see Python that reads values (`.data`,
`.item()`) and feeds them back as a number: a function it records must compute on its
inputs through ops only. Side effects outside the ops (printing, a KV cache growing) are not
repeated. Replays run only under `mg.no_grad()` with no tracer (`mg.profile`) and no anomaly
detection; otherwise, and for inputs of a new shape, the function itself runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from minigrad import modes
from minigrad.autograd import forward_result
from minigrad.tensor import Tensor


@dataclass(slots=True)
class _Op:
    """One recorded op: its class, and where each of its arguments comes from.

    A source is ("input", i), ("op", j) for the output of op j, ("tensor", t) for a tensor
    whose `.data` is read at each replay, ("constant", value), or ("tuple", [sources]) for a
    tuple holding any of the first three (an index such as (slice, ids)). `keywords` are the
    keyword arguments whose values are not constants; `constants` the rest, passed as they are.
    """

    cls: type
    sources: list
    keywords: dict
    constants: dict
    last_uses: list = field(default_factory=list)  # the earlier outputs no op after this one reads


class _Recorder(modes.Tracer):
    """A tracer that keeps every op applied: (class, arguments, keyword arguments, output)."""

    def __init__(self):
        self.applied = []

    def forward(self, run, cls, args, kwargs):
        out = run()
        self.applied.append((cls, args, kwargs, out))
        return out


class Replay:
    """fn(*arrays) -> Tensor, recorded once per input shape and then replayed op by op.

    Calling it runs fn while a recording is not yet trusted (see the module's docstring) and
    the recorded ops afterwards; either way the result is a Tensor without a graph when
    replayed. Inputs are NumPy arrays or Tensors (their arrays are what the ops see).
    """

    def __init__(self, fn: Callable):
        self.fn = fn
        self.recordings: dict[tuple, tuple] = {}  # input shapes and dtypes -> (ops, output op)
        self.candidates: dict[tuple, tuple] = {}  # the same, recorded once, with its inputs

    def __call__(self, *inputs) -> Tensor:
        state = modes.state
        if state.grad_enabled or state.tracer is not None or state.detect_anomaly:
            return self.fn(*inputs)
        arrays = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
        if not all(isinstance(x, np.ndarray) for x in arrays):
            raise TypeError("Replay: inputs must be NumPy arrays or Tensors")
        key = tuple((x.shape, x.dtype) for x in arrays)
        if key in self.recordings:
            return Tensor._from_array(_run(*self.recordings[key], arrays))
        earlier = self.candidates.get(key)
        if earlier is not None and any(np.array_equal(a, b) for a, b in zip(earlier[0], arrays)):
            return self.fn(*inputs)  # an input as before proves nothing: run the function, unrecorded
        out, recording = _record(self.fn, inputs, arrays)
        if earlier is None:
            self.candidates[key] = (tuple(np.copy(x) for x in arrays), recording)  # nothing to compare with yet
        else:
            self.recordings[key] = _agreed(earlier[1], recording)
            _note_last_uses(*self.recordings[key])
            del self.candidates[key]
        return out


def _record(fn: Callable, inputs: tuple, arrays: tuple) -> tuple[Tensor, tuple]:
    """Run fn(*inputs) with a recorder watching; its output and (ops, which op gave the output)."""
    recorder = _Recorder()
    with modes.tracing(recorder):
        out = fn(*inputs)
    made_by = {id(output): j for j, (_, _, _, output) in enumerate(recorder.applied)}
    if not isinstance(out, Tensor) or id(out) not in made_by:
        raise TypeError("Replay: the function must return the Tensor one of its ops made")

    def source(arg, keyword: bool = False):
        for i, (x, array) in enumerate(zip(inputs, arrays)):
            if arg is x or arg is array or (isinstance(arg, Tensor) and arg.data is array):
                return ("input", i)
        if isinstance(arg, Tensor) and not keyword:  # apply hands keyword arguments over as they are
            return ("op", made_by[id(arg)]) if id(arg) in made_by else ("tensor", arg)
        if type(arg) is tuple:
            inner = [source(item, keyword) for item in arg]
            if any(kind != "constant" for kind, _ in inner):
                return ("tuple", inner)
        return ("constant", arg)

    ops = []
    for cls, args, kwargs, _ in recorder.applied:
        keywords = {name: source(value, keyword=True) for name, value in kwargs.items()}
        constants = {name: value for name, (kind, value) in keywords.items() if kind == "constant"}
        keywords = {name: src for name, src in keywords.items() if src[0] != "constant"}
        ops.append(_Op(cls, [source(a) for a in args], keywords, constants))
    return out, (ops, made_by[id(out)])


def _run(ops: list, output: int, arrays: tuple) -> np.ndarray:
    """The recorded ops' forwards on new inputs; the output op's array."""
    values = []

    def value(source):
        kind, v = source
        if kind == "input":
            return arrays[v]
        if kind == "op":
            return values[v]
        if kind == "tensor":
            return v.data
        return tuple(value(item) for item in v) if kind == "tuple" else v

    for op in ops:
        kwargs = op.constants if not op.keywords else {**op.constants, **{k: value(s) for k, s in op.keywords.items()}}
        args = [value(source) for source in op.sources]
        values.append(forward_result(op.cls(), args, kwargs))
        for j in op.last_uses:  # freed as soon as nothing needs it, as the function itself frees it:
            values[j] = None  # the next op's array then reuses memory that is still in the cache
    return values[output]


def _note_last_uses(ops: list, output: int) -> None:
    """Give each op the outputs of earlier ops that it is the last to read (never the output)."""
    last_reader = {}
    for i, op in enumerate(ops):
        for j in _ops_read(op.sources + list(op.keywords.values())):
            last_reader[j] = i
    for j, i in last_reader.items():
        if j != output:
            ops[i].last_uses.append(j)


def _ops_read(sources: list):
    for kind, v in sources:
        if kind == "op":
            yield v
        elif kind == "tuple":
            yield from _ops_read(v)


def _agreed(first: tuple, second: tuple) -> tuple:
    """The recording to keep, once two recordings on different inputs agree: the same ops, each
    argument from the same source, the same constants. Raises ValueError where they differ.

    A tensor made inside the call (a new object each time, with the same values) becomes a
    constant; a tensor that both recordings share (a parameter) stays live.
    """
    (ops_a, out_a), (ops_b, out_b) = first, second
    if len(ops_a) != len(ops_b) or out_a != out_b:
        raise ValueError(
            f"Replay: the function ran {len(ops_a)} ops, then {len(ops_b)} on other inputs of the same shape"
        )
    for j, (a, b) in enumerate(zip(ops_a, ops_b)):
        same = a.cls is b.cls and a.keywords.keys() == b.keywords.keys() and _same(a.constants, b.constants)
        pairs = list(zip(a.sources, b.sources)) + [(a.keywords[k], b.keywords[k]) for k in a.keywords]
        if not (same and len(a.sources) == len(b.sources) and all(_same_source(x, y) for x, y in pairs)):
            raise ValueError(
                f"Replay: op {j} ({b.cls.__name__}) differs between two inputs of one shape; the function "
                "branches on its inputs' values or uses them outside the ops, and cannot be replayed"
            )
        b.sources = [_kept(x, y) for x, y in zip(a.sources, b.sources)]
    return second


def _same_source(a: tuple, b: tuple) -> bool:
    (kind, v), (kind_b, w) = a, b
    if kind != kind_b:
        return False
    if kind == "tuple":
        return len(v) == len(w) and all(_same_source(x, y) for x, y in zip(v, w))
    return v == w if kind in ("input", "op") else _same(v, w)


def _kept(first: tuple, second: tuple) -> tuple:
    """The source to replay: a tensor made anew by each call, with the same values, is a constant."""
    (kind, v), (_, w) = first, second
    if kind == "tensor" and v is not w:
        return ("constant", w.data)
    return ("tuple", [_kept(x, y) for x, y in zip(v, w)]) if kind == "tuple" else second


def _same(a, b) -> bool:
    """Whether two recorded arguments are the same: one object, or equal values (arrays by content)."""
    if a is b:
        return True
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return _same(a.data, b.data)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


__all__ = ["Replay"]
