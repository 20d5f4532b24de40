"""minigrad.nn: registration and naming, modes, state dicts, printing, initialisation,
gradient checks of every layer, and PyTorch twins (same weights -> same outputs and grads)."""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, nn

TOLERANCES = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


class Block(nn.Module):
    def __init__(self, width, rng):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width, rng=rng)

    def forward(self, x):
        return x + self.fc(self.norm(x)).relu()


class Net(nn.Module):
    """Layers nested in every container, and an output layer tied to the embedding."""

    def __init__(self, vocab=7, width=4, rng=None):
        super().__init__()
        rng = np.random.default_rng(0) if rng is None else rng
        self.embed = nn.Embedding(vocab, width, rng=rng)
        self.layers = nn.ModuleList([Block(width, rng) for _ in range(2)])
        self.heads = nn.ModuleDict({"out": nn.Linear(width, vocab, bias=False, rng=rng)})
        self.heads["out"].weight = self.embed.weight  # tied: one tensor, two names

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.heads["out"](x)


# ---------------------------------------------------------------- registration and naming


def test_parameter_names_follow_pytorch():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in Net().named_parameters()] == [
        "embed.weight",
        "layers.0.norm.weight",
        "layers.0.norm.bias",
        "layers.0.fc.weight",
        "layers.0.fc.bias",
        "layers.1.norm.weight",
        "layers.1.norm.bias",
        "layers.1.fc.weight",
        "layers.1.fc.bias",
    ]


def test_tied_parameter_is_listed_once_but_saved_under_both_names():
    model = Net()
    params = list(model.parameters())
    assert len(params) == len({id(p) for p in params}) == 9
    assert "heads.out.weight" in model.state_dict() and "embed.weight" in model.state_dict()
    every_name = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    assert every_name == list(model.state_dict()) and every_name[-1] == "heads.out.weight"
    assert model.num_parameters() == 7 * 4 + 2 * (4 + 4 + 16 + 4)


def test_modules_children_and_submodules():
    model = Net()
    names = [n for n, _ in model.named_modules()]
    assert names == ["", "embed", "layers", "layers.0", "layers.0.norm", "layers.0.fc", "layers.1"] + [
        "layers.1.norm",
        "layers.1.fc",
        "heads",
        "heads.out",
    ]
    assert len(list(model.modules())) == len(names)
    assert [n for n, _ in model.named_children()] == ["embed", "layers", "heads"]
    assert model.get_submodule("layers.1.fc") is model.layers[1].fc
    assert model.get_submodule("") is model
    with pytest.raises(AttributeError, match="layers.1 has no submodule 'attn'"):
        model.get_submodule("layers.1.attn.c_attn")


def test_apply_visits_children_before_parents():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen[:4] == ["Embedding", "LayerNorm", "Linear", "Block"]
    assert seen[-1] == "Net"


def test_containers_behave_like_lists_and_dicts():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert layers[-1] is layers[2] and len(layers[1:]) == 2
    layers[0] = nn.ReLU()
    assert [type(m).__name__ for m in layers] == ["ReLU", "Linear", "Linear"]
    assert [n for n, _ in layers.named_parameters()] == ["1.weight", "1.bias", "2.weight", "2.bias"]
    with pytest.raises(IndexError, match="index 3 is out of range for a ModuleList of length 3"):
        layers[3]

    seq = nn.Sequential(OrderedDict(first=nn.Linear(2, 3), act=nn.ReLU(), last=nn.Linear(3, 1)))
    assert [n for n, _ in seq.named_parameters()] == ["first.weight", "first.bias", "last.weight", "last.bias"]
    assert isinstance(seq[:2], nn.Sequential) and seq[:2][1] is seq.act

    heads = nn.ModuleDict({"train": nn.Linear(2, 2), "eval": nn.Linear(2, 1)})
    assert heads.eval() is heads  # a key named like a method does not hide the method
    assert heads["train"].training is False and list(heads) == ["train", "eval"]
    with pytest.raises(KeyError, match="its keys are"):
        heads["test"]


def test_assigning_a_plain_tensor_to_a_parameter_is_an_error():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign a Tensor to parameter 'weight' of Linear"):
        layer.weight = layer.weight * 2
    layer.bias = None  # dropping the bias is allowed
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_forgetting_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="must call super"):
        Broken()


# ---------------------------------------------------------------- modes and gradients


def test_train_eval_reach_every_module():
    model = Net()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad_and_requires_grad():
    model = Net()
    model(np.array([[1, 2, 3]])).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert not model(np.array([[1, 2]])).requires_grad


