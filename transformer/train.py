"""Train a GPT on characters or BPE tokens, as nanoGPT's train.py does, on minigrad.

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

Under `mpiexec -n N` the same loop runs on N ranks, each on its share of every batch, with
the gradients summed across them before clipping (see transformer/distributed.py); the
model, the losses and the saved state are those of one process.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from minigrad import no_grad, profile
from minigrad.memory import keep_freed_memory
from minigrad.optim import CosineWithWarmup, clip_grad_norm_
from transformer import checkpoint as ckpt
from transformer.data import Corpus, CorpusError, check_long_enough, get_batch, resolve_corpus, split_train_val
from transformer.distributed import World, world
from transformer.gpt import GPT, GPTConfig
from transformer.rundir import locked_run_dir
from transformer.sample import load_vocab, stream_text
from transformer.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, UnknownCharacterError, VocabularyTooLargeError

BETA1 = 0.9  # nanoGPT's; only beta2 is a flag
# independent random streams drawn from one seed: initial weights and dropout, batches, evaluation
MODEL_STREAM, BATCH_STREAM, EVAL_STREAM = 0, 1, 2
TRACE_FILE = "trace.json"  # --profile-steps: Chrome trace-event JSON of the first steps
# the model's shape: a resumed run must keep it
ARCHITECTURE_FLAGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "tokenizer", "vocab_size", "init_from")
TOKENIZERS = ("char", "bpe")
BPE_VOCAB_SIZE = 512  # --vocab-size when --tokenizer bpe is given without it


class ConfigError(ValueError):
    """A training flag has a value that makes no sense."""


# what bad input raises: the command line prints it as one line
BAD_INPUT = (ConfigError, CorpusError, ckpt.CheckpointError, UnknownCharacterError)


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


def eval_rng(seed: int, it: int) -> np.random.Generator:
    """The evaluation batches at iteration `it`: the same whatever happened before (resuming included)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(EVAL_STREAM, it)))


def write_log(path: Path, history: list[dict[str, float]]) -> None:
    """log.csv: a header, then one row per evaluation (val_bpc is empty in rows logged before it existed)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["iter", "train_loss", "val_loss", "lr", "val_bpc"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    ckpt.atomic_write_text(path, buffer.getvalue())


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
    ckpt.atomic_write_bytes(path, buffer.getvalue())


@contextmanager
def stop_on_ctrl_c(say: Callable[[str], None]):
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
        say("stopping after this iteration (Ctrl-C again to stop at once)")

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


# ---------------------------------------------------------------- the run


@dataclass
class Run:
    """One training run: its data, model and optimizer, and the bookkeeping that resuming restores."""

    config: TrainConfig
    run_dir: Path
    corpus: Corpus
    tokenizer: Tokenizer
    splits: dict[str, np.ndarray]  # "train" and "val" token ids (N,)
    model: GPT
    optimizer: Any
    schedule: CosineWithWarmup
    model_rng: np.random.Generator  # initial weights, then dropout masks
    batch_rng: np.random.Generator  # training batches
    iter: int = 0  # the next iteration to run
    last_eval: int = -1
    best_val: float = math.inf
    history: list[dict[str, float]] = field(default_factory=list)


def setup_process(ranks: World) -> None:
    """Process-wide settings that make training fast; the trainer's business, never an import's.

    The ranks on one machine share its cores: each runs its BLAS on cores / ranks threads, so
    N processes never start more threads than there are cores.
    """
    keep_freed_memory()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threadpool_limits(limits=max(1, cores // ranks.ranks_on_this_machine()), user_api="blas")


def make_tokenizer(config: TrainConfig, text: str, train_text: str, echo: Callable[[str], None]) -> Tokenizer:
    """The tokenizer of a new run: the corpus's characters, or BPE merges learned from the training split alone."""
    if config.tokenizer == "char":
        return CharTokenizer.from_text(text)
    started = time.perf_counter()
    try:
        tokenizer = BPETokenizer.train(train_text, config.vocab_size)
    except VocabularyTooLargeError as e:
        raise ConfigError(f"--vocab-size {config.vocab_size} is too large for this corpus: {e}") from None
    echo(f"learned {len(tokenizer.merges)} BPE merges from the training split in {time.perf_counter() - started:.1f} s")
    return tokenizer


