"""Every op against PyTorch: the same inputs give the same values and the same gradients.

Each case is a pair of functions, one written with minigrad and one with torch, and the
float64 arrays they both start from. Both run in float32 and in float64; both receive the
same output gradient. Skips cleanly when torch is not installed.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_conv import torch_cases as conv_torch_cases
from test_ops_gradcheck import einsum_equations, function_classes, public_ops
from test_selection import torch_cases as selection_torch_cases
from test_selection import value_cases as selection_value_cases

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, kernels, nn, ops

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOLERANCES = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
# NumPy's float32 tanh can be 1 ulp short of -1 where torch's is exactly -1; 1 - tanh² then
# leaves ~1e-7 instead of 0, and GELU's slope there picks up an absolute error of ~1.5e-6.
FLOAT32_ATOL = {"gelu_tanh": 2e-6, "gelu_tanh_definition": 2e-6}
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def as_torch(array):
    return torch.as_tensor(np.asarray(array))


def cases() -> dict:
    """name -> (minigrad function, torch function, input arrays)."""
    rng = np.random.default_rng(0)

    def normal(*shape):
        return rng.standard_normal(shape)

    def positive(*shape):
        return rng.uniform(0.5, 2.0, shape)

    def away_from_zero(*shape):
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)

    ties = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, -1.0, 5.0]])
    mask = rng.random((3, 4)) > 0.5
    repeated = np.array([0, 2, 0, 0, 1])
    targets = np.array([1, 4, -100, 0, 2, -100])
    attn_mask = rng.random((3, 3)) >= 0.3  # True: may attend, as torch.nn.functional
    attn_mask[:, 0] = True  # every query sees at least one key
    float_mask = normal(3, 3)
    ids = np.array([[0, 3, 3], [1, 0, 4]])
    big = np.array([[1e4, -1e4, 0.0, 1.0], [-1e4, -1e4, -1e4, 1e4], [0.5, 0.0, -0.5, 3.0]])

    return (
        {
            # binary, with broadcasting
            "add": (lambda a, b: a + b, lambda a, b: a + b, [normal(2, 3, 4), normal(3, 1)]),
            "sub": (lambda a, b: a - b, lambda a, b: a - b, [normal(4), normal(2, 3, 4)]),
            "mul": (lambda a, b: a * b, lambda a, b: a * b, [normal(2, 1, 4), normal(3, 1)]),
            "div": (lambda a, b: a / b, lambda a, b: a / b, [normal(2, 3), away_from_zero(3)]),
            "pow_tensor_tensor": (lambda a, b: a**b, lambda a, b: a**b, [positive(2, 3), normal(2, 3)]),
            "pow_tensor_number": (lambda a: a**3, lambda a: a**3, [normal(2, 3)]),
            "pow_number_tensor": (lambda a: 2.5**a, lambda a: 2.5**a, [normal(2, 3)]),
            "pow_zero_base": (
                lambda a, b: a**b,
                lambda a, b: a**b,
                [np.array([0.0, 0.0, 1.5, 0.0]), np.array([0, 2, 1, 0.5])],
            ),
            "rsub_rdiv": (lambda a: 1.5 - 2.0 / a, lambda a: 1.5 - 2.0 / a, [away_from_zero(5)]),
            "maximum": (lambda a, b: a.maximum(b), torch.maximum, [normal(3, 4), normal(4)]),
            "maximum_ties": (lambda a, b: a.maximum(b), torch.maximum, [ties, ties[::-1].copy()]),
            "zero_dim": (
                lambda a, b: a * b + a.exp() / b,
                lambda a, b: a * b + a.exp() / b,
                [np.array(0.3), np.array(-1.2)],
            ),
            # unary
            "neg": (lambda a: -a, lambda a: -a, [normal(3, 4)]),
            "exp": (lambda a: a.exp(), torch.exp, [normal(3, 4)]),
            "log": (lambda a: a.log(), torch.log, [positive(3, 4)]),
            "sqrt": (lambda a: a.sqrt(), torch.sqrt, [positive(3, 4)]),
            "tanh": (lambda a: a.tanh(), torch.tanh, [normal(3, 4)]),
            "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid, [normal(3, 4) * 5]),
            "sigmoid_saturated": (lambda a: a.sigmoid(), torch.sigmoid, [np.linspace(-80, 80, 33)]),
            "relu": (lambda a: a.relu(), torch.relu, [away_from_zero(3, 4)]),
            "abs": (lambda a: a.abs(), torch.abs, [away_from_zero(3, 4)]),
            # reductions
            "sum_all": (lambda a: a.sum(), torch.sum, [normal(2, 3, 4)]),
            "sum_axes_keepdims": (
                lambda a: a.sum(axis=(0, -1), keepdims=True),
                lambda a: a.sum(dim=(0, -1), keepdim=True),
                [normal(2, 3, 4)],
            ),
            "mean": (lambda a: a.mean(axis=-2), lambda a: a.mean(dim=-2), [normal(2, 3, 4)]),
            "var": (lambda a: a.var(axis=1), lambda a: a.var(dim=1, correction=0), [normal(2, 3, 4)]),
            "var_ddof1": (
                lambda a: a.var(axis=(0, 2), ddof=1, keepdims=True),
                lambda a: a.var(dim=(0, 2), correction=1, keepdim=True),
                [normal(2, 3, 4)],
            ),
            "var_all": (lambda a: a.var(), lambda a: a.var(correction=0), [normal(2, 3)]),
            "max_ties": (lambda a: a.max(axis=1), lambda a: torch.amax(a, dim=1), [ties]),
            "min_ties": (lambda a: a.min(axis=0, keepdims=True), lambda a: torch.amin(a, dim=0, keepdim=True), [ties]),
            "max_all_ties": (lambda a: a.max(), torch.amax, [ties]),
            "softmax": (lambda a: a.softmax(axis=0), lambda a: a.softmax(dim=0), [normal(3, 4)]),
            "softmax_large_logits": (lambda a: a.softmax(), lambda a: a.softmax(dim=-1), [big]),
            "log_softmax": (lambda a: a.log_softmax(axis=1), lambda a: a.log_softmax(dim=1), [normal(2, 3, 4)]),
            "log_softmax_large_logits": (lambda a: a.log_softmax(), lambda a: a.log_softmax(dim=-1), [big]),
            # movement and shape
            "reshape_tuple": (lambda a: a.reshape((4, -1)), lambda a: a.reshape(4, -1), [normal(2, 3, 4)]),
            "reshape_sizes": (lambda a: a.reshape(3, 8), lambda a: a.reshape(3, 8), [normal(2, 3, 4)]),
            "transpose_axes": (lambda a: a.transpose(2, 0, 1), lambda a: a.permute(2, 0, 1), [normal(2, 3, 4)]),
            "transpose_negative": (lambda a: a.transpose(-1, 0, 1), lambda a: a.permute(-1, 0, 1), [normal(2, 3, 4)]),
            "T": (lambda a: a.T, lambda a: a.permute(2, 1, 0), [normal(2, 3, 4)]),
            "broadcast_to": (lambda a: a.broadcast_to(2, 3, 4), lambda a: a.broadcast_to(2, 3, 4), [normal(3, 1)]),
            "getitem_basic": (lambda a: a[1, ..., None, 1:3], lambda a: a[1, ..., None, 1:3], [normal(2, 3, 4)]),
            "getitem_negative_step": (lambda a: a[-1, ::2], lambda a: a[-1, ::2], [normal(2, 3, 4)]),
            "getitem_repeated": (lambda a: a[repeated], lambda a: a[as_torch(repeated)], [normal(3, 4)]),
            "getitem_arrays": (
                lambda a: a[repeated[:3], :, repeated[1:4]],
                lambda a: a[as_torch(repeated[:3]), :, as_torch(repeated[1:4])],
                [normal(3, 2, 4)],
            ),
            "getitem_bool_mask": (lambda a: a[mask], lambda a: a[as_torch(mask)], [normal(3, 4)]),
            "add_at": (
                lambda g: ops.AddAt.apply(g, index=repeated, shape=(3, 4)),
                lambda g: torch.zeros(3, 4, dtype=g.dtype).index_put((as_torch(repeated),), g, accumulate=True),
                [normal(5, 4)],
            ),
            "concatenate": (
                lambda a, b: mg.concatenate([a, b, a], axis=-1),
                lambda a, b: torch.cat([a, b, a], dim=-1),
                [normal(2, 3), normal(2, 1)],
            ),
            "stack": (
                lambda a, b: mg.stack([a, b], axis=1),
                lambda a, b: torch.stack([a, b], dim=1),
                [normal(2, 3)] * 2,
            ),
            "where": (
                lambda a, b: mg.where(mask, a, b),
                lambda a, b: torch.where(as_torch(mask), a, b),
                [normal(3, 4), normal(4)],
            ),
            "where_method": (
                lambda a, b: a.where(mask, b),
                lambda a, b: a.where(as_torch(mask), b),
                [normal(3, 4), normal(4)],
            ),
            "masked_fill": (
                lambda a: a.masked_fill(mask, -1e9),
                lambda a: a.masked_fill(as_torch(mask), -1e9),
                [normal(2, 3, 4)],
            ),
            # matrix products
            "matmul_2d": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(3, 4), normal(4, 2)]),
            "matmul_vector_vector": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(4)]),
            "matmul_vector_matrix": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(2, 4, 3)]),
            "matmul_matrix_vector": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(4)]),
            "matmul_batched_broadcast": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 1, 3, 4), normal(5, 4, 2)]),
            "erf": (F.erf, torch.erf, [np.linspace(-4, 4, 33)]),
            "attention_weights": (
                F.attention_weights,
                lambda q, k, m: torch.softmax(q @ k.transpose(-2, -1) / 2.0 + m, dim=-1),  # d = 4: 1/√d = 1/2
                [normal(2, 3, 4), normal(2, 5, 4), normal(3, 5)],
            ),
            "rms_norm": (
                F.rms_norm,
                lambda x, w: TF.rms_norm(x, (4,), w),
                [normal(2, 3, 4), normal(4)],
            ),  # eps: the dtype's
            # the PyTorch vocabulary
            "sin_cos": (lambda a: a.sin() * a.cos(), lambda a: a.sin() * a.cos(), [normal(3, 4)]),
            "log2_exp2": (lambda a: a.log2() + a.exp2(), lambda a: a.log2() + a.exp2(), [positive(3, 4)]),
            "square_rsqrt": (lambda a: a.square() * a.rsqrt(), lambda a: a.square() * a.rsqrt(), [positive(3, 4)]),
            "minimum": (lambda a, b: a.minimum(b), torch.minimum, [ties, ties[::-1].copy()]),
            "mg_minimum_maximum": (
                lambda a, b: mg.minimum(a, b) + 2 * mg.maximum(a, b),
                lambda a, b: torch.minimum(a, b) + 2 * torch.maximum(a, b),
                [normal(3, 4), normal(4)],
            ),
            "clamp": (lambda a: a.clamp(-0.5, 0.5), lambda a: a.clamp(-0.5, 0.5), [np.linspace(-1, 1, 9)]),
            "clamp_tensors": (
                lambda a, lo, hi: a.clamp(lo, hi),
                lambda a, lo, hi: a.clamp(lo, hi),
                [normal(3, 4), normal(4) - 0.5, normal(3, 1) + 0.5],
            ),
            "clip_min_above_max": (lambda a: a.clip(min=1.0, max=0.0), lambda a: a.clip(min=1.0, max=0.0), [normal(5)]),
            "rounding": (
                lambda a: (
                    a.floor() + a.ceil() * 2 + a.round() * 3 + a.trunc() * 4 + a.sign() * 5 + a.round(decimals=1) + a
                ),
                lambda a: (
                    a.floor() + a.ceil() * 2 + a.round() * 3 + a.trunc() * 4 + a.sign() * 5 + a.round(decimals=1) + a
                ),
                [np.array([-2.5, -1.7, -0.5, 0.0, 0.5, 1.5, 2.5, 3.14159])],
            ),
            "remainder": (lambda a, b: a % b, lambda a, b: a % b, [normal(3, 4) * 5, away_from_zero(4)]),
            "remainder_number": (lambda a: a % -2.0, lambda a: a % -2.0, [normal(6) * 4]),
            "floor_divide": (
                lambda a, b: a // b + a,
                lambda a, b: torch.div(a.detach(), b.detach(), rounding_mode="floor") + a + 0 * b,
                [normal(3, 4) * 5, away_from_zero(4)],
            ),
            "astype": (
                lambda a: (a.double() * a.float().astype(np.float64)).astype(a.dtype) + a.clone(),
                lambda a: (a.double() * a.float().to(torch.float64)).to(a.dtype) + a.clone(),
                [normal(3, 4)],
            ),
            "std": (lambda a: a.std(dim=1, correction=1), lambda a: a.std(dim=1), [normal(2, 3, 4)]),
            "var_torch_names": (
                lambda a: a.var(dim=(0, 2), keepdim=True, correction=1),
                lambda a: a.var(dim=(0, 2), keepdim=True),
                [normal(2, 3, 4)],
            ),
            "prod": (lambda a: a.prod(dim=1), lambda a: a.prod(dim=1), [normal(3, 4)]),
            "prod_with_zeros": (
                lambda a: a.prod(dim=-1, keepdim=True),
                lambda a: a.prod(dim=-1, keepdim=True),
                [np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 0.0], [1.5, 2.0, -1.0]])],
            ),
            "prod_all": (lambda a: a.prod(), lambda a: a.prod(), [normal(2, 3)]),
            "cumsum": (lambda a: a.cumsum(dim=1), lambda a: a.cumsum(dim=1), [normal(2, 3, 4)]),
            "cumprod": (
                lambda a: a.cumprod(dim=-1),
                lambda a: a.cumprod(dim=-1),
                [np.array([[1.0, 2.0, 0.0, 3.0, 0.0, 4.0], [0.5, -1.0, 2.0, 0.0, 1.0, 1.0]])],
            ),
            "logsumexp": (lambda a: a.logsumexp(dim=1), lambda a: a.logsumexp(dim=1), [big]),
            "logsumexp_keepdim": (
                lambda a: a.logsumexp(dim=(0, 2), keepdim=True),
                lambda a: a.logsumexp(dim=(0, 2), keepdim=True),
                [normal(2, 3, 4)],
            ),
            "sum_mean_torch_names": (
                lambda a: a.sum(dim=-1, keepdim=True) * a.mean(dim=0),
                lambda a: a.sum(dim=-1, keepdim=True) * a.mean(dim=0),
                [normal(3, 4)],
            ),
            "softmax_dim": (
                lambda a: a.softmax(dim=0) + a.log_softmax(dim=0),
                lambda a: a.softmax(dim=0) + a.log_softmax(dim=0),
                [normal(3, 4)],
            ),
            "max_min_dim": (
                lambda a: a.max(dim=1).values + a.min(dim=1, keepdim=True)[0].reshape(-1),
                lambda a: a.max(dim=1).values + a.min(dim=1, keepdim=True)[0].reshape(-1),
                [normal(3, 4)],
            ),
            "amax_amin": (lambda a: a.amax(1) + a.amin(dim=1), lambda a: a.amax(1) + a.amin(dim=1), [ties]),
            "sort": (lambda a: a.sort(dim=0).values, lambda a: a.sort(dim=0).values, [normal(3, 4)]),
            "sort_descending": (
                lambda a: a.sort(descending=True)[0],
                lambda a: a.sort(descending=True)[0],
                [normal(3, 4)],
            ),
            "topk": (lambda a: a.topk(2).values, lambda a: a.topk(2).values, [normal(3, 4)]),
            "topk_smallest": (
                lambda a: a.topk(3, dim=0, largest=False)[0],
                lambda a: a.topk(3, dim=0, largest=False)[0],
                [normal(3, 4)],
            ),
            "gather": (
                lambda a: a.gather(1, np.array([[0, 0], [3, 1], [2, 2]])),
                lambda a: a.gather(1, torch.tensor([[0, 0], [3, 1], [2, 2]])),
                [normal(3, 4)],
            ),
            "scatter_add": (
                lambda a, src: a.scatter_add(0, np.array([[0, 1, 2, 0], [0, 0, 0, 1]]), src),
                lambda a, src: a.scatter_add(0, torch.tensor([[0, 1, 2, 0], [0, 0, 0, 1]]), src),
                [normal(3, 4), normal(2, 4)],
            ),
            "einsum": (
                lambda a, b: mg.einsum("bij,bjk->bik", a, b),
                lambda a, b: torch.einsum("bij,bjk->bik", a, b),
                [normal(2, 3, 4), normal(2, 4, 2)],
            ),
            "einsum_trace_diagonal": (
                lambda a: mg.einsum("ii", a) + mg.einsum("ii->i", a).sum(),
                lambda a: torch.einsum("ii", a) + torch.einsum("ii->i", a).sum(),
                [normal(3, 3)],
            ),
            "einsum_ellipsis": (
                lambda a, b: mg.einsum("...ij,...j->...i", a, b),
                lambda a, b: torch.einsum("...ij,...j->...i", a, b),
                [normal(2, 3, 4), normal(4)],
            ),
            "tensordot": (
                lambda a, b: mg.tensordot(a, b, dims=([1, 2], [0, 1])),
                lambda a, b: torch.tensordot(a, b, dims=([1, 2], [0, 1])),
                [normal(2, 3, 4), normal(3, 4, 2)],
            ),
            "tril_triu": (
                lambda a: a.tril(1) + 2 * a.triu(-1),
                lambda a: a.tril(1) + 2 * a.triu(-1),
                [normal(2, 3, 4)],
            ),
            "diag_trace": (
                lambda a: a.diag(1).sum() * a.trace() + a[0].diag(-1),
                lambda a: a.diag(1).sum() * a.trace() + a[0].diag(-1),
                [normal(4, 4)],
            ),
            "flip_roll": (
                lambda a: a.flip((0, 2)) + a.roll((1, -3), (1, 2)) + a.roll(5),
                lambda a: a.flip((0, 2)) + a.roll((1, -3), (1, 2)) + a.roll(5),
                [normal(2, 3, 4)],
            ),
            "repeat_tile": (
                lambda a: a.repeat(2, 1, 3).sum(0) + a.tile((1, 3)),
                lambda a: a.repeat(2, 1, 3).sum(0) + a.tile((1, 3)),
                [normal(3, 2)],
            ),
            "permute_view_expand": (
                lambda a: (
                    a.permute(2, 0, 1).view(4, 6)
                    + a.swapaxes(0, 2).reshape(4, 6)
                    + a[:1, :, :1].expand(4, -1, 6).sum(1)
                ),
                lambda a: (
                    a.permute(2, 0, 1).view(4, 6)
                    + a.swapaxes(0, 2).reshape(4, 6)
                    + a[:1, :, :1].expand(4, -1, 6).sum(1)
                ),
                [normal(2, 3, 4)],
            ),
            "t": (lambda a: a.t(), lambda a: a.t(), [normal(3, 4)]),
            "squeeze_unsqueeze": (
                lambda a: a.unsqueeze(1).squeeze(0).squeeze(),
                lambda a: a.unsqueeze(1).squeeze(0).squeeze(),
                [normal(1, 3, 1)],
            ),
            "flatten_unflatten": (
                lambda a: a.flatten(1).unflatten(1, (4, 3)),
                lambda a: a.flatten(1).unflatten(1, (4, 3)),
                [normal(2, 3, 4)],
            ),
            "split_chunk_cat": (
                lambda a: mg.cat(
                    [p * (i + 1) for i, p in enumerate(a.split([1, 3], dim=1))] + list(a.chunk(3, dim=1)), dim=1
                ),
                lambda a: torch.cat(
                    [p * (i + 1) for i, p in enumerate(a.split([1, 3], dim=1))] + list(a.chunk(3, dim=1)), dim=1
                ),
                [normal(2, 4)],
            ),
            "split_size": (
                lambda a: mg.stack(a.split(2, dim=0)[:2], dim=-1),
                lambda a: torch.stack(a.split(2, dim=0)[:2], dim=-1),
                [normal(5, 2)],
            ),
            "getitem_sequences": (
                lambda a: a[(0,), [1, 2]] + a[[0, 2], 1:][:, :2],
                lambda a: a[(0,), [1, 2]] + a[[0, 2], 1:][:, :2],
                [normal(3, 4)],
            ),
            "silu": (F.silu, TF.silu, [normal(3, 4) * 3]),
            "leaky_relu": (lambda a: F.leaky_relu(a, 0.1), lambda a: TF.leaky_relu(a, 0.1), [np.linspace(-3, 3, 13)]),
            "elu": (lambda a: F.elu(a, alpha=0.7), lambda a: TF.elu(a, alpha=0.7), [np.linspace(-3, 3, 13)]),
            "softplus": (F.softplus, TF.softplus, [np.linspace(-30, 30, 25)]),
            "softplus_beta": (
                lambda a: F.softplus(a, beta=2, threshold=5),
                lambda a: TF.softplus(a, beta=2, threshold=5),
                [np.linspace(-6, 6, 25)],
            ),
            "mish": (F.mish, TF.mish, [np.linspace(-6, 6, 25)]),
            "nll_loss": (
                lambda a: F.nll_loss(a.log_softmax(dim=1), targets, weight=np.arange(1.0, 6.0)),
                lambda a: TF.nll_loss(
                    a.log_softmax(dim=1), as_torch(targets), weight=torch.arange(1.0, 6.0, dtype=a.dtype)
                ),
                [normal(6, 5)],
            ),
            "nll_loss_spatial_sum": (
                lambda a: F.nll_loss(a, ids % 2, reduction="sum"),
                lambda a: TF.nll_loss(a, as_torch(ids % 2), reduction="sum"),
                [normal(2, 2, 3)],
            ),
            "nll_loss_none": (
                lambda a: F.nll_loss(a, targets, reduction="none"),
                lambda a: TF.nll_loss(a, as_torch(targets), reduction="none"),
                [normal(6, 5)],
            ),
            "binary_cross_entropy": (
                lambda p, t: F.binary_cross_entropy(p, t, weight=np.linspace(0.5, 1.5, 4)),
                lambda p, t: TF.binary_cross_entropy(p, t, weight=torch.linspace(0.5, 1.5, 4, dtype=p.dtype)),
                [rng.uniform(0.05, 0.95, (3, 4)), rng.uniform(0, 1, (3, 4))],
            ),
            "bce_with_logits": (
                lambda x, t: F.binary_cross_entropy_with_logits(
                    x, t, pos_weight=np.linspace(0.5, 2, 4), reduction="sum"
                ),
                lambda x, t: TF.binary_cross_entropy_with_logits(
                    x, t, pos_weight=torch.linspace(0.5, 2, 4, dtype=x.dtype), reduction="sum"
                ),
                [np.concatenate([normal(2, 4) * 10, np.zeros((1, 4))]), rng.uniform(0, 1, (3, 4))],
            ),
            "F_wrappers": (
                lambda a: F.relu(a) + F.softmax(a, dim=0) + F.log_softmax(a, dim=-1),
                lambda a: TF.relu(a) + TF.softmax(a, dim=0) + TF.log_softmax(a, dim=-1),
                [away_from_zero(3, 4)],
            ),
            "mse_l1_loss": (
                lambda a, b: (
                    F.mse_loss(a, b) + F.l1_loss(a, b, reduction="sum") + F.mse_loss(a, b, reduction="none").sum()
                ),
                lambda a, b: (
                    TF.mse_loss(a, b) + TF.l1_loss(a, b, reduction="sum") + TF.mse_loss(a, b, reduction="none").sum()
                ),
                [normal(3, 4), normal(3, 4) + 0.5],
            ),
            "to": (
                lambda a: a.to(np.float64).to("cpu").to(a.dtype),
                lambda a: a.to(torch.float64).to("cpu").to(a.dtype),
                [normal(3)],
            ),
            "dropout_off": (
                lambda a: F.dropout(a, 0.0, training=True) + F.dropout(a, 0.5, training=False),
                lambda a: TF.dropout(a, 0.0, training=True) + TF.dropout(a, 0.5, training=False),
                [normal(3, 4)],
            ),
            "pad_constant": (
                lambda a: F.pad(a, (1, 2, -1, 1), value=0.5),
                lambda a: TF.pad(a, (1, 2, -1, 1), value=0.5),
                [normal(2, 3, 4)],
            ),
            "pad_reflect": (
                lambda a: F.pad(a, (2, 3), mode="reflect"),
                lambda a: TF.pad(a, (2, 3), mode="reflect"),
                [normal(2, 3, 4)],
            ),
            "pad_replicate_circular": (
                lambda a: F.pad(a, (2, 1, 1, 0), mode="replicate") + F.pad(a, (2, 1, 1, 0), mode="circular"),
                lambda a: TF.pad(a, (2, 1, 1, 0), mode="replicate") + TF.pad(a, (2, 1, 1, 0), mode="circular"),
                [normal(2, 3, 4)],
            ),
        }
        | {
            name + suffix: case
            for M, suffix in ((kernels, ""), (F, "_definition"))
            for name, case in network_cases(M, normal, targets, big, ids, attn_mask, float_mask).items()
        }
        | conv_torch_cases(TF, normal)
        | selection_torch_cases(torch, normal)
    )


def network_cases(M, normal, targets, big, ids, attn_mask, float_mask) -> dict:
    """The network functions of module M: minigrad.kernels (the fused ops) or minigrad.functional."""
    return {
        "gelu": (M.gelu, torch.nn.GELU(), [np.linspace(-6, 6, 49)]),
        "gelu_tanh": (lambda a: M.gelu(a, "tanh"), torch.nn.GELU("tanh"), [np.linspace(-6, 6, 49)]),
        "linear": (M.linear, TF.linear, [normal(2, 3, 4), normal(5, 4), normal(5)]),
        "linear_no_bias": (M.linear, TF.linear, [normal(3, 4), normal(5, 4)]),
        "layer_norm": (
            M.layer_norm,
            lambda x, w, b: TF.layer_norm(x, (4,), w, b, eps=1e-5),
            [normal(2, 3, 4) * 3 + 1, normal(4), normal(4)],
        ),
        "layer_norm_plain": (M.layer_norm, lambda x: TF.layer_norm(x, (4,)), [normal(3, 4)]),
        "cross_entropy_ignore_index": (
            lambda z: M.cross_entropy(z, targets, ignore_index=-100),
            lambda z: TF.cross_entropy(z, as_torch(targets), ignore_index=-100),
            [normal(6, 5)],
        ),
        "cross_entropy_large_logits": (
            lambda z: M.cross_entropy(z, targets[:3] % 4),
            lambda z: TF.cross_entropy(z, as_torch(targets[:3] % 4)),
            [big],
        ),
        "embedding": (
            lambda w: M.embedding(ids, w),
            lambda w: TF.embedding(as_torch(ids), w),
            [normal(5, 3)],
        ),
        "attention": (
            M.scaled_dot_product_attention,
            TF.scaled_dot_product_attention,
            [normal(2, 2, 3, 4), normal(2, 2, 5, 4), normal(2, 2, 5, 3)],
        ),
        "attention_bool_mask": (
            lambda q, k, v: M.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=as_torch(attn_mask)),
            [normal(2, 3, 4), normal(2, 3, 4), normal(2, 3, 2)],
        ),
        "attention_float_mask": (
            lambda q, k, v, m: M.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.4),
            lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.4),
            [normal(2, 3, 4), normal(2, 3, 4), normal(2, 3, 2), float_mask],
        ),
        "attention_causal": (
            lambda q, k, v: M.scaled_dot_product_attention(q, k, v, is_causal=True),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
            [normal(2, 4, 3), normal(2, 4, 3), normal(2, 4, 3)],
        ),
        "attention_causal_dropout_off": (
            lambda q, k, v: M.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.0),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.0),
            [normal(2, 3, 4, 3), normal(2, 3, 4, 3), normal(2, 3, 4, 3)],
        ),
        "cross_entropy_mean_label_smoothing": (
            lambda z: M.cross_entropy(z, targets, ignore_index=-100, reduction="mean", label_smoothing=0.1),
            lambda z: TF.cross_entropy(z, as_torch(targets), ignore_index=-100, reduction="mean", label_smoothing=0.1),
            [normal(6, 5)],
        ),
        "cross_entropy_sum_label_smoothing": (
            lambda z: M.cross_entropy(z, targets, ignore_index=-100, reduction="sum", label_smoothing=0.1),
            lambda z: TF.cross_entropy(z, as_torch(targets), ignore_index=-100, reduction="sum", label_smoothing=0.1),
            [normal(6, 5)],
        ),
        "cross_entropy_none_label_smoothing": (
            lambda z: M.cross_entropy(z, targets, ignore_index=-100, reduction="none", label_smoothing=0.1),
            lambda z: TF.cross_entropy(z, as_torch(targets), ignore_index=-100, reduction="none", label_smoothing=0.1),
            [normal(6, 5)],
        ),
        "layer_norm_two_axes": (
            lambda x, w, b: M.layer_norm(x, w, b),
            lambda x, w, b: TF.layer_norm(x, (3, 4), w, b, eps=1e-5),
            [normal(2, 3, 4), normal(3, 4), normal(3, 4)],
        ),
    }


CASES = cases()


def run_minigrad(fn, arrays, dtype, out_grad_seed: int = 1):
    tensors = [Tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    g = np.random.default_rng(out_grad_seed).standard_normal(out.shape).astype(dtype)
    out.backward(g)
    return out.data, [t.grad for t in tensors]


def run_torch(fn, arrays, dtype, out_grad_seed: int = 1):
    tensors = [torch.tensor(a, dtype=TORCH_DTYPES[dtype], requires_grad=True) for a in arrays]
    out = fn(*tensors)
    g = np.random.default_rng(out_grad_seed).standard_normal(tuple(out.shape)).astype(dtype)
    out.backward(torch.from_numpy(g))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_values_and_gradients_match_torch(name, dtype):
    ours, theirs, arrays = CASES[name]
    value, grads = run_minigrad(ours, arrays, dtype)
    expected_value, expected_grads = run_torch(theirs, arrays, dtype)
    assert value.dtype == dtype and value.shape == expected_value.shape
    assert np.isfinite(value).all()
    tolerance = dict(TOLERANCES[dtype])
    if dtype == np.float32:
        tolerance["atol"] = FLOAT32_ATOL.get(name, tolerance["atol"])
    np.testing.assert_allclose(value, expected_value, **tolerance)
    for i, (grad, expected) in enumerate(zip(grads, expected_grads)):
        assert grad.dtype == dtype
        np.testing.assert_allclose(grad, expected, **tolerance, err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_within_1e_6_of_torch(approximate):
    """float32 GELU uses a rational approximation of erf; it must stay within 1e-6 everywhere.

    The reference is torch's GELU in float64 at the same float32 points. (torch's own float32
    GELU is itself up to 1e-6 away from it, so the two float32 results may differ by twice that.)
    """
    x = np.linspace(-10, 10, 20001, dtype=np.float32)
    gelu = torch.nn.GELU(approximate)
    ours = F.gelu(Tensor(x), approximate=approximate).data
    exact = gelu(torch.from_numpy(x.astype(np.float64))).numpy()
    assert np.abs(ours - exact).max() < 1e-6
    assert np.abs(ours - gelu(torch.from_numpy(x)).numpy()).max() < 2e-6
    ours64 = F.gelu(Tensor(x, dtype=np.float64), approximate=approximate).data
    np.testing.assert_allclose(ours64, exact, rtol=1e-14, atol=1e-15)


def test_cross_entropy_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]], dtype=np.float32)
    targets = np.array([1, 2, 2])
    z = Tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, targets)
    loss.backward()
    tz = torch.tensor(logits, requires_grad=True)
    expected = TF.cross_entropy(tz, torch.as_tensor(targets))
    expected.backward()
    assert np.isfinite(loss.item()) and np.isfinite(z.grad).all()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(z.grad, tz.grad.numpy(), rtol=1e-6, atol=1e-7)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a.abs() ** b,
    "maximum": lambda a, b: a.maximum(b),
}


@pytest.mark.parametrize("name", BINARY)
@given(
    pair=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3), seed=st.integers(0, 99)
)
def test_broadcasting_binary_ops_match_torch(name, pair, seed):
    """Any pair of broadcastable shapes: the same result and gradients summed the same way."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape) for shape in pair.input_shapes]
    value, grads = run_minigrad(BINARY[name], arrays, np.float64)
    expected_value, expected_grads = run_torch(BINARY[name], arrays, np.float64)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    for grad, expected in zip(grads, expected_grads):
        assert grad.shape == expected.shape
        np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)


