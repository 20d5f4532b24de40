"""A training run: its text, tokenizer, model and optimizer, built new or resumed from its directory.

`opened_run` is what the trainer calls. It checks every input (the flags, the corpus, a
saved run and its tokenizer), locks the run directory, builds the run, and only then writes
its config and vocabulary, so bad input ends the run before a file is touched. A new run in
a directory that holds a run replaces it at its own first save, config and vocabulary
together with the weights, so config.json always describes the weights beside it.
`save_state` and `restore_run` carry the run's bookkeeping to and from the training state on
disk (transformer/train_state.py).

What resuming needs is exactly what moves during training: the weights, the optimizer's
moments and step counts, the iteration, and the states of the two random generators that
training draws from (one picks the batches, one the model's dropout masks). Evaluation
batches come from a generator seeded by (seed, iteration), so evaluating never moves the
training generators and a resumed run takes the very same steps as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from minigrad.optim import LRScheduler
from transformer import checkpoint as ckpt
from transformer import train_state
from transformer.atomic import atomic_write_files, check_writable_dir, json_bytes
from transformer.data import Corpus, CorpusError, check_long_enough, resolve_corpus, split_train_val
from transformer.distributed import World
from transformer.gpt import GPT, GPTConfig, parameter_shapes
from transformer.rundir import locked_run_dir
from transformer.runlog import plot_losses, write_log
from transformer.speedrun import make_optimizer, make_schedule
from transformer.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, UnknownCharacterError, VocabularyTooLargeError

if TYPE_CHECKING:
    from transformer.train import TrainConfig

Say = Callable[[str], None]  # where a line of the run's output goes: stdout, stderr, or nowhere
# independent random streams drawn from one seed: initial weights and dropout, batches, evaluation
MODEL_STREAM, BATCH_STREAM, EVAL_STREAM = 0, 1, 2


class ConfigError(ValueError):
    """A training flag has a value that makes no sense."""


# what bad input raises: the command line prints it as one line
BAD_INPUT = (ConfigError, CorpusError, ckpt.CheckpointError, UnknownCharacterError)


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
    schedule: LRScheduler
    model_rng: np.random.Generator  # initial weights, then dropout masks
    batch_rng: np.random.Generator  # training batches
    iter: int = 0  # the next iteration to run
    last_eval: int = -1
    best_val: float = math.inf
    history: list[dict[str, float]] = field(default_factory=list)
    reached_target: bool = False  # the whole validation split reached config.target_bpc: stop
    pending: dict[Path, bytes] = field(default_factory=dict)  # a new run's config and vocabulary, for its first save


def seeded_rng(seed: int, *stream: int) -> np.random.Generator:
    """The generator of one of the run's independent streams (MODEL_STREAM, ...) of `seed`."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream))


def eval_rng(seed: int, it: int) -> np.random.Generator:
    """The evaluation batches at iteration `it`: the same whatever happened before (resuming included)."""
    return seeded_rng(seed, EVAL_STREAM, it)


# ---------------------------------------------------------------- building a run


def make_tokenizer(config: TrainConfig, text: str, train_text: str, echo: Say) -> Tokenizer:
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


def build_run(
    config: TrainConfig,
    model_config: GPTConfig,
    corpus: Corpus,
    tokenizer: Tokenizer,
    splits: dict[str, np.ndarray],
    weights: dict[str, np.ndarray] | None = None,
) -> Run:
    """A new run: the model initialised from the seed (or holding `weights`, a fine-tuning start),
    the optimizer and learning-rate schedule the flags name (AdamW and a cosine by default)."""
    model_rng, batch_rng = seeded_rng(config.seed, MODEL_STREAM), seeded_rng(config.seed, BATCH_STREAM)
    model = GPT(model_config, rng=model_rng)
    if weights is not None:
        model.load_state_dict(weights, strict=True)
    optimizer = make_optimizer(model, config)
    schedule = make_schedule(optimizer, config)
    return Run(config, Path(config.out), corpus, tokenizer, splits, model, optimizer, schedule, model_rng, batch_rng)