def adopt_pretrained(config: TrainConfig) -> tuple[GPTConfig, dict[str, np.ndarray], Tokenizer]:
    """The model config, weights and tokenizer `--init-from` names; the run's architecture flags
    become the pretrained model's, so config.json says what is trained and --resume checks it."""
    from transformer.huggingface import finetuning_start  # the Hugging Face formats, only when asked for

    model_config, state, tokenizer = finetuning_start(config.init_from, config.block_size, config.dropout)
    config.n_layer, config.n_head, config.n_embd, config.bias = (
        model_config.n_layer, model_config.n_head, model_config.n_embd, model_config.bias
    )  # fmt: skip
    config.tokenizer = "bpe" if isinstance(tokenizer, BPETokenizer) else "char"
    config.vocab_size = tokenizer.vocab_size if config.tokenizer == "bpe" else None
    return model_config, state, tokenizer


def training_memory_bytes(model: GPTConfig, batch_size: int) -> dict[str, int]:
    """A lower estimate of the float32 memory training holds at once, by part: bytes.

    From the second step on, the weights and AdamW's two moments stay (12 bytes a parameter)
    while a forward pass builds its graph: about 15 values of n_embd per token in each block
    (the layer norms, q, k, v, the attention and MLP outputs, the MLP's 4·n_embd hidden values
    before and after GELU), the attention weights (n_head · block_size per token) and the
    logits (vocab_size per token). The gradients come as the graph is freed and are not counted.
    """
    C, L, T = model.n_embd, model.n_layer, model.block_size
    vectors = (13 * L + 2) * C if model.bias else (2 * L + 1) * C  # biases and layer-norm weights
    parameters = model.vocab_size * C + T * C + L * 12 * C * C + vectors  # the lm_head is wte, tied
    per_token = L * (15 * C + model.n_head * T) + model.vocab_size
    return {"weights and AdamW moments": 12 * parameters, "activations": 4 * batch_size * T * per_token}


