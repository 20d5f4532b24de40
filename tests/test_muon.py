"""minigrad.optim.Muon: against a reference written from the Muon blog's equations, against
torch.optim.Muon, the Newton–Schulz iteration's properties, and MuonWithAdamW's two rules."""

import json
import math

import numpy as np
import pytest

from minigrad import Tensor
from minigrad.optim import AdamW, CosineWithWarmup, Muon, MuonWithAdamW, newton_schulz

SHAPES = [(6, 4), (4, 7), (5, 5)]  # tall, wide, square: Newton–Schulz works on the shorter side


def make_matrices(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in SHAPES]


def gradients(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def step(optimizer, params, step_grads):
    for p, g in zip(params, step_grads):
        p.grad = g.astype(p.dtype)
    optimizer.step()


def blog_muon(weights, grads, lr, momentum, weight_decay):
    """Muon as the blog writes it (Jordan et al. 2024, kellerjordan.github.io/posts/muon), float64:

    B ← μ B + G;   U ← G + μ B (Nesterov);   X₀ = U / ‖U‖_F (transposed if tall)
    X ← 3.4445 X - 4.7750 (X Xᵀ) X + 2.0315 (X Xᵀ)² X, five times
    W ← W (1 - lr λ) - lr √max(1, rows/cols) X
    """
    weights = [w.copy() for w in weights]
    buffers = [np.zeros_like(w) for w in weights]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            buffers[i] = momentum * buffers[i] + g
            U = g + momentum * buffers[i]
            X = U.T if U.shape[0] > U.shape[1] else U
            X = X / np.sqrt(np.sum(X * X))
            for _ in range(5):
                gram = X @ X.T
                X = 3.4445 * X - 4.7750 * gram @ X + 2.0315 * gram @ gram @ X
            X = X.T if U.shape[0] > U.shape[1] else X
            rows, cols = weights[i].shape
            weights[i] = weights[i] * (1 - lr * weight_decay) - lr * math.sqrt(max(1, rows / cols)) * X
    return weights


def test_matches_the_blogs_equations():
    steps, lr = 10, 0.02
    params, grads = make_matrices(), gradients(steps)
    expected = blog_muon([p.data for p in params], grads, lr, momentum=0.95, weight_decay=0.1)
    opt = Muon(params, lr=lr, momentum=0.95, weight_decay=0.1)
    for step_grads in grads:
        step(opt, params, step_grads)
    # float64 throughout; the two momentum forms differ by the factor (1 - μ), which the
    # normalisation removes, so only rounding of ~10 products per step separates them
    for p, w in zip(params, expected):
        np.testing.assert_allclose(p.data, w, rtol=0, atol=steps * 100 * np.finfo(np.float64).eps)


def test_newton_schulz_with_convergent_coefficients_gives_u_vt():
    # (15/8, -10/8, 3/8) is the quintic whose fixed point σ = 1 attracts every σ in (0, 1]:
    # iterated long enough it gives the exact polar factor U Vᵀ of the SVD
    G = np.random.default_rng(2).standard_normal((7, 4))
    U, _, Vt = np.linalg.svd(G, full_matrices=False)
    polar = newton_schulz(G, steps=40, coefficients=(1.875, -1.25, 0.375))
    np.testing.assert_allclose(polar, U @ Vt, atol=1e-10)


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (48, 48)])
def test_muons_five_steps_put_every_singular_value_near_one(shape):
    # the tuned coefficients trade exactness for speed: after five steps every singular value
    # not far below the largest lies around 1 (the blog's "roughly Uniform(0.5, 1.5)"), with
    # the singular vectors unchanged. Singular values from 1 down to 1/100 of the largest:
    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.standard_normal((shape[0], min(shape))))
    V, _ = np.linalg.qr(rng.standard_normal((shape[1], min(shape))))
    G = U @ np.diag(np.geomspace(1.0, 0.01, min(shape))) @ V.T
    X = newton_schulz(G)
    sigma = np.linalg.svd(X, compute_uv=False)
    assert X.shape == shape
    assert 0.5 < sigma.min() and sigma.max() < 1.5
    np.testing.assert_allclose(U @ np.diag(np.diag(U.T @ X @ V)) @ V.T, X, atol=1e-10)


def run_against_torch(torch, settings, steps=5):
    """Muon and torch.optim.Muon on the same gradients, compared after every step."""
    params, grads = make_matrices(), gradients(steps)
    twins = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt, twin_opt = Muon(params, **settings), torch.optim.Muon(twins, **settings)
    ns_steps, adjust_lr_fn = settings.get("ns_steps", 5), settings.get("adjust_lr_fn")
    for k, step_grads in enumerate(grads, start=1):
        step(opt, params, step_grads)
        for t, g in zip(twins, step_grads):
            t.grad = torch.tensor(g)
        twin_opt.step()
        for p, t in zip(params, twins):
            # torch runs Newton–Schulz in bfloat16: each of its steps rounds three products to
            # 2⁻⁸ relative (and with no step, the normalisation rounds three times), and the
            # orthogonal update's entries are at most ~1.5 (its largest singular value), so each
            # step may differ by lr·ratio·1.5·3·ns_steps·2⁻⁸; the gaps add up over the steps
            # because the updates do not depend on the weights
            ratio = 0.2 * math.sqrt(max(p.shape)) if adjust_lr_fn else math.sqrt(max(1, p.shape[0] / p.shape[1]))
            tol = k * settings["lr"] * ratio * 1.5 * 3 * max(ns_steps, 1) * 2.0**-8
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=0, atol=tol)


