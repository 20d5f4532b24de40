"""`Module`: the container for parameters and sub-modules, in the style of torch.nn.Module."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from minigrad.kernels import kernels_enabled, use_kernels
from minigrad.modes import module_scope
from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A tensor that a `Module` registers as one of its learnable parameters."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class StateDictError(KeyError, ValueError):
    """A state dict that does not fit the module: missing, unexpected or mis-shaped keys.

    It is both a KeyError and a ValueError, so code catching either (a command line turning a
    bad checkpoint into one line on stderr) catches it; `str()` gives the plain message.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped: keys the module has that the dict lacks,
    and keys the dict has that the module does not."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class for layers and models.

    Assigning a `Parameter` or a `Module` to an attribute registers it, so `parameters()`,
    `state_dict()` and friends find it under a dotted name such as `h.0.attn.c_attn.weight`.
    Subclasses implement `forward`; call the module itself, so that the ops it creates are
    grouped under its name in `minigrad.viz` drawings.

    `fused` chooses what the network functions in its forward (and in its sub-modules') run:
    None, the default, follows `minigrad.use_kernels`; True the fused kernels of
    minigrad/kernels.py, False their readable definitions, whatever the switch says outside.
    """

    fused: bool | None = None

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())  # name -> (Tensor or None, persistent)
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if name in self._parameters and value is not None and not isinstance(value, Parameter):
            # `self.weight = self.weight * 2` would silently drop the parameter from training.
            raise TypeError(
                f"cannot assign a {type(value).__name__} to parameter {name!r} of {type(self).__name__}; "
                "assign a Parameter (or None), or change the values in place with .data[...] = ..."
            )
        if name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"buffer {name!r} of {type(self).__name__} must be a Tensor or None, not {type(value).__name__}"
                )
            self._buffers[name] = (value, self._buffers[name][1])
            object.__setattr__(self, name, value)
            return
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: children added with `add_module` under names
        # that are not attributes (a ModuleDict key such as "train" must not hide a method).
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        if name in self.__dict__:
            self._modules.pop(name, None)
            object.__delattr__(self, name)
        elif self._modules.pop(name, None) is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def add_module(self, name: str, module: Module | None) -> None:
        """Register `module` as a child called `name` (for names that are not identifiers)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"a module name must be a non-empty string without '.', got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}, ...) needs a Module, got {type(module).__name__}")
        self._modules[name] = module

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Keep a Tensor that is state but not learned (batch norm's running statistics), as torch.

        A buffer moves with `to(dtype)` and, when persistent, is saved and loaded by the state
        dict under its dotted name; optimizers never see it.
        """
        self._check_new_name(name, "buffer", self._buffers)
        self._buffers[name] = (None, persistent)
        setattr(self, name, tensor)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add `param` under `name`, as assigning it does, with torch's checks of the name;
        None keeps the name for a parameter to come."""
        self._check_new_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter {name!r} must be a Parameter or None, not {type(param).__name__}")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def _check_new_name(self, name, kind: str, own: dict) -> None:
        """torch's rules for a buffer's or parameter's name: a non-empty string without '.'
        that is not already an attribute (a method, a child, `training`) of another kind."""
        if not isinstance(name, str):
            raise TypeError(f"a {kind} name must be a string, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"a {kind} name must be a non-empty string without '.', got {name!r}")
        if hasattr(self, name) and name not in own:
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}")

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs of this module and, with recurse, every descendant
        (persistent or not); remove_duplicate as in `named_parameters`."""
        return self._named_members(
            lambda module: [(name, tensor) for name, (tensor, _) in module._buffers.items()],
            prefix, recurse, remove_duplicate,
        )  # fmt: skip

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, tensor in self.named_buffers(recurse=recurse):
            yield tensor

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        with module_scope(self):
            if self.fused is None or self.fused == kernels_enabled():  # nothing to switch
                return self.forward(*args, **kwargs)
            with use_kernels(self.fused):
                return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal

    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (named `prefix`) and every descendant, torch's
        arguments: a module met again (shared under two names) is skipped, unless
        remove_duplicate=False lists it under each name; `memo` holds the modules met."""
        memo = set() if memo is None else memo
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self, remove_duplicate: bool = True) -> Iterator[Module]:
        for _, module in self.named_modules(remove_duplicate=remove_duplicate):
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, child) of the direct children, a child shared under two names once (torch's)."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and child not in seen:
                seen.add(child)
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def get_submodule(self, target: str) -> Module:
        """The descendant at a dotted path such as "transformer.h.0.attn" ("" is self)."""
        module = self
        for i, name in enumerate(target.split(".") if target else []):
            if name not in module._modules:
                where = ".".join(target.split(".")[:i]) or type(self).__name__
                raise AttributeError(f"{where} has no submodule {name!r} (looking for {target!r})")
            module = module._modules[name]
        return module

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs in registration order, of this module only when
        recurse=False. A parameter shared by several modules (tied weights), or a module
        shared under two names, is listed once, under the first name met, unless
        remove_duplicate=False lists it under every name (as state dicts do)."""
        return self._named_members(lambda module: module._parameters.items(), prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def _named_members(self, members, prefix: str, recurse: bool, remove_duplicate: bool) -> Iterator[tuple]:
        """(dotted name, tensor) for `members(module)` of this module and, with recurse, of
        every descendant; each tensor once when remove_duplicate (by identity: tensors compare
        by value)."""
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen = set()
        for module_name, module in modules:
            for name, tensor in members(module):
                if tensor is None or id(tensor) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(tensor))
                yield (f"{module_name}.{name}" if module_name else name), tensor

    def num_parameters(self) -> int:
        """How many numbers the model learns (a tied tensor counted once)."""
        return sum(p.size for p in self.parameters())

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call fn(module) on every descendant, children before parents (torch's order), then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ modes, gradients, dtype

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and all below it; returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: dropout becomes the identity."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: set it to None (torch's default), or with
        set_to_none=False fill it with zeros in place."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad[...] = 0

    def requires_grad_(self, mode: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter; returns self."""
        for param in self.parameters():
            param.requires_grad_(mode)
        return self

    def to(self, dtype) -> Module:
        """Cast every parameter to `dtype` in place (the Parameter objects stay the same), e.g.
        `model.to(np.float64)` before a gradient check."""
        for param in self.parameters():
            param.data = param.data.astype(dtype)
            param.grad = None
        for tensor in self.buffers():
            if tensor.dtype.kind == "f":  # a count (num_batches_tracked) stays an integer
                tensor.data = tensor.data.astype(dtype)
        return self

    # ------------------------------------------------------------ state dict

    def state_dict(self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False) -> dict:
        """Every parameter and persistent buffer by dotted name (after `prefix`), in PyTorch's
        order: each module's parameters, then its buffers, then its children's. A module or
        tensor shared under several names appears under each, as in PyTorch's state dicts.

        The values are NumPy arrays (copies), or with keep_vars=True the Tensors themselves.
        torch's `destination`: a dict to fill and return instead of a new OrderedDict.
        """
        destination = OrderedDict() if destination is None else destination
        for name, tensor in self._named_state().items():
            destination[prefix + name] = tensor if keep_vars else tensor.data.copy()
        return destination

    def _named_state(self) -> OrderedDict:
        """What the state dict holds: name -> the Parameter or buffer Tensor itself."""
        state = OrderedDict()
        for module_name, module in self.named_modules(remove_duplicate=False):
            prefix = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    state[prefix + name] = param
            for name, (tensor, persistent) in module._buffers.items():
                if tensor is not None and persistent:
                    state[prefix + name] = tensor
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (NumPy, or anything with `.numpy()`) into the parameters and buffers, in place.

        With strict=True a missing or unexpected key is an error; a shape mismatch always is.
        Every problem is checked before anything is copied, so a failed load leaves the module
        as it was, and the error (`StateDictError`) names every key at fault. Returns the
        missing and unexpected keys.
        """
        own = self._named_state()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        values = {key: _as_numpy(state_dict[key]) for key in own if key in state_dict}
        problems += [
            f"{key} has shape {_shape(value.shape)} in the state dict, but the model's is {_shape(own[key].shape)}"
            for key, value in values.items()
            if value.shape != own[key].shape
        ]
        if problems:
            raise StateDictError(f"cannot load the state dict into {type(self).__name__}: " + "; ".join(problems))
        for key, param in own.items():
            if key in values:
                param.data[...] = values[key].astype(param.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ printing

    def extra_repr(self) -> str:
        """The layer's settings, shown between the parentheses of its repr."""
        return ""

    def __repr__(self) -> str:
        """A tree of the modules, as PyTorch prints it; runs of identical numbered children are
        folded into one line, e.g. `(0-3): 4 x Block(...)`."""
        children = [(name, repr(child)) for name, child in self._modules.items() if child is not None]
        lines, i = [], 0
        while i < len(children):
            first, text = children[i]
            j = i + 1  # children[i:j] is a run of equal, numbered children
            while first.isdigit() and j < len(children) and children[j][0].isdigit() and children[j][1] == text:
                j += 1
            line = f"({first}): {text}" if j == i + 1 else f"({first}-{children[j - 1][0]}): {j - i} x {text}"
            lines.append("  " + line.replace("\n", "\n  "))
            i = j
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not lines else head + "\n" + "\n".join(lines) + "\n)"

    def summary(self) -> str:
        """A table of every parameter: name, shape, count; then the total (tied tensors once)."""
        rows = [(name, _shape(p.shape), f"{p.size:,}") for name, p in self.named_parameters()]
        rows.append(("total", "", f"{self.num_parameters():,}"))
        width = [max(len(r[k]) for r in rows + [("parameter", "shape", "count")]) for k in range(3)]
        header = f"{'parameter':<{width[0]}}  {'shape':<{width[1]}}  {'count':>{width[2]}}"
        lines = [header, "-" * len(header)]
        lines += [f"{n:<{width[0]}}  {s:<{width[1]}}  {c:>{width[2]}}" for n, s, c in rows[:-1]]
        lines += ["-" * len(header), f"{'total':<{width[0]}}  {'':<{width[1]}}  {rows[-1][2]:>{width[2]}}"]
        return "\n".join(lines)


def _shape(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


def _as_numpy(value) -> np.ndarray:
    """A state-dict value as an array: NumPy arrays, minigrad Tensors, or torch tensors."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, without importing torch
        return value.detach().numpy()
    return np.asarray(value)
