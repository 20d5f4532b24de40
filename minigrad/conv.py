"""Convolution, pooling, resizing and batch normalisation: two primitives and their compositions.

A convolution slides a small filter over an image. Written out, every output position takes
the patch of input under the filter (its *receptive field*), flattens it, and dots it with the
flattened filter. So the whole convolution is one matrix product once the patches are laid out
as rows, which is what `im2col` ("image to columns") does:

    x (N, C, H, W)  --im2col-->  patches (N, OH, OW, C, kh, kw)  --@ filters-->  (N, OH, OW, O)

`Im2col` gathers every receptive field (NumPy's `sliding_window_view` finds them without a
loop); its derivative, `Col2im`, sends each patch's gradient back to the pixels it was read
from, adding where windows overlap. Each is the other's backward, so both are linear and
their second derivatives are zero. Everything else here is composed from them and from the
primitives of minigrad/ops.py, so its gradient follows by the chain rule:

    conv1d, conv2d            im2col, then a matmul with the filters (per group)
    conv_transpose2d          a matmul with the filters, then col2im: conv2d's input-gradient
    max_pool2d, avg_pool2d    im2col, then the max (a gather) or the mean of each window
    adaptive_avg_pool2d       a matrix of bin averages on each spatial axis
    interpolate               a matrix of interpolation weights on each spatial axis
    batch_norm                mean and variance over the batch and the pixels, per channel

Argument names, defaults and meanings are torch.nn.functional's.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minigrad.autograd import Function
from minigrad.tensor import Tensor

# ---------------------------------------------------------------- the two primitives


def _span(kernel: int, dilation: int) -> int:
    """How many pixels a dilated kernel covers: k taps, dilation − 1 gaps between neighbours."""
    return dilation * (kernel - 1) + 1


def _windows(x: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """im2col on arrays: (N, C, H, W) -> (N, OH, OW, C, kh, kw), every receptive field, contiguous."""
    span = (_span(kernel[0], dilation[0]), _span(kernel[1], dilation[1]))
    if x.shape[2] < span[0] or x.shape[3] < span[1]:
        raise ValueError(f"the input's spatial size {tuple(x.shape[2:])} is smaller than the kernel's reach {span}")
    every = sliding_window_view(x, span, axis=(2, 3))  # (N, C, H − span + 1, W − span + 1, span_h, span_w), a view
    picked = every[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]  # (N, C, OH, OW, kh, kw)
    return np.ascontiguousarray(picked.transpose(0, 2, 3, 1, 4, 5))


def _add_windows_back(cols: np.ndarray, shape: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """col2im on arrays: zeros of `shape` (N, C, H, W), each window of cols (N, OH, OW, C, kh, kw) added in place."""
    out = np.zeros(shape, dtype=cols.dtype)
    _, OH, OW, _, kh, kw = cols.shape
    for i in range(kh):  # one kernel tap at a time: its OH × OW pixels never overlap each other
        for j in range(kw):
            rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (OH - 1) + 1, stride[0])
            columns = slice(j * dilation[1], j * dilation[1] + stride[1] * (OW - 1) + 1, stride[1])
            out[:, :, rows, columns] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)  # (N, C, OH, OW)
    return out


def im2col(x, kernel_size: tuple, stride: tuple = (1, 1), dilation: tuple = (1, 1)):
    """Every receptive field of x (N, C, H, W) -> (N, OH, OW, C, kh, kw); recorded as `Im2col` on a Tensor.

    OH = (H − dilation·(kh − 1) − 1) // stride + 1, and the same along the width.
    """
    if isinstance(x, Tensor):
        return Im2col.apply(x, kernel_size=kernel_size, stride=stride, dilation=dilation)
    return _windows(x, kernel_size, stride, dilation)


def col2im(cols, shape: tuple, stride: tuple = (1, 1), dilation: tuple = (1, 1)):
    """Windows (N, OH, OW, C, kh, kw) added back into zeros of `shape` (N, C, H, W): the transpose of im2col."""
    if isinstance(cols, Tensor):
        return Col2im.apply(cols, shape=shape, stride=stride, dilation=dilation)
    return _add_windows_back(cols, shape, stride, dilation)


class Im2col(Function):
    """x (N, C, H, W) -> its receptive fields (N, OH, OW, C, kh, kw): a pure rearrangement of x."""

    tensor_backward = True

    def forward(self, x, kernel_size, stride, dilation):
        self.in_shape, self.stride, self.dilation = x.shape, stride, dilation
        return _windows(x, kernel_size, stride, dilation)

    def backward(self, g):
        # a pixel read by several windows gets the sum of their gradients: col2im
        return col2im(g, self.in_shape, self.stride, self.dilation)


class Col2im(Function):
    """windows (N, OH, OW, C, kh, kw) -> zeros of `shape` (N, C, H, W) with every window added where it sits."""

    tensor_backward = True

    def forward(self, cols, shape, stride, dilation):
        self.windows_shape, self.stride, self.dilation = cols.shape, stride, dilation
        return _add_windows_back(cols, shape, stride, dilation)

    def backward(self, g):
        # each window entry was added to one pixel, so it receives that pixel's gradient: im2col.
        # `shape` may reach past the last window (conv_transpose2d's output_padding): keep OH × OW.
        _, OH, OW, _, kh, kw = self.windows_shape
        return im2col(g, (kh, kw), self.stride, self.dilation)[:, :OH, :OW]


# ---------------------------------------------------------------- arguments as torch takes them


def _pair(value, name: str) -> tuple[int, int]:
    """An int, or a pair of ints, as a pair (torch's `_pair`)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_batched(input: Tensor, ndim: int, name: str) -> None:
    if input.ndim != ndim:
        raise ValueError(f"{name} expects a batched input of {ndim} dimensions, got shape {tuple(input.shape)}")


def _padding_sides(padding, kernel: tuple, dilation: tuple, stride: tuple) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) from torch's `padding`: an int, a pair, "valid" or "same"."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("padding='same' is not supported for strided convolutions (as in torch)")
        # the total is what keeps the size; an odd total puts the extra pixel on the right, as torch
        top, left = ((_span(k, d) - 1) // 2 for k, d in zip(kernel, dilation))
        bottom, right = (_span(k, d) - 1 - before for k, d, before in zip(kernel, dilation, (top, left)))
        return (left, right, top, bottom)
    if isinstance(padding, str):
        raise ValueError(f'padding must be an int, a pair, "valid" or "same", got {padding!r}')
    ph, pw = _pair(padding, "padding")
    return (pw, pw, ph, ph)


PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def pad_for_convolution(
    input: Tensor, kernel: tuple, padding, dilation: tuple, stride: tuple, padding_mode: str = "zeros"
) -> Tensor:
    """input (N, C, H, W) padded as a torch convolution with this padding and padding_mode pads it."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}")
    sides = _padding_sides(padding, kernel, dilation, stride)
    return F.pad(input, sides, mode=PADDING_MODES[padding_mode]) if any(sides) else input


# ---------------------------------------------------------------- convolutions


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, as torch.nn.functional.conv2d.

    input (N, C, H, W) or (C, H, W); weight (O, C / groups, kh, kw); bias (O,) ->
    (N, O, OH, OW) with OH = (H + 2·padding − dilation·(kh − 1) − 1) // stride + 1.
    padding: an int, a pair, "valid" (none) or "same" (the output keeps H × W; stride 1 only).
    groups: the channels split into groups that do not see each other (groups = C: depthwise).
    """
    if input.ndim == 3:  # one unbatched image
        return conv2d(input[None], weight, bias, stride, padding, dilation, groups)[0]
    _check_batched(input, 4, "conv2d")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    x = pad_for_convolution(input, tuple(weight.shape[2:]), padding, dilation, stride)
    return correlate(x, weight, bias, stride, dilation, groups)


def correlate(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple, dilation: tuple, groups: int) -> Tensor:
    """The convolution of an already padded x (N, C, H, W) with weight (O, C / groups, kh, kw): im2col, then @."""
    N, C = x.shape[:2]
    O, C_group, kh, kw = weight.shape
    if C != C_group * groups or O % groups:
        raise ValueError(
            f"conv: input with {C} channels and weight of shape {tuple(weight.shape)} do not fit groups={groups}: "
            f"the weight needs {C} / groups = {C // groups} input channels, and out_channels divisible by groups"
        )
    G, K = groups, C_group * kh * kw  # K: the length of one flattened receptive field of one group
    patches = im2col(x, (kh, kw), stride, dilation)  # (N, OH, OW, C, kh, kw)
    OH, OW = patches.shape[1:3]
    patches = patches.reshape(N * OH * OW, G, K).transpose(1, 0, 2)  # (G, N·OH·OW, K)
    filters = weight.reshape(G, O // G, K).transpose(0, 2, 1)  # (G, K, O / G)
    out = patches @ filters  # (G, N·OH·OW, O / G): every receptive field dotted with every filter
    out = out.reshape(G, N, OH, OW, O // G).transpose(1, 0, 4, 2, 3).reshape(N, O, OH, OW)  # (N, O, OH, OW)
    return out + bias.reshape(1, O, 1, 1) if bias is not None else out


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation, as torch.nn.functional.conv1d: conv2d on images one pixel high.

    input (N, C, L) or (C, L); weight (O, C / groups, k); bias (O,) -> (N, O, OL).
    """
    if input.ndim == 2:
        return conv1d(input[None], weight, bias, stride, padding, dilation, groups)[0]
    _check_batched(input, 3, "conv1d")
    if not isinstance(padding, str):
        padding = (0, _single(padding, "padding"))
    out = conv2d(
        input[:, :, None], weight[:, :, None], bias, (1, _single(stride, "stride")), padding,
        (1, _single(dilation, "dilation")), groups,
    )  # fmt: skip
    return out[:, :, 0]  # (N, O, OL)


def _single(value, name: str) -> int:
    single = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(single) != 1 or not isinstance(single[0], (int, np.integer)):
        raise ValueError(f"{name} must be an int or a 1-tuple of ints, got {value!r}")
    return int(single[0])


def conv_transpose2d(
    input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, output_padding=0, groups=1,
    dilation=1,
) -> Tensor:  # fmt: skip
    """The transposed convolution, as torch.nn.functional.conv_transpose2d: conv2d's gradient with
    respect to its input, used to upsample.

    input (N, C, H, W); weight (C, O / groups, kh, kw); bias (O,) -> (N, O, OH, OW) with
    OH = (H − 1)·stride − 2·padding + dilation·(kh − 1) + output_padding + 1. Every input pixel
    scales the filter and adds it into the output around its own place (a matmul, then col2im);
    padding crops that sum, output_padding adds rows and columns at the bottom and right.
    """
    if input.ndim == 3:
        return conv_transpose2d(input[None], weight, bias, stride, padding, output_padding, groups, dilation)[0]
    _check_batched(input, 4, "conv_transpose2d")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    (ph, pw), extra = _pair(padding, "padding"), _pair(output_padding, "output_padding")
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"output_padding {extra} must be smaller than the stride or the dilation, as in torch")
    N, C, H, W = input.shape
    C_weight, O_group, kh, kw = weight.shape
    if C != C_weight or C % groups:
        raise ValueError(
            f"conv_transpose2d: input with {C} channels needs weight (C, O / groups, kh, kw) with C = {C}, "
            f"divisible by groups={groups}; got weight of shape {tuple(weight.shape)}"
        )
    G = groups
    pixels = input.transpose(0, 2, 3, 1).reshape(N * H * W, G, C // G).transpose(1, 0, 2)  # (G, N·H·W, C / G)
    filters = weight.reshape(G, C // G, O_group * kh * kw)  # (G, C / G, O / G · kh · kw)
    stamps = pixels @ filters  # (G, N·H·W, O / G · kh · kw): each pixel's scaled copy of the filter
    stamps = stamps.reshape(G, N, H, W, O_group, kh, kw).transpose(1, 2, 3, 0, 4, 5, 6)
    stamps = stamps.reshape(N, H, W, G * O_group, kh, kw)  # (N, H, W, O, kh, kw)
    full = tuple((n - 1) * s + _span(k, d) + e for n, s, k, d, e in zip((H, W), stride, (kh, kw), dilation, extra))
    out = col2im(stamps, (N, G * O_group) + full, stride, dilation)  # (N, O, full_h, full_w)
    out = out[:, :, ph : full[0] - ph, pw : full[1] - pw]  # (N, O, OH, OW)
    return out + bias.reshape(1, -1, 1, 1) if bias is not None else out


# ---------------------------------------------------------------- pooling


def _pool_geometry(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool):
    """(output size, padding after) of a pooling window along one axis, by torch's rule.

    ceil_mode rounds the number of windows up, so a last partial window is kept, unless it
    would start in the padding past the input. The padding after may then exceed `padding`
    (or fall short of it, negative meaning rows left unread).
    """
    if padding > kernel // 2:
        raise ValueError(
            f"pad should be at most half of the kernel size (as in torch), got padding {padding}, kernel {kernel}"
        )
    reach = size + 2 * padding - _span(kernel, dilation)
    if reach < 0:
        raise ValueError(
            f"the pooling window ({_span(kernel, dilation)}) is larger than the padded input ({size + 2 * padding})"
        )
    out = (reach + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out, (out - 1) * stride + _span(kernel, dilation) - size - padding


def _pool_windows(input: Tensor, kernel_size, stride, padding, dilation, ceil_mode: bool, fill: float):
    """The pooling windows of input (N, C, H, W), padded with `fill`: (N, OH, OW, C, kh · kw), and the geometry."""
    _check_batched(input, 4, "pooling")
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == () else _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding"), _pair(dilation, "dilation")
    (OH, bottom), (OW, right) = (
        _pool_geometry(n, k, s, p, d, ceil_mode)
        for n, k, s, p, d in zip(input.shape[2:], kernel, stride, padding, dilation)
    )
    x = F.pad(input, (padding[1], right, padding[0], bottom), value=fill)  # (N, C, top + H + bottom, ...)
    windows = im2col(x, kernel, stride, dilation)  # (N, OH, OW, C, kh, kw)
    N, C = input.shape[:2]
    return windows.reshape(N, OH, OW, C, kernel[0] * kernel[1]), (kernel, stride, padding, dilation, (bottom, right))


def max_pool2d(
    input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
    return_indices: bool = False,
):  # fmt: skip
    """The largest value of every window, as torch.nn.functional.max_pool2d.

    input (N, C, H, W) or (C, H, W) -> (N, C, OH, OW), with OH as for conv2d (ceil_mode rounds up); padding
    is −∞, never chosen. The gradient goes to the first maximum of each window, as torch's.
    return_indices=True also gives, for each output, the flat index h·W + w of its maximum
    within its input plane (int64, (N, C, OH, OW)).
    """
    if input.ndim == 3:  # one unbatched image
        out = max_pool2d(input[None], kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        return (out[0][0], out[1][0]) if return_indices else out[0]
    windows, (kernel, stride, padding, dilation, _) = _pool_windows(
        input, kernel_size, stride, padding, dilation, ceil_mode, -math.inf
    )
    first_max = np.argmax(windows.data, axis=-1)[..., None]  # (N, OH, OW, C, 1) which tap of the window wins
    out = windows.gather(-1, first_max)[..., 0].transpose(0, 3, 1, 2)  # (N, C, OH, OW)
    if not return_indices:
        return out
    tap_row, tap_column = np.divmod(first_max[..., 0], kernel[1])  # (N, OH, OW, C)
    OH, OW = out.shape[2:]
    rows = np.arange(OH)[:, None, None] * stride[0] - padding[0] + tap_row * dilation[0]
    columns = np.arange(OW)[None, :, None] * stride[1] - padding[1] + tap_column * dilation[1]
    indices = (rows * input.shape[3] + columns).astype(np.int64).transpose(0, 3, 1, 2)  # (N, C, OH, OW)
    return out, Tensor(indices)


def avg_pool2d(
    input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:  # fmt: skip
    """The mean of every window, as torch.nn.functional.avg_pool2d.

    input (N, C, H, W) or (C, H, W) -> (N, C, OH, OW). The padding counts as zeros in the divisor when
    count_include_pad (never the extra cells ceil_mode adds); otherwise only input pixels count.
    divisor_override, when given, divides every window's sum instead.
    """
    if input.ndim == 3:  # one unbatched image
        return avg_pool2d(input[None], kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)[0]
    windows, (kernel, stride, padding, _, after) = _pool_windows(input, kernel_size, stride, padding, 1, ceil_mode, 0.0)
    sums = windows.sum(axis=-1).transpose(0, 3, 1, 2)  # (N, C, OH, OW)
    if divisor_override is not None:
        return sums / divisor_override
    # Which cells a window counts: pool the same window over a mask of ones on those cells.
    masks = []
    for n, p, a in zip(input.shape[2:], padding, after):
        position = np.arange(-p, n + a)  # the padded axis, in input coordinates
        masks.append((position >= -p) & (position < n + p) if count_include_pad else (position >= 0) & (position < n))
    counted = (masks[0][:, None] & masks[1][None, :]).astype(input.dtype)[None, None]  # (1, 1, padded H, padded W)
    divisor = _windows(counted, kernel, stride, (1, 1)).sum(axis=(-3, -2, -1))  # (1, OH, OW)
    return sums / divisor[:, None]


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """The mean over each of OH × OW bins covering the image, as torch.nn.functional.adaptive_avg_pool2d.

    input (N, C, H, W) or (C, H, W) -> (..., OH, OW); output_size an int, a pair, or None for
    a side to keep. Bin i of n → m spans [⌊i·n/m⌋, ⌈(i+1)·n/m⌉), so bins may overlap by one.
    """
    sizes = (output_size, output_size) if output_size is None or isinstance(output_size, int) else output_size
    OH, OW = (n if m is None else m for n, m in zip(input.shape[-2:], sizes))
    return _resize(input, _bin_means(input.shape[-2], OH), _bin_means(input.shape[-1], OW))


def _bin_means(n: int, m: int) -> np.ndarray:
    """(m, n): row i averages bin i of an axis of n cells cut into m bins."""
    weights = np.zeros((m, n))
    for i in range(m):
        start, end = (i * n) // m, -((-(i + 1) * n) // m)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


def _resize(input: Tensor, along_height: np.ndarray | None, along_width: np.ndarray) -> Tensor:
    """A linear map of each spatial axis: (..., H, W) -> (..., OH, OW) = A_h @ x @ A_wᵀ (A_h None: 1-D input)."""
    out = input @ Tensor(along_width.T, dtype=input.dtype)  # (..., H, OW)
    return out if along_height is None else Tensor(along_height, dtype=input.dtype) @ out  # (..., OH, OW)


# ---------------------------------------------------------------- interpolation

# mode -> the number of spatial axes it takes (None: one or two)
INTERPOLATION_MODES = {"nearest": None, "nearest-exact": None, "linear": 1, "bilinear": 2, "area": None}


def interpolate(
    input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None, antialias: bool = False,
) -> Tensor:  # fmt: skip
    """Resize (N, C, L) or (N, C, H, W) images, as torch.nn.functional.interpolate.

    size (the output's spatial size) or scale_factor (a multiplier per axis), not both.
    mode "nearest" copies the pixel at ⌊dst · in/out⌋ ("nearest-exact": at ⌊(dst + ½) · in/out⌋),
    "linear" (3-D) and "bilinear" (4-D) blend the two nearest pixels of each axis, "area"
    averages bins as adaptive_avg_pool. align_corners=True maps the corner pixels' centres onto
    each other; False (the default) maps the corners of the image. Resizing is linear in the
    image: one matrix per axis, so the gradient is the transposed matrices.
    """
    if mode not in INTERPOLATION_MODES:
        raise ValueError(f"interpolate: mode must be one of {sorted(INTERPOLATION_MODES)}, got {mode!r}")
    if antialias:
        raise ValueError("interpolate: antialias=True is not implemented")
    spatial = input.ndim - 2
    if spatial not in (1, 2) or INTERPOLATION_MODES[mode] not in (None, spatial):
        raise ValueError(f"interpolate: mode {mode!r} does not take an input of shape {tuple(input.shape)}")
    if align_corners is not None and mode not in ("linear", "bilinear"):
        raise ValueError("interpolate: align_corners only goes with the linear modes")
    sizes, scales = _output_sizes(input.shape[2:], size, scale_factor, recompute_scale_factor)
    if min(sizes) < 1:
        raise ValueError(f"interpolate: the output size {tuple(sizes)} is empty; every side needs at least 1 pixel")
    matrices = [
        _interpolation_weights(n, m, scale, mode, bool(align_corners))
        for n, m, scale in zip(input.shape[2:], sizes, scales)
    ]
    return _resize(input, matrices[0] if spatial == 2 else None, matrices[-1])


def _output_sizes(shape: tuple, size, scale_factor, recompute_scale_factor) -> tuple[list, list]:
    """The output's spatial sizes, and the input-per-output scale each axis uses (None: in / out)."""
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give either size or scale_factor, not both, not neither")
    if size is not None:
        sizes = [size] * len(shape) if isinstance(size, int) else list(size)
        return sizes, [None] * len(shape)
    factors = [scale_factor] * len(shape) if isinstance(scale_factor, (int, float)) else list(scale_factor)
    sizes = [int(math.floor(n * f)) for n, f in zip(shape, factors)]
    # torch scales by the given factor unless asked to recompute it from the rounded size
    return sizes, [None if recompute_scale_factor else 1.0 / f for f in factors]


def _interpolation_weights(n: int, m: int, scale, mode: str, align_corners: bool) -> np.ndarray:
    """(m, n): row i holds the weights output pixel i gives to the n input pixels of one axis."""
    if mode == "area":
        return _bin_means(n, m)
    scale = n / m if scale is None else scale
    destination = np.arange(m, dtype=np.float64)
    weights = np.zeros((m, n))
    if mode in ("nearest", "nearest-exact"):
        source = np.floor((destination + (0.5 if mode == "nearest-exact" else 0.0)) * scale)
        weights[np.arange(m), np.minimum(source.astype(int), n - 1)] = 1.0
        return weights
    if align_corners:
        source = destination * ((n - 1) / (m - 1) if m > 1 else 0.0)
    else:
        source = np.maximum((destination + 0.5) * scale - 0.5, 0.0)  # pixel centres, clamped at the edge
    left = np.minimum(np.floor(source).astype(int), n - 1)
    right = np.minimum(left + 1, n - 1)
    share_right = source - left
    np.add.at(weights, (np.arange(m), left), 1.0 - share_right)
    np.add.at(weights, (np.arange(m), right), share_right)
    return weights


# ---------------------------------------------------------------- batch normalisation


def batch_norm(
    input: Tensor, running_mean, running_var, weight: Tensor | None = None, bias: Tensor | None = None,
    training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
) -> Tensor:  # fmt: skip
    """Normalise each channel over the batch (and the pixels), as torch.nn.functional.batch_norm.

    input (N, C, *spatial); running_mean, running_var (C,) arrays or Tensors (or None);
    weight, bias (C,) -> the input's shape. training=True normalises by the batch's own mean and
    (biased) variance and moves the running statistics towards them in place:
    running ← (1 − momentum) · running + momentum · batch, the variance unbiased (n / (n − 1)).
    training=False normalises by the running statistics.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm expects (N, C, ...), got shape {tuple(input.shape)}")
    C = input.shape[1]
    axes = (0,) + tuple(range(2, input.ndim))  # everything but the channel
    per_channel = (1, C) + (1,) * (input.ndim - 2)
    if training:
        count = input.size // C
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got {input.shape}")
        mean = input.mean(axis=axes, keepdims=True)  # (1, C, 1, ...)
        centered = input - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)  # (1, C, 1, ...) biased, as it normalises
        _move_towards(running_mean, mean.data.reshape(C), momentum)
        _move_towards(running_var, var.data.reshape(C) * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: training=False needs running_mean and running_var")
        mean = Tensor(_array(running_mean).reshape(per_channel), dtype=input.dtype)
        var = Tensor(_array(running_var).reshape(per_channel), dtype=input.dtype)
    out = (input - mean) / (var + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(per_channel)
    return out + bias.reshape(per_channel) if bias is not None else out


def _array(statistic) -> np.ndarray:
    return statistic.data if isinstance(statistic, Tensor) else statistic


def _move_towards(running, batch: np.ndarray, momentum: float) -> None:
    """running ← (1 − momentum) · running + momentum · batch, in place (nothing when running is None)."""
    if running is not None:
        values = _array(running)
        values[...] = (1 - momentum) * values + momentum * batch.astype(values.dtype)


__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "interpolate",
    "max_pool2d",
]

import minigrad.functional as F  # noqa: E402  (functional re-exports this module's functions)
