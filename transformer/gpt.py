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
position (B, T, V), not only the last one, so that both calls have the same shape.

Attention is the one every model of this package uses: `scaled_dot_product_attention`, the
heads laid out as transformer/attention.py's `split_heads` and `merge_heads` lay them (written
out here, as nanoGPT writes them, so that a graph's ops name this file's lines). The modules
here keep nanoGPT's names (c_attn, c_fc, ...), which is why they are not the torch.nn-named
layers of transformer/blocks.py.

Later recipes (modded-nanogpt, nanochat) train the same network faster with a few changes,
each a GPTConfig field whose default keeps nanoGPT's model: `rotary` (rotary position
embeddings in attention, no wpe), `norm="rmsnorm"`, `qk_norm`, `activation="relu2"`,
`tie_embeddings=False` (lm_head.weight its own tensor), `logit_softcap` and, already,
`bias=False`. Each is explained where the model uses it.
`GPTConfig(fused=False)` runs the model on the readable definitions of minigrad/functional.py
alone (attention as q kᵀ, scale, causal mask, softmax, @ v), as nanoGPT's `flash=False`;
fused=True, the default, runs minigrad/kernels.py's fused twins, with the same numbers: the
GPT and each of its parts run under `minigrad.use_kernels(config.fused)` (`Module.fused`).

The forward takes an optional KV cache (transformer/sample.py's `KVCache`): then idx holds
only the positions after those the cache has seen, each block's attention meets the cached
keys and values, and the cache learns the new ones. Sampling lives in transformer/sample.py.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

import minigrad.functional as F
from minigrad import default_rng, kernels
from minigrad.nn import GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleDict, ModuleList, RMSNorm
from minigrad.optim import AdamW
from minigrad.tensor import Tensor
from transformer.attention import merge_heads, split_heads
from transformer.positional import RotaryEmbedding

NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "relu2")


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
    fused: bool = True  # minigrad/kernels.py's fused ops; False: functional.py's definitions only
    # later recipes' choices; the defaults are GPT-2's
    rotary: bool = False  # rotate queries and keys by position (RoPE) instead of adding wpe
    norm: str = "layernorm"  # or "rmsnorm": scale only, no centring and no bias
    qk_norm: bool = False  # RMS-normalise each head's queries and keys before their dot products
    activation: str = "gelu"  # the MLP's nonlinearity: "gelu" (erf form) or "relu2", relu(x)²
    tie_embeddings: bool = True  # lm_head.weight is wte.weight; False: two tensors
    logit_softcap: float = 0.0  # c > 0 bounds the logits softly to (-c, c): c·tanh(logits / c); 0: off
    gelu_approximate: str = "none"  # the exact erf GELU, as nanoGPT; "tanh" for GPT-2's own weights (gelu_new)
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        if self.gelu_approximate not in ("none", "tanh"):
            raise ValueError(f'gelu_approximate must be "none" or "tanh", got {self.gelu_approximate!r}')
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if not self.logit_softcap >= 0:
            raise ValueError(f"logit_softcap must be >= 0 (0 turns it off), got {self.logit_softcap}")
        if self.rotary and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"rotary embeddings rotate pairs: the head size {self.n_embd // self.n_head} must be even")


# The eps of RMSNorm and QK-norm, given explicitly: torch's default (the dtype's machine epsilon)
# is smaller, and every trained model and documented speedrun result was made with this one.
RMS_NORM_EPS = 1e-6


def norm_layer(config: GPTConfig) -> Module:
    """The normalisation of the blocks and of the final hidden state.

    LayerNorm (GPT-2) subtracts the mean, divides by the standard deviation, scales and shifts.
    RMSNorm (Zhang & Sennrich 2019) only divides by the root mean square and scales: fewer
    operations and no bias, and in practice as good, so later GPTs use it.
    """
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=RMS_NORM_EPS)
    return LayerNorm(config.n_embd, config.layer_norm_eps, bias=config.bias)


