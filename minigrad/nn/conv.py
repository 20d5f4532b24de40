"""Layers for images: convolutions and pooling, with torch.nn's names, arguments and layouts.

Each holds its settings and parameters and calls the function of the same name in
minigrad/conv.py (through minigrad.functional), where the computation is written out.
"""

from __future__ import annotations

import math

import numpy as np

import minigrad.functional as F
from minigrad.conv import PADDING_MODES, correlate, pad_for_convolution
from minigrad.creation import default_rng
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor


def _tuple(value, n: int, name: str) -> tuple:
    """An int or an n-tuple of ints, as an n-tuple (torch's `_single`, `_pair`)."""
    values = (value,) * n if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != n:
        raise ValueError(f"{name} must be an int or a {n}-tuple, got {value!r}")
    return tuple(int(v) for v in values)


class _ConvNd(Module):
    """What Conv1d, Conv2d and ConvTranspose2d share: settings, and torch's initialisation.

    weight (out, in / groups, *kernel) for a convolution, (in, out / groups, *kernel) for a
    transposed one; both drawn from U(−1/√fan_in, 1/√fan_in) with fan_in = weight.shape[1] ·
    the kernel's area (torch's kaiming_uniform_(a=√5)), and the bias from the same range.
    """

    dims = 2  # spatial dimensions
    transposed = False

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
        bias: bool = True, padding_mode: str = "zeros", *, rng=None, dtype=np.float32,
    ):  # fmt: skip
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels {in_channels} and out_channels {out_channels} must divide by groups {groups}"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}")
        n = self.dims
        self.in_channels, self.out_channels, self.kernel_size = (
            in_channels,
            out_channels,
            _tuple(kernel_size, n, "kernel_size"),
        )
        self.stride, self.dilation = _tuple(stride, n, "stride"), _tuple(dilation, n, "dilation")
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n, "padding")
        if self.padding == "same" and any(s != 1 for s in self.stride):
            raise ValueError("padding='same' is not supported for strided convolutions (as in torch)")
        self.groups, self.padding_mode = groups, padding_mode
        rng = default_rng() if rng is None else rng
        if self.transposed:
            shape = (in_channels, out_channels // groups)
        else:
            shape = (out_channels, in_channels // groups)
        bound = 1.0 / math.sqrt(shape[1] * math.prod(self.kernel_size))
        self.weight = Parameter(rng.uniform(-bound, bound, shape + self.kernel_size), dtype=dtype)
        self.bias = Parameter(rng.uniform(-bound, bound, (out_channels,)), dtype=dtype) if bias else None

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in (0, (0,) * len(self.kernel_size)):
            text += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.kernel_size):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text + (f", padding_mode={self.padding_mode}" if self.padding_mode != "zeros" else "")


class Conv2d(_ConvNd):
    """(N, C_in, H, W) -> (N, C_out, OH, OW), as torch.nn.Conv2d: F.conv2d with these settings.

    Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
    bias=True, padding_mode="zeros"); padding_mode "zeros", "reflect", "replicate" or
    "circular" says what lies beyond the edge.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode == "zeros":
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if x.ndim == 3:  # one unbatched image
            return self.forward(x[None])[0]
        padded = pad_for_convolution(x, self.kernel_size, self.padding, self.dilation, self.stride, self.padding_mode)
        return correlate(padded, self.weight, self.bias, self.stride, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """(N, C_in, L) -> (N, C_out, OL), as torch.nn.Conv1d (the same arguments as Conv2d): a Conv2d
    on images one pixel high."""

    dims = 1

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode == "zeros":
            return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if x.ndim == 2:
            return self.forward(x[None])[0]
        padding = self.padding if isinstance(self.padding, str) else (0,) + self.padding
        kernel, dilation = (1,) + self.kernel_size, (1,) + self.dilation
        padded = pad_for_convolution(x[:, :, None], kernel, padding, dilation, (1,) + self.stride, self.padding_mode)
        weight = self.weight[:, :, None]  # (O, C / groups, 1, k)
        return correlate(padded, weight, self.bias, (1,) + self.stride, dilation, self.groups)[:, :, 0]


class ConvTranspose2d(_ConvNd):
    """(N, C_in, H, W) -> (N, C_out, OH, OW), as torch.nn.ConvTranspose2d; weight (C_in, C_out / groups, kh, kw).

    forward(x, output_size=None): output_size (the (OH, OW) wanted, or with N and C in front)
    picks the output_padding that gives it, as torch.
    """

    transposed = True

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
        groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", *, rng=None, dtype=np.float32,
    ):  # fmt: skip
        if padding_mode != "zeros":
            raise ValueError(f'ConvTranspose2d supports only padding_mode="zeros" (as torch), got {padding_mode!r}')
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
            rng=rng, dtype=dtype,
        )  # fmt: skip
        self.output_padding = _tuple(output_padding, 2, "output_padding")

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        extra = self.output_padding if output_size is None else self._output_padding_for(x, output_size)
        return F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, extra, self.groups, self.dilation
        )

    def _output_padding_for(self, x: Tensor, output_size) -> tuple:
        wanted = tuple(output_size)[-2:]
        extra = []
        for n, want, k, s, p, d in zip(
            x.shape[-2:], wanted, self.kernel_size, self.stride, self.padding, self.dilation
        ):
            smallest = (n - 1) * s - 2 * p + d * (k - 1) + 1
            if not smallest <= want < smallest + max(s, d):
                raise ValueError(
                    f"output_size {tuple(output_size)}: each side must lie in [{smallest}, {smallest + s})"
                )
            extra.append(want - smallest)
        return tuple(extra)


class MaxPool2d(Module):
    """The largest value of each window, as torch.nn.MaxPool2d (F.max_pool2d with these settings)."""

    def __init__(
        self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False, ceil_mode: bool = False
    ):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor):
        return F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """The mean of each window, as torch.nn.AvgPool2d (F.avg_pool2d with these settings)."""

    def __init__(
        self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
        divisor_override: int | None = None,
    ):  # fmt: skip
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
            self.divisor_override,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """The mean over each of output_size bins, as torch.nn.AdaptiveAvgPool2d; output_size 1: global average."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
