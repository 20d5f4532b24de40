"""The vision examples run end to end at a tiny size, learn beyond chance, and draw their pictures.

Each runs as a reader runs it (a fresh process, small flags) for a few hundred steps of a
model a few dozen numbers wide: enough to see learning, far from the accuracy of a full run.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_examples_smoke import REPO, run_example  # the same way of running an example as a script

pytest.importorskip("sklearn")


def accuracy(stdout: str) -> float:
    return float(stdout.split("test accuracy ")[1].split()[0])


def test_vit_digits_learns(tmp_path):
    out = run_example(
        "vit_digits.py", "--steps", "300", "--lr", "5e-3", "--n-embd", "16", "--n-layer", "1", "--n-head", "2",
        "--out", "figs", cwd=tmp_path,
    )  # fmt: skip
    assert accuracy(out) > 0.3  # chance is 0.1
    for name in ("vit_patches", "vit_attention", "vit_loss"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 1000


def test_swin_digits_learns(tmp_path):
    out = run_example(
        "swin_digits.py", "--steps", "300", "--lr", "5e-3", "--embed-dim", "8", "--out", "figs", cwd=tmp_path
    )
    assert accuracy(out) > 0.4  # chance is 0.1
    for name in ("swin_windows", "swin_relative_bias", "swin_loss"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 1000


def test_coattention_digits_learns(tmp_path):
    out = run_example(
        "coattention_digits.py", "--steps", "600", "--lr", "5e-3", "--digits", "2", "--n-embd", "16", "--n-layer", "1",
        "--out", "figs", cwd=tmp_path,
    )  # fmt: skip
    assert accuracy(out) > 0.7  # chance is 0.5
    for name in ("coattention", "coattention_loss"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 1000


def test_caption_pairs_are_half_right_and_wrong_in_one_place(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    from coattention_digits import make_pairs

    labels = np.arange(50) % 10
    images = np.repeat(labels, 64).reshape(50, 8, 8).astype(float)  # each image is filled with its own label
    regions, captions, targets = make_pairs(images, labels, 2000, 3, np.random.default_rng(0))
    shown = regions[:, :, 0].astype(int)  # (2000, 3) the digit in each region
    wrong_places = (shown != captions).sum(axis=1)
    assert np.all(wrong_places[targets == 1] == 0)
    assert np.all(wrong_places[targets == 0] == 1)
    assert 0.45 < targets.mean() < 0.55
