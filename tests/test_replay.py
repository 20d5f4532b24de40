"""Replay: recorded ops run again give what the function gives, and anything it cannot follow is refused."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad import replay as replay_module
from minigrad.replay import Replay
from transformer import GPT, GPTConfig
from transformer import sample as sampling_module

BABY = dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
MODERN = dict(
    BABY,
    rotary=True,
    qk_norm=True,
    activation="relu2",
    norm="rmsnorm",
    bias=False,
    tie_embeddings=False,
    logit_softcap=15.0,
)


def windows(count: int, B: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 13, (B, 8)) for _ in range(count)]


def spread(model: GPT, seed: int = 1) -> GPT:
    """Weights far from GPT-2's small init, so attention and every layer matter."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, 0.3, p.shape)
    return model


@pytest.mark.parametrize("config", [BABY, MODERN], ids=["nanogpt", "speedrun-ideas"])
@pytest.mark.parametrize("fused", [True, False], ids=["kernels", "definitions"])
def test_replayed_window_forward_equals_the_model_to_the_bit(config, fused):
    model = spread(GPT(GPTConfig(**config, fused=fused), rng=np.random.default_rng(0))).eval()
    forward = Replay(lambda ids: model(ids, logits_to_keep=1)[0])
    with mg.no_grad():
        for step, ids in enumerate(windows(6)):
            out = forward(ids)
            assert bool(forward.recordings) == (step >= 1)  # trusted after two different inputs
            np.testing.assert_array_equal(out.data, model(ids, logits_to_keep=1)[0].data)


def test_a_replay_reads_the_parameters_as_they_are_now():
    model = spread(GPT(GPTConfig(**BABY), rng=np.random.default_rng(0))).eval()
    forward = Replay(lambda ids: model(ids)[0])
    a, b, c = windows(3)
    with mg.no_grad():
        forward(a), forward(b)
        assert forward.recordings
        model.transformer.h[0].mlp.c_fc.weight.data *= 2.0  # changed in place
        model.lm_head.weight.data = model.lm_head.weight.data[::-1].copy()  # replaced by a new array
        np.testing.assert_array_equal(forward(c).data, model(c)[0].data)


def test_equal_inputs_prove_nothing_so_the_function_keeps_running(monkeypatch):
    calls, recorded = [], []
    layer = nn.Linear(3, 2, rng=np.random.default_rng(0))

    def fn(x):
        calls.append(1)
        return layer(x)

    record = replay_module._record
    monkeypatch.setattr(replay_module, "_record", lambda *args: recorded.append(1) or record(*args))
    forward = Replay(fn)
    x = np.ones((4, 3), dtype=np.float32)
    with mg.no_grad():
        for _ in range(3):
            forward(x.copy())
        # the function ran each time; only the first call was recorded, the same input again is not worth it
        assert len(calls) == 3 and len(recorded) == 1 and not forward.recordings
        forward(x + 1)  # a different input: the two recordings agree
        assert forward.recordings
        forward(x + 2)
    assert len(calls) == 4  # the last call ran the recorded ops only


def test_a_new_shape_is_recorded_anew():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(0))
    forward = Replay(lambda x: layer(x).relu())
    rng = np.random.default_rng(1)
    with mg.no_grad():
        for rows in (4, 4, 5, 5, 4, 5):
            x = rng.normal(size=(rows, 3)).astype(np.float32)
            np.testing.assert_array_equal(forward(x).data, layer(x).relu().data)
    assert len(forward.recordings) == 2


def test_constants_made_inside_the_call_are_kept():
    layer = nn.Linear(3, 4, rng=np.random.default_rng(0))
    forward = Replay(lambda x: layer(x) + mg.Tensor(np.arange(4.0)) * mg.Tensor(np.ones((1, 4))))
    rng = np.random.default_rng(2)
    with mg.no_grad():
        for _ in range(4):
            x = rng.normal(size=(2, 3)).astype(np.float32)
            np.testing.assert_array_equal(forward(x).data, (layer(x) + mg.Tensor(np.arange(4.0))).data)


def test_a_function_that_branches_on_its_inputs_is_refused():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(0))
    forward = Replay(lambda x: layer(x) if x.sum() > 0 else layer(x) * 2.0)
    with mg.no_grad():
        forward(np.ones((2, 3), dtype=np.float32))
        with pytest.raises(ValueError, match="Replay: the function ran"):
            forward(-np.ones((2, 3), dtype=np.float32))


def test_a_function_that_uses_its_input_outside_the_ops_is_refused():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(0))
    forward = Replay(lambda x: layer(x * 0.5))  # x * 0.5 is NumPy's: a new array, unknown to the recording
    with mg.no_grad():
        forward(np.ones((2, 3), dtype=np.float32))
        with pytest.raises(ValueError, match=r"op 0 \(Linear\) differs"):
            forward(np.full((2, 3), 2.0, dtype=np.float32))


def test_a_function_must_return_what_an_op_made():
    forward = Replay(lambda x: mg.Tensor(x))
    with mg.no_grad(), pytest.raises(TypeError, match="must return the Tensor one of its ops made"):
        forward(np.ones(3, dtype=np.float32))


def test_with_a_graph_a_profile_or_anomaly_detection_the_function_itself_runs():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(0))
    forward = Replay(lambda x: layer(x))
    rng = np.random.default_rng(3)
    with mg.no_grad():
        forward(rng.normal(size=(2, 3)).astype(np.float32)), forward(rng.normal(size=(2, 3)).astype(np.float32))
    x = rng.normal(size=(2, 3)).astype(np.float32)
    out = forward(x)  # grad mode: a graph to the parameters
    out.sum().backward()
    assert layer.weight.grad is not None
    with mg.no_grad(), mg.profile() as prof:
        forward(x)
    assert [event.name for event in prof.events] == ["Linear"]
    with mg.no_grad(), mg.detect_anomaly(), pytest.raises(FloatingPointError):
        forward(np.full((2, 3), np.nan, dtype=np.float32))


def test_generation_past_the_block_is_the_same_with_and_without_replay(monkeypatch):
    model = spread(GPT(GPTConfig(**BABY), rng=np.random.default_rng(0)))
    prompt = np.random.default_rng(4).integers(0, 13, (2, 3))
    replayed = model.generate(prompt, 30, rng=np.random.default_rng(5), top_k=5)
    monkeypatch.setattr(sampling_module, "Replay", lambda fn: fn)
    direct = model.generate(prompt, 30, rng=np.random.default_rng(5), top_k=5)
    np.testing.assert_array_equal(replayed, direct)
