"""How sharp is a GPT's loss? The top Hessian eigenvalue, by power iteration on HVPs, over training.

The Hessian H of the loss over all parameters is far too big to build (P × P numbers for P
parameters), but a Hessian-vector product H v needs only a few passes over the graph: record
the gradient with `mg.grad(loss, params, create_graph=True)` and differentiate g · v once more
(`mg.hvp`; several training steps' worth of work, measured in docs/autograd.md). Power
iteration needs nothing else: v ← H v / ‖H v‖ turns v towards the eigenvector of the
eigenvalue largest in magnitude, and vᵀ H v converges to that eigenvalue, the loss's
sharpest curvature.

Measured every few steps while a small GPT trains on Tiny Shakespeare, on one fixed batch,
it shows how the landscape changes under the optimizer: as the loss falls, the sharpness
climbs (what the literature calls progressive sharpening). The picture (curvature.png) puts
it beside the training loss.

    python examples/curvature.py --out figures
    python examples/curvature.py --out figures --iters 20 --every 10 --n-embd 16   # a quick look
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen, no window or backend needed

import minigrad as mg
from transformer import GPT, GPTConfig
from transformer.data import get_batch, resolve_corpus, split_train_val
from transformer.tokenizer import CharTokenizer


def power_iteration(loss_of, params: list, steps: int, rng: np.random.Generator, shift: float = 0.0) -> float:
    """The eigenvalue of largest magnitude of H - shift·I, H the Hessian of loss_of() over params, plus shift."""
    v = [rng.standard_normal(p.shape) for p in params]
    eigenvalue = 0.0
    for _ in range(steps):
        norm = np.sqrt(sum(float((x * x).sum()) for x in v))
        v = [(x / norm).astype(p.dtype) for x, p in zip(v, params)]  # a unit vector over all parameters
        _, Hv = mg.hvp(lambda *_: loss_of(), params, v)
        Hv = [h.data - shift * x for h, x in zip(Hv, v)]
        eigenvalue = sum(float((x * h).sum()) for x, h in zip(v, Hv))  # the Rayleigh quotient vᵀ (H - shift·I) v
        v = Hv
    return eigenvalue + shift


def top_eigenvalue(loss_of, params: list, steps: int, rng: np.random.Generator) -> float:
    """The largest Hessian eigenvalue: power iteration finds the one largest in magnitude, and
    when that one is negative (the loss curving down more than up, as at initialisation), a
    second run on H - λ·I, whose spectrum is shifted to be ≥ 0, finds the largest."""
    dominant = power_iteration(loss_of, params, steps, rng)
    return dominant if dominant >= 0 else power_iteration(loss_of, params, steps, rng, shift=dominant)


def plot(history: list[tuple], losses: list[float], path: Path) -> None:
    iters, sharpness = zip(*history)
    fig = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(range(len(losses)), losses, color="tab:blue", linewidth=0.8)
    left.set_xlabel("training step")
    left.set_ylabel("training loss")
    left.set_title("loss")
    right.plot(iters, sharpness, "o-", color="tab:red")
    right.set_xlabel("training step")
    right.set_ylabel("top Hessian eigenvalue")
    right.set_title("sharpness, by power iteration on HVPs")
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description="The top Hessian eigenvalue of a small GPT's loss over training.")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="folder for curvature.png")
    parser.add_argument("--data", help="text corpus (default: Tiny Shakespeare, found or downloaded)")
    parser.add_argument("--iters", type=int, default=400, help="training steps")
    parser.add_argument("--every", type=int, default=40, help="measure the sharpness every this many steps")
    parser.add_argument("--power-steps", type=int, default=15, help="HVPs per power iteration")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    text = resolve_corpus(args.data).text
    tokenizer = CharTokenizer.from_text(text)
    train_ids, _ = split_train_val(tokenizer.encode(text))
    rng = np.random.default_rng(args.seed)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
    )
    model = GPT(config, rng=rng)
    params = [p for _, p in model.named_parameters()]
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=args.learning_rate, betas=(0.9, 0.99))
    probe = get_batch(train_ids, args.batch_size, args.block_size, rng)  # one fixed batch for every measurement

    history, losses = [], []
    for step in range(args.iters + 1):
        if step % args.every == 0:
            sharpness = top_eigenvalue(lambda: model(*probe)[1], params, args.power_steps, rng)
            history.append((step, sharpness))
            print(f"step {step:5d}: top Hessian eigenvalue {sharpness:9.3f}")
        if step == args.iters:
            break
        x, y = get_batch(train_ids, args.batch_size, args.block_size, rng)  # (B, T) each
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    args.out.mkdir(parents=True, exist_ok=True)
    plot(history, losses, args.out / "curvature.png")
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; wrote {args.out / 'curvature.png'}")


if __name__ == "__main__":
    main()
