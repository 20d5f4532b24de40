"""The network functions, defined: each a few lines of primitive tensor ops.

These are the readable definitions of what a neural network computes: a linear layer, GELU,
layer and RMS normalisation, cross-entropy, dropout, embedding lookup and scaled dot-product
attention. Each is written with the primitive ops of minigrad/ops.py, so its gradient comes
from theirs, and `minigrad.viz.draw_graph` shows every step. `GPTConfig(fused=False)` runs a
whole GPT on these functions alone.

minigrad/kernels.py holds a fast twin of most of them: one `Function` with a backward derived
by hand, the same arguments and the same numbers (tests hold each pair equal). The models call
the twins, and `minigrad.use_kernels(False)` makes every such call run the definition here
instead. A reader never needs to open kernels.py to understand what the model computes.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from minigrad import ops
from minigrad.autograd import Function
from minigrad.creation import default_rng
from minigrad.tensor import Tensor, array_of
from minigrad.torch_spellings import torch_keywords

_SQRT_HALF = math.sqrt(0.5)
_vector_erf = np.frompyfunc(math.erf, 1, 1)


class Erf(Function):
    """erf(x) = 2/√π ∫₀ˣ e^(−t²) dt, elementwise, with the C library's erf (no SciPy)."""

    tensor_backward = True  # backward is written with ops that run on arrays and on Tensors

    def forward(self, x):
        self.x = x
        return np.asarray(_vector_erf(x), dtype=x.dtype)

    def backward(self, g):
        # d erf(x)/dx = 2/√π · e^(−x²)
        return g * (2.0 / math.sqrt(math.pi)) * ops.exp(-self.x * self.x)


def erf(x: Tensor) -> Tensor:
    """The error function of every element of x."""
    return Erf.apply(x)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b, as torch.nn.functional.linear.

    x (..., in), weight (out, in), bias (out,) -> (..., out). As torch's, weight may be (in,)
    (then y is (...)) and bias any shape that broadcasts to y's without growing it.
    """
    y = x @ weight.T  # (..., out)
    if bias is None:
        return y
    if np.broadcast_shapes(bias.shape, y.shape) != y.shape:
        raise ValueError(
            f"linear: a bias of shape {bias.shape} would grow the output of shape {y.shape}; "
            f"give it shape {y.shape[-1:]}"
        )
    return y + bias


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU(x) = x Φ(x), Φ the standard normal CDF: Φ(x) = ½ (1 + erf(x / √2)).

    approximate="tanh" gives GPT-2's form ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))).
    The exact form is torch.nn.GELU()'s default. Any shape -> the same shape.
    """
    if approximate == "none":
        return 0.5 * x * (1.0 + erf(x * _SQRT_HALF))
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1.0 + inner.tanh())
    raise ValueError(f'gelu: approximate must be "none" or "tanh", not {approximate!r}')


def normalized_axes(x: Tensor, weight, normalized_shape) -> tuple[int, ...]:
    """The trailing axes a norm works over: normalized_shape, else weight's shape, else the last.

    ValueError when that shape is not x's trailing shape, or when weight's shape is not the
    normalized_shape given beside it; minigrad/kernels.py's LayerNorm asks here too.
    """
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (int(normalized_shape),)
    weight_shape = None if weight is None else tuple(weight.shape)
    if normalized_shape is not None and weight_shape is not None and weight_shape != tuple(normalized_shape):
        raise ValueError(f"weight of shape {weight_shape} does not match normalized_shape {tuple(normalized_shape)}")
    shape = weight_shape if normalized_shape is None else tuple(normalized_shape)
    shape = (x.shape[-1],) if shape is None else shape
    if tuple(x.shape[x.ndim - len(shape) :]) != shape or len(shape) > x.ndim:
        raise ValueError(f"normalized shape {shape} does not match the trailing axes of input {x.shape}")
    return tuple(range(x.ndim - len(shape), x.ndim))


def is_shape(value) -> bool:
    """Whether value is a shape (an int, or a tuple or list of ints, torch.Size included), not a tensor."""

    def is_int(n) -> bool:
        return isinstance(n, (int, np.integer)) and not isinstance(n, bool)

    return is_int(value) or (isinstance(value, (tuple, list)) and all(is_int(n) for n in value))


