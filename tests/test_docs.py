"""The docs cannot rot: every ```python block in README.md and docs/*.md runs, and every link resolves.

Blocks of one file run in order in one shared namespace, as a reader would type them into one
session. A block opts out only with an explicit marker on its fence, ```python no-run, kept
for the rare snippet that needs something the suite cannot provide (a finished training run).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def code_blocks(text: str) -> list[tuple[int, str, str]]:
    """Fenced blocks of a Markdown text as (line number of the fence, info string, code)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info, start = opening["fence"], opening["info"].strip(), i
        body = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i])
            i += 1
        blocks.append((start + 1, info, "\n".join(body) + "\n"))
        i += 1
    return blocks


def runnable(info: str) -> bool:
    words = info.split()
    return bool(words) and words[0] == "python" and "no-run" not in words[1:]


def test_code_block_parser_reads_fences_and_markers():
    text = "intro\n```python\nx = 1\n```\n\n```python no-run\nboom()\n```\n````sh\nmake\n````\n"
    blocks = code_blocks(text)
    assert [(line, info) for line, info, _ in blocks] == [(2, "python"), (6, "python no-run"), (9, "sh")]
    assert blocks[0][2] == "x = 1\n"
    assert [runnable(info) for _, info, _ in blocks] == [True, False, False]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_run(document: Path, tmp_path, monkeypatch):
    """Run the file's blocks in order in one namespace, in a scratch directory."""
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__doc__"}
    blocks = [(line, code) for line, info, code in code_blocks(document.read_text(encoding="utf-8")) if runnable(info)]
    for line, code in blocks:
        where = f"{document.relative_to(REPO)}:{line}"
        try:
            exec(compile(code, where, "exec"), namespace)
        except Exception:
            pytest.fail(f"the python block at {where} failed:\n{code}\n{traceback.format_exc()}", pytrace=False)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose(text: str) -> str:
    """The text outside fenced blocks (code may contain `#` comments and `a[i](x)` calls)."""
    lines, fence = [], None
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening["fence"]
        elif fence is not None and line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
            fence = None
        elif fence is None:
            lines.append(line)
    return "\n".join(lines)


def _anchors(document: Path) -> set[str]:
    text = prose(document.read_text(encoding="utf-8"))
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(document: Path):
    """Every relative link and picture points at a file that exists (and a heading, if it names one)."""
    text = prose(document.read_text(encoding="utf-8"))
    broken = []
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto: — outside the repository
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{document.relative_to(REPO)} has broken links: {', '.join(broken)}"


def test_readme_links_every_doc():
    """One click from the README to every guide."""
    readme = prose((REPO / "README.md").read_text(encoding="utf-8"))
    targets = {m["target"].partition("#")[0] for m in LINK.finditer(readme)}
    missing = [f"docs/{p.name}" for p in DOCUMENTS[1:] if f"docs/{p.name}" not in targets]
    assert not missing, f"README.md does not link to {', '.join(missing)}"


def test_every_figure_is_drawn_by_the_project():
    """No picture pasted by hand: each file in docs/figures is named by make_docs.py or an example it runs,
    and every picture the docs show lives in docs/figures."""
    producers = (REPO / "tools" / "make_docs.py").read_text(encoding="utf-8") + "".join(
        p.read_text(encoding="utf-8") for p in (REPO / "examples").glob("*.py")
    )
    orphans = [p.name for p in (REPO / "docs" / "figures").iterdir() if p.name not in producers]
    assert not orphans, f"no code in tools/make_docs.py or examples/ draws {', '.join(orphans)}"
    for document in DOCUMENTS:
        for match in LINK.finditer(prose(document.read_text(encoding="utf-8"))):
            if match[0].startswith("!"):
                picture = (document.parent / match["target"]).resolve()
                assert picture.parent == REPO / "docs" / "figures", f"{document.name} shows {match['target']}"