class CausalSelfAttention(Module):
    """Multi-head self-attention in which position t attends to positions 0..t only.

    One Linear (c_attn) computes queries, keys and values for all heads at once (3C outputs,
    laid out [q | k | v], each head a run of hs = C / nh channels); c_proj mixes the heads.
    x (B, T, C) -> (B, T, C).
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None):
        super().__init__()
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias, rng=rng)
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias, rng=rng)
        # dropout on the attention weights happens inside attention; this module holds its
        # probability and generator, and follows train()/eval()
        self.attn_dropout = Dropout(config.dropout, rng=rng)
        self.resid_dropout = Dropout(config.dropout, rng=rng)
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.fused = config.fused  # kernels or definitions, as for the whole model (see Module.fused)
        self.qk_norm = config.qk_norm
        self.rotary = RotaryEmbedding(config.n_embd // config.n_head) if config.rotary else None

    def heads(self, x: Tensor, offset: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values of x (B, T, C), each split into heads: (B, nh, T, hs).

        x's first position is position `offset` (a KV cache's later tokens), which only rotary
        embeddings need. With qk_norm, each query and key is divided by its root mean square
        (Dehghani et al. 2023): a score q·k/√hs can then never exceed √hs, so a large learning
        rate cannot blow the attention logits up and saturate the softmax. Rotary embeddings
        turn q and k by an angle proportional to their position, after the normalisation,
        which does not change their length.
        """
        nh = self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C): all heads' q, k, v in one matmul, laid out [q | k | v]
        qkv = split_heads(qkv, 3 * nh)  # (B, 3nh, T, hs): the query heads, then the key heads, then the value heads
        q, k, v = (qkv[:, i * nh : (i + 1) * nh] for i in range(3))  # (B, nh, T, hs) each
        if self.qk_norm:
            q, k = F.rms_norm(q, eps=RMS_NORM_EPS), F.rms_norm(k, eps=RMS_NORM_EPS)  # (B, nh, T, hs) each, unit RMS
        if self.rotary is not None:
            q, k = self.rotary(q, offset), self.rotary(k, offset)  # (B, nh, T, hs) each
        return q, k, v

    def forward(self, x: Tensor, kv_cache=None, outputs: int | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C). With kv_cache (a LayerKVCache), x holds the positions after
        those the cache has seen; they attend to the cached keys and values too, which the cache
        then extends by theirs. With `outputs`, only the last `outputs` positions ask (their
        queries meet every key): (B, outputs, C), the rest being wanted only as keys and values."""
        T, past = x.shape[1], 0 if kv_cache is None else len(kv_cache)
        q, k, v = self.heads(x, offset=past)  # (B, nh, T, hs) each
        if kv_cache is not None:
            k, v = kv_cache.extend(k, v)  # (B, nh, past + T, hs)
        if outputs is not None and outputs < T:
            q = q[:, :, T - outputs :]  # (B, nh, outputs, hs)
        # query i sits at position first + i and may see keys 0 .. first + i: the causal mask,
        # shifted by `first`; a lone query is the last position, which sees every key
        first, causal = past + T - q.shape[2], q.shape[2] > 1
        mask = F.causal_mask(q.shape[2], past + T, offset=first) if causal and first > 0 else None
        dropout_p = self.attn_dropout.p if self.training else 0.0
        attention = kernels.scaled_dot_product_attention  # the kernel or its definition: mg.use_kernels
        y = attention(q, k, v, mask, dropout_p=dropout_p, is_causal=causal and first == 0, rng=self.attn_dropout.rng)
        y = merge_heads(y)  # (B, nh, T_q, hs) -> (B, T_q, C): the heads side by side again
        return self.resid_dropout(self.c_proj(y))  # (B, T_q, C)


class ReLUSquared(Module):
    """relu(x)²: zero for x < 0, x² above (So et al. 2021, "Primer").

    As cheap as a ReLU, with a continuous slope at 0 and growing like x² beyond it; Primer
    found it learns faster per step than GELU in language models' MLPs, and it needs no erf
    or tanh. x -> same shape.
    """

    def forward(self, x: Tensor) -> Tensor:
        return x.relu().square()


class MLP(Module):
    """Position-wise feed-forward: C -> 4C -> GELU (or ReLU²) -> C.  x (B, T, C) -> (B, T, C)."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias, rng=rng)
        # GELU: the exact erf form by default, as nn.GELU() in nanoGPT (which calls this module `gelu`)
        self.activation = GELU(config.gelu_approximate) if config.activation == "gelu" else ReLUSquared()
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias, rng=rng)
        self.dropout = Dropout(config.dropout, rng=rng)
        self.fused = config.fused

    def forward(self, x: Tensor) -> Tensor:
        x = self.c_fc(x)  # (B, T, 4C)
        x = self.activation(x)  # (B, T, 4C)
        x = self.c_proj(x)  # (B, T, C)
        return self.dropout(x)  # (B, T, C)