def parameter_count(model: GPTConfig) -> int:
    """The number of parameters of GPT(model), from the GPT's own list of shapes; a tied head is
    the token embedding under a second name, counted once."""
    shapes = parameter_shapes(model)
    if model.tie_embeddings:
        del shapes["lm_head.weight"]
    return sum(math.prod(shape) for shape in shapes.values())


def training_memory_bytes(model: GPTConfig, batch_size: int) -> dict[str, int]:
    """A lower estimate of the float32 memory training holds at once, by part: bytes.

    From the second step on, the weights and AdamW's two moments stay (12 bytes a parameter)
    while a forward pass builds its graph: about 15 values of n_embd per token in each block
    (the layer norms, q, k, v, the attention and MLP outputs, the MLP's 4·n_embd hidden values
    before and after GELU), the attention weights (n_head · block_size per token) and the
    logits (vocab_size per token). The gradients come as the graph is freed and are not counted.
    The parameters are counted from `parameter_shapes` (the GPT's own list) for one and two
    layers: the count grows by the same block with every layer, so an absurd --n-layer is
    refused at once, without listing its layers.
    """
    C, L, T = model.n_embd, model.n_layer, model.block_size
    one, two = (parameter_count(dataclasses.replace(model, n_layer=n)) for n in (1, 2))
    parameters = one + (L - 1) * (two - one)  # one layer's parameters, then a block per further layer
    per_token = L * (15 * C + model.n_head * T) + model.vocab_size
    return {"weights and AdamW moments": 12 * parameters, "activations": 4 * batch_size * T * per_token}


def check_paths(config: TrainConfig) -> None:
    """ConfigError unless --out, and --data and --init-from when given, are paths: a saved config.json
    may hold anything in their place, and an empty path would be the current directory."""
    from transformer.train_config import flag  # here: train_config imports this module

    for name in ("out", "data", "init_from"):
        value = getattr(config, name)
        if not (isinstance(value, str) and value) and (value is not None or name == "out"):
            raise ConfigError(f"{flag(name)} must be a path, got {value!r}")


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


def prepare_run(config: TrainConfig, resume: bool, corpus: Corpus | None, warn: Say, echo: Say, ranks: World) -> Run:
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
        saved_arrays, saved = train_state.load_train_state(run_dir)
        tokenizer = ckpt.load_vocab(run_dir / ckpt.VOCAB_FILE)
        if config.init_from:  # the pretrained model's own config: its GELU and epsilon are no training flags
            model_config = ckpt.read_model_config(run_dir / ckpt.CONFIG_FILE)
        else:
            model_config = config.model_config(tokenizer.vocab_size)
        train_state.check_resume_fits(run_dir, model_config, saved_arrays)
    corpus = corpus or resolve_corpus(config.data, warn=warn)
    if resume and saved.get("corpus_sha256") != corpus.sha256:
        raise ckpt.CheckpointError(
            f"the corpus ({corpus.source}) is not the text the run in {run_dir} was trained on; "
            "pass the same --data to resume"
        )
    train_text, val_text = split_train_val(corpus.text)
    weights = None
    if config.init_from and not resume:
        model_config, weights, tokenizer = adopt_pretrained(config)
    elif not resume:
        tokenizer = make_tokenizer(config, corpus.text, train_text, echo)
        model_config = config.model_config(tokenizer.vocab_size)
    splits = {
        "train": tokenizer.encode(train_text).astype(np.int32),
        "val": tokenizer.encode(val_text).astype(np.int32),
    }
    check_long_enough(
        splits["train"], splits["val"], config.block_size, "characters" if config.tokenizer == "char" else "tokens"
    )
    check_fits_in_memory(model_config, config.batch_size)
    run = build_run(config, model_config, corpus, tokenizer, splits, weights)
    if resume:
        restore_run(run, saved_arrays, saved)
    # each rank draws its own dropout masks: rank r's stream is rank 0's jumped r times ahead
    if ranks.rank:
        run.model_rng.bit_generator.state = run.model_rng.bit_generator.jumped(ranks.rank).state
    return run


# ---------------------------------------------------------------- the training state


def restore_run(run: Run, saved_arrays: dict[str, np.ndarray], saved: dict[str, Any]) -> None:
    """Put the saved training state into `run`: weights, moments, generators, iteration, history."""
    try:
        source = str(run.run_dir / ckpt.STATE_ARRAYS_FILE)
        train_state.unpack_state(run.model, run.optimizer, saved_arrays, saved["optimizer"], source)
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