def arguments_in_either_order(function_name: str, args: tuple, kwargs: dict, own_order, torch_order) -> tuple:
    """A norm's arguments after the input, read in torch's order when the first is a shape, else in minigrad's.

    torch's norms take (input, normalized_shape, weight, ...), minigrad's (x, weight, ...): a
    shape cannot be a weight, so the second argument tells which order the call uses. Each
    order is a function whose signature spells it and which returns the arguments in one
    order; a call that fits neither raises a TypeError naming both.
    """
    order = torch_order if args and is_shape(args[0]) else own_order
    try:
        return order(*args, **kwargs)
    except TypeError as error:
        own, theirs = (", ".join(map(str, inspect.signature(f).parameters.values())) for f in (own_order, torch_order))
        detail = str(error).split("() ", 1)[-1]  # Python's message without the name of the order function
        raise TypeError(
            f"{function_name} takes (x, {own}) or, as torch, (input, {theirs}); the arguments after the input: {detail}"
        ) from None


def _layer_norm_order(weight=None, bias=None, eps=1e-5, normalized_shape=None) -> tuple:
    return weight, bias, eps, normalized_shape


def _torch_layer_norm_order(normalized_shape, weight=None, bias=None, eps=1e-5) -> tuple:
    return weight, bias, eps, normalized_shape


def layer_norm_arguments(args: tuple, kwargs: dict) -> tuple:
    """layer_norm's (weight, bias, eps, normalized_shape) from either order (see `layer_norm`)."""
    return arguments_in_either_order("layer_norm", args, kwargs, _layer_norm_order, _torch_layer_norm_order)


def layer_norm(x: Tensor, *args, **kwargs) -> Tensor:
    """Layer normalisation (Ba et al., 2016) over the trailing axes of x.

    y = (x − μ) / √(σ² + eps) · weight + bias, with μ and σ² the mean and population variance
    over those axes. Takes minigrad's `layer_norm(x, weight=None, bias=None, eps=1e-5,
    normalized_shape=None)` or torch's `layer_norm(input, normalized_shape, weight=None,
    bias=None, eps=1e-5)`, told apart by the second argument: a shape (int, tuple, list) or a
    weight. x (..., *S), weight and bias S (S is normalized_shape, else weight's shape, else
    the last axis) -> (..., *S).
    """
    weight, bias, eps, normalized_shape = layer_norm_arguments(args, kwargs)
    axes = normalized_axes(x, weight, normalized_shape)
    mean = x.mean(axis=axes, keepdims=True)  # (..., 1, ..., 1)
    var = x.var(axis=axes, keepdims=True)  # (..., 1, ..., 1)
    y = (x - mean) / (var + eps).sqrt()  # (..., *S) zero mean, unit variance
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _rms_norm_order(weight=None, eps=None, normalized_shape=None) -> tuple:
    return weight, eps, normalized_shape


def _torch_rms_norm_order(normalized_shape, weight=None, eps=None) -> tuple:
    return weight, eps, normalized_shape


def rms_norm(x: Tensor, *args, **kwargs) -> Tensor:
    """RMS normalisation (Zhang & Sennrich, 2019): x / √(mean(x²) + eps) · weight.

    Takes minigrad's `rms_norm(x, weight=None, eps=None, normalized_shape=None)` or torch's
    `rms_norm(input, normalized_shape, weight=None, eps=None)`, told apart as in `layer_norm`.
    eps=None is torch's default: the machine epsilon of x's dtype (np.finfo(x.dtype).eps).
    The mean runs over the trailing axes normalized_shape names (else weight's shape, else the
    last axis). x (..., *S), weight S -> (..., *S).
    """
    weight, eps, normalized_shape = arguments_in_either_order(
        "rms_norm", args, kwargs, _rms_norm_order, _torch_rms_norm_order
    )
    eps = float(np.finfo(x.dtype).eps) if eps is None else eps
    axes = normalized_axes(x, weight, normalized_shape)
    y = x / ((x * x).mean(axis=axes, keepdims=True) + eps).sqrt()
    return y * weight if weight is not None else y


