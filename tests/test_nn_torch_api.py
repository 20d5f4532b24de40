"""Module's methods and the containers' against torch.nn's: the same calls, written for torch,
give the same names, the same state dicts and the same errors here.

Each test builds the same structure with `minigrad.nn` and with `torch.nn` (the function
`build(nn)` below takes either module) and compares what the two report.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from minigrad import Tensor, nn

torch = pytest.importorskip("torch")


def names(pairs) -> list[str]:
    return [name for name, _ in pairs]


def shared(n):
    """One Linear under two names, and a Parameter tied across two layers (GPT's wte/lm_head)."""
    model = n.Module()
    model.a = n.Linear(2, 3)
    model.b = model.a
    model.wte, model.lm_head = n.Embedding(5, 2), n.Linear(2, 5, bias=False)
    model.lm_head.weight = model.wte.weight
    return model


def nested(n):
    model = n.Sequential(n.Linear(2, 3), n.BatchNorm1d(3), n.Sequential(n.Linear(3, 1)))
    model.register_buffer("scale", (Tensor if n is nn else torch.tensor)(np.ones(1)), persistent=False)
    return model


# ---------------------------------------------------------------- names, shared modules


def test_a_module_shared_under_two_names_is_saved_under_both_as_torch():
    ours, theirs = shared(nn), shared(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # a.*, b.*, wte.weight, lm_head.weight
    for remove_duplicate in (True, False):
        for method in ("named_modules", "named_parameters"):
            mine = getattr(ours, method)(remove_duplicate=remove_duplicate)
            assert names(mine) == names(getattr(theirs, method)(remove_duplicate=remove_duplicate)), method
    assert names(ours.named_children()) == names(theirs.named_children()) == ["a", "wte", "lm_head"]
    assert len(list(ours.modules(remove_duplicate=False))) == len(list(theirs.modules(remove_duplicate=False)))


def test_torchs_state_dict_of_shared_and_tied_tensors_loads_strictly_both_ways():
    ours, theirs = shared(nn), shared(torch.nn)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())
    theirs.load_state_dict({k: torch.as_tensor(v) for k, v in shared(nn).state_dict().items()}, strict=True)
    with pytest.raises(nn.StateDictError, match="missing keys: b.weight, b.bias"):
        ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if not k.startswith("b.")})


def test_named_members_take_torchs_arguments_in_torchs_order():
    ours, theirs = nested(nn), nested(torch.nn)
    for prefix in ("", "net"):
        for recurse in (True, False):
            calls = [("named_parameters", (prefix, recurse)), ("named_buffers", (prefix, recurse))]
            for method, arguments in calls:  # positionally: (prefix, recurse, remove_duplicate)
                assert names(getattr(ours, method)(*arguments)) == names(getattr(theirs, method)(*arguments))
    assert len(list(ours.parameters(recurse=False))) == len(list(theirs.parameters(recurse=False))) == 0
    assert len(list(ours[1].buffers(recurse=False))) == len(list(theirs[1].buffers(recurse=False))) == 3
    assert names(ours.named_buffers()) == names(theirs.named_buffers())  # non-persistent ones too
    memo = set()
    assert names(ours.named_modules(memo, "m")) == names(theirs.named_modules(set(), "m"))
    assert memo == set(ours.modules())  # torch's memo: the modules met


def test_state_dict_takes_destination_prefix_and_keep_vars():
    ours, theirs = nested(nn), nested(torch.nn)
    assert list(ours.state_dict(prefix="net.")) == list(theirs.state_dict(prefix="net."))
    destination = {"earlier": 1}
    assert ours.state_dict(destination, "x") is destination
    assert list(destination) == list(theirs.state_dict(destination={"earlier": 1}, prefix="x"))
    kept = ours.state_dict(keep_vars=True)
    assert kept["0.weight"] is ours[0].weight and kept["1.running_mean"] is ours[1].running_mean
    tied = shared(nn).state_dict(keep_vars=True)
    assert tied["wte.weight"] is tied["lm_head.weight"]
    assert type(ours.state_dict()["0.weight"]) is np.ndarray


