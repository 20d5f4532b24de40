"""Draw every picture in docs/figures with the project's own code (`make docs`).

Nothing in docs/figures is drawn by hand: each file comes from one function below, which
either calls the engine directly (the computation graphs) or runs one of the examples, the
same scripts a reader runs. Run from anywhere:

    python tools/make_docs.py              # everything
    python tools/make_docs.py --only pe    # just the figures whose step name contains "pe"
    python tools/make_docs.py --figures /tmp/figures   # somewhere else (the tests do this)

Beside the figures, manifest.json records for each one a hash of the code that drew it: the
step's function below, the example script it runs and the project functions that render the
picture (`SOURCES`). tests/test_docs.py recomputes the hashes, so a figure older than its
drawing code fails the suite until `make docs` draws it again.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
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
    redraw_loss_plot(DOCS_RUN, figures / "loss.png")


def redraw_loss_plot(run: Path, path: Path) -> None:
    """loss.png drawn again by the trainer's own plot from the run's log.csv, so the picture follows
    today's plotting code even when the run was trained earlier."""
    import csv

    from transformer.runlog import plot_losses

    with open(run / "log.csv", newline="", encoding="utf-8") as log:
        history = [
            {key: float(value) if value else float("nan") for key, value in row.items()} for row in csv.DictReader(log)
        ]
    plot_losses(path, history)


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
    """docs/training.md's picture of one data-parallel step: shards, reduce-scatter, each rank's share
    of the update, all-gather."""
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
    box(2.2, 3.4, 13.6, 1.2, "one reduce-scatter of one flat buffer:  g = sum over ranks of (rows of r / batch) g_r,\n"
        "the whole batch's gradient; rank r receives the part of g it updates", colour="#fff5cc")  # fmt: skip
    for rank in range(ranks):
        x = 0.6 + rank * 6
        arrow(9, 3.3, x + 2.4, 2.2)
        note = "\nwrites the run directory, prints" if rank == 0 else ""
        box(x, 0.3, 4.8, 1.9, f"clip with the norm of all of g,\nAdamW step on its 1/{ranks} of the weights;\n"
            f"all-gather: every new weight\non every rank{note}", colour=colours[rank] + "33")  # fmt: skip
    fig.savefig(figures / "data_parallel.png")


