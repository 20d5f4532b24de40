"""Where the time goes: every op's forward and backward, timed, with shapes and FLOPs.

    with mg.profile() as prof:
        logits, loss = model(idx, targets)
        loss.backward()
    prof.table()                  # the ops that took longest, forward and backward
    prof.save("trace.json")       # Chrome trace-event JSON: open it in https://ui.perfetto.dev

The trace has two tracks, forward and backward; on each, every op is one complete event
(`ph: "X"`) with `ts`/`dur` in microseconds and `args` holding its shapes and FLOPs, inside
spans named after the modules that ran it (`transformer.h.0.attn`). FLOPs are the usual
estimates: 2·m·n·k for a product of (m, k) and (k, n), one per element for elementwise
ops, none for reshapes and indexing; a backward counts twice its forward.

Outside `with mg.profile()` the engine pays one check of a flag per op.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from minigrad import modes

# Ops that only move or view data: no arithmetic.
MOVEMENT = {"Reshape", "Transpose", "BroadcastTo", "GetItem", "Concatenate", "Embedding", "Where"}
# Floating-point operations per output element, roughly, for ops that do more than one.
PER_ELEMENT = {"LayerNorm": 8, "Softmax": 5, "LogSoftmax": 5, "GELU": 10, "Erf": 10, "Sigmoid": 4, "Tanh": 4}


def forward_flops(name: str, input_shapes: list[tuple], output_shape: tuple) -> int:
    """An estimate of the floating-point operations in one forward of op `name`."""
    out = math.prod(output_shape)
    if name in MOVEMENT:
        return 0
    if name in ("MatMul", "Linear"):
        return 2 * out * input_shapes[0][-1]  # every output is a dot product of length k
    if "Attention" in name and len(input_shapes) >= 3 and len(input_shapes[0]) >= 2:
        q, k = input_shapes[0], input_shapes[1]
        scores = math.prod(q[:-1]) * k[-2]  # (..., Tq, Tk)
        return 4 * scores * q[-1] + 5 * scores  # q kᵀ and weights·v, and the softmax
    if "Attention" in name and len(input_shapes[0]) == 3:  # packed [q | k | v] (B, T, 3C), every head
        B, T, C = input_shapes[0][0], input_shapes[0][1], input_shapes[0][2] // 3
        return 4 * B * T * T * C + 5 * B * T * T  # per head: q kᵀ, weights·v (hs wide), softmax
    if name == "CrossEntropy":
        return 5 * math.prod(input_shapes[0])
    if name in ("Sum", "Max", "Min"):
        return math.prod(input_shapes[0])
    return PER_ELEMENT.get(name, 1) * out


@dataclass(slots=True)
class OpEvent:
    """One run of an op's forward or backward; a backward knows its forward when it was recorded."""

    name: str
    cat: str  # "forward" or "backward"
    start_ns: int
    duration_ns: int
    input_shapes: list[tuple]  # backward: the gradient it received
    output_shapes: list[tuple]  # backward: the gradients it sent
    scope: tuple  # the Module calls it ran under, outermost first
    forward: OpEvent | None = None

    @property
    def flops(self) -> int:
        if self.cat == "forward":
            return forward_flops(self.name, self.input_shapes, self.output_shapes[0])
        if self.forward is not None:
            return 2 * self.forward.flops
        return 2 * forward_flops(self.name, self.output_shapes, self.input_shapes[0])


