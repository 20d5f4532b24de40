"""Train a character-level GPT, as nanoGPT's train.py does, on minigrad.

The loop, top to bottom, at every iteration `it`:

    1. set the learning rate of iteration `it` (linear warm-up, then cosine decay to min_lr);
    2. every eval_interval iterations (and at the last), estimate the train and validation
       loss on eval_iters fresh batches, in eval mode without a graph; log them, keep the
       weights if validation improved, and save the training state;
    3. take one AdamW step on a random batch, with the gradient norm clipped to grad_clip.

What resuming needs is exactly what moves during training: the weights, the optimizer's
moments and step counts, the iteration, and the states of the two random generators that
training draws from (one picks the batches, one the model's dropout masks). Evaluation
batches come from a generator seeded by (seed, iteration), so evaluating never moves the
training generators and a resumed run takes the very same steps as an uninterrupted one.

`ckpt.safetensors` holds the weights with the best validation loss seen so far (as nanoGPT
keeps them); the training state holds the latest weights, so `--resume` continues from
where the run stopped, not from the best point.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from minigrad import no_grad
from minigrad.memory import keep_freed_memory
from minigrad.optim import CosineWithWarmup, clip_grad_norm_
from transformer import checkpoint as ckpt
from transformer.data import Corpus, check_long_enough, get_batch, resolve_corpus, split_train_val
from transformer.gpt import GPT, GPTConfig
from transformer.sample import load_vocab, stream_text
from transformer.tokenizer import CharTokenizer

BETA1 = 0.9  # nanoGPT's; only beta2 is a flag
# independent random streams drawn from one seed: initial weights and dropout, batches, evaluation
MODEL_STREAM, BATCH_STREAM, EVAL_STREAM = 0, 1, 2
# the model's shape: a resumed run must keep it
ARCHITECTURE_FLAGS = ("n_layer", "n_head", "n_embd", "block_size", "bias")


class ConfigError(ValueError):
    """A training flag has a value that makes no sense."""


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training; the state was saved at iteration `iter`."""

    def __init__(self, iter: int, run_dir: Path):
        super().__init__(f"interrupted at iteration {iter}")
        self.iter, self.run_dir = iter, run_dir


@dataclass
class TrainConfig:
    """The training flags; the defaults are nanoGPT's CPU recipe for Tiny Shakespeare.

    `bias` keeps the biases of GPT-2 (and of the checkpoint names in the contract) in the Linears
    and LayerNorms; `--no-bias` drops them, as nanoGPT's train.py does by default.
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
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # 0 turns clipping off
    dropout: float = 0.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    bias: bool = True

    def __post_init__(self):
        if self.lr_decay_iters is None:
            self.lr_decay_iters = self.max_iters

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
    --n-embd, --block-size or --bias is a CheckpointError. Anything else (e.g. a larger --max-iters)
    may change.
    """
    saved = ckpt.read_json(Path(run_dir) / ckpt.CONFIG_FILE)
    try:
        saved_flags = dict(saved["train"])
        TrainConfig(**saved_flags)
    except (KeyError, TypeError) as e:
        raise ckpt.CheckpointError(f"{Path(run_dir) / ckpt.CONFIG_FILE} is not a training config ({e})") from None
    for name in ARCHITECTURE_FLAGS:
        if name in overrides and overrides[name] != saved_flags[name]:
            raise ckpt.CheckpointError(
                f"{flag(name)} {overrides[name]} does not match the run in {run_dir}, "
                f"which has {name} = {saved_flags[name]}; leave it out to resume"
            )
    return TrainConfig(**{**saved_flags, **overrides})


# ---------------------------------------------------------------- pieces of the loop


def estimate_loss(
    model: GPT, splits: dict[str, np.ndarray], config: TrainConfig, rng: np.random.Generator
) -> dict[str, float]:
    """The mean loss over eval_iters random batches of each split, in eval mode and without a graph."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            return {
                name: float(
                    np.mean(
                        [
                            model(*get_batch(data, config.batch_size, config.block_size, rng))[1].item()
                            for _ in range(config.eval_iters)
                        ]
                    )
                )
                for name, data in splits.items()
            }
    finally:
        model.train(was_training)


def eval_rng(seed: int, it: int) -> np.random.Generator:
    """The evaluation batches at iteration `it`: the same whatever happened before (resuming included)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(EVAL_STREAM, it)))


