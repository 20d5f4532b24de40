"""Pictures of computation graphs, grouped by the modules that made them (Graphviz).

    logits, loss = model(idx, targets)
    graph = draw_graph(loss, model=model)          # a graphviz.Digraph; graph.source is DOT text
    render(graph, "gpt.svg")                       # needs Graphviz's `dot` program

Each op is one node (its name, output shape and dtype, and on hover the lines of code that
made it: the caller's own line and the model's), each leaf one node (the parameter's
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
import json
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import graphviz
import numpy as np

from minigrad import modes, source_lines
from minigrad.nn import Module, Parameter
from minigrad.tensor import Tensor

INSTALL_GRAPHVIZ = (
    "Install it (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; conda: "
    "conda install graphviz)"
)
INSTALL_HINT = (
    f"Graphviz's `dot` program is needed to render graphs, but it is not on PATH. {INSTALL_GRAPHVIZ}, "
    "or use graph.source, the DOT text, which needs no program."
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
    return _draw(tensor, model, params, max_depth, rankdir)[0]


def _draw(tensor: Tensor, model, params, max_depth, rankdir) -> tuple[graphviz.Digraph, _Drawing, list, list]:
    """The Digraph, the placement that made it (which DOT node each tensor is), ops and leaves."""
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
    return dot, drawing, ops, leaves


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
        made_by = _made_by(t)
        if made_by:  # shown on hover: the caller's line, and the model's
            attrs["tooltip"] = "\\n".join(graphviz.escape(line) for line in made_by)
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


# ---------------------------------------------------------------- the backward explorer

# What the page keeps of an array: a grid of at most this many rows and columns of its values
# (every k-th, so the numbers shown are real ones), and a histogram of all of them.
SAMPLE_ROWS, SAMPLE_COLUMNS, HISTOGRAM_BINS = 8, 16, 16
PAGE = Path(__file__).with_name("explorer.html")


class Explorer:
    """A recorded backward pass, as one self-contained HTML page (see `explore`).

    `data` is what the page embeds: {"nodes": [...], "backward_order": [...], "steps": [...]}.
    """

    def __init__(self, data: dict, svg: str, title: str = "minigrad backward explorer"):
        self.data, self.svg, self.title = data, svg, title

    def html(self) -> str:
        """The page: the drawing, its data and the script that steps through backward, all inline."""
        # no "<" at all inside the script element: nothing in a name can end it or open a comment
        graph = json.dumps(self.data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
        parts = {"title": html.escape(self.title), "svg": self.svg, "graph": graph}
        return re.sub(r"\{\{(title|svg|graph)\}\}", lambda m: parts[m[1]], PAGE.read_text(encoding="utf-8"))  # one pass

    def save(self, path: str | Path) -> Path:
        """Write the page to `path` (one file: it opens offline in any browser). Returns the path."""
        path = Path(path)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        """Shown inline in a notebook, in a frame of its own so that several explorers coexist."""
        frame = "width:100%;height:720px;border:1px solid #ccc"
        return f'<iframe srcdoc="{html.escape(self.html())}" style="{frame}"></iframe>'


def explore(tensor: Tensor, model: Module | None = None) -> Explorer:
    """Run backward from the scalar `tensor`, recording each op's vector-Jacobian product.

    Call it in place of `loss.backward()`: the leaves get their `.grad` as backward gives it,
    and the returned Explorer holds the graph (drawn by Graphviz with draw_graph's module
    clusters), statistics and small samples of every value and gradient, and, for each step of
    the backward walk, the gradient the op received and each gradient it sent to an input.
    `model` names the parameters and the clusters, as in draw_graph.
    """
    if not tensor.requires_grad or tensor._ctx is None:
        raise ValueError(
            "explore: the tensor was not computed from anything that requires a gradient; nothing to explore"
        )
    if tensor._ctx.released:
        raise ValueError("explore: backward() already freed this graph; call explore(loss) instead of loss.backward()")
    if tensor.size != 1:
        raise ValueError(
            f"explore: runs backward from a scalar (a loss), got shape {_shape(tensor.shape)}; reduce it first"
        )
    if shutil.which("dot") is None:
        raise GraphvizNotFoundError(
            f"Graphviz's `dot` program lays out the explorer's graph, but it is not on PATH. {INSTALL_GRAPHVIZ}."
        )
    dot, drawing, ops, leaves = _draw(tensor, model, None, None, "TB")
    svg = _tag_nodes(dot.pipe(format="svg").decode("utf-8"))
    node_of = drawing.node_of
    nodes = {}
    for t in ops:
        _, names = drawing.named_scope(t._ctx.scope)
        parents = [p for p in t._ctx.parents if p is not None]
        nodes[node_of[id(t)]] = dict(
            op=t._ctx.name,
            inputs=[node_of[id(p)] for p in parents],
            module=names[-1] if names else "",
            source=_made_by(t),
        )
    for t in leaves:
        known = drawing.leaf_names.get(id(t))
        name = known[0] if known else t.name
        owner = name.rpartition(".")[0] if known else ""
        nodes[node_of[id(t)]] = dict(op="leaf", name=name, inputs=[], module=owner)
    for t in [*ops, *leaves]:
        nodes[node_of[id(t)]].update(
            id=node_of[id(t)], shape=list(t.shape), dtype=str(t.dtype), value=_summary(t.data), grad=None
        )
    recorder = _BackwardRecorder(node_of, ops, leaves)
    with modes.tracing(recorder):
        tensor.backward()
    for step in recorder.steps:
        nodes[step["op"]]["grad"] = step["grad"]
    for t in leaves:
        if t.grad is not None:
            nodes[node_of[id(t)]]["grad"] = _summary(t.grad)
    data = dict(
        nodes=list(nodes.values()), backward_order=[step["op"] for step in recorder.steps], steps=recorder.steps
    )
    return Explorer(data, svg)


class _BackwardRecorder(modes.Tracer):
    """Listens to the engine's backward (a tracer) and keeps, per op it runs, the
    gradient received and the gradients sent, with each input's running sum of what it got."""

    def __init__(self, node_of: dict[int, str], ops: list[Tensor], leaves: list[Tensor]):
        self.node_of = node_of
        self.output_of = {id(t._ctx): t for t in ops}  # id(Function) -> the tensor it made
        self.steps: list[dict] = []
        # what each tensor has received so far, summed as the engine sums it; a leaf that
        # already held a gradient starts from it, as backward() adds to it
        self.received = {id(t): t.grad for t in leaves if t.grad is not None}
        self.count: dict[int, int] = {}
        self.leaves = {id(t) for t in leaves}

    def backward(self, run, fn, grad: np.ndarray):
        input_grads = run()
        grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
        sent = []
        for position, (parent, needs, parent_grad) in enumerate(zip(fn.parents, fn.needs_input_grad, grads)):
            if not needs or parent_grad is None:
                continue
            contribution = np.asarray(parent_grad).astype(parent.data.dtype, copy=False)
            key = id(parent)
            self.received[key] = self.received[key] + contribution if key in self.received else contribution
            self.count[key] = self.count.get(key, 0) + 1
            total = self.received[key]
            sent.append(
                {
                    "to": self.node_of[key],
                    "input": position,
                    "grad": _stats(contribution),
                    "total": _summary(total) if key in self.leaves else _stats(total),
                    "count": self.count[key],
                }
            )
        output = self.output_of[id(fn)]
        self.received.pop(id(output), None)  # all of it has arrived: this is `grad`
        self.steps.append({"op": self.node_of[id(output)], "grad": _summary(grad), "sent": sent})
        return input_grads