@pytest.mark.parametrize("adjust_lr_fn", [None, "match_rms_adamw"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_matches_torch_muon(nesterov, adjust_lr_fn):
    torch = pytest.importorskip("torch")
    if not hasattr(torch.optim, "Muon"):
        pytest.skip("this torch has no torch.optim.Muon")
    run_against_torch(
        torch, dict(lr=0.02, weight_decay=0.1, momentum=0.9, nesterov=nesterov, adjust_lr_fn=adjust_lr_fn)
    )


@pytest.mark.parametrize(
    "settings",
    [dict(momentum=1.0), dict(momentum=1.5), dict(momentum=1.5, nesterov=False), dict(ns_steps=0), dict(ns_steps=-1)],
)
def test_takes_what_torch_muon_takes(settings):
    # a momentum of 1 freezes the buffer at zero (only the decay acts); above 1 the buffer
    # grows, which the normalisation hides; no (or a negative number of) Newton–Schulz steps
    # leave the normalised update as it is
    torch = pytest.importorskip("torch")
    if not hasattr(torch.optim, "Muon"):
        pytest.skip("this torch has no torch.optim.Muon")
    run_against_torch(torch, dict(lr=0.02, **settings))


@pytest.mark.parametrize(
    "settings",
    [
        dict(momentum=-0.1),
        dict(lr=-1.0),
        dict(lr=float("nan")),
        dict(weight_decay=-0.1),
        dict(adjust_lr_fn="nope"),
        dict(ns_steps=100),
        dict(ns_coefficients=(1.0, 2.0)),
    ],
)
def test_refuses_what_torch_muon_refuses(settings):
    # torch refuses the last two at its first step, here at construction
    torch = pytest.importorskip("torch")
    if not hasattr(torch.optim, "Muon"):
        pytest.skip("this torch has no torch.optim.Muon")
    name = next(iter(settings))
    with pytest.raises(ValueError, match=name):
        Muon(make_matrices(), **settings)
    twin = torch.zeros(3, 2, requires_grad=True)
    with pytest.raises(ValueError):
        twin_opt = torch.optim.Muon([twin], **settings)
        twin.grad = torch.ones(3, 2)
        twin_opt.step()


def test_float32_parameters_stay_float32():
    params = make_matrices(dtype=np.float32)
    opt = Muon(params, lr=0.02)
    step(opt, params, gradients(1)[0])
    assert all(p.dtype == np.float32 for p in params)


def test_rejects_what_is_not_a_matrix_and_bad_settings():
    with pytest.raises(ValueError, match=r"matrices only; got a parameter of shape \(4,\)"):
        Muon([Tensor(np.zeros(4), requires_grad=True)])
    with pytest.raises(ValueError, match="momentum"):
        Muon(make_matrices(), momentum=-0.5)
    with pytest.raises(ValueError, match="adjust_lr_fn"):
        Muon(make_matrices(), adjust_lr_fn="nope")


def split_groups(params):
    """The matrices to Muon, the rest to AdamW (made-up shapes: a vector plays a gain)."""
    vector = Tensor(np.random.default_rng(4).standard_normal(5), requires_grad=True)
    groups = [{"params": params, "use_muon": True}, {"params": [vector], "use_muon": False}]
    return groups, vector


def test_muon_with_adamw_follows_each_groups_rule():
    muon_settings, adamw_settings = dict(lr=0.03, momentum=0.9), dict(lr=0.01, betas=(0.9, 0.99))
    params = make_matrices()
    groups, vector = split_groups(params)
    both = MuonWithAdamW(groups, muon=muon_settings, adamw=adamw_settings)
    alone_params, alone_vector = make_matrices(), Tensor(vector.data.copy(), requires_grad=True)
    muon, adamw = Muon(alone_params, **muon_settings), AdamW([alone_vector], **adamw_settings)
    rng = np.random.default_rng(5)
    for step_grads in gradients(4):
        g = rng.standard_normal(5)
        vector.grad, alone_vector.grad = g.copy(), g.copy()
        step(both, params, step_grads)
        step(muon, alone_params, step_grads)
        adamw.step()
    for p, q in zip(params + [vector], alone_params + [alone_vector]):
        np.testing.assert_array_equal(p.data, q.data)


def test_muon_with_adamw_resumes_exactly_from_a_json_state_dict():
    grads = gradients(6)
    straight = make_matrices()
    groups, _ = split_groups(straight)
    opt = MuonWithAdamW(groups, muon=dict(lr=0.02))
    for step_grads in grads:
        step(opt, straight, step_grads)

    first = make_matrices()
    groups, _ = split_groups(first)
    opt = MuonWithAdamW(groups, muon=dict(lr=0.02))
    for step_grads in grads[:3]:
        step(opt, first, step_grads)
    saved = opt.state_dict()
    saved["param_groups"] = json.loads(json.dumps(saved["param_groups"]))  # tuples come back as lists
    resumed = [Tensor(p.data, dtype=p.dtype, requires_grad=True) for p in first]
    groups, _ = split_groups(resumed)
    fresh = MuonWithAdamW(groups, muon=dict(lr=0.02))
    fresh.load_state_dict(saved)
    for step_grads in grads[3:]:
        step(fresh, resumed, step_grads)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)


def test_a_group_must_say_which_rule_it_follows():
    with pytest.raises(ValueError, match="use_muon"):
        MuonWithAdamW([{"params": make_matrices()}])


def test_schedule_scales_each_groups_rate_by_its_lr_scale():
    params = make_matrices()
    groups, _ = split_groups(params)
    groups[0]["lr_scale"] = 20.0
    opt = MuonWithAdamW(groups)
    schedule = CosineWithWarmup(opt, lr=1e-3, min_lr=1e-4, warmup_iters=0, lr_decay_iters=10)
    assert schedule.step(0) == pytest.approx(1e-3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2e-2, 1e-3])
