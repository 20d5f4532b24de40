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
    """One module call's box in the picture: its nodes, and the clusters of the modules it called."""

    label: str
    nodes: list[tuple[str, dict]] = field(default_factory=list)
    children: dict[tuple, _Cluster] = field(default_factory=dict)


def draw_graph(
    tensor: Tensor,
    model: Module | None = None,
    params: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    max_depth: int | None = None,
    rankdir: str = "TB",
) -> graphviz.Digraph:
    """The graph that computed `tensor`, as a graphviz.Digraph.

    model: names the parameters (`named_parameters`, tied tensors under all their names) and
        the module clusters (its `named_modules`); without it, clusters are named from the
        outermost module that ran.
    params: more names, a mapping or (name, tensor) pairs; a tensor's own `.name` is used last.
    max_depth: show module clusters down to this depth of nesting (0: none) and fold each
        module one level deeper into a single box; None shows every level.
    rankdir: "TB" (top to bottom) or "LR" (left to right).
    """
    ops, leaves, edges = _walk(tensor)
    leaf_names = _leaf_names(model, params)
    names_by_root: dict[int, dict[int, str]] = {}  # id(root module) -> {id(module): dotted name}
    frames: dict[int, Module] = {}  # the root modules met
    leaf_frame: dict[int, Module] = {}  # id(parameter) -> the root module that names it
    if model is not None:
        names_by_root[id(model)] = {id(m): name for name, m in model.named_modules()}

    root = _Cluster(label="")
    node_of: dict[int, str] = {}  # id(tensor) -> DOT node id
    module_paths: dict[int, tuple] = {}  # id(module) -> the path of module calls that reached it
    folded: dict[tuple, dict] = {}  # path of a folded module -> what its box sums up

    def named_scope(scope: tuple) -> tuple[tuple, list[str]]:
        """The module calls that get a cluster, and their dotted names. The root module (the
        model, or else the outermost module that ran) names the others and gets no box."""
        if not scope:
            return (), []
        frame = model if model is not None else scope[0]
        frames[id(frame)] = frame
        if id(frame) not in names_by_root:
            names_by_root[id(frame)] = {id(m): name for name, m in frame.named_modules()}
        names = names_by_root[id(frame)]
        modules = tuple(m for m in scope if names.get(id(m)) != "")
        # A module missing from the tree (made on the fly in a forward) goes by its class name.
        return modules, [names.get(id(m), type(m).__name__) for m in modules]

    def cluster_at(path: tuple, modules: tuple, names: list[str]) -> _Cluster:
        cluster = root
        for depth in range(1, len(path) + 1):
            label = f"{names[depth - 1]} · {type(modules[depth - 1]).__name__}"
            cluster = cluster.children.setdefault(path[:depth], _Cluster(label=label))
        return cluster

    for t in ops:
        modules, names = named_scope(t._ctx.scope)
        path = tuple(id(m) for m in modules)
        for depth in range(1, len(path) + 1):
            module_paths.setdefault(path[depth - 1], path[:depth])
        if max_depth is not None and len(path) > max_depth:
            box = path[: max_depth + 1]
            if box not in folded:
                module = modules[max_depth]
                folded[box] = dict(
                    node=f"m{len(folded)}",
                    name=names[max_depth],
                    kind=type(module).__name__,
                    cluster=cluster_at(path[:max_depth], modules, names),
                    ops=0,
                    params=[],
                    outputs=[],
                )
            folded[box]["ops"] += 1
            node_of[id(t)] = folded[box]["node"]
            continue
        node_of[id(t)] = node = f"n{len(node_of)}"
        label = _html(f"<b>{html.escape(t._ctx.name)}</b>", f"{_shape(t.shape)} {t.dtype}")
        attrs = dict(STYLE["op"], label=label)
        if t is tensor:
            attrs["penwidth"] = "2.5"
        cluster_at(path, modules, names).nodes.append((node, attrs))

    if model is None:  # name parameters from the outermost modules that ran
        for frame in frames.values():
            for key, names in _leaf_names(frame, None).items():
                leaf_names.setdefault(key, names)
                leaf_frame.setdefault(key, frame)
    for t in leaves:
        known = leaf_names.get(id(t))
        names = known or ([t.name] if t.name else [])
        kind = "parameter" if known or isinstance(t, Parameter) else "input" if t.requires_grad else "constant"
        frame = model if model is not None else leaf_frame.get(id(t))
        place = _owner_path(known[0], frame, module_paths) if known and frame is not None else ()
        if max_depth is not None and len(place) > max_depth:
            box = folded[place[: max_depth + 1]]
            box["params"].append(t)
            node_of[id(t)] = box["node"]
            continue
        node_of[id(t)] = node = f"n{len(node_of)}"
        lines = [f"<b>{html.escape(names[0] if names else kind)}</b>"]
        lines += [f"= {html.escape(other)}" for other in names[1:]]  # tied: the same tensor
        lines.append(f"{_shape(t.shape)} {t.dtype}")
        if t.grad is not None:
            lines.append(f"‖grad‖ {float(np.linalg.norm(t.grad.astype(np.float64))):.3g}")
        cluster = root
        for depth in range(1, len(place) + 1):
            cluster = cluster.children.get(place[:depth], cluster)
        cluster.nodes.append((node, dict(STYLE[kind], label=_html(*lines))))

    dot = graphviz.Digraph(
        graph_attr=dict(rankdir=rankdir, fontname="Helvetica", fontsize="11", newrank="true"),
        node_attr=dict(fontname="Helvetica", fontsize="10", margin="0.1,0.04", height="0.3"),
        edge_attr=dict(color="#555555", arrowsize="0.6"),
    )
    boxes = {box["node"]: box for box in folded.values()}
    seen = set()
    for source, target in edges:
        a, b = node_of[id(source)], node_of[id(target)]
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        dot.edge(a, b)
        if a in boxes:  # what leaves a folded module: an output, or a weight it shares (tying)
            shared = source._ctx is None and leaf_names.get(id(source))
            boxes[a]["outputs"].append(f"shares {shared[0]}" if shared else f"→ {_shape(source.shape)} {source.dtype}")
    if node_of[id(tensor)] in boxes:
        boxes[node_of[id(tensor)]]["outputs"].append(f"→ {_shape(tensor.shape)} {tensor.dtype}")
    for box in folded.values():
        box["cluster"].nodes.append((box["node"], dict(STYLE["module"], label=_folded_label(box))))
    _emit(dot, root, counter=[0])
    return dot


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
    pairs = [] if model is None else list(model.named_parameters()) + list(model._all_parameters())
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


def _emit(dot: graphviz.Digraph, cluster: _Cluster, counter: list[int]) -> None:
    for node, attrs in cluster.nodes:
        dot.node(node, **attrs)
    for child in cluster.children.values():
        counter[0] += 1
        sub = graphviz.Digraph(name=f"cluster_{counter[0]}")
        sub.attr(label=child.label, style="rounded,dashed", color="#8c8c8c", fontcolor="#333333", labeljust="l")
        _emit(sub, child, counter)
        dot.subgraph(sub)


def _folded_label(box: dict) -> str:
    lines = [f"<b>{html.escape(box['name'])}</b>", html.escape(box["kind"]), _count(box["ops"], "op")]
    if box["params"]:
        numbers = sum(p.size for p in box["params"])
        lines.append(f"{_count(len(box['params']), 'parameter')}, {numbers:,} numbers")
    lines += [html.escape(line) for line in dict.fromkeys(box["outputs"])]  # unique, in order
    return _html(*lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _html(*lines: str) -> str:
    return "<" + "<br/>".join(lines) + ">"


def _shape(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


__all__ = ["GraphvizNotFoundError", "draw_graph", "render"]
