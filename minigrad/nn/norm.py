"""Batch normalisation (Ioffe & Szegedy, 2015), with torch.nn's names, buffers and behaviour."""

from __future__ import annotations

import numpy as np

import minigrad.functional as F
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor


class _BatchNorm(Module):
    """Normalise each channel by the batch's statistics in training, by running averages in eval.

    Parameters weight (C,) = 1 and bias (C,) = 0 (affine=True); buffers running_mean (C,) = 0,
    running_var (C,) = 1 and num_batches_tracked (an int64 count), as torch's state dict has
    them. Every training step moves the running statistics by `momentum` towards the batch's
    (the variance unbiased); momentum=None averages all batches seen so far equally instead.
    track_running_stats=False keeps no buffers and always uses the batch's statistics.
    """

    expected_dims: tuple = ()

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
        track_running_stats: bool = True, *, dtype=np.float32,
    ):  # fmt: skip
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features), dtype=dtype) if affine else None
        self.bias = Parameter(np.zeros(num_features), dtype=dtype) if affine else None
        tracked = track_running_stats
        self.register_buffer("running_mean", Tensor(np.zeros(num_features), dtype=dtype) if tracked else None)
        self.register_buffer("running_var", Tensor(np.ones(num_features), dtype=dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)) if tracked else None)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.expected_dims:
            raise ValueError(f"{type(self).__name__} expects {' or '.join(map(str, self.expected_dims))}-D input, "
                             f"got shape {tuple(x.shape)}")  # fmt: skip
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            if momentum is None:  # the cumulative average: batch k weighs 1 / k
                momentum = 1.0 / float(self.num_batches_tracked.data)
        # without running statistics, the batch's own are used in evaluation too
        training = self.training or self.running_mean is None
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training,
            0.0 if momentum is None else momentum, self.eps,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """(N, C) or (N, C, L), each of the C features normalised over the batch (and L), as torch.nn.BatchNorm1d."""

    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """(N, C, H, W), each channel normalised over the batch and the pixels, as torch.nn.BatchNorm2d."""

    expected_dims = (4,)
