"""A loss curve that redraws itself in the notebook's output cell while a model trains.

    curve = LossCurve("training loss")
    for step in range(steps):
        ...
        curve.add(step, loss.item())
    curve.close()   # the final picture stays in the notebook

One picture, replaced in place (IPython's display handles), every `every` steps and at the end:
no widget library is needed, and a notebook run without a front end still records the last one.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # drawn to PNG bytes here; the notebook shows the image
import matplotlib.pyplot as plt  # noqa: E402
from IPython.display import Image, display  # noqa: E402


class LossCurve:
    """Losses by step, redrawn every `every` additions into one output."""

    def __init__(self, title: str = "loss", every: int = 10):
        self.title, self.every = title, every
        self.points: dict[str, list[tuple[int, float]]] = {}  # name -> (step, loss) pairs
        self.added = 0
        self.handle = display(Image(data=self._png(), format="png"), display_id=True)

    def add(self, step: int, loss: float, name: str = "train") -> None:
        """Record `loss` at `step` (one curve per `name`), redrawing every `every` steps."""
        self.points.setdefault(name, []).append((step, float(loss)))
        self.added += 1
        if self.added % self.every == 0:
            self.redraw()

    def redraw(self) -> None:
        self.handle.update(Image(data=self._png(), format="png"))

    def close(self) -> None:
        """Draw the last state (call once training ends)."""
        self.redraw()

    def _png(self) -> bytes:
        figure, axes = plt.subplots(figsize=(6, 3), dpi=80)
        for name, points in self.points.items():
            steps, losses = zip(*points)
            axes.plot(steps, losses, label=name, marker="o" if len(points) < 30 else None)
        axes.set_xlabel("step")
        axes.set_ylabel(self.title)
        if self.points:
            axes.legend()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        return buffer.getvalue()
