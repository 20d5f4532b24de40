"""minigrad.optim: hand-computed steps, torch.optim parity over many steps, exact resumption."""

import json
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrad import Tensor
from minigrad.optim import (
    SGD,
    Adam,
    AdamW,
    CosineWithWarmup,
    LRScheduler,
    clip_grad_norm_,
    clip_grads_with_norm_,
    cosine_with_warmup,
    get_total_norm,
)

SHAPES = [(5, 4), (4,), (3, 2, 2)]


def make_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in SHAPES]


def grad_sequence(steps, seed=1, dtype=np.float64):
    """The same made-up gradients for every optimizer, one list per step."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def run(optimizer, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        optimizer.step()


# ---------------------------------------------------------------- hand-computed steps (no torch)


def test_sgd_momentum_by_hand():
    p = Tensor([1.0, -2.0], dtype=np.float64, requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    p.grad = np.array([0.2, 0.4])
    opt.step()
    # g = grad + 0.5 p = [0.7, -0.6]; buffer = g; p - 0.1 g
    np.testing.assert_allclose(p.data, [1.0 - 0.07, -2.0 + 0.06], rtol=0, atol=1e-15)
    p.grad = np.array([0.2, 0.4])
    opt.step()
    g = np.array([0.2, 0.4]) + 0.5 * np.array([0.93, -1.94])
    buf = 0.9 * np.array([0.7, -0.6]) + g
    np.testing.assert_allclose(p.data, np.array([0.93, -1.94]) - 0.1 * buf, rtol=0, atol=1e-15)


def test_sgd_nesterov_by_hand():
    p = Tensor([1.0], dtype=np.float64, requires_grad=True)
    opt = SGD([p], lr=0.5, momentum=0.5, nesterov=True)
    p.grad = np.array([2.0])
    opt.step()  # buffer = 2; step direction = 2 + 0.5·2 = 3
    assert p.data[0] == 1.0 - 0.5 * 3.0
    p.grad = np.array([2.0])
    opt.step()  # buffer = 0.5·2 + 2 = 3; direction = 2 + 0.5·3 = 3.5
    assert p.data[0] == -0.5 - 0.5 * 3.5


@pytest.mark.parametrize("cls, wd", [(Adam, 0.0), (Adam, 0.1), (AdamW, 0.1)])
def test_adam_two_steps_by_hand(cls, wd):
    lr, b1, b2, eps = 0.01, 0.9, 0.99, 1e-8
    p0, grads = 1.5, [0.3, -0.7]
    p = Tensor([p0], dtype=np.float64, requires_grad=True)
    opt = cls([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    x, m, v = p0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        p.grad = np.array([g])
        opt.step()
        if cls is AdamW:
            x *= 1 - lr * wd
        else:
            g = g + wd * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x -= lr / (1 - b1**t) * m / (math.sqrt(v) / math.sqrt(1 - b2**t) + eps)
        assert p.data[0] == pytest.approx(x, rel=1e-14, abs=0)


def test_first_adam_step_moves_each_weight_by_lr():
    # After one step m̂ = g and v̂ = g², so every weight moves by lr·g/(|g| + eps) ≈ lr·sign(g).
    p = Tensor([0.0, 0.0, 0.0], dtype=np.float64, requires_grad=True)
    p.grad = np.array([3.0, -1e-3, 50.0])
    Adam([p], lr=0.1, eps=0.0).step()
    np.testing.assert_allclose(p.data, [-0.1, 0.1, -0.1], rtol=1e-14)


def test_updates_in_place_and_leave_grad_alone():
    params = make_params()
    arrays = [p.data for p in params]
    grads = grad_sequence(1)[0]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    Adam(params, weight_decay=0.1).step()
    for p, a, g in zip(params, arrays, grads):
        assert p.data is a
        np.testing.assert_array_equal(p.grad, g)


def test_params_without_grad_are_skipped():
    a, b = make_params()[:2]
    before = b.data.copy()
    opt = AdamW([a, b], lr=0.1)
    a.grad = np.ones(a.shape)
    opt.step()
    np.testing.assert_array_equal(b.data, before)  # not even decayed
    assert opt.state_dict()["state"].keys() == {0}


def test_step_with_a_closure_recomputes_the_loss():
    p = Tensor([3.0], dtype=np.float64, requires_grad=True)
    opt = SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()  # d/dp = 2p
        loss.backward()
        return loss

    assert opt.step(closure).item() == 9.0
    assert p.data[0] == 3.0 - 0.25 * 6.0
    assert "SGD (\nParameter Group 0\n    dampening: 0.0\n    differentiable: False\n    foreach: None" in repr(opt)


def test_zero_grad_clears_every_group():
    params = make_params()
    opt = SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
    for p in params:
        p.grad = np.ones(p.shape)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: SGD(ps, lr=-1.0), "learning rate"),
        (lambda ps: SGD(ps, lr=0.1, nesterov=True), "Nesterov"),
        (lambda ps: Adam(ps, betas=(0.9, 1.0)), "betas"),
        (lambda ps: Adam([ps[0], ps[0]]), "twice"),
        (lambda ps: Adam([]), "empty"),
        (lambda ps: Adam([ps[0] * 2]), "leaf"),
    ],
)
def test_bad_settings_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make(make_params())


finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)
nonzero = st.floats(1e-2, 1e3) | st.floats(-1e3, -1e-2)


@given(
    grad=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=5), elements=nonzero),
    scale=st.floats(1e-3, 1e3),
)
def test_adam_steps_do_not_depend_on_the_gradients_scale(grad, scale):
    # With eps = 0, m / √v is unchanged when every gradient is multiplied by the same c > 0:
    # Adam's step size is set by lr alone, which is why one lr fits layers of any scale.
    a = Tensor(np.zeros(grad.shape), dtype=np.float64, requires_grad=True)
    b = Tensor(np.zeros(grad.shape), dtype=np.float64, requires_grad=True)
    opt_a, opt_b = Adam([a], lr=0.1, eps=0.0), Adam([b], lr=0.1, eps=0.0)
    for k in range(3):
        a.grad, b.grad = grad * (k + 1), grad * (k + 1) * scale
        opt_a.step()
        opt_b.step()
    np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=1e-12)


@given(
    grads=st.lists(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=finite), min_size=1),
    max_norm=st.floats(1e-2, 1e2),
)
def test_clipping_caps_the_norm_and_keeps_the_direction(grads, max_norm):
    params = [Tensor(np.zeros(g.shape), dtype=np.float64, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    total = clip_grad_norm_(params, max_norm)
    flat = np.concatenate([g.ravel() for g in grads])
    clipped = np.concatenate([p.grad.ravel() for p in params])
    assert total == pytest.approx(np.linalg.norm(flat), rel=1e-12, abs=1e-300)
    assert np.linalg.norm(clipped) <= max_norm * (1 + 1e-12)
    scale = min(1.0, max_norm / (total + 1e-6))
    np.testing.assert_allclose(clipped, flat * scale, rtol=1e-12, atol=0)


# ---------------------------------------------------------------- torch.optim parity


OPTIMIZERS = {
    "sgd": (SGD, dict(lr=0.1)),
    "sgd-momentum": (SGD, dict(lr=0.05, momentum=0.9)),
    "sgd-dampening-wd": (SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    "sgd-nesterov-wd": (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    "adam": (Adam, dict(lr=1e-2)),
    "adam-l2": (Adam, dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    "adamw": (AdamW, dict(lr=1e-2)),
    "adamw-nanogpt": (AdamW, dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)),
}


def torch_twin(torch, params):
    return [torch.tensor(p.data.copy(), requires_grad=True) for p in params]


def run_torch(torch, optimizer, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g.copy())
        optimizer.step()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_matches_torch_for_25_steps(name, dtype):
    torch = pytest.importorskip("torch")
    cls, kwargs = OPTIMIZERS[name]
    steps = 25
    # Both sides get the same gradients, so only their elementwise rounding differs: each step
    # rounds p - update once (half an eps of |p|, on each side) and the update, a fraction of
    # |p| here, to a few eps of itself; the gaps add up over the steps, never amplified.
    tol = steps * np.finfo(dtype).eps
    params, grads = make_params(dtype=dtype), grad_sequence(steps, dtype=dtype)
    twins = torch_twin(torch, params)
    opt = cls(params, **kwargs)
    twin_opt = getattr(torch.optim, cls.__name__)(twins, **kwargs)
    for step_grads in grads:  # compare after every step, not just the last
        run(opt, params, [step_grads])
        run_torch(torch, twin_opt, twins, [step_grads])
        for p, t in zip(params, twins):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_param_groups_match_torch(cls):
    torch = pytest.importorskip("torch")
    params, grads = make_params(), grad_sequence(20)
    twins = torch_twin(torch, params)
    extra = dict(momentum=0.9) if cls is SGD else dict(betas=(0.9, 0.99))

    def groups(ps):
        return [{"params": ps[:2], "weight_decay": 0.1}, {"params": ps[2:], "lr": 0.003, "weight_decay": 0.0}]

    opt = cls(groups(params), lr=0.02, **extra)
    twin_opt = getattr(torch.optim, cls.__name__)(groups(twins), lr=0.02, **extra)
    run(opt, params, grads)
    run_torch(torch, twin_opt, twins, grads)
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-13, atol=1e-13)
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.003]


def test_skipped_grads_match_torch():
    torch = pytest.importorskip("torch")
    params, grads = make_params(), grad_sequence(10)
    for i, step_grads in enumerate(grads):  # the last parameter only gets a gradient every other step
        if i % 2:
            step_grads[-1] = None
    twins = torch_twin(torch, params)
    opt, twin_opt = AdamW(params, lr=0.01), torch.optim.AdamW(twins, lr=0.01)
    for step_grads in grads:
        for p, t, g in zip(params, twins, step_grads):
            p.grad = None if g is None else g.copy()
            t.grad = None if g is None else torch.tensor(g)
        opt.step()
        twin_opt.step()
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.1, math.inf)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_matches_torch(max_norm, norm_type, dtype):
    torch = pytest.importorskip("torch")
    params, grads = make_params(dtype=dtype), grad_sequence(1, dtype=dtype)[0]
    twins = torch_twin(torch, params)
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(twins, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert total == pytest.approx(expected.item(), rel=tol)
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.1, math.inf)])
def test_total_norm_and_clipping_with_it_match_torch(max_norm, norm_type):
    """clip_grad_norm_ in two parts, as torch.nn.utils offers them: measure (perhaps across ranks), then clip."""
    torch = pytest.importorskip("torch")
    params, grads = make_params(dtype=np.float64), grad_sequence(1, dtype=np.float64)[0]
    twins = torch_twin(torch, params)
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = get_total_norm([p.grad for p in params], norm_type)
    expected = torch.nn.utils.get_total_norm([t.grad for t in twins], norm_type)
    assert total == pytest.approx(expected.item(), rel=1e-12)
    assert get_total_norm(params, norm_type) == get_total_norm([p.data for p in params], norm_type)  # their values
    clip_grads_with_norm_(params, max_norm, total)
    torch.nn.utils.clip_grads_with_norm_(twins, max_norm, expected)
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- clipping without torch


def test_clip_grad_norm_by_hand():
    a = Tensor([0.0, 0.0], dtype=np.float64, requires_grad=True)
    b = Tensor([0.0], dtype=np.float64, requires_grad=True)
    unused = Tensor([0.0], requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    total = clip_grad_norm_([a, b, unused], max_norm=1.0)
    assert total == 5.0
    np.testing.assert_allclose(a.grad, [3.0 / (5.0 + 1e-6), 0.0], rtol=1e-15)
    np.testing.assert_allclose(b.grad, [4.0 / (5.0 + 1e-6)], rtol=1e-15)
    assert unused.grad is None


def test_clip_grad_norm_leaves_small_grads_alone():
    a = Tensor([0.0, 0.0], dtype=np.float64, requires_grad=True)
    a.grad = np.array([0.3, 0.4])
    assert clip_grad_norm_(a, max_norm=1.0) == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_array_equal(a.grad, [0.3, 0.4])


def test_clip_grad_norm_nonfinite():
    a = Tensor([0.0], dtype=np.float64, requires_grad=True)
    a.grad = np.array([np.inf])
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)


# ---------------------------------------------------------------- state dicts: exact resumption


def contains_no_tensor(value) -> bool:
    if isinstance(value, dict):
        return all(contains_no_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(contains_no_tensor(v) for v in value)
    return isinstance(value, (np.ndarray, int, float, bool, str, type(None)))


@pytest.mark.parametrize("name", ["sgd-nesterov-wd", "adam-l2", "adamw-nanogpt"])
def test_resume_from_state_dict_is_exact(name):
    cls, kwargs = OPTIMIZERS[name]
    grads = grad_sequence(10, dtype=np.float32)

    straight = make_params(dtype=np.float32)
    run(cls(straight, **kwargs), straight, grads)

    first = make_params(dtype=np.float32)
    opt = cls(first, **kwargs)
    run(opt, first, grads[:5])
    saved = opt.state_dict()
    assert contains_no_tensor(saved)
    # The resumed run starts from new tensors holding the saved weights, as after loading a checkpoint.
    resumed = [Tensor(p.data, requires_grad=True) for p in first]
    run(opt, first, grads[5:])  # the saved dict is a copy: stepping on must not change it
    fresh = cls(resumed, **kwargs)
    fresh.load_state_dict(saved)
    run(fresh, resumed, grads[5:])
    for a, b, c in zip(straight, resumed, first):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.data, c.data)


def test_state_dict_survives_json_keys_and_restores_settings():
    params = make_params()
    opt = AdamW([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}], lr=0.01)
    run(opt, params, grad_sequence(3))
    saved = opt.state_dict()
    saved["state"] = {str(k): v for k, v in saved["state"].items()}  # as JSON object keys come back
    saved["param_groups"] = json.loads(json.dumps(saved["param_groups"]))
    saved["param_groups"][0]["lr"] = 0.5
    fresh = AdamW([{"params": make_params()[:1]}, {"params": make_params()[1:]}], lr=0.01)
    fresh.load_state_dict(saved)
    assert [g["lr"] for g in fresh.param_groups] == [0.5, 0.01]
    assert fresh.param_groups[1]["weight_decay"] == 0.0
    assert fresh.state[id(fresh.param_groups[0]["params"][0])]["step"] == 3


def test_load_state_dict_names_what_does_not_fit():
    params = make_params()
    opt = Adam(params)
    run(opt, params, grad_sequence(1))
    with pytest.raises(ValueError, match="2 parameters in the state dict, but 3"):
        trimmed = opt.state_dict()
        trimmed["param_groups"][0]["params"] = [0, 1]
        Adam(make_params()).load_state_dict(trimmed)
    with pytest.raises(ValueError, match=r"has shape \(5, 4\), but the parameter has shape \(4,\)"):
        swapped = [make_params()[1], make_params()[0], make_params()[2]]
        Adam(swapped).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="1 parameter groups, this optimizer has 2"):
        Adam([{"params": params[:1]}, {"params": params[1:]}]).load_state_dict(opt.state_dict())


# ---------------------------------------------------------------- learning-rate schedules


def nanogpt_get_lr(it, learning_rate=6e-4, min_lr=6e-5, warmup_iters=100, lr_decay_iters=2000):
    """nanoGPT's train.py get_lr, verbatim apart from the parameters."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def test_cosine_with_warmup_is_nanogpts_schedule():
    for it in range(0, 2200):
        assert cosine_with_warmup(it, 6e-4, 6e-5, 100, 2000) == nanogpt_get_lr(it)


