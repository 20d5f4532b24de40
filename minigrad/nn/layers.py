"""Layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout and the activations — PyTorch's names and layouts.

A layer with a fast kernel calls it from minigrad/kernels.py, which runs the fused op or the
readable definition of minigrad/functional.py as `minigrad.use_kernels` says; the numbers are
the same. Such a layer also takes `fused` (None: follow the switch; True or False: this layer's
own setting, see `Module`).
"""

from __future__ import annotations

import math

import numpy as np

import minigrad.functional as F
from minigrad import kernels
from minigrad.creation import default_rng
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor, where


def _no_inplace(layer: Module, inplace: bool) -> bool:
    """torch's `inplace` flag: False (the default) is what minigrad always does, True is refused."""
    if inplace:
        raise ValueError(
            f"{type(layer).__name__}(inplace=True) would overwrite its input, which minigrad never does; "
            "pass inplace=False (the same numbers, in a new tensor)"
        )
    return False


class Linear(Module):
    """y = x Wᵀ + b. weight (out_features, in_features), bias (out_features,), as in PyTorch.

    Initialised as torch.nn.Linear: U(-1/√in, 1/√in) for both weight and bias.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *, rng=None, dtype=np.float32, fused=None
    ):
        super().__init__()
        self.fused = fused
        rng = default_rng() if rng is None else rng
        bound = 1.0 / math.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)), dtype=dtype)
        self.bias = Parameter(rng.uniform(-bound, bound, (out_features,)), dtype=dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return kernels.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: ids (...) -> rows of weight (num_embeddings, embedding_dim), N(0, 1) init.

    Ids must lie in [0, num_embeddings), as in torch (-1 is an error, not the last row).
    `padding_idx` (negative counts from the end, as torch) names a row that starts at zero and
    never receives a gradient, so padding positions stay what they are. `_weight`, as torch's, is
    a Parameter to use as the table instead of a fresh one (see `from_pretrained`).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        rng=None,
        dtype=np.float32,
        fused: bool | None = None,
        _weight: Parameter | None = None,
    ):
        super().__init__()
        self.fused = fused
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx {padding_idx} is out of range for {num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        if _weight is None:
            rng = default_rng() if rng is None else rng
            _weight = Parameter(rng.standard_normal((num_embeddings, embedding_dim)), dtype=dtype)
            if padding_idx is not None:
                _weight.data[padding_idx] = 0
        elif _weight.shape != (num_embeddings, embedding_dim):
            raise ValueError(f"_weight has shape {_weight.shape}, not ({num_embeddings}, {embedding_dim})")
        self.weight = _weight

    @classmethod
    def from_pretrained(
        cls, embeddings, freeze: bool = True, padding_idx: int | None = None, max_norm: float | None = None,
        norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, *, fused: bool | None = None,
    ) -> Embedding:  # fmt: skip
        """An Embedding whose table is a copy of `embeddings` (num_embeddings, embedding_dim), as
        torch's: frozen (requires_grad False) unless freeze=False; a Tensor keeps its dtype, an
        array becomes float32 as any Tensor's data. `padding_idx` keeps the given row as it is
        and only stops its gradient. norm_type matters only with max_norm, which, like
        scale_grad_by_freq and sparse, this Embedding does not have: they are refused.
        """
        unsupported = {"max_norm": max_norm is not None, "scale_grad_by_freq": scale_grad_by_freq, "sparse": sparse}
        for name, used in unsupported.items():
            if used:
                raise ValueError(f"Embedding.from_pretrained: minigrad's Embedding has no {name}; leave it unset")
        table = embeddings if isinstance(embeddings, Tensor) else Tensor(embeddings)
        if table.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (num_embeddings, embedding_dim), got shape {table.shape}")
        weight = Parameter(table.data, requires_grad=not freeze, dtype=table.dtype)
        return cls(*table.shape, padding_idx, fused=fused, _weight=weight)

    def forward(self, ids) -> Tensor:
        out = kernels.embedding(ids, self.weight)  # (..., C)
        if self.padding_idx is None:
            return out
        padding = (np.asarray(ids.data if isinstance(ids, Tensor) else ids) == self.padding_idx)[..., None]
        return where(padding, self.weight.detach()[self.padding_idx], out)  # no gradient into the padding row

    def extra_repr(self) -> str:
        padding = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


class LayerNorm(Module):
    """Normalise the trailing axes `normalized_shape` (an int: the last axis) to zero mean and unit
    variance; then scale (weight) and shift (bias), both of that shape.

    torch.nn.LayerNorm's arguments: elementwise_affine=False keeps neither weight nor bias,
    bias=False keeps the weight only.
    """

    def __init__(
        self, normalized_shape: int | tuple, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
        *, dtype=np.float32, fused=None,
    ):  # fmt: skip
        super().__init__()
        self.fused = fused
        self.normalized_shape, self.eps, self.elementwise_affine = normalized_shape, eps, elementwise_affine
        self.weight = Parameter(np.ones(normalized_shape), dtype=dtype) if elementwise_affine else None
        self.bias = Parameter(np.zeros(normalized_shape), dtype=dtype) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return kernels.layer_norm(x, self.weight, self.bias, eps=self.eps, normalized_shape=self.normalized_shape)

    def extra_repr(self) -> str:
        affine = "" if self.elementwise_affine else ", elementwise_affine=False"
        return f"{self.normalized_shape}, eps={self.eps}{affine}"


class RMSNorm(Module):
    """x / RMS(x) · weight over the trailing axes `normalized_shape` (no centring, no bias).

    torch.nn.RMSNorm's arguments and default: eps=None is the machine epsilon of the input's
    dtype (np.finfo(x.dtype).eps); elementwise_affine=False keeps no weight.
    """

    def __init__(
        self, normalized_shape: int | tuple, eps: float | None = None, elementwise_affine: bool = True,
        *, dtype=np.float32,
    ):  # fmt: skip
        super().__init__()
        self.normalized_shape, self.eps, self.elementwise_affine = normalized_shape, eps, elementwise_affine
        self.weight = Parameter(np.ones(normalized_shape), dtype=dtype) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight, eps=self.eps, normalized_shape=self.normalized_shape)

    def extra_repr(self) -> str:
        affine = "" if self.elementwise_affine else ", elementwise_affine=False"
        return f"{self.normalized_shape}, eps={self.eps}{affine}"


class Dropout(Module):
    """Inverted dropout while training: zero each element with probability p and scale the
    survivors by 1/(1-p), so the expected value is unchanged; the identity in eval mode.

    `rng` is a np.random.Generator or an int seed. Without one, the masks come from minigrad's
    default generator at call time, so `mg.manual_seed(s)` makes them reproducible.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, rng: np.random.Generator | int | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p, self.inplace = p, _no_inplace(self, inplace)
        self.rng = np.random.default_rng(rng) if isinstance(rng, int) else rng

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GELU(Module):
    """x · Φ(x), Φ the standard normal CDF (the exact erf form; approximate="tanh" for GPT-2's)."""

    def __init__(self, approximate: str = "none", *, fused: bool | None = None):
        super().__init__()
        self.fused = fused
        if approximate not in ("none", "tanh"):
            raise ValueError(f'GELU approximate must be "none" or "tanh", got {approximate!r}')
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return kernels.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}" if self.approximate != "none" else ""


