"""Student versions of the chapters: every solution removed, every exercise left as a skeleton cell.

For every chapter ``book/NN_name.ipynb`` listed in ``_toc.yml`` this writes ``student/NN_name.ipynb``:

* each gated solution (the ``{solution-start} LABEL`` ... ``{solution-end}`` block of sphinx-exercise:
  its markdown and code cells, and solution text that shares a markdown cell with the markers) is
  removed and replaced by one code cell, the *skeleton*, that raises ``NotImplementedError`` with a
  message naming the exercise, so that running the notebook top to bottom stops there with a clear
  instruction; where :mod:`utils.exercises` can check the answer, the skeleton says how;
* every other cell is kept as it is, setup cell included (byte-identical JSON), so the student version
  opens in Colab and runs like the chapter up to its first exercise.

The student versions are generated, never edited by hand; ``tests/test_student_notebooks.py`` fails
when they drift from the chapters. From the repository root::

    python tools/student_notebooks.py           # (re)write student/ from every chapter
    python tools/student_notebooks.py --check   # exit 1, naming them, if any student version is stale
"""

from __future__ import annotations

import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDENT_DIR = ROOT / "student"
#: A chapter is a notebook ``book/NN_name.ipynb`` (or ``book/NNx_name.ipynb``, a chapter inserted after NN).
CHAPTER_NAME = re.compile(r"^\d\d[a-z]?_[\w-]+\.ipynb$")

_EXERCISE = re.compile(r"```+\{exercise\}[ \t]*([^\n]*)\n:label:[ \t]*([\w-]+)")
_START = re.compile(r"(`{3,})\{solution-start\}[ \t]*([\w-]+)[ \t]*\n(?::[^\n]*\n)*\1[ \t]*(?:\n|$)")
_END = re.compile(r"(`{3,})\{solution-end\}[ \t]*\n\1[ \t]*(?:\n|$)")


@dataclass(frozen=True)
class Skeleton:
    """Where a solution was: the exercise's label and title."""

    label: str
    title: str


def chapters(root: Path = ROOT) -> list[Path]:
    """Return the chapter notebooks in the order of ``_toc.yml`` (every ``book/NN_*.ipynb`` it lists)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    entries = [toc.get("root", "")] + [e.get("file", "") for e in _toc_entries(toc)]
    found = []
    for entry in entries:
        path = root / f"{entry}.ipynb"
        if CHAPTER_NAME.match(path.name) and path.is_file() and path not in found:
            found.append(path)
    return found


def _toc_entries(node: object) -> list[dict]:
    """Return every entry with a ``file`` in a (nested) table of contents."""
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node)
        for key in ("chapters", "parts", "sections"):
            for child in node.get(key, []) or []:
                out.extend(_toc_entries(child))
    elif isinstance(node, list):
        for child in node:
            out.extend(_toc_entries(child))
    return out


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def exercise_titles(nb: dict) -> dict[str, str]:
    """Return ``{label: title}`` of every ``{exercise}`` directive in the notebook's markdown cells."""
    titles = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for title, label in _EXERCISE.findall(_source(cell)):
                titles[label] = title.strip()
    return titles


def check_hint(label: str) -> str | None:
    """Return the commented line a skeleton ends with when :mod:`utils.exercises` checks ``label``, else None."""
    sys.path.insert(0, str(ROOT))
    try:
        from utils import exercises
    finally:
        sys.path.remove(str(ROOT))
    return exercises.hint(label) if label in exercises.LABELS else None


def skeleton_source(label: str, title: str) -> str:
    """Return the source of the code cell that stands in for the solution of exercise ``label``."""
    shown = f"{label} ({title})" if title else label
    lines = [
        f"# Exercise {shown}.",
        "# Write your solution here (add cells below as you need), then delete the `raise` line.",
        f"raise NotImplementedError({_message(label, title)!r})",
    ]
    hint = check_hint(label)
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def _message(label: str, title: str) -> str:
    named = f'Exercise {label} ("{title}")' if title else f"Exercise {label}"
    return f"{named} is not done yet: write your solution in this cell and delete this raise line."