def class_axis(logits_shape: tuple) -> int:
    """The class axis of cross_entropy's input, as torch's: 1 of (N, C, d1, ...), 0 of an unbatched (C,)."""
    return min(1, len(logits_shape) - 1)


def cross_entropy_targets(
    logits_shape: tuple, targets, ignore_index: int, reduction: str, label_smoothing: float = 0.0
) -> tuple:
    """cross_entropy's checked class ids: (targets, kept, picked), each (N, d1, ...), or () unbatched.

    The input is torch's (N, C, d1, ...), or (C,) for one sample; the targets have its shape
    without the class axis (an unbatched sample's may be (1,), as torch). picked is the target
    where kept and 0 where ignored, so every position can be indexed. TypeError on an
    ignore_index that is not an int; ValueError on a reduction other than "mean", "sum" or
    "none", on a label_smoothing outside [0, 1], on targets of another shape, and on a kept
    target outside [0, C).
    """
    check_ignore_index(ignore_index)
    check_label_smoothing(label_smoothing)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f'cross_entropy: reduction must be "mean", "sum" or "none", not {reduction!r}')
    if not logits_shape:
        raise ValueError("cross_entropy: the input needs a class axis: (N, C, d1, ...) or (C,), got shape ()")
    C = logits_shape[class_axis(logits_shape)]
    targets = array_of(targets)
    expected = logits_shape[:1] + logits_shape[2:] if len(logits_shape) > 1 else ()
    if len(logits_shape) == 1 and targets.shape == (1,):
        targets = targets.reshape(())
    if targets.shape != expected:
        raise ValueError(
            f"cross_entropy: logits of shape {logits_shape} need {math.prod(expected)} targets, of shape "
            f"{expected} (the class axis {class_axis(logits_shape)} left out); got shape {targets.shape}"
        )
    kept = np.asarray(targets != ignore_index)  # (N, d1, ...), an array even when 0-d
    picked = np.where(kept, targets, 0)
    if kept.any() and (picked.min() < 0 or picked.max() >= C):
        raise ValueError(f"cross_entropy: targets must lie in [0, {C}) or equal ignore_index")
    return targets, kept, picked


def check_label_smoothing(label_smoothing: float) -> None:
    """ValueError unless 0 <= label_smoothing <= 1 (torch raises above 1, and reads any number below 0 as 0)."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {label_smoothing}")


def check_ignore_index(ignore_index, function_name: str = "cross_entropy") -> None:
    """TypeError unless ignore_index is an int (not a bool). Where minigrad has ignore_index, torch
    has other arguments (cross_entropy's class weights, nll_loss's deprecated size_average), which
    would otherwise be compared with the targets and give another loss."""
    if not isinstance(ignore_index, (int, np.integer)) or isinstance(ignore_index, bool):
        raise TypeError(
            f"{function_name}: ignore_index must be an int, got {type(ignore_index).__name__}; torch has other "
            "arguments in its place (cross_entropy's class weights, nll_loss's size_average): pass ignore_index="
        )


def cross_entropy(
    logits: Tensor, targets, ignore_index: int = -1, reduction: str = "mean", label_smoothing: float = 0.0
) -> Tensor:
    """−log softmax(logits)[target] at each position, as torch.nn.functional.cross_entropy.

    logits (N, C) with targets (N,), or (N, C, d1, ...) with (N, d1, ...), or (C,) with (): the
    classes lie along axis 1 (0 unbatched), as torch's, and the targets are class ids, or
    class probabilities of the logits' shape (floats). Targets equal to ignore_index count
    for nothing. With label_smoothing ε the target distribution is (1 − ε) · onehot(target)
    + ε / C, so a position's loss is (1 − ε) · (−log p[target]) + ε · mean over classes of
    (−log p[c]). reduction "mean" averages over the kept targets (NaN when none is kept, with
    gradient 0, as torch), "sum" adds them, "none" gives each loss in the targets' shape (0
    where ignored).
    """
    check_ignore_index(ignore_index)
    if targets_are_probabilities(targets):  # a probability for every class, as torch reads float targets
        return soft_cross_entropy(logits, array_of(targets), reduction, label_smoothing)
    targets, kept, _ = cross_entropy_targets(logits.shape, targets, ignore_index, reduction, label_smoothing)
    classes = class_axis(logits.shape)
    log_probs = logits.log_softmax(axis=classes)  # (N, C, d1, ...)
    losses = nll_loss(log_probs, targets, ignore_index=ignore_index, reduction="none")  # (N, d1, ...) 0 where ignored
    if label_smoothing:
        smooth = -log_probs.mean(axis=classes)  # (N, d1, ...) mean over classes of −log p[c]
        losses = (1.0 - label_smoothing) * losses + label_smoothing * smooth.masked_fill(~kept, 0.0)
    if reduction == "none":
        return losses
    return _reduce(losses[kept], reduction, mean_divisor=float(kept.sum()))  # only kept targets, as in nll_loss


def targets_are_probabilities(targets) -> bool:
    """Whether cross_entropy's targets are class probabilities (floats), not class ids (integers)."""
    return array_of(targets).dtype.kind == "f"


