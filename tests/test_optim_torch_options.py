"""minigrad.optim takes what torch.optim and torch.nn.utils take, with torch as the oracle: every
order of norm, torch's optimizer keywords, the collections of parameters, the state dict's numbers
and the scheduler's get_last_lr."""

import math

import numpy as np
import pytest

from minigrad import Tensor
from minigrad.optim import (
    SGD,
    Adam,
    AdamW,
    LRScheduler,
    clip_grad_norm_,
    clip_grads_with_norm_,
    get_total_norm,
)

torch = pytest.importorskip("torch")

SHAPES = [(5, 4), (4,), (3, 2, 2)]
EPS = np.finfo(np.float64).eps


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s), dtype=np.float64, requires_grad=True) for s in SHAPES]


def twins_of(params):
    return [torch.tensor(p.data.copy(), requires_grad=True) for p in params]


def shrinking_grads(steps, seed=1):
    """Gradients halving in size every other step, so that Adam's v shrinks and amsgrad's max matters."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) * 0.5 ** (k // 2) for s in SHAPES] for k in range(steps)]


def step_both(opt, params, twin_opt, twins, grads):
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    opt.step()
    twin_opt.step()


# ---------------------------------------------------------------- gradient norms of every order


GRADS = {
    "a zero among them": [
        np.arange(-6.0, 6.0).reshape(3, 4) / 7,
        np.array([0.0, 0.5, -2.0]),
        np.linspace(1, 2, 5) * 1e-3,
    ],
    "no zero": [np.arange(1.0, 13.0).reshape(3, 4) / 7, np.array([0.25, 0.5, -2.0]), np.linspace(1, 2, 5) * 1e-3],
}
NORM_TYPES = [2.0, 2, 1.0, 3.0, 0.5, 4, 0.0, -1.0, -2.0, math.inf, -math.inf, "inf", "-inf", "2"]


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=repr)
@pytest.mark.parametrize("grads", list(GRADS))
def test_norms_of_every_order_and_clipping_match_torch(norm_type, grads):
    # torch takes the norm of each array, then the norm of those: for 0 that counts the arrays
    # holding a non-zero, for -inf it is the smallest magnitude; a string is read by float().
    grads = GRADS[grads]
    expected = torch.nn.utils.get_total_norm([torch.tensor(g) for g in grads], norm_type).item()
    # float64 sums of at most 12 powers, then a root: a few eps of the result
    assert get_total_norm(grads, norm_type) == pytest.approx(expected, rel=20 * EPS, abs=0)
    params = [Tensor(np.zeros(g.shape), dtype=np.float64, requires_grad=True) for g in grads]
    twins = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm_(params, 0.1, norm_type)
    assert total == pytest.approx(torch.nn.utils.clip_grad_norm_(twins, 0.1, norm_type).item(), rel=20 * EPS)
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=20 * EPS, atol=0)


@pytest.mark.parametrize("norm_type", [math.inf, -math.inf, 2.0, 1.0, 0.0])
@pytest.mark.parametrize("nan_first", [True, False])
def test_a_nan_gradient_gives_what_torch_gives_in_either_order(norm_type, nan_first):
    grads = [np.array([np.nan, 1.0]), np.array([5.0, 1.0])]
    grads = grads if nan_first else grads[::-1]
    expected = torch.nn.utils.get_total_norm([torch.tensor(g) for g in grads], norm_type).item()
    np.testing.assert_equal(get_total_norm(grads, norm_type), expected)  # NaN for all but 0, which counts it
    params = [Tensor(np.zeros(2), dtype=np.float64, requires_grad=True) for _ in grads]
    twins = [torch.zeros(2, dtype=torch.float64, requires_grad=True) for _ in grads]
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    if math.isfinite(expected):
        clip_grad_norm_(params, 1.0, norm_type, error_if_nonfinite=True)
        torch.nn.utils.clip_grad_norm_(twins, 1.0, norm_type, error_if_nonfinite=True)
    else:
        with pytest.raises(RuntimeError, match="error_if_nonfinite"):
            clip_grad_norm_(params, 1.0, norm_type, error_if_nonfinite=True)
        with pytest.raises(RuntimeError, match="non-finite"):
            torch.nn.utils.clip_grad_norm_(twins, 1.0, norm_type, error_if_nonfinite=True)


@pytest.mark.parametrize("foreach", [None, True, False])
def test_foreach_is_taken_by_the_clipping_functions(foreach):
    params, grads = make_params(), shrinking_grads(1)[0]
    twins = twins_of(params)
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm_(params, 0.5, foreach=foreach)
    assert total == pytest.approx(torch.nn.utils.clip_grad_norm_(twins, 0.5, foreach=foreach).item(), rel=20 * EPS)
    expected = torch.nn.utils.get_total_norm([t.grad for t in twins], foreach=foreach).item()
    assert get_total_norm([p.grad for p in params], foreach=foreach) == pytest.approx(expected, rel=20 * EPS)
    clip_grads_with_norm_(params, 0.25, 0.5, foreach=foreach)
    torch.nn.utils.clip_grads_with_norm_(twins, 0.25, torch.tensor(0.5, dtype=torch.float64), foreach=foreach)
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=20 * EPS, atol=0)


# ---------------------------------------------------------------- a gradient has its tensor's shape


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_a_gradient_of_another_shape_is_refused_as_in_torch(cls):
    # torch refuses it on assignment; here the step refuses it, before any parameter moves
    params = make_params()
    before = [p.data.copy() for p in params]
    opt = cls(params, lr=0.1)
    params[0].grad, params[1].grad = np.ones(4), np.ones(4)  # (4,) broadcasts over the rows of (5, 4)
    with pytest.raises(RuntimeError, match=r"shape \(5, 4\) has a gradient of shape \(4,\)"):
        opt.step()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.data, b)
    t = torch.zeros(5, 4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="same size"):
        t.grad = torch.ones(4, dtype=torch.float64)


# ---------------------------------------------------------------- torch's optimizer keywords


KEYWORDS = {
    "sgd-maximize": (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True)),
    "sgd-nesterov-maximize": (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True, foreach=False)),
    "sgd-foreach": (SGD, dict(lr=0.1, momentum=0.5, foreach=True)),
    "adam-amsgrad": (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    "adam-maximize": (Adam, dict(lr=0.01, maximize=True, foreach=False)),
    "adam-decoupled": (Adam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    "adam-decoupled-amsgrad": (Adam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True)),
    "adamw-amsgrad": (AdamW, dict(lr=0.01, amsgrad=True, foreach=True)),
    "adamw-amsgrad-maximize": (AdamW, dict(lr=0.01, betas=(0.8, 0.9), amsgrad=True, maximize=True)),
}


@pytest.mark.parametrize("name", list(KEYWORDS))
def test_torch_keywords_give_torchs_steps(name):
    cls, kwargs = KEYWORDS[name]
    steps = 20
    params = make_params()
    twins = twins_of(params)
    opt, twin_opt = cls(params, **kwargs), getattr(torch.optim, cls.__name__)(twins, **kwargs)
    for grads in shrinking_grads(steps):
        step_both(opt, params, twin_opt, twins, grads)
        # the same gradients on both sides: each step rounds the update and p - update once on
        # each side, so the gaps grow by a few eps of |p| a step, never amplified
        for p, t in zip(params, twins):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=steps * EPS, atol=steps * EPS)
    assert opt.state_dict()["param_groups"][0].keys() == twin_opt.state_dict()["param_groups"][0].keys()
    assert opt.state_dict()["state"][0].keys() == twin_opt.state_dict()["state"][0].keys()


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_amsgrad_changes_the_steps_and_its_maximum_resumes_exactly(cls):
    grads = shrinking_grads(12)
    plain, straight = make_params(), make_params()
    plain_opt, straight_opt = cls(plain, lr=0.01), cls(straight, lr=0.01, amsgrad=True)
    for step_grads in grads:
        for p, q, g in zip(plain, straight, step_grads):
            p.grad, q.grad = g.copy(), g.copy()
        plain_opt.step()
        straight_opt.step()
    assert not np.allclose(plain[0].data, straight[0].data, rtol=1e-6, atol=0)  # v shrank: the maximum mattered

    first = make_params()
    opt = cls(first, lr=0.01, amsgrad=True)
    for step_grads in grads[:6]:
        for p, g in zip(first, step_grads):
            p.grad = g.copy()
        opt.step()
    saved = opt.state_dict()
    assert all(isinstance(entry["max_exp_avg_sq"], np.ndarray) for entry in saved["state"].values())
    assert not any(isinstance(v, Tensor) for v in saved["param_groups"][0].values())  # settings: numbers
    resumed = [Tensor(p.data, dtype=np.float64, requires_grad=True) for p in first]
    fresh = cls(resumed, lr=0.01)  # amsgrad comes back with the groups' settings
    fresh.load_state_dict(saved)
    for step_grads in grads[6:]:
        for p, g in zip(resumed, step_grads):
            p.grad = g.copy()
        fresh.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize(
    "cls, kwargs",
    [(SGD, dict(fused=True)), (Adam, dict(fused=True, capturable=True)), (AdamW, dict(capturable=True, foreach=False))],
)
def test_implementation_choices_change_no_number(cls, kwargs):
    # torch's foreach, fused and capturable pick one of its kernels for the same update
    a, b = make_params(), make_params()
    opt_a, opt_b = cls(a, lr=0.01), cls(b, lr=0.01, **kwargs)
    for grads in shrinking_grads(3):
        for p, q, g in zip(a, b, grads):
            p.grad, q.grad = g.copy(), g.copy()
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_differentiable_steps_are_refused(cls):
    with pytest.raises(ValueError, match="differentiable=True"):
        cls(make_params(), lr=0.01, differentiable=True)
    with pytest.raises(ValueError, match="differentiable=True"):
        cls([{"params": make_params(), "differentiable": True}], lr=0.01)


def test_zero_grad_set_to_none_false_zeroes_in_place_as_torch():
    params = make_params()
    twins = twins_of(params)
    for p, t, g in zip(params[:2], twins[:2], shrinking_grads(1)[0]):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    arrays, storages = [p.grad for p in params[:2]], [t.grad.data_ptr() for t in twins[:2]]
    SGD(params, lr=0.1).zero_grad(set_to_none=False)
    torch.optim.SGD(twins, lr=0.1).zero_grad(set_to_none=False)
    for p, t, a, s in zip(params[:2], twins[:2], arrays, storages):
        assert p.grad is a and t.grad.data_ptr() == s
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
        assert not p.grad.any()
    assert params[2].grad is None and twins[2].grad is None  # no gradient stays no gradient
    SGD(params, lr=0.1).zero_grad()
    torch.optim.SGD(twins, lr=0.1).zero_grad(True)
    assert all(p.grad is None for p in params) and all(t.grad is None for t in twins)


# ---------------------------------------------------------------- which collections of parameters


def test_collections_of_parameters_are_taken_or_refused_as_torch():
    params, twins = make_params(), twins_of(make_params())
    with pytest.raises(TypeError, match="not a set"):
        SGD([{"params": set(params)}], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        torch.optim.SGD([{"params": set(twins)}], lr=0.1)
    with pytest.raises(TypeError, match="not a set"):
        SGD(params[:1], lr=0.1).add_param_group({"params": {params[1]}})
    with pytest.raises(TypeError, match=r"one Tensor: pass \[tensor\]"):
        SGD(params[0], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        torch.optim.SGD(twins[0], lr=0.1)
    # a set given as the whole params is listed first, by torch too: one group
    assert len(SGD(set(params), lr=0.1).param_groups[0]["params"]) == 3
    assert len(torch.optim.SGD(set(twins), lr=0.1).param_groups[0]["params"]) == 3


def test_named_parameters_are_kept_as_torch_keeps_them():
    names = ["w", "b", "c"]
    params = make_params()
    twins = twins_of(params)
    opt = Adam(list(zip(names, params)), lr=0.01)
    twin_opt = torch.optim.Adam(list(zip(names, twins)), lr=0.01)
    for grads in shrinking_grads(3):
        step_both(opt, params, twin_opt, twins, grads)
    assert opt.param_groups[0]["params"] == params
    saved, twin_saved = opt.state_dict(), twin_opt.state_dict()
    assert saved["param_groups"][0]["param_names"] == twin_saved["param_groups"][0]["param_names"] == names
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=3 * EPS, atol=3 * EPS)

    # names in the saved groups replace the optimizer's, as in torch
    renamed = {**saved, "param_groups": [{**saved["param_groups"][0], "param_names": ["x", "y", "z"]}]}
    opt.load_state_dict(renamed)
    assert opt.param_groups[0]["param_names"] == ["x", "y", "z"]

    with pytest.raises(ValueError, match="or none of them"):
        SGD([("w", params[0]), params[1]], lr=0.1)
    with pytest.raises(ValueError, match="names are missing"):
        torch.optim.SGD([("w", twins[0]), twins[1]], lr=0.1)
    with pytest.raises(ValueError, match="or none does"):
        SGD([{"params": [("w", params[0])]}, {"params": [params[1]]}], lr=0.1)
    with pytest.raises(ValueError, match="with/without names"):
        torch.optim.SGD([{"params": [("w", twins[0])]}, {"params": [twins[1]]}], lr=0.1)


# ---------------------------------------------------------------- the state dict's numbers


def test_torchs_own_state_dict_with_its_tensor_step_loads_and_continues_as_torch():
    # torch keeps Adam's step count as a 0-d float32 tensor: any NumPy-like number is a count here
    params = make_params()
    twins = twins_of(params)
    twin_opt = torch.optim.Adam(twins, lr=0.01, betas=(0.8, 0.9))
    grads = shrinking_grads(6)
    for step_grads in grads[:3]:
        for t, g in zip(twins, step_grads):
            t.grad = torch.tensor(g)
        twin_opt.step()
    resumed = [Tensor(t.detach().numpy(), dtype=np.float64, requires_grad=True) for t in twins]
    opt = Adam(resumed, lr=1.0)
    opt.load_state_dict(twin_opt.state_dict())
    assert opt.param_groups[0]["lr"] == 0.01 and opt.state_dict()["state"][0]["step"] == 3.0
    for step_grads in grads[3:]:
        step_both(opt, resumed, twin_opt, twins, step_grads)
    for p, t in zip(resumed, twins):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=6 * EPS, atol=6 * EPS)


@pytest.mark.parametrize("step", [np.int64(3), np.int32(3), np.float32(3.0), np.array(3), np.array(3.0)], ids=repr)
def test_a_numpy_step_count_loads_as_a_number(step):
    grads = shrinking_grads(5)
    straight, first = make_params(), make_params()
    straight_opt, opt = AdamW(straight, lr=0.01), AdamW(first, lr=0.01)
    for k, step_grads in enumerate(grads):
        for p, q, g in zip(straight, first, step_grads):
            p.grad, q.grad = g.copy(), g.copy()
        straight_opt.step()
        if k < 3:
            opt.step()
    saved = opt.state_dict()
    for entry in saved["state"].values():
        entry["step"] = step
    resumed = [Tensor(p.data, dtype=np.float64, requires_grad=True) for p in first]
    fresh = AdamW(resumed, lr=0.01)
    fresh.load_state_dict(saved)
    assert all(type(entry["step"]) in (int, float) for entry in fresh.state_dict()["state"].values())
    for step_grads in grads[3:]:
        for p, g in zip(resumed, step_grads):
            p.grad = g.copy()
        fresh.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)


# ---------------------------------------------------------------- the scheduler's torch name


def test_get_last_lr_lists_each_groups_rate_as_torch():
    params, twins = make_params(), twins_of(make_params())
    factor = lambda it: 0.5**it  # noqa: E731
    opt = SGD([{"params": params[:1]}, {"params": params[1:], "lr_scale": 0.1}], lr=1.0)
    twin_opt = torch.optim.SGD([{"params": twins[:1], "lr": 0.2}, {"params": twins[1:], "lr": 0.02}])
    schedule = LRScheduler(opt, lambda it: 0.2 * factor(it))
    twin_schedule = torch.optim.lr_scheduler.LambdaLR(twin_opt, factor)
    for _ in range(4):
        # 0.2·f·0.1 here, 0.02·f there: two roundings against one
        assert schedule.get_last_lr() == pytest.approx(twin_schedule.get_last_lr(), rel=4 * EPS)
        assert schedule.get_last_lr() == [g["lr"] for g in opt.param_groups]
        twin_opt.step()
        schedule.step()
        twin_schedule.step()
    with pytest.raises(TypeError):
        LRScheduler(opt)  # torch's form: the schedule here is the function lr_at
    with pytest.raises(TypeError):
        LRScheduler(opt, factor, last_epoch=-1)