@st.composite
def masks_leaving_a_query_no_key(draw):
    """Attention shapes (batch, Tq, Tk, d, dv) and a mask, True where a query may attend, with a row all False."""
    batch = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=3))
    q_len, k_len, d, dv = (draw(st.integers(1, 4)) for _ in range(4))
    allowed = draw(hnp.arrays(bool, (q_len, k_len)))
    allowed[draw(st.integers(0, q_len - 1))] = False
    return batch, q_len, k_len, d, dv, allowed


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mask_kind", ["bool", "float"])
@pytest.mark.parametrize("attention", [kernels, F], ids=["kernel", "definition"])
@given(case=masks_leaving_a_query_no_key(), seed=st.integers(0, 99))
def test_attention_gives_a_query_with_no_key_zeros_as_torch(attention, mask_kind, dtype, case, seed):
    """torch's "safe softmax": a query whose mask allows no key outputs 0 and passes no gradient, not NaN."""
    batch, q_len, k_len, d, dv, allowed = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(batch + shape) for shape in [(q_len, d), (k_len, d), (k_len, dv)]]
    if mask_kind == "float":  # -inf where not allowed, a learned bias elsewhere: it gets a gradient too
        arrays.append(np.where(allowed, rng.standard_normal(allowed.shape), -np.inf))
        ours, theirs = attention.scaled_dot_product_attention, TF.scaled_dot_product_attention
    else:
        ours = lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # noqa: E731
        theirs = lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=as_torch(allowed))  # noqa: E731
    value, grads = run_minigrad(ours, arrays, dtype)
    expected_value, expected_grads = run_torch(theirs, arrays, dtype)
    nobody = ~allowed.any(axis=1)  # the queries that see no key
    assert (value[..., nobody, :] == 0).all() and (grads[0][..., nobody, :] == 0).all()
    np.testing.assert_allclose(value, expected_value, **TOLERANCES[dtype])
    for i, (grad, expected) in enumerate(zip(grads, expected_grads)):
        np.testing.assert_allclose(grad, expected, **TOLERANCES[dtype], err_msg=f"gradient of input {i}")


