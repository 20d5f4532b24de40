"""Pictures of computation graphs, grouped by the modules that made them (Graphviz).

    logits, loss = model(idx, targets)
    graph = draw_graph(loss, model=model)          # a graphviz.Digraph; graph.source is DOT text
    render(graph, "gpt.svg")                       # needs Graphviz's `dot` program

Each op is one node (its name, output shape and dtype), each leaf one node (the parameter's
name when a `model` or `params` tells it, its shape, and the norm of its gradient once
backward has run), and the edges follow the data from inputs to the loss. Every op made
inside a `Module` call lands in that module's cluster, labelled with its dotted name
(`transformer.h.0.attn`), nested as the modules nest; `max_depth=d` folds each module
deeper than d into one box, so a whole GPT fits on a screen.

`backward()` frees the graph as it goes (that is what lets training run in bounded memory),
so draw before calling it — or call `loss.backward(retain_graph=True)` first to see the
gradient norms on the leaves.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import graphviz
import numpy as np

from minigrad.nn import Module, Parameter
from minigrad.tensor import Tensor

INSTALL_HINT = (
    "Graphviz's `dot` program is needed to render graphs, but it is not on PATH. Install it "
    "(Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; conda: "
    "conda install graphviz), or use graph.source, the DOT text, which needs no program."
)

# Colours: ops blue, parameters green, other inputs yellow, constants white, folded modules violet.
STYLE = {
    "op": dict(shape="box", style="rounded,filled", fillcolor="#dbe9f6", color="#4a77a8"),
    "parameter": dict(shape="box", style="filled", fillcolor="#d9f0d3", color="#3f8f3f"),
    "input": dict(shape="box", style="filled", fillcolor="#fff2c2", color="#b08d1a"),
    "constant": dict(shape="box", style="dashed", color="#888888", fontcolor="#555555"),
    "module": dict(shape="box3d", style="filled", fillcolor="#e8dcf2", color="#6a4a8c"),
}


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's `dot` program is missing, so a graph cannot be rendered to SVG/PNG/PDF."""


@dataclass
class _Cluster:
    """One module's box in the picture: its nodes, and the clusters of the modules it called."""

    label: str
    nodes: list[tuple[str, dict]] = field(default_factory=list)
    children: dict[tuple, _Cluster] = field(default_factory=dict)


@dataclass
class _Folded:
    """A module drawn as one node: how many ops and weights it stands for, and what leaves it."""

    node: str
    name: str
    kind: str
    ops: int = 0
    params: list[Tensor] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def label(self) -> str:
        lines = [f"<b>{html.escape(self.name)}</b>", html.escape(self.kind), _count(self.ops, "op")]
        if self.params:
            numbers = sum(p.size for p in self.params)
            lines.append(f"{_count(len(self.params), 'parameter')}, {numbers:,} numbers")
        lines += [html.escape(line) for line in dict.fromkeys(self.outputs)]  # unique, in order
        return _html(*lines)


def draw_graph(
    tensor: Tensor,
    model: Module | None = None,
    params: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    max_depth: int | None = None,
    rankdir: str = "TB",
) -> graphviz.Digraph:
    """The graph that computed `tensor`, as a graphviz.Digraph.

    model: names the parameters (`named_parameters`, tied tensors under all their names) and
        the module clusters (its `named_modules`); without it, both are named from the
        outermost module that ran.
    params: more names, a mapping or (name, tensor) pairs; a tensor's own `.name` is used last.
    max_depth: show module clusters down to this depth of nesting (0: none) and fold each
        module one level deeper into a single box; None shows every level.
    rankdir: "TB" (top to bottom) or "LR" (left to right).
    """
    if max_depth is not None and max_depth < 0:
        raise ValueError(f"draw_graph: max_depth must be None or >= 0, got {max_depth}")
    ops, leaves, edges = _walk(tensor)
    drawing = _Drawing(tensor, model, params, max_depth)
    for t in ops:
        drawing.add_op(t)
    if model is None:
        drawing.name_parameters_from_outermost_modules()
    for t in leaves:
        drawing.add_leaf(t)
    dot = graphviz.Digraph(
        graph_attr=dict(rankdir=rankdir, fontname="Helvetica", fontsize="11", newrank="true"),
        node_attr=dict(fontname="Helvetica", fontsize="10", margin="0.1,0.04", height="0.3"),
        edge_attr=dict(color="#555555", arrowsize="0.6"),
    )
    drawing.add_edges(dot, edges)
    drawing.emit(dot)
    return dot


