"""The core stays small enough to read in one sitting, and every public name can be found by grep."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import minigrad as mg
from minigrad import Tensor

PACKAGE = Path(mg.__file__).parent
TRANSFORMER = PACKAGE.parent / "transformer"


def lines(name: str) -> int:
    return len((PACKAGE / name).read_text(encoding="utf-8").splitlines())


def test_the_core_files_stay_short():
    assert lines("tensor.py") <= 500
    assert lines("autograd.py") <= 300


def test_the_training_loop_reads_in_one_file_of_nanogpts_length():
    assert len((TRANSFORMER / "train.py").read_text(encoding="utf-8").splitlines()) <= 350


def test_no_function_in_minigrad_or_transformer_is_longer_than_a_screen():
    long = []
    for path in sorted([*PACKAGE.rglob("*.py"), *TRANSFORMER.rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert not long, long


def test_every_method_of_tensor_is_named_in_tensor_py():
    """A method defined elsewhere (composed.py, torch_spellings.py) is listed where Tensor is."""
    source = (PACKAGE / "tensor.py").read_text(encoding="utf-8")
    names = [name for name in vars(Tensor) if name not in ("__module__", "__doc__")]
    missing = [name for name in names if not re.search(rf"\b{re.escape(name)}\b", source)]
    assert not missing, missing


def test_every_exported_name_is_imported_by_name():
    """`mg.sum` comes from a line of minigrad/__init__.py that names it, never from globals()."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert set(mg.__all__) <= imported, sorted(set(mg.__all__) - imported)
    assert "globals()" not in (PACKAGE / "__init__.py").read_text(encoding="utf-8")
