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

from minigrad.modes import enable_grad, format_shape
from minigrad.tensor import Tensor


class Optimizer:
    """Base class: parameter groups, per-parameter state, `zero_grad`, and state dicts.

    `params` is an iterable of tensors, or a list of dicts `{"params": [...], "lr": ...}` whose
    missing settings come from the keyword defaults — so decayed and non-decayed weights can
    share one optimizer with different `weight_decay`, as nanoGPT does. As in torch, a group may
    list `(name, tensor)` pairs (`model.named_parameters()`): the names are kept in the group's
    "param_names" and in the state dict.
    """

    def __init__(self, params, defaults: dict[str, Any]):
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        # Per-parameter state (momentum buffers, moments, step counts), keyed by id(param):
        # the groups hold the tensors, so an id cannot be reused while this optimizer lives.
        self.state: dict[int, dict[str, Any]] = {}
        self._scratch: dict[np.dtype, np.ndarray] = {}
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or of dicts, got one Tensor: pass [tensor]")
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
        if isinstance(params, set):
            raise TypeError(
                "a parameter group's params must be an ordered collection such as a list, not a set: "
                "a set's order changes from run to run, and the state dict numbers the parameters by position"
            )
        params = [params] if isinstance(params, Tensor) else list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError("give every parameter of a group as (name, tensor), or none of them")
            params = [p for _, p in params]
            group = {**group, "param_names": names}
        if any(("param_names" in g) != ("param_names" in group) for g in self.param_groups):
            raise ValueError("either every parameter group names its parameters, or none does")
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
        if group.get("differentiable"):
            raise ValueError(
                "differentiable=True (a step that autograd can differentiate) is not supported: "
                "the step updates .data outside the graph; leave differentiable=False"
            )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: set it to None (the default, as torch), or with
        set_to_none=False fill the existing gradient arrays with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0)

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; `closure` re-evaluates the loss first."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        # torch refuses a gradient of another shape when it is assigned; here it would broadcast silently
        for p in (p for group in self.param_groups for p in group["params"] if p.grad is not None):
            if np.shape(p.grad) != p.shape:
                raise RuntimeError(
                    f"a parameter of shape {format_shape(p.shape)} has a gradient of shape "
                    f"{format_shape(np.shape(p.grad))}; give .grad the parameter's shape"
                )
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
                    if hasattr(value, "shape"):  # an array, or a NumPy number
                        value = np.asarray(value)
                        if value.ndim == 0 and (name == "step" or p.ndim > 0):
                            value = value.item()  # a count: a Python number, as state_dict gives it
                        elif value.shape != p.shape:
                            raise ValueError(
                                f"state {name!r} of parameter {index} has shape {tuple(value.shape)}, "
                                f"but the parameter has shape {tuple(p.shape)}"
                            )
                        else:
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

    g ← -grad if maximize else grad
    g ← g + weight_decay · p
    b ← g                                   at the first step
    b ← momentum · b + (1 - dampening) · g  after it
    g ← g + momentum · b   (Nesterov)   or   g ← b   (classical momentum)
    p ← p - lr · g

    `foreach` and `fused` choose among torch's implementations of the same numbers: they are
    accepted and change nothing here.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
            maximize=maximize, foreach=foreach, differentiable=differentiable, fused=fused,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        if group["momentum"] < 0:
            raise ValueError(f"momentum must be >= 0, got {group['momentum']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, p, grad, state, group):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        d_p = -grad if group["maximize"] else grad  # ascend the objective instead
        d_p = d_p + wd * p.data if wd != 0 else d_p  # a new array: p.grad stays untouched
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

        g ← -grad if maximize else grad
        g ← g + weight_decay · p               (L2 penalty folded into the gradient), or
        p ← p (1 - lr · weight_decay)          (decoupled_weight_decay=True: AdamW's decay)
        m ← β1 · m + (1 - β1) · g              first moment (mean)
        v ← β2 · v + (1 - β2) · g²             second moment (uncentred variance)
        v_max ← max(v_max, v)                  amsgrad=True: the denominator never shrinks
        p ← p - lr / (1 - β1ᵗ) · m / (√v / √(1 - β2ᵗ) + eps)          (v_max in place of v with amsgrad)

    The bias corrections undo the moments' start at zero; they are applied to the step size
    and the denominator exactly where torch.optim applies them, so eps enters the same way.
    `foreach`, `capturable` and `fused` choose among torch's implementations of the same
    numbers: they are accepted and change nothing here.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ):
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
            foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )  # fmt: skip
        super().__init__(params, defaults)

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
        if group["maximize"]:
            grad = -grad  # ascend the objective instead
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        state["step"] += 1
        t = state["step"]

        if wd != 0:
            if group["decoupled_weight_decay"]:
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
        if group["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])

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
    adding to the gradient, so it is not rescaled by the adaptive denominator: Adam with
    decoupled_weight_decay=True, and a default weight_decay of 1e-2.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize, capturable=capturable,
            differentiable=differentiable, fused=fused, decoupled_weight_decay=True,
        )  # fmt: skip


