"""Neural-network layers and containers, named and laid out as in torch.nn."""

from minigrad.nn.containers import ModuleDict, ModuleList, Sequential
from minigrad.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, RMSNorm
from minigrad.nn.module import IncompatibleKeys, Module, Parameter, StateDictError

__all__ = [
    "GELU",
    "Dropout",
    "Embedding",
    "IncompatibleKeys",
    "LayerNorm",
    "Linear",
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "RMSNorm",
    "ReLU",
    "Sequential",
    "StateDictError",
]
