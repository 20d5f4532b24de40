"""Optimizers, gradient clipping and learning-rate schedules, with torch.optim's numerics.

Every optimizer updates `param.data` in place, so the tensors a model holds keep their
identity, and skips a parameter whose `grad` is None (it took no part in the loss). The
update rules are written in the order `torch.optim` evaluates them, so the same parameters
and gradients give the same numbers step for step (up to float rounding).

    optimizer = AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    schedule = CosineWithWarmup(optimizer, lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000)
    for it in range(2000):
        schedule.step(it)                     # sets the learning rate of iteration `it`
        loss = model(x, y)[1]
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from minigrad.modes import enable_grad
from minigrad.tensor import Tensor


class Optimizer:
    """Base class: parameter groups, per-parameter state, `zero_grad`, and state dicts.

    `params` is an iterable of tensors, or a list of dicts `{"params": [...], "lr": ...}` whose
    missing settings come from the keyword defaults — so decayed and non-decayed weights can
    share one optimizer with different `weight_decay`, as nanoGPT does.
    """

    def __init__(self, params, defaults: dict[str, Any]):
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        # Per-parameter state (momentum buffers, moments, step counts), keyed by id(param):
        # the groups hold the tensors, so an id cannot be reused while this optimizer lives.
        self.state: dict[int, dict[str, Any]] = {}
        self._scratch: dict[np.dtype, np.ndarray] = {}
        groups = list(params)
        if not groups:
            raise ValueError("the optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group `{"params": [...], setting: value, ...}`; unset settings take the defaults."""
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"an optimizer takes Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("an optimizer can only update leaf tensors (made by the user, not by an op)")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears twice among the optimizer's parameter groups")
        full = {**self.defaults, **group, "params": params}
        self._check(full)
        self.param_groups.append(full)

    def _check(self, group: dict[str, Any]) -> None:
        """Reject settings that make no sense, naming the setting and the value that came."""
        if group["lr"] < 0:
            raise ValueError(f"learning rate must be >= 0, got lr={group['lr']}")
        if group.get("weight_decay", 0.0) < 0:
            raise ValueError(f"weight_decay must be >= 0, got {group['weight_decay']}")

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None, as torch does by default)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; `closure` re-evaluates the loss first."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, self.state.setdefault(id(p), {}), group)
        return loss

    def _update(self, p: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _buffer(self, like: np.ndarray) -> np.ndarray:
        """A scratch array shaped as `like`, reused across parameters and steps (no allocation)."""
        flat = self._scratch.get(like.dtype)
        if flat is None or flat.size < like.size:
            flat = self._scratch[like.dtype] = np.empty(like.size, dtype=like.dtype)
        return flat[: like.size].reshape(like.shape)

    # ------------------------------------------------------------ state dict

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {name: array or number}}, "param_groups": [{setting: value, "params": [index, ...]}]}.

        Parameters are numbered by position across the groups, as in PyTorch, so the state
        loads into a fresh optimizer built over new tensors in the same order. Arrays are
        copies; nothing in it is a Tensor.
        """
        state, groups, index = {}, [], 0
        for group in self.param_groups:
            indices = []
            for p in group["params"]:
                own = self.state.get(id(p))
                if own:
                    state[index] = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in own.items()}
                indices.append(index)
                index += 1
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": indices})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore settings and per-parameter state saved by `state_dict` (keys may be ints or
        their strings, as after a JSON round trip). Errors name the group or parameter that
        does not fit."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"the state dict has {len(saved_groups)} parameter groups, this optimizer has {len(self.param_groups)}"
            )
        saved_state = {int(k): v for k, v in state_dict["state"].items()}
        new_state: dict[int, dict[str, Any]] = {}
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {g} has {len(saved['params'])} parameters in the state dict, "
                    f"but {len(group['params'])} in this optimizer"
                )
            for index, p in zip(saved["params"], group["params"]):
                if int(index) not in saved_state:
                    continue
                entry = {}
                for name, value in saved_state[int(index)].items():
                    if isinstance(value, np.ndarray) or hasattr(value, "shape"):
                        value = np.asarray(value)
                        if value.shape != p.shape:
                            raise ValueError(
                                f"state {name!r} of parameter {index} has shape {tuple(value.shape)}, "
                                f"but the parameter has shape {tuple(p.shape)}"
                            )
                        value = value.astype(p.dtype, copy=True)
                    entry[name] = value
                new_state[id(p)] = entry
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 weight decay.

    g ← grad + weight_decay · p
    b ← g                                   at the first step
    b ← momentum · b + (1 - dampening) · g  after it
    g ← g + momentum · b   (Nesterov)   or   g ← b   (classical momentum)
    p ← p - lr · g
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        if group["momentum"] < 0:
            raise ValueError(f"momentum must be >= 0, got {group['momentum']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, p, grad, state, group):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        d_p = grad + wd * p.data if wd != 0 else grad  # a new array: p.grad stays untouched
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d_p.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * d_p
            d_p = d_p + momentum * buf if group["nesterov"] else buf
        p.data -= lr * d_p


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): per-element steps from running moments of the gradient.

        g ← grad + weight_decay · p            (L2 penalty folded into the gradient)
        m ← β1 · m + (1 - β1) · g              first moment (mean)
        v ← β2 · v + (1 - β2) · g²             second moment (uncentred variance)
        p ← p - lr / (1 - β1ᵗ) · m / (√v / √(1 - β2ᵗ) + eps)

    The bias corrections undo the moments' start at zero; they are applied to the step size
    and the denominator exactly where torch.optim applies them, so eps enters the same way.
    """

    decoupled = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        beta1, beta2 = group["betas"]
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must each be in [0, 1), got {tuple(group['betas'])}")
        if group["eps"] < 0:
            raise ValueError(f"eps must be >= 0, got {group['eps']}")

    def _update(self, p, grad, state, group):
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        state["step"] += 1
        t = state["step"]

        if wd != 0:
            if self.decoupled:
                p.data *= 1 - lr * wd  # AdamW: shrink the weights, apart from the gradient
            else:
                grad = grad + wd * p.data
        tmp = self._buffer(p.data)
        np.subtract(grad, m, out=tmp)  # m ← m + (1 - β1)(g - m), torch's lerp
        tmp *= 1 - beta1
        m += tmp
        v *= beta2  # v ← β2 v + (1 - β2) g²
        np.multiply(grad, 1 - beta2, out=tmp)
        tmp *= grad
        v += tmp

        step_size = lr / (1 - beta1**t)
        np.sqrt(v, out=tmp)  # denominator √v / √(1 - β2ᵗ) + eps
        tmp /= math.sqrt(1 - beta2**t)
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= -step_size
        p.data += tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as torch.optim.AdamW.

    The decay multiplies the weights by (1 - lr · weight_decay) before the Adam step instead of
    adding to the gradient, so it is not rescaled by the adaptive denominator.
    """

    decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# ---------------------------------------------------------------- gradient clipping


def clip_grad_norm_(
    params: Iterable[Tensor] | Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale all gradients together so their joint norm is at most `max_norm`; return the norm
    they had before (as torch.nn.utils.clip_grad_norm_).

    The norm is taken over every gradient as one long vector. When it exceeds `max_norm`, each
    gradient is multiplied in place by max_norm / (norm + 1e-6); otherwise they are untouched.
    Parameters without a gradient are skipped.
    """
    params = [params] if isinstance(params, Tensor) else list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        # Accumulate in float64: a sum of ~10⁶ float32 squares would lose digits.
        total = sum(float(np.sum(np.abs(g, dtype=np.float64) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is {total}; "
            "pass error_if_nonfinite=False to clip anyway"
        )
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # also true for NaN: a NaN norm poisons the gradients, as in torch
        for g in grads:
            g *= coef
    return total


# ---------------------------------------------------------------- learning-rate schedules


def cosine_with_warmup(step: int, lr: float, min_lr: float, warmup_iters: int, lr_decay_iters: int) -> float:
    """nanoGPT's learning rate at iteration `step`: linear warm-up, cosine decay, then a floor.

    step < warmup_iters:            lr · (step + 1) / (warmup_iters + 1)
    warmup_iters ≤ step ≤ decay:    min_lr + ½ (1 + cos(π · r)) (lr - min_lr),
                                    r = (step - warmup_iters) / (lr_decay_iters - warmup_iters)
    step > lr_decay_iters:          min_lr
    """
    if step < warmup_iters:
        return lr * (step + 1) / (warmup_iters + 1)
    if step > lr_decay_iters or lr_decay_iters <= warmup_iters:
        return min_lr
    decay_ratio = (step - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # 1 → 0
    return min_lr + coeff * (lr - min_lr)


class LRScheduler:
    """Set the learning rate of every parameter group from a function of the iteration.

    `step(it)` sets the rate of iteration `it`; `step()` moves to the next iteration. At
    construction the rate of iteration `last_iter + 1` (0 for a new run) is set, so both
    torch's order (optimizer.step(); scheduler.step()) and nanoGPT's (set the rate at the top
    of each iteration) work.
    """

    def __init__(self, optimizer: Optimizer, lr_at: Callable[[int], float], last_iter: int = -1):
        self.optimizer, self.lr_at = optimizer, lr_at
        self.last_iter = last_iter
        self.step()

    def step(self, it: int | None = None) -> float:
        """Set and return the learning rate of iteration `it` (default: the one after the last)."""
        self.last_iter = self.last_iter + 1 if it is None else it
        lr = self.lr_at(self.last_iter)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    @property
    def last_lr(self) -> float:
        return self.lr_at(self.last_iter)

    def state_dict(self) -> dict[str, int]:
        return {"last_iter": self.last_iter}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step(int(state["last_iter"]))


class CosineWithWarmup(LRScheduler):
    """`LRScheduler` following `cosine_with_warmup` (nanoGPT's schedule)."""

    def __init__(
        self,
        optimizer: Optimizer,
        lr: float,
        min_lr: float,
        warmup_iters: int,
        lr_decay_iters: int,
        last_iter: int = -1,
    ):
        self.lr, self.min_lr = lr, min_lr
        self.warmup_iters, self.lr_decay_iters = warmup_iters, lr_decay_iters
        super().__init__(optimizer, self._lr_at, last_iter)

    def _lr_at(self, it: int) -> float:
        return cosine_with_warmup(it, self.lr, self.min_lr, self.warmup_iters, self.lr_decay_iters)


__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineWithWarmup",
    "LRScheduler",
    "Optimizer",
    "clip_grad_norm_",
    "cosine_with_warmup",
]
