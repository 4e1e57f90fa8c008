"""The student notebooks in student/: generated from the current chapters, free of solutions, runnable.

Design (CI time is tight and nbval already executes every chapter):

* one student notebook, the chapter with the shortest measured run time in book/runtimes.csv, is
  executed for real with nbclient in a fresh kernel, up to and including its first exercise skeleton:
  every cell before it must run without error, and the skeleton must fail with NotImplementedError and
  its message;
* for every other chapter the same is checked structurally: every cell before the first exercise is
  byte-identical to the chapter's (which nbval executes), and each skeleton cell, executed alone, raises
  NotImplementedError with the message.

Besides: no drift (regenerated in memory and compared with student/), no solution text (no solution
markers, none of the solutions' code lines, markdown or glue names), everything else identical.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_notebooks", ROOT / "tools" / "student_notebooks.py")
student_notebooks = sys.modules.setdefault("student_notebooks", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(student_notebooks)

CHAPTERS = student_notebooks.chapters()
_source = student_notebooks._source


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _student(chapter: Path) -> dict:
    return _load(ROOT / "student" / chapter.name)


def _is_skeleton(cell: dict) -> bool:
    return cell["cell_type"] == "code" and "skeleton" in cell.get("metadata", {}).get("tags", [])


def _has_marker(cell: dict) -> bool:
    return cell["cell_type"] == "markdown" and re.search(r"\{solution-(start|end)\}", _source(cell)) is not None


def test_every_chapter_of_the_table_of_contents_has_a_student_version():
    on_disk = sorted((ROOT / "book").glob("[0-9][0-9]*_*.ipynb"))
    assert CHAPTERS and sorted(CHAPTERS) == on_disk, "tools/student_notebooks.py must find every chapter in _toc.yml"
    assert sorted(p.name for p in (ROOT / "student").glob("*.ipynb")) == sorted(p.name for p in CHAPTERS)


def test_student_versions_are_regenerated_from_the_current_chapters():
    stale = [str(p.relative_to(ROOT)) for p in student_notebooks.stale()]
    assert not stale, f"{stale} differ from the chapters: run python tools/student_notebooks.py and commit student/"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_student_version_holds_no_solution_text(chapter):
    nb, student = _load(chapter), _student(chapter)
    text = "\n".join(_source(c) for c in student["cells"])
    assert "{solution-start}" not in text and "{solution-end}" not in text and "{solution}" not in text
    solutions = student_notebooks.solutions(nb)
    inside = {id(c) for cells in solutions.values() for c in cells}
    # lines the chapter also has outside its solutions (a repeated import, say) are not solution text
    outside = {line.strip() for c in nb["cells"] if id(c) not in inside and not _has_marker(c)
               for line in _source(c).splitlines()}
    student_lines = {line.strip() for c in student["cells"] for line in _source(c).splitlines()}
    assert sorted(solutions) == sorted(student_notebooks.exercise_titles(nb)), f"{chapter.name}: every exercise has a solution"
    for label, cells in solutions.items():
        for cell in cells:
            for line in _source(cell).splitlines():
                line = line.strip()
                if len(line) > 12 and not line.startswith("#") and line not in outside:
                    assert line not in student_lines, f"{chapter.name}: the solution of {label} shows in the student version: {line!r}"
            for name in re.findall(r"""glue\(\s*f?["']([\w{}]+)""", _source(cell)):
                stem = name.split("{")[0]
                assert stem and stem not in text, f"{chapter.name}: the solution of {label} glues {name!r}, which shows in the student version"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_everything_but_the_solutions_is_kept(chapter):
    nb, student = _load(chapter), _student(chapter)
    inside = {id(c) for cells in student_notebooks.solutions(nb).values() for c in cells}
    kept = [c for c in nb["cells"] if id(c) not in inside and not _has_marker(c)]
    plain = [c for c in student["cells"] if not _is_skeleton(c)]
    marked = [c for c in nb["cells"] if _has_marker(c)]
    it = iter(plain)
    for cell in kept:  # every chapter cell outside the solutions, unchanged and in order
        assert any(c == cell for c in it), f"{chapter.name}: cell {cell.get('id')} is missing or changed"
    for c in plain:  # the rest are pieces of cells that held a solution marker
        assert c in kept or any(_source(c) in _source(m) for m in marked), f"{chapter.name}: cell {c.get('id')} is new"
    skeletons = [c for c in student["cells"] if _is_skeleton(c)]
    assert len(skeletons) == len(student_notebooks.exercise_titles(nb)), f"{chapter.name}: one skeleton per exercise"
    assert student["metadata"] == nb["metadata"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_cells_before_the_first_exercise_are_the_chapters(chapter):
    """Byte-identical to the chapter (setup cell included), which nbval executes."""
    nb, student = _load(chapter), _student(chapter)
    first_marker = next(i for i, c in enumerate(nb["cells"]) if _has_marker(c))
    first_skeleton = next(i for i, c in enumerate(student["cells"]) if _is_skeleton(c))
    assert first_skeleton == first_marker
    before = lambda cells: json.dumps(cells[:first_marker], indent=1, ensure_ascii=False)  # noqa: E731
    assert before(student["cells"]) == before(nb["cells"])


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_skeleton_raises_a_clear_message(chapter):
    titles = student_notebooks.exercise_titles(_load(chapter))
    skeletons = [c for c in _student(chapter)["cells"] if _is_skeleton(c)]
    for label, cell in zip(titles, skeletons):
        assert label in _source(cell)
        with pytest.raises(NotImplementedError, match=rf"Exercise {label} .*is not done yet: write your solution"):
            exec(compile(_source(cell), label, "exec"), {})


def test_markers_sharing_a_cell_with_text_are_cut_out():
    md = lambda s: {"cell_type": "markdown", "id": f"m{len(s)}", "metadata": {}, "source": s}  # noqa: E731
    code = lambda s: {"cell_type": "code", "id": f"c{len(s)}", "metadata": {}, "outputs": [], "execution_count": None, "source": s}  # noqa: E731
    nb = {"metadata": {}, "nbformat": 4, "nbformat_minor": 5, "cells": [
        md("```{exercise} One\n:label: a-1\n\nDo it.\n```\n\n````{solution-start} a-1\n:class: dropdown\n````"),
        code("secret_one = 1"),
        md("Secret prose.\n\n````{solution-end}\n````\n\n```{exercise} Two\n:label: a-2\nAgain.\n```\n\n"
           "````{solution-start} a-2\n:class: dropdown\n````"),
        code("secret_two = 2"), md("````{solution-end}\n````"), md("After.")]}
    out = student_notebooks.student_version(nb)["cells"]
    kinds = [("skeleton" if _is_skeleton(c) else c["cell_type"]) for c in out]
    assert kinds == ["markdown", "skeleton", "markdown", "skeleton", "markdown"]
    text = "\n".join(_source(c) for c in out)
    assert "secret" not in text.lower() and "Do it." in text and "Again." in text and "After." in text
    assert len({c["id"] for c in out}) == len(out)
    with pytest.raises(ValueError, match="never closed"):
        student_notebooks.student_version({**nb, "cells": nb["cells"][:2]})


def _shortest_chapter() -> Path:
    with open(ROOT / "book" / "runtimes.csv") as fh:
        seconds = {r["Chapter"]: float(r["Run time on CPU (s)"]) for r in csv.DictReader(fh)}
    number = lambda p: p.stem.split("_")[0].lstrip("0")  # 06b_x -> "6b", as tools/time_chapters.py writes it
    timed = [p for p in CHAPTERS if number(p) in seconds]
    return min(timed, key=lambda p: seconds[number(p)])


def test_shortest_student_notebook_runs_up_to_its_first_skeleton():
    """Executed for real in a fresh kernel (from student/, as Colab would open it); the skeleton fails clearly."""
    import nbformat
    from nbclient import NotebookClient

    chapter = _shortest_chapter()
    nb = nbformat.reads((ROOT / "student" / chapter.name).read_text(encoding="utf-8"), as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if _is_skeleton(c))
    nb.cells = nb.cells[: first + 1]
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(ROOT / "student")}})
    client.execute()
    errors = {i: o for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"}
    assert list(errors) == [first], f"{chapter.name}: cells {sorted(set(errors) - {first})} failed before the first exercise"
    assert errors[first]["ename"] == "NotImplementedError"
    assert "is not done yet: write your solution in this cell" in errors[first]["evalue"]


def test_the_book_publishes_and_links_the_student_versions():
    """tools/student_links.py is registered, and builds the links from repository: url: (Colab only on GitHub)."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"] == {"student_links": "tools/"}
    assert "student_links" in config["sphinx"]["config"]["extensions"]
    assert "student" in config["exclude_patterns"]
    spec = importlib.util.spec_from_file_location("student_links", ROOT / "tools" / "student_links.py")
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    url, branch = config["repository"]["url"], config["repository"].get("branch", "main")
    owner_repo = url.rstrip("/").removeprefix("https://github.com/")
    assert links.colab_url(url, branch, "08_conformal.ipynb") == \
        f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/student/08_conformal.ipynb"
    assert links.colab_url("https://gitlab.com/a/b", "main", "x.ipynb") is None
    page = links.links_html("book/08_conformal", "08_conformal.ipynb", None)
    assert 'href="../student/08_conformal.ipynb"' in page and "Colab" not in page


def test_the_build_generates_the_student_versions_from_the_chapters(tmp_path, monkeypatch):
    """The build's hook writes what the generator makes of the current chapters, not copies of student/."""
    import sys
    import types

    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import student_links
    import student_notebooks

    app = types.SimpleNamespace(builder=types.SimpleNamespace(format="html"), outdir=str(tmp_path), confdir=str(ROOT))
    student_links.copy_student(app, None)
    written = sorted(p.name for p in (tmp_path / "student").glob("*.ipynb"))
    assert written == sorted(p.name for p in student_notebooks.chapters(ROOT))
    for path, text in student_notebooks.expected(ROOT).items():
        assert (tmp_path / "student" / path.name).read_text(encoding="utf-8") == text
    assert student_links._student_file(app, "book/intro") is None
    assert "student_links" in sys.modules
