"""The lessons in docs/lessons: every notebook runs top to bottom in a fresh kernel, with its
exercises untouched and with their reference answers, and is stored without outputs; what the
lessons show inline (pictures, live loss curves, the explorer) is there; every checker accepts
its reference solution and names the typical mistakes it knows."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg

REPO = Path(__file__).resolve().parent.parent
LESSONS = REPO / "docs" / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("*.ipynb"))
SHARED_DATA = REPO.parent / "shared" / "data"
SECONDS_PER_LESSON = 60

sys.path.insert(0, str(LESSONS))
sys.path.insert(0, str(REPO / "tools"))
from headless_browser import browser_paths, open_notebook_output, start_chromium  # noqa: E402

import checks  # noqa: E402
import solutions  # noqa: E402

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
BROWSER = browser_paths() is not None and importlib.util.find_spec("selenium") is not None


class CountingClient(nbclient.NotebookClient):
    """nbclient's NotebookClient, counting the displays each cell updated in place (a live picture)."""

    def __init__(self, notebook):
        super().__init__(
            notebook, timeout=SECONDS_PER_LESSON, kernel_name="python3", resources={"metadata": {"path": str(LESSONS)}}
        )
        self.updates: dict[int, int] = {}

    def process_message(self, msg, cell, cell_index):
        if msg.get("msg_type") == "update_display_data":
            self.updates[cell_index] = self.updates.get(cell_index, 0) + 1
        return super().process_message(msg, cell, cell_index)


def run(notebook, monkeypatch) -> tuple:
    """Execute `notebook` in a fresh kernel from the lessons' folder, as JupyterLab runs it.

    Returns the notebook, now with outputs, and {cell index: displays it updated in place}.
    """
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    if (SHARED_DATA / "tinyshakespeare.txt").is_file():
        monkeypatch.setenv("MINIGRAD_DATA", str(SHARED_DATA))  # else the lesson finds it as the trainer does
    client = CountingClient(notebook)
    client.execute()
    return notebook, client.updates


EXECUTED: dict[Path, tuple] = {}  # path -> (the notebook run untouched, its updates, seconds), for the tests below


def untouched(path: Path, monkeypatch):
    if path not in EXECUTED:
        start = time.perf_counter()
        notebook, updates = run(nbformat.read(path, as_version=4), monkeypatch)
        EXECUTED[path] = notebook, updates, time.perf_counter() - start
    return EXECUTED[path]


def shown(cell) -> str:
    return "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def exercise_cells(notebook) -> list:
    return [c for c in notebook.cells if "exercise" in c.metadata.get("tags", [])]


def solved(notebook):
    """The notebook with each exercise answered by the reference solution (the check line kept)."""
    for cell in exercise_cells(notebook):
        name = re.search(r"^(?:def|class) (\w+)", cell.source, flags=re.M)[1]
        check = cell.source.rstrip().splitlines()[-1]
        cell.source = f"from solutions import {name}\n\n{check}"
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_with_its_exercises_untouched(path, monkeypatch):
    notebook, _, seconds = untouched(path, monkeypatch)
    assert seconds < SECONDS_PER_LESSON, f"{path.name} took {seconds:.0f} s"
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    assert 2 <= len(exercise_cells(notebook)) <= 5
    for cell in exercise_cells(notebook):
        assert "not done yet" in shown(cell), cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_with_its_exercises_solved(path, monkeypatch):
    notebook, _ = run(solved(nbformat.read(path, as_version=4)), monkeypatch)
    for cell in exercise_cells(notebook):
        assert shown(cell).startswith("✓"), shown(cell)
    printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "finish" not in printed  # every "yours once it passes" branch took the learner's answer


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lessons_are_stored_without_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, cell["source"]
    assert '"output_type"' not in path.read_text(encoding="utf-8")


def test_there_are_enough_exercises_and_each_has_a_checker():
    checked = set()
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if "exercise" in cell.metadata.get("tags", []):
                checked.add(re.search(r"checks\.(\w+)\(", cell.source)[1])
    assert 8 <= len(NOTEBOOKS) <= 10
    assert checked == set(checks.EXERCISES) and len(checked) >= 20


# ---------------------------------------------------------------- the checkers


@pytest.mark.parametrize("name", sorted(checks.EXERCISES))
def test_checker_accepts_the_reference_solution(name):
    exercise = checks.EXERCISES[name]
    result = exercise(exercise.solution)
    assert result.passed, result
    assert repr(result).startswith("✓")


@pytest.mark.parametrize("name", sorted(checks.EXERCISES))
def test_checker_names_each_typical_mistake(name):
    exercise = checks.EXERCISES[name]
    assert len(exercise.mistakes) >= 2
    for wrong, hint in exercise.mistakes:
        result = exercise(wrong)
        assert not result.passed and result.done, result
        assert result.message.endswith(f"Hint: {hint}"), result


@pytest.mark.parametrize("name", sorted(checks.EXERCISES))
def test_an_untouched_exercise_says_it_is_left_to_do(name):
    exercise = checks.EXERCISES[name]

    def blank(*args, **kwargs):
        return None

    class Blank(mg.Function):
        def forward(self, x):
            return None

        def backward(self, grad):
            return None

    result = exercise(Blank if isinstance(exercise.solution, type) else blank)
    assert not result.passed and not result.done and "not done yet" in repr(result)


# Wrong answers as a learner writes them (not the checkers' own list): each gets the hint of its slip.


