"""Data-parallel training under `mpiexec`: the same losses as one process, resuming across rank
counts, and bad input and faults that end every rank cleanly.

Each test starts a real MPI job of tiny models (a few seconds). They skip without mpi4py or
an `mpiexec` (`pip install 'minigrad[mpi]'` gives both).
"""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minigrad.optim import cosine_with_warmup
from transformer import checkpoint as ckpt
from transformer import train_state
from transformer.distributed import World, shard_rows
from transformer.train import TrainConfig, train
from transformer.train_config import BETA1, resume_config

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="needs an mpiexec (pip install 'minigrad[mpi]')")

TINY = dict(
    n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=6, max_iters=30, lr_decay_iters=30,
    warmup_iters=5, eval_interval=10, eval_iters=3, learning_rate=1e-2, seed=3,
)  # fmt: skip
FLOAT32_EPS = float(np.finfo(np.float32).eps)
TOKENS = TINY["batch_size"] * TINY["block_size"]  # the terms a batch's loss and its weight gradients sum
# A reordered float32 sum of n terms moves by at most n * eps * sum|terms| (Higham's bound). Shards sum
# a batch's TOKENS cross-entropies (each about ln 24 ~ 3) in another order, in two levels (within a
# shard, then across ranks): 2 * TOKENS * eps * 3 ~ 3.4e-5 on one batch's mean loss. Over training the
# weights differ by more than rounding only where AdamW amplified it in directions of ~0 gradient,
# which move the loss to second order; a factor 4 covers that and the evaluation's own sums.
LOSS_TOLERANCE = 4 * (2 * TOKENS * FLOAT32_EPS * 3)
GRADIENT_SCRIPT = """
import sys
import numpy as np
from transformer.distributed import world
from transformer.gpt import GPT, GPTConfig

ranks = world()
config = GPTConfig(vocab_size=24, n_layer=1, n_head=2, n_embd=16, block_size=8)
model = GPT(config, np.random.default_rng(0))  # the same weights on every rank
x, y = np.random.default_rng(1).integers(0, config.vocab_size, (2, 6, config.block_size))
rows = ranks.shard(len(x)) if len(sys.argv) < 3 else slice(None)
_, loss = model(x[rows], y[rows])
loss.backward()
params = dict(model.named_parameters())
ranks.sum_gradients(list(params.values()), (rows.stop - rows.start) / len(x) if len(sys.argv) < 3 else 1.0, [])
# each rank holds the summed gradients of the parameters it updates, and None for the others
np.savez(f"{sys.argv[1]}.{ranks.rank}.npz", **{name: p.grad for name, p in params.items() if p.grad is not None})
"""


OPTIMIZER_SCRIPT = """
import json, sys
import numpy as np
from minigrad.optim import MuonWithAdamW, clip_grads_with_norm_
from transformer import train_state
from transformer.distributed import world
from transformer.gpt import GPT, GPTConfig

ranks = world()
model = GPT(GPTConfig(vocab_size=24, n_layer=2, n_head=2, n_embd=16, block_size=8), np.random.default_rng(0))
optimizer = MuonWithAdamW(model.muon_groups(0.1, 5.0), muon=dict(lr=0.02), adamw=dict(lr=3e-3))
params = list(model.parameters())
data = np.random.default_rng(1).integers(0, 24, (3, 2, 6, 8))
rows = ranks.shard(6)
for step, (x, y) in enumerate(data):  # three steps, as the trainer takes them
    if step == 2:  # a parameter's array replaced (as loading a state may): the ranks must still share it
        params[0].data = params[0].data.copy()
    _, loss = model(x[rows], y[rows])
    optimizer.zero_grad()
    loss.backward()
    ranks.sum_gradients(params, (rows.stop - rows.start) / 6, [])
    clip_grads_with_norm_(params, 0.5, ranks.total_norm(params))
    optimizer.step()
    ranks.share_parameters(params)
ranks.share_optimizer_state(optimizer, params)
arrays, numbers = train_state.pack_state(model, optimizer)
np.savez(f"{sys.argv[1]}.{ranks.rank}.npz", **arrays)
with open(f"{sys.argv[1]}.{ranks.rank}.json", "w") as f:
    json.dump(numbers, f)
"""


