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


def test_vit_vs_cnn_runs_the_whole_grid(tmp_path):
    out = run_example(
        "vit_vs_cnn.py", "--sizes", "40", "2000", "--seeds", "2", "--steps", "40", "--width", "4", "--n-embd", "8",
        "--n-layer", "1", "--n-head", "2", "--lr", "1e-2", "--out", "figs", cwd=tmp_path,
    )  # fmt: skip
    rows = (tmp_path / "figs" / "vit_vs_cnn.csv").read_text().splitlines()
    assert rows[0] == "model,size,seed,accuracy" and len(rows) == 1 + 2 * 2 * 2  # models × sizes × seeds
    assert {row.split(",")[1] for row in rows[1:]} == {"40", "1437"}  # "all" is every training image
    assert (tmp_path / "figs" / "vit_vs_cnn.png").stat().st_size > 1000
    assert "the curves" in out.splitlines()[-2]
    resnet_on_all = [float(row.split(",")[3]) for row in rows[1:] if row.startswith("resnet,1437")]
    assert min(resnet_on_all) > 0.3  # chance is 0.1: 40 steps of a 4-wide ResNet already learn


def test_vit_vs_cnn_subsets_are_balanced_and_the_verdict_reads_the_spread(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    from vit_vs_cnn import subset, verdict

    labels = np.arange(1000) % 10
    picked = subset(labels, 100, seed=0)
    assert len(set(picked)) == 100 and np.all(np.bincount(labels[picked]) == 10)
    assert set(picked) != set(subset(labels, 100, seed=1))
    spread = np.array([0.0])
    table = {("resnet", 100): (0.9, 0.01, spread), ("vit", 100): (0.7, 0.01, spread)}
    table |= {("resnet", 800): (0.97, 0.01, spread), ("vit", 800): (0.965, 0.01, spread)}
    assert verdict(table).startswith("the curves meet (within one spread of the seeds) at [800]")
    table["vit", 800] = (0.9, 0.01, spread)
    assert verdict(table).startswith("the curves do not meet")
