"""minigrad.viz.explore: the backward walk recorded from the engine, written as one offline page,
and that page driven in a real headless Chromium (skipped where none is installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigrad import Tensor, nn
from minigrad.viz import Explorer, GraphvizNotFoundError, explore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from headless_browser import browser_paths, open_file, open_notebook_output, start_chromium  # noqa: E402

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
needs_browser = pytest.mark.skipif(
    browser_paths() is None or importlib.util.find_spec("selenium") is None,
    reason="needs chromium, chromedriver and selenium",
)
pytestmark = needs_dot


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.hidden = nn.Linear(3, 4, rng=rng)
        self.out = nn.Linear(4, 1, rng=rng)

    def forward(self, x):
        return self.out(self.hidden(x).tanh())


def three_ops():
    """y = sum(x·x + x): x reaches the loss along three paths (twice through Mul, once through Add)."""
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True, name="x")
    return x, (x * x + x).sum()


def mlp_step():
    model = MLP()
    x = Tensor(np.linspace(-1, 1, 15).reshape(5, 3), name="x")
    return model, ((model(x) - 1.0) ** 2).mean()


def graph_json(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="minigrad-graph">(.*?)</script>', page, flags=re.S)
    return json.loads(match.group(1))


def stats(array) -> dict:
    a = np.asarray(array, dtype=np.float64)
    return dict(mean=a.mean(), std=a.std(), min=a.min(), max=a.max())


def assert_stats(shown: dict, array, rel=1e-6):
    for key, value in stats(array).items():
        assert shown[key] == pytest.approx(value, rel=rel, abs=1e-7), key


# ---------------------------------------------------------------- the record


def test_page_embeds_the_graph_as_designed():
    x, y = three_ops()
    page = explore(y).html()
    data = graph_json(page)
    assert set(data) >= {"nodes", "backward_order"}
    by_id = {n["id"]: n for n in data["nodes"]}
    for node in data["nodes"]:
        assert set(node) >= {"id", "op", "shape", "dtype", "inputs", "value", "grad", "module"}
        assert f'data-node-id="{node["id"]}"' in page
    leaf = next(n for n in data["nodes"] if n["op"] == "leaf")
    assert leaf["name"] == "x" and leaf["shape"] == [3] and leaf["dtype"] == "float32"
    assert_stats(leaf["value"], x.data)
    assert sorted(n["op"] for n in data["nodes"] if n["op"] != "leaf") == ["Add", "Mul", "Sum"]
    mul = next(n for n in data["nodes"] if n["op"] == "Mul")
    assert mul["inputs"] == [leaf["id"], leaf["id"]]
    assert [by_id[i]["op"] for i in data["backward_order"]] == ["Sum", "Add", "Mul"]


def test_backward_order_is_the_engines_reverse_topological_order():
    model, loss = mlp_step()
    data = explore(loss, model=model).data
    ops = {n["id"]: n for n in data["nodes"] if n["op"] != "leaf"}
    order = data["backward_order"]
    assert sorted(order) == sorted(ops)  # every op once
    position = {op: i for i, op in enumerate(order)}
    for op in ops.values():  # an op runs after every op that used its output
        for parent in op["inputs"]:
            if parent in ops:
                assert position[parent] > position[op["id"]]


def test_explore_is_backward_and_records_its_numbers():
    model, loss = mlp_step()
    twin, twin_loss = mlp_step()
    twin_loss.backward()
    data = explore(loss, model=model).data
    leaves = {n["name"]: n for n in data["nodes"] if n["op"] == "leaf"}
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)  # the leaves got what backward gives
        assert_stats(leaves[name]["grad"], p.grad)
        assert leaves[name]["module"] == name.rpartition(".")[0]
    assert leaves["x"]["grad"] is None  # an input that needs no gradient


def test_contributions_to_a_leaf_on_several_paths_sum_to_its_gradient():
    x, y = three_ops()
    data = explore(y).data
    leaf = next(n["id"] for n in data["nodes"] if n["op"] == "leaf")
    arrivals = [e for step in data["steps"] for e in step["sent"] if e["to"] == leaf]
    assert [e["count"] for e in arrivals] == [1, 2, 3]
    ones, xs = np.ones(3), x.data
    assert_stats(arrivals[0]["grad"], ones)  # d(a + x)/dx · 1 from Add
    assert_stats(arrivals[1]["grad"], xs) and assert_stats(arrivals[2]["grad"], xs)  # x·x sends x to each side
    assert_stats(arrivals[0]["total"], ones)
    assert_stats(arrivals[1]["total"], ones + xs)
    assert_stats(arrivals[2]["total"], x.grad)
    np.testing.assert_allclose(x.grad, 2 * xs + 1)
    assert arrivals[2]["total"]["sample"]["values"] == pytest.approx(list(2 * xs + 1), rel=1e-3)


def test_a_leaf_that_already_held_a_gradient_adds_to_it_as_backward_does():
    x, y = three_ops()
    x.grad = np.full(3, 10.0, dtype=np.float32)
    data = explore(y).data
    arrivals = [e for step in data["steps"] for e in step["sent"] if e["to"] == data["nodes"][-1]["id"]]
    np.testing.assert_allclose(x.grad, 10 + 2 * x.data + 1)
    assert_stats(arrivals[0]["total"], 10 + np.ones(3))
    assert_stats(arrivals[-1]["total"], x.grad)


def test_names_cannot_break_out_of_the_page():
    x = Tensor([1.0, 2.0], requires_grad=True, name="</script><script>alert(1)</script>")
    page = explore((x * 3).sum()).html()
    assert "<script>alert(1)" not in page
    assert graph_json(page)["nodes"][-1]["name"] == x.name


def test_masked_scores_keep_statistics_of_their_finite_values():
    scores = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="scores")
    masked = scores.masked_fill(np.array([[False, True], [False, False]]), -np.inf)  # causal-style -inf
    data = explore(masked.softmax(axis=-1)[:, 0].sum()).data
    node = next(n for n in data["nodes"] if n["inputs"] == [data["nodes"][-1]["id"]] and n["op"] != "leaf")
    assert node["value"]["nonfinite"] == 1
    assert_stats(node["value"], [1.0, 3.0, 4.0])


def test_samples_are_small_and_real():
    values = (np.arange(200 * 300) % 97).reshape(200, 300)  # whole numbers below 100: 3 digits keep them exact
    big = Tensor(values, dtype=np.float32, requires_grad=True, name="big")
    data = explore((big * 2).sum()).data
    leaf = next(n for n in data["nodes"] if n["op"] == "leaf")
    sample = leaf["value"]["sample"]
    assert sample["rows"] * sample["columns"] <= 8 * 16 and sample["of"] == [200, 300]
    assert set(sample["values"]) <= set(big.data.ravel().tolist())  # picked, not averaged
    assert sum(leaf["value"]["histogram"]["counts"]) == big.size


def test_the_page_is_one_file_with_nothing_to_fetch(tmp_path):
    model, loss = mlp_step()
    path = explore(loss, model=model).save(tmp_path / "mlp.html")
    page = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", page)  # no script, style or image from elsewhere
    assert "@import" not in page and "fetch(" not in page
    assert "hidden" in page and "out" in page  # the module clusters are drawn


def test_repr_html_frames_the_page():
    _, y = three_ops()
    shown = explore(y)._repr_html_()
    assert shown.startswith("<iframe srcdoc=") and "minigrad-graph" in shown and "<script" not in shown


def test_bad_input_is_named():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="scalar"):
        explore(x * 2)
    with pytest.raises(ValueError, match="requires a gradient"):
        explore(Tensor([1.0]).sum())
    y = (x * 2).sum()
    y.backward()
    with pytest.raises(ValueError, match="instead of loss.backward"):
        explore(y)


def test_explorer_of_a_two_layer_gpt_stays_small():
    from transformer.gpt import GPT, GPTConfig

    config = GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=16)
    rng = np.random.default_rng(0)
    model = GPT(config, rng=rng)
    idx = rng.integers(0, 65, size=(2, 8))
    _, loss = model(idx, np.roll(idx, -1, axis=1))
    explorer = explore(loss, model=model)
    assert isinstance(explorer, Explorer)
    assert len(explorer.html().encode()) < 3_000_000
    names = {n.get("name") for n in explorer.data["nodes"]}
    assert {"transformer.h.1.attn.c_attn.weight", "lm_head.weight"} & names


# ---------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium()
    yield driver
    driver.quit()


def load(browser, explorer: Explorer, tmp_path) -> dict:
    open_file(browser, explorer.save(tmp_path / "page.html"))
    return explorer.data


def errors(browser) -> list:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def shown_gradient(browser, node_id: str) -> tuple[dict, str]:
    """Click the node's shape and read the gradient the side panel shows (its four numbers, and its text)."""
    browser.find_element("css selector", f'[data-node-id="{node_id}"]').click()
    details = browser.find_element("id", "details")
    cells = details.find_elements("css selector", 'table[data-kind="grad"] td[data-stat]')
    return {c.get_attribute("data-stat"): float(c.text) for c in cells}, details.text


