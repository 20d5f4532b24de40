"""Draw every picture in docs/figures with the project's own code (`make docs`).

Nothing in docs/figures is drawn by hand: each file comes from one function below, which
either calls the engine directly (the computation graphs) or runs one of the examples, the
same scripts a reader runs. Run from anywhere:

    python tools/make_docs.py              # everything
    python tools/make_docs.py --only pe    # just the figures whose step name contains "pe"
    python tools/make_docs.py --figures /tmp/figures   # somewhere else (the tests do this)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "docs" / "figures"
DOCS_RUN = REPO / "runs" / "docs-gpt"  # runs/ is not committed
# As `make train`: the corpus copy beside the checkout when there is one, else the trainer finds it.
SHARED_CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
sys.path.insert(0, str(REPO))  # the checkout's packages, installed or not
sys.path.insert(0, str(REPO / "tools"))


def run_example(name: str, *args: str) -> None:
    """Run examples/<name> as a reader would, with the repository importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, str(REPO / "examples" / name), *args], check=True, env=env, cwd=REPO)


def graphs(figures: Path) -> None:
    """autograd_graph.svg (a neuron and its loss, after backward), attention_graph.svg (causal
    self-attention), block_graph.svg (one GPT block) and gpt_graph.svg (a two-block GPT and its
    loss, each block's sublayers folded). The GPT pictures are drawn with fused=False: the
    readable definitions, every op in view."""
    import numpy as np

    import minigrad as mg
    from minigrad import Tensor, nn
    from minigrad.viz import draw_graph, render
    from transformer.gpt import GPT, Block, CausalSelfAttention, GPTConfig

    rng = np.random.default_rng(0)
    mg.manual_seed(0)
    neuron = nn.Linear(3, 1)
    x = Tensor(rng.standard_normal((4, 3)), name="x")  # (B, 3) inputs
    y = Tensor(rng.standard_normal((4, 1)), name="y")  # (B, 1) targets
    loss = ((neuron(x).tanh() - y) ** 2).mean()
    loss.backward(retain_graph=True)  # keep the graph, so the leaves can show their gradient norms
    render(draw_graph(loss, model=neuron), figures / "autograd_graph.svg")

    config = GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=16, fused=False)
    attention = CausalSelfAttention(config, rng)
    out = attention(Tensor(rng.standard_normal((2, 8, 16)), name="x"))  # (B, T, C)
    render(draw_graph(out, model=attention), figures / "attention_graph.svg")

    block = Block(config, rng)
    out = block(Tensor(rng.standard_normal((2, 8, 16)), name="x"))  # (B, T, C)
    render(draw_graph(out, model=block), figures / "block_graph.svg")

    # the whole GPT, each block folded into one box: the model at a glance
    model = GPT(config, rng=rng)
    idx = rng.integers(0, config.vocab_size, size=(2, config.block_size))  # (B, T)
    _, loss = model(idx, np.roll(idx, -1, axis=1))
    render(draw_graph(loss, model=model, max_depth=1), figures / "gpt_graph.svg")


def double_backward_graph(figures: Path) -> None:
    """double_backward_graph.svg: the graph that mg.grad(..., create_graph=True) records for the
    gradient of a neuron tanh(x · w) with respect to w."""
    import minigrad as mg
    from minigrad import Tensor
    from minigrad.viz import draw_graph, render

    x = Tensor([0.5, -1.0, 2.0], name="x")
    w = Tensor([0.3, 0.2, -0.4], requires_grad=True, name="w")
    (dy_dw,) = mg.grad((x @ w).tanh(), w, create_graph=True)  # (1 - tanh²(x · w)) x, as a graph
    render(draw_graph(dy_dw), figures / "double_backward_graph.svg")


def curvature(figures: Path) -> None:
    """curvature.png: the top Hessian eigenvalue of a small GPT's loss while it trains."""
    data = ["--data", str(SHARED_CORPUS)] if SHARED_CORPUS.exists() else []
    run_example("curvature.py", "--out", str(figures), *data)


