"""The training flags: TrainConfig's hyper-parameters with nanoGPT's CPU recipe as defaults, their
checks, a recipe's flags underneath the given ones, and a saved run's flags for resuming.

transformer/train.py runs the loop with them; `minigrad-gpt train --help` lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from transformer import checkpoint as ckpt
from transformer.gpt import ACTIVATIONS, NORMS, GPTConfig
from transformer.run import ConfigError
from transformer.speedrun import OPTIMIZERS, RECIPES, SCHEDULES

BETA1 = 0.9  # nanoGPT's; only beta2 is a flag
# the model's shape: a resumed run must keep it
ARCHITECTURE_FLAGS = (
    "n_layer", "n_head", "n_embd", "block_size", "bias", "tokenizer", "vocab_size", "init_from",
    "rotary", "norm", "qk_norm", "activation", "tie_embeddings", "logit_softcap",
)  # fmt: skip
TOKENIZERS = ("char", "bpe")
BPE_VOCAB_SIZE = 512  # --vocab-size when --tokenizer bpe is given without it


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
    # later recipes' model choices (GPTConfig's fields of the same names)
    rotary: bool = False
    norm: str = "layernorm"
    qk_norm: bool = False
    activation: str = "gelu"
    tie_embeddings: bool = True
    logit_softcap: float = 0.0
    # and their training choices (transformer/speedrun.py)
    optimizer: str = "adamw"  # "muon": Muon for the blocks' matrices, AdamW for the rest
    muon_lr: float = 0.02  # Muon's peak rate; it follows the schedule's shape
    lr_schedule: str = "cosine"  # nanoGPT's; "trapezoid": warm-up, flat, linear warm-down
    warmdown_frac: float = 0.4  # trapezoid: the share of lr_decay_iters spent decaying
    target_bpc: float | None = None  # stop once the whole validation split reaches this many bits per character
    recipe: str | None = None  # the recipe the flags started from (transformer/speedrun.py's RECIPES)

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
        for name in ("learning_rate", "min_lr", "weight_decay", "grad_clip", "muon_lr", "logit_softcap"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{flag(name)} must be a finite number >= 0, got {value!r}")
        for name in ("beta2", "dropout", "warmdown_frac"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < 1):
                raise ConfigError(f"{flag(name)} must lie in [0, 1), got {value!r}")
        for name in ("bias", "rotary", "qk_norm", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{flag(name)} must be true or false, got {getattr(self, name)!r}")
        for name, choices in [("norm", NORMS), ("activation", ACTIVATIONS), ("optimizer", OPTIMIZERS),
                              ("lr_schedule", SCHEDULES), ("recipe", (None, *RECIPES))]:  # fmt: skip
            if getattr(self, name) not in choices:
                raise ConfigError(
                    f"{flag(name)} must be one of {', '.join(map(str, choices))}, got {getattr(self, name)!r}"
                )
        if self.optimizer == "muon" and not self.learning_rate > 0:
            raise ConfigError("--optimizer muon scales Muon's rate by the schedule's: --learning-rate must be > 0")
        if self.target_bpc is not None and not (isinstance(self.target_bpc, int | float) and self.target_bpc > 0):
            raise ConfigError(f"--target-bpc must be a number > 0, got {self.target_bpc!r}")
        if self.rotary and (self.n_embd // max(self.n_head, 1)) % 2:
            raise ConfigError(f"--rotary needs an even head size, got --n-embd {self.n_embd} / --n-head {self.n_head}")
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
            rotary=self.rotary,
            norm=self.norm,
            qk_norm=self.qk_norm,
            activation=self.activation,
            tie_embeddings=self.tie_embeddings,
            logit_softcap=float(self.logit_softcap),
        )

    @classmethod
    def from_recipe(cls, recipe: str | None, given: dict[str, Any]) -> TrainConfig:
        """The recipe's flags (transformer/speedrun.py's RECIPES), the flags given on top."""
        if recipe is not None and recipe not in RECIPES:
            raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
        return cls(**{**RECIPES.get(recipe, {}), **given, "recipe": recipe})


def flag(name: str) -> str:
    """The command-line spelling of a TrainConfig field: max_iters -> --max-iters."""
    return "--" + name.replace("_", "-")


def spelled(name: str, value: Any) -> str:
    """A field's flag with its value, as typed: --n-layer 4; a switch, --bias or --no-bias."""
    if isinstance(value, bool):
        return flag(name) if value else f"--no-{flag(name)[2:]}"
    return f"{flag(name)} {value}"


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
                f"{spelled(name, overrides[name])} does not match the run in {run_dir}, "
                f"which has {name} = {getattr(saved_config, name)}; leave it out to resume"
            )
    return TrainConfig(**{**saved_flags, **overrides, "out": str(run_dir)})  # where it was read, wherever it was made
