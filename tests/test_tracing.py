"""The tracing hook: a Tracer installed with `modes.tracing` sees every op run forward and
backward, runs it through `run`, and leaves the engine untraced afterwards."""

from __future__ import annotations

import traceback

import numpy as np
import pytest

from minigrad import Tensor, modes


class Recorder(modes.Tracer):
    def __init__(self):
        self.seen: list[tuple[str, str]] = []
        self.lines: list[str] = []

    def forward(self, run, cls, args, kwargs):
        self.lines += [frame.line for frame in traceback.extract_stack() if frame.filename == __file__]
        out = run()
        self.seen.append(("forward", cls.__name__))
        return out

    def backward(self, run, fn, grad):
        self.seen.append(("backward", fn.name))
        return run()


def test_a_tracer_sees_each_op_once_forward_and_backward_and_changes_nothing():
    x = Tensor([1.0, 2.0], requires_grad=True)
    recorder = Recorder()
    with modes.tracing(recorder):
        y = (x.exp() * x).sum()
        y.backward()
    assert recorder.seen == [
        ("forward", "Exp"),
        ("forward", "Mul"),
        ("forward", "Sum"),
        ("backward", "Sum"),
        ("backward", "Mul"),
        ("backward", "Exp"),
    ]
    np.testing.assert_allclose(x.grad, np.exp(x.data) * (1 + x.data), rtol=1e-6)
    assert modes.state.tracer is None


def test_softmax_is_one_op():
    """Seen once, as the op it is, not as the max, exp, sum and division of its forward."""
    recorder = Recorder()
    with modes.tracing(recorder):
        Tensor([1.0, 2.0, 4.0]).softmax()
    assert recorder.seen == [("forward", "Softmax")]


def test_the_tracer_runs_on_the_callers_stack():
    """So a tracer can record the source line that created each op."""
    recorder = Recorder()
    with modes.tracing(recorder):
        Tensor([1.0]).exp()  # the line a tracer finds
    assert "Tensor([1.0]).exp()  # the line a tracer finds" in recorder.lines


def test_nested_tracers_restore_the_outer_one_even_on_error():
    outer, inner = Recorder(), Recorder()
    with modes.tracing(outer):
        with pytest.raises(ZeroDivisionError), modes.tracing(inner):
            Tensor([1.0]).exp()
            raise ZeroDivisionError
        Tensor([1.0]).log()
    assert inner.seen == [("forward", "Exp")] and outer.seen == [("forward", "Log")]
    assert modes.state.tracer is None
