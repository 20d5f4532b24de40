"""The Hugging Face layout without transformers: files written here load back, and every broken
file, wrong config or unreachable name is one clear error (exit status 2 on the command line).

tests/test_huggingface_parity.py holds the same files up against transformers itself.
"""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transformer import GPT, GPTConfig
from transformer import checkpoint as ckpt
from transformer.cli import main
from transformer.hf_tokenizer import BYTE_TO_CHAR, TokenizerFileError, token_text
from transformer.huggingface import CONFIG_FILE, NOT_IN_GPT2, WEIGHTS_FILE, config_from_hf, hf_config
from transformer.sample import load_run
from transformer.tokenizer import BPETokenizer, CharTokenizer

REPO = Path(__file__).resolve().parent.parent
CORPUS = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer\n" * 40


def small_gpt2(seed=0, **fields) -> GPT:
    """A GPT-2-shaped model (tanh GELU, as GPT-2) with random weights and biases."""
    fields = dict(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=16, gelu_approximate="tanh") | fields
    model = GPT(GPTConfig(**fields), rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for name, param in model.named_parameters():
        if name.endswith("bias") or ".ln_" in name:  # GPT-2's biases and gains are not 0 and 1 once trained
            param.data[...] = rng.normal(0.0, 0.1, param.shape)
    return model.eval()


@pytest.fixture
def pretrained_dir(tmp_path):
    """A directory in GPT-2's layout: a small random model and a byte-level BPE of 300 tokens."""
    tokenizer = BPETokenizer.train(CORPUS, 299, pattern="gpt2")
    tokenizer = BPETokenizer(tokenizer.merges, "gpt2", ["<|endoftext|>"])
    small_gpt2().save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    return tmp_path / "gpt2"


def test_a_saved_model_loads_back_with_the_same_logits(tmp_path):
    model = small_gpt2()
    model.save_pretrained(tmp_path)
    loaded = GPT.from_pretrained(tmp_path)
    assert loaded.config == model.config and not loaded.training
    idx = np.random.default_rng(0).integers(0, 300, (2, 32))
    np.testing.assert_array_equal(loaded(idx)[0].data, model(idx)[0].data)


def test_an_untied_model_loads_back_with_its_own_output_layer(tmp_path):
    model = small_gpt2(tie_embeddings=False)
    model.save_pretrained(tmp_path)
    loaded = GPT.from_pretrained(tmp_path)
    assert loaded.config == model.config and loaded.lm_head.weight is not loaded.transformer.wte.weight
    np.testing.assert_array_equal(loaded.lm_head.weight.data, model.lm_head.weight.data)
    idx = np.random.default_rng(0).integers(0, 300, (2, 32))
    np.testing.assert_array_equal(loaded(idx)[0].data, model(idx)[0].data)


@pytest.mark.parametrize(
    "field, value", [("rotary", True), ("norm", "rmsnorm"), ("qk_norm", True), ("activation", "relu2"),
                     ("logit_softcap", 15.0)],
)  # fmt: skip
def test_a_model_gpt2_cannot_be_is_refused_before_anything_is_written(tmp_path, field, value):
    """GPT2LMHeadModel has no such part: files written anyway would load as another model."""
    with pytest.raises(ValueError, match=re.escape(f"has no {field}={value!r}")):
        small_gpt2(**{field: value}).save_pretrained(tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_every_config_field_is_written_or_refused():
    """A new GPTConfig field must be either expressible in GPT-2's files or in NOT_IN_GPT2."""
    written = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "tie_embeddings",
               "gelu_approximate", "layer_norm_eps", "fused"}  # fmt: skip
    assert {field.name for field in dataclasses.fields(GPTConfig)} == written | set(NOT_IN_GPT2)


def test_the_files_have_gpt2s_layout(tmp_path):
    small_gpt2(bias=False).save_pretrained(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert config["n_positions"] == 32 and config["activation_function"] == "gelu_new"
    arrays, metadata = ckpt.load_arrays(tmp_path / WEIGHTS_FILE)
    assert metadata["format"] == "pt"  # transformers refuses safetensors files without it
    assert arrays["transformer.h.0.attn.c_attn.weight"].shape == (16, 48)  # Conv1D: (in, out)
    assert arrays["transformer.h.1.mlp.c_fc.weight"].shape == (16, 64)
    assert not arrays["transformer.h.0.mlp.c_fc.bias"].any()  # bias=False: zero biases, the same function
    assert "lm_head.weight" not in arrays  # tied to the token embedding


def test_a_model_without_biases_loads_back_as_the_same_function(tmp_path):
    model = GPT(
        GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=8, bias=False), rng=np.random.default_rng(0)
    )
    model.save_pretrained(tmp_path)
    idx = np.arange(16).reshape(2, 8)
    np.testing.assert_array_equal(GPT.from_pretrained(tmp_path)(idx)[0].data, model.eval()(idx)[0].data)


def test_openai_names_without_the_prefix_and_with_mask_buffers_load(tmp_path):
    """OpenAI's GPT-2 release names its weights h.0.attn... and stores each block's causal mask."""
    model = small_gpt2()
    model.save_pretrained(tmp_path)
    arrays, _ = ckpt.load_arrays(tmp_path / WEIGHTS_FILE)
    renamed = {name.removeprefix("transformer."): array for name, array in arrays.items()}
    renamed["h.0.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), np.float32))
    renamed["lm_head.weight"] = arrays["transformer.wte.weight"]  # a tied head stored twice
    from safetensors.numpy import save_file

    save_file(renamed, tmp_path / WEIGHTS_FILE, metadata={"format": "pt"})
    idx = np.arange(32).reshape(1, 32)
    np.testing.assert_array_equal(GPT.from_pretrained(tmp_path)(idx)[0].data, model(idx)[0].data)


def test_half_precision_weights_load_as_float32(tmp_path):
    model = small_gpt2()
    model.save_pretrained(tmp_path)
    arrays, _ = ckpt.load_arrays(tmp_path / WEIGHTS_FILE)
    from safetensors.numpy import save_file

    save_file({k: a.astype(np.float16) for k, a in arrays.items()}, tmp_path / WEIGHTS_FILE, metadata={"format": "pt"})
    loaded = GPT.from_pretrained(tmp_path)
    wte = loaded.transformer.wte.weight.data
    assert wte.dtype == np.float32
    np.testing.assert_array_equal(wte, model.transformer.wte.weight.data.astype(np.float16).astype(np.float32))


def test_the_config_is_read_not_assumed():
    config = config_from_hf(
        {"model_type": "gpt2", "vocab_size": 7, "n_positions": 9, "n_embd": 12, "n_layer": 3, "n_head": 4,
         "activation_function": "gelu", "layer_norm_epsilon": 1e-6},
        "config.json",
    )  # fmt: skip
    assert (config.vocab_size, config.block_size, config.n_embd, config.n_layer, config.n_head) == (7, 9, 12, 3, 4)
    assert config.gelu_approximate == "none" and config.layer_norm_eps == 1e-6 and config.bias
    assert config_from_hf(hf_config(config), "x") == config
    untied = dataclasses.replace(config, tie_embeddings=False)
    assert config_from_hf(hf_config(untied, tied=False), "x") == untied


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_type": "llama"}, "only GPT-2"),
        ({"activation_function": "relu"}, "activation_function 'relu'"),
        ({"n_inner": 100}, "n_inner = 100"),
        ({"n_layer": 0}, "model.n_layer must be an integer"),
        ({"n_embd": 15}, "n_embd (15) must be a multiple of n_head"),
    ],
)
def test_configs_this_gpt_cannot_be_are_refused(change, message):
    fields = hf_config(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=2, n_embd=8)) | change
    with pytest.raises(ckpt.CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_from_hf(fields, "config.json")


def test_truncated_weights_are_a_clear_error(pretrained_dir):
    data = (pretrained_dir / WEIGHTS_FILE).read_bytes()
    (pretrained_dir / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="is not a readable safetensors file") as error:
        GPT.from_pretrained(pretrained_dir)
    assert str(error.value).count("is not a readable safetensors file") == 1, error.value


def test_a_config_the_weights_do_not_fit_names_the_first_tensor(pretrained_dir):
    config = json.loads((pretrained_dir / CONFIG_FILE).read_text())
    (pretrained_dir / CONFIG_FILE).write_text(json.dumps(config | {"n_layer": 3}))
    with pytest.raises(ckpt.CheckpointError, match="lacks transformer.h.2.ln_1.weight"):
        GPT.from_pretrained(pretrained_dir)
    (pretrained_dir / CONFIG_FILE).write_text(json.dumps(config | {"n_embd": 32}))
    with pytest.raises(ckpt.CheckpointError, match=r"transformer.wte.weight has shape \(300, 16\)"):
        GPT.from_pretrained(pretrained_dir)


def test_an_unknown_name_that_cannot_be_fetched_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: the name must be fetched, and cannot be
    with pytest.raises(ckpt.CheckpointError, match="pass a directory"):
        GPT.from_pretrained("no-such-org-for-minigrad/no-such-model")
    with pytest.raises(ckpt.CheckpointError, match="neither a directory"):
        GPT.from_pretrained("not a name: spaces")


def test_a_name_in_the_hugging_face_cache_loads_from_it(tmp_path, monkeypatch):
    """huggingface_hub's layout: models--{org}--{name}/refs/main names the snapshot in snapshots/."""
    folder = tmp_path / "models--some-org--tiny-gpt2"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    model = small_gpt2()
    model.save_pretrained(folder / "snapshots" / "0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    idx = np.arange(8).reshape(1, 8)
    np.testing.assert_array_equal(GPT.from_pretrained("some-org/tiny-gpt2")(idx)[0].data, model(idx)[0].data)


# ---------------------------------------------------------------- tokenizers


def test_gpt2s_byte_table():
    assert len(set(BYTE_TO_CHAR.values())) == 256 and sorted(BYTE_TO_CHAR) == list(range(256))
    assert BYTE_TO_CHAR[ord("A")] == "A" and BYTE_TO_CHAR[32] == "Ġ" and BYTE_TO_CHAR[10] == "Ċ"
    assert list(BYTE_TO_CHAR)[:3] == [33, 34, 35]  # GPT-2's ids 0, 1, 2 are "!", '"', "#"
    assert token_text(b" the\n") == "ĠtheĊ"


def test_gpt2s_own_files_encode_with_gpt2s_ids(tmp_path):
    """vocab.json + merges.txt as GPT-2 has them: the bytes in the table's order, then merges, then <|endoftext|>."""
    merges = ["Ġ t", "h e", "Ġt he"]
    vocab = {c: i for i, c in enumerate(BYTE_TO_CHAR.values())} | {"Ġt": 256, "he": 257, "Ġthe": 258}
    vocab["<|endoftext|>"] = 259
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = BPETokenizer.from_pretrained(tmp_path)
    ids = tokenizer.encode("A the<|endoftext|>!").tolist()
    assert ids == [vocab["A"], 258, 259, vocab["!"]]
    assert tokenizer.decode(ids) == "A the<|endoftext|>!"
    assert tokenizer.chars_per_token()[258] == 4 and tokenizer.chars_per_token()[vocab["A"]] == 1
    assert BPETokenizer.from_json(tokenizer.to_json()) == tokenizer  # the numbering travels with a run


def test_a_saved_bpe_tokenizer_reads_back(tmp_path):
    tokenizer = BPETokenizer(BPETokenizer.train(CORPUS, 280).merges, special_tokens=["<|endoftext|>"])
    tokenizer.save_pretrained(tmp_path)
    assert BPETokenizer.from_pretrained(tmp_path) == tokenizer
    gpt2_style = BPETokenizer(BPETokenizer.train(CORPUS, 280, pattern="gpt2").merges, "gpt2")
    gpt2_style.save_pretrained(tmp_path / "gpt2")
    (tmp_path / "gpt2" / "tokenizer.json").unlink()  # GPT-2's own two files alone
    assert BPETokenizer.from_pretrained(tmp_path / "gpt2") == gpt2_style


def test_a_saved_char_tokenizer_reads_back(tmp_path):
    tokenizer = CharTokenizer.from_text(CORPUS)
    tokenizer.save_pretrained(tmp_path)
    assert CharTokenizer.from_pretrained(tmp_path) == tokenizer
    with pytest.raises(TokenizerFileError, match="holds a CharTokenizer, not a BPETokenizer"):
        BPETokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "tokenizer.json").write_text('{"model": {"type": "BPE", "vo'), "is not valid JSON"),
        (lambda d: (d / "tokenizer.json").unlink(), "holds no tokenizer"),
        (lambda d: edit_json(d / "tokenizer.json", lambda t: t["model"]["vocab"].pop("Ġ")), "lacks the byte token 'Ġ'"),
        (lambda d: edit_json(d / "tokenizer.json", lambda t: t.update(normalizer={"type": "NFC"})), "normalizer"),
        (lambda d: edit_json(d / "tokenizer.json", lambda t: t["model"]["merges"].reverse()), "no earlier merge made"),
    ],
)
def test_broken_tokenizer_files_are_clear_errors(tmp_path, damage, message):
    BPETokenizer(BPETokenizer.train(CORPUS, 280).merges).save_pretrained(tmp_path)
    damage(tmp_path)
    with pytest.raises(TokenizerFileError, match=message):
        BPETokenizer.from_pretrained(tmp_path)


