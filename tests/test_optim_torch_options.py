"""minigrad.optim takes what torch.optim and torch.nn.utils take, with torch as the oracle: every
order of norm, torch's optimizer keywords, the collections of parameters, the state dict's numbers
and the scheduler's get_last_lr."""

import numpy as np
import pytest

from minigrad import Tensor

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


# ---------------------------------------------------------------- a gradient has its tensor's shape


def test_a_gradient_of_another_shape_is_refused_as_in_torch():
    p = Tensor(np.zeros((3, 4)), dtype=np.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"shape \(3, 4\), got shape \(4,\)"):
        p.grad = np.ones(4)  # would broadcast over the rows in an optimizer's step
    t = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="same size"):
        t.grad = torch.ones(4, dtype=torch.float64)
    assert p.grad is None
    p.grad = np.ones((3, 4))
    p.grad = None
