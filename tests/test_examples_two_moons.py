"""examples/two_moons.py: the data it makes, and a full run that learns and writes its pictures."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "two_moons.py"


def load_example():
    spec = importlib.util.spec_from_file_location("two_moons", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_moons_shapes_labels_and_layout():
    X, y = load_example().make_moons(101, 0.0, np.random.default_rng(0))
    assert X.shape == (101, 2) and y.shape == (101,)
    assert (y == -1).sum() == 50 and (y == 1).sum() == 51
    upper, lower = X[y == -1], X[y == 1]
    # without noise: the upper moon is the unit half circle, the lower one its shifted mirror image
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-12)
    assert upper[:, 1].min() >= 0 and lower[:, 1].max() <= 0.5


def test_two_moons_learns_and_draws(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", "moons"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    accuracy = int(re.search(r"final accuracy (\d+)%", result.stdout).group(1))
    assert accuracy >= 95, result.stdout
    out = tmp_path / "moons"
    assert (out / "decision_boundary.png").read_bytes()[:4] == b"\x89PNG"
    dot_text = (out / "graph.dot").read_text()
    for name in ("0.weight", "2.bias", "4.weight", "<b>X</b>", "‖grad‖"):
        assert name in dot_text
    if shutil.which("dot"):
        assert "<svg" in (out / "graph.svg").read_text()