def functions_in_graph(out: Tensor) -> set[type]:
    """The Function classes that made `out`, found by walking its graph back to the leaves."""
    seen, todo = set(), [out]
    while todo:
        fn = todo.pop().grad_fn
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo.extend(parent for parent in fn.parents if parent is not None)
    return {type(fn) for fn in seen}


def test_every_function_is_compared_with_torch():
    covered = set()
    for ours, _, arrays in CASES.values():
        covered |= functions_in_graph(ours(*[Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]))
    missing = sorted(cls.__name__ for cls in function_classes() - covered)
    assert not missing, f"no torch parity case runs {missing}"


@pytest.mark.parametrize("padding_idx", [-1, 0, 2])
def test_embedding_padding_idx_matches_torch(padding_idx):
    """The padding row starts at zero, is read as it is, and never receives a gradient."""
    ids = np.array([[0, 4, 4], [1, 3, 2]])
    ours = nn.Embedding(5, 3, padding_idx=padding_idx)
    theirs = torch.nn.Embedding(5, 3, padding_idx=padding_idx)
    assert ours.padding_idx == theirs.padding_idx
    np.testing.assert_array_equal(ours.weight.data[ours.padding_idx], 0)
    weight = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    ours.weight.data[...] = weight
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(weight))
    g = np.random.default_rng(1).standard_normal((2, 3, 3)).astype(np.float32)
    out = ours(ids)
    out.backward(g)
    expected = theirs(torch.as_tensor(ids))
    expected.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.data, expected.detach().numpy())
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-6)