def test_dropout_is_seeded_and_identity_in_eval():
    x = Tensor(np.ones((50, 40)))
    a, b = nn.Dropout(0.3, rng=7), nn.Dropout(0.3, rng=np.random.default_rng(7))
    ya, yb = a(x), b(x)
    np.testing.assert_array_equal(ya.data, yb.data)
    kept = ya.data != 0
    assert 0.6 < kept.mean() < 0.8  # about 1 - p of 2000 elements survive
    np.testing.assert_allclose(ya.data[kept], 1 / 0.7, rtol=1e-6)  # inverted dropout's scale
    assert not np.array_equal(a(x).data, ya.data)  # the generator moves on
    a.eval()
    assert a(x) is x
    assert nn.Dropout(0.0)(x) is x

    drop = nn.Dropout(0.5)  # no generator: minigrad's default one, so manual_seed reproduces it
    mg.manual_seed(3)
    first = drop(x).data
    mg.manual_seed(3)
    np.testing.assert_array_equal(drop(x).data, first)
    with pytest.raises(ValueError, match=r"\[0, 1\], got 1.5"):
        nn.Dropout(1.5)


def test_to_casts_parameters_in_place():
    model = Net()
    params = list(model.parameters())
    model.to(np.float64)
    assert [p is q for p, q in zip(params, model.parameters())] == [True] * len(params)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model(np.array([[0, 1]])).dtype == np.float64


# ---------------------------------------------------------------- state dicts


def test_state_dict_round_trip_into_a_fresh_model():
    a, b = Net(rng=np.random.default_rng(1)), Net(rng=np.random.default_rng(2))
    ids = np.array([[0, 3, 6, 2]])
    state = a.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    result = b.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(a(ids).data, b(ids).data)
    state["embed.weight"][...] = 0  # a copy, not a view of the weights
    assert np.abs(a.embed.weight.data).sum() > 0


def test_strict_load_names_missing_unexpected_and_misshaped_keys():
    model = Net()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = Net(rng=np.random.default_rng(5)).state_dict()
    del state["layers.1.fc.bias"]
    state["layers.2.fc.bias"] = np.zeros(4)
    state["layers.0.fc.weight"] = np.zeros((4, 5))
    with pytest.raises(nn.StateDictError) as error:
        model.load_state_dict(state)
    assert str(error.value) == (
        "cannot load the state dict into Net: missing keys: layers.1.fc.bias; "
        "unexpected keys: layers.2.fc.bias; layers.0.fc.weight has shape (4, 5) in the state dict, "
        "but the model's is (4, 4)"
    )
    assert isinstance(error.value, KeyError) and isinstance(error.value, ValueError)
    for key, value in model.state_dict().items():  # nothing was copied
        np.testing.assert_array_equal(value, before[key])


def test_non_strict_load_reports_and_still_rejects_shapes():
    model = Net()
    state = {"embed.weight": np.full((7, 4), 0.5), "extra.weight": np.zeros(3)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == ["extra.weight"] and "layers.0.fc.weight" in missing
    np.testing.assert_array_equal(model.heads["out"].weight.data, 0.5)  # the tied tensor, too
    with pytest.raises(nn.StateDictError, match=r"embed.weight has shape \(4, 7\)"):
        model.load_state_dict({"embed.weight": np.zeros((4, 7))}, strict=False)


# ---------------------------------------------------------------- printing


def test_repr_is_a_tree_and_folds_repeated_layers():
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(approximate="tanh"), nn.Dropout(0.1))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=3, out_features=4, bias=True)\n"
        "  (1): GELU(approximate='tanh')\n"
        "  (2): Dropout(p=0.1)\n"
        ")"
    )
    assert repr(Net()).splitlines()[2:8] == [
        "  (layers): ModuleList(",
        "    (0-1): 2 x Block(",
        "      (norm): LayerNorm(4, eps=1e-05)",
        "      (fc): Linear(in_features=4, out_features=4, bias=True)",
        "    )",
        "  )",
    ]
    assert repr(nn.ReLU()) == "ReLU()"


def test_summary_lists_parameters_and_total():
    lines = Net().summary().splitlines()
    assert lines[0].split() == ["parameter", "shape", "count"]
    assert lines[2].split() == ["embed.weight", "(7,", "4)", "28"]
    assert lines[-1].split() == ["total", "84"]
    assert len(lines) == 2 + 9 + 2


# ---------------------------------------------------------------- initialisation


