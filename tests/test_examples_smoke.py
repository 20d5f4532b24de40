"""Each teaching example runs end to end at a tiny size and writes what it promises.

The examples are scripts, so they run as a reader runs them: a fresh Python process, from a
scratch directory, with small flags. A broken import, a renamed function or a plot that no
longer draws fails here instead of in front of a reader.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{name} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_scalar_walkthrough(tmp_path):
    out = run_example("scalar_walkthrough.py", "--out", "graphs", cwd=tmp_path)
    drawn = list((tmp_path / "graphs").iterdir())  # neuron.svg, or neuron.dot where Graphviz is missing
    assert [p.stem for p in drawn] == ["neuron"] and "x1" in drawn[0].read_text()
    # micrograd's published numbers for its README expression
    assert "g = 24.7041, dg/da = 138.8338, dg/db = 645.5773" in out
    assert "mg.gradcheck agrees: True" in out


def test_positional_encodings(tmp_path):
    out = run_example(
        "positional_encodings.py",
        "--out",
        "figs",
        "--max-len",
        "12",
        "--d-model",
        "8",
        "--head-dim",
        "4",
        "--num-heads",
        "3",
        cwd=tmp_path,
    )
    for name in ("pe_sinusoidal", "pe_learned", "pe_rope", "pe_alibi"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 1000
    # RoPE's scores are constant along each diagonal: a function of the relative position only
    spread = float(out.split("n - m = const: ")[1].split()[0])
    assert spread < 1e-5


def test_sampling_distributions(tmp_path):
    out = run_example("sampling_distributions.py", "--out", "figs", "--draws", "4000", cwd=tmp_path)
    assert (tmp_path / "figs" / "sampling.png").stat().st_size > 1000
    # top-k k keeps exactly k tokens; the sampled frequencies follow the plotted probabilities
    assert "top-k 3: support  3 tokens" in out
    errors = [float(line.split("|sampled - exact| ")[1].split()[0]) for line in out.splitlines() if "|sampled" in line]
    assert errors and max(errors) < 0.05


def test_attention_maps_trains_briefly_and_draws_every_head(tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 40, encoding="utf-8")
    out = run_example(
        "attention_maps.py",
        "--data",
        str(corpus),
        "--train-dir",
        "run",
        "--out",
        "figs",
        "--text",
        "to be or not",
        "--max-iters",
        "4",
        "--n-layer",
        "2",
        "--n-head",
        "2",
        "--n-embd",
        "8",
        "--block-size",
        "8",
        cwd=tmp_path,
    )
    assert (tmp_path / "run" / "ckpt.safetensors").exists()
    assert (tmp_path / "figs" / "attention_maps.png").stat().st_size > 1000
    # the text is cropped to the block size; one line per layer, one number per head
    assert "layer 1: mean distance attended, per head: [" in out
    assert out.count("mean distance attended") == 2


def test_newton_takes_fewer_steps_than_gradient_descent(tmp_path):
    out = run_example("newton.py", "--samples", "50", "--features", "3", cwd=tmp_path)
    gd = int(out.split("gradient descent: ")[1].split()[0])
    newton = int(out.split("Newton's method: ")[1].split()[0])
    assert newton < 10 < 100 < gd  # quadratic convergence against a crawl along the flat direction
    assert float(out.split("max |w_gd - w_newton| = ")[1].split()[0]) < 1e-5


def test_curvature_measures_sharpness_and_draws_it(tmp_path, shakespeare_path):
    args = ["--out", "figs", "--data", str(shakespeare_path), "--iters", "4", "--every", "2", "--power-steps", "3"]
    out = run_example("curvature.py", *args, "--n-embd", "8", "--block-size", "8", "--batch-size", "2", cwd=tmp_path)
    sharpness = [float(line.split()[-1]) for line in out.splitlines() if "top Hessian eigenvalue" in line]
    assert len(sharpness) == 3 and all(np.isfinite(sharpness))
    assert (tmp_path / "figs" / "curvature.png").stat().st_size > 1000


def test_gpt2(tmp_path):
    """examples/gpt2.py on a tiny model in GPT-2's layout (GPT-2's own weights need a download)."""
    from transformer import GPT, GPTConfig
    from transformer.tokenizer import BPETokenizer

    text = "Hello, I'm a language model, a model of language; hello models, hello languages.\n" * 20
    tokenizer = BPETokenizer(BPETokenizer.train(text, 270, pattern="gpt2").merges, "gpt2", ["<|endoftext|>"])
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)
    GPT(config, rng=np.random.default_rng(0)).save_pretrained(tmp_path / "tiny-gpt2")
    tokenizer.save_pretrained(tmp_path / "tiny-gpt2")
    out = run_example("gpt2.py", "tiny-gpt2", "--max-new-tokens", "6", cwd=tmp_path)
    assert out.startswith("loaded ") and "Hello, I'm a language model," in out
    assert "6 tokens in" in out and "tokens/s" in out