def value_cases() -> dict:
    """name -> (minigrad function, torch function, inputs): ops without gradients, compared in
    value and dtype (torch's int64 and bool results are NumPy's int64 and bool)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    x[1, 2] = x[1, 0]  # a tie: the first index wins, in both
    ints = rng.integers(0, 5, (2, 6))
    return {
        "eq_ne": (lambda a: (a == a[0]) & ~(a != 0.5), lambda a: (a == a[0]) & ~(a != 0.5), [x]),
        "comparisons": (lambda a: (a < 0) | (a >= 1) ^ (a > -1), lambda a: (a < 0) | (a >= 1) ^ (a > -1), [x]),
        "argmax_argmin": (
            lambda a: mg.stack([a.argmax(dim=1), a.argmin(1), mg.argmax(a, dim=0)[:3]]),
            lambda a: torch.stack([a.argmax(dim=1), a.argmin(1), torch.argmax(a, dim=0)[:3]]),
            [x],
        ),
        "argmax_flat": (lambda a: a.argmax(), lambda a: a.argmax(), [x]),
        "argmax_keepdim": (lambda a: a.argmin(dim=-1, keepdim=True), lambda a: a.argmin(dim=-1, keepdim=True), [x]),
        "all_any": (
            lambda a: (a > 0).all(dim=1) | (a > 1).any(0)[:3],
            lambda a: (a > 0).all(dim=1) | (a > 1).any(0)[:3],
            [x],
        ),
        "all_any_whole": (
            lambda a: mg.stack([(a > -5).all(), (a > 5).any()]),
            lambda a: torch.stack([(a > -5).all(), (a > 5).any()]),
            [x],
        ),
        "isclose": (
            lambda a: mg.isclose(a, a + 1e-6) & a.isclose(a.round(), atol=0.3),
            lambda a: torch.isclose(a, a + 1e-6) & a.isclose(a.round(), atol=0.3),
            [x],
        ),
        "sort_indices": (
            lambda a: a.sort(dim=1, descending=True).indices,
            lambda a: a.sort(dim=1, descending=True, stable=True).indices,
            [x],
        ),
        "topk_indices": (lambda a: a.topk(2, dim=0)[1], lambda a: a.topk(2, dim=0)[1], [x]),
        "max_dim_indices": (lambda a: a.max(dim=1).indices, lambda a: a.max(dim=1).indices, [x]),
        "long": (lambda a: (a * 3).long(), lambda a: (a * 3).long(), [x]),
        "one_hot": (lambda t: F.one_hot(t), lambda t: TF.one_hot(t), [ints]),
        "one_hot_classes": (lambda t: F.one_hot(t, num_classes=7), lambda t: TF.one_hot(t, num_classes=7), [ints]),
        "integer_ops": (
            lambda t: t % 3 + t // 2 - t.cumsum(1) + t.flip(0),
            lambda t: t % 3 + t // 2 - t.cumsum(1) + t.flip(0),
            [ints],
        ),
        "arange": (lambda: mg.arange(5), lambda: torch.arange(5), []),
        "arange_float": (lambda: mg.arange(0, 1, 0.1), lambda: torch.arange(0, 1, 0.1), []),
        "arange_negative_step": (lambda: mg.arange(5, -3, -2), lambda: torch.arange(5, -3, -2), []),
        "eye": (lambda: mg.eye(3) + mg.eye(2, 4)[:, :3].sum(), lambda: torch.eye(3) + torch.eye(2, 4)[:, :3].sum(), []),
        "full": (lambda: mg.full((2, 3), 7), lambda: torch.full((2, 3), 7), []),
        "full_float": (lambda: mg.full((2,), 0.5), lambda: torch.full((2,), 0.5), []),
        "linspace": (lambda: mg.linspace(-1, 2, 7), lambda: torch.linspace(-1, 2, 7), []),
        "like": (
            lambda a: mg.zeros_like(a) + mg.ones_like(a) * 2 + mg.full_like(a, 3.5),
            lambda a: torch.zeros_like(a) + torch.ones_like(a) * 2 + torch.full_like(a, 3.5),
            [x.astype(np.float32)],
        ),
        "zeros_ones": (lambda: mg.zeros(2, 3) + mg.ones((2, 3)), lambda: torch.zeros(2, 3) + torch.ones((2, 3)), []),
        "random_shapes_and_dtypes": (
            lambda: [mg.rand(2, 3), mg.randn(2, 3), mg.randint(5, (4,)), mg.randint(2, 9, (2, 2))],
            lambda: [torch.rand(2, 3), torch.randn(2, 3), torch.randint(5, (4,)), torch.randint(2, 9, (2, 2))],
            [],
        ),
    } | selection_value_cases()


VALUE_CASES = value_cases()


@pytest.mark.parametrize("name", VALUE_CASES)
def test_values_without_gradients_match_torch(name):
    ours, theirs, arrays = VALUE_CASES[name]
    value = ours(*[Tensor(a, dtype=a.dtype) for a in arrays])
    expected = theirs(*[torch.from_numpy(a) for a in arrays])
    if isinstance(value, list):  # random draws: the same shapes, dtypes and ranges
        for v, e in zip(value, expected):
            assert v.shape == tuple(e.shape) and v.dtype == e.numpy().dtype
        assert (
            0 <= value[0].data.min() and value[0].data.max() < 1 and set(np.unique(value[3].data)) <= set(range(2, 9))
        )
        return
    assert value.dtype == expected.numpy().dtype and value.shape == tuple(expected.shape)
    np.testing.assert_allclose(value.data, expected.numpy(), rtol=1e-6)


def test_every_public_op_is_compared_with_torch(monkeypatch):
    """Run every case with the public ops wrapped: each must be called, outermost, by some case."""
    called: set[str] = set()
    depth = [0]

    def recording(name, function):
        def wrapper(*args, **kwargs):
            if depth[0] == 0:
                called.add(name)
            depth[0] += 1
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1

        return wrapper

    namespaces = {"Tensor": Tensor, "mg": mg, "F": F}
    expected = public_ops()
    for name, function in expected.items():
        owner, attribute = name.split(".")
        for alias, member in list(vars(namespaces[owner]).items()):
            if member is function:
                monkeypatch.setattr(namespaces[owner], alias, recording(name, function))
    for alias, function in mg.torch_functions.METHODS_AS_FUNCTIONS.items():
        monkeypatch.setattr(mg, alias, recording(f"Tensor.{alias}", function))
    for ours, _, arrays in cases().values():  # built again, so that they call the wrapped ops
        ours(*[Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays])
    for ours, _, arrays in value_cases().values():
        ours(*[Tensor(a, dtype=a.dtype) for a in arrays])
    test_embedding_padding_idx_matches_torch(-1)
    missing = sorted(set(expected) - called)
    assert not missing, f"no torch parity case calls {missing}"


@given(equation_shapes=einsum_equations(), seed=st.integers(0, 99))
def test_einsum_random_equations_match_torch(equation_shapes, seed):
    equation, shapes = equation_shapes
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for shape in shapes]
    value, grads = run_minigrad(lambda *ts: mg.einsum(equation, *ts), arrays, np.float64)
    expected_value, expected_grads = run_torch(lambda *ts: torch.einsum(equation, *ts), arrays, np.float64)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-12)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)


def test_nan_and_empty_edges_match_torch():
    """A NaN maximum spreads NaN over its lane's gradient (as torch.amax); a softmax over no rows
    is empty, not an error."""
    x = np.array([[np.nan, 1.0, 2.0], [0.0, 3.0, 1.0]])
    with np.errstate(invalid="ignore"):  # the NaN lane's share of the gradient is 0 / 0
        value, (grad,) = run_minigrad(lambda a: a.max(axis=1), [x], np.float64)
    expected_value, (expected_grad,) = run_torch(lambda a: torch.amax(a, dim=1), [x], np.float64)
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_array_equal(grad, expected_grad)  # NaN where torch has NaN
    empty = np.ones((0, 3))
    for name in ("softmax", "log_softmax"):
        value, (grad,) = run_minigrad(lambda a, name=name: getattr(a, name)(dim=-1), [empty], np.float64)
        assert value.shape == grad.shape == (0, 3)


DIM_OPS = {
    "cumsum": (lambda x, d: x.cumsum(dim=d), lambda x, d: x.cumsum(dim=d)),
    "cumprod": (lambda x, d: x.cumprod(dim=d), lambda x, d: x.cumprod(dim=d)),
    "prod": (lambda x, d: x.prod(dim=d, keepdim=True), lambda x, d: x.prod(dim=d, keepdim=True)),
    "logsumexp": (lambda x, d: x.logsumexp(dim=d), lambda x, d: x.logsumexp(dim=d)),
    "std": (lambda x, d: x.std(dim=d, correction=1), lambda x, d: x.std(dim=d)),
    "sort": (lambda x, d: x.sort(dim=d, descending=True).values, lambda x, d: x.sort(dim=d, descending=True).values),
    "topk": (lambda x, d: x.topk(1, dim=d).values, lambda x, d: x.topk(1, dim=d).values),
    "max_dim": (lambda x, d: x.max(dim=d).values, lambda x, d: x.max(dim=d).values),
    "softmax": (lambda x, d: x.softmax(dim=d), lambda x, d: x.softmax(dim=d)),
    "flip": (lambda x, d: x.flip(d), lambda x, d: x.flip(d)),
    "roll": (lambda x, d: x.roll(2, d), lambda x, d: x.roll(2, d)),
    "unsqueeze": (
        lambda x, d: x.unsqueeze(d).squeeze(d + 1 if d >= 0 else d),
        lambda x, d: x.unsqueeze(d).squeeze(d + 1 if d >= 0 else d),
    ),
    "chunk": (lambda x, d: x.chunk(2, dim=d)[-1], lambda x, d: x.chunk(2, dim=d)[-1]),
    "split": (lambda x, d: x.split(2, dim=d)[0], lambda x, d: x.split(2, dim=d)[0]),
    "gather": (
        lambda x, d: x.gather(d, np.zeros_like(x.data, dtype=np.int64) + (x.shape[d] - 1)),
        lambda x, d: x.gather(d, torch.zeros_like(x, dtype=torch.int64) + (x.shape[d] - 1)),
    ),
}


@pytest.mark.filterwarnings("ignore:std\\(\\). degrees of freedom")  # torch's, for a lane of one: NaN in both
@pytest.mark.parametrize("name", DIM_OPS)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4), seed=st.integers(0, 99), data=st.data())
def test_ops_along_a_dimension_match_torch(name, shape, seed, data):
    """Any shape, any dim (negatives too): the same values and gradients as torch."""
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    ours, theirs = DIM_OPS[name]
    arrays = [np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 0.3]  # no ties
    value, grads = run_minigrad(lambda x: ours(x, dim), arrays, np.float64)
    expected_value, expected_grads = run_torch(lambda x: theirs(x, dim), arrays, np.float64)
    np.testing.assert_allclose(value, expected_value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[0], expected_grads[0], rtol=1e-10, atol=1e-12)
