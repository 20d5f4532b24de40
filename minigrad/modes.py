"""The engine's switches: grad mode, anomaly detection, the module running, and the tracing hook.

`Function.apply` and the backward pass (minigrad/autograd.py) read `state` on every op; it is
changed only through the context managers here, each of which puts the old value back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np


class _State:
    """The engine's four switches.

    grad_enabled:    is a graph being recorded (`no_grad`, `enable_grad`, `set_grad_enabled`)
    detect_anomaly:  is every result and gradient checked for NaN/Inf (`detect_anomaly`)
    scope:           the `Module` calls running now, outermost first (`module_scope`, `current_scope`)
    tracer:          the `Tracer` watching ops run, or None (`tracing`)
    """

    grad_enabled = True
    detect_anomaly = False
    scope: tuple = ()
    tracer: Any = None


state = _State()


def format_shape(shape: tuple) -> str:
    """A shape as error messages write it: (2, 3)."""
    return str(tuple(int(n) for n in shape))


class _Switch(contextlib.ContextDecorator):
    """Set one of `state`'s switches inside a `with` block or a decorated function."""

    switch = ""

    def __init__(self, value):
        self.value = value
        # A stack, not one slot: a decorated function may call itself, re-entering this object.
        self.previous: list = []

    def __enter__(self):
        self.previous.append(getattr(state, self.switch))
        setattr(state, self.switch, self.value)
        return self.value

    def __exit__(self, *exc):
        setattr(state, self.switch, self.previous.pop())
        return False


# ---------------------------------------------------------------- grad mode and anomaly detection


def is_grad_enabled() -> bool:
    return state.grad_enabled


class set_grad_enabled(_Switch):
    """Turn graph recording on or off inside a `with` block or a decorated function."""

    switch = "grad_enabled"

    def __init__(self, mode: bool):
        super().__init__(bool(mode))


class no_grad(set_grad_enabled):
    """`with mg.no_grad():`, `@mg.no_grad()` or `@mg.no_grad`: ops record no graph, keep no buffers."""

    def __new__(cls, function=None):
        if callable(function):  # used bare as a decorator: @mg.no_grad
            return cls()(function)
        return super().__new__(cls)

    def __init__(self, function=None):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)


class detect_anomaly(_Switch):
    """Check every op's output and every gradient for NaN/Inf; name the first op that made one."""

    switch = "detect_anomaly"

    def __init__(self):
        super().__init__(True)


def check_finite(array, what: str) -> None:
    """Raise FloatingPointError naming `what` if the array holds NaN or Inf (under `detect_anomaly`)."""
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        kind = "NaN" if np.isnan(array).any() else "Inf"
        raise FloatingPointError(f"{what} produced {kind} (shape {format_shape(array.shape)})")


# ---------------------------------------------------------------- who is watching: modules and tracers


class module_scope:
    """Mark the ops created inside as belonging to `module` (used by `nn.Module.__call__`).

    A class rather than a generator-based context manager: every module call enters one, and
    this costs a third as much.
    """

    __slots__ = ("module", "previous")

    def __init__(self, module: Any):
        self.module = module

    def __enter__(self):
        self.previous = state.scope
        state.scope = self.previous + (self.module,)

    def __exit__(self, *exc):
        state.scope = self.previous
        return False


def current_scope() -> tuple:
    """The `Module` calls running now, outermost first; every op records it as `fn.scope`."""
    return state.scope


class Tracer:
    """Watches ops run (`mg.profile` times them, `minigrad.viz.explore` keeps gradients).

    Install one with `with tracing(tracer):`. The engine then calls `forward` for every op
    applied and `backward` for every op that backward reaches; each is handed `run`, which runs
    the op (with tracing off, so an op built of other ops is seen once) and returns its result.
    `forward` runs on the caller's stack, so it may also look up the line that applied the op.
    """

    def forward(self, run: Callable, cls: type, args: tuple, kwargs: dict):
        """Called by `cls.apply(*args, **kwargs)`; returns the output Tensor (what `run()` gives)."""
        return run()

    def backward(self, run: Callable, fn, grad):
        """Called when backward reaches the op `fn` with `grad`; returns its input gradients (`run()`)."""
        return run()


class tracing(_Switch):
    """`with tracing(tracer):` the engine reports every op to `tracer`; the outer one comes back after."""

    switch = "tracer"


def untraced(action: Callable, tracer: Tracer) -> Callable:
    """`action` as a `run` for `tracer`: called, it runs with no tracer, then puts `tracer` back."""

    def run():
        state.tracer = None
        try:
            return action()
        finally:
            state.tracer = tracer

    return run
