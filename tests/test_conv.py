"""Convolution, pooling, resizing and batch norm: gradient-checked in float64, equal to torch.

Hypothesis draws the geometry (batch, channels, groups, kernel, stride, padding, dilation,
image size) so that at least one window fits; a seed fixes the values. The gradient checks
register with test_ops_gradcheck's `checks`, so the op table's meta-tests see them; the torch
comparisons skip without torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops_gradcheck import check, checks, leaf, seeds, values

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, conv, nn

# Each example runs gradcheck and gradgradcheck (hundreds of forward passes): fewer examples.
few = settings(max_examples=10)


@st.composite
def conv_geometry(draw, transposed: bool = False):
    """Shapes and settings of a conv2d (or conv_transpose2d) whose output has at least one pixel."""
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if transposed:
        padding = tuple(min(p, (s - 1) // 2) for p, s in zip(padding, spans))  # keep the output non-empty
        image = tuple(draw(st.integers(1, 3)) for _ in range(2))
        extra = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        settings_ = dict(stride=stride, padding=padding, output_padding=extra, groups=groups, dilation=dilation)
        return (draw(st.integers(1, 2)), c_in) + image, (c_in, c_out // groups) + kernel, c_out, settings_
    if stride == (1, 1) and draw(st.booleans()):
        padding = draw(st.sampled_from(["same", "valid"]))
        pads = (0, 0) if padding == "valid" else tuple(s - 1 for s in spans)
    else:
        pads = tuple(2 * p for p in padding)
    image = tuple(max(1, s - p + draw(st.integers(0, 3))) for s, p in zip(spans, pads))
    settings_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return (draw(st.integers(1, 2)), c_in) + image, (c_out, c_in // groups) + kernel, c_out, settings_


@st.composite
def pool_geometry(draw, dilated: bool = True):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    image = tuple(max(1, s - 2 * p) + draw(st.integers(0, 3)) for s, p in zip(spans, padding))
    settings_ = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()))
    if dilated:
        settings_["dilation"] = dilation
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + image, settings_


# ---------------------------------------------------------------- gradients, float64


@checks(conv.Im2col, conv.Col2im)
@few
@given(geometry=conv_geometry(), seed=seeds)
def test_im2col_and_col2im(geometry, seed):
    x_shape, w_shape, _, kwargs = geometry
    kernel, stride, dilation = w_shape[2:], kwargs["stride"], kwargs["dilation"]
    x_shape = x_shape[:2] + tuple(max(n, d * (k - 1) + 1) for n, k, d in zip(x_shape[2:], kernel, dilation))
    x = leaf(seed, x_shape)
    check(lambda x: conv.im2col(x, kernel, stride, dilation) * 1.5, x)
    windows = conv.im2col(x.data, kernel, stride, dilation)
    check(lambda c: conv.col2im(c, x_shape, stride, dilation), leaf(seed + 1, windows.shape))
    # col2im is im2col's transpose: <im2col(x), c> = <x, col2im(c)>
    c = values(seed + 2, windows.shape)
    np.testing.assert_allclose((windows * c).sum(), (x.data * conv.col2im(c, x_shape, stride, dilation)).sum())


@checks("F.conv2d", "F.conv1d")
@few
@given(geometry=conv_geometry(), seed=seeds, with_bias=st.booleans())
def test_conv2d_and_conv1d(geometry, seed, with_bias):
    x_shape, w_shape, c_out, kwargs = geometry
    bias = [leaf(seed + 2, (c_out,))] if with_bias else []
    check(lambda x, w, *b: F.conv2d(x, w, *b, **kwargs), leaf(seed, x_shape), leaf(seed + 1, w_shape), *bias)
    one_d = {k: v if isinstance(v, (int, str)) else v[1] for k, v in kwargs.items()}
    check(
        lambda x, w, *b: F.conv1d(x, w, *b, **one_d),
        leaf(seed, x_shape[:2] + x_shape[3:]), leaf(seed + 1, w_shape[:2] + w_shape[3:]), *bias,
    )  # fmt: skip


@checks("F.conv_transpose2d")
@few
@given(geometry=conv_geometry(transposed=True), seed=seeds)
def test_conv_transpose2d(geometry, seed):
    x_shape, w_shape, c_out, kwargs = geometry
    check(
        lambda x, w, b: F.conv_transpose2d(x, w, b, **kwargs),
        leaf(seed, x_shape), leaf(seed + 1, w_shape), leaf(seed + 2, (c_out,)),
    )  # fmt: skip


@checks("F.max_pool2d", "F.avg_pool2d")
@few
@given(geometry=pool_geometry(), seed=seeds, count_include_pad=st.booleans())
def test_pooling(geometry, seed, count_include_pad):
    shape, kwargs = geometry
    check(lambda x: F.max_pool2d(x, **kwargs), leaf(seed, shape, "distinct"))  # no ties: one maximum per window
    kwargs.pop("dilation")
    check(lambda x: F.avg_pool2d(x, **kwargs, count_include_pad=count_include_pad), leaf(seed, shape))


@checks("F.adaptive_avg_pool2d", "F.interpolate")
@few
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)),
    out=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "bilinear_corners", "area", "linear"]),
    seed=seeds,
)
def test_adaptive_pooling_and_interpolation(shape, out, mode, seed):
    check(lambda x: F.adaptive_avg_pool2d(x, out), leaf(seed, shape))
    corners = mode.endswith("corners")
    kwargs = dict(mode=mode.removesuffix("_corners"), align_corners=corners if "linear" in mode else None)
    x = leaf(seed, shape[:3] if mode == "linear" else shape)
    check(lambda x: F.interpolate(x, size=out[: x.ndim - 2], **kwargs), x)


@checks("F.batch_norm")
@few
@given(
    shape=st.tuples(st.integers(2, 3), st.integers(1, 3)).flatmap(
        lambda nc: st.tuples(*map(st.just, nc), *[st.integers(1, 3)] * 2)
    ),
    training=st.booleans(),
    seed=seeds,
)
def test_batch_norm(shape, training, seed):
    C = shape[1]
    running = values(seed + 3, (C,)), values(seed + 4, (C,), "positive")
    check(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True) if training
        else F.batch_norm(x, *running, w, b, training=False),
        leaf(seed, shape), leaf(seed + 1, (C,)), leaf(seed + 2, (C,)),
    )  # fmt: skip


# ---------------------------------------------------------------- the same numbers as torch


def _compare(ours, theirs, arrays: list, torch, **tolerance) -> None:
    """Values and gradients of both, float64, for the same output gradient."""
    tolerance = tolerance or dict(rtol=1e-10, atol=1e-12)
    mine = [Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]
    out = ours(*mine)
    g = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(g)
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = theirs(*theirs_in)
    expected.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **tolerance)
    for i, (a, b) in enumerate(zip(mine, theirs_in)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), **tolerance, err_msg=f"gradient of input {i}")


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note that it pads a copy, as here
@given(geometry=conv_geometry(), seed=seeds, transposed=conv_geometry(transposed=True))
def test_convolutions_match_torch(geometry, seed, transposed):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x_shape, w_shape, c_out, kwargs = geometry
    arrays = [values(seed, x_shape), values(seed + 1, w_shape), values(seed + 2, (c_out,))]
    _compare(lambda *t: F.conv2d(*t, **kwargs), lambda *t: TF.conv2d(*t, **kwargs), arrays, torch)
    one_d = {k: v if isinstance(v, (int, str)) else v[1] for k, v in kwargs.items()}
    arrays_1d = [arrays[0][:, :, 0], arrays[1][:, :, 0], arrays[2]]
    _compare(lambda *t: F.conv1d(*t, **one_d), lambda *t: TF.conv1d(*t, **one_d), arrays_1d, torch)
    x_shape, w_shape, c_out, kwargs = transposed
    arrays = [values(seed, x_shape), values(seed + 1, w_shape), values(seed + 2, (c_out,))]
    _compare(lambda *t: F.conv_transpose2d(*t, **kwargs), lambda *t: TF.conv_transpose2d(*t, **kwargs), arrays, torch)


@given(geometry=pool_geometry(), seed=seeds, count_include_pad=st.booleans(), divisor=st.sampled_from([None, 3]))
def test_pooling_matches_torch(geometry, seed, count_include_pad, divisor):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    shape, kwargs = geometry
    x = [values(seed, shape, "distinct")]
    _compare(lambda t: F.max_pool2d(t, **kwargs), lambda t: TF.max_pool2d(t, **kwargs), x, torch)
    _, indices = F.max_pool2d(Tensor(x[0]), **kwargs, return_indices=True)
    _, expected = TF.max_pool2d(torch.tensor(x[0]), **kwargs, return_indices=True)
    np.testing.assert_array_equal(indices.data, expected.numpy())
    assert indices.dtype == np.int64
    kwargs.pop("dilation")
    kwargs.update(count_include_pad=count_include_pad, divisor_override=divisor)
    _compare(lambda t: F.avg_pool2d(t, **kwargs), lambda t: TF.avg_pool2d(t, **kwargs), x, torch)


@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 6), st.integers(1, 6)),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    factor=st.tuples(st.sampled_from([0.5, 1.5, 2.0, 2.5, 3.0]), st.sampled_from([0.75, 1.0, 2.0, 3.5])),
    mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "area", "linear"]),
    align_corners=st.booleans(),
    seed=seeds,
)
def test_resizing_matches_torch(shape, size, factor, mode, align_corners, seed):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = [values(seed, shape[:3] if mode == "linear" else shape)]
    n = len(x[0].shape) - 2
    corners = dict(align_corners=align_corners) if "linear" in mode else {}
    for how in (dict(size=size[:n]), dict(scale_factor=factor[:n])):
        if "scale_factor" in how and min(int(s * f) for s, f in zip(shape[2:], factor)) == 0:
            with pytest.raises(ValueError, match="is empty"):  # torch refuses an empty output too
                F.interpolate(Tensor(x[0]), **how, mode=mode, **corners)
            continue
        _compare(
            lambda t, how=how: F.interpolate(t, **how, mode=mode, **corners),
            lambda t, how=how: TF.interpolate(t, **how, mode=mode, **corners), x, torch,
        )  # fmt: skip
    if n == 2:
        _compare(lambda t: F.adaptive_avg_pool2d(t, size), lambda t: TF.adaptive_avg_pool2d(t, size), x, torch)


def test_batch_norm_matches_torch_and_updates_the_running_statistics():
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3, 2, 5)), rng.standard_normal(3), rng.standard_normal(3)
    ours = [rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)]
    theirs = [torch.tensor(a) for a in ours]
    for training in (True, False):
        _compare(
            lambda x, w, b, training=training: F.batch_norm(x, *ours, w, b, training=training, momentum=0.3),
            lambda x, w, b, training=training: TF.batch_norm(x, *theirs, w, b, training=training, momentum=0.3),
            [x, w, b], torch,
        )  # fmt: skip
        for mine, expected in zip(ours, theirs):
            np.testing.assert_allclose(mine, expected.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(Tensor(x[:1, :, :1, :1]), None, None, training=True)


# ---------------------------------------------------------------- modules: torch's state dicts and modes


def _load_from_torch(ours, theirs):
    """Load torch's state dict strictly: the same names, shapes and order, or an error."""
    state = theirs.state_dict()
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state, strict=True)
    for name, value in ours.state_dict().items():
        assert value.shape == tuple(state[name].shape), name


