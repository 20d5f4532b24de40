"""mg.profile(): every op's forward and backward timed, with shapes and FLOPs, as Chrome trace-event
JSON (what Perfetto opens), ops nested inside the spans of the modules that ran them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, autograd, nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.hidden = nn.Linear(3, 5, rng=rng)
        self.out = nn.Linear(5, 2, rng=rng)

    def forward(self, x):
        return self.out(self.hidden(x).relu())


def run_step(model, x):
    loss = (model(x) ** 2).sum()
    loss.backward()
    return loss


@pytest.fixture
def profiled():
    model, x = MLP(), Tensor(np.ones((4, 3)))
    with mg.profile() as prof:
        run_step(model, x)
    return model, prof


def test_every_op_forward_and_backward_in_order(profiled):
    _, prof = profiled
    forward = [e.name for e in prof.events if e.cat == "forward"]
    backward = [e.name for e in prof.events if e.cat == "backward"]
    assert forward == ["Linear", "ReLU", "Linear", "Pow", "Sum"]
    assert backward == forward[::-1]  # a chain: backward visits it end to start
    assert all(e.duration_ns >= 0 for e in prof.events)
    starts = [e.start_ns for e in prof.events]
    assert starts == sorted(starts)


def test_shapes_and_flops():
    a, b = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.ones((3, 4)))
    with mg.profile() as prof:
        (a @ b).sum().backward()
    matmul_forward, matmul_backward = (e for e in prof.events if e.name == "MatMul")
    assert matmul_forward.input_shapes == [(2, 3), (3, 4)] and matmul_forward.output_shapes == [(2, 4)]
    assert matmul_forward.flops == 2 * 2 * 4 * 3  # 8 dot products of length 3, a multiply and an add each
    assert matmul_backward.flops == 2 * matmul_forward.flops
    assert matmul_backward.input_shapes == [(2, 4)]  # the gradient it received


def test_chrome_trace_events(profiled, tmp_path):
    _, prof = profiled
    trace = json.loads(prof.save(tmp_path / "trace.json").read_text())
    events = trace["traceEvents"]
    threads = {e["args"]["name"]: e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert set(threads) == {"forward", "backward"} and threads["forward"] != threads["backward"]
    ops = [e for e in events if e["ph"] == "X" and e["cat"] in ("forward", "backward")]
    assert len(ops) == len(prof.events) == 10
    for e in ops:
        assert e["tid"] == threads[e["cat"]]
        assert e["ts"] >= 0 and e["dur"] >= 0 and "flops" in e["args"]
        assert isinstance(e["args"]["inputs"], list)
    linear = next(e for e in ops if e["name"] == "Linear" and e["cat"] == "forward")
    assert linear["args"]["inputs"] == [[4, 3], [5, 3], [5]] and linear["args"]["flops"] == 2 * 4 * 5 * 3


def test_module_spans_enclose_their_ops(profiled):
    _, prof = profiled
    events = prof.trace()["traceEvents"]
    spans = [e for e in events if e.get("cat") == "module"]
    assert {(s["name"], s["tid"]) for s in spans} == {
        (name, tid) for name in ("MLP", "hidden", "out") for tid in (1, 2)
    }
    ops = [e for e in events if e.get("cat") in ("forward", "backward")]

    def enclosing(op):
        return {
            s["name"]
            for s in spans
            if s["tid"] == op["tid"] and s["ts"] <= op["ts"] and op["ts"] + op["dur"] <= s["ts"] + s["dur"] + 1e-6
        }

    linears = [op for op in ops if op["name"] == "Linear"]
    assert all(enclosing(op) in ({"MLP", "hidden"}, {"MLP", "out"}) for op in linears)
    assert enclosing(next(op for op in ops if op["name"] == "ReLU")) == {"MLP"}  # relu() ran in MLP.forward
    assert enclosing(next(op for op in ops if op["name"] == "Pow")) == set()  # outside every module
    # where a span and what it encloses start together, the span comes first (viewers nest by order)
    timed = [e for e in events if e["ph"] == "X"]
    for i, e in enumerate(timed):
        for later in timed[i + 1 :]:
            same_start = later["tid"] == e["tid"] and later["ts"] == e["ts"]
            assert not (same_start and later["dur"] > e["dur"]), (e["name"], later["name"])


def test_table_ranks_ops(profiled, capsys):
    _, prof = profiled
    prof.table(top=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["op", "calls", "forward"]
    assert len(lines) == 1 + 2 + 1
    ranked = sorted(
        {e.name for e in prof.events}, key=lambda n: -sum(e.duration_ns for e in prof.events if e.name == n)
    )
    assert [line.split()[0] for line in lines[1:3]] == ranked[:2]
    assert lines[-1].startswith("all ops") and "10 events" in lines[-1]


def test_profiling_changes_no_number():
    x = Tensor(np.linspace(-1, 1, 12).reshape(4, 3))
    plain, traced = MLP(), MLP()
    run_step(plain, x)
    with mg.profile():
        run_step(traced, x)
    for (name, p), (_, q) in zip(plain.named_parameters(), traced.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)


def test_the_engine_is_left_untraced_after_the_block_even_on_error():
    assert autograd._state.tracer is None
    with pytest.raises(ZeroDivisionError), mg.profile():
        raise ZeroDivisionError
    assert autograd._state.tracer is None
    with mg.profile() as outer:
        with mg.profile() as inner:
            Tensor([1.0], requires_grad=True).exp()
        Tensor([1.0], requires_grad=True).log()
    assert [e.name for e in inner.events] == ["Exp"] and [e.name for e in outer.events] == ["Log"]
    assert autograd._state.tracer is None


def test_train_profile_steps_writes_the_trace_of_the_first_steps(tmp_path, capsys):
    from test_cli import TINY_FLAGS, write_corpus

    from transformer.cli import main
    from transformer.train import TRACE_FILE

    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--out", str(run), *TINY_FLAGS, "--profile-steps", "3"]) == 0
    events = json.loads((run / TRACE_FILE).read_text())["traceEvents"]
    losses = [e for e in events if e.get("name") == "CrossEntropy"]
    assert sorted(e["cat"] for e in losses) == ["backward"] * 3 + ["forward"] * 3  # 3 steps, evaluations untraced
    assert {"GPT", "transformer.h.0.attn"} <= {e["name"] for e in events if e.get("cat") == "module"}
    assert f"wrote {run / TRACE_FILE}" in capsys.readouterr().out
    assert "profile_steps" not in json.loads((run / "config.json").read_text())["train"]  # not a hyper-parameter
    with pytest.raises(SystemExit) as bad_flag:
        main(["train", "--data", str(corpus), "--out", str(run), "--profile-steps", "-1"])
    assert bad_flag.value.code == 2 and "--profile-steps" in capsys.readouterr().err


def test_a_module_span_ends_where_the_other_track_begins():
    model, x = MLP(), Tensor(np.ones((4, 3)))
    with mg.profile() as prof:
        for _ in range(2):
            run_step(model, x)
    events = prof.trace()["traceEvents"]
    forward_spans = [e for e in events if e.get("cat") == "module" and e["name"] == "MLP" and e["tid"] == 1]
    first_backward = min(e["ts"] for e in events if e.get("cat") == "backward")
    assert len(forward_spans) == 2  # one per step's forward, not one across both
    assert min(s["ts"] + s["dur"] for s in forward_spans) <= first_backward
