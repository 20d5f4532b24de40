"""GPT: a decoder-only Transformer language model, as nanoGPT's model.py builds GPT-2.

Tokens and positions are embedded and added, pass through `n_layer` pre-norm blocks of causal
self-attention and an MLP, and a final layer norm; the output layer shares its weight with
the token embedding ("weight tying", Press & Wolf 2017), so it scores each vocabulary entry
by its similarity to the final hidden state.

Every module and parameter is named as in nanoGPT's GPT, so `state_dict()` loads with
`strict=True` into the PyTorch model and back:

    transformer.wte.weight (V, C)        transformer.wpe.weight (block_size, C)
    transformer.h.{i}.ln_1.weight/bias   transformer.h.{i}.attn.c_attn.weight (3C, C) /bias
    transformer.h.{i}.attn.c_proj ...    transformer.h.{i}.ln_2 ...
    transformer.h.{i}.mlp.c_fc (4C, C)   transformer.h.{i}.mlp.c_proj (C, 4C)
    transformer.ln_f.weight/bias         lm_head.weight (V, C), the same tensor as wte.weight

One difference from nanoGPT: `model(idx)` without targets returns the logits of every
position (B, T, V), not only the last one, so that both calls have the same shape. Generation
hardly pays for it: the output layer is a small part of a step, and with the KV cache a step
feeds only the new token.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import minigrad.functional as F
from minigrad import concatenate, default_rng, no_grad
from minigrad.nn import GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleDict, ModuleList
from minigrad.optim import AdamW
from minigrad.tensor import Tensor


@dataclass
class GPTConfig:
    """The model's sizes; the defaults are GPT-2 small's (vocabulary padded to a multiple of 64)."""

    block_size: int = 1024  # the longest context, in tokens
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in the Linears and LayerNorms, as GPT-2; False is a bit better and faster

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


class LayerKVCache:
    """The keys and values one attention layer has computed so far, each (B, nh, T_seen, hs).

    A new token's query must meet the keys and values of every earlier position. They do not
    change once computed (causal attention: position t never looks ahead), so they are kept
    and a step costs one position instead of the whole context.
    """

    def __init__(self):
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new positions' k, v (B, nh, T, hs); return all of them (B, nh, T_seen + T, hs)."""
        if self.k is not None:
            k = concatenate([self.k, k], axis=2)  # (B, nh, T_seen + T, hs)
            v = concatenate([self.v, v], axis=2)  # (B, nh, T_seen + T, hs)
        self.k, self.v = k, v
        return k, v


class KVCache:
    """One `LayerKVCache` per block; its length is the number of positions already seen."""

    def __init__(self, n_layer: int):
        self.layers = [LayerKVCache() for _ in range(n_layer)]

    def __len__(self) -> int:
        return len(self.layers[0])


class CausalSelfAttention(Module):
    """Multi-head self-attention in which position t attends to positions 0..t only.

    One Linear (c_attn) computes queries, keys and values for all heads at once (3C outputs,
    laid out [q | k | v], each head a run of hs = C / nh channels); c_proj mixes the heads.
    x (B, T, C) -> (B, T, C).
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        super().__init__()
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias, rng=rng)
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias, rng=rng)
        # dropout on the attention weights happens inside the fused attention kernel; this
        # module holds its probability and generator, and follows train()/eval()
        self.attn_dropout = Dropout(config.dropout, rng=rng)
        self.resid_dropout = Dropout(config.dropout, rng=rng)
        self.n_head = config.n_head
        self.n_embd = config.n_embd

    def forward(self, x: Tensor, cache: LayerKVCache | None = None, last_only: bool = False) -> Tensor:
        """x (B, T, C) -> (B, T, C); with last_only, the last position's output only, (B, 1, C)."""
        B, T, C = x.shape  # batch size, sequence length, embedding dimensionality (n_embd)
        hs = C // self.n_head

        # queries, keys and values for all heads in one matmul
        qkv = self.c_attn(x)  # (B, T, 3C)
        dropout_p = self.attn_dropout.p if self.training else 0.0
        if cache is None and not last_only:
            # softmax(q kᵀ / √hs) v per head with the future masked out, read from the packed
            # [q | k | v] and written back with the heads side by side, in one node
            y = F.causal_self_attention_packed(
                qkv, self.n_head, dropout_p=dropout_p, rng=self.attn_dropout.rng
            )  # (B, T, C)
        else:
            qkv = qkv.reshape(B, T, 3, self.n_head, hs).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nh, T, hs) each
            if cache is not None:
                k, v = cache.extend(k, v)  # (B, nh, T_all, hs), the T new positions last
            T_all = k.shape[2]
            if last_only:  # the last query alone, which sees every key
                q, future, T = q[:, :, -1:, :], None, 1  # (B, nh, 1, hs)
            else:  # the new query i sits at position T_all - T + i and may see keys 0 .. T_all - T + i
                future = np.triu(np.ones((T, T_all), dtype=bool), k=T_all - T + 1)  # (T, T_all)
            y = F.scaled_dot_product_attention(
                q, k, v, mask=future, dropout_p=dropout_p, rng=self.attn_dropout.rng
            )  # (B, nh, T, hs)
            y = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C): the heads side by side again

        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class MLP(Module):
    """Position-wise feed-forward: C -> 4C -> GELU -> C.  x (B, T, C) -> (B, T, C)."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias, rng=rng)
        self.gelu = GELU()  # the exact erf form, as nn.GELU() in nanoGPT
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias, rng=rng)
        self.dropout = Dropout(config.dropout, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        x = self.c_fc(x)  # (B, T, 4C)
        x = self.gelu(x)  # (B, T, 4C)
        x = self.c_proj(x)  # (B, T, C)
        return self.dropout(x)  # (B, T, C)


class Block(Module):
    """A pre-norm Transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

    Normalising the input of each sublayer, not its output, leaves the residual stream an
    identity path from embedding to head, which keeps deep stacks trainable (GPT-2).
    x (B, T, C) -> (B, T, C).
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, rng)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config, rng)

    def forward(self, x: Tensor, cache: LayerKVCache | None = None, last_only: bool = False) -> Tensor:
        """With last_only, every position still gives its keys and values, but only the last
        position goes on through the residual add and the MLP: -> (B, 1, C)."""
        attended = self.attn(self.ln_1(x), cache=cache, last_only=last_only)  # (B, T or 1, C)
        x = (x[:, -1:, :] if last_only else x) + attended  # (B, T or 1, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T or 1, C)
        return x