def trained_gpt(figures: Path) -> None:
    """attention_maps.png and loss.png from a small GPT trained briefly on Tiny Shakespeare.

    The run is kept in runs/docs-gpt and reused by later `make docs` (delete it to retrain);
    the positional-encoding step reads its learned position table.
    """
    if (DOCS_RUN / "ckpt.safetensors").exists():
        run_example("attention_maps.py", "--run", str(DOCS_RUN), "--out", str(figures))
    else:
        data = ["--data", str(SHARED_CORPUS)] if SHARED_CORPUS.exists() else []
        run_example("attention_maps.py", "--train-dir", str(DOCS_RUN), "--out", str(figures), *data)
    shutil.copyfile(DOCS_RUN / "loss.png", figures / "loss.png")


def positional_encodings(figures: Path) -> None:
    """pe_sinusoidal.png, pe_learned.png (trained, when the docs run exists), pe_rope.png, pe_alibi.png."""
    checkpoint = DOCS_RUN / "ckpt.safetensors"
    extra = ["--checkpoint", str(checkpoint)] if checkpoint.exists() else []
    run_example("positional_encodings.py", "--out", str(figures), *extra)


def explorer(figures: Path) -> None:
    """Screenshots of the backward explorer, taken by headless Chromium: explorer_gpt.png (one
    training step of a two-block GPT, half-way through backward) and explorer_3op_0.png,
    explorer_3op_2.png, explorer_3op_3.png (sum(x·x + x) before backward, after two ops, after all three)."""
    import tempfile

    import numpy as np
    from headless_browser import open_file, start_chromium

    from minigrad import Tensor
    from minigrad.viz import explore
    from transformer.gpt import GPT, GPTConfig

    pages = Path(tempfile.mkdtemp(prefix="minigrad-explorer-"))
    config = GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=16)  # as `minigrad-gpt graph`
    rng = np.random.default_rng(0)
    model = GPT(config, rng=rng)
    idx = rng.integers(0, config.vocab_size, size=(2, config.block_size))  # (B, T)
    _, loss = model(idx, np.roll(idx, -1, axis=1))
    gpt = explore(loss, model=model)
    gpt.save(pages / "gpt.html")
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True, name="x")
    three_ops = explore((x * x + x).sum())  # the example of docs/autograd.md
    three_ops.save(pages / "three_ops.html")
    leaf = next(node["id"] for node in three_ops.data["nodes"] if node["op"] == "leaf")  # x

    browser = start_chromium(1400, 820)
    try:
        open_file(browser, pages / "gpt.html")
        order = gpt.data["backward_order"]
        browser.execute_script(f"for (let i = 0; i < {len(order) // 2}; i++) window.minigradExplorer.step()")
        browser.execute_script("window.minigradExplorer.select(arguments[0])", order[len(order) // 2 - 1])
        browser.save_screenshot(str(figures / "explorer_gpt.png"))
        browser.set_window_size(1100, 900)
        for steps in (0, 2, 3):
            open_file(browser, pages / "three_ops.html")
            browser.execute_script(f"for (let i = 0; i < {steps}; i++) window.minigradExplorer.step()")
            browser.execute_script("window.minigradExplorer.select(arguments[0])", leaf)
            browser.save_screenshot(str(figures / f"explorer_3op_{steps}.png"))
    finally:
        browser.quit()
    shutil.rmtree(pages)


def sampling(figures: Path) -> None:
    """sampling.png: temperature, top-k and top-p on one distribution."""
    run_example("sampling_distributions.py", "--out", str(figures))


def bpe_vocabulary(figures: Path) -> None:
    """bpe_compression.png: tokens per character of Tiny Shakespeare as the BPE vocabulary grows."""
    data = ["--data", str(SHARED_CORPUS)] if SHARED_CORPUS.exists() else []
    run_example("bpe_vocabulary.py", "--out", str(figures), *data)


def vision(figures: Path) -> None:
    """The pictures of docs/vision.md: ViT, Swin and co-attention, each from its full training run."""
    for name in ("vit_digits.py", "swin_digits.py", "coattention_digits.py"):
        run_example(name, "--out", str(figures))


def vit_vs_cnn(figures: Path) -> None:
    """docs/vision.md's "Do transformers need more data?": a ResNet and the ViT on growing slices of the digits."""
    run_example("vit_vs_cnn.py", "--out", str(figures))


def data_parallel(figures: Path) -> None:
    """docs/training.md's picture of one data-parallel step: shards, all-reduce, the same update."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    from transformer.distributed import shard_rows

    batch, ranks = 12, 3
    colours = ["#4c72b0", "#dd8452", "#55a868"]
    fig = Figure(figsize=(9, 5.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 18)
    ax.set_ylim(0, 11)
    ax.axis("off")

    def box(x, y, w, h, text, colour="#f2f2f2", edge="#444444", size=9):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.08", fc=colour, ec=edge, lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color="#444444", lw=1.2))

    ax.text(9, 10.5, f"the global batch: {batch} windows, drawn alike on every rank from one seed", ha="center")
    cell, left = 1.1, 9 - batch * 1.1 / 2
    for rank in range(ranks):
        rows = shard_rows(batch, rank, ranks)
        for row in range(rows.start, rows.stop):
            ax.add_patch(FancyBboxPatch((left + row * cell, 9.4), cell * 0.86, 0.6, boxstyle="square,pad=0",
                                        fc=colours[rank], ec="white"))  # fmt: skip
    for rank in range(ranks):
        rows = shard_rows(batch, rank, ranks)
        x = 0.6 + rank * 6
        arrow(left + (rows.start + rows.stop) / 2 * cell, 9.3, x + 2.4, 8.3)
        box(x, 5.9, 4.8, 2.3, f"rank {rank}: rows {rows.start}-{rows.stop - 1}\nits own copy of the model\n"
            f"forward, loss, backward\ngradient g{rank} of its shard's loss", colour=colours[rank] + "33")  # fmt: skip
        arrow(x + 2.4, 5.8, 9, 4.7)
    box(2.2, 3.4, 13.6, 1.2, "one all-reduce of one flat buffer:  g = sum over ranks of (rows of rank r / batch) g_r\n"
        "= the gradient of the whole batch's mean loss, on every rank", colour="#fff5cc")  # fmt: skip
    for rank in range(ranks):
        x = 0.6 + rank * 6
        arrow(9, 3.3, x + 2.4, 2.2)
        note = "\nwrites the run directory, prints" if rank == 0 else ""
        box(x, 0.5, 4.8, 1.6, f"clip the norm of g, AdamW step:\nthe same weights everywhere{note}",
            colour=colours[rank] + "33")  # fmt: skip
    fig.savefig(figures / "data_parallel.png")


STEPS = {
    "graphs": graphs,
    "graphs of a gradient (double backward)": double_backward_graph,
    "trained GPT (attention, loss)": trained_gpt,
    "positional encodings (pe)": positional_encodings,
    "explorer (screenshots in headless chromium)": explorer,
    "sampling": sampling,
    "curvature": curvature,
    "bpe vocabulary": bpe_vocabulary,
    "vision (vit, swin, coattention)": vision,
    "vit vs cnn (3 seeds × 5 data sizes × 2 models, the longest step)": vit_vs_cnn,
    "data parallel": data_parallel,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run only the steps whose name contains this text")
    parser.add_argument("--figures", type=Path, default=FIGURES, help="where to write (default: docs/figures)")
    args = parser.parse_args()
    args.figures.mkdir(parents=True, exist_ok=True)
    for name, step in STEPS.items():
        if args.only and args.only not in name:
            continue
        start = time.perf_counter()
        step(args.figures)
        print(f"[make docs] {name}: {time.perf_counter() - start:.1f} s")
    for path in sorted(args.figures.iterdir()):
        print(f"[make docs] {path}  {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