def write_log(path: Path, history: list[dict[str, float]]) -> None:
    """log.csv: a header, then one row per evaluation."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["iter", "train_loss", "val_loss", "lr"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    ckpt.atomic_write_text(path, buffer.getvalue())


def plot_losses(path: Path, history: list[dict[str, float]]) -> None:
    """loss.png: train and validation loss against iteration."""
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
    ax.set_ylabel("cross-entropy loss (nats per character)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    ckpt.atomic_write_bytes(path, buffer.getvalue())


@contextmanager
def stop_on_ctrl_c():
    """Turn Ctrl-C into a request the loop reads at the start of the next iteration.

    Stopping there, never in the middle of an optimizer step, leaves weights, moments and
    generators consistent, so the saved state resumes exactly. A second Ctrl-C stops at once.
    Signal handlers live in the main thread only; elsewhere Ctrl-C cannot reach the loop anyway.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        tqdm.write("stopping after this iteration (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------- training state


def _state_arrays(model: GPT, optimizer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The training state split into arrays (for safetensors) and numbers (for JSON)."""
    arrays = {f"model.{name}": value for name, value in model.state_dict().items()}
    opt = optimizer.state_dict()
    numbers: dict[str, dict[str, Any]] = {}
    for index, entry in opt["state"].items():
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                arrays[f"optimizer.{index}.{name}"] = value
            else:
                numbers.setdefault(str(index), {})[name] = value
    groups = [{**g, "betas": list(g["betas"])} for g in opt["param_groups"]]
    return arrays, {"state": numbers, "param_groups": groups}


def _restore_state(model: GPT, optimizer, arrays: dict[str, np.ndarray], optimizer_numbers: dict, source: str) -> None:
    """Put saved weights and optimizer state back (checked first: a bad file changes nothing)."""
    weights = {name[len("model.") :]: a for name, a in arrays.items() if name.startswith("model.")}
    ckpt.check_state_fits(weights, model.state_dict(), source)
    state: dict[int, dict[str, Any]] = {int(i): dict(entry) for i, entry in optimizer_numbers["state"].items()}
    for name, value in arrays.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    groups = [{**g, "betas": tuple(g["betas"])} for g in optimizer_numbers["param_groups"]]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, ValueError) as e:
        raise ckpt.CheckpointError(f"{source}: the optimizer state does not fit the model ({e})") from None
    model.load_state_dict(weights, strict=True)


# ---------------------------------------------------------------- the loop


def train(
    config: TrainConfig,
    resume: bool = False,
    corpus: Corpus | None = None,
    progress: bool | None = None,
    sample_chars: int = 300,
    echo: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or, with resume=True, continue) the run in config.out; return a summary.

    `corpus` defaults to the one `resolve_corpus(config.data)` finds. `progress` shows the tqdm
    bar (None: only on a terminal). `echo` and `warn` take the lines for stdout and stderr.
    `sample_chars` characters of generated text are printed at the end. Raises ConfigError,
    CorpusError or CheckpointError (before writing anything) for bad input, and
    TrainingInterrupted after saving when Ctrl-C stopped the run.
    """
    keep_freed_memory()  # a process-wide malloc setting: the trainer's choice, never an import's
    config.validate()
    run_dir = Path(config.out)
    echo = echo or (lambda line: print(line, flush=True))  # flushed: lines arrive in time through a pipe
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))

    if resume:
        saved_arrays, saved = ckpt.load_train_state(run_dir)
        tokenizer = load_vocab(run_dir / ckpt.VOCAB_FILE)
    ckpt.check_writable_dir(run_dir)
    corpus = corpus or resolve_corpus(config.data, warn=warn)
    if resume:
        if saved.get("corpus_sha256") != corpus.sha256:
            raise ckpt.CheckpointError(
                f"the corpus ({corpus.source}) is not the text the run in {run_dir} was trained on; "
                "pass the same --data to resume"
            )
    else:
        tokenizer = CharTokenizer.from_text(corpus.text)
    ids = tokenizer.encode(corpus.text).astype(np.int32)
    train_ids, val_ids = split_train_val(ids)
    check_long_enough(train_ids, val_ids, config.block_size)
    splits = {"train": train_ids, "val": val_ids}

    model_rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(MODEL_STREAM,)))
    batch_rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(BATCH_STREAM,)))
    model_config = config.model_config(tokenizer.vocab_size)
    model = GPT(model_config, rng=model_rng)
    optimizer = model.configure_optimizers(config.weight_decay, config.learning_rate, (BETA1, config.beta2))
    schedule = CosineWithWarmup(
        optimizer, config.learning_rate, config.min_lr, config.warmup_iters, config.lr_decay_iters
    )

    start_iter, best_val, last_eval, history = 0, math.inf, -1, []
    if resume:
        try:
            _restore_state(model, optimizer, saved_arrays, saved["optimizer"], str(run_dir / ckpt.STATE_ARRAYS_FILE))
            model_rng.bit_generator.state = saved["rng"]["model"]
            batch_rng.bit_generator.state = saved["rng"]["batches"]
            start_iter, last_eval, history = int(saved["iter"]), int(saved["last_eval_iter"]), saved["history"]
            best_val = math.inf if saved["best_val_loss"] is None else float(saved["best_val_loss"])
        except ckpt.CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            bad = run_dir / ckpt.STATE_JSON_FILE
            raise ckpt.CheckpointError(f"{bad} is not a usable training state ({e})") from None
        if start_iter > config.max_iters:
            raise ConfigError(f"--max-iters {config.max_iters} is below the iteration the run reached, {start_iter}")
        echo(f"resuming {run_dir} at iteration {start_iter} of {config.max_iters}")
    elif (run_dir / ckpt.CKPT_FILE).exists():
        echo(f"starting a new run in {run_dir}: its checkpoint will be replaced (--resume continues it instead)")

    # from here on the run writes: everything above has been checked
    ckpt.atomic_write_json(
        run_dir / ckpt.CONFIG_FILE, {"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(config)}
    )
    tokenizer.save(run_dir / ckpt.VOCAB_FILE)
    echo(
        f"corpus: {corpus.source}, {len(corpus.text):,} characters, {tokenizer.vocab_size} distinct; "
        f"model: {model.num_parameters():,} parameters"
    )

    def save_state(it: int) -> None:
        arrays, optimizer_numbers = _state_arrays(model, optimizer)
        info = {
            "iter": it,
            "last_eval_iter": last_eval,
            "best_val_loss": None if math.isinf(best_val) else best_val,
            "history": history,
            "corpus_sha256": corpus.sha256,
            "rng": {"model": model_rng.bit_generator.state, "batches": batch_rng.bit_generator.state},
            "optimizer": optimizer_numbers,
        }
        ckpt.save_train_state(run_dir, arrays, info)

    bar = tqdm(
        total=config.max_iters, initial=start_iter, disable=None if progress is None else not progress,
        unit="it", dynamic_ncols=True, file=sys.stderr,
    )  # fmt: skip
    step_times: list[float] = []
    ms_per_iter = math.nan  # smoothed, for the bar
    started = time.perf_counter()
    model.train()
    with bar, stop_on_ctrl_c() as stop_requested:
        for it in range(start_iter, config.max_iters + 1):
            if stop_requested.is_set():
                save_state(it)
                raise TrainingInterrupted(it, run_dir)
            lr = schedule.step(it)

            if (it % config.eval_interval == 0 or it == config.max_iters) and it != last_eval:
                losses = estimate_loss(model, splits, config, eval_rng(config.seed, it))
                last_eval = it
                history.append({"iter": it, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr})
                note = ""
                if losses["val"] < best_val:
                    best_val = losses["val"]
                    ckpt.save_model(run_dir / ckpt.CKPT_FILE, model.state_dict(), iter=it, val_loss=best_val)
                    note = " (best so far, saved)"
                tqdm.write(f"iter {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}{note}")
                write_log(run_dir / ckpt.LOG_FILE, history)
                plot_losses(run_dir / ckpt.PLOT_FILE, history)
                save_state(it)
            if it == config.max_iters:
                break

            t0 = time.perf_counter()
            x, y = get_batch(train_ids, config.batch_size, config.block_size, batch_rng)  # (B, T) each
            _, loss = model(x, y)
            optimizer.zero_grad()
            loss.backward()
            if config.grad_clip > 0:
                clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step_times.append(time.perf_counter() - t0)
            ms = 1000 * step_times[-1]
            ms_per_iter = ms if math.isnan(ms_per_iter) else 0.9 * ms_per_iter + 0.1 * ms
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", ms_per_iter=f"{ms_per_iter:.0f}", refresh=False)
            bar.update()

    wall = time.perf_counter() - started
    mean_ms = 1000 * float(np.mean(step_times)) if step_times else math.nan
    final = history[-1] if history else {}
    echo(
        f"done: {config.max_iters - start_iter} iterations in {wall:.1f} s ({mean_ms:.1f} ms per training step); "
        f"val loss {final.get('val_loss', math.nan):.4f}, best {best_val:.4f}"
    )
    if sample_chars > 0:
        echo("sample:")
        start = "\n" if "\n" in tokenizer.stoi else corpus.text[0]  # nanoGPT starts its samples at a newline
        stream_text(model, tokenizer, start, sample_chars, temperature=0.8, rng=np.random.default_rng(config.seed))
    return {
        "iter": config.max_iters,
        "train_loss": final.get("train_loss"),
        "val_loss": final.get("val_loss"),
        "best_val_loss": best_val,
        "wall_seconds": wall,
        "ms_per_iter": mean_ms,
        "history": history,
    }