def soft_cross_entropy(logits: Tensor, probabilities: np.ndarray, reduction: str, label_smoothing: float) -> Tensor:
    """cross_entropy against class probabilities of the logits' shape (N, C, d1, ...): −Σ_c t_c log softmax(z)_c
    at each position, t smoothed to (1 − ε) t + ε / C; "mean" averages over the positions, as torch."""
    check_label_smoothing(label_smoothing)
    if probabilities.shape != logits.shape:
        raise ValueError(
            f"cross_entropy: probability targets must have the logits' shape {logits.shape}, got {probabilities.shape}"
        )
    classes = class_axis(logits.shape)
    t = probabilities.astype(logits.dtype) * (1.0 - label_smoothing) + label_smoothing / logits.shape[classes]
    losses = -(logits.log_softmax(axis=classes) * t).sum(axis=classes)  # (N, d1, ...)
    return _reduce(losses, reduction)


def dropout_mask(shape: tuple, p: float, dtype, rng: np.random.Generator | None = None) -> np.ndarray:
    """Inverted dropout's multiplier: 0 with probability p, else 1 / (1 − p); drawn from rng (all 0 at p = 1)."""
    if p == 1.0:
        return np.zeros(shape, dtype)
    rng = default_rng() if rng is None else rng
    return (rng.random(shape) >= p).astype(dtype) * dtype.type(1.0 / (1.0 - p))