class GPT(Module):
    """The GPT language model: token ids (B, T) -> next-token logits (B, T, vocab_size).

    `rng` (a np.random.Generator; minigrad's default generator if None) draws the initial
    weights and, afterwards, the dropout masks, so a seeded generator makes both reproducible.
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None):
        super().__init__()
        rng = default_rng() if rng is None else rng
        self.config = config
        self.transformer = ModuleDict(
            dict(
                wte=Embedding(config.vocab_size, config.n_embd, rng=rng),
                wpe=Embedding(config.block_size, config.n_embd, rng=rng),
                drop=Dropout(config.dropout, rng=rng),
                h=ModuleList([Block(config, rng) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False, rng=rng)
        # weight tying: one tensor, registered under both names (listed once by named_parameters)
        self.transformer.wte.weight = self.lm_head.weight
        self._init_weights(rng)

    def _init_weights(self, rng: np.random.Generator) -> None:
        """GPT-2's initialisation: weights N(0, 0.02), biases 0, LayerNorms 1 and 0 (as built).

        Each block adds its attention's and its MLP's c_proj output to the residual stream, so
        the stream's variance grows with 2·n_layer additions; scaling those weights' std by
        1/√(2·n_layer) keeps it near 1 at the start.
        """
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                param.data[...] = rng.normal(0.0, 0.02 / math.sqrt(2 * self.config.n_layer), param.shape)
            elif name.endswith("weight") and param.ndim == 2:
                param.data[...] = rng.normal(0.0, 0.02, param.shape)
            elif name.endswith("bias"):
                param.data[...] = 0.0

    def num_parameters(self, non_embedding: bool = False) -> int:
        """The number of parameters (the tied weight counted once).

        non_embedding=True leaves out the position embeddings, as nanoGPT's get_num_params();
        the token embeddings stay in, because they are also the output layer's weights.
        """
        count = super().num_parameters()
        return count - self.transformer.wpe.weight.size if non_embedding else count

    def forward(
        self, idx, targets=None, kv_cache: KVCache | None = None, last_only: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab_size), loss or None).

        With targets (B, T) the loss is the mean cross-entropy over the positions whose target
        is not -1. With a `kv_cache`, idx holds only the positions after those the cache has
        already seen (and the cache learns them), so logits come for the new positions only.
        last_only=True gives the last position's logits alone, (B, 1, vocab_size), as sampling
        needs: the last block then runs its attention output and MLP for that position only
        (nanoGPT's inference forward trims just the output layer).
        """
        idx = _token_ids(idx, self.config.vocab_size)
        B, T = idx.shape
        if last_only and targets is not None:
            raise ValueError("GPT: last_only gives one position's logits; it cannot take targets")
        past = 0 if kv_cache is None else len(kv_cache)
        if past + T > self.config.block_size:
            raise ValueError(
                f"GPT: cannot forward a sequence of length {past + T}, block size is only "
                f"{self.config.block_size}; crop the input to its last {self.config.block_size} tokens"
            )
        pos = np.arange(past, past + T)  # (T,)

        tok_emb = self.transformer.wte(idx)  # (B, T, C) token embeddings
        pos_emb = self.transformer.wpe(pos)  # (T, C) position embeddings
        x = self.transformer.drop(tok_emb + pos_emb)  # (B, T, C)
        caches = [None] * len(self.transformer.h) if kv_cache is None else kv_cache.layers
        last = len(self.transformer.h) - 1
        for i, (block, cache) in enumerate(zip(self.transformer.h, caches)):
            x = block(x, cache=cache, last_only=last_only and i == last)  # (B, T, C); (B, 1, C) if trimmed
        x = self.transformer.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)

        loss = None
        if targets is not None:
            targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
            if targets.shape != (B, T):
                raise ValueError(f"GPT: targets have shape {targets.shape}, expected {(B, T)} like idx")
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)  # ()
        return logits, loss

    def window_logits(self, idx: np.ndarray, transposed: dict | None = None) -> np.ndarray:
        """Next-token logits (B, vocab_size) of a window idx (B, T <= block_size), on arrays.

        The computation of `self(idx, last_only=True)` in eval mode — the same kernels, called
        in the same order, so the same bits — run straight on the weights' arrays, without
        Tensors, graph bookkeeping or module calls. Sampling past block_size recomputes the
        whole window for every token (see `generate`), about 50 small ops each time, and at
        the baby GPT's size their Python overhead was a sixth of the step. A test holds the
        two paths to identical logits.

        `transposed` ({Linear: its weight as a contiguous (in, out) array}, from
        `transposed_weights`) makes each product x @ Wᵀ read a contiguous Wᵀ: 10 % faster per
        window at the baby size, equal to the module forward within float32 rounding.
        """

        def linear(layer, x):  # x (B, T, in) -> (B, T, out), computed as F.Linear's forward does
            weight_t = layer.weight.data.T if transposed is None else transposed[layer]  # (in, out)
            y = x.reshape(-1, x.shape[-1]) @ weight_t  # (B·T, out)
            if layer.bias is not None:
                y += layer.bias.data
            return y.reshape(x.shape[:-1] + y.shape[-1:])

        def layer_norm(norm, x):
            bias = None if norm.bias is None else norm.bias.data
            return F.LayerNorm().forward(x, norm.weight.data, bias, eps=norm.eps)

        B, T = idx.shape
        x = self.transformer.wte.weight.data[idx] + self.transformer.wpe.weight.data[np.arange(T)]  # (B, T, C)
        blocks = self.transformer.h
        for i, block in enumerate(blocks):
            attn, mlp = block.attn, block.mlp
            qkv = linear(attn.c_attn, layer_norm(block.ln_1, x))  # (B, T, 3C)
            if i < len(blocks) - 1:
                y = F.CausalSelfAttentionPacked().forward(qkv, n_head=attn.n_head)  # (B, T, C)
            else:  # the last block: the last position's query alone, against every key
                heads = qkv.reshape(B, T, 3, attn.n_head, -1).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
                y = F.ScaledDotProductAttention().forward(heads[0][:, :, -1:, :], heads[1], heads[2])
                y = y.transpose(0, 2, 1, 3).reshape(B, 1, -1)  # (B, 1, C)
                x = x[:, -1:, :]
            x = x + linear(attn.c_proj, y)
            hidden = F.GELU().forward(linear(mlp.c_fc, layer_norm(block.ln_2, x)), approximate=mlp.gelu.approximate)
            x = x + linear(mlp.c_proj, hidden)  # (B, 1 or T, C)
        return linear(self.lm_head, layer_norm(self.transformer.ln_f, x))[:, -1, :]  # (B, V)

    def transposed_weights(self) -> dict:
        """{Linear module: its weight (out, in) copied as a contiguous (in, out) array}.

        For `window_logits`, made once per `generate` call and valid while the weights stay
        as they are. BLAS multiplies x (rows, in) by a contiguous (in, out) matrix faster than
        by the transposed view of an (out, in) one when there are few rows, as in sampling.
        """
        return {m: np.ascontiguousarray(m.weight.data.T) for m in self.modules() if isinstance(m, Linear)}

    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        rng: np.random.Generator | None = None,
        use_cache: bool = True,
    ) -> np.ndarray:
        """Extend idx (B, T) by max_new_tokens sampled tokens -> (B, T + max_new_tokens) int64.

        Each token is drawn from softmax(logits / temperature), restricted to the top_k most
        likely tokens and/or the smallest set holding probability top_p (nucleus sampling);
        temperature 0 picks the most likely token (greedy). `rng` makes the draws reproducible.
        The model runs in eval mode (no dropout) and without building a graph.

        Up to block_size tokens, the KV cache makes each step cost one position; use_cache=False
        recomputes the whole context every step (the same tokens, more slowly). Past block_size
        the context is cropped to its last block_size tokens, as nanoGPT does: every token then
        moves to a new position at each step, so the cropped window is recomputed in full.
        """
        idx = _token_ids(idx, self.config.vocab_size)
        steps = self.generate_tokens(idx, max_new_tokens, temperature, top_k, top_p, rng, use_cache)
        return np.concatenate([idx] + [next_ids[:, None] for next_ids in steps], axis=1)

    def generate_tokens(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        rng: np.random.Generator | None = None,
        use_cache: bool = True,
    ) -> Iterator[np.ndarray]:
        """`generate`, one step at a time: yield each step's new token ids (B,) as they are drawn.

        Between steps the model is in eval mode and gradients are recorded as they were
        before, so the caller may do anything with the tokens; the model's mode comes back
        when the loop ends or is abandoned.
        """
        idx = _token_ids(idx, self.config.vocab_size)
        rng = default_rng() if rng is None else rng
        block_size = self.config.block_size
        was_training = self.training
        self.eval()
        try:
            cache = KVCache(len(self.transformer.h)) if use_cache else None
            transposed = None  # the weights as contiguous Wᵀ, made for the first whole window
            for _ in range(max_new_tokens):
                with no_grad():
                    if cache is not None and idx.shape[1] <= block_size:
                        logits = self(idx[:, len(cache) :], kv_cache=cache, last_only=True)[0].data[:, -1, :]
                    else:
                        # past block_size the window slides by one each step, every token moves to
                        # a new position, and the whole window is recomputed, as in nanoGPT
                        transposed = self.transposed_weights() if transposed is None else transposed
                        logits = self.window_logits(idx[:, -block_size:], transposed)
                    next_ids = sample(logits, temperature, top_k, top_p, rng)  # logits (B, V) -> (B,)
                idx = np.concatenate([idx, next_ids[:, None]], axis=1)  # (B, T + 1)
                yield next_ids
        finally:
            self.train(was_training)

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups as nanoGPT's: weight decay on every parameter with ndim >= 2
        (the matmul weights and embeddings), none on biases and LayerNorm gains."""
        params = [p for _, p in self.named_parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas: tuple[float, float]):
        """minigrad.optim.AdamW over `optimizer_groups(weight_decay)`, as nanoGPT's helper."""
        return AdamW(self.optimizer_groups(weight_decay), lr=learning_rate, betas=betas)


