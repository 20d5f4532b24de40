"""Teach the encoder-decoder Transformer to reverse strings of digits.

    python examples/reverse.py                 # 800 steps: >= 99% of held-out strings, well under 2 minutes
    python examples/reverse.py --steps 200     # a quick look: most strings right already

The source is a digit string such as 40917; the target is its reverse, 71904. Strings have
different lengths, so a batch is padded, and the padding masks keep every attention away
from the padded positions. The decoder is trained with teacher forcing: it reads
<bos> 7 1 9 0 4 and must predict 7 1 9 0 4 <eos>, each position seeing only itself and the
ones before it (the causal mask). At test time it decodes greedily, one digit at a time, on strings it
never saw in training, and a string counts only if every digit and the end are right.

Reversal needs attention: output t must copy input n-1-t, so the model has to learn where
the string ends and count back from there, through the positional encodings.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor
from minigrad.nn import Embedding, Linear, Module
from minigrad.optim import Adam, CosineWithWarmup
from transformer import Transformer
from transformer.positional import SinusoidalPositionalEncoding

PAD, BOS, EOS = 0, 1, 2  # special tokens; digit d is token d + 3
VOCAB_SIZE = 13


# ---------------------------------------------------------------- data


def random_strings(rng: np.random.Generator, count: int, min_len: int, max_len: int) -> list[tuple[int, ...]]:
    """`count` digit strings, lengths uniform in [min_len, max_len], as tuples of tokens."""
    lengths = rng.integers(min_len, max_len + 1, size=count)
    return [tuple(int(d) + 3 for d in rng.integers(0, 10, size=n)) for n in lengths]


def make_batch(strings: list[tuple[int, ...]], max_len: int) -> dict[str, np.ndarray]:
    """Pad a list of strings into the arrays the model needs.

    src (B, max_len): the digits, then PAD.  tgt_in (B, max_len+1): BOS, then the reversed
    digits.  tgt_out (B, max_len+1): the reversed digits, then EOS — tgt_in shifted by one.
    """
    B = len(strings)
    src = np.full((B, max_len), PAD)  # (B, S)
    tgt_in = np.full((B, max_len + 1), PAD)  # (B, T)
    tgt_out = np.full((B, max_len + 1), PAD)  # (B, T)
    tgt_in[:, 0] = BOS
    for b, s in enumerate(strings):
        n = len(s)
        src[b, :n] = s
        tgt_in[b, 1 : n + 1] = s[::-1]
        tgt_out[b, :n] = s[::-1]
        tgt_out[b, n] = EOS
    return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out}


# ---------------------------------------------------------------- model


class Reverser(Module):
    """Token embeddings + sinusoidal positions -> Transformer -> logits over the 13 tokens."""

    def __init__(self, d_model: int, nhead: int, num_layers: int, dim_feedforward: int, max_len: int):
        super().__init__()
        self.embedding = Embedding(VOCAB_SIZE, d_model)  # shared by source and target
        self.position = SinusoidalPositionalEncoding(d_model, max_len + 1)
        self.transformer = Transformer(d_model, nhead, num_layers, num_layers, dim_feedforward, norm_first=True)
        self.generator = Linear(d_model, VOCAB_SIZE)

    def embed(self, ids: np.ndarray) -> Tensor:
        # N(0, 1) embeddings and the sinusoids (amplitude 1) are of one scale: neither drowns the other
        return self.position(self.embedding(ids))  # (B, T, E)

    def encode(self, src: np.ndarray) -> Tensor:
        """src (B, S) token ids -> memory (B, S, E)."""
        return self.transformer.encoder(self.embed(src), src_key_padding_mask=src == PAD)  # (B, S, E)

    def decode(self, tgt_in: np.ndarray, memory: Tensor, src: np.ndarray) -> Tensor:
        """tgt_in (B, T) token ids, memory (B, S, E) -> logits (B, T, vocab)."""
        T = tgt_in.shape[1]
        x = self.transformer.decoder(
            self.embed(tgt_in),
            memory,
            tgt_mask=Transformer.generate_square_subsequent_mask(T),  # position t sees 0..t only
            tgt_key_padding_mask=tgt_in == PAD,
            memory_key_padding_mask=src == PAD,
        )  # (B, T, E)
        return self.generator(x)  # (B, T, vocab)

    def forward(self, src: np.ndarray, tgt_in: np.ndarray) -> Tensor:
        return self.decode(tgt_in, self.encode(src), src)  # (B, T, vocab)


@mg.no_grad()
def greedy_decode(model: Reverser, src: np.ndarray, max_len: int) -> np.ndarray:
    """Predict each target token from the ones predicted before: (B, S) -> (B, max_len+1)."""
    memory = model.encode(src)  # (B, S, E) computed once
    out = np.full((src.shape[0], 1), BOS)  # (B, 1)
    for _ in range(max_len + 1):
        logits = model.decode(out, memory, src)  # (B, t, vocab)
        next_token = logits.data[:, -1].argmax(axis=-1)  # (B,)
        out = np.concatenate([out, next_token[:, None]], axis=1)  # (B, t+1)
        if (out == EOS).any(axis=1).all():
            break
    return out[:, 1:]


def exact_match(predicted: np.ndarray, strings: list[tuple[int, ...]]) -> float:
    """The fraction of strings whose whole reversal, and then EOS, was predicted."""
    correct = 0
    for row, s in zip(predicted, strings):
        expected = list(s[::-1]) + [EOS]
        correct += list(row[: len(expected)]) == expected
    return correct / len(strings)


# ---------------------------------------------------------------- training


def train(
    steps: int = 800,
    batch_size: int = 64,
    d_model: int = 64,
    nhead: int = 4,
    num_layers: int = 2,
    dim_feedforward: int = 128,
    lr: float = 1e-3,
    warmup: int = 100,
    min_len: int = 3,
    max_len: int = 10,
    test_size: int = 1000,
    seed: int = 0,
    log_every: int = 100,
) -> dict:
    """Train a Reverser and measure it on held-out strings; returns the numbers it printed."""
    if not 1 <= min_len <= max_len:
        raise SystemExit(f"need 1 <= --min-len <= --max-len, got {min_len} and {max_len}")
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    test_strings = random_strings(rng, test_size, min_len, max_len)
    held_out = set(test_strings)
    model = Reverser(d_model, nhead, num_layers, dim_feedforward, max_len)
    optimizer = Adam(model.parameters(), lr=lr)
    # linear warm-up, then a cosine decay to lr/10 that lets the last steps settle
    schedule = CosineWithWarmup(optimizer, lr, lr / 10, warmup_iters=warmup, lr_decay_iters=steps)
    start = time.perf_counter()
    losses = []
    for step in range(steps):
        strings = [s for s in random_strings(rng, batch_size, min_len, max_len) if s not in held_out]
        batch = make_batch(strings, max_len)
        logits = model(batch["src"], batch["tgt_in"])  # (B, T, vocab)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), batch["tgt_out"].reshape(-1), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.perf_counter() - start:6.1f}s", flush=True)
    train_time = time.perf_counter() - start

    model.eval()
    test = make_batch(test_strings, max_len)
    predicted = greedy_decode(model, test["src"], max_len)  # (N, max_len+1)
    with mg.no_grad():
        logits = model(test["src"], test["tgt_in"])  # (N, T, vocab) teacher-forced
    kept = test["tgt_out"] != PAD
    token_accuracy = float((logits.data.argmax(axis=-1) == test["tgt_out"])[kept].mean())
    accuracy = exact_match(predicted, test_strings)
    total_time = time.perf_counter() - start
    print(f"held-out exact match {accuracy:.2%} ({test_size} strings), token accuracy {token_accuracy:.2%}")
    print(f"training {train_time:.1f}s, with evaluation {total_time:.1f}s")
    return {
        "losses": losses,
        "accuracy": accuracy,
        "token_accuracy": token_accuracy,
        "train_time": train_time,
        "total_time": total_time,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--nhead", type=int, default=4)
    parser.add_argument("--num-layers", type=int, default=2, help="encoder layers, and as many decoder layers")
    parser.add_argument("--dim-feedforward", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--min-len", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=10)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # The matrices here are small (64 strings × 11 positions × 64 wide): one BLAS thread is
    # as fast, and on a busy machine two threads handing work back and forth are ten times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        return train(**vars(args))


if __name__ == "__main__":
    main()
