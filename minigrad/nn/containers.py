"""Containers: Sequential, ModuleList, ModuleDict — children named "0", "1", ... or by key.

Children are registered with `add_module`, so their parameters are named as in PyTorch
(`0.weight`, `layers.1.bias`, `h.0.attn.c_attn.weight`) and a ModuleDict key never hides a
method of the same name.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

from minigrad.nn.module import Module


def _position(i: int, length: int, kind: str) -> int:
    """A list index (negative counts from the end) checked against the length."""
    if not -length <= i < length:
        raise IndexError(f"index {i} is out of range for a {kind} of length {length}")
    return i % length


def _insert(modules: OrderedDict, index: int, module: Module, kind: str) -> None:
    """Put `module` at `index` (negative counts from the end), the children from there on moving
    one place up and renamed "index+1", ... as torch's insert renames them."""
    if not isinstance(module, Module):
        raise TypeError(f"{kind}.insert needs a Module, got {type(module).__name__}")
    length = len(modules)
    if not -length <= index <= length:
        raise IndexError(f"index {index} is out of range for inserting into a {kind} of length {length}")
    index = index + length if index < 0 else index
    if any(str(i) not in modules for i in range(index, length)):
        raise KeyError(
            f"{kind}.insert renames children {index} to {length - 1} by number, but they are named {list(modules)}"
        )
    for i in range(length, index, -1):
        modules[str(i)] = modules[str(i - 1)]
    modules[str(index)] = module


def _delete(modules: OrderedDict, i: int | slice, kind: str) -> None:
    """Remove the child (or children, for a slice) at position i; the rest are renamed "0", "1",
    ... in order, as torch renames them (the names of a Sequential built from a dict too)."""
    keys = list(modules)
    for key in keys[i] if isinstance(i, slice) else [keys[_position(i, len(keys), kind)]]:
        del modules[key]
    kept = list(modules.values())
    modules.clear()
    modules.update((str(k), module) for k, module in enumerate(kept))


class Sequential(Module):
    """Call the modules in order, each on the previous one's output.

    Sequential(a, b, c) names them "0", "1", "2"; Sequential(OrderedDict(name=module, ...))
    keeps the given names.
    """

    def __init__(self, *modules: Module):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def __getitem__(self, i: int | slice) -> Module:
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[_position(i, len(self), "Sequential")]

    def __setitem__(self, i: int, module: Module) -> None:
        self.add_module(list(self._modules)[_position(i, len(self), "Sequential")], module)

    def __delitem__(self, i: int | slice) -> None:
        _delete(self._modules, i, "Sequential")

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        _insert(self._modules, index, module, "Sequential")
        return self

    def pop(self, i: int | slice) -> Module:
        module = self[i]
        del self[i]
        return module

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(Module):
    """A list of modules whose parameters are registered (named "0", "1", ...)."""

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        self.extend(() if modules is None else modules)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def insert(self, index: int, module: Module) -> None:
        _insert(self._modules, index, module, "ModuleList")

    def pop(self, i: int | slice) -> Module | ModuleList:
        module = self[i]
        del self[i]
        return module

    def __getitem__(self, i: int | slice) -> Module | ModuleList:
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return self._modules[str(_position(i, len(self), "ModuleList"))]

    def __setitem__(self, i: int, module: Module) -> None:
        self.add_module(str(_position(i, len(self), "ModuleList")), module)

    def __delitem__(self, i: int | slice) -> None:
        _delete(self._modules, i, "ModuleList")

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules whose parameters are registered under their keys."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        super().__init__()
        self.update(modules or {})

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace children from a mapping or, as torch, from (key, module) pairs."""
        for key, module in modules.items() if isinstance(modules, Mapping) else modules:
            self[key] = module

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r}; its keys are {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        self._modules.clear()

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()
