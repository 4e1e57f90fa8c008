"""Checks of the book's own rules: clean notebooks, one repository URL, table of contents, template, CI."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]*_*.ipynb"))


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_chapters():
    assert CHAPTERS, "book/ holds no chapter notebooks"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    dirty = [i for i, c in enumerate(_cells(path)) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", [*CHAPTERS, ROOT / "book" / "teaching_guide.ipynb"], ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path):
    """nbformat 4.5 cell ids: a cell without one makes every build warn (MissingIDFieldWarning)."""
    ids = [c.get("id") for c in _cells(path)]
    missing = [i for i, c in enumerate(ids) if not c]
    assert not missing, f"{path.name}: cells {missing} have no id; add one (nbformat.validator.normalize)"
    assert len(set(ids)) == len(ids), f"{path.name}: cell ids repeat"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_setup_cell_installs_from_the_configured_repository(path):
    url = _config()["repository"]["url"].rstrip("/")
    branch = _config()["repository"]["branch"]
    first_code = next(_source(c) for c in _cells(path) if c["cell_type"] == "code")
    found = re.findall(r'REPO_URL\s*=\s*"([^"]+)"', first_code)
    assert found == [url], f"{path.name}: first code cell must set REPO_URL = {url!r}, found {found}"
    assert f'git+{{REPO_URL}}@{branch}' in first_code, f"{path.name}: setup cell must install branch {branch!r}"
    assert "pip" in first_code and "seed_everything" in first_code and "get_device" in first_code


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_setup_cell_is_the_generated_one(path):
    """The first code cell is tools/setup_cell.py's SETUP_CELL, character for character (no drift between chapters)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("setup_cell", ROOT / "tools" / "setup_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = next(c for c in _cells(path) if c["cell_type"] == "code")
    assert _source(first) == module.SETUP_CELL, f"{path.name}: first code cell differs from SETUP_CELL; run python tools/setup_cell.py"
    assert "hide-input" in first.get("metadata", {}).get("tags", []), f"{path.name}: the setup cell must be tagged hide-input"


def test_table_of_contents_lists_every_chapter_once():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = [entry["file"] for entry in toc["chapters"]]
    assert len(listed) == len(set(listed))
    for path in CHAPTERS:
        assert f"book/{path.stem}" in listed, f"{path.name} is missing from _toc.yml"
    for entry in listed + [toc["root"]]:
        assert any((ROOT / f"{entry}{ext}").is_file() for ext in (".ipynb", ".md")), f"_toc.yml lists missing {entry}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_follows_the_template(path):
    headings = [line.strip() for c in _cells(path) if c["cell_type"] == "markdown" for line in _source(c).splitlines() if line.startswith("#")]
    assert headings[0].startswith("# "), f"{path.name} must open with a level-1 title"
    for required in ("## Overview", "## Summary", "## Exercises"):
        assert required in headings, f"{path.name} lacks the section {required!r}"
    assert headings.index("## Overview") < headings.index("## Summary") < headings.index("## Exercises")
    text = "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")
    has_solutions = "{solution}" in text or "{solution-start}" in text
    assert has_solutions and ":class: dropdown" in text, f"{path.name}: exercises need dropdown solutions"
    assert "{glue:text}" in text, f"{path.name}: numbers in the prose must be glued from cells"
    asserts = [c for c in _cells(path) if c["cell_type"] == "code" and re.search(r"^assert ", _source(c), re.M)]
    assert asserts, f"{path.name}: the chapter's claims must be asserted in code cells"


def test_runtime_table_covers_every_chapter_within_budget():
    with open(ROOT / "book" / "runtimes.csv") as fh:
        rows = list(csv.DictReader(fh))
    numbers = {row["Chapter"] for row in rows}
    for path in CHAPTERS:
        number = path.stem.split("_")[0].lstrip("0")
        assert number in numbers, f"book/runtimes.csv has no time for {path.name}; run tools/time_chapters.py"
    for row in rows:
        assert 0 < float(row["Run time on CPU (s)"]) <= float(row["Budget (s)"]), row


def test_introduction_states_a_memory_that_covers_every_chapter():
    """The introduction's "a laptop with N GB of free memory runs any chapter" holds for the measured peaks."""
    stated = re.search(r"laptop with (\d+) GB of free memory", (ROOT / "book" / "intro.md").read_text())
    assert stated, "book/intro.md no longer says how much memory a chapter needs"
    with open(ROOT / "book" / "runtimes.csv") as fh:
        peak = max(float(row["Peak memory (MB)"]) for row in csv.DictReader(fh))
    assert peak < int(stated.group(1)) * 1024, f"a chapter peaks at {peak:.0f} MB, above the stated {stated.group(1)} GB"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_command = next(b for b in blocks if "pytest" in b).strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in [line.strip() for line in ci], f".ci/run must run the README's test command {test_command!r}"
    build_command = next(b for b in blocks if "jupyter-book build" in b)
    assert "requirements.txt" in build_command
    # the build uses the machine's own CPU kernels, the tests other ones: every chapter runs on two kernel sets
    assert test_command.startswith("ONEDNN_MAX_CPU_ISA=AVX ATEN_CPU_CAPABILITY=default ")
    build_line = next(line for line in ci if "jupyter-book build" in line)
    assert "ATEN_CPU_CAPABILITY" not in build_line and not any(l.strip().startswith("export") and "ISA" in l for l in ci)


