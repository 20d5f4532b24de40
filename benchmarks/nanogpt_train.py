"""nanoGPT's train.py, re-created for one CPU process: the rival of `make train` in bench_train_job.py.

    python benchmarks/nanogpt_train.py --data-dir DIR --out-dir DIR [--max-iters 2000] [--eval-interval 250]

The loop is karpathy/nanoGPT's train.py as its README runs it on a CPU (config/
train_shakespeare_char.py with `--device=cpu --compile=False --eval_iters=20 --log_interval=1
--block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
--lr_decay_iters=2000 --dropout=0.0`), everything else at its defaults: bias=False, AdamW with
beta2 0.99 and weight decay 0.1, clipping at 1.0, warm-up 100 then cosine to 1e-4, an
evaluation every 250 iterations on 20 batches of each split, ckpt.pt saved when validation
improves, and a line printed every iteration. What only matters on a GPU (DDP, autocast,
the gradient scaler, which nanoGPT disables on a CPU) is left out. The model is nanoGPT's
model.py, as kept in tests/reference/nanogpt.py. DIR holds train.bin and val.bin, uint16 token
ids as nanoGPT's data/shakespeare_char/prepare.py writes them (bench_train_job.py does).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference.nanogpt import GPT, GPTConfig  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--data-dir", required=True)
parser.add_argument("--out-dir", required=True)
parser.add_argument("--max-iters", type=int, default=2000)
parser.add_argument("--eval-interval", type=int, default=250)
parser.add_argument("--vocab-size", type=int, default=65)
args = parser.parse_args()

# config/train_shakespeare_char.py with the README's CPU overrides
out_dir, data_dir = args.out_dir, args.data_dir
eval_interval, eval_iters, log_interval = args.eval_interval, 20, 1
gradient_accumulation_steps, batch_size, block_size = 1, 12, 64
n_layer, n_head, n_embd, dropout, bias = 4, 4, 128, 0.0, False
learning_rate, max_iters, lr_decay_iters, min_lr = 1e-3, args.max_iters, args.max_iters, 1e-4
weight_decay, beta1, beta2, grad_clip = 1e-1, 0.9, 0.99, 1.0
decay_lr, warmup_iters = True, 100
device, device_type = "cpu", "cpu"

os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(1337)


def get_batch(split):
    # recreate np.memmap every batch to avoid a memory leak, as nanoGPT does
    data = np.memmap(os.path.join(data_dir, f"{split}.bin"), dtype=np.uint16, mode="r")
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([torch.from_numpy((data[i : i + block_size]).astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy((data[i + 1 : i + 1 + block_size]).astype(np.int64)) for i in ix])
    return x, y


iter_num, best_val_loss = 0, 1e9
model_args = dict(
    n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, bias=bias,
    vocab_size=args.vocab_size, dropout=dropout,
)  # fmt: skip
model = GPT(GPTConfig(**model_args))
optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)


@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ["train", "val"]:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split)
            logits, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean()
    model.train()
    return out


def get_lr(it):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


X, Y = get_batch("train")
t0 = time.time()
while True:
    lr = get_lr(iter_num) if decay_lr else learning_rate
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr

    if iter_num % eval_interval == 0:
        losses = estimate_loss()
        print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
        if losses["val"] < best_val_loss:
            best_val_loss = losses["val"]
            if iter_num > 0:
                checkpoint = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "model_args": model_args,
                    "iter_num": iter_num,
                    "best_val_loss": best_val_loss,
                }
                torch.save(checkpoint, os.path.join(out_dir, "ckpt.pt"))

    for _micro_step in range(gradient_accumulation_steps):
        logits, loss = model(X, Y)
        loss = loss / gradient_accumulation_steps
        X, Y = get_batch("train")  # prefetch the next batch, as nanoGPT does
        loss.backward()
    if grad_clip != 0.0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    t1 = time.time()
    dt, t0 = t1 - t0, t1
    if iter_num % log_interval == 0:
        lossf = loss.item() * gradient_accumulation_steps
        print(f"iter {iter_num}: loss {lossf:.4f}, time {dt * 1000:.2f}ms", flush=True)
    iter_num += 1
    if iter_num > max_iters:
        break
