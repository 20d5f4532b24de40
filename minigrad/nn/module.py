"""`Module`: the container for parameters and sub-modules, in the style of torch.nn.Module."""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from minigrad.autograd import module_scope
from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A tensor that a `Module` registers as one of its learnable parameters."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)


class Module:
    """Base class for layers and models.

    Assigning a `Parameter` or a `Module` to an attribute registers it, so `parameters()`,
    `state_dict()` and friends find it under a dotted name such as `h.0.attn.c_attn.weight`.
    Subclasses implement `forward`; call the module itself, so that the ops it creates are
    grouped under its name in `minigrad.viz` drawings.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        with module_scope(self):
            return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal

    def named_modules(self, prefix: str = "", memo: set | None = None) -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; a parameter shared by several modules is listed once."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------ modes and gradients

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = None

    # ------------------------------------------------------------ state dict

    def state_dict(self) -> OrderedDict:
        """Every parameter by dotted name, as NumPy arrays (copies). Tied tensors appear under
        each of their names, as in PyTorch's state dicts."""
        state = OrderedDict()
        for module_name, module in self.named_modules():
            for name, param in module._parameters.items():
                if param is not None:
                    state[f"{module_name}.{name}" if module_name else name] = param.data.copy()
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> tuple[list, list]:
        """Copy arrays into the parameters. With strict=True, missing or unexpected keys are an
        error; a shape mismatch is always an error. Returns (missing, unexpected)."""
        own = {}
        for module_name, module in self.named_modules():
            for name, param in module._parameters.items():
                if param is not None:
                    own[f"{module_name}.{name}" if module_name else name] = param
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys: {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected keys: {', '.join(unexpected)}")
            raise KeyError(f"load_state_dict (strict): {'; '.join(parts)}")
        for key, param in own.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key].numpy() if hasattr(state_dict[key], "numpy") else state_dict[key])
            if value.shape != param.shape:
                raise ValueError(
                    f"load_state_dict: {key} has shape {tuple(value.shape)} in the state dict, "
                    f"but the model expects {tuple(param.shape)}"
                )
            param.data[...] = value.astype(param.dtype, copy=False)
        return missing, unexpected

    # ------------------------------------------------------------ printing

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"