def _tag_nodes(svg: str) -> str:
    """Graphviz's SVG without its XML prologue, each node's group given a `data-node-id` (its DOT
    name, the page's node id)."""
    svg = svg[svg.index("<svg") :]
    return re.sub(
        r'<g id="(node\d+)" class="node">\s*<title>([^<]+)</title>',
        lambda m: f'<g id="{m[1]}" class="node" data-node-id="{m[2]}">\n<title>{m[2]}</title>',
        svg,
    )


def _stats(array: np.ndarray) -> dict:
    """mean, std, min, max of the finite values (a masked score is -inf), and how many were not."""
    a = np.asarray(array, dtype=np.float64)
    finite = a[np.isfinite(a)] if not np.isfinite(a).all() else a
    if finite.size == 0:
        stats = dict(mean=None, std=None, min=None, max=None)
    else:
        stats = dict(
            mean=float(finite.mean()), std=float(finite.std()), min=float(finite.min()), max=float(finite.max())
        )
    if finite.size < a.size:
        stats["nonfinite"] = int(a.size - finite.size)
    return stats


def _summary(array: np.ndarray) -> dict:
    """Statistics, a grid of every k-th value (at most SAMPLE_ROWS × SAMPLE_COLUMNS) and a histogram."""
    a = np.asarray(array, dtype=np.float64)
    grid = a.reshape(-1, a.shape[-1]) if a.ndim > 1 and a.size else a.reshape(1, -1)  # (rows, columns)
    rows = np.unique(np.linspace(0, grid.shape[0] - 1, min(SAMPLE_ROWS, grid.shape[0])).round().astype(int))
    columns = np.unique(np.linspace(0, grid.shape[1] - 1, min(SAMPLE_COLUMNS, grid.shape[1])).round().astype(int))
    sample = grid[np.ix_(rows, columns)] if grid.size else grid
    finite = a[np.isfinite(a)]
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS) if finite.size else (np.zeros(0), np.zeros(2))
    return dict(
        _stats(a),
        sample=dict(
            rows=len(rows), columns=len(columns), of=list(grid.shape), values=[_round(v) for v in sample.ravel()]
        ),
        histogram=dict(low=float(edges[0]), high=float(edges[-1]), counts=[int(c) for c in counts]),
    )


def _round(value: float) -> float | None:
    return float(f"{value:.3g}") if np.isfinite(value) else None


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


def _made_by(t: Tensor) -> list[str]:
    """The lines that asked for the op that made `t` (`file:line  text`): the caller's own, then the model's."""
    return source_lines.describe(getattr(t._ctx, "origin", None))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _html(*lines: str) -> str:
    return "<" + "<br/>".join(lines) + ">"


def _shape(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


__all__ = ["Explorer", "GraphvizNotFoundError", "draw_graph", "explore", "render"]