def write_corpus(path: Path, n_words: int = 3000) -> Path:
    words = "the king is dead long live the queen and all her court now sing".split()
    rng = np.random.default_rng(0)
    path.write_text("\n".join(" ".join(rng.choice(words, size=8)) for _ in range(n_words // 8)) + "\n")
    return path


def train_flags(corpus: Path, out: Path, **overrides) -> list[str]:
    flags = ["--data", str(corpus), "--out", str(out)]
    for name, value in {**TINY, **overrides}.items():
        flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


def mpi_command(ranks: int, *args: str) -> list[str]:
    return [MPIEXEC, "-n", str(ranks), sys.executable, *args]


def mpiexec(ranks: int, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(mpi_command(ranks, *args), capture_output=True, text=True, timeout=timeout)


def one_process(corpus: Path, out: Path, resume: bool = False, **overrides) -> None:
    if resume:
        config = resume_config(out, overrides)
    else:
        config = TrainConfig(data=str(corpus), out=str(out), **{**TINY, **overrides})
    train(config, resume=resume, progress=False, sample_chars=0, echo=lambda line: None)


def read_log(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / ckpt.LOG_FILE, newline="") as f:
        # val_tokens is empty in rows that estimate the validation loss from a few batches
        return [{name: float(value) for name, value in row.items() if value != ""} for row in csv.DictReader(f)]


def assert_same_losses(run_a: Path, run_b: Path) -> None:
    log_a, log_b = read_log(run_a), read_log(run_b)
    assert [row["iter"] for row in log_a] == [row["iter"] for row in log_b]
    for row_a, row_b in zip(log_a, log_b):
        assert row_a["lr"] == row_b["lr"]
        for name in ("train_loss", "val_loss"):
            assert abs(row_a[name] - row_b[name]) <= LOSS_TOLERANCE, (row_a, row_b)


def test_shards_cover_the_batch_once_and_differ_by_at_most_one_row():
    for batch_size in range(1, 14):
        for size in range(1, batch_size + 1):
            shards = [shard_rows(batch_size, rank, size) for rank in range(size)]
            assert [r for s in shards for r in range(s.start, s.stop)] == list(range(batch_size))
            assert max(s.stop - s.start for s in shards) - min(s.stop - s.start for s in shards) <= 1


def test_a_single_process_world_leaves_gradients_and_values_alone():
    grad = np.arange(6, dtype=np.float32).reshape(2, 3)

    class Param:
        pass

    p = Param()
    p.grad, p.data = grad.copy(), grad.copy()
    one = World()
    assert one.owners([p, p]) == [0, 0]
    assert one.sum_gradients([p], 0.5, [1.5, 0.0]) == [1.5, 0.0]
    np.testing.assert_array_equal(p.grad, grad)
    assert one.total_norm([p]) == np.sqrt(np.sum(grad.astype(np.float64) ** 2))
    one.share_parameters([p])
    np.testing.assert_array_equal(p.data, grad)


def test_parameters_become_views_of_one_array_with_their_values():
    class Param:
        pass

    a, b = Param(), Param()
    a.data, b.data = np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(2, dtype=np.float32)
    flat = World()._parameters_in_one_buffer([a, b])
    np.testing.assert_array_equal(flat, [0, 1, 2, 3, 4, 5, 0, 1])
    assert a.data.shape == (2, 3) and np.shares_memory(a.data, flat) and np.shares_memory(b.data, flat)
    b.data = np.zeros(2, dtype=np.float64)
    with pytest.raises(ValueError, match="one dtype"):
        World()._parameters_in_one_buffer([a, b])


def adamw_drift_bound(lrs: list[float], beta1: float, beta2: float) -> float:
    """How far apart one parameter of two AdamW runs from the same weights can drift, whatever their gradients.

    By Cauchy-Schwarz over the moments' sums, |m_t| <= (1-β1)/√(1-β2) · √(Σ_k<t (β1²/β2)^k) · √v_t, so a
    step with bias corrections moves a parameter by at most lr_t times the ratio below; two runs can
    differ by twice that per step (weight decay multiplies both by 1 - lr·wd, which only shrinks a gap,
    and gradient clipping rescales the gradients, which the bound allows).
    """
    bound = 0.0
    for t, lr in enumerate(lrs, start=1):
        moment_sum = sum((beta1**2 / beta2) ** k for k in range(t))
        ratio = (1 - beta1) * np.sqrt((1 - beta2**t) * moment_sum / (1 - beta2)) / (1 - beta1**t)
        bound += 2 * lr * ratio
    return bound


@pytest.mark.parametrize("ranks", [2, 4])  # batch 6 on 4 ranks: shards of 2, 2, 1, 1 rows
def test_ranks_sum_the_gradient_one_process_takes(tmp_path, ranks):
    """The reduce-scattered gradients are the whole batch's, to float32 rounding, each parameter's on
    exactly one rank: an SGD step would agree too."""
    script = tmp_path / "gradient.py"
    script.write_text(GRADIENT_SCRIPT)
    job = mpiexec(ranks, str(script), str(tmp_path / "many"))
    assert job.returncode == 0, job.stderr
    alone = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), "whole batch"], capture_output=True)
    assert alone.returncode == 0, alone.stderr
    theirs = np.load(tmp_path / "one.0.npz")
    per_rank = [dict(np.load(tmp_path / f"many.{rank}.npz")) for rank in range(ranks)]
    assert sorted(name for held in per_rank for name in held) == sorted(theirs)  # each parameter once
    assert all(per_rank)  # every rank updates some parameters
    ours = {name: grad for held in per_rank for name, grad in held.items()}
    for name in theirs:
        # Each gradient sums TOKENS positions' contributions, once per layer it flows back through;
        # the largest gradient of the tensor stands for the size of its terms (Higham's n * eps * sum|terms|).
        tolerance = 4 * TOKENS * FLOAT32_EPS * np.abs(theirs[name]).max()
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=tolerance, err_msg=name)