class _Drawing:
    """Places ops and leaves into module clusters (or folded boxes), then writes the DOT text.

    A module call is identified by its path: the ids of the modules on the call stack below
    the root (the model, or the outermost module that ran), outermost first — the
    `Function.scope` that `Module.__call__` records on every op.
    """

    def __init__(self, root: Tensor, model: Module | None, params, max_depth: int | None):
        self.root, self.model, self.max_depth = root, model, max_depth
        self.leaf_names = _leaf_names(model, params)  # id(tensor) -> names, tied aliases after the first
        self.leaf_frame: dict[int, Module] = {}  # id(parameter) -> the root module that names it
        self.module_names: dict[int, dict[int, str]] = {}  # id(root module) -> {id(module): dotted name}
        self.frames: dict[int, Module] = {}  # the root modules met
        self.module_paths: dict[int, tuple] = {}  # id(module) -> the first call path that reached it
        self.clusters = _Cluster(label="")
        self.folded: dict[tuple, _Folded] = {}  # path of a folded module -> its box
        self.node_of: dict[int, str] = {}  # id(tensor) -> DOT node id

    def named_scope(self, scope: tuple) -> tuple[tuple, list[str]]:
        """The module calls that get a cluster, and their dotted names. The root module names
        the others and gets no box: it is the frame of the picture."""
        if not scope:
            return (), []
        frame = self.model if self.model is not None else scope[0]
        if id(frame) not in self.module_names:
            self.frames[id(frame)] = frame
            self.module_names[id(frame)] = {id(m): name for name, m in frame.named_modules()}
        names = self.module_names[id(frame)]
        modules = tuple(m for m in scope if names.get(id(m)) != "")
        # A module missing from the tree (made on the fly in a forward) goes by its class name.
        return modules, [names.get(id(m), type(m).__name__) for m in modules]

    def cluster_at(self, path: tuple, modules: tuple, names: list[str]) -> _Cluster:
        cluster = self.clusters
        for depth in range(1, len(path) + 1):
            label = f"{names[depth - 1]} · {type(modules[depth - 1]).__name__}"
            cluster = cluster.children.setdefault(path[:depth], _Cluster(label=label))
        return cluster

    def is_folded(self, path: tuple) -> bool:
        return self.max_depth is not None and len(path) > self.max_depth

    def add_op(self, t: Tensor) -> None:
        modules, names = self.named_scope(t._ctx.scope)
        path = tuple(id(m) for m in modules)
        for depth in range(1, len(path) + 1):
            self.module_paths.setdefault(path[depth - 1], path[:depth])
        if self.is_folded(path):
            d = self.max_depth
            if path[: d + 1] not in self.folded:
                box = _Folded(node=f"m{len(self.folded)}", name=names[d], kind=type(modules[d]).__name__)
                self.folded[path[: d + 1]] = box
                self.cluster_at(path[:d], modules, names).nodes.append((box.node, {}))  # labelled in emit
            box = self.folded[path[: d + 1]]
            box.ops += 1
            self.node_of[id(t)] = box.node
            return
        self.node_of[id(t)] = node = f"n{len(self.node_of)}"
        label = _html(f"<b>{html.escape(t._ctx.name)}</b>", f"{_shape(t.shape)} {t.dtype}")
        attrs = dict(STYLE["op"], label=label)
        if t is self.root:
            attrs["penwidth"] = "2.5"
        self.cluster_at(path, modules, names).nodes.append((node, attrs))

    def name_parameters_from_outermost_modules(self) -> None:
        for frame in self.frames.values():
            for key, names in _leaf_names(frame, None).items():
                self.leaf_names.setdefault(key, names)
                self.leaf_frame.setdefault(key, frame)

    def add_leaf(self, t: Tensor) -> None:
        """A parameter sits in the cluster of the module that owns it (or in its folded box)."""
        known = self.leaf_names.get(id(t))
        names = known or ([t.name] if t.name else [])
        kind = "parameter" if known or isinstance(t, Parameter) else "input" if t.requires_grad else "constant"
        frame = self.model if self.model is not None else self.leaf_frame.get(id(t))
        path = _owner_path(known[0], frame, self.module_paths) if known and frame is not None else ()
        if self.is_folded(path):
            box = self.folded[path[: self.max_depth + 1]]
            box.params.append(t)
            self.node_of[id(t)] = box.node
            return
        self.node_of[id(t)] = node = f"n{len(self.node_of)}"
        lines = [f"<b>{html.escape(names[0] if names else kind)}</b>"]
        lines += [f"= {html.escape(other)}" for other in names[1:]]  # tied: the same tensor
        lines.append(f"{_shape(t.shape)} {t.dtype}")
        if t.grad is not None:
            lines.append(f"‖grad‖ {float(np.linalg.norm(t.grad.astype(np.float64))):.3g}")
        cluster = self.clusters
        for depth in range(1, len(path) + 1):
            cluster = cluster.children.get(path[:depth], cluster)
        cluster.nodes.append((node, dict(STYLE[kind], label=_html(*lines))))

    def add_edges(self, dot: graphviz.Digraph, edges: list[tuple[Tensor, Tensor]]) -> None:
        """One edge per pair of nodes; none inside a folded box."""
        boxes = {box.node: box for box in self.folded.values()}
        seen = set()
        for source, target in edges:
            a, b = self.node_of[id(source)], self.node_of[id(target)]
            if a == b or (a, b) in seen:
                continue
            seen.add((a, b))
            dot.edge(a, b)
            if a in boxes:  # what leaves a folded module: an output, or a weight it shares (tying)
                shared = source._ctx is None and self.leaf_names.get(id(source))
                boxes[a].outputs.append(f"shares {shared[0]}" if shared else f"→ {_shape(source.shape)} {source.dtype}")
        if self.node_of[id(self.root)] in boxes:
            boxes[self.node_of[id(self.root)]].outputs.append(f"→ {_shape(self.root.shape)} {self.root.dtype}")

    def emit(self, dot: graphviz.Digraph) -> None:
        labels = {box.node: dict(STYLE["module"], label=box.label()) for box in self.folded.values()}
        _emit(dot, self.clusters, labels, counter=[0])