def edit_json(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


# ---------------------------------------------------------------- the command line


def cli(*args, env=None):
    """The command line in a subprocess: (exit status, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)} | (env or {})
    done = subprocess.run([sys.executable, "-m", "transformer", *args], capture_output=True, text=True, env=env)
    return done.returncode, done.stderr


def test_fine_tune_sample_resume_and_export(pretrained_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    run = tmp_path / "run"
    flags = ["--block-size", "16", "--batch-size", "4", "--eval-interval", "2", "--eval-iters", "2"]
    assert main(["train", "--data", str(corpus), "--out", str(run), "--init-from", str(pretrained_dir),
                 "--max-iters", "2", "--learning-rate", "0", "--min-lr", "0", *flags]) == 0  # fmt: skip
    model, tokenizer = load_run(run)
    assert model.config.gelu_approximate == "tanh" and model.config.block_size == 16
    assert tokenizer == BPETokenizer.from_pretrained(pretrained_dir)
    pretrained = GPT.from_pretrained(pretrained_dir)
    # learning rate 0: the run holds the pretrained weights, its position embeddings cropped to the block
    np.testing.assert_array_equal(
        model.transformer.h[1].mlp.c_fc.weight.data, pretrained.transformer.h[1].mlp.c_fc.weight.data
    )
    np.testing.assert_array_equal(model.transformer.wpe.weight.data, pretrained.transformer.wpe.weight.data[:16])
    assert main(["train", "--out", str(run), "--resume", "--max-iters", "4"]) == 0
    capsys.readouterr()
    assert main(["sample", "--out", str(run), "--start", "to be", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("to be")
    assert main(["export", "--out", str(run), "--to", str(tmp_path / "hf")]) == 0
    exported = GPT.from_pretrained(tmp_path / "hf")
    idx = np.arange(16).reshape(1, 16)
    np.testing.assert_array_equal(exported(idx)[0].data, load_run(run)[0](idx)[0].data)
    assert BPETokenizer.from_pretrained(tmp_path / "hf") == tokenizer


def one_line_error(status, stderr, message):
    assert status == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert message in stderr, stderr


def test_command_line_errors_are_one_line(pretrained_dir, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    train = ["train", "--data", str(corpus), "--out", str(tmp_path / "run"), "--block-size", "16"]
    one_line_error(*cli(*train, "--init-from", str(pretrained_dir), "--n-layer", "4"), "--n-layer comes from the model")
    one_line_error(*cli(*train, "--init-from", str(pretrained_dir), "--block-size", "64"), "is longer than")
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    one_line_error(*cli(*train, "--init-from", "no-such-org/no-such-model", env=offline), "cannot fetch no-such-org")

    config = json.loads((pretrained_dir / CONFIG_FILE).read_text())
    (pretrained_dir / CONFIG_FILE).write_text(json.dumps(config | {"n_head": 3}))
    one_line_error(*cli(*train, "--init-from", str(pretrained_dir)), "must be a multiple of n_head")
    (pretrained_dir / CONFIG_FILE).write_text(json.dumps(config | {"vocab_size": 299}))
    one_line_error(*cli(*train, "--init-from", str(pretrained_dir)), "300 tokens, more than the model's 299")
    (pretrained_dir / CONFIG_FILE).write_text(json.dumps(config))
    data = (pretrained_dir / WEIGHTS_FILE).read_bytes()
    (pretrained_dir / WEIGHTS_FILE).write_bytes(data[:-100])
    one_line_error(*cli(*train, "--init-from", str(pretrained_dir)), "is not a readable safetensors file")
    (pretrained_dir / "tokenizer.json").write_text("{")
    one_line_error(*cli(*train, "--init-from", str(pretrained_dir)), "is not valid JSON")
    assert not (tmp_path / "run" / ckpt.CONFIG_FILE).exists()  # nothing was written by any of them


def test_export_refuses_a_run_gpt2_cannot_be(tmp_path, capsys):
    (tmp_path / "corpus.txt").write_text(CORPUS)
    flags = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
             "--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1",
             "--rotary", "--norm", "rmsnorm"]  # fmt: skip
    assert main(["train", "--data", str(tmp_path / "corpus.txt"), "--out", str(tmp_path / "run"), *flags]) == 0
    capsys.readouterr()
    assert main(["export", "--out", str(tmp_path / "run"), "--to", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    one_line_error(2, err, "has no rotary=True, norm='rmsnorm'")
    assert not (tmp_path / "hf").exists()


def test_export_refuses_its_own_run_directory(tmp_path):
    one_line_error(*cli("export", "--out", str(tmp_path), "--to", str(tmp_path)), "--to must be another directory")
    one_line_error(*cli("export", "--out", str(tmp_path / "none"), "--to", str(tmp_path / "hf")), "no run in")


def test_a_truncated_merges_file_is_a_clear_error(tmp_path):
    """Fewer merges than the vocabulary holds: the tokens of the lost merges are made by nothing."""
    BPETokenizer(BPETokenizer.train(CORPUS, 280, pattern="gpt2").merges, "gpt2").save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    lines = (tmp_path / "merges.txt").read_text().splitlines()
    (tmp_path / "merges.txt").write_text("\n".join(lines[: len(lines) // 2]))
    with pytest.raises(TokenizerFileError, match="is neither a byte, nor made by a merge, nor special"):
        BPETokenizer.from_pretrained(tmp_path)