@pytest.mark.parametrize("ranks", [2, 3])
def test_every_rank_ends_with_the_whole_model_and_optimizer_state(tmp_path, ranks):
    """Each rank updates its own parameters (Muon's matrices and AdamW's rest), then the ranks share
    the new values and, before a save, every parameter's optimizer state: all ranks end identical
    (also when a parameter's array was replaced between steps),
    holding the state of every parameter that one process holds, with the same step counts. (That
    the values are one process's, to rounding, the training and resuming tests below hold.)"""
    script = tmp_path / "optimizer.py"
    script.write_text(OPTIMIZER_SCRIPT)
    job = mpiexec(ranks, str(script), str(tmp_path / "many"))
    assert job.returncode == 0, job.stderr
    alone = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], capture_output=True)
    assert alone.returncode == 0, alone.stderr
    theirs, first = np.load(tmp_path / "one.0.npz"), np.load(tmp_path / "many.0.npz")
    assert any(name.endswith("momentum_buffer") for name in theirs) and any(name.endswith("exp_avg") for name in theirs)
    for rank in range(ranks):
        ours = np.load(tmp_path / f"many.{rank}.npz")
        assert sorted(ours) == sorted(theirs)  # every parameter's moments and momentum, on every rank
        assert (tmp_path / f"many.{rank}.json").read_text() == (tmp_path / "one.0.json").read_text()  # step counts
        for name in theirs:
            np.testing.assert_array_equal(ours[name], first[name], err_msg=name)


@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_train_the_model_one_process_trains(tmp_path, ranks):
    corpus = write_corpus(tmp_path / "corpus.txt")
    one_process(corpus, tmp_path / "one")
    job = mpiexec(ranks, "-m", "transformer", "train", *train_flags(corpus, tmp_path / "many"))
    assert job.returncode == 0, job.stderr
    assert_same_losses(tmp_path / "one", tmp_path / "many")
    assert job.stdout.count("corpus:") == 1 and job.stdout.count("done:") == 1  # rank 0 alone speaks
    # After many AdamW steps the weights are not comparable to rounding: AdamW divides each gradient
    # by its own running size, so a gradient that is 0 in exact arithmetic (the key bias's: softmax
    # ignores a shift shared by a row) steps by about lr in the direction of its rounding error.
    config = TrainConfig(data=str(corpus), out="", **TINY)
    lrs = [cosine_with_warmup(it, config.learning_rate, config.min_lr, config.warmup_iters, config.lr_decay_iters)
           for it in range(config.max_iters)]  # fmt: skip
    drift = adamw_drift_bound(lrs, BETA1, config.beta2)
    ours, _ = ckpt.load_arrays(tmp_path / "many" / ckpt.CKPT_FILE)
    theirs, _ = ckpt.load_arrays(tmp_path / "one" / ckpt.CKPT_FILE)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=drift, err_msg=name)