def _split_markdown(text: str, inside: str | None) -> tuple[list[str | Skeleton], str | None]:
    """Cut a markdown cell's text into kept pieces and skeletons; ``inside`` is the open solution's label."""
    pieces: list[str | Skeleton] = []
    pos = 0
    while True:
        if inside is None:
            found = _START.search(text, pos)
            if found is None:
                pieces.append(text[pos:])
                return pieces, None
            pieces.append(text[pos : found.start()])
            inside = found.group(2)
            pieces.append(Skeleton(inside, ""))
            pos = found.end()
        else:
            found = _END.search(text, pos)
            if found is None:
                return pieces, inside  # the rest of this cell is solution text
            inside = None
            pos = found.end()


def student_version(nb: dict) -> dict:
    """Return the student version of notebook ``nb`` (a new dict; ``nb`` is not changed)."""
    titles = exercise_titles(nb)
    out = copy.deepcopy(nb)
    cells: list[dict] = []
    inside: str | None = None
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            if inside is None:
                cells.append(copy.deepcopy(cell))
            continue
        text = _source(cell)
        if "{solution-start}" not in text and "{solution-end}" not in text:
            if inside is None:
                cells.append(copy.deepcopy(cell))
            continue
        pieces, inside = _split_markdown(text, inside)
        n_md = 0
        for piece in pieces:
            if isinstance(piece, Skeleton):
                cells.append(_skeleton_cell(piece.label, titles.get(piece.label, "")))
                continue
            piece = piece.strip("\n")
            if not piece.strip():
                continue
            new = copy.deepcopy(cell)
            new["source"] = piece.splitlines(keepends=True)
            if n_md and "id" in new:
                new["id"] = f"{cell['id']}-{n_md}"[:64]
            cells.append(new)
            n_md += 1
    if inside is not None:
        raise ValueError(f"the solution of {inside} is never closed by a solution-end")
    out["cells"] = cells
    return out


def solutions(nb: dict) -> dict[str, list[dict]]:
    """Return ``{label: cells}``: the code and markdown cells inside each gated solution of ``nb``.

    Solution text that shares a markdown cell with a marker is returned as a markdown cell of its own.
    """
    found: dict[str, list[dict]] = {}
    inside: str | None = None
    for cell in nb["cells"]:
        text = _source(cell)
        if cell["cell_type"] != "markdown" or ("{solution-start}" not in text and "{solution-end}" not in text):
            if inside is not None:
                found[inside].append(cell)
            continue
        pos = 0
        while True:
            if inside is None:
                start = _START.search(text, pos)
                if start is None:
                    break
                inside, pos = start.group(2), start.end()
                found.setdefault(inside, [])
            else:
                end = _END.search(text, pos)
                piece = text[pos : end.start() if end else len(text)]
                if piece.strip():
                    found[inside].append({"cell_type": "markdown", "metadata": {}, "source": piece})
                if end is None:
                    break
                inside, pos = None, end.end()
    return found


def _skeleton_cell(label: str, title: str) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": f"{label}-todo"[:64],
        "metadata": {"tags": ["skeleton"]},
        "outputs": [],
        "source": skeleton_source(label, title).splitlines(keepends=True),
    }


def render(nb: dict) -> str:
    """Return notebook ``nb`` as the text Jupyter writes (one-space indent, a final newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def expected(root: Path = ROOT) -> dict[Path, str]:
    """Return ``{student path: text}`` for every chapter, generated in memory."""
    return {
        root / "student" / path.name: render(student_version(json.loads(path.read_text(encoding="utf-8"))))
        for path in chapters(root)
    }


def stale(root: Path = ROOT) -> list[Path]:
    """Return the student notebooks that are missing, differ from their chapter's, or belong to no chapter."""
    want = expected(root)
    bad = [p for p, text in want.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    bad += [p for p in sorted((root / "student").glob("*.ipynb")) if p not in want]
    return bad


def write(root: Path = ROOT) -> list[Path]:
    """Write every student notebook that changed, delete those of removed chapters; return the paths touched."""
    want = expected(root)
    touched = []
    (root / "student").mkdir(exist_ok=True)
    for path, text in want.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            touched.append(path)
    for path in sorted((root / "student").glob("*.ipynb")):
        if path not in want:
            path.unlink()
            touched.append(path)
    return touched


def main(argv: list[str] | None = None) -> int:
    """Write student/ (or, with ``--check``, report stale student notebooks and return 1)."""
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--check"]):
        print("usage: python tools/student_notebooks.py [--check]", file=sys.stderr)
        return 2
    if args == ["--check"]:
        bad = stale()
        for path in bad:
            print(f"stale: {path.relative_to(ROOT)}; run python tools/student_notebooks.py")
        return 1 if bad else 0
    for path in write():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