# ---------------------------------------------------------------- Muon


def newton_schulz(
    G: np.ndarray,
    steps: int = 5,
    coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315),
    eps: float = 1e-7,
) -> np.ndarray:
    """G (m, n) made nearly orthogonal: U S Vᵀ -> about U S' Vᵀ with every S'_ii near 1, same shape.

    Dividing by the Frobenius norm (never below the spectral norm) puts every singular value
    in [0, 1]. Each step X ← a X + b (X Xᵀ) X + c (X Xᵀ)² X applies the odd quintic
    p(σ) = a σ + b σ³ + c σ⁵ to every singular value at once while keeping U and V. Its
    coefficients make the slope at 0 steep (a = 3.4445), so small singular values grow fast;
    after five steps they all lie roughly in [0.7, 1.2] rather than exactly at 1, which
    training does not mind (Jordan et al. 2024, "Muon"). X Xᵀ is formed on the shorter side.
    """
    if G.ndim != 2:
        raise ValueError(f"newton_schulz orthogonalises matrices, got an array of shape {G.shape}")
    a, b, c = coefficients
    tall = G.shape[0] > G.shape[1]
    X = G.T if tall else G  # (r, c), r <= c
    X = X / max(float(np.linalg.norm(X)), eps)
    for _ in range(steps):
        A = X @ X.T  # (r, r)
        X = a * X + (b * A + c * (A @ A)) @ X  # (r, c)
    return X.T if tall else X


def muon_lr_ratio(shape: tuple[int, ...], adjust_lr_fn: str | None) -> float:
    """The factor Muon multiplies lr by for a weight of `shape` (out, in).

    An orthogonal update has singular values near 1, so its size per element depends on the
    shape. "original" (None): √max(1, out/in), so the update's effect on the layer's output
    stays comparable across shapes; "match_rms_adamw": 0.2 √max(out, in), an update whose
    root-mean-square matches a typical AdamW step, so AdamW's learning rates carry over.
    """
    rows, cols = shape[:2]
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f'adjust_lr_fn must be None, "original" or "match_rms_adamw", got {adjust_lr_fn!r}')


def check_muon_settings(group: dict[str, Any]) -> None:
    """ValueError naming the first Muon setting that torch.optim.Muon refuses.

    As there, a momentum of 1 or more and a negative ns_steps (no Newton–Schulz step) are taken.
    """
    for name in ("lr", "momentum", "weight_decay"):
        if not 0.0 <= group[name]:
            raise ValueError(f"{name} must be >= 0, got {group[name]}")
    if len(group["ns_coefficients"]) != 3:
        raise ValueError(f"ns_coefficients must be three numbers (a, b, c), got {group['ns_coefficients']}")
    if group["ns_steps"] >= 100:
        raise ValueError(f"ns_steps must be below 100, got {group['ns_steps']}")
    muon_lr_ratio((1, 1), group["adjust_lr_fn"])
    for p in group["params"]:
        if p.ndim != 2:
            raise ValueError(f"Muon updates matrices only; got a parameter of shape {p.shape} (give it to AdamW)")


