"""This project against transformers' GPT-2 and tokenizers, both ways (skipped without them).

Logit tolerance. Every logit is the end of a chain of float32 matmuls: per block, the
q/k/v projection, the scores, their weighted sum, the output projection and the MLP's two
layers, each a sum of at most 4C products. A float32 sum of n terms, in any order and on any
BLAS kernel, is off by at most about n·ε·Σ|terms| (ε = 2⁻²³). Counting 2·n_layer + 1 such
stages of at most 4C terms, with logits and activations of order one (layer norm keeps them
there), the two implementations may differ by ε · 4C · (2·n_layer + 1) · max(1, max|logit|).
For transformers' GPT-2s below that is under 1e-4; the models written from here have larger
weights, logits near 6 and so a tolerance near 4e-4 (they differ by about 4e-6).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from transformer import GPT, GPTConfig  # noqa: E402
from transformer.cli import main  # noqa: E402
from transformer.sample import generate, load_run  # noqa: E402
from transformer.tokenizer import BPETokenizer, CharTokenizer  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)
CONFIGS = [  # (vocab, positions, n_embd, n_layer, n_head, activation, layer-norm epsilon)
    (101, 32, 32, 2, 4, "gelu_new", 1e-5),
    (64, 16, 24, 3, 2, "gelu", 1e-5),
    (300, 24, 16, 4, 1, "gelu_new", 1e-6),
]


def tolerance(n_embd: int, n_layer: int, logits: np.ndarray) -> float:
    """ε · 4C · (2·n_layer + 1) · max(1, max|logit|): see the module's docstring."""
    return EPS32 * 4 * n_embd * (2 * n_layer + 1) * max(1.0, float(np.abs(logits).max()))


def hf_logits(model, idx: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(idx)).logits.numpy()


def hf_greedy(model, idx: np.ndarray, n: int) -> np.ndarray:
    with torch.no_grad():
        out = model.generate(torch.tensor(idx), attention_mask=torch.ones(idx.shape, dtype=torch.long),
                             max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)  # fmt: skip
    return out.numpy()


