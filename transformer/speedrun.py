"""The speedrun: nanoGPT's Tiny Shakespeare quality in as little time as this project knows how.

nanoGPT's CPU recipe (4 layers, 4 heads, 128 wide, 64 characters of context, batches of 12,
AdamW at 1e-3, 2000 steps) ends at 1.8857 nats per character on the last 10% of the text:
TARGET_BPC = 2.7205 bits. `minigrad-gpt train --recipe speedrun` trains until a cheap estimate
says the target is passed, confirms it on the whole validation split, and stops. The recipe is
plain data (`RECIPES`): every entry is a training flag, so any of them can be given again on
the command line to take one idea out (`--optimizer adamw`, `--no-rotary`, ...), which is how
benchmarks/bench_speedrun.py measures what each one is worth.

This module holds what the recipe adds to nanoGPT's loop: the optimizer choice (Muon for the
blocks' matrices), the trapezoidal learning-rate shape, and the whole-split measurement that
ends the run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad import no_grad
from minigrad.optim import AdamW, CosineWithWarmup, LRScheduler, MuonWithAdamW
from transformer.distributed import World
from transformer.gpt import GPT

TARGET_BPC = 1.8857 / math.log(2)  # nanoGPT's validation loss at 2000 iterations, in bits: 2.7205
OPTIMIZERS = ("adamw", "muon")
SCHEDULES = ("cosine", "trapezoid")
WHOLE_SPLIT_ROWS = 64  # windows per forward pass of the whole-split measurement

# Every value is a TrainConfig field; flags given with --recipe override them. Why each:
RECIPES: dict[str, dict[str, Any]] = {
    "speedrun": dict(
        # Muon orthogonalises the blocks' updates, so every direction of a weight matrix
        # learns at once; it takes a much larger step than AdamW (its update has unit spectral
        # norm) and a short warm-up
        optimizer="muon",
        learning_rate=6e-3,  # AdamW's rate for the embeddings, head, gains
        muon_lr=0.04,
        warmup_iters=20,
        # hold the rate, then decay linearly to min_lr over the last 40%: the loss drops
        # fastest while the rate falls, and a run that ends early still ends decayed
        lr_schedule="trapezoid",
        warmdown_frac=0.4,
        min_lr=6e-4,
        weight_decay=0.0,
        # later GPTs' architecture: no biases, RMSNorm, rotary positions, QK-norm; the head stays
        # tied to the embedding, which did better here than an untied one, and the MLP keeps
        # GELU, which learned more per step here than ReLU² (docs/training.md)
        bias=False,
        norm="rmsnorm",
        rotary=True,
        qk_norm=True,
        activation="gelu",
        tie_embeddings=True,
        # more text per step: a larger batch uses the BLAS better than more, smaller steps;
        # 170 of them (23% of nanoGPT's characters) end the warm-down past the target on
        # every seed measured (160 missed on one seed in three)
        batch_size=32,
        max_iters=170,
        # evaluate rarely and cheaply (halfway, and at the end); the whole split confirms
        # before the run stops
        eval_interval=85,
        eval_iters=4,
        target_bpc=round(TARGET_BPC, 4),
    ),
}


def trapezoid_lr(
    step: int, lr: float, min_lr: float, warmup_iters: int, total_iters: int, warmdown_frac: float
) -> float:
    """The learning rate of iteration `step`: linear warm-up, a flat top, a linear warm-down.

    step < warmup_iters:                   lr · (step + 1) / (warmup_iters + 1)
    up to the last warmdown_frac of total: lr
    then, down to total_iters:             from lr linearly to min_lr

    A constant rate makes fast progress but leaves the weights rattling around the valley
    floor; decaying it at the end lets them settle (Hägele et al. 2024, "Scaling laws and
    compute-optimal training beyond fixed training durations").
    """
    if step < warmup_iters:
        return lr * (step + 1) / (warmup_iters + 1)
    warmdown_start = total_iters * (1.0 - warmdown_frac)
    if step < warmdown_start or total_iters <= warmdown_start:
        return lr
    done = min(1.0, (step - warmdown_start) / (total_iters - warmdown_start))  # 0 → 1 over the warm-down
    return lr + done * (min_lr - lr)


def make_optimizer(model: GPT, config) -> AdamW | MuonWithAdamW:
    """The optimizer `config.optimizer` names: nanoGPT's AdamW, or Muon for the blocks' matrices
    (at config.muon_lr) with AdamW (at config.learning_rate) for everything else."""
    betas = (config.beta1, config.beta2)
    if config.optimizer == "adamw":
        return model.configure_optimizers(config.weight_decay, config.learning_rate, betas)
    groups = model.muon_groups(config.weight_decay, config.muon_lr / config.learning_rate)
    return MuonWithAdamW(groups, muon=dict(lr=config.muon_lr), adamw=dict(lr=config.learning_rate, betas=betas))


def make_schedule(optimizer, config) -> LRScheduler:
    """nanoGPT's warm-up and cosine decay, or `trapezoid_lr`, as config.lr_schedule says."""
    if config.lr_schedule == "cosine":
        return CosineWithWarmup(
            optimizer, config.learning_rate, config.min_lr, config.warmup_iters, config.lr_decay_iters
        )
    return LRScheduler(
        optimizer,
        lambda it: trapezoid_lr(
            it, config.learning_rate, config.min_lr, config.warmup_iters, config.lr_decay_iters, config.warmdown_frac
        ),
    )


def whole_split_loss(
    model: GPT, ids: np.ndarray, block_size: int, chars_per_token: np.ndarray, ranks: World | None = None
) -> dict[str, float]:
    """The mean loss over every token of `ids` (N,), and its bits per character: {"loss", "bpc", "tokens"}.

    The split is cut into consecutive windows of block_size (the last one shorter), each
    predicting its next tokens, as the random windows of `estimate_loss` do: every position
    is predicted once, from the context its window holds. Windows are shared among the ranks.
    """
    ranks = ranks or World()
    starts = np.arange(0, len(ids) - 1, block_size)  # (W,) the windows' first positions
    sums = np.zeros(2)  # float64: nats, characters
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for i, first in enumerate(range(0, len(starts), WHOLE_SPLIT_ROWS)):
                if i % ranks.size != ranks.rank:
                    continue
                batch = starts[first : first + WHOLE_SPLIT_ROWS]
                for length, rows in window_groups(batch, len(ids), block_size):
                    positions = rows[:, None] + np.arange(length)  # (B, T)
                    x, y = ids[positions].astype(np.int64), ids[positions + 1].astype(np.int64)
                    sums += (model(x, y)[1].item() * y.size, chars_per_token[y].sum())
    finally:
        model.train(was_training)
    ranks.sum_in_place(sums)
    nats, chars = sums
    tokens = len(ids) - 1
    return {"loss": float(nats / tokens), "bpc": float(nats / max(chars, 1) / math.log(2)), "tokens": tokens}


def window_groups(starts: np.ndarray, n: int, block_size: int) -> list[tuple[int, np.ndarray]]:
    """The windows starting at `starts` grouped by length: full ones, and the split's shorter last one."""
    length = np.minimum(block_size, n - 1 - starts)  # (W,) a window needs its next token as target
    return [(int(T), starts[length == T]) for T in np.unique(length)]