def dropout(x: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1 − p).

    The expected value of every element stays x, so nothing changes at evaluation time
    (training=False returns x). rng=None draws from minigrad's default generator.
    """
    if isinstance(rng, bool):  # torch's fourth argument, inplace, would land here
        raise TypeError(
            "dropout: the fourth argument is rng, a np.random.Generator; torch's inplace= has no counterpart"
        )
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return x * Tensor._from_array(dropout_mask(x.shape, p, x.dtype, rng))


def embedding_ids(ids, num_embeddings: int) -> np.ndarray:
    """ids as an int64 or int32 array (torch's index types), each in [0, num_embeddings); else TypeError, IndexError."""
    ids = array_of(ids)
    if ids.dtype not in (np.int64, np.int32):
        raise TypeError(f"embedding ids must be int64 or int32, as torch's, not {ids.dtype}; pass ids.astype(np.int64)")
    if ids.size and (ids.min() < 0 or ids.max() >= num_embeddings):
        # as torch: -1 is not the last row, it is an error (a padding id of -1 would read a real row)
        raise IndexError(f"embedding ids must lie in [0, {num_embeddings}), got {ids.min()}..{ids.max()}")
    return ids


def embedding(ids, weight: Tensor) -> Tensor:
    """Rows of weight (V, C) picked by integer ids (...) -> (..., C)."""
    return weight[embedding_ids(ids, weight.shape[0])]


def causal_mask(q_len: int, k_len: int, offset: int = 0) -> np.ndarray:
    """(q_len, k_len) boolean, True where query i may see key j: j <= i + offset.

    offset 0 is torch's `is_causal`; a query block that follows `offset` earlier keys (the
    new positions of a KV-cached step) sees those keys too.
    """
    return np.tril(np.ones((q_len, k_len), dtype=bool), k=offset)


def attention_bias(mask, dtype, blocked_where: bool = False) -> np.ndarray:
    """An attention mask as the bias added to the scores: 0 where attention may happen, −inf where not.

    A boolean mask blocks where it equals `blocked_where`: False for torch.nn.functional's
    attn_mask (True = may attend), True for torch.nn's masks (True = masked out), the one place
    where the two conventions meet. A float mask already is a bias and comes back in `dtype`.
    The mask (an array or a Tensor) is a constant here; the shape is the mask's.
    """
    mask = array_of(mask)
    if mask.dtype == bool:
        return np.where(mask == blocked_where, -np.inf, 0.0).astype(dtype)
    return mask.astype(dtype, copy=False)


def check_attention_mask(attn_mask, dtype) -> None:
    """TypeError unless attn_mask is boolean or floating, as scaled_dot_product_attention's in torch.

    A mask of integers (0/1) would be added to the scores as numbers, not read as allowed or
    not. A float Tensor must be float32 or the query's `dtype`, as torch requires; a NumPy
    array of floats is taken in the query's dtype.
    """
    if attn_mask is None:
        return
    mask_dtype = array_of(attn_mask).dtype
    if mask_dtype.kind not in "bf":
        raise TypeError(
            f"scaled_dot_product_attention: attn_mask must be boolean (True where attention may happen) or float "
            f"(added to the scores), not {mask_dtype}; pass mask.astype(bool) for a 0/1 mask"
        )
    if isinstance(attn_mask, Tensor) and mask_dtype.kind == "f" and mask_dtype not in (np.float32, dtype):
        raise TypeError(
            f"scaled_dot_product_attention: a float attn_mask must be float32 or the query's dtype {np.dtype(dtype)}, "
            f"as torch's, not {mask_dtype}; pass mask.astype(query.dtype)"
        )


def attention_weights(query: Tensor, key: Tensor, attn_mask=None, is_causal: bool = False, scale=None) -> Tensor:
    """softmax(Q Kᵀ · scale + mask): how much each query looks at each key.

    query (..., Tq, d), key (..., Tk, d) -> (..., Tq, Tk), each row summing to 1, except the
    row of a query that the mask allows no key: its weights are 0, as torch's. The mask and
    scale mean what they mean in `scaled_dot_product_attention`.
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    # Dividing by √d keeps the scores' variance near 1 whatever d is, so the softmax does not
    # saturate into one-hot weights with vanishing gradients.
    key_t = key.transpose(*range(key.ndim - 2), key.ndim - 1, key.ndim - 2)  # (..., d, Tk)
    scores = (query @ key_t) * scale  # (..., Tq, Tk)
    if is_causal:
        scores = scores.masked_fill(~causal_mask(query.shape[-2], key.shape[-2]), -np.inf)  # no peeking ahead
    if isinstance(attn_mask, Tensor) and attn_mask.requires_grad:
        scores = scores + attn_mask  # a learned bias (Swin's relative positions), trained through the scores
    elif attn_mask is not None:
        scores = scores + attention_bias(attn_mask, scores.dtype)
    no_key = np.isneginf(scores.data).all(axis=-1, keepdims=True)  # (..., Tq, 1): queries that may see no key
    if no_key.any():
        # Such a row gets weights 0, not softmax's 0/0 = NaN (torch's "safe softmax"). Its scores
        # become 0 first: the softmax branch that `where` drops must stay finite, or its gradient,
        # 0 · NaN, would be NaN.
        return where(no_key, 0.0, _safe_where(no_key, scores, 0.0).softmax(axis=-1))  # (..., Tq, Tk)
    return scores.softmax(axis=-1)  # (..., Tq, Tk)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask=None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    rng: np.random.Generator | None = None,
) -> Tensor:
    """Attention(Q, K, V) = softmax(Q Kᵀ / √d + mask) V, as torch.nn.functional's.

    query (..., Tq, d), key (..., Tk, d), value (..., Tk, dv) -> (..., Tq, dv); the batch
    axes broadcast. attn_mask broadcasts to (..., Tq, Tk): boolean True where the query MAY
    attend to the key, or float, added to the scores (a Tensor that requires a gradient gets
    one). is_causal lets query i see keys j <= i only. scale replaces 1/√d. dropout_p > 0
    drops attention weights (inverted dropout drawn from rng, minigrad's default if None).
    A query that the masks leave no key outputs 0, as torch's.
    """
    check_attention_mask(attn_mask, query.dtype)
    weights = attention_weights(query, key, attn_mask, is_causal, scale)  # (..., Tq, Tk)
    weights = dropout(weights, dropout_p, training=dropout_p > 0.0, rng=rng)  # (..., Tq, Tk)
    return weights @ value  # (..., Tq, dv)


__all__ = [
    "arguments_in_either_order",
    "attention_bias",
    "attention_weights",
    "causal_mask",
    "check_attention_mask",
    "check_ignore_index",
    "check_label_smoothing",
    "class_axis",
    "cross_entropy",
    "cross_entropy_targets",
    "dropout",
    "dropout_mask",
    "embedding",
    "erf",
    "gelu",
    "is_shape",
    "layer_norm",
    "layer_norm_arguments",
    "linear",
    "normalized_axes",
    "rms_norm",
    "scaled_dot_product_attention",
    "targets_are_probabilities",
]


# ---------------------------------------------------------------- activations, losses and padding
# from PyTorch's vocabulary, each composed from primitives (so each gradient follows by the chain
# rule), with torch.nn.functional's names, arguments and defaults.


def _safe_where(condition: np.ndarray, x: Tensor, replacement: float) -> Tensor:
    """x where `condition` is False, `replacement` where True: the input of a branch that
    `where` will drop anyway, kept finite so its gradient (0) does not turn into 0 · inf = NaN."""
    return where(condition, replacement, x)


def silu(input: Tensor) -> Tensor:
    """x · σ(x) (also called swish)."""
    return input * input.sigmoid()


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, negative_slope · x elsewhere."""
    return where(input.data > 0, input, input * negative_slope)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """x where x > 0, alpha · (eˣ − 1) elsewhere."""
    positive = input.data > 0
    return where(positive, input, (_safe_where(positive, input, 0.0).exp() - 1) * alpha)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(βx)) / β, and x itself where βx > threshold (as torch, where the two agree)."""
    z = input * beta
    linear = z.data > threshold
    # log(1 + eᶻ) = −log σ(−z), with the stable sigmoid
    soft = -(-_safe_where(linear, z, 0.0)).sigmoid().log() * (1 / beta)
    return where(linear, input, soft)


def mish(input: Tensor) -> Tensor:
    """x · tanh(softplus(x))."""
    return input * softplus(input).tanh()


def relu(input: Tensor) -> Tensor:
    return input.relu()


def implicit_softmax_dim(input: Tensor, dim: int | None, function_name: str) -> int:
    """The dim of a softmax called without one: the last, where torch's (deprecated) choice agrees.

    torch picks dim 0 of a 0-D, 1-D or 3-D input and dim 1 otherwise: the last axis up to 2-D,
    and rarely the axis meant above that, so there a missing dim is a TypeError.
    """
    if dim is not None:
        return dim
    if input.ndim > 2:
        raise TypeError(
            f"{function_name}: give dim= for an input of shape {input.shape}; torch's implicit choice "
            f"(dim {0 if input.ndim == 3 else 1}, deprecated) is not taken here"
        )
    return -1


@torch_keywords
def softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """e^x / Σ e^x along `dim` (without dim: the last axis of an input of at most 2 dimensions, as torch)."""
    return input.softmax(dim=implicit_softmax_dim(input, dim, "softmax"))


@torch_keywords
def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """log softmax along `dim` (without dim: as `softmax`)."""
    return input.log_softmax(dim=implicit_softmax_dim(input, dim, "log_softmax"))


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """(input − target)², averaged (or summed, or each) over every element."""
    return _reduce((input - target).square(), reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """|input − target|, averaged (or summed, or each) over every element."""
    return _reduce((input - target).abs(), reduction)


def _reduce(losses: Tensor, reduction: str, mean_divisor=None) -> Tensor:
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean() if mean_divisor is None else losses.sum() / mean_divisor
    raise ValueError(f'reduction must be "mean", "sum" or "none", got {reduction!r}')


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """−input[n, target[n]] (times weight[target[n]]), averaged over the kept targets by their weights.

    input (N, C) log-probabilities, or (C,), or (N, C, d1, ...); target (N,), (), or (N, d1, ...)
    of class ids; rows whose target is `ignore_index` count for nothing.
    """
    check_ignore_index(ignore_index, "nll_loss")
    target = array_of(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss targets must be integers, not {target.dtype}")
    if input.ndim == 1 and target.shape in ((), (1,)):  # one sample, unbatched: its target () or (1,), as torch
        return nll_loss(input[None], target.reshape(1), weight, ignore_index, reduction).reshape(())
    expected = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
    if input.ndim < 2 or target.shape != expected:
        raise ValueError(f"nll_loss: input of shape {input.shape} needs target of shape {expected}, got {target.shape}")
    if isinstance(weight, Tensor) and weight.requires_grad:
        raise ValueError("nll_loss: the class weights get no gradient (as in torch); pass weight.detach()")
    classes = input.shape[1]
    kept = target != ignore_index
    safe = np.where(kept, target, 0)  # (N, d...)
    if safe.size and (safe.min() < 0 or safe.max() >= classes):
        raise IndexError(
            f"nll_loss targets must lie in [0, {classes}) or be ignore_index, got {target.min()}..{target.max()}"
        )
    picked = input.gather(1, safe[:, None]).squeeze(1).masked_fill(~kept, 0.0)  # (N, d...) 0 where ignored
    weights = (np.ones(classes) if weight is None else array_of(weight))[safe] * kept
    weights = weights.astype(input.dtype)
    losses = -picked * weights  # (N, d...) 0 where ignored
    if reduction != "none":
        # only kept targets enter a sum: with none kept the mean is 0/0 = NaN and its gradient 0, as torch's
        losses = losses[kept]
    return _reduce(losses, reduction, mean_divisor=weights.sum())


# torch's floor under p (1 − p) is the float 1e-12, 9.99999996e-13, in float64 too
_BCE_FLOOR = float(np.float32(1e-12))


class BinaryCrossEntropy(Function):
    """−(t log p + (1 − t) log(1 − p)) elementwise, each log clamped at −100, with torch's derivatives.

    d/dp = (p − t) / (p (1 − p)), its denominator kept at least 1e-12 as torch keeps it: the
    slope of the clamped logs is infinite at p = 0 and 1, this one finite (±1e12 · (p − t)).
    d/dt = log(1 − p) − log(p).
    """

    tensor_backward = True  # backward is written with ops that run on arrays and on Tensors

    def forward(self, p, t):
        self.p, self.t = p, t
        with np.errstate(divide="ignore"):
            return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))

    def backward(self, g):
        p, t = self.p, self.t
        spread = (1 - p) * p
        gp = g * (p - t) / ops.where(ops.detached(spread) > _BCE_FLOOR, spread, _BCE_FLOOR)
        gt = g * (ops.log(1 - p) - ops.log(p)) if self.needs_input_grad[1] else None
        return gp, gt


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:
    """−(t log p + (1 − t) log(1 − p)) for probabilities p in [0, 1]; each log clamped at −100, and the
    gradient finite at p = 0 and 1, as torch's (see `BinaryCrossEntropy`). target has input's shape."""
    if input.data.size and (input.data.min() < 0 or input.data.max() > 1):
        raise ValueError(
            "binary_cross_entropy: every input must lie in [0, 1] (pass logits to binary_cross_entropy_with_logits)"
        )
    t = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    if t.shape != input.shape:
        raise ValueError(
            f"binary_cross_entropy: target of shape {t.shape} for input of shape {input.shape}; give both one shape"
        )
    losses = BinaryCrossEntropy.apply(input, t)
    return _reduce(losses if weight is None else losses * weight, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor, target, weight=None, reduction: str = "mean", pos_weight=None
) -> Tensor:
    """binary_cross_entropy(σ(x), t) without forming σ(x): −(pos_weight · t log σ(x) + (1 − t) log σ(−x))."""
    t = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    log_sigmoid, log_sigmoid_negative = -softplus(-input), -softplus(input)  # log σ(x) = −softplus(−x)
    positive = t * log_sigmoid if pos_weight is None else t * log_sigmoid * pos_weight
    losses = -(positive + (1 - t) * log_sigmoid_negative)
    return _reduce(losses if weight is None else losses * weight, reduction)


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """int64 (..., num_classes): 1 at each id's class; num_classes=-1 takes the largest id + 1."""
    ids = array_of(tensor)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer ids, not {ids.dtype}")
    if num_classes == -1:
        num_classes = int(ids.max()) + 1 if ids.size else 0
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"one_hot: ids must lie in [0, {num_classes}), got {ids.min()}..{ids.max()}")
    return Tensor._from_array((ids[..., None] == np.arange(num_classes)).astype(np.int64))


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad (or, with negative sizes, crop) the last len(pad) / 2 dimensions, as torch's F.pad.

    pad = (left of the last axis, right of the last axis, left of the one before, ...).
    mode "constant" fills with `value` (0 by default); "reflect" mirrors without repeating the
    edge, "replicate" repeats the edge, "circular" wraps around.
    """
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {len(pad)} sizes for a tensor of shape {input.shape}; give two per padded dimension")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f'pad mode must be "constant", "reflect", "replicate" or "circular", got {mode!r}')
    if value is not None and mode != "constant":
        raise ValueError(f"pad: value= only goes with mode='constant', not {mode!r}")
    out = input
    for i in range(len(pad) // 2):
        axis = input.ndim - 1 - i
        out = _pad_axis(out, axis, int(pad[2 * i]), int(pad[2 * i + 1]), mode, 0.0 if value is None else value)
    return out


def _pad_axis(x: Tensor, axis: int, before: int, after: int, mode: str, value: float) -> Tensor:
    n = x.shape[axis]
    lead = (slice(None),) * axis
    if mode in ("reflect", "replicate"):
        # as torch: positions come from the uncropped length, so a negative size crops the padded result
        if mode == "reflect" and (before >= n or after >= n):
            raise ValueError(
                f"pad: reflect padding of {max(before, after)} needs a dimension longer than that, got {n}"
            )
        position = np.arange(-before, n + after)
        if mode == "replicate":
            return x[lead + (np.clip(position, 0, n - 1),)]
        period = 2 * (n - 1)
        position = (n - 1) - np.abs((n - 1) - position % period) if n > 1 else np.zeros_like(position)
        return x[lead + (position,)]
    x = x[lead + (slice(max(-before, 0), n - max(-after, 0)),)]  # negative sizes crop first
    n, before, after = x.shape[axis], max(before, 0), max(after, 0)
    if mode == "constant":
        edges = [
            Tensor(np.full(x.shape[:axis] + (size,) + x.shape[axis + 1 :], value), dtype=x.dtype)
            for size in (before, after)
        ]
        return concatenate([edges[0], x, edges[1]], axis=axis)
    if before > n or after > n:  # torch refuses too: the copy would repeat the input
        raise ValueError(
            f"pad: circular padding of {max(before, after)} would wrap around a dimension of {n} more than once"
        )
    return x[lead + (np.arange(-before, n + after) % n,)]


__all__ += [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "elu",
    "implicit_softmax_dim",
    "l1_loss",
    "leaky_relu",
    "log_softmax",
    "mish",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "relu",
    "silu",
    "softmax",
    "softplus",
]

# convolution, pooling, resizing and batch normalisation (F.conv2d, ...), composed in minigrad/conv.py
from minigrad.conv import *  # noqa: E402, F403
from minigrad.conv import __all__ as _conv_names  # noqa: E402
from minigrad.tensor import concatenate, where  # noqa: E402  (this section's own imports)

__all__ += _conv_names
