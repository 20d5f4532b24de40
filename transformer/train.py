"""Train a GPT on characters or BPE tokens, as nanoGPT's train.py does, on minigrad.

The loop, top to bottom, at every iteration `it`:

    1. set the learning rate of iteration `it` (linear warm-up, then cosine decay to min_lr);
    2. every eval_interval iterations (and at the last), estimate the train and validation
       loss on eval_iters fresh batches, in eval mode without a graph; log them, keep the
       weights if validation improved, and save the training state;
    3. take one AdamW step on a random batch, with the gradient norm clipped to grad_clip.

`ckpt.safetensors` holds the weights with the best validation loss seen so far (as nanoGPT
keeps them); the training state holds the latest weights, so `--resume` continues from
where the run stopped, not from the best point. Building, resuming and saving a run live in
transformer/run.py, its log and plot in transformer/runlog.py: this file is the loop and
the hyper-parameters it runs with.

Under `mpiexec -n N` the same loop runs on N ranks, each on its share of every batch, with
the gradients summed across them before clipping (see transformer/distributed.py); the
model, the losses and the saved state are those of one process.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from minigrad import no_grad
from minigrad.memory import keep_freed_memory
from minigrad.optim import clip_grad_norm_
from transformer import checkpoint as ckpt
from transformer.data import Corpus, get_batch
from transformer.distributed import World, world
from transformer.gpt import GPT, GPTConfig
from transformer.run import ConfigError, Run, eval_rng, opened_run, save_state, stop_on_ctrl_c
from transformer.runlog import TRACE_FILE, StepTimer, plot_losses, write_log
from transformer.sample import stream_text

BETA1 = 0.9  # nanoGPT's; only beta2 is a flag
# the model's shape: a resumed run must keep it
ARCHITECTURE_FLAGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "tokenizer", "vocab_size", "init_from")
TOKENIZERS = ("char", "bpe")
BPE_VOCAB_SIZE = 512  # --vocab-size when --tokenizer bpe is given without it


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training; the state was saved at iteration `iter`."""

    def __init__(self, iter: int, run_dir: Path):
        super().__init__(f"interrupted at iteration {iter}")
        self.iter, self.run_dir = iter, run_dir


