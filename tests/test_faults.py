"""Faults a program cannot prevent but must survive, injected into tiny runs.

Each one ends with one line on stderr and exit status 2 (or, where nothing is lost, a run that
carries on), and never costs a file that was whole before:

- a write that fails (disk full, file too large, permission lost, read-only file system, an
  I/O error) at any step of an atomic write, in-process, and a real "File too large" from
  RLIMIT_FSIZE in a subprocess;
- config.json edited to a model the checkpoint does not hold, and safetensors headers that lie;
- every file of a run directory damaged: bytes or bits flipped, digits changed, cut short, extended;
- a second trainer on a run directory, a trainer killed with SIGKILL at random moments, and
  sampling from a directory while it is being trained.
"""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as plain_safetensors
from test_cli_bad_input import corpus_text

from transformer import GPT, GPTConfig, atomic, train_state
from transformer import checkpoint as ckpt
from transformer import run as run_module
from transformer import train as train_module
from transformer.cli import main
from transformer.gpt import parameter_shapes
from transformer.rundir import LOCK_FILE, locked_run_dir

REPO = Path(__file__).resolve().parent.parent
TINY_FLAGS = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
    "--max-iters", "6", "--warmup-iters", "1", "--eval-interval", "2", "--eval-iters", "1",
    "--learning-rate", "1e-2",
]  # fmt: skip
TEMPORARY = atomic.TEMPORARY_NAME  # ".<file name>.<32 hex digits>.tmp"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A corpus and one finished tiny run on it (6 iterations, evaluated every 2)."""
    root = tmp_path_factory.mktemp("faults")
    (root / "corpus.txt").write_text(corpus_text(), encoding="utf-8")
    assert main(["train", "--data", str(root / "corpus.txt"), "--out", str(root / "run"), *TINY_FLAGS]) == 0
    return root


@pytest.fixture
def run_dir(trained, tmp_path):
    shutil.copytree(trained / "run", tmp_path / "run")
    return tmp_path / "run"


