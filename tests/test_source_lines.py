"""Every op notes the lines that asked for it (minigrad/source_lines.py), and the pictures show them:
draw_graph's tooltips and the explorer's node details name the caller's own line and the model's."""

from __future__ import annotations

import gc
import html
import inspect
import re
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

from minigrad import Tensor, source_lines, viz
from transformer.gpt import GPT, GPTConfig

HERE = Path(__file__).name
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def line_here(offset: int = 0) -> int:
    return inspect.currentframe().f_back.f_lineno + offset


def made_by(t: Tensor) -> list[str]:
    return source_lines.describe(t.grad_fn.origin)


def test_an_op_names_the_line_that_made_it():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3).sum()
    line = line_here(-1)
    assert made_by(y) == [f"tests/{HERE}:{line}  y = (x * 3).sum()"]


def gpt_loss():
    model = GPT(GPTConfig(vocab_size=65, block_size=8, n_layer=1, n_head=2, n_embd=16, fused=False))
    idx = np.zeros((1, 8), dtype=np.int64)
    _, loss = model(idx, idx)
    return model, loss, line_here(-1)


def test_an_op_inside_a_model_names_the_callers_line_and_the_models():
    model, loss, line = gpt_loss()
    caller, model_line = made_by(loss.grad_fn.parents[0])  # the loss's input, made inside GPT.forward
    assert caller == f"tests/{HERE}:{line}  _, loss = model(idx, idx)"
    place, text = model_line.split("  ", 1)
    path, number = place.rsplit(":", 1)
    assert path == "transformer/gpt.py"
    source = (Path(__file__).resolve().parents[1] / path).read_text().splitlines()
    assert source[int(number) - 1].strip() == text  # the very line, and its text


def test_the_attention_op_names_the_models_attention_line():
    _, loss, _ = gpt_loss()
    seen, stack, texts = set(), [loss], set()
    while stack:
        t = stack.pop()
        if t.grad_fn is None or id(t) in seen:
            continue
        seen.add(id(t))
        texts.update(line.split("  ", 1)[1] for line in made_by(t)[1:])
        stack += [p for p in t.grad_fn.parents if p is not None]
    assert any(re.match(r"y = attention\(", text) for text in texts), texts


def test_noting_keeps_no_frame_alive():
    class Big:
        pass

    def forward():
        local = Big()  # a frame kept alive would keep this alive
        x = Tensor([1.0], requires_grad=True)
        return (x * 2).sum(), weakref.ref(local)

    y, ref = forward()
    gc.collect()
    assert ref() is None
    model_code, model_offset, own_code, own_offset = y.grad_fn.origin
    assert isinstance(model_offset, int) and isinstance(own_offset, int)


def test_switched_off_nothing_is_noted():
    x = Tensor([1.0, 2.0], requires_grad=True)
    source_lines.record(False)
    try:
        assert not source_lines.is_recording()
        y = (x * 3).sum()
    finally:
        source_lines.record(True)
    assert y.grad_fn.origin is None and made_by(y) == []
    assert "tooltip" not in viz.draw_graph(y).source


def test_draw_graph_shows_the_lines_on_hover():
    x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    y = (x * 3).sum()
    line = line_here(-1)
    source = viz.draw_graph(y).source
    assert f'tooltip="tests/{HERE}:{line}  y = (x * 3).sum()"' in source


@needs_dot
def test_a_line_with_quotes_and_markup_survives_the_dot_text():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * len('<b>say "hi"</b> & go')).sum()
    line = line_here(-1)
    svg = viz.draw_graph(y).pipe(format="svg").decode()
    titles = [html.unescape(t).replace("\xa0", " ") for t in re.findall(r'xlink:title="([^"]*)"', svg)]
    assert f"""tests/{HERE}:{line}  y = (x * len('<b>say "hi"</b> & go')).sum()""" in titles


@needs_dot
def test_the_explorer_gives_each_op_its_lines():
    model, loss, line = gpt_loss()
    data = viz.explore(loss, model=model).data
    ops = [n for n in data["nodes"] if n["op"] != "leaf"]
    assert all(n["source"][0] == f"tests/{HERE}:{line}  _, loss = model(idx, idx)" for n in ops)
    # the model line: the GPT's own, or the head split/merge it shares with MultiHeadAttention
    model_files = ("transformer/gpt.py:", "transformer/attention.py:")
    assert all(n["source"][1].startswith(model_files) for n in ops if n["op"] != "CrossEntropy")
    assert any(n["source"][1].startswith("transformer/gpt.py:") for n in ops)
