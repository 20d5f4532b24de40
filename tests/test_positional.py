"""Positional encodings: each matches its paper's formula and has the property it is built for."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_attention import gradcheck_module

import minigrad as mg
from minigrad import Tensor
from transformer.positional import (
    ALiBi,
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    alibi_slopes,
    sinusoidal_table,
)


@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoidal_matches_the_papers_formula(d_model):
    table = sinusoidal_table(12, d_model)
    for pos in range(12):
        for i in range(d_model):
            angle = pos / 10000 ** ((i - i % 2) / d_model)  # PE(pos, 2i) and PE(pos, 2i+1) share 2i
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert table[pos, i] == pytest.approx(expected, abs=1e-6)


def test_sinusoidal_offsets_are_rotations():
    """PE(pos + k) is a fixed linear map of PE(pos): the property the paper chose sinusoids for."""
    table = sinusoidal_table(50, 8).astype(np.float64)
    k = 3
    # least squares finds the one map M with PE[:-k] M = PE[k:]; it must be exact
    M, *_ = np.linalg.lstsq(table[:-k], table[k:], rcond=None)
    np.testing.assert_allclose(table[:-k] @ M, table[k:], atol=1e-5)


def test_sinusoidal_adds_the_table_and_has_no_parameters():
    encoding = SinusoidalPositionalEncoding(4, max_len=10)
    x = mg.zeros(2, 5, 4)
    np.testing.assert_array_equal(encoding(x).data, np.broadcast_to(sinusoidal_table(10, 4)[:5], (2, 5, 4)))
    assert encoding.state_dict() == {}
    assert mg.gradcheck(encoding, Tensor(np.ones((1, 3, 4)), dtype=np.float64, requires_grad=True))
    with pytest.raises(ValueError, match="length 11 is longer than max_len 10"):
        encoding(mg.zeros(1, 11, 4))


def test_learned_positions_gradcheck_and_only_used_rows_learn():
    mg.manual_seed(0)
    embedding = LearnedPositionalEmbedding(6, 3)
    assert list(embedding.state_dict()) == ["weight"]
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 4, 3)), dtype=np.float64, requires_grad=True)
    embedding(x).sum().backward()
    np.testing.assert_array_equal(embedding.weight.grad[:4], 2.0)  # two sequences use each position
    np.testing.assert_array_equal(embedding.weight.grad[4:], 0.0)
    assert gradcheck_module(embedding, embedding, x)


@given(d=st.sampled_from([2, 4, 8]), seed=st.integers(0, 2**16))
def test_rotary_scores_depend_only_on_relative_position(d, seed):
    """(R_m q)·(R_n k) is the same for every (m, n) with the same n - m."""
    rng = np.random.default_rng(seed)
    T = 6
    q0, k0 = rng.standard_normal(d), rng.standard_normal(d)
    rotary = RotaryEmbedding(d)
    q = rotary(Tensor(np.tile(q0, (T, 1)), dtype=np.float64)).data  # (T, d) q0 at every position
    k = rotary(Tensor(np.tile(k0, (T, 1)), dtype=np.float64)).data  # (T, d) k0 at every position
    scores = q @ k.T  # (T, T) scores[m, n]
    np.testing.assert_allclose(scores[1:, 1:], scores[:-1, :-1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores[0, 0], q0 @ k0, rtol=1e-12)  # position 0 is not rotated
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), np.linalg.norm(q0), rtol=1e-12)  # rotations keep lengths


def test_rotary_is_multiplication_by_a_complex_phase():
    """Each pair (x_2i, x_2i+1) as the complex number x_2i + i·x_2i+1 is multiplied by e^(i·m·θ_i)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 6))
    theta = 10000.0 ** (-np.arange(0, 6, 2) / 6)
    phase = np.exp(1j * np.arange(5)[:, None] * theta)  # (T, 3)
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * phase
    got = RotaryEmbedding(6)(Tensor(x, dtype=np.float64)).data
    np.testing.assert_allclose(got[..., 0::2], z.real, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got[..., 1::2], z.imag, rtol=1e-12, atol=1e-14)


def test_rotary_gradcheck_and_checks():
    rng = np.random.default_rng(2)
    x = Tensor(rng.standard_normal((2, 3, 4)), dtype=np.float64, requires_grad=True)
    assert mg.gradcheck(RotaryEmbedding(4), x)
    with pytest.raises(ValueError, match="head_dim must be even"):
        RotaryEmbedding(5)
    with pytest.raises(ValueError, match="built for head_dim 6"):
        RotaryEmbedding(6)(x)


def test_alibi_slopes_are_the_papers_geometric_sequence():
    np.testing.assert_allclose(alibi_slopes(8), [2.0**-k for k in range(1, 9)])  # 1/2, 1/4, ..., 1/256
    np.testing.assert_allclose(alibi_slopes(4), [2.0**-k for k in (2, 4, 6, 8)])
    # 6 heads: the 4 slopes of 4 heads, then every other one of 8 heads' (1/2, 1/8)
    np.testing.assert_allclose(alibi_slopes(6), [2.0**-k for k in (2, 4, 6, 8, 1, 3)])


def test_alibi_bias_is_minus_slope_times_distance():
    alibi = ALiBi(4)
    bias = alibi(3, 5)
    assert bias.shape == (4, 3, 5)
    for h in range(4):
        for i in range(3):
            for j in range(5):
                assert bias[h, i, j] == pytest.approx(-alibi.slopes[h] * abs(i - j))
    assert alibi.state_dict() == {}
