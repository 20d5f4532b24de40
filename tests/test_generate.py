"""Generation: the KV cache (transformer/sample.py) gives the logits of the full recomputation,
cached and uncached sampling agree token for token, greedy decoding, top-k and top-p supports,
seeding, cropping."""

import numpy as np
import pytest

from minigrad import no_grad
from transformer import GPT, GPTConfig
from transformer import sample as sampling_module
from transformer.sample import KVCache, cached_logits, filter_logits, generate_tokens, sample

CFG = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def model_with_spread_weights(seed: int = 0, **overrides) -> GPT:
    """A small GPT with larger weights than GPT-2's init, so its predictions are peaked and
    different contexts give clearly different logits."""
    model = GPT(GPTConfig(**{**CFG, **overrides}), rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 100)
    for _, p in model.named_parameters():
        p.data[...] = rng.normal(0.0, 0.5, p.shape)
    return model.eval()


def prompt(B: int = 2, T: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CFG["vocab_size"], (B, T))


# ---------------------------------------------------------------- the KV cache


@pytest.mark.parametrize("fused", [True, False])
def test_cached_logits_equal_full_recomputation_at_every_step(fused):
    model = model_with_spread_weights(fused=fused)
    idx = np.random.default_rng(2).integers(0, 11, (3, CFG["block_size"]))
    with no_grad():
        full, _ = model(idx)  # (B, T, V)
        cache = KVCache(CFG["n_layer"])
        steps = [cached_logits(model, idx[:, :3], cache)]  # a prompt of 3 tokens in one call
        for t in range(3, idx.shape[1]):
            assert len(cache) == t
            steps.append(cached_logits(model, idx[:, t : t + 1], cache))  # one new position each step
    cached = np.concatenate([s.data for s in steps], axis=1)
    np.testing.assert_allclose(cached, full.data, atol=1e-5, rtol=1e-5)


MODERN = dict(rotary=True, qk_norm=True, norm="rmsnorm", bias=False, activation="relu2", tie_embeddings=False)