def render(graph: graphviz.Digraph, path: str | Path, format: str | None = None) -> Path:
    """Write `graph` to `path` as SVG, PNG or PDF (from the suffix, or `format`) with `dot`.

    Checks for the `dot` program first and raises GraphvizNotFoundError with the install
    hint, rather than failing half-way. Returns the path written.
    """
    path = Path(path)
    format = format or path.suffix.lstrip(".").lower()
    if format not in ("svg", "png", "pdf"):
        raise ValueError(f"render: cannot tell the format of {str(path)!r}; give a .svg, .png or .pdf path")
    if shutil.which("dot") is None:
        raise GraphvizNotFoundError(INSTALL_HINT)
    path.write_bytes(graph.pipe(format=format))
    return path


# ---------------------------------------------------------------- walking the graph


def _walk(root: Tensor) -> tuple[list[Tensor], list[Tensor], list[tuple[Tensor, Tensor]]]:
    """Ops (tensors made by an op), leaves, and (input, output) edges, each op once.

    Iterative, like backward, so graphs of any depth can be drawn. Ops come inputs first.
    """
    if root._ctx is not None and root._ctx.released:
        raise ValueError(
            "draw_graph: backward() already freed this graph; draw it before backward(), or call "
            "backward(retain_graph=True) to keep it (and see gradient norms on the leaves)"
        )
    ops, leaves, edges, visited = [], [], [], {id(root)}
    stack = [(root, False)]
    while stack:
        t, inputs_done = stack.pop()
        if t._ctx is None:
            leaves.append(t)
            continue
        if inputs_done:
            ops.append(t)
            continue
        stack.append((t, True))
        for parent in t._ctx.parents:
            if parent is None:
                continue
            edges.append((parent, t))
            if id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, False))
    return ops, leaves, edges


def _leaf_names(model: Module | None, params) -> dict[int, list[str]]:
    """id(tensor) -> its names, the first as named_parameters gives it, then tied aliases."""
    names: dict[int, list[str]] = {}
    pairs = [] if model is None else list(model.named_parameters(remove_duplicate=False))
    if params is not None:
        pairs += list(params.items() if isinstance(params, Mapping) else params)
    for name, t in pairs:
        if name not in names.setdefault(id(t), []):
            names[id(t)].append(name)
    return names


def _owner_path(name: str, model: Module, module_paths: dict[int, tuple]) -> tuple:
    """The cluster path of the module that owns parameter `name` (empty if it never ran)."""
    owner = name.rpartition(".")[0]
    try:
        module = model.get_submodule(owner)
    except AttributeError:
        return ()
    return module_paths.get(id(module), ())


# ---------------------------------------------------------------- DOT output


def _emit(dot: graphviz.Digraph, cluster: _Cluster, folded_labels: dict[str, dict], counter: list[int]) -> None:
    for node, attrs in cluster.nodes:
        dot.node(node, **(folded_labels.get(node) or attrs))
    for child in cluster.children.values():
        counter[0] += 1
        sub = graphviz.Digraph(name=f"cluster_{counter[0]}")
        sub.attr(label=child.label, style="rounded,dashed", color="#8c8c8c", fontcolor="#333333", labeljust="l")
        _emit(sub, child, folded_labels, counter)
        dot.subgraph(sub)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _html(*lines: str) -> str:
    return "<" + "<br/>".join(lines) + ">"


def _shape(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


__all__ = ["GraphvizNotFoundError", "draw_graph", "render"]