# ---------------------------------------------------------------- modes, gradients, registration


def test_zero_grad_set_to_none_false_fills_zeros_in_place():
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ours(Tensor(np.ones((1, 3)))).sum().backward()
    theirs(torch.ones(1, 3)).sum().backward()
    grad = ours.weight.grad
    ours.zero_grad(set_to_none=False)
    theirs.zero_grad(set_to_none=False)
    assert ours.weight.grad is grad
    np.testing.assert_array_equal(grad, theirs.weight.grad.numpy())
    np.testing.assert_array_equal(grad, 0.0)
    ours.zero_grad()
    assert ours.weight.grad is None


@pytest.mark.parametrize("mode", ["no", 1, None, np.bool_(True)])
def test_train_takes_a_bool_only(mode):
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        torch.nn.Linear(1, 1).train(mode)
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        nn.Linear(1, 1).train(mode)


@pytest.mark.parametrize("name", ["", "a.b", "training", "forward", "weight", "sub", 3])
@pytest.mark.parametrize("method", ["register_buffer", "register_parameter"])
def test_buffer_and_parameter_names_are_checked_as_torch(name, method):
    """The same names are refused with the same exception type; names taken by the same kind
    of member may be registered again."""

    def error(n, make):
        module = n.Linear(2, 2)
        module.sub = n.ReLU()
        try:
            getattr(module, method)(name, None)
            getattr(module, method)(name, make())
        except (KeyError, TypeError) as refused:
            return type(refused)
        return None

    mine = error(nn, lambda: (Tensor if method == "register_buffer" else nn.Parameter)(np.ones(1)))
    theirs = error(torch.nn, lambda: (torch.ones if method == "register_buffer" else torch.nn.Parameter)(torch.ones(1)))
    assert mine is theirs


def test_a_registered_parameter_is_a_parameter_of_the_module():
    ours, theirs = nn.Module(), torch.nn.Module()
    ours.register_parameter("w", nn.Parameter(np.ones(2)))
    theirs.register_parameter("w", torch.nn.Parameter(torch.ones(2)))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["w"]
    with pytest.raises(TypeError, match="must be a Parameter or None"):
        ours.register_parameter("v", Tensor(np.ones(2)))


# ---------------------------------------------------------------- inplace


INPLACE = {
    "ReLU": (),
    "SiLU": (),
    "Mish": (),
    "LeakyReLU": (0.1,),
    "ELU": (0.5,),
    "Dropout": (0.3,),
}


@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_false_is_taken_and_inplace_true_refused(name):
    settings = INPLACE[name]
    ours = getattr(nn, name)(*settings, False).eval()
    theirs = getattr(torch.nn, name)(*settings, False).eval()
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(
        ours(Tensor(x, dtype=np.float64)).data, theirs(torch.tensor(x)).numpy(), rtol=1e-12, atol=1e-15
    )
    assert ours.inplace is theirs.inplace is False
    with pytest.raises(ValueError, match=rf"{name}\(inplace=True\) would overwrite its input"):
        getattr(nn, name)(*settings, True)
    with pytest.raises(ValueError, match="pass inplace=False"):
        getattr(nn, name)(*settings, inplace=True)


# ---------------------------------------------------------------- containers


def layer_names(container) -> list[str]:
    """Each child's name and what it is: the numbering torch gives after an edit."""
    return [f"{key}:{type(child).__name__}" for key, child in container._modules.items()]