def save_state(run: Run, it: int, also: dict[Path, bytes] | None = None) -> None:
    """The training state at the start of iteration `it`, for --resume; `also`: files renamed into
    place with it (the weights of an improved evaluation)."""
    arrays, optimizer_numbers = train_state.pack_state(run.model, run.optimizer)
    info = {
        "iter": it,
        "last_eval_iter": run.last_eval,
        "best_val_loss": None if math.isinf(run.best_val) else run.best_val,
        "history": run.history,
        "corpus_sha256": run.corpus.sha256,
        "rng": {"model": run.model_rng.bit_generator.state, "batches": run.batch_rng.bit_generator.state},
        "optimizer": optimizer_numbers,
    }
    train_state.save_train_state(run.run_dir, arrays, info, {**run.pending, **(also or {})})
    run.pending = {}


# ---------------------------------------------------------------- the run directory


def open_run_dir(run: Run, resume: bool, echo: Say) -> None:
    """Write config.json and the vocabulary (resuming, the log and plot too); say what is trained on what.

    A new run in a directory that holds another keeps them for its first save instead, which
    writes them with its weights and training state: stopped before that, it leaves the old run whole.
    """
    files = {
        run.run_dir / ckpt.CONFIG_FILE: json_bytes(
            {"model": dataclasses.asdict(run.model.config), "train": dataclasses.asdict(run.config)}
        ),
        run.run_dir / ckpt.VOCAB_FILE: run.tokenizer.to_json().encode("utf-8"),
    }
    if resume:
        echo(f"resuming {run.run_dir} at iteration {run.iter} of {run.config.max_iters}")
    elif any((run.run_dir / name).exists() for name in (ckpt.CKPT_FILE, ckpt.STATE_JSON_FILE)):
        echo(
            f"starting a new run in {run.run_dir}: the run there is replaced at this one's first save "
            "(--resume continues it instead)"
        )
        run.pending = files
        files = {}
    atomic_write_files(files)
    if resume:  # nothing reads the log and the plot: draw them again from the saved history
        write_log(run.run_dir / ckpt.LOG_FILE, run.history)
        plot_losses(run.run_dir / ckpt.PLOT_FILE, run.history)
    echo(
        f"corpus: {run.corpus.source}, {len(run.corpus.text):,} characters; {run.tokenizer!r}, "
        f"{sum(map(len, run.splits.values())):,} tokens; "
        f"model: {run.model.num_parameters():,} parameters"
    )


@contextmanager
def opened_run(
    config: TrainConfig, resume: bool, corpus: Corpus | None, warn: Say, echo: Say, ranks: World
) -> Iterator[Run]:
    """Check the input, lock the run directory, build the run and write its config; unlock at the end.

    Bad input on any rank ends every rank the same way, before a file is written (a new run's
    directory is not even created). Rank 0, the one that writes, holds the directory's lock (a
    second trainer on it gets a CheckpointError naming this one's pid) until the block ends,
    however it ends.
    """
    with contextlib.ExitStack() as lock:

        def check_lock_and_prepare() -> Run:
            check_paths(config)
            config.validate()
            if resume and not Path(config.out).is_dir():  # checked before the lock would create it
                raise ckpt.CheckpointError(f"no run in {config.out} to resume")
            if ranks.is_main and resume:  # locked before the saved state is read: no trainer is writing it
                lock.enter_context(locked_run_dir(check_writable_dir(config.out)))
            run = prepare_run(config, resume, corpus, warn, echo, ranks)
            if ranks.is_main and not resume:
                lock.enter_context(locked_run_dir(check_writable_dir(config.out)))
            return run

        run = ranks.agree(check_lock_and_prepare, BAD_INPUT)
        if ranks.is_main:
            open_run_dir(run, resume, echo)  # from here on the run writes: everything above has been checked
        yield run


@contextmanager
def stop_on_ctrl_c(say: Say) -> Iterator[threading.Event]:
    """Turn Ctrl-C (or SIGTERM, a polite kill) into a request the loop reads at the start of the next iteration.

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

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for signum, earlier in previous.items():
            signal.signal(signum, earlier)