class ReLU(Module):
    """max(0, x), elementwise."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = _no_inplace(self, inplace)

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class SiLU(Module):
    """x · σ(x), elementwise."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = _no_inplace(self, inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class _ActivationWithSettings(Module):
    """An elementwise function of functional.py as a layer, its settings kept as attributes."""

    function = staticmethod(F.relu)  # each subclass names its own

    def __init__(self, **settings):
        super().__init__()
        self.setting_names = tuple(settings)
        for name, value in settings.items():
            setattr(self, name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x, **{name: getattr(self, name) for name in self.setting_names})

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)}" for name in self.setting_names)


class LeakyReLU(_ActivationWithSettings):
    """x where x > 0, negative_slope · x elsewhere."""

    function = staticmethod(F.leaky_relu)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__(negative_slope=negative_slope)
        self.inplace = _no_inplace(self, inplace)


class ELU(_ActivationWithSettings):
    """x where x > 0, alpha · (eˣ − 1) elsewhere."""

    function = staticmethod(F.elu)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(alpha=alpha)
        self.inplace = _no_inplace(self, inplace)


class Softplus(_ActivationWithSettings):
    """log(1 + e^(βx)) / β (x itself where βx > threshold)."""

    function = staticmethod(F.softplus)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__(beta=beta, threshold=threshold)


class Mish(Module):
    """x · tanh(softplus(x))."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = _no_inplace(self, inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.mish(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()
