"""minigrad.viz: the DOT text of computation graphs (nodes, names, clusters, folding) and real
renders with Graphviz's `dot` (skipped where it is not installed)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, nn
from minigrad.viz import GraphvizNotFoundError, draw_graph, render

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


class Attention(nn.Module):
    def __init__(self, width, rng):
        super().__init__()
        self.q = nn.Linear(width, width, rng=rng)
        self.proj = nn.Linear(width, width, rng=rng)

    def forward(self, x):
        return self.proj(self.q(x).relu())


class Block(nn.Module):
    def __init__(self, width, rng):
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.attn = Attention(width, rng)

    def forward(self, x):
        return x + self.attn(self.ln(x))


class Tiny(nn.Module):
    """GPT-shaped nesting: a ModuleDict holding a ModuleList of blocks, and a tied head."""

    def __init__(self, vocab=5, width=4, n_layer=2):
        super().__init__()
        rng = np.random.default_rng(0)
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab, width, rng=rng),
                h=nn.ModuleList([Block(width, rng) for _ in range(n_layer)]),
                ln_f=nn.LayerNorm(width),
            )
        )
        self.lm_head = nn.Linear(width, vocab, bias=False, rng=rng)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, ids, targets):
        x = self.transformer.wte(ids)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab)
        return mg.kernels.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


IDS = np.array([[0, 3, 1], [4, 4, 2]])
TARGETS = np.array([[3, 1, 0], [4, 2, 2]])


def node_lines(source: str) -> list[str]:
    return re.findall(r"^\s*([nm]\d+) \[label=(.*)\]$", source, flags=re.M)


def cluster_tree(source: str) -> dict[str, str | None]:
    """cluster label -> label of the cluster around it (None at the top), read off the DOT text."""
    parents: dict[str, str | None] = {}
    stack: list[str | None] = []
    for line in source.splitlines():
        if line.strip().startswith("subgraph cluster_"):
            stack.append(None)  # its label comes a line or two later
        elif stack and stack[-1] is None and (m := re.search(r'label="([^"]+) · ', line)):
            stack[-1] = m.group(1)
            parents[m.group(1)] = stack[-2] if len(stack) > 1 else None
        elif line.strip() == "}" and stack:
            stack.pop()
    return parents


def graph_census(root: Tensor) -> tuple[int, int]:
    """(ops, leaves) in the graph of `root`, counted independently of minigrad.viz."""
    ops, leaves, seen, stack = 0, 0, {id(root)}, [root]
    while stack:
        t = stack.pop()
        if t._ctx is None:
            leaves += 1
            continue
        ops += 1
        for parent in t._ctx.parents:
            if parent is not None and id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    return ops, leaves


@pytest.fixture
def model_and_loss():
    model = Tiny()
    return model, model(IDS, TARGETS)


# ---------------------------------------------------------------- nodes and edges


def test_one_node_per_op_and_per_leaf(model_and_loss):
    model, loss = model_and_loss
    ops, leaves = graph_census(loss)
    nodes = node_lines(draw_graph(loss, model=model).source)
    assert len(nodes) == ops + leaves
    # embedding; per block LayerNorm, Linear, ReLU, Linear, Add; LayerNorm, Linear, Reshape, CrossEntropy
    assert ops == 1 + 2 * 5 + 4
    assert leaves == 1 + 2 * 6 + 2  # the tied weight once, each block's 6, ln_f's 2


def test_op_nodes_show_name_shape_and_dtype(model_and_loss):
    model, loss = model_and_loss
    source = draw_graph(loss, model=model).source
    assert "<b>Embedding</b><br/>(2, 3, 4) float32" in source
    assert "<b>Linear</b><br/>(2, 3, 5) float32" in source  # lm_head's logits
    assert "<b>CrossEntropy</b><br/>() float32> " in source and "penwidth=2.5" in source  # the root


def test_parameter_names_and_tied_aliases(model_and_loss):
    model, loss = model_and_loss
    source = draw_graph(loss, model=model).source
    for name, _ in model.named_parameters():
        assert f"<b>{name}</b>" in source
    assert "<b>transformer.wte.weight</b><br/>= lm_head.weight<br/>(5, 4) float32" in source
    assert "lm_head.weight</b>" not in source  # one node for the one tensor


def test_edges_follow_the_data_once_each():
    x = Tensor(np.ones(3), requires_grad=True, name="x")
    y = (x * x).sum()
    source = draw_graph(y).source
    names = dict(node_lines(source))
    x_node = next(n for n, label in names.items() if "<b>x</b>" in label)
    assert 'fillcolor="#fff2c2"' in names[x_node]  # a named input, not a parameter
    mul_node = next(n for n, label in names.items() if "<b>Mul</b>" in label)
    sum_node = next(n for n, label in names.items() if "<b>Sum</b>" in label)
    edges = re.findall(r"^\s*([nm]\d+) -> ([nm]\d+)$", source, flags=re.M)
    assert sorted(edges) == sorted([(x_node, mul_node), (mul_node, sum_node)])  # x·x: one edge


def test_params_argument_names_plain_tensors_and_constants_are_marked():
    w = Tensor(np.ones((3, 2)), requires_grad=True)
    b = Tensor(np.zeros(2), requires_grad=True)
    mask = Tensor(np.array([1.0, 0.0]))
    y = ((Tensor(np.ones((4, 3))) @ w + b) * mask).sum()
    source = draw_graph(y, params={"w": w, "b": b}).source
    assert "<b>w</b><br/>(3, 2) float32" in source and "<b>b</b><br/>(2,) float32" in source
    assert source.count("<b>constant</b>") == 2 and "style=dashed" in source
    assert len(node_lines(source)) == sum(graph_census(y))


def test_grad_norms_appear_after_backward_with_retain_graph(model_and_loss):
    model, loss = model_and_loss
    assert "‖grad‖" not in draw_graph(loss, model=model).source
    loss.backward(retain_graph=True)
    source = draw_graph(loss, model=model).source
    expected = float(np.linalg.norm(model.lm_head.weight.grad))
    assert f"(5, 4) float32<br/>‖grad‖ {expected:.3g}" in source
    assert source.count("‖grad‖") == len(list(model.parameters()))


def test_a_released_graph_is_explained(model_and_loss):
    _, loss = model_and_loss
    loss.backward()
    with pytest.raises(ValueError, match=r"retain_graph=True"):
        draw_graph(loss)


def test_long_chains_draw_without_recursion():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    assert len(node_lines(draw_graph(y.sum()).source)) == 3000 + 2


# ---------------------------------------------------------------- clusters by module


def test_clusters_nest_as_modules_with_dotted_names(model_and_loss):
    model, loss = model_and_loss
    tree = cluster_tree(draw_graph(loss, model=model).source)
    assert tree == {
        "transformer.wte": None,
        "transformer.h.0": None,
        "transformer.h.0.ln": "transformer.h.0",
        "transformer.h.0.attn": "transformer.h.0",
        "transformer.h.0.attn.q": "transformer.h.0.attn",
        "transformer.h.0.attn.proj": "transformer.h.0.attn",
        "transformer.h.1": None,
        "transformer.h.1.ln": "transformer.h.1",
        "transformer.h.1.attn": "transformer.h.1",
        "transformer.h.1.attn.q": "transformer.h.1.attn",
        "transformer.h.1.attn.proj": "transformer.h.1.attn",
        "transformer.ln_f": None,
        "lm_head": None,
    }


def test_names_come_from_the_outermost_module_without_a_model(model_and_loss):
    model, loss = model_and_loss
    with_model, without = draw_graph(loss, model=model).source, draw_graph(loss).source
    assert cluster_tree(without) == cluster_tree(with_model)
    assert without == with_model


def test_ops_and_parameters_sit_in_their_modules_cluster(model_and_loss):
    model, loss = model_and_loss
    source = draw_graph(loss, model=model).source
    block = source[source.index("transformer.h.0.attn.q · Linear") :]
    block = block[: block.index("}")]
    assert "<b>transformer.h.0.attn.q.weight</b>" in block and "<b>Linear</b>" in block
    assert "<b>ReLU</b>" not in block  # relu runs in attn itself, outside q


def test_folding_modules_below_a_depth(model_and_loss):
    model, loss = model_and_loss
    source = draw_graph(loss, model=model, max_depth=1).source
    top = {"transformer.wte", "transformer.h.0", "transformer.h.1", "transformer.ln_f", "lm_head"}
    assert set(cluster_tree(source)) == top
    boxes = [label for node, label in node_lines(source) if node.startswith("m")]
    assert len(boxes) == 4  # ln and attn of each block
    attn = next(label for label in boxes if "<b>transformer.h.1.attn</b>" in label)
    assert "Attention<br/>3 ops<br/>4 parameters, 40 numbers<br/>→ (2, 3, 4) float32" in attn
    ops, leaves = graph_census(loss)
    assert len(node_lines(source)) == ops + leaves - 2 * (3 + 4 + 1 + 2) + 4  # folded ops and weights -> 4 boxes


def test_folding_everything_shows_the_model_at_a_glance(model_and_loss):
    model, loss = model_and_loss
    source = draw_graph(loss, model=model, max_depth=0).source
    assert cluster_tree(source) == {}
    labels = [label for _, label in node_lines(source)]
    assert len(labels) == 5 + 2  # wte, h.0, h.1, ln_f, lm_head; Reshape and CrossEntropy
    wte = next(label for label in labels if "<b>transformer.wte</b>" in label)
    assert "shares transformer.wte.weight" in wte  # the tied weight leaves its module for lm_head
    assert "‖grad‖" not in source
    with pytest.raises(ValueError, match="max_depth must be None or >= 0, got -1"):
        draw_graph(loss, max_depth=-1)


# ---------------------------------------------------------------- rendering


@needs_dot
def test_render_svg_and_png(tmp_path, model_and_loss):
    model, loss = model_and_loss
    svg = render(draw_graph(loss, model=model), tmp_path / "graph.svg")
    text = svg.read_text()
    assert "<svg" in text and "transformer.h.1.attn.proj · Linear" in text
    assert text.count('class="cluster"') == 13
    assert text.count('class="node"') == sum(graph_census(loss))
    png = render(draw_graph(loss, model=model, max_depth=0), tmp_path / "small.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_without_dot_says_how_to_install(tmp_path, monkeypatch, model_and_loss):
    model, loss = model_and_loss
    graph = draw_graph(loss, model=model)
    monkeypatch.setattr("minigrad.viz.shutil.which", lambda name: None)
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz.*brew install graphviz"):
        render(graph, tmp_path / "graph.svg")
    assert not (tmp_path / "graph.svg").exists()
    assert graph.source.startswith("digraph")  # the DOT text needs no program
    with pytest.raises(ValueError, match=r"give a \.svg, \.png or \.pdf path"):
        render(graph, tmp_path / "graph.txt")


@needs_dot
def test_gpt_graph_reads_by_layer(tmp_path):
    from transformer import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8), rng=np.random.default_rng(0))
    idx = np.random.default_rng(1).integers(0, 11, (2, 8))
    _, loss = model(idx, idx)
    graph = draw_graph(loss, model=model)
    tree = cluster_tree(graph.source)
    assert tree["transformer.h.1.attn.c_attn"] == "transformer.h.1.attn"
    assert tree["transformer.h.1.attn"] == "transformer.h.1"
    assert len(node_lines(graph.source)) == sum(graph_census(loss))
    assert "= lm_head.weight" in graph.source
    assert "<svg" in render(graph, tmp_path / "gpt.svg").read_text()