def test_cosine_with_warmup_landmarks():
    lr, min_lr = 1e-3, 1e-4
    assert cosine_with_warmup(0, lr, min_lr, 9, 109) == pytest.approx(1e-4)  # lr · 1/10
    assert cosine_with_warmup(9, lr, min_lr, 9, 109) == lr  # peak right after warm-up
    assert cosine_with_warmup(59, lr, min_lr, 9, 109) == pytest.approx((lr + min_lr) / 2)
    assert cosine_with_warmup(109, lr, min_lr, 9, 109) == pytest.approx(min_lr)
    assert cosine_with_warmup(5000, lr, min_lr, 9, 109) == min_lr
    assert cosine_with_warmup(3, lr, min_lr, 0, 0) == min_lr  # no decay span: the floor


def test_scheduler_sets_every_group_and_resumes():
    params = make_params()
    opt = AdamW([{"params": params[:1]}, {"params": params[1:]}], lr=123.0)
    schedule = CosineWithWarmup(opt, lr=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=100)
    assert [g["lr"] for g in opt.param_groups] == [nanogpt_get_lr(0, 1e-3, 1e-4, 10, 100)] * 2
    for _ in range(40):
        schedule.step()
    assert schedule.last_iter == 40
    assert opt.param_groups[1]["lr"] == nanogpt_get_lr(40, 1e-3, 1e-4, 10, 100) == schedule.last_lr
    assert schedule.step(70) == opt.param_groups[0]["lr"] == nanogpt_get_lr(70, 1e-3, 1e-4, 10, 100)

    other = LRScheduler(AdamW(make_params(), lr=1.0), lambda it: 0.5**it)
    other.load_state_dict(json.loads(json.dumps(schedule.state_dict())))
    assert other.last_iter == 70 and other.optimizer.param_groups[0]["lr"] == 0.5**70
