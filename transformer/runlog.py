"""What a training run records about itself: log.csv, loss.png, step times and the op trace.

Each file is rewritten whole after every evaluation (transformer/atomic.py), so a reader or
a crash never meets half a table or half a picture.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minigrad import profile
from transformer.atomic import atomic_write_bytes, atomic_write_text

TRACE_FILE = "trace.json"  # --profile-steps: Chrome trace-event JSON of the first steps
LOG_COLUMNS = ["iter", "train_loss", "val_loss", "lr", "val_bpc"]


def write_log(path: Path, history: list[dict[str, float]]) -> None:
    """log.csv: a header, then one row per evaluation (val_bpc is empty in rows logged before it existed)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())


def plot_losses(path: Path, history: list[dict[str, float]]) -> None:
    """loss.png: train and validation loss against iteration, and validation bits per character."""
    # the object API with an Agg canvas draws off-screen and leaves pyplot's global state alone
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    iters = [row["iter"] for row in history]
    ax.plot(iters, [row["train_loss"] for row in history], marker=".", label="train")
    ax.plot(iters, [row["val_loss"] for row in history], marker=".", label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.grid(alpha=0.3)
    # bits per character compare runs whatever their tokens; for characters it is the loss / ln 2
    bpc = ax.twinx()
    bpc.plot(iters, [row.get("val_bpc", math.nan) for row in history], "k--", marker=".", label="validation bits/char")
    bpc.set_ylabel("bits per character")
    ax.legend(handles=ax.get_lines() + bpc.get_lines())
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


class StepTimer:
    """The wall time of each training step, and a smoothed figure for the progress bar.

    With `profile_steps` > 0, the first that many steps are also recorded op by op
    (minigrad.profile) and written, after each of them, to `trace_path`.
    """

    def __init__(self, profile_steps: int = 0, trace_path: Path | None = None):
        self.seconds: list[float] = []
        self.smoothed_ms = math.nan
        self.profile_steps, self.trace_path, self.profiler = profile_steps, trace_path, profile()

    def start(self) -> None:
        if len(self.seconds) < self.profile_steps:
            self.profiler.__enter__()
        self.t0 = time.perf_counter()

    def stop(self) -> float:
        """The step's milliseconds, folded into the smoothed figure."""
        self.seconds.append(time.perf_counter() - self.t0)
        if len(self.seconds) <= self.profile_steps:
            self.profiler.__exit__(None, None, None)
            # complete so far, should the run end sooner; written whole or not at all, as every run file
            atomic_write_text(self.trace_path, json.dumps(self.profiler.trace()))
            if len(self.seconds) == self.profile_steps:
                tqdm.write(f"wrote {self.trace_path}: every op of the first {self.profile_steps} steps (for Perfetto)")
        ms = 1000 * self.seconds[-1]
        self.smoothed_ms = ms if math.isnan(self.smoothed_ms) else 0.9 * self.smoothed_ms + 0.1 * ms
        return self.smoothed_ms

    def mean_ms(self) -> float:
        return 1000 * float(np.mean(self.seconds)) if self.seconds else math.nan