def muon_update(p: Tensor, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
    """One Muon step of the matrix p: momentum, then an orthogonalised update, decoupled decay.

        B ← μ B + (1 - μ) g                       momentum (torch's lerp form)
        U ← (1 - μ) g + μ B    (Nesterov)   or   U ← B
        p ← p (1 - lr · weight_decay) - lr · ratio(shape) · NewtonSchulz(U)

    The Newton–Schulz map forgets U's scale, so the (1 - μ) factors change nothing but eps's
    role: the blog's B ← μ B + g, U ← g + μ B gives the same step.
    """
    momentum, lr = group["momentum"], group["lr"]
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = np.zeros_like(p.data)
    buf = state["momentum_buffer"]
    buf += (1 - momentum) * (grad - buf)
    update = grad + momentum * (buf - grad) if group["nesterov"] else buf
    orthogonal = newton_schulz(update, group["ns_steps"], tuple(group["ns_coefficients"]), group["eps"])
    p.data *= 1 - lr * group["weight_decay"]
    p.data -= (lr * muon_lr_ratio(p.shape, group["adjust_lr_fn"])) * orthogonal.astype(p.dtype, copy=False)


class Muon(Optimizer):
    """Muon (Jordan et al. 2024): SGD with Nesterov momentum whose update, a matrix, is replaced by
    its nearest (semi-)orthogonal matrix before it is applied, as torch.optim.Muon.

    A gradient matrix of a hidden layer is dominated by a few directions; orthogonalising it
    (all singular values ≈ 1, see `newton_schulz`) gives the rare directions as large a step as
    the common ones. Only 2-D weights: embeddings, the output layer, gains and biases go to
    AdamW (`MuonWithAdamW` holds both). Settings and numerics follow torch.optim.Muon, which
    runs the Newton–Schulz steps in bfloat16; here they run in the parameter's dtype.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315),
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
    ):
        defaults = dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            ns_coefficients=tuple(ns_coefficients), eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        check_muon_settings(group)

    def _update(self, p, grad, state, group):
        muon_update(p, grad, state, group)


class MuonWithAdamW(AdamW):
    """Muon for the groups marked {"use_muon": True}, AdamW for the others, in one optimizer.

    Muon is for hidden matrices only; a language model's embeddings, output layer, gains and
    biases train with AdamW (Jordan et al. 2024). One object keeps one state dict and one
    step() for the trainer. A group takes the defaults of its own rule: `muon` (Muon's keyword
    arguments) or `adamw` (AdamW's).

        MuonWithAdamW([{"params": matrices, "use_muon": True}, {"params": others, "use_muon": False}],
                      muon=dict(lr=0.02), adamw=dict(lr=3e-3, betas=(0.9, 0.99)))
    """

    def __init__(self, params, muon: dict[str, Any] | None = None, adamw: dict[str, Any] | None = None):
        # every setting a group leaves out comes from its rule's own keyword defaults
        self.muon_defaults = Muon([Tensor(np.zeros((1, 1)), requires_grad=True)], **(muon or {})).defaults
        self.adamw_defaults = AdamW([Tensor(np.zeros(1), requires_grad=True)], **(adamw or {})).defaults
        Optimizer.__init__(self, params, {})

    def add_param_group(self, group: dict[str, Any]) -> None:
        if "use_muon" not in group:
            raise ValueError('each MuonWithAdamW group must say "use_muon": True or False')
        super().add_param_group({**(self.muon_defaults if group["use_muon"] else self.adamw_defaults), **group})

    def _check(self, group: dict[str, Any]) -> None:
        if group["use_muon"]:
            Optimizer._check(self, group)
            check_muon_settings(group)
        else:
            super()._check(group)

    def _update(self, p, grad, state, group):
        if group["use_muon"]:
            muon_update(p, grad, state, group)
        else:
            super()._update(p, grad, state, group)


# ---------------------------------------------------------------- gradient clipping


def _flat_norm(x: np.ndarray, norm_type: float) -> float:
    """torch.linalg.vector_norm of x as one flat vector, in float64: (Σ|x|ᵖ)^(1/p); inf is the
    largest magnitude, -inf the smallest, 0 the number of non-zero elements. A NaN gives NaN
    (except for 0, where it counts as non-zero)."""
    with np.errstate(divide="ignore"):  # 0 to a negative power is inf, and the norm 0, as in torch
        return float(np.linalg.norm(np.asarray(x, dtype=np.float64).reshape(-1), norm_type))


def get_total_norm(
    tensors: Iterable[np.ndarray | Tensor] | np.ndarray | Tensor,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> float:
    """The norm of order `norm_type` of the arrays (gradients), as torch.nn.utils.get_total_norm:
    the norm of their norms, which for p ≠ 0 is the norm of all of them taken as one long vector;
    for 0 it counts the arrays holding a non-zero. `norm_type` may be a string ("inf"), as
    torch's float(norm_type) reads it; `foreach` picks one of torch's implementations of the same
    number, and changes nothing here.
    """
    tensors = [tensors] if isinstance(tensors, (np.ndarray, Tensor)) else list(tensors)
    tensors = [t.data if isinstance(t, Tensor) else np.asarray(t) for t in tensors]
    norm_type = float(norm_type)
    if not tensors:
        return 0.0
    if norm_type == 2.0:
        # Accumulate in float64: a sum of ~10⁶ float32 squares would lose digits. g · g is one BLAS pass.
        total = math.sqrt(sum(float(g64 @ g64) for g64 in (g.astype(np.float64).reshape(-1) for g in tensors)))
    else:
        total = _flat_norm(np.array([_flat_norm(g, norm_type) for g in tensors]), norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is {total}; "
            "pass error_if_nonfinite=False to clip anyway"
        )
    return total


def clip_grads_with_norm_(
    parameters: Iterable[Tensor] | Tensor, max_norm: float, total_norm: float, foreach: bool | None = None
) -> None:
    """Multiply every gradient in place by max_norm / (total_norm + 1e-6) when that is below 1, as
    torch.nn.utils.clip_grads_with_norm_: clipping with a norm measured elsewhere (on several
    ranks, say). Parameters without a gradient are skipped; `foreach` changes nothing here."""
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    coef = float(max_norm) / (float(total_norm) + 1e-6)
    if not coef >= 1.0:  # also true for NaN: a NaN norm poisons the gradients, as in torch
        for p in parameters:
            if p.grad is not None:
                p.grad *= coef


def clip_grad_norm_(
    params: Iterable[Tensor] | Tensor,
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> float:
    """Scale all gradients together so their joint norm is at most `max_norm`; return the norm
    they had before (as torch.nn.utils.clip_grad_norm_).

    The norm is taken over every gradient as one long vector (`get_total_norm`). When it exceeds
    `max_norm`, each gradient is multiplied in place by max_norm / (norm + 1e-6)
    (`clip_grads_with_norm_`); otherwise they are untouched. Parameters without a gradient are
    skipped. `norm_type` and `foreach` are read as `get_total_norm` reads them.
    """
    params = [params] if isinstance(params, Tensor) else list(params)
    total = get_total_norm([p.grad for p in params if p.grad is not None], norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
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

    `step(it)` sets the rate of iteration `it`; `step()` moves to the next iteration. A group
    with an "lr_scale" gets that multiple of the rate (Muon's matrices take larger steps than
    AdamW's parameters under one schedule). At
    construction the rate of iteration `last_iter + 1` (0 for a new run) is set, so both
    torch's order (optimizer.step(); scheduler.step()) and nanoGPT's (set the rate at the top
    of each iteration) work. `get_last_lr()` is torch's: the rates last set, one per group.

    The constructor is not torch.optim.lr_scheduler.LRScheduler's `(optimizer, last_epoch=-1)`,
    whose subclasses override `get_lr()`: it is `(optimizer, lr_at, last_iter=-1)`, where
    `lr_at(it)` gives the rate itself (not a factor of each group's initial rate, as LambdaLR's
    function does), and there is no `base_lrs`, `initial_lr` or `get_lr()`. A torch-style call or
    subclass fails with a TypeError.
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
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        return lr

    def get_last_lr(self) -> list[float]:
        """The learning rates the last `step` set, one per parameter group (as torch's)."""
        return self._last_lr

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
    "Muon",
    "MuonWithAdamW",
    "Optimizer",
    "clip_grad_norm_",
    "clip_grads_with_norm_",
    "cosine_with_warmup",
    "get_total_norm",
]