@needs_browser
def test_the_page_loads_without_a_javascript_error(browser, tmp_path):
    model, loss = mlp_step()
    load(browser, explore(loss, model=model), tmp_path)
    assert browser.execute_script("return typeof window.minigradExplorer.step") == "function"
    browser.execute_script("window.minigradExplorer.play(); window.minigradExplorer.pause();")
    browser.find_element("id", "fold-all").click()
    browser.find_element("id", "unfold-all").click()
    assert errors(browser) == []


@needs_browser
def test_step_walks_the_backward_order_and_reset_starts_again(browser, tmp_path):
    model, loss = mlp_step()
    data = load(browser, explore(loss, model=model), tmp_path)
    walked = browser.execute_script(
        "const ids = []; let id; while ((id = window.minigradExplorer.step()) !== null) ids.push(id); return ids;"
    )
    assert walked == data["backward_order"]
    assert len(browser.find_elements("css selector", "g.node.ran")) == len(walked)
    browser.execute_script("window.minigradExplorer.reset()")
    assert browser.find_elements("css selector", "g.node.ran, g.node.running") == []
    assert browser.execute_script("return window.minigradExplorer.step()") == data["backward_order"][0]
    assert errors(browser) == []


@needs_browser
def test_the_numbers_shown_are_the_engines_gradients(browser, tmp_path):
    model, loss = mlp_step()
    data = load(browser, explore(loss, model=model), tmp_path)
    browser.execute_script("while (window.minigradExplorer.step() !== null) {}")
    leaves = {n["name"]: n["id"] for n in data["nodes"] if n["op"] == "leaf"}
    for name, p in model.named_parameters():
        shown, _ = shown_gradient(browser, leaves[name])
        for key, value in stats(p.grad).items():
            assert shown[key] == pytest.approx(value, rel=1e-3, abs=1e-6), (name, key)


