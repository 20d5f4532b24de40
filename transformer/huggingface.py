"""GPT-2 in the Hugging Face layout: the real GPT-2 weights in, this project's models out.

A Hugging Face model directory holds `config.json` (GPT2Config's fields) and `model.safetensors`.
GPT-2's parameters have nanoGPT's names (nanoGPT copied them from GPT-2), with two differences:

- the four matmul weights of a block (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are
  `Conv1D`s, which store their weight (in_features, out_features), the transpose of
  `nn.Linear`'s (out_features, in_features): they are transposed on the way in and out;
- the weights of GPT-2 as OpenAI released it are named without the leading "transformer." and
  come with each block's causal mask (`attn.bias`, `attn.masked_bias`), which is no parameter.

GPT-2's MLP uses the tanh approximation of GELU ("gelu_new"), so a loaded model has
`GPTConfig(gelu_approximate="tanh")`; a model trained here (exact GELU) is written with
"activation_function": "gelu", which transformers also computes exactly. GPT-2 always has
biases: a model trained with `bias=False` is written with zero biases, the same function.

    model = GPT.from_pretrained("path/to/gpt2")      # or "gpt2" through the Hugging Face cache
    model.save_pretrained("path/to/dir")             # transformers.GPT2LMHeadModel loads it

Every problem with the files (missing, truncated, a config their weights do not fit, a name
that cannot be fetched) is a CheckpointError that says what is wrong in one line.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save as safetensors_save

from minigrad.nn import Dropout
from transformer import atomic
from transformer import checkpoint as ckpt
from transformer.checkpoint import CheckpointError
from transformer.gpt import GPT, GPTConfig, parameter_shapes
from transformer.hf_tokenizer import TokenizerFileError
from transformer.hf_tokenizer import load_pretrained as load_pretrained_tokenizer
from transformer.tokenizer import Tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# what `from_pretrained("gpt2")` fetches from the hub: the model and its tokenizer, nothing else
PRETRAINED_FILES = [CONFIG_FILE, WEIGHTS_FILE, "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"]
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
CAUSAL_MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")
# GPT2Config's activation_function -> GPTConfig's gelu_approximate ("gelu_fast" is the tanh form, written out)
GELU_FORMS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh"}
# a hub name: "gpt2", "openai-community/gpt2-xl"
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
SAFETENSORS_DTYPES = {"F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
# GPTConfig's fields for what GPT-2's architecture lacks (their defaults are GPT-2's): a model using
# one has no GPT2LMHeadModel to be written as. Untied heads, no biases (zeros), either GELU and
# any layer norm eps are GPT-2's too.
NOT_IN_GPT2 = ("rotary", "norm", "qk_norm", "activation", "logit_softcap")


# ---------------------------------------------------------------- config.json


def config_from_hf(fields: dict[str, Any], source: str | os.PathLike) -> GPTConfig:
    """The GPTConfig of a GPT2Config's fields; CheckpointError naming the first one this GPT cannot be.

    The sizes are checked before anything is built from them; the layout options GPT-2's
    checkpoints never use (cross-attention, per-layer attention scaling, an MLP other than 4C
    wide) are refused rather than silently computed differently.
    """
    if not isinstance(fields, dict):
        raise CheckpointError(f"{source} is not a model config (expected a JSON object)")
    if fields.get("model_type", "gpt2") != "gpt2":
        raise CheckpointError(f'{source}: model_type is {fields["model_type"]!r}; only GPT-2 ("gpt2") loads here')
    sizes = {ours: fields.get(theirs) for ours, theirs in [
        ("vocab_size", "vocab_size"), ("block_size", "n_positions"), ("n_layer", "n_layer"),
        ("n_head", "n_head"), ("n_embd", "n_embd"),
    ]}  # fmt: skip
    ckpt.check_model_sizes(sizes, source)
    activation = fields.get("activation_function", "gelu_new")
    if activation not in GELU_FORMS:
        raise CheckpointError(f"{source}: activation_function {activation!r} is not one of {', '.join(GELU_FORMS)}")
    unsupported = {
        "n_inner": (None, 4 * sizes["n_embd"]),
        "scale_attn_weights": (True,),
        "scale_attn_by_inverse_layer_idx": (False,),
        "add_cross_attention": (False,),
        "tie_word_embeddings": (False, True),  # both load: an untied lm_head comes from the file
    }
    for name, allowed in unsupported.items():
        if fields.get(name, allowed[0]) not in allowed:
            raise CheckpointError(f"{source}: {name} = {fields[name]!r} is not supported (GPT-2 has {allowed[-1]!r})")
    eps = fields.get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, int | float) or not 0 < eps < 1:
        raise CheckpointError(f"{source}: layer_norm_epsilon must be a small positive number, got {eps!r}")
    try:
        return GPTConfig(
            **sizes,
            dropout=0.0,
            bias=True,
            tie_embeddings=bool(fields.get("tie_word_embeddings", True)),
            gelu_approximate=GELU_FORMS[activation],
            layer_norm_eps=eps,
        )
    except ValueError as e:
        raise CheckpointError(f"{source} holds no usable model config ({e})") from None


def hf_config(config: GPTConfig, tied: bool = True) -> dict[str, Any]:
    """The config.json of GPT2LMHeadModel for a model of `config`."""
    dropout = config.dropout
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu" if config.gelu_approximate == "none" else "gelu_new",
        "layer_norm_epsilon": config.layer_norm_eps,
        "resid_pdrop": dropout,
        "embd_pdrop": dropout,
        "attn_pdrop": dropout,
        "tie_word_embeddings": tied,
        # no token ends a text for this model: generation runs for as many tokens as asked, as here
        "bos_token_id": None,
        "eos_token_id": None,
        "dtype": "float32",
    }


# ---------------------------------------------------------------- model.safetensors


def our_name(hf_name: str) -> str:
    """A Hugging Face GPT-2 parameter's name here: OpenAI's release lacks the "transformer." prefix."""
    if hf_name.startswith("transformer.") or hf_name == "lm_head.weight":
        return hf_name
    return "transformer." + hf_name


def read_tensor(file, entry: tuple, data_start: int, name: str, path: Path) -> np.ndarray:
    """One tensor of an open safetensors file as float32 (bfloat16 is float32's upper half)."""
    dtype, shape, (begin, end) = entry
    file.seek(data_start + begin)
    raw = file.read(end - begin)
    if dtype == "BF16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype not in SAFETENSORS_DTYPES:
        raise CheckpointError(f"{path}: {name} is stored as {dtype}, expected floating point (F16, BF16, F32, F64)")
    return np.frombuffer(raw, SAFETENSORS_DTYPES[dtype]).astype(np.float32).reshape(shape)


def read_gpt2_weights(path: Path, config: GPTConfig) -> dict[str, np.ndarray]:
    """GPT2LMHeadModel's weights in `path` -> a state dict for `GPT(config)` (Conv1D weights transposed).

    The header's names and shapes are checked against `config` before any data is read, so a
    config the weights do not fit is an error naming the first differing tensor. An untied
    model (tie_embeddings=False) reads its lm_head.weight from the file.
    """
    model = f"the model in {path.parent / CONFIG_FILE}"
    try:
        with open(path, "rb") as file:
            tensors, _, header_len = ckpt.read_header(file, os.fstat(file.fileno()).st_size, path)
            theirs = {our_name(n): n for n in tensors if not n.endswith(CAUSAL_MASK_BUFFERS)}  # ours -> theirs
            expected = parameter_shapes(config)
            head = None
            if config.tie_embeddings:
                head = theirs.pop("lm_head.weight", None)  # tied checkpoints may store the embedding twice
                del expected["lm_head.weight"]
            shapes = {
                n: tensors[t][1][::-1] if n.endswith(CONV1D_WEIGHTS) else tensors[t][1] for n, t in theirs.items()
            }
            ckpt.check_shapes_fit(shapes, expected, str(path), model)
            state = {}
            for name, hf_name in theirs.items():
                array = read_tensor(file, tensors[hf_name], 8 + header_len, hf_name, path)
                state[name] = array.T if name.endswith(CONV1D_WEIGHTS) else array
            if head is not None and not np.array_equal(
                read_tensor(file, tensors[head], 8 + header_len, head, path), state["transformer.wte.weight"]
            ):
                raise CheckpointError(
                    f"{path}: lm_head.weight differs from transformer.wte.weight, which config.json ties it to "
                    "(tie_word_embeddings)"
                )
    except CheckpointError:
        raise  # already names the file and what is wrong with it
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:  # a tensor whose bytes do not fit its shape
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    if config.tie_embeddings:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def hf_state_dict(model: GPT) -> dict[str, np.ndarray]:
    """`model`'s parameters as GPT2LMHeadModel names and lays them out (contiguous arrays).

    Zero biases stand in for those a `bias=False` model lacks; the output layer is written only
    when it is not the token embedding (an untied head).
    """
    state = model.state_dict()
    tied = model.lm_head.weight is model.transformer.wte.weight
    with_biases = parameter_shapes(dataclasses.replace(model.config, bias=True))
    arrays = {}
    for name, shape in with_biases.items():
        if name == "lm_head.weight" and tied:
            continue
        array = state[name] if name in state else np.zeros(shape, np.float32)
        arrays[name] = np.ascontiguousarray(array.T if name.endswith(CONV1D_WEIGHTS) else array)
    return arrays


def save_pretrained(model: GPT, directory: str | os.PathLike) -> None:
    """Write config.json and model.safetensors for GPT2LMHeadModel into `directory` (created if needed).

    A model GPT-2's architecture cannot express (a field of NOT_IN_GPT2 off GPT-2's value) is a
    ValueError naming the fields, before anything is written: transformers would load another
    model from the files. Both files are written before either replaces an older one, so a
    failed write leaves the directory as it was (a CheckpointError says why).
    """
    gpt2 = GPTConfig()
    unlike = [
        f"{name}={getattr(model.config, name)!r}"
        for name in NOT_IN_GPT2
        if getattr(model.config, name) != getattr(gpt2, name)
    ]
    if unlike:
        raise ValueError(
            f"GPT-2 (transformers' GPT2LMHeadModel) has no {', '.join(unlike)}, so this model cannot be written "
            "in its layout (transformers would load a different model); keep its state_dict() instead, as a "
            "run's ckpt.safetensors does"
        )
    directory = atomic.check_writable_dir(directory)
    tied = model.lm_head.weight is model.transformer.wte.weight
    weights = safetensors_save(hf_state_dict(model), metadata={"format": "pt"})  # transformers wants the format
    atomic.atomic_write_files(
        {directory / CONFIG_FILE: atomic.json_bytes(hf_config(model.config, tied)), directory / WEIGHTS_FILE: weights}
    )


# ---------------------------------------------------------------- names and the hub cache


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded models ($HF_HUB_CACHE, else $HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def cached_snapshot(name: str) -> Path | None:
    """The cached copy of hub model `name` (its main revision) when it has a model in it, else None.

    The cache layout: models--{org}--{name}/refs/main holds a commit id, and
    snapshots/{commit}/ the files of that revision.
    """
    folder = hub_cache() / ("models--" + name.replace("/", "--"))
    try:
        commit = (folder / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = folder / "snapshots" / commit
    return snapshot if (snapshot / CONFIG_FILE).is_file() and (snapshot / WEIGHTS_FILE).is_file() else None


def pretrained_dir(name_or_dir: str | os.PathLike) -> Path:
    """The directory of a model: `name_or_dir` itself, or hub name's copy in the cache, downloaded if need be."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    name = str(name_or_dir)
    if path.exists() or not HUB_NAME.fullmatch(name):
        raise CheckpointError(
            f"{name} is neither a directory holding {CONFIG_FILE} and {WEIGHTS_FILE} nor a model name"
        )
    cached = cached_snapshot(name)
    if cached is not None:
        return cached
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(
            f"{name} is not a directory, nor in the Hugging Face cache ({hub_cache()}); "
            "pip install huggingface_hub to download it, or pass a directory"
        ) from None
    try:
        return Path(snapshot_download(name, allow_patterns=PRETRAINED_FILES))
    except Exception as e:  # offline, unknown name, refused: huggingface_hub and its HTTP client raise many kinds
        reason = " ".join(str(e).split()) or type(e).__name__
        reason = reason if len(reason) <= 200 else reason[:200] + "..."
        raise CheckpointError(
            f"cannot fetch {name} from the Hugging Face Hub and it is not in the cache ({reason}); "
            f"offline, pass a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}"
        ) from None


class ZeroInitialisation:
    """Stands in for a np.random.Generator while a model is built only to receive loaded weights.

    Every draw is float32 zeros, so building GPT-2 small costs no 124M random numbers (and no
    float64 copies of them) that the file's weights would overwrite at once; PyTorch's
    `torch.nn.utils.skip_init` serves the same purpose. Only the initialisation's draws exist.
    """

    def normal(self, loc: float = 0.0, scale: float = 1.0, size=None) -> np.ndarray:
        return np.zeros(size, np.float32)

    def uniform(self, low: float = 0.0, high: float = 1.0, size=None) -> np.ndarray:
        return np.zeros(size, np.float32)

    def standard_normal(self, size=None) -> np.ndarray:
        return np.zeros(size, np.float32)


def load_pretrained(name_or_dir: str | os.PathLike) -> GPT:
    """GPT-2 (any size) from a directory or hub name, in eval mode; its config comes from config.json."""
    directory = pretrained_dir(name_or_dir)
    config = config_from_hf(ckpt.read_json(directory / CONFIG_FILE), directory / CONFIG_FILE)
    state = read_gpt2_weights(directory / WEIGHTS_FILE, config)
    model = GPT(config, rng=ZeroInitialisation())  # every weight is replaced by the file's
    model.load_state_dict(state, strict=True)
    for module in model.modules():  # dropout, if trained further, draws from minigrad's generator
        if isinstance(module, Dropout):
            module.rng = None
    return model.eval()


# ---------------------------------------------------------------- fine-tuning


def finetuning_start(
    name_or_dir: str | os.PathLike, block_size: int, dropout: float
) -> tuple[GPTConfig, dict[str, np.ndarray], Tokenizer]:
    """What `train --init-from` starts from: the model's config and weights, and its tokenizer.

    As nanoGPT's crop_block_size, a block shorter than the model's keeps the first block_size
    position embeddings. CheckpointError if the block is longer than the model's, or the
    tokenizer's size differs from the embedding's number of rows.
    """
    directory = pretrained_dir(name_or_dir)
    config = config_from_hf(ckpt.read_json(directory / CONFIG_FILE), directory / CONFIG_FILE)
    if block_size > config.block_size:
        raise CheckpointError(f"--block-size {block_size} is longer than {directory}'s model ({config.block_size})")
    try:
        tokenizer = load_pretrained_tokenizer(directory)
    except TokenizerFileError as e:
        raise CheckpointError(str(e)) from None
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{directory}: the tokenizer has {tokenizer.vocab_size} tokens, more than the model's "
            f"{config.vocab_size} embedding rows"
        )
    if tokenizer.vocab_size < config.vocab_size:  # a run's sampler draws from every row, and each must decode
        raise CheckpointError(
            f"{directory}: the model's embedding has {config.vocab_size} rows (padded?) but the tokenizer only "
            f"{tokenizer.vocab_size} tokens; a run needs one token per row"
        )
    state = read_gpt2_weights(directory / WEIGHTS_FILE, config)
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:block_size]
    return dataclasses.replace(config, block_size=block_size, dropout=dropout), state, tokenizer
