"""Neural-network layers and containers, named and laid out as in torch.nn."""

from minigrad.nn.containers import ModuleDict, ModuleList, Sequential
from minigrad.nn.layers import (
    ELU,
    GELU,
    Dropout,
    Embedding,
    LayerNorm,
    LeakyReLU,
    Linear,
    Mish,
    ReLU,
    RMSNorm,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from minigrad.nn.module import IncompatibleKeys, Module, Parameter, StateDictError

__all__ = [
    "ELU",
    "GELU",
    "Dropout",
    "Embedding",
    "IncompatibleKeys",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "Mish",
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "RMSNorm",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softplus",
    "StateDictError",
    "Tanh",
]