def test_default_initialisations_are_pytorchs():
    rng = np.random.default_rng(0)
    fc = nn.Linear(400, 300, rng=rng)
    bound = 1 / np.sqrt(400)
    assert np.abs(fc.weight.data).max() <= bound and np.abs(fc.bias.data).max() <= bound
    assert fc.weight.data.std() == pytest.approx(bound / np.sqrt(3), rel=0.01)  # U(-b, b)
    assert fc.weight.shape == (300, 400) and fc.weight.dtype == np.float32
    emb = nn.Embedding(500, 200, rng=rng)
    assert emb.weight.data.std() == pytest.approx(1.0, rel=0.01) and abs(emb.weight.data.mean()) < 0.01
    ln = nn.LayerNorm(5)
    np.testing.assert_array_equal(ln.weight.data, 1.0)
    np.testing.assert_array_equal(ln.bias.data, 0.0)
    np.testing.assert_array_equal(nn.RMSNorm(5).weight.data, 1.0)
    np.testing.assert_array_equal(
        nn.Linear(3, 2, rng=np.random.default_rng(9)).weight.data,
        nn.Linear(3, 2, rng=np.random.default_rng(9)).weight.data,
    )


# ---------------------------------------------------------------- gradient checks


@contextlib.contextmanager
def swapped_parameters(module: nn.Module, tensors):
    """Run `module` with `tensors` in place of its parameters (gradcheck hands float64 copies)."""
    slots = [(owner, name, param) for _, owner in module.named_modules() for name, param in owner._parameters.items()]
    for (owner, name, _), tensor in zip(slots, tensors):
        object.__setattr__(owner, name, tensor)
    try:
        yield
    finally:
        for owner, name, param in slots:
            object.__setattr__(owner, name, param)


def check_layer(module: nn.Module, *inputs) -> None:
    """mg.gradcheck with respect to the inputs and every parameter, all in float64."""
    module.to(np.float64)
    params = [p for _, owner in module.named_modules() for p in owner._parameters.values()]
    count = len(inputs)

    def run(*args):
        with swapped_parameters(module, args[count:]):
            return module(*args[:count])

    assert mg.gradcheck(run, *inputs, *params)


def leaf(*shape, seed=0, low=None):
    values = np.random.default_rng(seed).standard_normal(shape)
    if low is not None:  # keep |x| >= low: ReLU's kink at 0 has no derivative
        values = np.sign(values) * (np.abs(values) + low)
    return Tensor(values, dtype=np.float64, requires_grad=True)


LAYERS = {
    "linear": lambda: (nn.Linear(3, 4), [leaf(2, 3)]),
    "linear_no_bias": lambda: (nn.Linear(3, 2, bias=False), [leaf(2, 2, 3)]),
    "embedding": lambda: (nn.Embedding(5, 3), [np.array([[0, 4, 4], [1, 0, 2]])]),
    "layer_norm": lambda: (nn.LayerNorm(4), [leaf(3, 4)]),
    "layer_norm_no_bias": lambda: (nn.LayerNorm(4, bias=False), [leaf(2, 4)]),
    "rms_norm": lambda: (nn.RMSNorm(4), [leaf(3, 4)]),
    "gelu": lambda: (nn.GELU(), [leaf(2, 5)]),
    "gelu_tanh": lambda: (nn.GELU(approximate="tanh"), [leaf(2, 5)]),
    "relu": lambda: (nn.ReLU(), [leaf(2, 5, low=0.1)]),
    "dropout": lambda: (nn.Dropout(0.4), [leaf(3, 4)]),
    "mlp": lambda: (nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.LayerNorm(3), nn.Linear(3, 1)), [leaf(4, 2)]),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_gradients(name, monkeypatch):
    module, inputs = LAYERS[name]()
    if isinstance(module, nn.Dropout):
        # gradcheck evaluates the layer many times: give every call the same mask
        monkeypatch.setattr("minigrad.functional.default_rng", lambda: np.random.default_rng(1))
    module.train()
    check_layer(module, *inputs)


def test_layer_gradcheck_can_fail():
    class WrongLinear(nn.Linear):
        def forward(self, x):
            return _WrongMatMul.apply(x, self.weight) + self.bias

    with pytest.raises(mg.GradcheckError, match="input 1"):
        check_layer(WrongLinear(2, 2), leaf(3, 2))


class _WrongMatMul(mg.Function):
    """x Wᵀ with a gradient for W that is off by a factor of two."""

    def forward(self, x, w):
        self.x, self.w = x, w
        return x @ w.T

    def backward(self, g):
        return g @ self.w, 2 * g.T @ self.x