def edits(n):
    """The same edits on torch's containers and ours; the names after each, for comparison."""
    seen = []
    layers = n.ModuleList([n.ReLU(), n.Tanh(), n.Sigmoid()])
    layers.insert(1, n.GELU())
    layers.insert(4, n.SiLU())
    seen.append(layer_names(layers))
    del layers[0]
    del layers[-1]
    seen.append(layer_names(layers))
    layers += [n.Linear(2, 2)]
    del layers[::2]
    seen.append(layer_names(layers))
    seen.append(type(layers.pop(0)).__name__)
    seen.append(layer_names(layers))

    seq = n.Sequential(n.Linear(2, 3), n.ReLU(), n.Linear(3, 1))
    seq.insert(-1, n.GELU()).insert(0, n.Tanh())
    seen.append(list(seq.state_dict()))
    seen.append(type(seq.pop(-2)).__name__)
    del seq[1:3]
    seq.extend([n.Sigmoid(), n.Linear(1, 2)])
    seq[0] = n.SiLU()
    seen.append(layer_names(seq))
    seen.append(list(seq.state_dict()))

    heads = n.ModuleDict([("a", n.ReLU()), ("b", n.Linear(2, 2))])
    seen.append(type(heads.pop("a")).__name__)
    seen.append(list(heads.state_dict()))
    heads.clear()
    seen.append(len(heads))
    return seen


def test_container_edits_name_children_as_torch():
    assert edits(nn) == edits(torch.nn)


def test_container_edits_refuse_what_they_cannot_do():
    for container in (nn.ModuleList([nn.ReLU()]), nn.Sequential(nn.ReLU())):
        with pytest.raises(IndexError, match="out of range for inserting into a"):
            container.insert(3, nn.ReLU())
        with pytest.raises(TypeError, match="insert needs a Module, got int"):
            container.insert(0, 3)
        with pytest.raises(IndexError, match="index 1 is out of range"):
            del container[1]
    with pytest.raises(KeyError):
        torch.nn.Sequential(OrderedDict(a=torch.nn.ReLU(), b=torch.nn.Tanh())).insert(0, torch.nn.ReLU())
    named = nn.Sequential(OrderedDict(a=nn.ReLU(), b=nn.Tanh()))
    with pytest.raises(KeyError, match=r"renames children 0 to 1 by number, but they are named \['a', 'b'\]"):
        named.insert(0, nn.ReLU())
    theirs = torch.nn.Sequential(OrderedDict(a=torch.nn.ReLU(), b=torch.nn.Tanh())).insert(2, torch.nn.GELU())
    assert layer_names(named.insert(2, nn.GELU())) == layer_names(theirs) == ["a:ReLU", "b:Tanh", "2:GELU"]


# ---------------------------------------------------------------- Embedding.from_pretrained


@pytest.mark.parametrize("freeze", [True, False])
def test_embedding_from_pretrained_matches_torch(freeze):
    table = np.random.default_rng(0).standard_normal((5, 3))
    ours = nn.Embedding.from_pretrained(Tensor(table, dtype=np.float64), freeze, 1)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(table), freeze, 1)
    ids = np.array([[0, 1, 4], [1, 1, 2]])
    out, tout = ours(ids), theirs(torch.as_tensor(ids))
    np.testing.assert_array_equal(out.data, tout.detach().numpy())  # the padding row kept as given
    assert ours.weight.requires_grad is theirs.weight.requires_grad is (not freeze)
    assert ours.weight.dtype == np.float64 and ours.padding_idx == theirs.padding_idx == 1
    if not freeze:
        g = np.random.default_rng(1).standard_normal(out.shape)
        out.backward(g)
        tout.backward(torch.tensor(g))
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-12, atol=1e-15)
        assert not ours.weight.grad[1].any()
    assert nn.Embedding.from_pretrained(table).weight.dtype == np.float32  # an array: a Tensor's dtype policy


@pytest.mark.parametrize(
    "option", [dict(max_norm=1.0), dict(scale_grad_by_freq=True), dict(sparse=True)], ids=lambda o: next(iter(o))
)
def test_embedding_from_pretrained_refuses_what_it_cannot_honour(option):
    torch.nn.Embedding.from_pretrained(torch.ones(4, 2), **option)  # torch has it
    with pytest.raises(ValueError, match=f"minigrad's Embedding has no {next(iter(option))}; leave it unset"):
        nn.Embedding.from_pretrained(np.ones((4, 2)), **option)
    with pytest.raises(ValueError, match=r"2-D \(num_embeddings, embedding_dim\), got shape \(4,\)"):
        nn.Embedding.from_pretrained(np.ones(4))