@needs_browser
def test_a_leaf_on_several_paths_accumulates_visibly(browser, tmp_path):
    x, y = three_ops()
    data = load(browser, explore(y), tmp_path)
    leaf = next(n["id"] for n in data["nodes"] if n["op"] == "leaf")
    _, text = shown_gradient(browser, leaf)
    assert "none yet" in text
    keys = browser.find_element("tag name", "body")
    keys.send_keys("\ue014")  # → : Sum sends ones to Add
    keys.send_keys("\ue014")  # → : Add sends ones to Mul's output and to x
    shown, text = shown_gradient(browser, leaf)
    assert "1 of 3 contributions" in text and shown["mean"] == pytest.approx(1.0)
    badge = browser.find_element("css selector", f'[data-node-id="{leaf}"] text.badge')
    assert badge.text == "∑ 1/3"
    keys.send_keys("\ue014")  # → : Mul sends x to both of its inputs, both x
    shown, text = shown_gradient(browser, leaf)
    assert "3 of 3 contributions" in text and badge.text == "∑ 3/3"
    for key, value in stats(x.grad).items():
        assert shown[key] == pytest.approx(value, rel=1e-3), key
    keys.send_keys("\ue012")  # ← : back to two steps run
    shown, text = shown_gradient(browser, leaf)
    assert "1 of 3 contributions" in text
    keys.send_keys("r")
    _, text = shown_gradient(browser, leaf)
    assert "none yet" in text
    assert errors(browser) == []


@needs_browser
def test_search_and_fold(browser, tmp_path):
    model, loss = mlp_step()
    data = load(browser, explore(loss, model=model), tmp_path)
    box = browser.find_element("id", "search")
    box.send_keys("out.")
    assert browser.find_element("id", "matches").text == "2 matches"
    matched = {e.get_attribute("data-node-id") for e in browser.find_elements("css selector", "g.node.match")}
    assert matched == {n["id"] for n in data["nodes"] if n.get("name", "") in ("out.weight", "out.bias")}
    label = next(t for t in browser.find_elements("css selector", "g.cluster text") if t.text.startswith("hidden ·"))
    label.click()
    hidden = {e.get_attribute("data-node-id") for e in browser.find_elements("css selector", "g.node.hidden")}
    assert hidden == {n["id"] for n in data["nodes"] if n["module"] == "hidden"}
    assert "folded" in label.text
    label.click()
    assert browser.find_elements("css selector", "g.node.hidden") == []
    assert errors(browser) == []


def test_command_line_writes_the_explorer_of_a_training_step(tmp_path, capsys):
    from transformer.cli import main

    assert main(["graph", "--html", str(tmp_path / "step.html")]) == 0
    data = graph_json((tmp_path / "step.html").read_text())
    names = {n.get("name") for n in data["nodes"]}
    assert "transformer.h.1.mlp.c_fc.weight" in names
    assert all(n["grad"] is not None for n in data["nodes"] if n.get("name") in names - {None})
    assert main(["graph"]) == 2
    assert "--html" in capsys.readouterr().err.strip().splitlines()[-1]


