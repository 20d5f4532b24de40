"""Autograd on single numbers, the way micrograd teaches it, with minigrad's 0-d tensors.

A 0-d tensor is one number that remembers how it was made. Each step below builds a small
expression, derives its gradient by hand with the chain rule, and checks that `backward()`
finds the same numbers. Run it and read the output beside the code:

    python examples/scalar_walkthrough.py
    python examples/scalar_walkthrough.py --out graphs   # also draws the neuron's graph, as micrograd's draw_dot
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import Tensor


def scalar(value: float) -> Tensor:
    """A 0-d float64 tensor that wants its gradient (float64 so hand and machine agree exactly)."""
    return Tensor(value, dtype=np.float64, requires_grad=True)


def step_1_chain_rule() -> None:
    """L = (a·b + c)²: the chain rule multiplies local derivatives along the path back to a leaf."""
    a, b, c = scalar(2.0), scalar(-3.0), scalar(10.0)
    e = a * b  # e = -6
    d = e + c  # d = 4
    loss = d**2  # L = 16
    loss.backward()
    # dL/dd = 2d = 8;  dd/de = 1, dd/dc = 1;  de/da = b, de/db = a
    by_hand = {"a": 2 * d.item() * b.item(), "b": 2 * d.item() * a.item(), "c": 2 * d.item()}
    print(f"1. L = (a*b + c)^2 = {loss.item():g}")
    for name, leaf in zip("abc", (a, b, c)):
        print(f"   dL/d{name}: backward {leaf.grad.item():+g}, by hand {by_hand[name]:+g}")
        assert leaf.grad.item() == by_hand[name]


def step_2_neuron() -> Tensor:
    """One neuron, o = tanh(w1·x1 + w2·x2 + b), as in micrograd's lecture; returns o for drawing."""
    x1, x2 = scalar(2.0), scalar(0.0)
    w1, w2 = scalar(-3.0), scalar(1.0)
    b = scalar(6.8813735870195432)  # chosen so that n = 0.8814 and o = tanh(n) = 0.7071
    for leaf, name in ((x1, "x1"), (x2, "x2"), (w1, "w1"), (w2, "w2"), (b, "b")):
        leaf.name = name  # the names the graph drawing shows
    n = x1 * w1 + x2 * w2 + b
    o = n.tanh()
    o.backward(retain_graph=True)  # keep the graph for the drawing; the gradients are the same
    # do/dn = 1 - tanh²(n) = 1 - o² = 0.5; then each weight gets 0.5 · its input, each input 0.5 · its weight
    local = 1 - o.item() ** 2
    print(f"2. neuron: n = {n.item():.4f}, o = tanh(n) = {o.item():.4f}, do/dn = 1 - o^2 = {local:.4f}")
    for name, leaf, partner in (("w1", w1, x1), ("w2", w2, x2), ("x1", x1, w1), ("x2", x2, w2)):
        print(f"   do/d{name} = {leaf.grad.item():+.4f} (= do/dn * {partner.item():g})")
        assert math.isclose(leaf.grad.item(), local * partner.item(), abs_tol=1e-12)
    return o


def step_3_accumulation() -> None:
    """A value used twice gets the sum of both paths' gradients: d(a + a)/da = 2, d(a·a)/da = 2a."""
    a = scalar(3.0)
    (a + a).backward()
    print(f"3. d(a + a)/da = {a.grad.item():g}  (two paths, each contributing 1)")
    assert a.grad.item() == 2.0
    a.grad = None  # gradients accumulate across backward calls; start afresh
    (a * a).backward()
    print(f"   d(a * a)/da = {a.grad.item():g}  (= 2a: the product rule is the sum over both uses)")
    assert a.grad.item() == 6.0


def step_4_micrograd_expression() -> None:
    """micrograd's README expression: ten ops, reused values, relu, powers and division."""
    a, b = scalar(-4.0), scalar(2.0)
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    print(f"4. micrograd's expression: g = {g.item():.4f}, dg/da = {a.grad.item():.4f}, dg/db = {b.grad.item():.4f}")
    # the values micrograd (and PyTorch) print for the same expression
    assert math.isclose(g.item(), 24.7041, abs_tol=1e-4)
    assert math.isclose(a.grad.item(), 138.8338, abs_tol=1e-4)
    assert math.isclose(b.grad.item(), 645.5773, abs_tol=1e-4)


def step_5_numerical_check() -> None:
    """Central differences, (f(x+h) - f(x-h)) / 2h, agree with backward: the idea behind mg.gradcheck."""
    x = scalar(0.7)
    (x.sigmoid() * x.exp()).backward()

    def f(value: float) -> float:
        return (1 / (1 + math.exp(-value))) * math.exp(value)

    h = 1e-6
    numeric = (f(0.7 + h) - f(0.7 - h)) / (2 * h)
    print(f"5. d/dx sigmoid(x)*exp(x) at 0.7: backward {x.grad.item():.8f}, central difference {numeric:.8f}")
    assert math.isclose(x.grad.item(), numeric, rel_tol=1e-7)
    print(f"   mg.gradcheck agrees: {mg.gradcheck(lambda t: t.sigmoid() * t.exp(), scalar(0.7))}")


def draw(output: Tensor, folder: Path) -> None:
    """The neuron's graph with every leaf's gradient, as SVG (Graphviz's `dot`) or DOT text without it."""
    import shutil

    from minigrad.viz import draw_graph, render

    folder.mkdir(parents=True, exist_ok=True)
    graph = draw_graph(output, rankdir="LR")
    if shutil.which("dot") is None:
        path = folder / "neuron.dot"
        path.write_text(graph.source, encoding="utf-8")
    else:
        path = render(graph, folder / "neuron.svg")
    print(f"   drew the neuron's graph: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description="micrograd's lessons on 0-d tensors, checked by hand.")
    parser.add_argument("--out", type=Path, help="folder for a drawing of the neuron's graph (step 2)")
    args = parser.parse_args()
    step_1_chain_rule()
    neuron = step_2_neuron()
    if args.out is not None:
        draw(neuron, args.out)
    step_3_accumulation()
    step_4_micrograd_expression()
    step_5_numerical_check()


if __name__ == "__main__":
    main()