# ---------------------------------------------------------------- PyTorch twins


def torch_twin(torch, module: nn.Module, twin):
    """Give the torch module our weights through its own load_state_dict(strict=True)."""
    twin.load_state_dict({k: torch.as_tensor(v) for k, v in module.state_dict().items()}, strict=True)
    return twin


TWINS = {
    "linear": (lambda: nn.Linear(5, 3), lambda t: t.nn.Linear(5, 3), (2, 4, 5)),
    "linear_no_bias": (lambda: nn.Linear(5, 3, bias=False), lambda t: t.nn.Linear(5, 3, bias=False), (4, 5)),
    "layer_norm": (lambda: nn.LayerNorm(6), lambda t: t.nn.LayerNorm(6), (2, 3, 6)),
    "layer_norm_no_bias": (lambda: nn.LayerNorm(6, bias=False), lambda t: t.nn.LayerNorm(6, bias=False), (3, 6)),
    "layer_norm_two_axes": (lambda: nn.LayerNorm((3, 4)), lambda t: t.nn.LayerNorm((3, 4)), (2, 3, 4)),
    "layer_norm_two_axes_definition": (
        lambda: nn.LayerNorm((3, 4), fused=False),
        lambda t: t.nn.LayerNorm((3, 4)),
        (5, 2, 3, 4),
    ),
    "linear_definition": (lambda: nn.Linear(5, 3, fused=False), lambda t: t.nn.Linear(5, 3), (2, 4, 5)),
    "gelu_definition": (lambda: nn.GELU(fused=False), lambda t: t.nn.GELU(), (3, 7)),
    "rms_norm": (lambda: nn.RMSNorm(6, eps=1e-6), lambda t: t.nn.RMSNorm(6, eps=1e-6), (2, 3, 6)),
    "gelu": (lambda: nn.GELU(), lambda t: t.nn.GELU(), (3, 7)),
    "gelu_tanh": (lambda: nn.GELU("tanh"), lambda t: t.nn.GELU(approximate="tanh"), (3, 7)),
    "relu": (lambda: nn.ReLU(), lambda t: t.nn.ReLU(), (3, 7)),
    "dropout_eval": (lambda: nn.Dropout(0.5).eval(), lambda t: t.nn.Dropout(0.5).eval(), (3, 7)),
    "mlp": (
        lambda: nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 2)),
        lambda t: t.nn.Sequential(t.nn.Linear(4, 8), t.nn.GELU(), t.nn.LayerNorm(8), t.nn.Linear(8, 2)),
        (5, 4),
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(TWINS))
def test_layer_matches_torch(name, dtype):
    torch = pytest.importorskip("torch")
    make, make_twin, shape = TWINS[name]
    rng = np.random.default_rng(0)
    module = make()
    for p in module.parameters():  # not 1s and 0s: norms' weights and biases must matter
        p.data[...] = rng.standard_normal(p.shape)
    module.to(dtype)
    twin = torch_twin(torch, module, make_twin(torch).to(getattr(torch, np.dtype(dtype).name)))
    x_np = rng.standard_normal(shape).astype(dtype)

    x = Tensor(x_np, dtype=dtype, requires_grad=True)
    out = module(x)
    tx = torch.tensor(x_np, requires_grad=True)
    tout = twin(tx)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), **TOLERANCES[dtype])
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(g)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOLERANCES[dtype])
    for (name, p), (tname, tp) in zip(module.named_parameters(), twin.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOLERANCES[dtype], err_msg=name)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    module = nn.Embedding(6, 3)
    twin = torch_twin(torch, module, torch.nn.Embedding(6, 3))
    ids = np.array([[0, 5, 5, 2], [2, 2, 1, 0]])
    g = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(np.float32)
    out, tout = module(ids), twin(torch.as_tensor(ids))
    np.testing.assert_array_equal(out.data, tout.detach().numpy())
    out.backward(g)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(module.weight.grad, twin.weight.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_state_dict_keys_and_values_move_both_ways_with_torch():
    torch = pytest.importorskip("torch")

    class TorchBlock(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.norm, self.fc = torch.nn.LayerNorm(width), torch.nn.Linear(width, width)

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(7, 4)
            self.layers = torch.nn.ModuleList([TorchBlock(4) for _ in range(2)])
            self.heads = torch.nn.ModuleDict({"out": torch.nn.Linear(4, 7, bias=False)})
            self.heads["out"].weight = self.embed.weight

    ours, theirs = Net(), TorchNet()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(theirs.state_dict())  # torch tensors load directly
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())