def test_example_explore_mlp(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(repo / "examples" / "explore_mlp.py"), "--out", "mlp.html"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = graph_json((tmp_path / "mlp.html").read_text())
    assert "head.weight" in {n.get("name") for n in data["nodes"]}
    assert f"backward runs {len(data['backward_order'])} ops" in result.stdout


def test_without_graphviz_the_error_names_the_install(monkeypatch, tmp_path, capsys):
    from transformer.cli import main

    monkeypatch.setattr("minigrad.viz.shutil.which", lambda program: None)
    _, y = three_ops()
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz"):
        explore(y)
    assert main(["graph", "--html", str(tmp_path / "step.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install graphviz" in err and "Traceback" not in err
    assert not (tmp_path / "step.html").exists()


@needs_browser
def test_hovering_an_edge_shows_the_gradient_sent_back_along_it(browser, tmp_path):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    x, y = three_ops()
    data = load(browser, explore(y), tmp_path)
    by_op = {n["op"]: n["id"] for n in data["nodes"]}
    browser.execute_script("while (window.minigradExplorer.step() !== null) {}")
    edge = next(
        e
        for e in browser.find_elements("css selector", "g.edge")
        if e.find_element("tag name", "title").get_attribute("textContent") == f"{by_op['leaf']}->{by_op['Add']}"
    )
    x_px, y_px = browser.execute_script(  # the middle of the line, in the window's coordinates
        "const path = arguments[0].querySelector('path');"
        "const p = path.getPointAtLength(path.getTotalLength() / 2).matrixTransform(path.getScreenCTM());"
        "return [p.x, p.y];",
        edge,
    )
    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(int(x_px), int(y_px))
    actions.perform()
    details = browser.find_element("id", "details")
    cells = details.find_elements("css selector", 'table[data-kind="edge"] td[data-stat="mean"]')
    assert [float(c.text) for c in cells] == [1.0]  # Add passes its gradient, ones, to x
    assert errors(browser) == []


@needs_browser
def test_the_inline_form_steps_inside_a_sandboxed_notebook_output(browser, tmp_path):
    model, loss = mlp_step()
    explorer = explore(loss, model=model)
    open_notebook_output(browser, explorer._repr_html_(), tmp_path / "notebook.html")
    try:
        walked = browser.execute_script(
            "const ids = []; let id; while ((id = window.minigradExplorer.step()) !== null) ids.push(id); return ids;"
        )
        assert walked == explorer.data["backward_order"]
        browser.find_element("id", "reset").click()  # the controls work in the frame too
        assert browser.execute_script("return window.minigradExplorer.done") == 0
        browser.find_element("id", "step").click()
        assert browser.execute_script("return window.minigradExplorer.done") == 1
        assert errors(browser) == []
    finally:
        browser.switch_to.default_content()


@needs_browser
def test_a_large_graph_opens_fitted_to_the_window_with_its_modules_folded(browser, tmp_path):
    from transformer.gpt import GPT, GPTConfig

    config = GPTConfig(
        vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=16, fused=False
    )  # the readable ops: a few hundred nodes
    rng = np.random.default_rng(0)
    model = GPT(config, rng=rng)
    idx = rng.integers(0, 65, size=(2, 8))
    _, loss = model(idx, np.roll(idx, -1, axis=1))
    data = load(browser, explore(loss, model=model), tmp_path)
    assert len(data["nodes"]) > 150
    clusters = browser.find_elements("css selector", "g.cluster")
    assert clusters and all("folded" in c.get_attribute("class") for c in clusters)
    drawing, pane = browser.execute_script(
        "const r = document.querySelector('#canvas svg').getBoundingClientRect();"
        "const p = document.getElementById('graph');"
        "return [[r.width, r.height], [p.clientWidth, p.clientHeight]];"
    )
    assert drawing[0] <= pane[0] and drawing[1] <= pane[1]
    assert browser.execute_script("return window.minigradExplorer.step()") == data["backward_order"][0]
    assert errors(browser) == []


@needs_browser
def test_a_small_graph_opens_unfolded(browser, tmp_path):
    model, loss = mlp_step()
    load(browser, explore(loss, model=model), tmp_path)
    assert not any("folded" in c.get_attribute("class") for c in browser.find_elements("css selector", "g.cluster"))


@needs_browser
def test_clicking_an_op_shows_the_line_that_made_it(browser, tmp_path):
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True, name="x")
    y = (x * x + x).sum()
    data = load(browser, explore(y), tmp_path)
    add = next(n for n in data["nodes"] if n["op"] == "Add")
    assert add["source"] == [f"tests/test_explorer.py:{y_line()}  y = (x * x + x).sum()"]
    browser.find_element("css selector", f'[data-node-id="{add["id"]}"]').click()
    shown = browser.find_element("css selector", "#details .made-by").text
    assert shown == f"made by tests/test_explorer.py:{y_line()}  y = (x * x + x).sum()"
    assert errors(browser) == []


def y_line() -> int:
    """The line of `y = (x * x + x).sum()` in the test above."""
    lines = Path(__file__).read_text().splitlines()
    return lines.index("    y = (x * x + x).sum()") + 1
