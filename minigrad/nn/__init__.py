"""Neural-network layers and containers, named and laid out as in torch.nn."""

from minigrad.nn.containers import ModuleDict, ModuleList, Sequential
from minigrad.nn.conv import AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, ConvTranspose2d, MaxPool2d
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
from minigrad.nn.norm import BatchNorm1d, BatchNorm2d

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "MaxPool2d",
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
