"""The lessons in docs/lessons: every notebook runs top to bottom in a fresh kernel with its
exercises untouched, is stored without outputs, and every checker accepts its reference solution
and names the typical mistakes it knows."""

from __future__ import annotations

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
import checks  # noqa: E402
import solutions  # noqa: E402


def execute(path: Path):
    """The notebook run in a fresh kernel from its own folder, as JupyterLab runs it."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=SECONDS_PER_LESSON, kernel_name="python3", resources={"metadata": {"path": str(LESSONS)}}
    )
    client.execute()
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_with_its_exercises_untouched(path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    if (SHARED_DATA / "tinyshakespeare.txt").is_file():
        monkeypatch.setenv("MINIGRAD_DATA", str(SHARED_DATA))
    start = time.perf_counter()
    notebook = execute(path)
    seconds = time.perf_counter() - start
    assert seconds < SECONDS_PER_LESSON, f"{path.name} took {seconds:.0f} s"
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    exercises = [c for c in notebook.cells if "exercise" in c.metadata.get("tags", [])]
    assert 2 <= len(exercises) <= 5
    for cell in exercises:
        shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert "not done yet" in shown, cell.source


def solved(notebook):
    """The notebook with each exercise answered by the reference solution (the check line kept)."""
    for cell in notebook.cells:
        if "exercise" in cell.metadata.get("tags", []):
            name = re.search(r"^(?:def|class) (\w+)", cell.source, flags=re.M)[1]
            check = cell.source.rstrip().splitlines()[-1]
            cell.source = f"from solutions import {name}\n\n{check}"
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_with_its_exercises_solved(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    if (SHARED_DATA / "tinyshakespeare.txt").is_file():
        monkeypatch.setenv("MINIGRAD_DATA", str(SHARED_DATA))
    notebook = solved(nbformat.read(path, as_version=4))
    nbclient.NotebookClient(
        notebook, timeout=SECONDS_PER_LESSON, kernel_name="python3", resources={"metadata": {"path": str(LESSONS)}}
    ).execute()
    for cell in notebook.cells:
        if "exercise" in cell.metadata.get("tags", []):
            shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            assert shown.startswith("✓"), shown
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "finish" not in text and "(finish" not in text  # every "use yours once done" branch took yours


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lessons_are_stored_without_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, cell["source"]
    assert '"output_type"' not in path.read_text(encoding="utf-8")


def test_there_are_enough_exercises_and_each_has_a_checker():
    nbformat = pytest.importorskip("nbformat")
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