def check_fits_in_memory(model: GPTConfig, batch_size: int) -> None:
    """ConfigError, before anything is allocated, when a training step cannot fit in this machine's memory."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows) or no such name: nothing to compare with
        return
    parts = training_memory_bytes(model, batch_size)
    if sum(parts.values()) > physical:
        spelled = ", ".join(f"{name} {size:,}" for name, size in parts.items())
        raise ConfigError(
            f"this model needs at least {sum(parts.values()):,} bytes to train ({spelled}), more than this "
            f"machine's {physical:,} bytes of memory; use a smaller --n-layer, --n-embd, --block-size or --batch-size"
        )


def prepare_run(
    config: TrainConfig,
    resume: bool,
    corpus: Corpus | None,
    warn: Callable[[str], None],
    echo: Callable[[str], None],
    ranks: World,
) -> Run:
    """Read the corpus (and, resuming, the saved run and its tokenizer), build model and optimizer; write nothing.

    Every check on the input happens here, so bad input ends the run before a file is touched.
    """
    if config.batch_size < ranks.size:
        raise ConfigError(
            f"--batch-size {config.batch_size} cannot be shared by {ranks.size} ranks: "
            "each needs at least one row; use fewer ranks or a larger batch"
        )
    run_dir = Path(config.out)
    if resume:
        saved_arrays, saved = ckpt.load_train_state(run_dir)
        tokenizer = load_vocab(run_dir / ckpt.VOCAB_FILE)
        ckpt.check_resume_fits(run_dir, config.model_config(tokenizer.vocab_size), saved_arrays)
    corpus = corpus or resolve_corpus(config.data, warn=warn)
    if resume:
        if saved.get("corpus_sha256") != corpus.sha256:
            raise ckpt.CheckpointError(
                f"the corpus ({corpus.source}) is not the text the run in {run_dir} was trained on; "
                "pass the same --data to resume"
            )
    train_text, val_text = split_train_val(corpus.text)
    if config.init_from and not resume:
        pretrained_config, pretrained_state, tokenizer = adopt_pretrained(config)
    elif not resume:
        tokenizer = make_tokenizer(config, corpus.text, train_text, echo)
    train_ids = tokenizer.encode(train_text).astype(np.int32)
    val_ids = tokenizer.encode(val_text).astype(np.int32)
    check_long_enough(train_ids, val_ids, config.block_size, "characters" if config.tokenizer == "char" else "tokens")
    check_fits_in_memory(config.model_config(tokenizer.vocab_size), config.batch_size)

    model_rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(MODEL_STREAM,)))
    batch_rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(BATCH_STREAM,)))
    model_config = config.model_config(tokenizer.vocab_size)
    if config.init_from:  # the pretrained model's own config: its GELU and epsilon are no training flags
        model_config = pretrained_config if not resume else ckpt.read_model_config(run_dir / ckpt.CONFIG_FILE)
    model = GPT(model_config, rng=model_rng)
    if config.init_from and not resume:
        model.load_state_dict(pretrained_state, strict=True)
    optimizer = model.configure_optimizers(config.weight_decay, config.learning_rate, (BETA1, config.beta2))
    schedule = CosineWithWarmup(
        optimizer, config.learning_rate, config.min_lr, config.warmup_iters, config.lr_decay_iters
    )
    run = Run(
        config, run_dir, corpus, tokenizer, {"train": train_ids, "val": val_ids},
        model, optimizer, schedule, model_rng, batch_rng,
    )  # fmt: skip
    if resume:
        restore_run(run, saved_arrays, saved)
    # each rank draws its own dropout masks: rank r's stream is rank 0's jumped r times ahead
    if ranks.rank:
        model_rng.bit_generator.state = model_rng.bit_generator.jumped(ranks.rank).state
    return run


def restore_run(run: Run, saved_arrays: dict[str, np.ndarray], saved: dict[str, Any]) -> None:
    """Put the saved training state into `run`: weights, moments, generators, iteration, history."""
    try:
        _restore_state(
            run.model, run.optimizer, saved_arrays, saved["optimizer"], str(run.run_dir / ckpt.STATE_ARRAYS_FILE)
        )
        run.model_rng.bit_generator.state = saved["rng"]["model"]
        run.batch_rng.bit_generator.state = saved["rng"]["batches"]
        run.iter, run.last_eval, run.history = int(saved["iter"]), int(saved["last_eval_iter"]), saved["history"]
        run.best_val = math.inf if saved["best_val_loss"] is None else float(saved["best_val_loss"])
    except ckpt.CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        bad = run.run_dir / ckpt.STATE_JSON_FILE
        raise ckpt.CheckpointError(f"{bad} is not a usable training state ({e})") from None
    if run.iter > run.config.max_iters:
        raise ConfigError(f"--max-iters {run.config.max_iters} is below the iteration the run reached, {run.iter}")


def open_run_dir(run: Run, resume: bool, echo: Callable[[str], None]) -> None:
    """Write config.json and the vocabulary (resuming, the log and plot too); say what is trained on what."""
    if resume:
        echo(f"resuming {run.run_dir} at iteration {run.iter} of {run.config.max_iters}")
    elif (run.run_dir / ckpt.CKPT_FILE).exists():
        echo(f"starting a new run in {run.run_dir}: its checkpoint will be replaced (--resume continues it instead)")
    ckpt.atomic_write_json(
        run.run_dir / ckpt.CONFIG_FILE,
        {"model": dataclasses.asdict(run.model.config), "train": dataclasses.asdict(run.config)},
    )
    run.tokenizer.save(run.run_dir / ckpt.VOCAB_FILE)
    if resume:  # nothing reads the log and the plot: draw them again from the saved history
        write_log(run.run_dir / ckpt.LOG_FILE, run.history)
        plot_losses(run.run_dir / ckpt.PLOT_FILE, run.history)
    echo(
        f"corpus: {run.corpus.source}, {len(run.corpus.text):,} characters; {run.tokenizer!r}, "
        f"{sum(map(len, run.splits.values())):,} tokens; "
        f"model: {run.model.num_parameters():,} parameters"
    )


def save_state(run: Run, it: int) -> None:
    """The training state at the start of iteration `it`, for --resume."""
    arrays, optimizer_numbers = _state_arrays(run.model, run.optimizer)
    info = {
        "iter": it,
        "last_eval_iter": run.last_eval,
        "best_val_loss": None if math.isinf(run.best_val) else run.best_val,
        "history": run.history,
        "corpus_sha256": run.corpus.sha256,
        "rng": {"model": run.model_rng.bit_generator.state, "batches": run.batch_rng.bit_generator.state},
        "optimizer": optimizer_numbers,
    }
    ckpt.save_train_state(run.run_dir, arrays, info)


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
            ckpt.atomic_write_text(self.trace_path, json.dumps(self.profiler.trace()))
            if len(self.seconds) == self.profile_steps:
                tqdm.write(f"wrote {self.trace_path}: every op of the first {self.profile_steps} steps (for Perfetto)")
        ms = 1000 * self.seconds[-1]
        self.smoothed_ms = ms if math.isnan(self.smoothed_ms) else 0.9 * self.smoothed_ms + 0.1 * ms
        return self.smoothed_ms

    def mean_ms(self) -> float:
        return 1000 * float(np.mean(self.seconds)) if self.seconds else math.nan


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


@contextmanager
def opened_run(config: TrainConfig, resume: bool, corpus: Corpus | None, warn, echo, ranks: World):
    """Check the input, lock the run directory, build the run and write its config; unlock at the end.

    Bad input on any rank ends every rank the same way, before a file is written. Rank 0, the
    one that writes, holds the directory's lock (a second trainer on it gets a CheckpointError
    naming this one's pid) until the block ends, however it ends.
    """
    with contextlib.ExitStack() as lock:

        def check_lock_and_prepare() -> Run:
            config.validate()
            if resume and not Path(config.out).is_dir():  # checked before the lock would create it
                raise ckpt.CheckpointError(f"no run in {config.out} to resume")
            if ranks.is_main:
                lock.enter_context(locked_run_dir(ckpt.check_writable_dir(config.out)))
            return prepare_run(config, resume, corpus, warn, echo, ranks)

        run = ranks.agree(check_lock_and_prepare, BAD_INPUT)
        if ranks.is_main:
            open_run_dir(run, resume, echo)  # from here on the run writes: everything above has been checked
        yield run


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
    """Train (or, with resume=True, continue) the run in config.out; return a summary.

    `corpus` defaults to the one `resolve_corpus(config.data)` finds. `progress` shows the tqdm
    bar (None: only on a terminal). `echo` and `warn` take the lines for stdout and stderr.
    `sample_chars` characters of generated text are printed at the end. `profile_steps` > 0
    records the first that many training steps with `minigrad.profile` into trace.json in the
    run directory (Chrome trace-event JSON: open it in Perfetto). Raises ConfigError,
    CorpusError or CheckpointError (before writing anything) for bad input, and
    TrainingInterrupted after saving when Ctrl-C stopped the run. The run directory is locked
    for the whole run; a file that cannot be written stops the run with a RunWriteError, the
    previous files whole.

    Under `mpiexec -n N` every rank calls this: each takes its rows of every batch, the
    gradients are summed across ranks each step (transformer/distributed.py), and rank 0
    alone locks and writes the run directory and prints.
    """
    ranks = world()  # one process, or every rank of `mpiexec -n N`
    echo = echo or (lambda line: print(line, flush=True))  # flushed: lines arrive in time through a pipe
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    if not ranks.is_main:  # the other ranks work quietly
        echo = warn = say_nothing
        progress, sample_chars, profile_steps = False, 0, 0
    setup_process(ranks)
    with opened_run(config, resume, corpus, warn, echo, ranks) as run:
        model, optimizer, schedule = run.model, run.optimizer, run.schedule
        params, train_ids = list(model.parameters()), run.splits["train"]
        rows = ranks.shard(config.batch_size)  # this rank's rows of each batch: all of them on one process
        share = (rows.stop - rows.start) / config.batch_size  # its weight in the batch's mean loss

        start_iter, timer, started = run.iter, StepTimer(profile_steps, run.run_dir / TRACE_FILE), time.perf_counter()
        bar = tqdm(
            total=config.max_iters, initial=start_iter, disable=None if progress is None else not progress,
            unit="it", dynamic_ncols=True, file=sys.stderr,
        )  # fmt: skip
        stopping = False
        model.train()
        with bar, stop_on_ctrl_c(say=warn) as stop_requested:
            for it in range(start_iter, config.max_iters + 1):
                if stopping:
                    if ranks.is_main:
                        save_state(run, it)
                    raise TrainingInterrupted(it, run.run_dir)
                lr = schedule.step(it)
                if due_for_evaluation(run, it):
                    evaluate_and_save(run, it, lr, ranks)
                if it == config.max_iters:
                    break

                timer.start()
                x, y = get_batch(train_ids, config.batch_size, config.block_size, run.batch_rng)  # (B, T) each
                _, loss = model(x[rows], y[rows])
                optimizer.zero_grad()
                loss.backward()
                # the whole batch's gradient, on every rank; a Ctrl-C on any rank stops them all after this step
                batch_loss, stop_votes = ranks.sum_gradients(
                    params, share, [share * loss.item(), float(stop_requested.is_set())]
                )
                stopping = stop_votes > 0
                if config.grad_clip > 0:
                    clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                ms_per_iter = timer.stop()
                bar.set_postfix(
                    loss=f"{batch_loss:.4f}", lr=f"{lr:.2e}", ms_per_iter=f"{ms_per_iter:.0f}", refresh=False
                )
                bar.update()

        return finish(run, timer, time.perf_counter() - started, start_iter, sample_chars, echo)