@pytest.mark.parametrize("overrides", [{}, MODERN, dict(fused=False)], ids=["gpt2", "modern", "definitions"])
@pytest.mark.parametrize("keep", [1, 3])
def test_logits_to_keep_gives_the_last_positions_logits_of_the_full_forward(overrides, keep):
    model = model_with_spread_weights(**overrides)
    idx = np.random.default_rng(3).integers(0, 11, (2, CFG["block_size"]))
    with no_grad():
        full, _ = model(idx)  # (B, T, V)
        last, _ = model(idx, logits_to_keep=keep)  # (B, keep, V)
        cache = KVCache(CFG["n_layer"])
        cached_logits(model, idx[:, :2], cache, logits_to_keep=1)
        rest = cached_logits(model, idx[:, 2:], cache, logits_to_keep=keep)  # after a cached prefix
    assert last.shape == rest.shape == (2, keep, CFG["vocab_size"])
    # the same arithmetic on fewer rows: only the matrix products' summation order may differ, a few
    # float32 epsilons (1.2e-7) per term of the longest sum (4 · n_embd = 64 terms) < 1e-5
    np.testing.assert_allclose(last.data, full.data[:, -keep:], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(rest.data, full.data[:, -keep:], atol=1e-5, rtol=1e-5)
    assert len(cache) == CFG["block_size"]  # the cache learned every position, kept or not


def test_logits_to_keep_runs_the_last_block_on_the_kept_rows_only():
    model = model_with_spread_weights()
    seen = []
    last_mlp = model.transformer.h[-1].mlp
    last_mlp.forward = lambda x, forward=last_mlp.forward: seen.append(x.shape) or forward(x)
    with no_grad():
        model(np.zeros((1, 8), dtype=np.int64), logits_to_keep=1)
        model(np.zeros((1, 8), dtype=np.int64), logits_to_keep=8)  # every position: nothing to leave out
    assert seen == [(1, 1, CFG["n_embd"]), (1, 8, CFG["n_embd"])]


def test_logits_to_keep_is_refused_with_targets_or_below_zero():
    model = model_with_spread_weights()
    idx = np.zeros((1, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="logits_to_keep"):
        model(idx, idx, logits_to_keep=1)
    with pytest.raises(ValueError, match="logits_to_keep"):
        model(idx, logits_to_keep=-1)


def test_generate_tokens_yields_generates_tokens_and_leaves_the_caller_alone():
    import minigrad as mg

    model = model_with_spread_weights().train()
    start = prompt(B=2, T=3)
    whole = model.generate(start, 12, temperature=0.8, rng=np.random.default_rng(5))  # past block 8
    steps = generate_tokens(model, start, 12, temperature=0.8, rng=np.random.default_rng(5))
    drawn = []
    for next_ids in steps:
        assert mg.is_grad_enabled() and not model.training  # between steps: grad as before, eval mode
        drawn.append(next_ids)
    assert model.training  # back in training mode once the loop ends
    np.testing.assert_array_equal(np.concatenate([start] + [d[:, None] for d in drawn], axis=1), whole)

    steps = generate_tokens(model, start, 12, rng=np.random.default_rng(5))
    next(steps)
    steps.close()  # abandoned early: the mode still comes back
    assert model.training


def test_cache_refuses_to_run_past_the_block_size():
    model = model_with_spread_weights()
    cache = KVCache(CFG["n_layer"])
    with no_grad():
        cached_logits(model, np.zeros((1, CFG["block_size"]), dtype=np.int64), cache)
        with pytest.raises(ValueError, match="block size 8"):
            cached_logits(model, np.zeros((1, 1), dtype=np.int64), cache)
        with pytest.raises(ValueError, match="block size is only 8"):
            model(np.zeros((1, 9), dtype=np.int64))


@pytest.mark.parametrize(
    "sampling",
    [
        dict(temperature=1.0),
        dict(temperature=0.7, top_k=3),
        dict(temperature=1.3, top_p=0.8),
        dict(temperature=0.0),
    ],
)
def test_cached_and_uncached_generation_agree_token_for_token(sampling):
    model = model_with_spread_weights()
    new = 3 * CFG["block_size"]  # well past the block size: the window slides
    with_cache = sampling_module.generate(model, prompt(), new, rng=np.random.default_rng(9), **sampling)
    without = model.generate(prompt(), new, rng=np.random.default_rng(9), **sampling)
    assert with_cache.shape == (2, 3 + new)
    np.testing.assert_array_equal(with_cache, without)
    np.testing.assert_array_equal(with_cache[:, :3], prompt())


def reference_generate(model: GPT, idx: np.ndarray, steps: int) -> np.ndarray:
    """Greedy decoding written out as nanoGPT's loop: crop to block_size, forward, argmax."""
    for _ in range(steps):
        logits, _ = model(idx[:, -model.config.block_size :])
        idx = np.concatenate([idx, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
    return idx


def test_greedy_is_argmax_and_cropping_past_the_block_size_is_nanogpts():
    model = model_with_spread_weights(seed=3)
    steps = 2 * CFG["block_size"] + 1
    expected = reference_generate(model, prompt(), steps)
    np.testing.assert_array_equal(model.generate(prompt(), steps, temperature=0.0), expected)
    assert len(np.unique(expected[:, 3:])) > 1  # the test is not fooled by a constant output


def test_a_prompt_longer_than_the_block_is_cropped():
    model = model_with_spread_weights(seed=3)
    long_prompt = prompt(T=CFG["block_size"] + 5)
    out = model.generate(long_prompt, 4, temperature=0.0)
    np.testing.assert_array_equal(out, reference_generate(model, long_prompt, 4))


def test_generate_builds_no_graph_and_restores_training_mode():
    model = model_with_spread_weights(dropout=0.5).train()
    a = model.generate(prompt(), 6, temperature=0.0)
    b = model.generate(prompt(), 6, temperature=0.0)
    np.testing.assert_array_equal(a, b)  # no dropout while generating
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_zero_new_tokens_returns_the_prompt():
    model = model_with_spread_weights()
    np.testing.assert_array_equal(model.generate(prompt(), 0), prompt())


# ---------------------------------------------------------------- sampling


def test_seeded_generation_is_reproducible_and_seeds_differ():
    model = model_with_spread_weights()
    a = model.generate(prompt(), 20, temperature=1.5, rng=np.random.default_rng(4))
    b = model.generate(prompt(), 20, temperature=1.5, rng=np.random.default_rng(4))
    c = model.generate(prompt(), 20, temperature=1.5, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_top_k_keeps_the_k_largest_and_ties_with_the_kth():
    logits = np.array([[1.0, 5.0, 3.0, 4.0, 2.0], [0.0, 2.0, 2.0, 1.0, 2.0]])
    kept = np.isfinite(filter_logits(logits, top_k=2))
    np.testing.assert_array_equal(kept[0], [False, True, False, True, False])
    np.testing.assert_array_equal(kept[1], [False, True, True, False, True])  # three tie for 2nd
    assert np.isfinite(filter_logits(logits, top_k=50)).all()
    np.testing.assert_array_equal(filter_logits(logits, top_k=2)[kept], logits[kept])


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([[0.1, 0.5, 0.05, 0.3, 0.05]])
    logits = np.log(probs)
    support = lambda p: np.flatnonzero(np.isfinite(filter_logits(logits, top_p=p)[0])).tolist()  # noqa: E731
    assert support(0.5) == [1]  # 0.5 alone reaches 0.5
    assert support(0.55) == [1, 3]  # 0.5 falls short; 0.5 + 0.3 reaches it
    assert support(0.85) == [0, 1, 3]  # 0.8 falls short; 0.9 reaches it
    assert support(0.01) == [1]  # the most likely token always stays
    assert support(1.0) == [0, 1, 2, 3, 4]


def test_top_p_one_keeps_every_token_as_hugging_face():
    """The tail after a 0.95 and a 0.05 token holds 2e-19: the mass before it rounds to 1.0, yet
    top_p=1.0 filters nothing, as Hugging Face's TopPLogitsWarper."""
    logits = np.array([[0.0, -40.0, -45.0, -50.0, 3.0]])
    kept = np.isfinite(filter_logits(logits, top_p=1.0))
    assert kept.all()
    torch = pytest.importorskip("torch")
    logits_process = pytest.importorskip("transformers.generation.logits_process")
    theirs = logits_process.TopPLogitsWarper(1.0)(None, torch.tensor(logits))
    np.testing.assert_array_equal(kept, np.isfinite(theirs.numpy()))


def test_top_k_and_top_p_together_take_the_intersection():
    logits = np.log(np.array([[0.4, 0.3, 0.2, 0.1]]))
    kept = np.isfinite(filter_logits(logits, top_k=3, top_p=0.6))
    np.testing.assert_array_equal(kept[0], [True, True, False, False])


def test_samples_stay_in_the_support_and_follow_the_probabilities():
    probs = np.array([0.05, 0.45, 0.12, 0.3, 0.08])
    logits = np.tile(np.log(probs), (20_000, 1))
    rng = np.random.default_rng(0)
    draws = sample(logits, top_k=3, rng=rng)
    assert set(np.unique(draws)) == {1, 2, 3}
    np.testing.assert_allclose(
        np.bincount(draws, minlength=5)[[1, 2, 3]] / len(draws), [0.45 / 0.87, 0.12 / 0.87, 0.3 / 0.87], atol=0.015
    )
    counts = np.bincount(sample(logits, rng=rng), minlength=5) / len(logits)
    np.testing.assert_allclose(counts, probs, atol=0.015)
    nucleus = sample(logits, top_p=0.7, rng=rng)
    assert set(np.unique(nucleus)) == {1, 3}
    np.testing.assert_allclose(np.mean(nucleus == 1), 0.45 / 0.75, atol=0.015)


def test_temperature_zero_is_argmax_and_low_temperature_approaches_it():
    logits = np.random.default_rng(0).standard_normal((50, 7))
    np.testing.assert_array_equal(sample(logits, temperature=0.0), logits.argmax(-1))
    cold = sample(logits, temperature=1e-4, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(cold, logits.argmax(-1))
    for tiny in (1e-300, 5e-324):  # logits / temperature would overflow to inf, and inf - inf is NaN
        np.testing.assert_array_equal(sample(logits, temperature=tiny, rng=np.random.default_rng(1)), logits.argmax(-1))
    tied = np.array([[1.0, 3.0, 3.0, -2.0]] * 400)  # the limit of a vanishing temperature: the tied best, evenly
    drawn = sample(tied, temperature=1e-300, rng=np.random.default_rng(2))
    assert set(np.unique(drawn)) == {1, 2} and abs(np.mean(drawn == 1) - 0.5) < 0.1


def test_bad_sampling_settings_are_refused():
    logits = np.zeros((1, 4))
    with pytest.raises(ValueError, match="temperature"):
        sample(logits, temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        sample(logits, temperature=float("nan"))
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(logits, top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(logits, top_p=0.0)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(logits, top_p=1.5)