def test_one_swapped_factor_is_found_in_the_output_it_spoils():
    def mul_backward(grad, a, b):
        return solutions.unbroadcast(grad * b, a.shape), solutions.unbroadcast(grad * b, b.shape)

    result = checks.mul_backward(mul_backward)
    assert result.message.startswith("the gradient of b is off at [0]: ")
    assert "did you use a where b belongs?" in result.message


def test_learners_own_wrong_answers_get_their_hints():
    def softmax(x):
        e = np.exp(x)
        return e / np.sum(e, axis=-1, keepdims=True)

    def causal_mask(T):
        return np.triu(np.ones((T, T))).astype(bool)

    def merge(ids, pair, new_id):
        out = []
        for i, token in enumerate(ids):
            out.append(new_id if ids[i : i + 2] == list(pair) else token)
        return out

    def sgd_momentum_step(param, grad, velocity, lr, momentum):
        velocity = momentum * velocity + grad
        return param + lr * velocity, velocity

    def layer_norm(x, weight, bias, eps=1e-5):
        centred = x - np.mean(x, axis=-1, keepdims=True)
        return centred / (np.std(x, axis=-1, keepdims=True) + eps) * weight + bias

    assert "subtract each row's maximum" in checks.softmax(softmax).message
    assert "lower triangle" in checks.causal_mask(causal_mask).message
    assert "skip both tokens" in checks.merge(merge).message
    assert "against the gradient" in checks.sgd_momentum_step(sgd_momentum_step).message
    assert "inside the square root" in checks.layer_norm(layer_norm).message


def test_code_that_fails_is_reported_not_raised():
    def neuron_grads(x, w, b):
        return undefined_name * x  # noqa: F821

    def expression_grads(a, b, c):
        return 2 * (a * b + c) * b, 2 * (a * b + c) * a  # dL/dc forgotten

    result = checks.neuron_grads(neuron_grads)
    assert not result.passed and "your code raised NameError" in result.message
    result = checks.expression_grads(expression_grads)
    assert "return 3 values, (dL/da, dL/db, dL/dc), got a tuple of 2" in result.message


def test_an_unknown_mistake_still_says_where():
    def unbroadcast(grad, shape):
        return np.zeros(shape)

    result = checks.unbroadcast(unbroadcast)
    assert not result.passed and "Hint" not in result.message
    assert re.match(r"the summed gradient is off at \[0\]: 0 where -?\d", result.message)


# ---------------------------------------------------------------- what the lessons show


def outputs_of(notebook, mime: str) -> list[str]:
    return [o["data"][mime] for c in notebook.cells for o in c.get("outputs", []) if mime in o.get("data", {})]


@pytest.mark.parametrize("name", ["01_derivatives", "03_backward", "05_attention", "07_gpt", "09_double_backward"])
def test_draw_graph_shows_its_svg_inline(name, monkeypatch):
    notebook, _, _ = untouched(LESSONS / f"{name}.ipynb", monkeypatch)
    assert any("<svg" in svg for svg in outputs_of(notebook, "image/svg+xml"))


@pytest.mark.parametrize("name", ["04_gradcheck_and_optimisers", "07_gpt"])
def test_training_shows_a_live_loss_curve(name, monkeypatch):
    notebook, updates, _ = untouched(LESSONS / f"{name}.ipynb", monkeypatch)
    assert updates and max(updates.values()) >= 3  # the curve was redrawn in place as it trained
    (cell,) = [notebook.cells[i] for i in updates]
    assert [o["output_type"] for o in cell.outputs if "image/png" in o.get("data", {})] == ["display_data"]


@pytest.mark.skipif(not BROWSER, reason="needs chromium, chromedriver and selenium")
def test_the_explorer_inline_in_lesson_3_steps_in_a_browser(monkeypatch, tmp_path):
    notebook, _, _ = untouched(LESSONS / "03_backward.ipynb", monkeypatch)
    (frame,) = [h for h in outputs_of(notebook, "text/html") if "minigrad-graph" in h]
    browser = start_chromium()
    try:
        open_notebook_output(browser, frame, tmp_path / "lesson.html")
        order = browser.execute_script("return window.minigradExplorer.data.backward_order")
        walked = browser.execute_script(
            "const ids = []; let id; while ((id = window.minigradExplorer.step()) !== null) ids.push(id); return ids;"
        )
        assert walked == order and len(walked) > 5
        browser.find_element("css selector", f'[data-node-id="{order[0]}"]').click()  # the loss: made in the cell
        assert browser.find_element("css selector", "#details .made-by").text.startswith("made by cell:")
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        browser.quit()


def missing_links(texts: list[str]) -> list[str]:
    """The relative links in Markdown `texts` (written in docs/lessons) whose files do not exist."""
    from test_docs import LINK, prose

    targets = [m["target"].partition("#")[0] for text in texts for m in LINK.finditer(prose(text))]
    return [t for t in targets if t and not re.match(r"^[a-z]+:", t) and not (LESSONS / t).exists()]


def test_the_lessons_readme_links_resolve():
    assert missing_links([(LESSONS / "README.md").read_text(encoding="utf-8")]) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_links_resolve(path):
    """Every source file, guide and picture a lesson links to exists, and it links its source files."""
    texts = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
    assert missing_links(texts) == []
    assert any("](../../minigrad/" in text or "](../../transformer/" in text for text in texts)