def test_requirements_pin_torch():
    req = (ROOT / "requirements.txt").read_text().split()
    assert "torch==2.14.1" in req and "torchvision==0.29.1" in req


def _markdown(path: Path) -> str:
    return "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_an_executed_solution(path):
    """Solutions use sphinx-exercise's gated syntax, so their code runs under nbval and in the build."""
    cells = _cells(path)
    exercises = re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", _markdown(path))
    assert exercises, f"{path.name} has no labelled exercise"
    starts = {}
    for i, c in enumerate(cells):
        found = re.search(r"\{solution-start\} ([\w-]+)", _source(c)) if c["cell_type"] == "markdown" else None
        if found:
            starts[found.group(1)] = i
    assert sorted(starts) == sorted(exercises), f"{path.name}: exercises {exercises} need gated solutions, found {sorted(starts)}"
    for label, i in starts.items():
        end = next(j for j in range(i + 1, len(cells)) if "{solution-end}" in _source(cells[j]))
        inside = cells[i + 1 : end]
        assert any(c["cell_type"] == "code" for c in inside), f"{path.name}: the solution of {label} runs no code"
        assert not any("{solution-start}" in _source(c) for c in inside), f"{path.name}: solution {label} is not closed"
    assert not re.search(r"```\{solution\}", _markdown(path)), f"{path.name}: a solution is not gated (its code would not run)"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_prose_follows_the_books_rules(path):
    text = _markdown(path)
    assert not re.search(r"\bwe expected\b", text, re.I), f"{path.name}: 'we expected' without a source; cite the literature value instead"
    typed = re.findall(r"\b(?:[Ee]xercise|[Ff]igure|[Ss]ection) \d+\b", text)
    assert not typed, f"{path.name}: refer by cross-reference, not by typed number: {typed}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_glue_only_cells_are_hidden_and_claims_are_commented(path):
    for i, c in enumerate(_cells(path)):
        if c["cell_type"] != "code":
            continue
        lines = [line for line in _source(c).splitlines() if line.strip() and not line.strip().startswith("#")]
        tags = c.get("metadata", {}).get("tags", [])
        if lines and all(line.lstrip().startswith(("glue(", "for ", ")", "]")) or "glue(" in line for line in lines) \
                and any("glue(" in line for line in lines) and all("print(" not in line for line in lines):
            assert {"remove-cell", "remove-input", "hide-cell"} & set(tags), f"{path.name}: cell {i} only glues; tag it remove-cell"
        assert not re.search(r"^\s*#\s*assert\b", _source(c), re.M), \
            f"{path.name}: cell {i} holds a commented-out assert; assert the claim or drop it"
        source_lines = _source(c).splitlines()
        for j, line in enumerate(source_lines):
            if line.startswith("assert "):
                above = source_lines[j - 1].strip() if j else ""
                assert above.startswith("#") or source_lines[j - 1].startswith("assert "), \
                    f"{path.name}: cell {i}: the assert on line {j + 1} needs a one-line comment stating its claim"


def test_every_bibliography_entry_is_cited_and_every_citation_exists():
    """references.bib holds exactly the works the book cites (the reference page lists them all)."""
    keys = set(re.findall(r"@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text()))
    text = "\n".join(_source(c) for path in CHAPTERS for c in _cells(path))
    text += "\n".join(p.read_text() for p in (ROOT / "book").glob("*.md"))
    cited = {k.strip() for group in re.findall(r"\{cite[:\w]*\}`([^`]+)`", text) for k in group.split(",")}
    assert not keys - cited, f"uncited bibliography entries: {sorted(keys - cited)}; cite them where they fit or remove them"
    assert not cited - keys, f"citations missing from references.bib: {sorted(cited - keys)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_overview_states_the_budget_of_the_runtime_table(path):
    """A chapter's "budget of N seconds" is the table's budget column (no stale number after a change)."""
    with open(ROOT / "book" / "runtimes.csv") as fh:
        budgets = {row["Budget (s)"] for row in csv.DictReader(fh)}
    text = "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")
    stated = re.findall(r"budget of\s+(\d+)\s+seconds", text)
    assert stated, f"{path.name}: the overview no longer states the course's run-time budget"
    assert set(stated) <= budgets and len(budgets) == 1, (path.name, stated, budgets)