class Block(Module):
    """A pre-norm Transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

    Normalising the input of each sublayer, not its output, leaves the residual stream an
    identity path from embedding to head, which keeps deep stacks trainable (GPT-2).
    x (B, T, C) -> (B, T, C); kv_cache and `outputs` (B, outputs, C) as in CausalSelfAttention.
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None):
        super().__init__()
        self.ln_1 = norm_layer(config)
        self.attn = CausalSelfAttention(config, rng)
        self.ln_2 = norm_layer(config)
        self.mlp = MLP(config, rng)
        self.fused = config.fused

    def forward(self, x: Tensor, kv_cache=None, outputs: int | None = None) -> Tensor:
        h = self.attn(self.ln_1(x), kv_cache, outputs)  # (B, T_q, C): every position, or the last `outputs`
        if outputs is not None:
            x = x[:, -h.shape[1] :]  # only those positions' residual stream goes on
        x = x + h  # (B, T_q, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T_q, C)
        return x


class GPT(Module):
    """The GPT language model: token ids (B, T) -> next-token logits (B, T, vocab_size).

    `rng` (a np.random.Generator) draws the initial weights and, afterwards, the dropout
    masks, so a seeded generator makes both reproducible; without one, both come from
    minigrad's default generator (`mg.manual_seed`).
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None):
        super().__init__()
        self.config = config
        self.fused = config.fused  # every call runs under use_kernels(config.fused) (see Module.fused)
        # rotary embeddings put the positions into attention: no learned position table then
        wpe = {} if config.rotary else dict(wpe=Embedding(config.block_size, config.n_embd, rng=rng))
        self.transformer = ModuleDict(
            dict(
                wte=Embedding(config.vocab_size, config.n_embd, rng=rng),
                **wpe,
                drop=Dropout(config.dropout, rng=rng),
                h=ModuleList([Block(config, rng) for _ in range(config.n_layer)]),
                ln_f=norm_layer(config),
            )
        )
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False, rng=rng)
        if config.tie_embeddings:
            # weight tying: one tensor, registered under both names (listed once by named_parameters)
            self.transformer.wte.weight = self.lm_head.weight
        # untied, the input table can learn what a token means and the head what comes next,
        # which need not be the same thing; it costs V·C more parameters
        self._init_weights(default_rng() if rng is None else rng)

    def _init_weights(self, rng: np.random.Generator) -> None:
        """GPT-2's initialisation: weights N(0, 0.02), biases 0, LayerNorms 1 and 0 (as built).

        Each block adds its attention's and its MLP's c_proj output to the residual stream: 2·n_layer
        additions, each adding variance. Scaling those weights' std by 1/√(2·n_layer) makes the
        variance they add together independent of depth; it does not stop the growth. At
        initialisation the stream's std starts at 0.028 (two N(0, 0.02) embeddings added) and
        ends near 0.05 after 4 blocks or 12 alike; unscaled it would keep growing with depth
        (docs/transformer.md, "Residual connections", measures it).
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
        return count - self.transformer.wpe.weight.size if non_embedding and not self.config.rotary else count

    def forward(self, idx, targets=None, kv_cache=None, logits_to_keep: int = 0) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab_size), loss or None).

        With targets (B, T) the loss is the mean cross-entropy over the positions whose target
        is not -1. With kv_cache (transformer/sample.py's KVCache), idx holds the tokens after
        the len(kv_cache) positions the cache has seen, and the cache learns them.
        `logits_to_keep` = k > 0 (Hugging Face's name) gives the logits of the last k positions
        only, (B, k, V), as sampling needs: the last block then runs only those positions past
        its keys and values, which is the same arithmetic on fewer rows.
        """
        idx = token_ids(idx, self.config.vocab_size)
        B, T = idx.shape
        past = 0 if kv_cache is None else len(kv_cache)
        if past + T > self.config.block_size:
            raise ValueError(
                f"GPT: cannot forward a sequence of length {past + T}, block size is only "
                f"{self.config.block_size}; crop the input to its last {self.config.block_size} tokens"
            )
        if logits_to_keep < 0 or (logits_to_keep and targets is not None):
            raise ValueError(f"GPT: logits_to_keep must be >= 0, and 0 (all) with targets; got {logits_to_keep}")
        x = self.transformer.drop(self.embed(idx, offset=past))  # (B, T, C)
        layer_caches = [None] * len(self.transformer.h) if kv_cache is None else kv_cache.layers
        for i, (block, layer_cache) in enumerate(zip(self.transformer.h, layer_caches)):
            # every position of a block's output is a key and a value of the next block; only the
            # last block can leave out the positions whose logits are not wanted
            last = i == len(self.transformer.h) - 1
            x = block(x, layer_cache, logits_to_keep if last and 0 < logits_to_keep < T else None)  # (B, T or k, C)
        logits = self.head(x)  # (B, T or k, V)

        loss = None
        if targets is not None:
            targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
            if targets.shape != (B, T):
                raise ValueError(f"GPT: targets have shape {targets.shape}, expected {(B, T)} like idx")
            loss = kernels.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)  # ()
        return logits, loss

    def embed(self, idx: np.ndarray, offset: int = 0) -> Tensor:
        """Token ids (B, T) at positions offset.. -> their embeddings (B, T, C), plus the learned
        position embeddings unless the positions enter attention by rotation (rotary)."""
        tok_emb = self.transformer.wte(idx)  # (B, T, C) token embeddings
        if self.config.rotary:
            return tok_emb
        return tok_emb + self.transformer.wpe(np.arange(offset, offset + idx.shape[1]))  # (B, T, C)

    def head(self, x: Tensor) -> Tensor:
        """The last block's output (B, T, C) -> logits (B, T, V): final norm, lm_head, soft cap.

        With logit_softcap c the logits become c·tanh(logits / c) (Gemma 2): close to the
        identity for small logits, never beyond ±c, so the model cannot buy a lower loss by
        making its logits ever larger and its softmax ever sharper.
        """
        x = self.transformer.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)
        cap = self.config.logit_softcap
        return cap * (logits / cap).tanh() if cap > 0 else logits

    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Extend idx (B, T) by max_new_tokens sampled tokens -> (B, T + max_new_tokens) int64.

        Each token is drawn from softmax(logits / temperature), restricted to the top_k most
        likely tokens and/or the smallest set holding probability top_p (nucleus sampling);
        temperature 0 picks the most likely token (greedy). The context is cropped to its last
        block_size tokens, as nanoGPT does. The model runs in eval mode and without a graph.
        The loop is transformer/sample.py's `generate_tokens`, with its KV cache.
        """
        from transformer.sample import generate_tokens  # sample.py imports this module: bound at call time

        idx = token_ids(idx, self.config.vocab_size)
        sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, rng=rng)
        steps = generate_tokens(self, idx, max_new_tokens, **sampling)  # (B,) each
        return np.concatenate([idx] + [next_ids[:, None] for next_ids in steps], axis=1)

    def muon_groups(self, weight_decay: float, muon_lr_scale: float) -> list[dict]:
        """MuonWithAdamW groups: the blocks' matrices to Muon (their rate lr · muon_lr_scale,
        weight decay applied), the embeddings and head to AdamW with decay, gains and biases
        to AdamW without. Muon is for hidden layers: a token's embedding row sees a gradient
        only when the token occurs, and the head's rows are per-token classifiers, so
        orthogonalising their updates would mix unrelated tokens."""
        named = [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        hidden = [p for name, p in named if name.startswith("transformer.h.") and p.ndim == 2]
        hidden_ids = {id(p) for p in hidden}
        rest = [p for _, p in named if id(p) not in hidden_ids]
        return [
            {"params": hidden, "use_muon": True, "weight_decay": weight_decay, "lr_scale": muon_lr_scale},
            {"params": [p for p in rest if p.ndim >= 2], "use_muon": False, "weight_decay": weight_decay},
            {"params": [p for p in rest if p.ndim < 2], "use_muon": False, "weight_decay": 0.0},
        ]

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

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike) -> GPT:
        """GPT-2 (small to XL) from a Hugging Face directory (config.json + model.safetensors) or a
        hub name such as "gpt2" (through the Hugging Face cache); in eval mode. See transformer/huggingface.py."""
        from transformer.huggingface import load_pretrained  # that module imports this one

        return load_pretrained(name_or_dir)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write config.json + model.safetensors that transformers' GPT2LMHeadModel.from_pretrained loads.

        A model with parts GPT-2 lacks (rotary, RMSNorm, QK-norm, ReLU², soft-capping) is a
        ValueError naming them, and nothing is written."""
        from transformer.huggingface import save_pretrained

        save_pretrained(self, directory)