def files(directory: Path, skip=(LOCK_FILE,)) -> dict[str, bytes]:
    """The run files' bytes (the lock file, which only names its holder, left out)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name not in skip}


def temporaries(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if TEMPORARY.fullmatch(p.name)]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same_arrays(path_a: Path, path_b: Path, same_metadata: bool = True) -> None:
    """The same names and arrays, and metadata (safetensors orders its header's metadata at random)."""
    arrays_a, metadata_a = ckpt.load_arrays(path_a)
    arrays_b, metadata_b = ckpt.load_arrays(path_b)
    assert sorted(arrays_a) == sorted(arrays_b) and (metadata_a == metadata_b or not same_metadata)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def assert_one_line(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("minigrad-gpt") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# ---------------------------------------------------------------- write errors


class FailingDisk:
    """Make one write of one run file fail, as a full disk or a lost permission would.

    The `nth` atomic write of `name` fails at `step`: "open" (creating its temporary file),
    "write" (after half the bytes went out), "fsync" (where a full disk often first says so)
    or "replace" (the rename into place). Every other file operation passes through. The
    run directory's files are recorded at the moment of the fault, to compare with after.
    """

    def __init__(self, monkeypatch, run_dir: Path, name: str, step: str, code: int, nth: int):
        self.run_dir, self.name, self.step, self.code, self.nth = run_dir.resolve(), name, step, code, nth
        self.writes, self.fds, self.at_fault, self.short_write_done = 0, {}, None, False
        self.real = {op: getattr(os, op) for op in ("open", "write", "fsync", "replace")}
        for op in self.real:
            monkeypatch.setattr(os, op, getattr(self, op))

    def target(self, path) -> str | None:
        path = Path(path).resolve()
        if path.parent != self.run_dir:
            return None
        temporary = TEMPORARY.fullmatch(path.name)
        return temporary.group(1) if temporary else path.name

    def fail(self):
        self.at_fault = {k: v for k, v in files(self.run_dir).items() if not TEMPORARY.fullmatch(k)}
        raise OSError(self.code, os.strerror(self.code))

    def open(self, path, flags, mode=0o777, **kwargs):
        if self.target(path) == self.name:
            self.writes += 1
            if self.writes == self.nth and self.step == "open":
                self.fail()
        fd = self.real["open"](path, flags, mode, **kwargs)
        self.fds[fd] = self.writes if self.target(path) == self.name else None  # descriptors are reused
        return fd

    def due(self, fd, step) -> bool:
        return self.fds.get(fd) == self.nth and self.step == step

    def write(self, fd, data):
        if self.due(fd, "write"):
            if not self.short_write_done and len(data) > 1:
                self.short_write_done = True
                return self.real["write"](fd, data[: len(data) // 2])  # a short write; the next call fails
            self.fail()
        return self.real["write"](fd, data)

    def fsync(self, fd):
        if self.due(fd, "fsync"):
            self.fail()
        return self.real["fsync"](fd)

    def replace(self, src, dst):
        if self.target(dst) == self.name and self.writes == self.nth and self.step == "replace":
            self.fail()
        return self.real["replace"](src, dst)


@pytest.mark.parametrize(
    "name, step, code, nth",
    [
        pytest.param(ckpt.CKPT_FILE, "write", errno.ENOSPC, 2, id="disk-full-writing-the-checkpoint"),
        pytest.param(ckpt.CKPT_FILE, "replace", errno.EIO, 2, id="io-error-renaming-the-checkpoint"),
        pytest.param(ckpt.STATE_ARRAYS_FILE, "write", errno.EFBIG, 3, id="file-too-large-training-state"),
        pytest.param(ckpt.STATE_JSON_FILE, "fsync", errno.ENOSPC, 2, id="disk-full-second-file-of-the-pair"),
        pytest.param(ckpt.LOG_FILE, "open", errno.EACCES, 3, id="permission-lost-mid-run"),
        pytest.param(ckpt.PLOT_FILE, "open", errno.EROFS, 2, id="file-system-turned-read-only"),
        pytest.param(ckpt.CONFIG_FILE, "write", errno.EDQUOT, 1, id="no-quota-at-the-start"),
        pytest.param(LOCK_FILE, "open", errno.EROFS, 1, id="read-only-run-directory"),
    ],
)
def test_a_failed_write_stops_training_with_one_line_and_loses_nothing(
    trained, tmp_path, monkeypatch, capsys, name, step, code, nth
):
    run_dir = tmp_path / "run"
    disk = FailingDisk(monkeypatch, run_dir, name, step, code, nth)
    argv = ["train", "--data", trained / "corpus.txt", "--out", run_dir, *TINY_FLAGS]
    status, out, err = run_cli(argv, capsys)
    assert status == 2 and disk.at_fault is not None
    assert_one_line(err, f"cannot write {run_dir / name}: {os.strerror(code)}")
    if nth > 1:
        assert f"the previous {name} is intact; training stopped" in err
    if ckpt.STATE_JSON_FILE in disk.at_fault:
        assert err.endswith(f"continue with: minigrad-gpt train --out {run_dir} --resume\n")
    # training stopped at the fault: nothing was written after it, nothing before it was lost
    assert files(run_dir) == disk.at_fault and not temporaries(run_dir)
    assert not (run_dir / LOCK_FILE).exists() or (run_dir / LOCK_FILE).read_bytes() == b""  # released
    if ckpt.STATE_JSON_FILE not in disk.at_fault:
        return
    # the saved state resumes, and the run ends exactly as one that never failed
    monkeypatch.undo()
    status, out, err = run_cli(["train", "--out", run_dir, "--resume"], capsys)
    assert status == 0, err
    assert files(run_dir)[ckpt.LOG_FILE] == files(trained / "run")[ckpt.LOG_FILE]
    assert_same_arrays(run_dir / ckpt.CKPT_FILE, trained / "run" / ckpt.CKPT_FILE)


def test_the_weights_are_saved_with_the_training_state_or_not_at_all(trained, tmp_path, monkeypatch, capsys):
    """A first save that fails leaves no checkpoint without its state: the directory holds no
    run, and a new one may start there."""
    run_dir = tmp_path / "run"
    disk = FailingDisk(monkeypatch, run_dir, ckpt.STATE_JSON_FILE, "fsync", errno.ENOSPC, 1)
    argv = ["train", "--data", trained / "corpus.txt", "--out", run_dir, *TINY_FLAGS]
    assert run_cli(argv, capsys)[0] == 2 and disk.at_fault is not None
    assert not (run_dir / ckpt.CKPT_FILE).exists() and not (run_dir / ckpt.STATE_ARRAYS_FILE).exists()
    monkeypatch.undo()
    status, _, err = run_cli(argv, capsys)
    assert status == 0, err


def test_a_run_file_that_became_a_directory_is_not_called_intact(run_dir, capsys):
    (run_dir / ckpt.PLOT_FILE).unlink()
    (run_dir / ckpt.PLOT_FILE).mkdir()
    status, _, err = run_cli(["train", "--out", run_dir, "--resume", "--max-iters", "8"], capsys)
    assert status == 2
    assert_one_line(err, f"cannot write {run_dir / ckpt.PLOT_FILE}: Is a directory; training stopped.")
    assert "intact" not in err


def test_a_real_file_size_limit_efbig_stops_a_resumed_run(trained, tmp_path, capsys):
    """RLIMIT_FSIZE makes the kernel refuse to grow any file past the limit: a real EFBIG."""
    # wide enough that the training state's arrays outgrow every other file, the plot included
    run_dir = tmp_path / "run"
    wider = [*TINY_FLAGS[:5], "64", *TINY_FLAGS[6:]]
    assert main(["train", "--data", str(trained / "corpus.txt"), "--out", str(run_dir), *wider]) == 0
    capsys.readouterr()
    before = files(run_dir)
    largest_other = max(len(data) for name, data in before.items() if name != ckpt.STATE_ARRAYS_FILE)
    limit = largest_other + 5_000  # every run file fits but the training state's arrays
    assert len(before[ckpt.STATE_ARRAYS_FILE]) > limit
    code = (
        "import resource, signal, sys\n"
        "import matplotlib.font_manager  # its cache written before the limit\n"
        "from transformer.cli import main\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a signal, past the limit\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["train", "--out", str(run_dir), "--resume", "--max-iters", "10"]
    result = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    state = run_dir / ckpt.STATE_ARRAYS_FILE
    assert_one_line(result.stderr, f"cannot write {state}: File too large; the previous {state.name} is intact")
    assert "iter " not in result.stdout  # iteration 8's evaluation is printed once saved, and its save failed
    after = files(run_dir)
    assert not temporaries(run_dir)
    assert after[ckpt.STATE_ARRAYS_FILE] == before[ckpt.STATE_ARRAYS_FILE]
    assert after[ckpt.STATE_JSON_FILE] == before[ckpt.STATE_JSON_FILE]
    # the last complete state resumes, without the limit, to the end
    assert run_cli(["train", "--out", run_dir, "--resume", "--max-iters", "10"], capsys)[0] == 0
    assert train_state.load_train_state(run_dir)[1]["iter"] == 10


# ---------------------------------------------------------------- load validation


def edit_config(run_dir: Path, section: str, **changes) -> None:
    config = json.loads((run_dir / ckpt.CONFIG_FILE).read_text())
    config[section].update(changes)
    atomic.atomic_write_json(run_dir / ckpt.CONFIG_FILE, config)


def refuse_to_build(monkeypatch):
    """Building a model would allocate from the config: the checks must come first."""

    def built(*args, **kwargs):
        raise AssertionError("a model was built before the config was checked against the checkpoint")

    monkeypatch.setattr(ckpt, "GPT", built)  # the run loader
    monkeypatch.setattr(run_module, "GPT", built)  # the trainer


def test_a_config_edited_to_a_huge_model_is_refused_before_allocating(run_dir, monkeypatch, capsys):
    edit_config(run_dir, "model", n_layer=1000, n_embd=100_000)
    edit_config(run_dir, "train", n_layer=1000, n_embd=100_000)
    refuse_to_build(monkeypatch)
    vocab_size = json.loads((run_dir / ckpt.CONFIG_FILE).read_text())["model"]["vocab_size"]
    status, _, err = run_cli(["sample", "--out", run_dir], capsys)
    assert status == 2
    assert_one_line(
        err,
        f"{run_dir / ckpt.CKPT_FILE} does not match the model in {run_dir / ckpt.CONFIG_FILE}",
        f"transformer.wte.weight has shape ({vocab_size}, 16), the model's is ({vocab_size}, 100000)",
    )
    before = files(run_dir)
    status, _, err = run_cli(["train", "--out", run_dir, "--resume"], capsys)
    assert status == 2
    assert_one_line(err, f"{run_dir / ckpt.STATE_ARRAYS_FILE} does not match", "transformer.wte.weight has shape")
    assert files(run_dir) == before


def test_a_model_too_large_for_memory_is_one_line(trained, tmp_path, monkeypatch, capsys):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 224. GiB for an array with shape (300000, 100000)")

    monkeypatch.setattr(run_module, "GPT", out_of_memory)
    argv = ["train", "--data", trained / "corpus.txt", "--out", tmp_path / "run", *TINY_FLAGS]
    status, _, err = run_cli(argv, capsys)
    assert status == 2
    assert_one_line(err, "not enough memory (Unable to allocate 224. GiB")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_layer": 10**9}, "model.n_layer must be an integer in [1, 10000], got 1000000000"),
        ({"n_embd": -16}, "model.n_embd must be an integer in [1, 2147483647], got -16"),
        ({"block_size": 8.0}, "model.block_size must be an integer in [1, 2147483647], got 8.0"),
        ({"bias": "yes"}, "model.bias must be true or false, got 'yes'"),
        ({"n_layer": 2}, "it lacks transformer.h.1.ln_1.weight (and 11 more)"),
        ({"bias": False}, "it has unexpected transformer.h.0.attn.c_attn.bias (and 6 more)"),
    ],
)
def test_absurd_or_mismatched_model_configs(run_dir, monkeypatch, capsys, changes, message):
    edit_config(run_dir, "model", **changes)
    refuse_to_build(monkeypatch)
    status, _, err = run_cli(["sample", "--out", run_dir], capsys)
    assert status == 2
    assert_one_line(err, message)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"n_head": 4}, "n_head = 2, but {} says 4"),
        ({"activation": "relu2"}, 'activation = "gelu", but {} says "relu2"'),
        ({"qk_norm": True}, "qk_norm = false, but {} says true"),
        ({"logit_softcap": 30.0}, "logit_softcap = 0.0, but {} says 30.0"),
    ],
)
def test_a_config_edited_to_another_model_of_the_same_shapes_is_named(run_dir, capsys, changes, field):
    """The same tensors would compute other numbers: the config saved with the weights tells."""
    config_path = run_dir / ckpt.CONFIG_FILE
    edit_config(run_dir, "model", **changes)
    status, _, err = run_cli(["sample", "--out", run_dir, "--max-new-tokens", "3"], capsys)
    assert status == 2
    assert_one_line(err, f"{run_dir / ckpt.CKPT_FILE} was saved by a model with {field.format(config_path)}")
    edit_config(run_dir, "train", **changes)
    before = files(run_dir)
    status, _, err = run_cli(["train", "--out", run_dir, "--resume"], capsys)
    assert status == 2
    assert_one_line(err, f"was saved by a model with {field.format(f'{config_path} (its training flags)')}")
    assert files(run_dir) == before


