"""`minigrad-gpt train | sample | graph | export` (also `python -m transformer ...`).

    minigrad-gpt train --out runs/shakespeare-char            # nanoGPT's CPU recipe, ~2000 steps
    minigrad-gpt train --out runs/shakespeare-char --resume   # continue an interrupted run
    minigrad-gpt train --out runs/shakespeare-bpe --tokenizer bpe --vocab-size 512   # on BPE tokens
    minigrad-gpt train --recipe speedrun --out runs/speedrun   # nanoGPT's quality, sooner (docs/training.md)
    minigrad-gpt sample --out runs/shakespeare-char --start "ROMEO:" --temperature 0.8
    minigrad-gpt train --out runs/gpt2-shakespeare --init-from path/to/gpt2   # fine-tune GPT-2 (Hugging Face layout)
    minigrad-gpt export --out runs/shakespeare-char --to hf/shakespeare-char  # for transformers' from_pretrained
    minigrad-gpt graph --out gpt.svg                           # the computation graph of a small GPT
    minigrad-gpt graph --html step.html                        # ... and its backward, step by step
    mpiexec -n 4 minigrad-gpt train --out runs/shakespeare-char  # 4 ranks share every batch (data parallel)

Bad input (a missing, empty or non-UTF-8 corpus, one shorter than a block, a corrupt or
mismatched checkpoint or tokenizer file, characters the vocabulary lacks, a directory that
cannot be written, flag values out of range, a BPE vocabulary larger than the text supports,
a run directory another trainer is writing) ends with one line on stderr and exit status 2,
before anything in the run directory is written. So does a write that fails during training
(disk full, file too large, permission or file system lost), or a stdout whose reader went
away (`| head`): the run stops, and the files it had written before stay whole. Under
mpiexec every rank ends the same way, and rank 0 alone prints the line.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from transformer import checkpoint as ckpt
from transformer.atomic import atomic_write_text
from transformer.checkpoint import load_run
from transformer.distributed import DistributedError, launched_rank, launched_size, world
from transformer.gpt import ACTIVATIONS, NORMS
from transformer.run import BAD_INPUT
from transformer.sample import stream_text
from transformer.speedrun import OPTIMIZERS, RECIPES, SCHEDULES
from transformer.tokenizer import UnknownCharacterError
from transformer.train import TrainingInterrupted, train
from transformer.train_config import BPE_VOCAB_SIZE, TOKENIZERS, TrainConfig, flag, resume_config, spelled

PROG = "minigrad-gpt"
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention for a run stopped by Ctrl-C


class UsageError(Exception):
    """Bad input found by the command line itself; printed as one line."""


class OutputClosed(Exception):
    """Whoever read stdout stopped reading (`minigrad-gpt sample | head`); printed as one line."""

    def __init__(self, then: str = ""):
        super().__init__(f"stdout was closed before the output ended (a broken pipe){then}")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2), not usage + message."""

    def error(self, message: str):
        said_once = launched_rank() == 0  # under mpiexec every rank parses the same flags
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n" if said_once else None)

    def print_help(self, file=None):
        if launched_rank() == 0:  # under mpiexec every rank parses --help; the launcher's rank 0 prints it
            super().print_help(file)


def _number(kind, low=None, high=None, low_open=False, high_open=False, optional=False):
    """An argparse type: a finite number of `kind` in the given range, else a message saying which."""

    def parse(text: str):
        if optional and text.lower() == "none":
            return None
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
            raise argparse.ArgumentTypeError(f"must lie in {span}, got {text}")
        return value

    return parse