MODULES = {
    "conv2d_reflect": (lambda M: M.Conv2d(3, 4, (3, 2), padding=(1, 2), padding_mode="reflect"), (2, 3, 5, 6)),
    "conv2d_replicate_same": (lambda M: M.Conv2d(3, 6, 3, padding="same", groups=3, padding_mode="replicate"),
                              (2, 3, 5, 6)),
    "conv2d_circular": (lambda M: M.Conv2d(3, 2, 3, stride=2, padding=1, bias=False, padding_mode="circular"),
                        (2, 3, 5, 6)),
    "conv1d_reflect": (lambda M: M.Conv1d(3, 2, 3, padding=2, dilation=2, padding_mode="reflect"), (2, 3, 7)),
    "conv1d_unbatched": (lambda M: M.Conv1d(3, 2, 2, stride=2), (3, 7)),
    "conv_transpose2d": (lambda M: M.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2),
                         (2, 4, 3, 4)),
    "max_pool": (lambda M: M.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 5, 6)),
    "avg_pool": (lambda M: M.AvgPool2d((2, 3), padding=1, count_include_pad=False), (2, 3, 5, 6)),
    "adaptive": (lambda M: M.AdaptiveAvgPool2d((2, None)), (2, 3, 5, 6)),
    "max_pool_unbatched": (lambda M: M.MaxPool2d(2), (3, 5, 6)),
    "avg_pool_unbatched": (lambda M: M.AvgPool2d(2, ceil_mode=True), (3, 5, 6)),
    "conv2d_unbatched": (lambda M: M.Conv2d(3, 2, 2, padding_mode="reflect", padding=1), (3, 5, 6)),
}  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_modules_load_torch_state_dicts_and_compute_the_same(name):
    torch = pytest.importorskip("torch")
    build, shape = MODULES[name]
    ours, theirs = build(nn).to(np.float64), build(torch.nn).double()
    _load_from_torch(ours, theirs)
    x = np.random.default_rng(0).standard_normal(shape)
    _compare(ours, theirs, [x], torch)
    if ours.state_dict():
        for (key, mine), (_, param) in zip(ours.named_parameters(), theirs.named_parameters()):
            np.testing.assert_allclose(mine.grad, param.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize(
    "kind, shape", [("BatchNorm2d", (4, 3, 2, 3)), ("BatchNorm1d", (5, 3)), ("BatchNorm1d", (4, 3, 2))]
)
def test_batch_norm_modules_follow_torch_through_training_and_evaluation(kind, shape, momentum):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(nn, kind)(3, momentum=momentum).to(np.float64), getattr(torch.nn, kind)(3, momentum=momentum)
    theirs = theirs.double()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2, 3)))
        theirs.bias.copy_(torch.from_numpy(rng.standard_normal(3)))
    _load_from_torch(ours, theirs)
    assert list(ours.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    for step in range(3):  # three training batches move the running statistics, then evaluation uses them
        _compare(ours, theirs, [rng.standard_normal(shape) * 2 + step], torch)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-12, atol=1e-14, err_msg=name)
    assert ours.num_batches_tracked.item() == 3 and ours.num_batches_tracked.dtype == np.int64
    ours.eval(), theirs.eval()
    _compare(ours, theirs, [rng.standard_normal(shape)], torch)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)  # and back