def test_dropout_and_kernels_are_no_part_of_the_weights_config(run_dir, capsys):
    edit_config(run_dir, "model", dropout=0.1, fused=False)
    status, _, err = run_cli(["sample", "--out", run_dir, "--max-new-tokens", "3"], capsys)
    assert status == 0, err


@pytest.mark.parametrize(
    "train_section, flags, message",
    [
        (["abc"], [], "config.json is not a training config"),
        ({"n_layer": "one"}, [], "--n-layer must be an integer >= 1, got 'one'"),
        ({"n_layer": 10**9}, [], "model.n_layer must be an integer in [1, 10000], got 1000000000"),
        ({"n_embd": 32}, [], "train_state.safetensors does not match the model in"),
        (None, ["--n-layer", "1"], "--n-layer 1 does not match the run"),  # n_layer missing: the default, 4
        ({"data": 5}, [], "--data must be a path, got 5"),
        ({"data": []}, [], "--data must be a path, got []"),
    ],
    ids=["not-a-dict", "not-an-integer", "absurd", "another-width", "missing-with-a-flag", "data-5", "data-list"],
)
def test_a_damaged_training_config_refuses_to_resume(run_dir, monkeypatch, capsys, train_section, flags, message):
    config = json.loads((run_dir / ckpt.CONFIG_FILE).read_text())
    if isinstance(train_section, dict):
        config["train"].update(train_section)
    elif train_section is None:
        del config["train"]["n_layer"]
    else:
        config["train"] = train_section
    atomic.atomic_write_json(run_dir / ckpt.CONFIG_FILE, config)
    refuse_to_build(monkeypatch)
    before = files(run_dir)
    status, _, err = run_cli(["train", "--out", run_dir, "--resume", *flags], capsys)
    assert status == 2
    assert_one_line(err, message)
    assert files(run_dir) == before


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n_layer", [1, 3])
def test_the_shapes_computed_from_a_config_are_the_models(bias, n_layer):
    config = GPTConfig(vocab_size=13, block_size=5, n_layer=n_layer, n_head=2, n_embd=6, bias=bias)
    shapes = parameter_shapes(config)
    state = GPT(config, rng=np.random.default_rng(0)).state_dict()
    assert list(shapes) == list(state)
    assert shapes == {name: array.shape for name, array in state.items()}