TRAIN_FLAG_TYPES = {
    "n_layer": int, "n_head": int, "n_embd": int, "block_size": int, "batch_size": int, "max_iters": int,
    "lr_decay_iters": int, "learning_rate": float, "min_lr": float, "warmup_iters": int, "beta2": float,
    "weight_decay": float, "grad_clip": float, "dropout": float, "eval_interval": int, "eval_iters": int, "seed": int,
    "muon_lr": float, "warmdown_frac": float, "logit_softcap": float,
}  # fmt: skip
# the later recipes' switches (docs/training.md, "The speedrun"): on/off, and one of a few choices
TRAIN_SWITCHES = {
    "rotary": "rotary position embeddings in attention instead of a learned position table",
    "qk_norm": "RMS-normalise each head's queries and keys before attention",
    "tie_embeddings": "the output layer shares the token embedding's weight (nanoGPT's)",
}
TRAIN_CHOICES = {
    "norm": (NORMS, "the blocks' normalisation"),
    "activation": (ACTIVATIONS, "the MLP's nonlinearity; relu2 is relu(x)²"),
    "optimizer": (OPTIMIZERS, "muon: Muon for the blocks' matrices, AdamW (at --learning-rate) for the rest"),
    "lr_schedule": (SCHEDULES, "cosine: nanoGPT's decay; trapezoid: flat, then a linear warm-down"),
}
TRAIN_FLAG_HELP = {
    "max_iters": "total number of training steps; with --resume, the run continues up to it",
    "lr_decay_iters": "the step where the decay reaches --min-lr, fixed when the run starts: "
    "--resume to a larger --max-iters keeps it unless it is given again",
    "grad_clip": "clip the gradient norm to this (0: no clipping)",
    "eval_interval": "estimate train and validation loss every this many steps",
    "eval_iters": "batches per loss estimate",
    "muon_lr": "Muon's peak learning rate (with --optimizer muon)",
    "warmdown_frac": "the share of the run the trapezoid schedule spends decaying",
    "logit_softcap": "c > 0 bounds the logits to c·tanh(logits / c); 0 is off",
}


