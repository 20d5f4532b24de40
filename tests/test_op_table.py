"""docs/ops.md lists every op: a new Function without a row, or a row that names the wrong
file or a test that does not check its op, fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from test_ops_gradcheck import CHECKED_ELSEWHERE, function_classes, public_ops, registered_tests

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "docs" / "ops.md"
OP = re.compile(r"^`(ops|functional|kernels|conv)\.(\w+)`$")
TEST_FILES = ("test_ops_gradcheck",) + CHECKED_ELSEWHERE
TEST = re.compile(rf"^`({'|'.join(TEST_FILES)})\.py::(\w+)`$")
LINK = re.compile(r"^\[[^\]]+\]\(\.\./(minigrad/\w+\.py)\)$")


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row of a Markdown text (header and separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells[0] != "Op":
            rows.append(cells)
    return rows


def op_rows(text: str) -> dict[type, list[str]]:
    """Function class -> its row, for the rows whose first cell names a Function."""
    classes = {(cls.__module__.rsplit(".", 1)[-1], cls.__name__): cls for cls in function_classes()}
    rows = {}
    for cells in table_rows(text):
        match = OP.match(cells[0])
        if match:
            assert match.groups() in classes, f"docs/ops.md lists {cells[0]}, which is not a Function"
            cls = classes[match.groups()]
            assert cls not in rows, f"{cells[0]} appears twice in docs/ops.md"
            rows[cls] = cells
    return rows


def missing_rows(text: str) -> list[str]:
    listed = op_rows(text)
    return sorted(f"{cls.__module__}.{cls.__name__}" for cls in function_classes() if cls not in listed)


def test_every_function_has_a_row():
    missing = missing_rows(TABLE.read_text(encoding="utf-8"))
    assert not missing, f"docs/ops.md has no row for {missing}"


def test_a_deleted_row_is_noticed():
    text = TABLE.read_text(encoding="utf-8")
    without_exp = "\n".join(line for line in text.splitlines() if not line.startswith("| `ops.Exp`"))
    assert missing_rows(without_exp) == ["minigrad.ops.Exp"]


def test_a_deleted_row_of_a_convolution_primitive_is_noticed():
    text = TABLE.read_text(encoding="utf-8")
    without = "\n".join(line for line in text.splitlines() if not line.startswith("| `conv.Col2im`"))
    assert missing_rows(without) == ["minigrad.conv.Col2im"]


def test_each_row_names_its_file_and_a_test_that_checks_it():
    for cls, cells in op_rows(TABLE.read_text(encoding="utf-8")).items():
        assert len(cells) == 7, f"the row of {cls.__name__} needs 7 cells, has {len(cells)}"
        op, _, forward, derivative, second_derivative, file_cell, test_cell = cells
        assert forward and derivative, f"{op}: forward and derivative must be written out"
        assert second_derivative, f"{op}: the second derivative must be written out"
        link = LINK.match(file_cell)
        assert link and link.group(1) == cls.__module__.replace(".", "/") + ".py", f"{op}: file {file_cell}"
        test = TEST.match(test_cell)
        assert test, f"{op}: test cell {test_cell} should read `test_ops_gradcheck.py::test_name`"
        assert test.group(2) in registered_tests()[cls], f"{op}: {test.group(2)} is not registered as checking it"


def test_composed_rows_name_existing_tests():
    op_tables = TABLE.read_text(encoding="utf-8").split("## PyTorch names")[0]  # that table maps names
    for cells in table_rows(op_tables):
        test = TEST.match(cells[-1])
        assert test, f"row {cells[0]}: last cell {cells[-1]} is not a test"
        module = importlib.import_module(test.group(1))
        assert callable(getattr(module, test.group(2), None)), f"no test named {test.group(2)} in {test.group(1)}.py"


def test_every_public_op_has_a_row():
    """Each public op is named, called, in some row: `x.cumsum(`, `mg.einsum(`, `F.silu(`."""
    rows = "\n".join(" | ".join(cells) for cells in table_rows(TABLE.read_text(encoding="utf-8")))
    spelled = {"Tensor": ".", "mg": "mg.", "F": "F."}
    missing = []
    for name in public_ops():
        owner, attribute = name.split(".")
        if attribute == "__getitem__":
            continue  # the GetItem row: `a[index]`
        if f"{spelled[owner]}{attribute}(" not in rows:
            missing.append(name)
    assert not missing, f"docs/ops.md has no row calling {sorted(missing)}"