class profile(modes.Tracer):
    """`with mg.profile() as prof:` records every op's forward and backward run inside.

    The same object may be entered again (a few training steps, one `with` each): the record
    grows on one timeline.

    After the block: `prof.events` (a list of OpEvent), `prof.table()` prints the ops that
    took longest, `prof.save(path)` writes the Chrome trace-event JSON.
    """

    def __init__(self):
        self.events: list[OpEvent] = []
        self.forward_of: dict[int, OpEvent] = {}  # id(Function) -> the event of its forward
        self.tracing = modes.tracing(self)
        self.began_ns = 0

    def __enter__(self) -> profile:
        self.began_ns = self.began_ns or time.perf_counter_ns()  # entered again: one timeline
        return self.tracing.__enter__()

    def __exit__(self, *exc):
        return self.tracing.__exit__(*exc)

    # ------------------------------------------------------------ the engine calls these
    # Kept lean: what they cost is added to every op run while profiling. FLOPs are worked
    # out later, from the shapes.

    def forward(self, run, cls, args, kwargs):
        """Run the op (an op built of ops counts once), timed."""
        start = time.perf_counter_ns()
        out = run()
        duration = time.perf_counter_ns() - start
        fn = out._ctx
        inputs = [a.shape for a in args if hasattr(a, "shape")]
        scope = modes.current_scope()
        event = OpEvent(fn.name if fn else cls.__name__, "forward", start, duration, inputs, [out.shape], scope)
        self.events.append(event)
        if fn is not None:
            self.forward_of[id(fn)] = event
        return out

    def backward(self, run, fn, grad):
        """Run `fn.backward(grad)`, timed."""
        start = time.perf_counter_ns()
        input_grads = run()
        duration = time.perf_counter_ns() - start
        grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
        sent = [g.shape for g in grads if g is not None]
        forward = self.forward_of.pop(id(fn), None)  # None: its forward ran before profiling
        self.events.append(OpEvent(fn.name, "backward", start, duration, [grad.shape], sent, fn.scope, forward))
        return input_grads

    # ------------------------------------------------------------ reading the record

    def table(self, top: int = 15) -> None:
        """Print the `top` ops by total time: calls, forward and backward milliseconds, share, GFLOP/s."""
        rows: dict[str, list] = {}  # name -> [calls, forward ns, backward ns, flops]
        for e in self.events:
            row = rows.setdefault(e.name, [0, 0, 0, 0])
            row[0] += e.cat == "forward"
            row[1 if e.cat == "forward" else 2] += e.duration_ns
            row[3] += e.flops
        total = sum(e.duration_ns for e in self.events) or 1
        ranked = sorted(rows.items(), key=lambda item: -(item[1][1] + item[1][2]))
        lines = [f"{'op':<28}{'calls':>7}{'forward ms':>12}{'backward ms':>13}{'share':>8}{'GFLOP/s':>9}"]
        for name, (calls, fwd, bwd, flops) in ranked[:top]:
            seconds = (fwd + bwd) / 1e9
            rate = f"{flops / seconds / 1e9:.2f}" if flops and seconds else "-"
            share = 100 * (fwd + bwd) / total
            lines.append(f"{name:<28}{calls:>7}{fwd / 1e6:>12.2f}{bwd / 1e6:>13.2f}{share:>7.1f}%{rate:>9}")
        lines.append(f"{'all ops':<28}{len(self.events):>7} events, {total / 1e6:.2f} ms")
        print("\n".join(lines))

    def trace(self) -> dict:
        """The record as Chrome trace-event JSON (a dict): ops and module spans per track."""
        names = _ModuleNames()
        events = [
            {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "minigrad"}},
            {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name", "args": {"name": "forward"}},
            {"ph": "M", "pid": 1, "tid": 2, "name": "thread_name", "args": {"name": "backward"}},
        ]
        for tid, cat in ((1, "forward"), (2, "backward")):
            # enclosing before enclosed: a module span, then the spans and ops that start with it
            spans = sorted(_module_spans(self.events, cat, names, self.began_ns), key=lambda s: (s["ts"], -s["dur"]))
            events += [
                dict(span, pid=1, tid=tid, ph="X", cat="module", args={"module": span["name"]}) for span in spans
            ]
            events += [self._event(e, tid) for e in self.events if e.cat == cat]
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def save(self, path: str | Path) -> Path:
        """Write the Chrome trace-event JSON to `path` (open it in Perfetto or chrome://tracing)."""
        path = Path(path)
        path.write_text(json.dumps(self.trace()))
        return path

    def _event(self, e: OpEvent, tid: int) -> dict:
        return {
            "name": e.name,
            "cat": e.cat,
            "ph": "X",
            "pid": 1,
            "tid": tid,
            "ts": (e.start_ns - self.began_ns) / 1e3,
            "dur": e.duration_ns / 1e3,
            "args": {
                "inputs": [list(s) for s in e.input_shapes],
                "outputs": [list(s) for s in e.output_shapes],
                "flops": e.flops,
            },
        }


class _ModuleNames:
    """Dotted names of modules, relative to the outermost module that ran (which goes by its class)."""

    def __init__(self):
        self.tables: dict[int, dict[int, str]] = {}

    def __call__(self, scope: tuple, depth: int) -> str:
        root = scope[0]
        if id(root) not in self.tables:
            self.tables[id(root)] = {id(m): name for name, m in root.named_modules()}
        name = self.tables[id(root)].get(id(scope[depth]), type(scope[depth]).__name__)
        return name or type(root).__name__


def _module_spans(events: list[OpEvent], cat: str, names: _ModuleNames, began_ns: int) -> list[dict]:
    """The spans of track `cat`: one per run of its ops under the same module, nested as the calls
    were. An event of the other track in between ends every span (a step's backward separates
    its forward from the next step's)."""
    closed, open_spans = [], []  # a span: [scope down to its module, start ns, end ns]
    for e in events:
        scope = e.scope if e.cat == cat else ()
        depth = 0
        while depth < min(len(open_spans), len(scope)) and open_spans[depth][0][-1] is scope[depth]:
            depth += 1
        closed += open_spans[depth:]
        del open_spans[depth:]
        open_spans += [[scope[: d + 1], e.start_ns, 0] for d in range(depth, len(scope))]
        for span in open_spans:
            span[2] = e.start_ns + e.duration_ns
    return [
        {"name": names(scope, len(scope) - 1), "ts": (start - began_ns) / 1e3, "dur": (end - start) / 1e3}
        for scope, start, end in closed + open_spans
    ]


__all__ = ["OpEvent", "forward_flops", "profile"]