@dataclass
class TrainConfig:
    """The training flags; the defaults are nanoGPT's CPU recipe for Tiny Shakespeare.

    `bias` keeps GPT-2's biases in the Linears and LayerNorms (so a checkpoint holds every name
    nanoGPT's GPT-2 has); `--no-bias` drops them, as nanoGPT's train.py does by default.
    """

    data: str | None = None  # None: Tiny Shakespeare, found or downloaded (see transformer.data)
    out: str = "runs/shakespeare-char"
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    batch_size: int = 12
    max_iters: int = 2000  # the total number of steps, also when resuming
    lr_decay_iters: int | None = None  # None: max_iters (fixed when the run starts)
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    beta1: ClassVar[float] = BETA1  # not a flag, so not saved in config.json
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # 0 turns clipping off
    dropout: float = 0.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    bias: bool = True
    tokenizer: str = "char"  # "char": one token per character; "bpe": byte-level BPE learned from the training split
    vocab_size: int | None = None  # bpe only: 256 byte tokens plus the merges (None: BPE_VOCAB_SIZE)
    init_from: str | None = None  # a Hugging Face GPT-2 directory (or hub name) to fine-tune, with its tokenizer

    def __post_init__(self):
        if self.lr_decay_iters is None:
            self.lr_decay_iters = self.max_iters
        if self.tokenizer == "bpe" and self.vocab_size is None:
            self.vocab_size = BPE_VOCAB_SIZE

    def validate(self) -> None:
        """ConfigError naming the first flag whose value is out of range."""
        at_least = dict(
            n_layer=1, n_head=1, n_embd=1, block_size=1, batch_size=1, max_iters=0, lr_decay_iters=0,
            warmup_iters=0, eval_interval=1, eval_iters=1, seed=0,
        )  # fmt: skip
        for name, low in at_least.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{flag(name)} must be an integer >= {low}, got {value!r}")
        for name in ("learning_rate", "min_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{flag(name)} must be a finite number >= 0, got {value!r}")
        for name in ("beta2", "dropout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < 1):
                raise ConfigError(f"{flag(name)} must lie in [0, 1), got {value!r}")
        if not isinstance(self.bias, bool):
            raise ConfigError(f"--bias must be true or false, got {self.bias!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, got {self.tokenizer!r}")
        if self.tokenizer == "char" and self.vocab_size is not None:
            raise ConfigError("--vocab-size applies to --tokenizer bpe only (characters need no vocabulary size)")
        if self.tokenizer == "bpe" and (type(self.vocab_size) is not int or self.vocab_size < 256):
            raise ConfigError(f"--vocab-size must be an integer >= 256 (the byte tokens), got {self.vocab_size!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"--n-embd ({self.n_embd}) must be a multiple of --n-head ({self.n_head})")

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            vocab_size=vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            dropout=self.dropout,
            bias=self.bias,
        )


def flag(name: str) -> str:
    """The command-line spelling of a TrainConfig field: max_iters -> --max-iters."""
    return "--" + name.replace("_", "-")


def resume_config(run_dir: str | Path, overrides: dict[str, Any]) -> TrainConfig:
    """The saved run's flags with `overrides` (flags given again) on top.

    The architecture cannot change under a trained model: a different --n-layer, --n-head,
    --n-embd, --block-size, --bias, --tokenizer or --vocab-size is a CheckpointError. Anything
    else (e.g. a larger --max-iters) may change.
    """
    saved = ckpt.read_json(Path(run_dir) / ckpt.CONFIG_FILE)
    try:
        saved_flags = dict(saved["train"])
        saved_config = TrainConfig(**saved_flags)
    except (KeyError, TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{Path(run_dir) / ckpt.CONFIG_FILE} is not a training config ({e})") from None
    for name in ARCHITECTURE_FLAGS:
        if name in overrides and overrides[name] != getattr(saved_config, name):
            raise ckpt.CheckpointError(
                f"{flag(name)} {overrides[name]} does not match the run in {run_dir}, "
                f"which has {name} = {getattr(saved_config, name)}; leave it out to resume"
            )
    return TrainConfig(**{**saved_flags, **overrides})


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
    run.last_eval = it
    run.history.append(
        {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr, "val_bpc": losses["val_bpc"]}
    )
    improved = losses["val"] < run.best_val
    run.best_val = min(run.best_val, losses["val"])
    if not ranks.is_main:
        return
    note = ""
    if improved:
        ckpt.save_model(run.run_dir / ckpt.CKPT_FILE, run.model.state_dict(), iter=it, val_loss=run.best_val)
        note = " (best so far, saved)"
    tqdm.write(
        f"iter {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, "
        f"val {losses['val_bpc']:.3f} bits/char{note}"
    )
    write_log(run.run_dir / ckpt.LOG_FILE, run.history)
    plot_losses(run.run_dir / ckpt.PLOT_FILE, run.history)
    save_state(run, it)


def finish(run: Run, timer: StepTimer, wall: float, start_iter: int, sample_chars: int, echo) -> dict[str, Any]:
    """Say how the run went, print a sample, and return the summary train() returns."""
    final = run.history[-1] if run.history else {}
    echo(
        f"done: {run.config.max_iters - start_iter} iterations in {wall:.1f} s "
        f"({timer.mean_ms():.1f} ms per training step); "
        f"val loss {final.get('val_loss', math.nan):.4f}, best {run.best_val:.4f}"
    )
    if sample_chars > 0:
        echo("sample:")
        start = "\n" if "\n" in run.corpus.text else run.corpus.text[0]  # nanoGPT starts its samples at a newline
        rng = np.random.default_rng(run.config.seed)
        stream_text(run.model, run.tokenizer, start, sample_chars, temperature=0.8, rng=rng)
    return {
        "iter": run.config.max_iters,
        "train_loss": final.get("train_loss"),
        "val_loss": final.get("val_loss"),
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
    TrainingInterrupted once the state is saved; a failed write, RunWriteError (older files whole).
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
    ):  # fmt: skip
        model, optimizer, params = run.model, run.optimizer, list(run.model.parameters())
        rows = ranks.shard(config.batch_size)  # this rank's rows of each batch: all of them on one process
        share = (rows.stop - rows.start) / config.batch_size  # its weight in the batch's mean loss
        start_iter, timer, started = run.iter, StepTimer(profile_steps, run.run_dir / TRACE_FILE), time.perf_counter()
        model.train()
        for it in range(start_iter, config.max_iters + 1):
            lr = run.schedule.step(it)
            if due_for_evaluation(run, it):
                evaluate_and_save(run, it, lr, ranks)
            if it == config.max_iters:
                break

            timer.start()
            x, y = get_batch(run.splits["train"], config.batch_size, config.block_size, run.batch_rng)  # (B, T) each
            _, loss = model(x[rows], y[rows])
            optimizer.zero_grad()
            loss.backward()
            # the whole batch's gradient, on every rank; a Ctrl-C on any rank stops them all after this step
            extras = [share * loss.item(), float(stop_requested.is_set())]
            batch_loss, stop_votes = ranks.sum_gradients(params, share, extras)
            if config.grad_clip > 0:
                clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            bar.set_postfix(loss=f"{batch_loss:.4f}", lr=f"{lr:.2e}", ms_per_iter=f"{timer.stop():.0f}", refresh=False)
            bar.update()
            if stop_votes > 0:  # saved as at the start of the next iteration, where --resume goes on
                if ranks.is_main:
                    save_state(run, it + 1)
                raise TrainingInterrupted(it + 1, run.run_dir)

    return finish(run, timer, time.perf_counter() - started, start_iter, sample_chars, echo)
