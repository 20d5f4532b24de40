"""Train a GPT on characters or BPE tokens, as nanoGPT's train.py does, on minigrad.

The loop, top to bottom, at every iteration `it`:

    1. set the learning rate of iteration `it` (linear warm-up, then cosine decay to min_lr);
    2. every eval_interval iterations (and at the last), estimate the train and validation
       loss on eval_iters fresh batches, in eval mode without a graph; log them, keep the
       weights if validation improved, and save the training state;
    3. take one AdamW step on a random batch, with the gradient norm clipped to grad_clip.

`ckpt.safetensors` holds the weights with the best validation loss seen so far (as nanoGPT
keeps them); the training state holds the latest weights, so `--resume` continues from
where the run stopped, not from the best point. The hyper-parameters are TrainConfig's
(transformer/train_config.py); building, resuming and saving a run live in transformer/run.py,
its log and plot in transformer/runlog.py: this file is the loop.

Under `mpiexec -n N` the same loop runs on N ranks, each on its share of every batch; the
gradients are summed across them, and each rank updates its share of the parameters and
sends the others the new values (see transformer/distributed.py). The model, the losses and
the saved state are those of one process.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from minigrad import no_grad
from minigrad.memory import keep_freed_memory
from minigrad.optim import clip_grads_with_norm_
from transformer import checkpoint as ckpt
from transformer.data import Corpus, get_batch
from transformer.distributed import World, world
from transformer.gpt import GPT
from transformer.run import ConfigError, Run, eval_rng, opened_run, save_state, stop_on_ctrl_c
from transformer.runlog import TRACE_FILE, StepTimer, plot_losses, write_log
from transformer.sample import stream_text
from transformer.speedrun import whole_split_loss
from transformer.train_config import TrainConfig


class TrainingDiverged(ConfigError):
    """The loss became NaN or infinite: a flag (most often --learning-rate) drove the weights out of range."""

    def __init__(self, loss: float, it: int):
        super().__init__(
            f"training diverged: the loss is {loss} at iteration {it}; the files saved before keep the last "
            "finite weights. Try a smaller --learning-rate"
        )


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training; the state was saved at iteration `iter`."""

    def __init__(self, iter: int, run_dir: Path):
        super().__init__(f"interrupted at iteration {iter}")
        self.iter, self.run_dir = iter, run_dir


# ---------------------------------------------------------------- pieces of the loop