def learning_rate_schedule(figures: Path) -> None:
    """lr_schedule.png: the trainer's learning rate at every step of the default recipe, with the
    warm-up enlarged."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from minigrad.optim import cosine_with_warmup
    from transformer.train_config import TrainConfig

    recipe = TrainConfig()
    steps = range(recipe.max_iters + 1)
    rates = [cosine_with_warmup(it, recipe.learning_rate, recipe.min_lr, recipe.warmup_iters, recipe.lr_decay_iters)
             for it in steps]  # fmt: skip
    fig = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    whole, start = fig.subplots(1, 2, width_ratios=(2, 1))
    whole.plot(steps, rates, color="tab:blue")
    whole.axhline(recipe.min_lr, color="grey", linestyle=":", label=f"--min-lr {recipe.min_lr:g}")
    whole.axvline(
        recipe.warmup_iters, color="tab:orange", linestyle="--", label=f"--warmup-iters {recipe.warmup_iters}"
    )
    whole.set(xlabel="step", ylabel="learning rate", title="linear warm-up, then cosine decay to --min-lr")
    whole.legend()
    early = steps[: 2 * recipe.warmup_iters]
    start.plot(early, rates[: len(early)], ".", markersize=3, color="tab:blue")
    start.axvline(recipe.warmup_iters, color="tab:orange", linestyle="--")
    start.set(xlabel="step", title=f"the first {len(early)} steps")
    middle = recipe.warmup_iters // 2
    label = f"lr·(step + 1)/{recipe.warmup_iters + 1}"
    start.annotate(
        label, (middle, rates[middle]), (1.1 * middle, 0.3 * recipe.learning_rate), arrowprops={"arrowstyle": "->"}
    )
    fig.savefig(figures / "lr_schedule.png")


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
    "learning-rate schedule (lr)": learning_rate_schedule,
}

# What each step draws, and what draws it besides the step's own function: example scripts
# (paths) and the project's functions or modules that render the picture (dotted names). The
# models a picture shows are its subject, not its drawing code: retraining a model for a
# picture takes minutes, so a change to a model does not mark its trained pictures stale.
OUTPUTS = {
    graphs: ("autograd_graph.svg", "attention_graph.svg", "block_graph.svg", "gpt_graph.svg"),
    double_backward_graph: ("double_backward_graph.svg",),
    trained_gpt: ("attention_maps.png", "loss.png"),
    positional_encodings: ("pe_sinusoidal.png", "pe_learned.png", "pe_rope.png", "pe_alibi.png"),
    explorer: ("explorer_gpt.png", "explorer_3op_0.png", "explorer_3op_2.png", "explorer_3op_3.png"),
    sampling: ("sampling.png",),
    curvature: ("curvature.png",),
    bpe_vocabulary: ("bpe_compression.png",),
    vision: (
        "vit_patches.png",
        "vit_attention.png",
        "vit_loss.png",
        "swin_windows.png",
        "swin_relative_bias.png",
        "swin_loss.png",
        "coattention.png",
        "coattention_loss.png",
    ),  # fmt: skip
    vit_vs_cnn: ("vit_vs_cnn.png", "vit_vs_cnn.csv"),
    data_parallel: ("data_parallel.png",),
    learning_rate_schedule: ("lr_schedule.png",),
}
SOURCES = {
    graphs: ("minigrad.viz",),
    double_backward_graph: ("minigrad.viz",),
    trained_gpt: ("examples/attention_maps.py", "tools.make_docs.redraw_loss_plot", "transformer.runlog.plot_losses"),
    positional_encodings: ("examples/positional_encodings.py",),
    explorer: ("minigrad.viz", "tools/headless_browser.py"),
    sampling: ("examples/sampling_distributions.py",),
    curvature: ("examples/curvature.py",),
    bpe_vocabulary: ("examples/bpe_vocabulary.py",),
    vision: ("examples/vit_digits.py", "examples/swin_digits.py", "examples/coattention_digits.py"),
    vit_vs_cnn: ("examples/vit_vs_cnn.py",),
    data_parallel: ("transformer.distributed.shard_rows",),
    learning_rate_schedule: ("minigrad.optim.cosine_with_warmup", "transformer.train_config.TrainConfig"),
}
MANIFEST = "manifest.json"


def source_text(source: str) -> str:
    """The text of a source named in SOURCES: a file of the repository, or a module, class or function."""
    if "/" in source:
        return (REPO / source).read_text(encoding="utf-8")
    if source.startswith("tools.make_docs."):
        return inspect.getsource(globals()[source.rpartition(".")[2]])
    parts = source.split(".")
    for split in range(len(parts), 0, -1):  # the longest prefix that is a module, then attributes
        try:
            thing = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            thing = getattr(thing, name)
        return inspect.getsource(thing)
    raise ValueError(f"{source} names no module of the project")


def drawing_hash(step) -> str:
    """sha256 of the step's function and of every source that draws its pictures."""
    digest = hashlib.sha256(inspect.getsource(step).encode("utf-8"))
    for source in SOURCES[step]:
        digest.update(source.encode("utf-8") + b"\0" + source_text(source).encode("utf-8"))
    return digest.hexdigest()


def expected_manifest() -> dict[str, dict[str, str]]:
    """{figure: {"step": its step's name, "drawn_by": the hash of its drawing code}} for today's code."""
    names = {step: name for name, step in STEPS.items()}
    return {
        figure: {"step": names[step], "drawn_by": drawing_hash(step)}
        for step in STEPS.values()
        for figure in OUTPUTS[step]
    }


def record_drawn(figures: Path, step) -> None:
    """Write the step's figures' hashes into the manifest beside them, keeping the other entries."""
    path = figures / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    expected = expected_manifest()
    manifest.update({figure: expected[figure] for figure in OUTPUTS[step]})
    path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n", encoding="utf-8")


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
        record_drawn(args.figures, step)
        print(f"[make docs] {name}: {time.perf_counter() - start:.1f} s")
    for path in sorted(args.figures.iterdir()):
        print(f"[make docs] {path}  {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