def test_a_run_resumes_with_another_number_of_ranks(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    one_process(corpus, tmp_path / "straight")

    job = mpiexec(2, "-m", "transformer", "train", *train_flags(corpus, tmp_path / "two_then_one", max_iters=20))
    assert job.returncode == 0, job.stderr
    one_process(corpus, tmp_path / "two_then_one", resume=True, max_iters=30)
    assert_same_losses(tmp_path / "straight", tmp_path / "two_then_one")

    one_process(corpus, tmp_path / "one_then_three", max_iters=20)
    resumed = mpiexec(3, "-m", "transformer", "train", "--out", str(tmp_path / "one_then_three"), "--resume",
                      "--max-iters", "30")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert_same_losses(tmp_path / "straight", tmp_path / "one_then_three")


@pytest.mark.parametrize("command", [[], ["train"], ["sample"]])
def test_help_under_mpiexec_is_printed_once(command):
    job = mpiexec(2, "-m", "transformer", *command, "--help")
    assert job.returncode == 0, job.stderr
    assert job.stdout.count("usage:") == 1, job.stdout


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data", "missing.txt"], "does not exist"),
        (["--n-layer", "0"], "--n-layer must be an integer >= 1"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--batch-size", "1"], "cannot be shared by 2 ranks"),
    ],
)
def test_bad_input_under_mpiexec_is_one_line_and_exit_2(tmp_path, flags, message):
    corpus = write_corpus(tmp_path / "corpus.txt")
    job = subprocess.run(
        mpi_command(2, "-m", "transformer", "train", *train_flags(corpus, tmp_path / "run"), *flags),
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert job.returncode == 2
    assert len(job.stderr.splitlines()) == 1 and message in job.stderr, job.stderr
    assert not (tmp_path / "run" / ckpt.CKPT_FILE).exists()


RANK_1_FAILS = """
import os, signal, sys
from transformer import cli, train
from transformer.distributed import world

how, after = sys.argv[1], int(sys.argv[2])
real_get_batch, calls = train.get_batch, []

def get_batch_then_fail(*args):
    calls.append(1)
    if world().rank == 1 and len(calls) == after:
        if how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError("rank 1 fails")
    return real_get_batch(*args)

train.get_batch = get_batch_then_fail
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.mark.parametrize("how", ["killed", "raises"])
def test_one_rank_failing_ends_the_job_and_leaves_the_last_save(tmp_path, how):
    corpus = write_corpus(tmp_path / "corpus.txt")
    driver = tmp_path / "driver.py"
    driver.write_text(RANK_1_FAILS)
    one_process(corpus, tmp_path / "straight")
    # get_batch calls on a rank: 6 per evaluation (3 batches of 2 splits) and 1 per step; call 28
    # is the 15th step, between the saves at iterations 10 and 20
    started = time.monotonic()
    job = mpiexec(2, str(driver), how, "28", "train", *train_flags(corpus, tmp_path / "run"), timeout=60)
    assert job.returncode != 0 and time.monotonic() - started < 60
    _, info = train_state.load_train_state(tmp_path / "run")
    assert info["iter"] == 10 and [row["iter"] for row in read_log(tmp_path / "run")] == [0, 10]
    one_process(corpus, tmp_path / "run", resume=True)
    assert_same_losses(tmp_path / "straight", tmp_path / "run")


RANK_0_CANNOT_WRITE = """
import sys
from transformer import checkpoint, cli, train_state
from transformer.distributed import world

real_save, calls = train_state.save_train_state, []

def save_then_fail(run_dir, *args):
    calls.append(1)
    if world().rank == 0 and len(calls) == 2:
        raise checkpoint.RunWriteError(f"cannot write {run_dir}/train_state.safetensors: No space left on device")
    return real_save(run_dir, *args)

train_state.save_train_state = save_then_fail
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_failed_write_on_rank_0_ends_every_rank_with_one_line(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(RANK_0_CANNOT_WRITE)
    corpus = write_corpus(tmp_path / "corpus.txt")
    started = time.monotonic()
    job = mpiexec(2, str(driver), "train", *train_flags(corpus, tmp_path / "run"), timeout=60)
    # the other rank would otherwise wait for rank 0 in the next all-reduce until the timeout
    assert job.returncode != 0 and time.monotonic() - started < 60
    ours = [line for line in job.stderr.splitlines() if line.startswith("minigrad-gpt")]
    said = f"minigrad-gpt train: error: cannot write {tmp_path / 'run'}/train_state.safetensors: No space left"
    assert len(ours) == 1 and ours[0].startswith(said) and ours[0].endswith("--resume"), job.stderr
    _, info = train_state.load_train_state(tmp_path / "run")
    assert info["iter"] == 0  # the first save stands


def test_ctrl_c_stops_every_rank_and_saves_once(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run_dir = tmp_path / "run"
    flags = train_flags(corpus, run_dir, max_iters=100000, lr_decay_iters=100000, eval_interval=50)
    job = subprocess.Popen(
        mpi_command(2, "-m", "transformer", "train", *flags),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(read_log(run_dir) if (run_dir / ckpt.LOG_FILE).exists() else []) < 2:
            assert time.monotonic() < deadline and job.poll() is None
            time.sleep(0.1)
        job.send_signal(signal.SIGINT)
        stdout, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 130, stderr
    assert stderr.count("interrupted at iteration") == 1
    stopped_at = int(stderr.split("interrupted at iteration ")[1].split(";")[0])
    _, info = train_state.load_train_state(run_dir)
    assert info["iter"] == stopped_at > 50
    assert not [p for p in os.listdir(run_dir) if p.endswith(".tmp")]