def setup_process(ranks: World) -> None:
    """Process-wide settings that make training fast; the trainer's business, never an import's.

    The ranks on one machine share its cores: each runs its BLAS on cores / ranks threads, so
    N processes never start more threads than there are cores.
    """
    keep_freed_memory()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threadpool_limits(limits=max(1, cores // ranks.ranks_on_this_machine()), user_api="blas")


def estimate_loss(
    model: GPT,
    splits: dict[str, np.ndarray],
    config: TrainConfig,
    rng: np.random.Generator,
    chars_per_token: np.ndarray,
    ranks: World | None = None,
) -> dict[str, float]:
    """The mean loss over eval_iters random batches of each split, in eval mode and without a graph,
    and each split's bits per character: the batches' total loss in nats over the characters their
    targets cover (`chars_per_token` (vocab_size,)), in bits. Keys: "train", "val", "train_bpc", "val_bpc".

    Every rank draws the same batches; batch i is evaluated by rank i mod N, and one all-reduce
    adds the ranks' sums, so each rank returns the same numbers.
    """
    ranks = ranks or World()
    sums = np.zeros((len(splits), 3))  # float64: per split, the sum of the batches' mean losses, nats, characters
    was_training = model.training
    model.eval()
    estimates = {}
    try:
        with no_grad():
            for j, data in enumerate(splits.values()):
                for i in range(config.eval_iters):
                    x, y = get_batch(data, config.batch_size, config.block_size, rng)  # (B, T) each
                    if i % ranks.size == ranks.rank:
                        loss = model(x, y)[1].item()  # the mean over the B * T targets
                        sums[j] += (loss, loss * y.size, chars_per_token[y].sum())
    finally:
        model.train(was_training)
    ranks.sum_in_place(sums)
    for name, (losses, nats, chars) in zip(splits, sums):
        estimates[name] = float(losses / config.eval_iters)
        estimates[f"{name}_bpc"] = float(nats / max(chars, 1) / math.log(2))
    return estimates


def due_for_evaluation(run: Run, it: int) -> bool:
    """Every eval_interval iterations and at the last, once (a resumed run has done its own)."""
    return (it % run.config.eval_interval == 0 or it == run.config.max_iters) and it != run.last_eval


def evaluate_and_save(run: Run, it: int, lr: float, ranks: World) -> None:
    """Estimate both losses; log them, keep the weights if validation improved, save the state.

    Every rank evaluates its part and keeps the same bookkeeping; rank 0 alone writes and prints.
    """
    chars_per_token = run.tokenizer.chars_per_token()  # (vocab_size,)
    losses = estimate_loss(run.model, run.splits, run.config, eval_rng(run.config.seed, it), chars_per_token, ranks)
    if not math.isfinite(losses["val"] + losses["train"]):  # weights gone out of range are never saved
        raise TrainingDiverged(losses["val"] + losses["train"], it)
    run.last_eval = it
    row = {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr, "val_bpc": losses["val_bpc"]}
    target = run.config.target_bpc
    # with a target, a cheap estimate past it (or the last iteration) is confirmed on every validation token
    if target is not None and (losses["val_bpc"] <= target or it == run.config.max_iters):
        whole = whole_split_loss(run.model, run.splits["val"], run.config.block_size, chars_per_token, ranks)
        row.update(val_loss=whole["loss"], val_bpc=whole["bpc"], val_tokens=whole["tokens"])
        run.reached_target = whole["bpc"] <= target
    run.history.append(row)
    losses = {**losses, "val": row["val_loss"], "val_bpc": row["val_bpc"]}
    improved = losses["val"] < run.best_val
    run.best_val = min(run.best_val, losses["val"])
    ranks.share_optimizer_state(run.optimizer, list(run.model.parameters()))  # all of it, for save_state
    if not ranks.is_main:
        return
    best = {}  # the improved weights, renamed into place with the state: a run never has one without the other
    if improved:
        weights = ckpt.model_bytes(run.model.state_dict(), run.model.config, iter=it, val_loss=run.best_val)
        best[run.run_dir / ckpt.CKPT_FILE] = weights
    write_log(run.run_dir / ckpt.LOG_FILE, run.history)
    plot_losses(run.run_dir / ckpt.PLOT_FILE, run.history)
    save_state(run, it, best)
    # said once every file is written: a stdout closed meanwhile (`| head`) cannot stop a save halfway
    whole = " over the whole split" if "val_tokens" in row else ""
    reached = f", the target {target} reached" if run.reached_target else ""
    tqdm.write(
        f"iter {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, "
        f"val {losses['val_bpc']:.3f} bits/char{whole}{' (best so far, saved)' if improved else ''}{reached}"
    )


def take_step(run: Run, params: list, rows: slice, ranks: World, stop_requested: bool, it: int) -> tuple[float, float]:
    """Optimizer step `it` on a fresh batch, of which this rank takes `rows`; returns the whole
    batch's loss and how many ranks were asked to stop (Ctrl-C), summed over the ranks.
    A loss that is not finite stops training (TrainingDiverged) before the weights take the step."""
    config = run.config
    share = (rows.stop - rows.start) / config.batch_size  # this rank's weight in the batch's mean loss
    x, y = get_batch(run.splits["train"], config.batch_size, config.block_size, run.batch_rng)  # (B, T) each
    _, loss = run.model(x[rows], y[rows])
    run.optimizer.zero_grad()
    loss.backward()
    # the batch's gradient of the parameters this rank updates; a Ctrl-C on any rank stops them all after this step
    batch_loss, stop_votes = ranks.sum_gradients(params, share, [share * loss.item(), float(stop_requested)])
    if not math.isfinite(batch_loss):  # every rank sees the same sum, so every rank stops here
        raise TrainingDiverged(batch_loss, it)
    if config.grad_clip > 0:
        clip_grads_with_norm_(params, config.grad_clip, ranks.total_norm(params))
    run.optimizer.step()  # the parameters with a gradient: this rank's
    ranks.share_parameters(params)  # every rank's new values, on every rank
    return batch_loss, stop_votes


def finish(run: Run, timer: StepTimer, wall: float, start_iter: int, sample_chars: int, echo) -> dict[str, Any]:
    """Say how the run went, print a sample, and return the summary train() returns."""
    final = run.history[-1] if run.history else {}
    last_iter = run.last_eval if run.reached_target else run.config.max_iters
    per_step = (
        f" ({timer.mean_ms():.1f} ms per training step)" if timer.seconds else ""
    )  # a finished run resumed takes none
    echo(
        f"done: {last_iter - start_iter} iterations in {wall:.1f} s{per_step}; "
        f"val loss {final.get('val_loss', math.nan):.4f}, best {run.best_val:.4f}"
    )
    if sample_chars > 0:
        echo("sample:")
        start = "\n" if "\n" in run.corpus.text else run.corpus.text[0]  # nanoGPT starts its samples at a newline
        rng = np.random.default_rng(run.config.seed)
        stream_text(run.model, run.tokenizer, start, sample_chars, temperature=0.8, rng=rng)
    return {
        "iter": last_iter,
        "train_loss": final.get("train_loss"),
        "val_loss": final.get("val_loss"),
        "val_bpc": final.get("val_bpc"),
        "reached_target": run.reached_target,
        "best_val_loss": run.best_val,
        "wall_seconds": wall,
        "ms_per_iter": timer.mean_ms(),
        "history": run.history,
    }


# ---------------------------------------------------------------- the loop


def say_nothing(line: str) -> None:
    """The echo of the ranks other than 0: one voice per job."""


def train(
    config: TrainConfig,
    resume: bool = False,
    corpus: Corpus | None = None,
    progress: bool | None = None,
    sample_chars: int = 300,
    echo: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    profile_steps: int = 0,
) -> dict[str, Any]:
    """Train (or, with resume=True, continue) the run in config.out; return a summary (see `finish`).

    `progress` shows the tqdm bar (None: only on a terminal); `echo` and `warn` take the lines for
    stdout and stderr (default: printed, flushed to pass a pipe in time); `sample_chars` characters
    are sampled at the end; `profile_steps` > 0 traces the first steps into trace.json (Perfetto).
    Bad input raises ConfigError, CorpusError or CheckpointError before a file is written; Ctrl-C,
    TrainingInterrupted once the state is saved; a failed write, RunWriteError (older files whole);
    a loss that is not finite, TrainingDiverged (a ConfigError; nothing of it saved).
    """
    ranks = world()  # one process, or every rank of `mpiexec -n N`
    echo, warn = echo or partial(print, flush=True), warn or partial(print, file=sys.stderr, flush=True)
    if not ranks.is_main:  # one voice per job: the other ranks work quietly
        echo, warn, progress, sample_chars, profile_steps = say_nothing, say_nothing, False, 0, 0
    setup_process(ranks)
    with (
        opened_run(config, resume, corpus, warn, echo, ranks) as run,
        stop_on_ctrl_c(say=warn) as stop_requested,
        tqdm(total=config.max_iters, initial=run.iter, disable=None if progress is None else not progress,
             unit="it", dynamic_ncols=True, file=sys.stderr) as bar,
        # weights driven out of range end in a loss that is not finite, which stops the run by name
        # (TrainingDiverged): NumPy's warnings from inside the ops would only say it first, less clearly
        np.errstate(divide="ignore", over="ignore", invalid="ignore"),
    ):  # fmt: skip
        params = list(run.model.parameters())
        rows = ranks.shard(config.batch_size)  # this rank's rows of each batch: all of them on one process
        start_iter, timer, started = run.iter, StepTimer(profile_steps, run.run_dir / TRACE_FILE), time.perf_counter()
        run.model.train()
        for it in range(start_iter, config.max_iters + 1):
            lr = run.schedule.step(it)
            if due_for_evaluation(run, it):
                evaluate_and_save(run, it, lr, ranks)
            if it == config.max_iters or run.reached_target:
                break

            timer.start()
            batch_loss, stop_votes = take_step(run, params, rows, ranks, stop_requested.is_set(), it)
            bar.set_postfix(loss=f"{batch_loss:.4f}", lr=f"{lr:.2e}", ms_per_iter=f"{timer.stop():.0f}", refresh=False)
            bar.update()
            if stop_votes > 0:  # saved as at the start of the next iteration, where --resume goes on
                ranks.share_optimizer_state(run.optimizer, params)
                if ranks.is_main:
                    save_state(run, it + 1)
                raise TrainingInterrupted(it + 1, run.run_dir)

    return finish(run, timer, time.perf_counter() - started, start_iter, sample_chars, echo)
