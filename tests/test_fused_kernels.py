"""The fast paths inside the fused kernels (minigrad/kernels.py) compute what the plain formulas compute.

The fused ops run their elementwise chains in cache-sized chunks, sum rows with BLAS, reuse
buffers in place and cache constant arrays. Each trick is a place where a bug could hide
(a chunk boundary, a buffer shared between calls, a silent float64), so each gets a test
here beside the gradient checks and kernel-vs-definition tests of test_ops_gradcheck.py.
"""

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, autograd
from minigrad import kernels as K
from minigrad.ops import lane_sums

CHUNK = K._CHUNK
# lengths around the chunk boundaries: one element, one short, exact, one over, several chunks
LENGTHS = [1, 7, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3]


def exact_erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x.astype(np.float64))


@pytest.mark.parametrize("n", LENGTHS)
def test_chunked_erf_matches_the_c_library_at_every_length(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 3
    y = K.erf_array(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    # Abramowitz & Stegun 7.1.26 is good to 1.5e-7; in float32, 1 - poly·e^(-z²) near z = 0
    # subtracts two numbers close to 1 and adds a few units of float32's 6e-8 spacing there
    np.testing.assert_allclose(y, exact_erf(x), rtol=0, atol=7e-7)


@pytest.mark.parametrize("n", LENGTHS)
def test_chunked_gelu_and_its_derivative_match_float64(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 3
    fn = K.GELU()
    y = fn.forward(x)
    derivative = fn.backward(np.ones_like(x))
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1 + exact_erf(x64 / math.sqrt(2)))
    pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
    assert y.dtype == derivative.dtype == np.float32
    np.testing.assert_allclose(y, x64 * cdf, rtol=2e-6, atol=3e-7)
    np.testing.assert_allclose(derivative, cdf + x64 * pdf, rtol=2e-6, atol=3e-7)


def test_erf_and_gelu_accept_non_contiguous_input():
    base = np.random.default_rng(0).standard_normal((300, 500)).astype(np.float32)
    view = base[::2, ::3].T  # strided in both axes
    np.testing.assert_array_equal(K.erf_array(view), K.erf_array(np.ascontiguousarray(view)))
    np.testing.assert_array_equal(K.gelu(Tensor(view)).data, K.gelu(Tensor(np.ascontiguousarray(view))).data)


def test_gelu_extremes_stay_finite_and_exact():
    x = np.array([-1e4, -40.0, -9.0, -1e-40, 0.0, 1e-40, 9.0, 40.0, 1e4], dtype=np.float32)  # ±1e-40 subnormal
    fn = K.GELU()
    y = fn.forward(x)
    derivative = fn.backward(np.ones_like(x))
    assert np.isfinite(y).all() and np.isfinite(derivative).all()
    np.testing.assert_array_equal(y[[0, 1, 4, -2, -1]], [0.0, 0.0, 0.0, 40.0, 1e4])
    np.testing.assert_array_equal(derivative[[0, 1, -2, -1]], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(derivative[3:6], [0.5, 0.5, 0.5])  # Φ(0) = ½, at and next to 0


# float32 arrays with every kind of value: large of both signs, tiny, subnormal, ±0, ±inf, NaN
ANY_FLOAT32 = hnp.arrays(
    np.float32,
    st.integers(1, 300),
    elements=st.one_of(
        st.floats(width=32),
        st.floats(-20, 20, width=32),
        st.sampled_from([-0.0, 1e-40, -1e-40, -1e30, -1e4, -9.0, -3.0]),
    ),
)


@given(ANY_FLOAT32)
def test_gelu_matches_its_float64_definition_for_every_float32(x):
    """Values of both signs agree with x Φ(x) in float64; a sign slip on negatives would be off by |x|.

    The kernel computes max(x, 0) - a q(a) with a = |x|, q(a) = ½ erfc(a / √2) by Abramowitz &
    Stegun 7.1.26, whose erfc is off by at most 1.5e-7: a q(a) by at most ½ · 1.5e-7 · |x|.
    Rounding adds half an ulp of the result, ε |ref|, and a relative (32 + x²/2) ε of a q(a):
    two passes for w, eight of Horner (the polynomial's condition number below 5 on its
    range), the products, and e^(-x²/2) = 2^(-x² · ½log₂e), whose argument carries three
    roundings of ε/2 (the square, the float32 constant, their product), i.e. an absolute
    3/2 · x²/2 · ε. Results that underflow keep an absolute error of a few
    subnormal spacings, scaled by |x| for the last product.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        fn = K.GELU()
        y = fn.forward(x)
        derivative = fn.backward(np.ones_like(x))
        x64 = x.astype(np.float64)
        ref = x64 * (0.5 * np.vectorize(math.erfc)(-x64 / math.sqrt(2)))  # x Φ(x), NaN at -∞ as there
    finite = np.isfinite(x)
    np.testing.assert_array_equal(y[~finite], ref[~finite])  # +∞ -> ∞, -∞ and NaN -> NaN
    assert np.isnan(derivative[~finite]).all()  # Φ(x) + x φ(x) is ∞ · 0 at ±∞
    x64, ref, magnitude = x64[finite], ref[finite], np.abs(x64[finite])
    eps, subnormal = float(np.finfo(np.float32).eps), float(np.finfo(np.float32).smallest_subnormal)
    tail = np.maximum(x64, 0.0) - ref  # a q(a)
    tolerance = 0.75e-7 * magnitude + eps * np.abs(ref) + (32 + 0.75 * x64 * x64) * eps * tail
    tolerance += subnormal * (1 + magnitude)
    assert (np.abs(y[finite] - ref) <= tolerance).all()
    assert np.isfinite(derivative[finite]).all()


@given(ANY_FLOAT32)
def test_erf_matches_the_c_library_for_every_float32(x):
    """erf z = sign(z) (1 - erfc |z|): odd, ±1 at ±∞, NaN at NaN; 7e-7 as in the test above."""
    with np.errstate(over="ignore"):
        y = K.erf_array(x)
    np.testing.assert_allclose(y, exact_erf(x), rtol=0, atol=7e-7)


def test_row_and_column_sums_by_blas_equal_numpy_sums():
    x = np.random.default_rng(1).standard_normal((3, 5, 7)).astype(np.float32)
    np.testing.assert_allclose(lane_sums(x, -1), x.sum(axis=-1, keepdims=True), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(K._column_sums(x), x.sum(axis=(0, 1)), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        K._ones(4, np.float32)[0] = 2.0  # the cached ones are read-only, so no caller can spoil them


def test_embedding_scatter_add_equals_add_at_with_repeats():
    rng = np.random.default_rng(2)
    weight = Tensor(rng.standard_normal((6, 4)), requires_grad=True)
    ids = np.array([[0, 5, 5, 2], [2, 2, 0, 0]])
    out = K.embedding(ids, weight)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    expected = np.zeros((6, 4), dtype=np.float32)
    np.add.at(expected, ids, g)
    np.testing.assert_allclose(weight.grad, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out.data, weight.data[ids])


def test_embedding_of_no_ids_has_zero_gradient():
    weight = Tensor(np.ones((3, 2)), requires_grad=True)
    out = K.embedding(np.zeros((0,), dtype=np.int64), weight)
    (out.sum() + (weight * 0).sum()).backward()
    np.testing.assert_array_equal(weight.grad, np.zeros((3, 2)))


def test_embedding_rejects_ids_out_of_range():
    with pytest.raises(IndexError):
        K.embedding(np.array([3]), Tensor(np.ones((3, 2)), requires_grad=True))


def test_causal_bias_is_cached_read_only_and_left_intact_by_attention():
    bias = K._causal_bias(4, 4, np.dtype(np.float32))
    assert bias is K._causal_bias(4, 4, np.dtype(np.float32))
    assert not bias.flags.writeable
    before = bias.copy()
    q = Tensor(np.random.default_rng(3).standard_normal((2, 4, 3)), requires_grad=True)
    K.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
    np.testing.assert_array_equal(bias, before)


def test_attention_with_a_mask_wider_than_the_scores():
    # scores (4, 5) meet a mask (2, 4, 5): the sum cannot be written into the scores' buffer
    rng = np.random.default_rng(4)
    q, k, v = (Tensor(rng.standard_normal(s), dtype=np.float64, requires_grad=True) for s in [(4, 3), (5, 3), (5, 2)])
    mask = rng.standard_normal((2, 4, 5))
    fused = K.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    defined = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert fused.shape == (2, 4, 2)
    np.testing.assert_allclose(fused.data, defined.data, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda q, k, v: K.scaled_dot_product_attention(q, k, v, attn_mask=mask), q, k, v)


@pytest.mark.parametrize(
    "make",
    [
        lambda x, w: K.cross_entropy(x.reshape(-1, 4), np.array([0, 3, 1, 2, 2, 1])),
        lambda x, w: K.layer_norm(x, w, w).sum(),
        lambda x, w: K.gelu(x).sum(),
        lambda x, w: K.scaled_dot_product_attention(x, x, x, is_causal=True).sum(),
        lambda x, w: K.linear(x, w.reshape(1, 4), w[:1]).sum(),
    ],
    ids=["cross_entropy", "layer_norm", "gelu", "attention", "linear"],
)
def test_backward_twice_with_retain_graph_gives_the_same_gradient(make):
    # a kernel that reused a saved buffer in place would give a different second gradient
    x = Tensor(np.random.default_rng(5).standard_normal((2, 3, 4)), requires_grad=True)
    w = Tensor(np.random.default_rng(6).standard_normal(4), requires_grad=True)
    loss = make(x, w)
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    x.grad = None
    loss.backward()
    np.testing.assert_array_equal(x.grad, first)


def test_linear_with_non_contiguous_input():
    rng = np.random.default_rng(7)
    x = Tensor(rng.standard_normal((5, 4, 3)).transpose(1, 0, 2), requires_grad=True)  # (4, 5, 3) view
    w, b = Tensor(rng.standard_normal((2, 3)), requires_grad=True), Tensor(rng.standard_normal(2), requires_grad=True)
    K.linear(x, w, b).sum().backward()
    np.testing.assert_allclose(x.grad, np.broadcast_to(w.data.sum(axis=0), (4, 5, 3)), rtol=1e-6)
    np.testing.assert_allclose(b.grad, [20.0, 20.0])


def test_a_float32_gpt_step_never_touches_float64(monkeypatch):
    """Every op output and every gradient of a GPT training step stays float32."""
    from transformer import GPT, GPTConfig

    seen = []
    wrap = Tensor._from_array.__func__

    def recording_wrap(cls, data, ctx=None):
        tensor = wrap(cls, data, ctx)
        seen.append((ctx.name if ctx is not None else "no-grad op", tensor.dtype))
        return tensor

    monkeypatch.setattr(Tensor, "_from_array", classmethod(recording_wrap))
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8), rng=np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 11, (3, 8))
    _, loss = model(ids, np.roll(ids, -1, axis=1))
    for tensor in autograd.topological_order(loss):
        fn = tensor._ctx
        if fn is not None:
            fn.backward = _recording_backward(fn, seen)
    loss.backward()
    floats = [(name, dtype) for name, dtype in seen if dtype.kind == "f"]
    assert floats and all(dtype == np.float32 for _, dtype in floats), sorted(set(floats) - {("", np.float32)})
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def _recording_backward(fn, seen):
    backward = fn.backward

    def recording(g):
        grads = backward(g)
        for grad in grads if isinstance(grads, tuple) else (grads,):
            if grad is not None:
                seen.append((f"{fn.name} backward", np.asarray(grad).dtype))
        return grads

    return recording


def attention_with_and_without_the_kernel(q, k, v, g, **options) -> list:
    """[kernel, definition], each [output, d q, d k, d v], for output gradient g."""
    results = []
    for attention in (K.scaled_dot_product_attention, F.scaled_dot_product_attention):
        inputs = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (q, k, v)]
        out = attention(*inputs, **options)
        out.backward(g)
        results.append([out.data] + [t.grad for t in inputs])
    return results


@pytest.mark.parametrize("tile", [64, 16], ids=["one tile: everything at once", "four tiles"])
def test_attention_that_fits_one_block_of_one_tile_runs_everything_at_once(monkeypatch, tile):
    monkeypatch.setattr(K, "_CAUSAL_TILE", tile)
    rng = np.random.default_rng(11)
    q, k, v, g = (rng.standard_normal((2, 4, 64, 8)) for _ in range(4))
    fn = K.ScaledDotProductAttention()
    fn.forward(q, k, v, is_causal=True)
    assert (fn.blocks == [None]) == (tile == 64) and len(fn.tiles) == 64 // tile
    for fused, composed in zip(*attention_with_and_without_the_kernel(q, k, v, g, is_causal=True)):
        np.testing.assert_allclose(fused, composed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block", [1, 40, 10**9], ids=["one-row-blocks", "uneven-blocks", "one-block"])
@pytest.mark.parametrize("keep", [0, 10**9], ids=["recomputed", "kept"])
def test_attention_in_batch_blocks_and_causal_tiles_equals_the_definition(monkeypatch, block, keep):
    monkeypatch.setattr(K, "_ATTENTION_BLOCK", block)  # scores per block; 40 gives blocks of 2 and 1
    monkeypatch.setattr(K, "_MAX_SAVED_WEIGHTS", keep)  # weights kept for backward up to this size
    monkeypatch.setattr(K, "_CAUSAL_TILE", 3)  # 4 positions: tiles of 3 and 1 queries
    rng = np.random.default_rng(8)
    q, k, v, g = (rng.standard_normal((5, 2, 4, 3)) for _ in range(4))
    for fused, composed in zip(*attention_with_and_without_the_kernel(q, k, v, g, is_causal=True)):
        np.testing.assert_allclose(fused, composed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block", [1, 40, 10**9], ids=["one-row-blocks", "uneven-blocks", "one-block"])
@pytest.mark.parametrize("keep", [0, 10**9], ids=["recomputed", "kept"])
def test_attention_in_batch_blocks_gives_a_query_with_no_key_zeros(monkeypatch, block, keep):
    """The (max, sum) kept per row bring back a zero row when backward recomputes the weights."""
    monkeypatch.setattr(K, "_ATTENTION_BLOCK", block)
    monkeypatch.setattr(K, "_MAX_SAVED_WEIGHTS", keep)
    rng = np.random.default_rng(9)
    q, k, v, g = (rng.standard_normal((5, 2, 4, 3)) for _ in range(4))
    allowed = rng.random((4, 4)) >= 0.3
    allowed[:, 0], allowed[2] = True, False  # query 2 sees no key, the others at least one
    fused, defined = attention_with_and_without_the_kernel(q, k, v, g, attn_mask=allowed)
    assert (fused[0][..., 2, :] == 0).all() and (fused[1][..., 2, :] == 0).all()
    for a, b in zip(fused, defined):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_attention_too_large_to_keep_its_weights_gives_a_query_with_no_key_zeros():
    """At the real block sizes: weights recomputed in backward, several batch blocks."""
    B, H, T = 3, 4, 300
    rng = np.random.default_rng(10)
    q, k, v, g = (rng.standard_normal((B, H, T, 8)) for _ in range(4))
    allowed = F.causal_mask(T, T)
    allowed[T // 2] = False  # one query in the middle sees nothing
    assert B * H * T * T > K._MAX_SAVED_WEIGHTS  # backward recomputes the weights
    assert len(K._batch_blocks(q, k, v, allowed, everything_at_once=False, one_tile=True)) == B  # one entry per block
    fused, defined = attention_with_and_without_the_kernel(q, k, v, g, attn_mask=allowed)
    assert (fused[0][..., T // 2, :] == 0).all() and (fused[1][..., T // 2, :] == 0).all()
    for a, b in zip(fused, defined):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [0.5, 30.0], ids=["small scores, unshifted", "large scores, shifted by the max"])
def test_attention_softmax_with_and_without_the_max_shift_equals_the_definition(scale):
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((2, 3, 16, 8)) * scale for _ in range(3))
    scores = q / math.sqrt(8) @ np.swapaxes(k, -1, -2)
    assert K._scores_are_small(scores) == (scale == 0.5)  # scores of about 30² = 900: the max is needed
    allowed = F.causal_mask(16, 16) & (rng.random((16, 16)) > 0.3)
    allowed[3] = False  # a query that may see no key
    for mask, causal in ((None, True), (allowed, False)):
        ours = K.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), mask, is_causal=causal).data
        theirs = F.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), mask, is_causal=causal).data
        assert np.isfinite(ours).all()
        # weights differ by a few roundings of each of the 16 summed terms
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=8 * 16 * 1.2e-7 * np.abs(v).max())
        if mask is not None:
            np.testing.assert_array_equal(ours[:, :, 3], 0.0)


def test_scores_with_a_nan_or_an_infinity_are_never_called_small():
    scores = np.zeros((1, 2, 4), np.float32)
    assert K._scores_are_small(scores) and K._scores_are_small(scores[:, :, :0])
    scores[0, 1, 2] = -64.0
    assert K._scores_are_small(scores)
    for value in (np.nan, np.inf, -np.inf, 64.5, -64.5):
        scores[0, 1, 2] = value
        assert not K._scores_are_small(scores)


def test_lane_sums_by_blas_equal_numpy_sums_on_every_axis():
    x = np.random.default_rng(3).standard_normal((3, 5, 7)).astype(np.float32)
    for axis in (0, 1, 2, -1):
        np.testing.assert_allclose(lane_sums(x, axis), x.sum(axis=axis, keepdims=True), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(lane_sums(np.ones((2, 0), np.float32), -1), np.zeros((2, 1)))