def token_ids(idx, vocab_size: int) -> np.ndarray:
    """Token ids as an int64 array (B, T), checked against the vocabulary."""
    idx = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if idx.ndim != 2 or idx.dtype.kind not in "iu":
        raise ValueError(f"GPT: idx must be integer token ids of shape (B, T), got {idx.dtype} of shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= vocab_size):
        raise ValueError(f"GPT: token ids must lie in [0, {vocab_size}), got {idx.min()}..{idx.max()}")
    return idx.astype(np.int64, copy=False)


def parameter_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """The names and shapes of `GPT(config).state_dict()`, in its order, without building the model.

    A checkpoint's header is checked against these before a model is built from an untrusted
    config, so a mismatch is an error instead of a huge allocation.
    """
    V, T, C = config.vocab_size, config.block_size, config.n_embd

    def norm(name: str) -> dict[str, tuple[int, ...]]:
        has_bias = config.bias and config.norm == "layernorm"  # RMSNorm has a weight only
        return {f"{name}.weight": (C,), **({f"{name}.bias": (C,)} if has_bias else {})}

    def linear(name: str, out_features: int, in_features: int) -> dict[str, tuple[int, ...]]:
        bias = {f"{name}.bias": (out_features,)} if config.bias else {}
        return {f"{name}.weight": (out_features, in_features), **bias}

    shapes = {"transformer.wte.weight": (V, C), **({} if config.rotary else {"transformer.wpe.weight": (T, C)})}
    for i in range(config.n_layer):
        block = f"transformer.h.{i}"
        shapes |= norm(f"{block}.ln_1") | linear(f"{block}.attn.c_attn", 3 * C, C)
        shapes |= linear(f"{block}.attn.c_proj", C, C) | norm(f"{block}.ln_2")
        shapes |= linear(f"{block}.mlp.c_fc", 4 * C, C) | linear(f"{block}.mlp.c_proj", C, 4 * C)
    return shapes | norm("transformer.ln_f") | {"lm_head.weight": (V, C)}