def add_recipe_flags(p: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """The later recipes' switches and choices, the stopping target, and --recipe itself."""
    for name, help_text in TRAIN_SWITCHES.items():
        p.add_argument(
            flag(name), action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
            help=f"{help_text} (default: {spelled(name, getattr(defaults, name))})",
        )  # fmt: skip
    for name, (choices, help_text) in TRAIN_CHOICES.items():
        p.add_argument(
            flag(name), choices=choices, default=argparse.SUPPRESS,
            help=f"{help_text} (default: {getattr(defaults, name)})",
        )  # fmt: skip
    p.add_argument(
        "--target-bpc", type=_number(float, 0, low_open=True), default=argparse.SUPPRESS,
        help="stop once the whole validation split reaches this many bits per character (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--recipe", choices=tuple(RECIPES), default=argparse.SUPPRESS,
        help="start from a recipe's flags (the flags given override them); speedrun: nanoGPT's quality, sooner",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Train a GPT on minigrad and sample from it.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,graph,export}")
    defaults = TrainConfig()
    add_train_command(commands, defaults)

    p = commands.add_parser("sample", help="print text generated by a trained model")
    p.add_argument("--out", default=defaults.out, help=f"run directory (default: {defaults.out})")
    p.add_argument("--start", default="\n", help="the text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=_number(int, 0), default=500, help="tokens per sample (default: 500)")
    p.add_argument(
        "--temperature", type=_number(float, 0), default=0.8, help="softmax temperature, 0 is greedy (default: 0.8)"
    )
    p.add_argument("--top-k", type=_number(int, 1, optional=True), default=None, help="sample among the k likeliest")
    p.add_argument(
        "--top-p", type=_number(float, 0, 1, low_open=True, optional=True), default=None, help="nucleus sampling mass"
    )
    p.add_argument("--num-samples", type=_number(int, 1), default=1, help="how many samples (default: 1)")
    p.add_argument("--seed", type=_number(int, 0), default=1337, help="random seed (default: 1337)")

    p = commands.add_parser("export", help="write a run's model and tokenizer in the Hugging Face layout")
    p.add_argument("--out", default=defaults.out, help=f"run directory (default: {defaults.out})")
    p.add_argument("--to", required=True, help="directory for config.json, model.safetensors and tokenizer.json")

    p = commands.add_parser("graph", help="draw the computation graph of a small GPT's forward and loss")
    p.add_argument("--out", help="output file: .svg, .png or .pdf (needs Graphviz's dot), or .dot")
    p.add_argument("--html", help="output file: the backward explorer of one training step, one offline .html page")
    return parser


def add_train_command(commands, defaults: TrainConfig) -> None:
    """The train command's flags. Each is SUPPRESSed when absent, so the flags actually given
    can override a resumed run's."""
    p = commands.add_parser("train", help="train a model (or continue one with --resume)")
    p.add_argument("--data", default=argparse.SUPPRESS, help="a UTF-8 text file (default: Tiny Shakespeare)")
    p.add_argument("--out", default=argparse.SUPPRESS, help=f"run directory (default: {defaults.out})")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its saved state")
    for name, kind in TRAIN_FLAG_TYPES.items():
        default = "--max-iters" if name == "lr_decay_iters" else getattr(defaults, name)
        help_text = TRAIN_FLAG_HELP.get(name, name.replace("_", " "))
        p.add_argument(
            flag(name), type=_number(kind), default=argparse.SUPPRESS, help=f"{help_text} (default: {default})"
        )
    p.add_argument(
        "--bias",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="biases in the Linears and LayerNorms, as GPT-2 (default: --bias; nanoGPT's train.py uses --no-bias)",
    )
    add_recipe_flags(p, defaults)
    p.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default=argparse.SUPPRESS,
        help="char: one token per character; bpe: byte-level BPE learned from the training split (default: char)",
    )
    p.add_argument(
        "--vocab-size",
        type=_number(int),
        default=argparse.SUPPRESS,
        help=f"BPE vocabulary: 256 byte tokens plus the merges, at least 256 (default: {BPE_VOCAB_SIZE})",
    )
    p.add_argument(
        "--init-from",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="fine-tune GPT-2 from a Hugging Face directory (config.json, model.safetensors, its tokenizer) "
        "or hub name; the model's sizes and tokenizer replace --n-layer, --n-head, --n-embd, --bias, --tokenizer",
    )
    p.add_argument(
        "--profile-steps",
        type=_number(int, 0),
        default=0,
        help="record every op of the first N steps into trace.json in the run directory (opens in Perfetto)",
    )


# ---------------------------------------------------------------- commands


def run_train(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items() if k not in ("command", "resume", "profile_steps")}
    if args.resume:
        if "recipe" in given:
            raise UsageError("--recipe starts a new run; --resume continues with the saved run's flags")
        config = world().agree(lambda: resume_config(given.get("out", TrainConfig.out), given), BAD_INPUT)
    else:
        config = TrainConfig.from_recipe(given.pop("recipe", None), given)
    clashing = [name for name in ("n_layer", "n_head", "n_embd", "bias", "tokenizer", "vocab_size") if name in given]
    if "init_from" in given and config.recipe:
        raise UsageError("--recipe trains a model of its own design; --init-from fine-tunes a pretrained one: give one")
    if "init_from" in given and clashing:
        raise UsageError(f"{flag(clashing[0])} comes from the model --init-from names; leave it out")
    try:
        train(config, resume=args.resume, profile_steps=args.profile_steps)
    except TrainingInterrupted as stop:
        if launched_rank() != 0:
            return EXIT_INTERRUPTED
        print(
            f"{PROG}: interrupted at iteration {stop.iter}; the state is saved. Continue with: "
            f"{PROG} train --out {stop.run_dir} --resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except ckpt.RunWriteError as e:
        resume = resume_command(config)
        then = f" Once the file can be written, continue with: {resume}" if resume else ""
        raise ckpt.RunWriteError(f"{e}; training stopped.{then}") from None
    except BrokenPipeError:  # each file is written before its line is printed: what was saved is whole
        resume = resume_command(config)
        raise OutputClosed("; training stopped." + (f" Continue with: {resume}" if resume else "")) from None
    return 0


def resume_command(config: TrainConfig) -> str | None:
    """The command that continues the run in config.out, if a training state was saved there."""
    if (Path(config.out) / ckpt.STATE_JSON_FILE).exists():
        return f"{PROG} train --out {config.out} --resume"
    return None


def run_sample(args: argparse.Namespace) -> int:
    if not args.out:  # "" would be the current directory
        raise UsageError("--out must be a path, got ''")
    if not args.start:
        raise UsageError("--start must hold at least one character")
    model, tokenizer = load_run(args.out)
    try:
        tokenizer.encode(args.start)
    except UnknownCharacterError as e:
        raise UsageError(f"--start: {e}") from None
    rng = np.random.default_rng(args.seed)
    for i in range(args.num_samples):
        if i:
            print("-" * 40, flush=True)
        stream_text(model, tokenizer, args.start, args.max_new_tokens, args.temperature, args.top_k, args.top_p, rng)
    return 0


def run_export(args: argparse.Namespace) -> int:
    if Path(args.to).resolve() == Path(args.out).resolve():
        raise UsageError("--to must be another directory than the run: both would hold a config.json")
    model, tokenizer = load_run(args.out)
    try:
        model.save_pretrained(args.to)  # first: a model GPT-2 cannot be is refused before anything is written
    except ValueError as e:  # that refusal, or a directory that cannot be written (a CheckpointError)
        raise UsageError(str(e)) from None
    tokenizer.save_pretrained(args.to)
    print(f"wrote {args.to}: {model.num_parameters():,} parameters and a {tokenizer!r} for transformers")
    return 0


def run_graph(args: argparse.Namespace) -> int:
    from minigrad.viz import GraphvizNotFoundError, draw_graph, explore, render
    from transformer.gpt import GPT, GPTConfig

    if args.out is None and args.html is None:
        raise UsageError("give --out FILE.svg (the graph), --html FILE.html (the backward explorer), or both")
    out = Path(args.out) if args.out else None
    fmt = out.suffix.lstrip(".").lower() if out else None
    if out and fmt not in ("svg", "png", "pdf", "dot", "gv"):
        raise UsageError(f"--out {out}: the file name must end in .svg, .png, .pdf or .dot")
    if args.html and not args.html.lower().endswith((".html", ".htm")):
        raise UsageError(f"--html {args.html}: the file name must end in .html")
    # small enough to read (two blocks of two heads, 16 wide), big enough to show every kind of op
    # the readable definitions (fused=False): every op of attention, GELU and layer norm in view
    config = GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=16, fused=False)
    rng = np.random.default_rng(0)
    model = GPT(config, rng=rng)
    idx = rng.integers(0, config.vocab_size, size=(2, config.block_size))  # (B, T)
    _, loss = model(idx, np.roll(idx, -1, axis=1))
    try:
        if out:
            graph = draw_graph(loss, model=model)
            if fmt in ("dot", "gv"):
                atomic_write_text(out, graph.source)  # DOT text needs no Graphviz program
            else:
                render(graph, out, fmt)
            print(f"wrote {out}")
        if args.html:
            atomic_write_text(Path(args.html), explore(loss, model=model).html())  # runs the backward
            print(f"wrote {args.html}")
    except GraphvizNotFoundError as e:
        text_instead = (
            f" Or write DOT text: --out {out.with_suffix('.dot')}" if out and fmt not in ("dot", "gv") else ""
        )
        raise UsageError(f"{e}{text_instead}") from None
    except ckpt.RunWriteError:
        raise  # one line naming the file already
    except OSError as e:  # from Graphviz's dot
        raise UsageError(f"cannot write {e.filename or out or args.html}: {e.strerror or e}") from None
    return 0


COMMANDS = {"train": run_train, "sample": run_sample, "graph": run_graph, "export": run_export}


def say_error(command: str, error: Exception) -> int:
    """Print `error` as one line on stderr (rank 0 alone under mpiexec); the exit status of bad input."""
    if isinstance(error, OutputClosed):  # Python's last flush of stdout, at exit, would fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if launched_rank() == 0:
        message = " ".join(str(error).split())  # one line, whatever the message held
        print(f"{PROG} {command}: error: {message}", file=sys.stderr, flush=True)
    if isinstance(error, ckpt.RunWriteError | OutputClosed) and launched_size() > 1:
        world().abort(EXIT_BAD_INPUT)  # rank 0 alone writes and prints: the other ranks wait for it in an all-reduce
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0, 2 for bad input, 130 after Ctrl-C or SIGTERM)."""
    args = build_parser().parse_args(argv)
    said_once = launched_rank() == 0  # under mpiexec every rank ends the same way; rank 0 says why
    try:
        return COMMANDS[args.command](args)
    except (UsageError, OutputClosed, DistributedError, *BAD_INPUT) as e:
        return say_error(args.command, e)
    except BrokenPipeError:
        return say_error(args.command, OutputClosed())
    except MemoryError as e:  # a model too large for this machine, asked for by flags
        print(f"{PROG} {args.command}: error: not enough memory" + (f" ({e})" if str(e) else ""), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if said_once:
            print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