def write_raw(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


@pytest.mark.parametrize(
    "header, data, message",
    [
        (
            {"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}},
            b"\0" * 16,
            "the entry of 'w' does not fit the file",
        ),
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}, b"\0" * 16, "'w' does not fit"),
        ({"w": {"dtype": "X99", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "'w' does not fit"),
        ({"w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4, "'w' does not fit"),
        ({"w": [1, 2]}, b"", "'w' does not fit"),
        ({"__metadata__": {"a": 1}}, b"", "its metadata are not strings"),
    ],
    ids=["huge-shape", "short-range", "unknown-dtype", "bool-dimension", "not-an-entry", "bad-metadata"],
)
def test_a_header_that_lies_is_refused_before_any_data_are_read(tmp_path, header, data, message):
    path = tmp_path / "ckpt.safetensors"
    write_raw(path, header, data)
    with pytest.raises(ckpt.CheckpointError, match=re.escape(message)):
        ckpt.load_arrays(path)


@pytest.mark.parametrize(
    "header, message",
    [
        (b"{}", "its header claims 1000000000 bytes, the file holds 2"),
        (b"[" * 100_000, "its header is not JSON"),  # nested past Python's recursion limit
    ],
    ids=["longer-than-the-file", "nested-too-deep"],
)
def test_a_header_that_cannot_be_parsed_is_refused(tmp_path, header, message):
    path = tmp_path / "ckpt.safetensors"
    length = 10**9 if header == b"{}" else len(header)
    path.write_bytes(length.to_bytes(8, "little") + header)
    with pytest.raises(ckpt.CheckpointError, match=message):
        ckpt.load_arrays(path)


def test_weights_must_be_floating_point(tmp_path):
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), rng=np.random.default_rng(0))
    state = model.state_dict()
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"].astype(np.int64)
    ckpt.save_arrays(tmp_path / "ckpt.safetensors", state)
    with pytest.raises(ckpt.CheckpointError, match="transformer.wpe.weight is stored as I64, expected floating point"):
        ckpt.load_arrays(tmp_path / "ckpt.safetensors", parameter_shapes(model.config))


def test_files_without_a_checksum_still_load(tmp_path):
    """A checkpoint saved by PyTorch's safetensors carries no checksum; it loads as before."""
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), rng=np.random.default_rng(0))
    state = {name: a.copy() for name, a in model.state_dict().items()}
    (tmp_path / "ckpt.safetensors").write_bytes(plain_safetensors(state))
    arrays, metadata = ckpt.load_arrays(tmp_path / "ckpt.safetensors", parameter_shapes(model.config))
    assert metadata == {}
    np.testing.assert_array_equal(arrays["lm_head.weight"], state["lm_head.weight"])