def greedy_margins(model: GPT, tokens: np.ndarray, prompt_len: int) -> np.ndarray:
    """How far each greedy choice led the runner-up, along the sequence `tokens` (1, T)."""
    logits = model(tokens[:, :-1])[0].data[0, prompt_len - 1 :]  # (n, V): the logits each choice was made from
    top2 = np.sort(logits, axis=-1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def assert_same_greedy_tokens(ours: GPT, theirs, idx: np.ndarray, n: int, tol: float, at_least: int = 8):
    """Greedy continuations agree up to the first choice that leads its runner-up by less than
    twice the logit tolerance: that one could go either way on another BLAS, and all after it.
    At least `at_least` choices must be clear, or the test would say little."""
    here = generate(ours, idx, n, temperature=0)
    margins = greedy_margins(ours, here, idx.shape[1])
    clear = int(np.argmax(margins <= 2 * tol)) if (margins <= 2 * tol).any() else n
    assert clear >= min(at_least, n), f"only {clear} of {n} greedy choices are clear of a near tie"
    compared = idx.shape[1] + clear + 1 if clear < n else idx.shape[1] + n  # the first unclear choice too
    np.testing.assert_array_equal(hf_greedy(theirs, idx, n)[:, :compared], here[:, :compared])


@pytest.mark.parametrize("vocab, positions, n_embd, n_layer, n_head, activation, eps", CONFIGS)
def test_gpt2_from_transformers_gives_its_logits_and_greedy_tokens(
    tmp_path, vocab, positions, n_embd, n_layer, n_head, activation, eps
):
    torch.manual_seed(n_layer)
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        activation_function=activation, layer_norm_epsilon=eps, bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    theirs = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # GPT-2's biases and norms start at 0 and 1; trained ones are not, so neither are these
        for name, param in theirs.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                param.add_(0.1 * torch.randn_like(param))
    theirs.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    idx = np.random.default_rng(0).integers(0, vocab, (3, positions))
    expected = hf_logits(theirs, idx)
    tol = tolerance(n_embd, n_layer, expected)
    assert tol <= 1e-4
    np.testing.assert_allclose(ours(idx)[0].data, expected, rtol=0, atol=tol)
    assert_same_greedy_tokens(ours, theirs, idx[:1, :4], positions - 4, tol)


def test_an_untied_gpt2_from_transformers_gives_its_logits(tmp_path):
    """tie_word_embeddings=False: lm_head.weight is a tensor of its own in the file, and is read from it."""
    torch.manual_seed(5)
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=24, n_layer=2, n_head=2,
                                     tie_word_embeddings=False, bos_token_id=None, eos_token_id=None)  # fmt: skip
    theirs = transformers.GPT2LMHeadModel(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    assert not ours.config.tie_embeddings
    np.testing.assert_array_equal(ours.lm_head.weight.data, theirs.lm_head.weight.detach().numpy())
    idx = np.random.default_rng(5).integers(0, 64, (2, 16))
    expected = hf_logits(theirs, idx)
    np.testing.assert_allclose(ours(idx)[0].data, expected, rtol=0, atol=tolerance(24, 2, expected))


@pytest.mark.parametrize("bias, tied", [(True, True), (False, True), (True, False)])
def test_a_model_from_here_loads_in_transformers_with_the_same_logits_and_tokens(tmp_path, bias, tied):
    config = GPTConfig(vocab_size=80, block_size=24, n_layer=2, n_head=2, n_embd=32, bias=bias)
    ours = GPT(config, rng=np.random.default_rng(1)).eval()
    rng = np.random.default_rng(4)
    for name, param in ours.named_parameters():  # weights far from GPT-2's small initial ones: decided greedy choices
        param.data[...] = rng.normal(0.0, 0.3, param.shape) + (1.0 if ".ln_" in name and "weight" in name else 0.0)
    if not tied:  # an output layer of its own, written as GPT2LMHeadModel's lm_head.weight
        from minigrad.nn import Parameter

        ours.lm_head.weight = Parameter(np.random.default_rng(2).normal(0, 0.02, (80, 32)))
    ours.save_pretrained(tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert theirs.config.tie_word_embeddings == tied
    idx = np.random.default_rng(3).integers(0, 80, (2, 24))
    expected = hf_logits(theirs, idx)
    tol = tolerance(32, 2, expected)
    np.testing.assert_allclose(ours(idx)[0].data, expected, rtol=0, atol=tol)
    assert_same_greedy_tokens(ours, theirs, idx[:1, :3], 21, tol)


# ---------------------------------------------------------------- tokenizers

CORPUS = (
    "First Citizen: Before we proceed any further, hear me speak. It's 1234567 o'clock, they'll say;\n"
    "  Ünïcödé wörds, 日本語のテキスト, émojis 🙂🙃 and\ttabs\r\nand   runs    of spaces.\n"
) * 20
SPECIAL = "<|endoftext|>"
texts = st.lists(
    st.one_of(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),  # any character UTF-8 can encode
        st.sampled_from(["the", " the", "Citizen", "'s", "'ll", " 123", "4567", "  ", "\n\n", "\r\n", " \t", SPECIAL]),
    ),
    max_size=12,
).map("".join)


@pytest.fixture(scope="module")
def trained_byte_level(tmp_path_factory):
    """A byte-level BPE trained by `tokenizers` and saved as GPT-2 saves it: vocab.json + merges.txt,
    and as one tokenizer.json, each with transformers' tokenizer of those files."""
    directory = tmp_path_factory.mktemp("byte-level")
    trained = tokenizers.ByteLevelBPETokenizer()
    trained.train_from_iterator([CORPUS], vocab_size=400, special_tokens=[SPECIAL], show_progress=False)
    trained.save_model(str(directory))  # vocab.json + merges.txt
    gpt2_files = transformers.GPT2Tokenizer.from_pretrained(directory)
    (directory / "json").mkdir()
    trained.save(str(directory / "json" / "tokenizer.json"))
    from_json = transformers.PreTrainedTokenizerFast(tokenizer_file=str(directory / "json" / "tokenizer.json"))
    return {
        "files": (BPETokenizer.from_pretrained(directory), gpt2_files),
        "json": (BPETokenizer.from_pretrained(directory / "json"), from_json),
    }


@pytest.mark.parametrize("source", ["files", "json"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_a_byte_level_bpe_from_tokenizers_encodes_as_transformers(trained_byte_level, source, text):
    ours, theirs = trained_byte_level[source]
    ids = ours.encode(text).tolist()
    assert ids == theirs(text, add_special_tokens=False)["input_ids"]
    assert ours.decode(ids) == text


@pytest.fixture(scope="module")
def saved_here(tmp_path_factory):
    """This project's tokenizers saved for transformers: BPE with GPT-4's pattern and a special
    token, BPE with GPT-2's, and characters; each with AutoTokenizer's reading of the files."""
    directory = tmp_path_factory.mktemp("saved-here")
    saved = {
        "bpe-gpt4": BPETokenizer(BPETokenizer.train(CORPUS, 370).merges, special_tokens=[SPECIAL]),
        "bpe-gpt2": BPETokenizer(BPETokenizer.train(CORPUS, 370, pattern="gpt2").merges, "gpt2"),
        "char": CharTokenizer.from_text(CORPUS),
    }
    loaded = {}
    for name, tokenizer in saved.items():
        tokenizer.save_pretrained(directory / name)
        loaded[name] = (tokenizer, transformers.AutoTokenizer.from_pretrained(directory / name))
    return loaded


@pytest.mark.parametrize("kind", ["bpe-gpt4", "bpe-gpt2", "char"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, chars=st.text(st.sampled_from(sorted(set(CORPUS))), max_size=40))
def test_tokenizers_saved_here_encode_alike_in_transformers(saved_here, kind, text, chars):
    ours, theirs = saved_here[kind]
    text = chars if kind == "char" else text  # characters: any text of the vocabulary's characters
    ids = ours.encode(text).tolist()
    assert ids == theirs(text, add_special_tokens=False)["input_ids"]
    assert theirs.decode(ids) == ours.decode(ids) == text


# ---------------------------------------------------------------- exported runs


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_an_exported_run_generates_in_transformers_what_it_generates_here(tmp_path, tokenizer):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    bpe = ["--tokenizer", "bpe", "--vocab-size", "300"] if tokenizer == "bpe" else []
    flags = ["--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--block-size", "32", "--batch-size", "4",
             "--max-iters", "30", "--eval-interval", "30", "--eval-iters", "1", "--learning-rate", "1e-2"]  # fmt: skip
    assert main(["train", "--data", str(corpus), "--out", str(tmp_path / "run"), *flags, *bpe]) == 0
    assert main(["export", "--out", str(tmp_path / "run"), "--to", str(tmp_path / "hf")]) == 0
    ours, our_tokenizer = load_run(tmp_path / "run")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    prompt = "First Citizen:"
    idx = np.array([their_tokenizer(prompt)["input_ids"]])
    np.testing.assert_array_equal(idx[0], our_tokenizer.encode(prompt))
    new_tokens = 32 - idx.shape[1]
    expected = hf_logits(theirs, idx)
    assert_same_greedy_tokens(ours, theirs, idx, new_tokens, tolerance(32, 2, expected))
    text = their_tokenizer.decode(hf_greedy(theirs, idx, new_tokens)[0])
    assert text == our_tokenizer.decode(generate(ours, idx, new_tokens, temperature=0)[0])