def test_make_docs_draws_the_graphs(tmp_path):
    """The cheap step of `make docs` runs end to end (the others are the examples, smoke-tested)."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_docs.py"), "--only", "graphs", "--figures", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    gpt = (tmp_path / "gpt_graph.svg").read_text(encoding="utf-8")
    assert gpt.startswith("<?xml") and "transformer.h.1" in gpt and "lm_head" in gpt
    assert "ln_1.weight" in (tmp_path / "block_graph.svg").read_text(encoding="utf-8")
    assert "grad" in (tmp_path / "autograd_graph.svg").read_text(encoding="utf-8")


CODE_REFERENCE = re.compile(r"\]\((?P<path>[^)\s#]+\.py)\)(?P<names>(?:,?\s+(?:and\s+)?`[\w.]+`)+)")


def test_code_references_name_what_the_file_defines():
    """ "[transformer/gpt.py](../transformer/gpt.py) `GPT.generate`" promises that gpt.py has GPT and generate.

    A renamed class, function or argument fails here until the docs follow it.
    """
    stale = []
    for document in DOCUMENTS:
        for match in CODE_REFERENCE.finditer(prose(document.read_text(encoding="utf-8"))):
            source = (document.parent / match["path"]).resolve()
            if not source.exists():
                continue  # reported by test_links_resolve
            code = source.read_text(encoding="utf-8")
            for name in re.findall(r"`([\w.]+)`", match["names"]):
                missing = [part for part in name.split(".") if not re.search(rf"\b{re.escape(part)}\b", code)]
                if missing:
                    stale.append(f"{document.name}: {match['path']} has no {', '.join(missing)} (from `{name}`)")
    assert not stale, "\n".join(stale)


def test_figures_are_current():
    """Every figure was drawn by today's code: manifest.json's hash of each figure's drawing code
    (tools/make_docs.py `SOURCES`) equals the hash of that code now, and every figure has one."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_docs
    finally:
        sys.path.remove(str(REPO / "tools"))
    figures = REPO / "docs" / "figures"
    recorded = json.loads((figures / make_docs.MANIFEST).read_text(encoding="utf-8"))
    expected = make_docs.expected_manifest()
    on_disk = {p.name for p in figures.iterdir()} - {make_docs.MANIFEST}
    assert on_disk == set(expected), (
        f"figures no step of tools/make_docs.py declares: {sorted(on_disk - set(expected))}; "
        f"declared but missing: {sorted(set(expected) - on_disk)}"
    )
    stale = sorted({entry["step"] for name, entry in expected.items() if recorded.get(name) != entry})
    hint = " ".join(f"--only '{step}'" for step in stale)
    assert not stale, f"figures older than the code that draws them; redraw with python tools/make_docs.py {hint}"


def test_a_changed_drawing_changes_its_hash(monkeypatch):
    """The staleness check can fail: editing the drawing code of a step changes that step's hash only."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_docs
    finally:
        sys.path.remove(str(REPO / "tools"))
    before = make_docs.expected_manifest()
    real = make_docs.source_text
    monkeypatch.setattr(make_docs, "source_text", lambda s: real(s) + ("#" if s == "examples/curvature.py" else ""))
    after = make_docs.expected_manifest()
    assert {name for name in before if before[name] != after[name]} == {"curvature.png"}


# a link to a source file or folder, then its length in lines: "[minigrad/ops.py](minigrad/ops.py) (886)"
LINE_COUNT = re.compile(r"\]\((?P<target>[\w/.]+)\)\s+\((?P<lines>\d+)(?: lines| in \w+ files)?\)")


def _lines(path: Path) -> int:
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    return sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)


def test_readme_line_counts_are_current():
    """The reading order promises each file's length; a file that grew or shrank is recounted."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    counts = [(m["target"], int(m["lines"])) for m in LINE_COUNT.finditer(readme)]
    assert len(counts) >= 20, f"the reading order's line counts were not found ({len(counts)})"
    actual = {target: _lines(REPO / target) for target, _ in counts}
    wrong = [f"{target} says {said}, has {actual[target]}" for target, said in counts if actual[target] != said]
    assert not wrong, "README.md's line counts are stale: " + "; ".join(wrong)