def filter_logits(logits: np.ndarray, top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """A copy of logits (B, V) with -inf outside the allowed support.

    top_k keeps the k largest logits of each row (ties with the k-th are kept, as nanoGPT's
    `logits < v[:, [-1]]`). top_p keeps the smallest set of most likely tokens whose
    probability reaches p: a token stays if the tokens more likely than it hold less than p.
    """
    logits = np.array(logits, dtype=np.float64)
    V = logits.shape[-1]
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        kth = -np.sort(-logits, axis=-1)[:, min(top_k, V) - 1 : min(top_k, V)]  # (B, 1)
        logits[logits < kth] = -np.inf
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
        order = np.argsort(-logits, axis=-1, kind="stable")  # (B, V) most likely first
        sorted_logits = np.take_along_axis(logits, order, axis=-1)  # (B, V)
        probs = np.exp(sorted_logits - sorted_logits[:, :1])  # (B, V)
        probs /= probs.sum(axis=-1, keepdims=True)
        mass_before = np.cumsum(probs, axis=-1) - probs  # (B, V) probability of the more likely tokens
        drop_sorted = mass_before >= top_p  # the first token always stays: its mass_before is 0
        drop = np.empty_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)  # back to vocabulary order
        logits[drop] = -np.inf
    return logits


def sample(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One token id per row of logits (B, V) -> (B,) int64; temperature 0 is greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    rng = default_rng() if rng is None else rng
    scaled = filter_logits(np.asarray(logits, dtype=np.float64) / temperature, top_k, top_p)  # (B, V)
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))  # (B, V), 0 outside the support
    cdf = np.cumsum(probs, axis=-1)  # (B, V)
    # inverse-CDF sampling: the first token whose cumulative probability exceeds u ~ U[0, total)
    u = rng.random((cdf.shape[0], 1)) * cdf[:, -1:]  # (B, 1)
    return np.minimum((cdf <= u).sum(axis=-1), cdf.shape[-1] - 1).astype(np.int64)


def _token_ids(idx, vocab_size: int) -> np.ndarray:
    """Token ids as an int64 array (B, T), checked against the vocabulary."""
    idx = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if idx.ndim != 2 or idx.dtype.kind not in "iu":
        raise ValueError(f"GPT: idx must be integer token ids of shape (B, T), got {idx.dtype} of shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= vocab_size):
        raise ValueError(f"GPT: token ids must lie in [0, {vocab_size}), got {idx.min()}..{idx.max()}")
    return idx.astype(np.int64, copy=False)