@pytest.mark.parametrize("where", ["a weight", "the metadata"])
def test_a_change_that_leaves_a_valid_file_is_found_by_the_checksum(tmp_path, where):
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), rng=np.random.default_rng(0))
    path = tmp_path / "ckpt.safetensors"
    ckpt.save_model(path, model.state_dict(), iter=7)
    data = path.read_bytes()
    if where == "a weight":
        data = data[:-3] + bytes([data[-3] ^ 0x01]) + data[-2:]  # a low bit of a weight: still a valid float
    else:
        data = data.replace(b'"iter":"7"', b'"iter":"8"')
    ckpt.load_arrays(tmp_path / "ckpt.safetensors")  # still well-formed
    path.write_bytes(data)
    with pytest.raises(
        ckpt.CheckpointError, match="is damaged: its contents do not match the checksum saved with them"
    ):
        ckpt.load_arrays(path, parameter_shapes(model.config))


# ---------------------------------------------------------------- damaged files


def damaged(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """`data` damaged in one of these ways (None where it has nothing to damage that way):

    "flip" xors three random bytes with random masks; "bit" flips one bit (ASCII text mostly
    stays text); "digit" turns one decimal digit into another (JSON stays valid, a number
    changes); "truncate" cuts the file short (the closing brace of JSON goes too); "extend"
    appends random bytes.
    """
    out = bytearray(data)
    if kind == "truncate":
        return data[: int(rng.integers(0, max(1, len(data) - 2)))]
    if kind == "extend":
        return data + rng.bytes(int(rng.integers(1, 64)))
    if not out:
        return None
    if kind == "flip":
        for position in rng.choice(len(out), size=min(3, len(out)), replace=False):
            out[position] ^= int(rng.integers(1, 256))
    elif kind == "bit":
        out[int(rng.integers(len(out)))] ^= 1 << int(rng.integers(8))
    else:
        digits = [i for i, byte in enumerate(out) if chr(byte).isdigit()]
        if not digits:
            return None
        position = digits[int(rng.integers(len(digits)))]
        out[position] = ord("0") + (out[position] - ord("0") + int(rng.integers(1, 10))) % 10
    return bytes(out)


# files whose every change is detected: their checksums are stored beside the data
CHECKSUMMED = {ckpt.CKPT_FILE, ckpt.STATE_ARRAYS_FILE, ckpt.STATE_JSON_FILE}
# files a command does not read, so damage to them cannot matter to it; it reads every other
# file of the run (the vocabulary or tokenizer file whatever its name, and any file added later)
NOT_READ_BY = {
    "sample": {ckpt.LOG_FILE, ckpt.PLOT_FILE, LOCK_FILE, ckpt.STATE_ARRAYS_FILE, ckpt.STATE_JSON_FILE},
    "resume": {ckpt.LOG_FILE, ckpt.PLOT_FILE, LOCK_FILE},
}
DAMAGES = [("flip", 0), ("bit", 0), ("bit", 1), ("digit", 0), ("digit", 1), ("truncate", 0), ("extend", 0)]


def test_every_file_of_a_run_damaged_in_every_way(trained, tmp_path, capsys):
    """Damage each file present in a run directory in each way of `damaged`, then sample and resume.

    Either the command refuses with one line naming the file and exit 2, or, if the damage
    left a file that is still well-formed and consistent (a changed learning rate, a log
    nobody reads), it succeeds; never a traceback or another status. Damage to a file the
    command reads is always refused when the file is checksummed or cut short; a resumed run
    rewrites the files it does not read (log.csv, loss.png) from its saved state.
    """
    original = trained / "run"
    names = sorted(files(original, skip=()))
    assert {ckpt.CKPT_FILE, ckpt.STATE_JSON_FILE, ckpt.CONFIG_FILE, LOCK_FILE} <= set(names)
    for name in names:
        for kind, seed in DAMAGES:
            rng = np.random.default_rng([seed, sum(name.encode())])
            bad = damaged((original / name).read_bytes(), kind, rng)
            if bad is None:
                continue
            for command in ("sample", "resume"):
                run_dir = tmp_path / f"{name}-{kind}-{seed}-{command}"
                shutil.copytree(original, run_dir)
                (run_dir / name).write_bytes(bad)
                argv = (
                    ["sample", "--out", run_dir, "--max-new-tokens", "5"]
                    if command == "sample"
                    else ["train", "--out", run_dir, "--resume"]
                )
                status, _, err = run_cli(argv, capsys)
                assert status in (0, 2), (name, kind, command, err)
                if status == 2:
                    assert_one_line(err)
                    assert str(run_dir) in err or "corpus" in err, err
                must_refuse = name not in NOT_READ_BY[command] and (name in CHECKSUMMED or kind == "truncate")
                if must_refuse:
                    assert status == 2, (name, kind, seed, command)
                if name in NOT_READ_BY[command]:
                    assert status == 0, (name, kind, command, err)
                if command == "resume" and name in NOT_READ_BY[command]:
                    same = (LOCK_FILE, ckpt.CONFIG_FILE)  # config.json names its own directory in "out"
                    assert files(run_dir, skip=same) == files(original, skip=same), name  # made whole again
                shutil.rmtree(run_dir)


# ---------------------------------------------------------------- two trainers, kills, readers


def start_trainer(run_dir: Path, *flags: str, corpus: Path | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "transformer", "train", "--out", str(run_dir), *flags]
    if corpus is not None:
        argv += ["--data", str(corpus)]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each line arrives as it is printed
    return subprocess.Popen(argv, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill(process: subprocess.Popen) -> bool:
    """SIGKILL the trainer and reap it; True if it was still running."""
    running = process.poll() is None
    process.kill()
    process.wait()
    process.stdout.close()
    process.stderr.close()
    return running


def wait_for_line(process: subprocess.Popen, fragment: str, count: int = 1) -> None:
    """Read the trainer's stdout until `fragment` has appeared `count` times."""
    seen = 0
    for line in process.stdout:
        seen += fragment in line
        if seen == count:
            return
    raise AssertionError(f"the trainer ended before printing {fragment!r}: {process.stderr.read()}")


def long_run_flags(max_iters: int) -> list[str]:
    flags = list(TINY_FLAGS)
    flags[flags.index("--max-iters") + 1] = str(max_iters)
    flags[flags.index("--eval-interval") + 1] = "1"
    return flags


def test_a_second_trainer_is_refused_and_a_killed_one_leaves_no_lock(run_dir, trained, capsys):
    first = start_trainer(run_dir, "--resume", "--max-iters", "100000")
    try:
        wait_for_line(first, "resuming")
        assert (run_dir / LOCK_FILE).read_text().strip() == str(first.pid)
        for argv in (
            ["train", "--out", run_dir, "--resume"],
            ["train", "--data", trained / "corpus.txt", "--out", run_dir, *TINY_FLAGS],
        ):
            status, _, err = run_cli(argv, capsys)
            assert status == 2
            assert_one_line(err, f"{run_dir} is being written by another trainer (pid {first.pid})")
        assert (run_dir / LOCK_FILE).read_text().strip() == str(first.pid)  # still the holder's
    finally:
        kill(first)
    # the kernel dropped the lock with the process: the run resumes at once, from wherever it got to
    reached = train_state.load_train_state(run_dir)[1]["iter"]
    status, out, err = run_cli(["train", "--out", run_dir, "--resume", "--max-iters", str(reached + 2)], capsys)
    assert status == 0, err
    assert not temporaries(run_dir)


def test_resuming_a_run_that_does_not_exist_creates_nothing(tmp_path):
    config = train_module.TrainConfig(out=str(tmp_path / "nothing"))
    with pytest.raises(ckpt.CheckpointError, match="no run in .*nothing to resume"):
        train_module.train(config, resume=True)
    assert not (tmp_path / "nothing").exists()


def test_the_lock_is_held_in_process_too_and_released_after(tmp_path):
    with locked_run_dir(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(ckpt.CheckpointError, match=f"being written by another trainer \\(pid {os.getpid()}\\)"):
            with locked_run_dir(tmp_path):
                pass
    with locked_run_dir(tmp_path):  # released: it can be taken again
        pass
    assert (tmp_path / LOCK_FILE).read_bytes() == b""


def test_taking_the_lock_removes_what_a_killed_writer_left(tmp_path):
    leftover = tmp_path / f".ckpt.safetensors.{'0' * 32}.tmp"
    leftover.write_bytes(b"half a checkpoint")
    (tmp_path / "notes.tmp").write_text("not ours")
    with locked_run_dir(tmp_path):
        pass
    assert not leftover.exists() and (tmp_path / "notes.tmp").exists()


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(trained, tmp_path, capsys):
    reference = tmp_path / "reference"
    flags = long_run_flags(12)
    assert run_cli(["train", "--data", trained / "corpus.txt", "--out", reference, *flags], capsys)[0] == 0

    run_dir = tmp_path / "killed"
    rng = np.random.default_rng(18)
    trainer = start_trainer(run_dir, *flags, corpus=trained / "corpus.txt")
    wait_for_line(trainer, "iter ", count=2)  # the state of iteration 0 is saved by now
    killed_while_training = 0
    for _ in range(3):
        time.sleep(float(rng.uniform(0.0, 0.4)))  # perhaps in the middle of a save
        killed_while_training += kill(trainer)
        trainer = start_trainer(run_dir, "--resume")
        wait_for_line(trainer, "resuming")
    killed_while_training += kill(trainer)
    assert killed_while_training >= 1

    status, _, err = run_cli(["train", "--out", run_dir, "--resume"], capsys)
    assert status == 0, err
    assert files(run_dir)[ckpt.LOG_FILE] == files(reference)[ckpt.LOG_FILE]  # row for row
    assert_same_arrays(run_dir / ckpt.CKPT_FILE, reference / ckpt.CKPT_FILE)
    _, info = train_state.load_train_state(run_dir)
    _, reference_info = train_state.load_train_state(reference)
    assert info["rng"] == reference_info["rng"] and info["iter"] == 12
    assert_same_arrays(run_dir / ckpt.STATE_ARRAYS_FILE, reference / ckpt.STATE_ARRAYS_FILE, same_metadata=False)
    assert not temporaries(run_dir)


def test_a_closed_stdout_stops_training_with_one_line_and_the_run_resumes(trained, tmp_path):
    """`minigrad-gpt train | head -1`: the reader goes away mid-run; the next line printed finds
    the pipe closed. Every file is saved before its line is printed, so the run resumes."""
    run_dir = tmp_path / "run"
    trainer = start_trainer(run_dir, *long_run_flags(100_000), corpus=trained / "corpus.txt")
    wait_for_line(trainer, "corpus:")
    trainer.stdout.close()
    assert trainer.wait(timeout=60) == 2
    err = trainer.stderr.read()
    trainer.stderr.close()
    assert_one_line(err, "stdout was closed before the output ended (a broken pipe); training stopped.")
    assert err.endswith(f"Continue with: minigrad-gpt train --out {run_dir} --resume\n")
    assert train_state.load_train_state(run_dir)[1]["iter"] >= 0  # whole, with the weights saved beside it
    ckpt.load_run(run_dir)


def test_sigterm_saves_and_stops_as_ctrl_c_does(trained, tmp_path):
    run_dir = tmp_path / "run"
    trainer = start_trainer(run_dir, *long_run_flags(100_000), corpus=trained / "corpus.txt")
    wait_for_line(trainer, "iter ", count=2)
    trainer.terminate()
    assert trainer.wait(timeout=60) == 130
    err = trainer.stderr.read()
    kill(trainer)
    assert "Traceback" not in err and f"the state is saved. Continue with: minigrad-gpt train --out {run_dir}" in err
    assert train_state.load_train_state(run_dir)[1]["iter"] >= 2


def test_a_loss_that_becomes_nan_stops_training_and_saves_nothing_of_it(trained, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--data", trained / "corpus.txt", "--out", run_dir, *TINY_FLAGS, "--learning-rate", "1e300"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's overflow warnings included: the one line says it all
        status, out, err = run_cli(argv, capsys)
    assert status == 2
    assert_one_line(err, "training diverged: the loss is nan at iteration 1;", "Try a smaller --learning-rate")
    assert "iter 0:" in out  # step 0 took the weights out of range; what iteration 0 saved is finite
    assert train_state.load_train_state(run_dir)[1]["iter"] == 0
    weights, _ = ckpt.load_arrays(run_dir / ckpt.CKPT_FILE)
    assert all(np.isfinite(array).all() for array in weights.values())


def test_sampling_into_a_closed_pipe_is_one_line(trained):
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -c 20` once it has its bytes
    argv = [sys.executable, "-m", "transformer", "sample", "--out", str(trained / "run")]
    result = subprocess.run(argv, cwd=REPO, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert result.returncode == 2
    assert_one_line(result.stderr, "minigrad-gpt sample: error: stdout was closed before the output ended")


def test_sampling_while_a_run_is_trained_reads_the_last_complete_checkpoint(trained, tmp_path, capsys):
    run_dir = tmp_path / "run"
    trainer = start_trainer(run_dir, *long_run_flags(100_000), corpus=trained / "corpus.txt")
    try:
        wait_for_line(trainer, "iter ", count=2)
        saved_at, deadline = set(), time.monotonic() + 60
        while len(saved_at) < 3 and time.monotonic() < deadline:
            status, _, err = run_cli(["sample", "--out", run_dir, "--max-new-tokens", "3"], capsys)
            assert status == 0, err  # never a half-written or mismatched file
            saved_at.add(ckpt.load_arrays(run_dir / ckpt.CKPT_FILE)[1]["iter"])
        assert trainer.poll() is None and len(saved_at) == 3  # the trainer replaced it while it was read
    finally:
        kill(trainer)