def test_batch_norm_without_running_statistics_always_uses_the_batch():
    bn = nn.BatchNorm2d(2, affine=False, track_running_stats=False).eval()
    assert list(bn.state_dict()) == [] and bn.running_mean is None
    x = Tensor(np.random.default_rng(0).standard_normal((3, 2, 4, 4)) * 5 + 3)
    out = bn(x).data
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    with pytest.raises(ValueError, match="expects 4-D input"):
        bn(Tensor(np.ones((3, 2))))


def test_buffers_are_state_but_not_parameters():
    """Running statistics travel with the state dict and `to(dtype)`; optimizers never see them."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [name for name, _ in model.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    state = model.state_dict()
    state["1.running_mean"] = np.full(2, 7.0)
    copy = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    copy.load_state_dict(state)
    np.testing.assert_array_equal(copy[1].running_mean.data, 7.0)
    copy.to(np.float64)
    assert copy[1].running_var.dtype == np.float64 and copy[1].num_batches_tracked.dtype == np.int64
    with pytest.raises(TypeError, match="buffer 'running_mean'"):
        copy[1].running_mean = np.zeros(2)


def test_errors_name_what_is_wrong():
    x = Tensor(np.ones((1, 4, 5, 5)))
    with pytest.raises(ValueError, match="do not fit groups=3"):
        F.conv2d(x, Tensor(np.ones((3, 2, 3, 3))), groups=3)
    with pytest.raises(ValueError, match="'same' is not supported for strided"):
        F.conv2d(x, Tensor(np.ones((3, 4, 3, 3))), stride=2, padding="same")
    with pytest.raises(ValueError, match="smaller than the kernel"):
        F.conv2d(x, Tensor(np.ones((3, 4, 7, 1))))
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="does not take an input"):
        F.interpolate(x, size=3, mode="linear")
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, Tensor(np.ones((4, 1, 3, 3))), output_padding=1)


def test_a_convolution_trains():
    """A 3×3 filter learns a known edge detector by gradient descent."""
    rng = np.random.default_rng(0)
    target = np.array([[-1.0, 0.0, 1.0]] * 3)[None, None]  # (1, 1, 3, 3)
    images = rng.standard_normal((8, 1, 6, 6))
    wanted = F.conv2d(Tensor(images), Tensor(target), padding=1).data
    layer = nn.Conv2d(1, 1, 3, padding=1, bias=False, rng=rng)
    optimizer = mg.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(200):
        loss = ((layer(Tensor(images)) - wanted) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    np.testing.assert_allclose(layer.weight.data, target, atol=1e-3)


def torch_cases(TF, normal) -> dict:
    """name -> (minigrad function, torch function, inputs) for test_torch_parity_ops' table of every op.

    Each value and gradient here sums at most 8 products of numbers near 1, so float32 rounding
    stays under 8 · 2⁻²⁴ ≈ 5e-7 absolute, inside that table's float32 tolerance.
    """
    return {
        "conv2d": (
            lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
            lambda x, w, b: TF.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
            [normal(1, 4, 3, 4), normal(4, 2, 2, 2), normal(4)],  # weight gradient: 1 · 2 · 4 positions
        ),
        "conv1d_same": (
            lambda x, w: F.conv1d(x, w, padding="same"),
            lambda x, w: TF.conv1d(x, w, padding="same"),
            [normal(1, 2, 4), normal(3, 2, 3)],
        ),
        "conv_transpose2d": (
            lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
            lambda x, w, b: TF.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
            [normal(1, 2, 2, 3), normal(2, 3, 2, 2), normal(3)],  # weight gradient: 1 · 2 · 3 pixels
        ),
        "pooling": (
            lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True) + F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
            lambda x: TF.max_pool2d(x, 3, 2, 1, ceil_mode=True) + TF.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
            [normal(1, 3, 4, 5)],
        ),
        "resizing": (
            lambda x: F.interpolate(x, size=(7, 3), mode="bilinear") + F.adaptive_avg_pool2d(x, (7, 3)),
            lambda x: TF.interpolate(x, size=(7, 3), mode="bilinear") + TF.adaptive_avg_pool2d(x, (7, 3)),
            [normal(2, 3, 4, 5)],
        ),
        "batch_norm": (
            lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
            lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True),
            [normal(4, 3, 2, 1), normal(3), normal(3)],  # 8 values per channel
        ),
    }
