"""The setup cell that opens every chapter (:data:`SETUP_CELL`), and :func:`apply`, which puts it into notebooks.

The cell installs the course package where it is missing (Colab), stops with a one-line instruction
when another module named ``utils`` (say a ``utils.py`` left in Colab's working folder by an earlier
tutorial) would hide the course's package, picks the device, seeds everything and prints the device.
It tells the course's ``utils`` from any other by the marker ``__course__ = "beyond-softmax"`` in
``utils/__init__.py``, read as text, so that a foreign module is never executed.

The repository URL and branch come from ``_config.yml`` (``repository: url:`` and ``branch:``), like
the book's launch buttons. To (re)write the first code cell of chapters, from the repository root::

    python tools/setup_cell.py                  # every chapter book/[0-9][0-9]*_*.ipynb
    python tools/setup_cell.py book/01_*.ipynb  # only these
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The line of ``utils/__init__.py`` that identifies the course's package.
MARKER = '__course__ = "beyond-softmax"'

_TEMPLATE = '''\
# Setup: install the course package if missing (Colab), check that `utils` is it, pick the device, seed.
import importlib, importlib.util, subprocess, sys
from pathlib import Path
REPO_URL = "@REPO_URL@"

def _which_utils():
    """Return "course" if `import utils` gives this course's package, "missing", or where the other one is."""
    module = sys.modules.get("utils")
    if module is not None:
        course = getattr(module, "__course__", None) == "beyond-softmax"
        return "course" if course else str(getattr(module, "__file__", None) or module)
    spec = importlib.util.find_spec("utils")
    if spec is None:
        return "missing"
    init = Path(spec.origin or "")
    if init.name == "__init__.py" and '@MARKER@' in init.read_text(errors="replace"):
        return "course"
    return spec.origin or ", ".join(spec.submodule_search_locations or [])

where = _which_utils()
if where == "missing":
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.check_call(pip + [f"git+{REPO_URL}@@BRANCH@"])
    importlib.invalidate_caches()
    where = _which_utils()
if where == "missing":
    raise RuntimeError("The course package is installed, but Python does not see it yet: restart the runtime, then run this cell again.")
if where != "course":
    raise RuntimeError(f"`import utils` finds another module ({where}), not this course's package: rename or move it (e.g. to my_utils.py), restart the runtime, then run this cell again.")
from utils.config import get_device, seed_everything
device = get_device()
seed_everything(0)
print(f"running on: {device}")'''


def repository(config: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """Return the repository URL (without a trailing slash) and branch that ``config`` names."""
    repo = yaml.safe_load(Path(config).read_text())["repository"]
    return str(repo["url"]).rstrip("/"), str(repo.get("branch", "main"))


def setup_cell(config: Path = ROOT / "_config.yml") -> str:
    """Return the source of the setup cell for the repository that ``config`` names."""
    url, branch = repository(config)
    return _TEMPLATE.replace("@REPO_URL@", url).replace("@BRANCH@", branch).replace("@MARKER@", MARKER)


#: The exact source of the first code cell of every chapter.
SETUP_CELL: str = setup_cell()


def apply(paths: Iterable[str | Path], source: str = SETUP_CELL) -> list[Path]:
    """Replace the first code cell of each notebook in ``paths`` with ``source``; return the notebooks changed.

    The cell keeps its id and metadata and gets the tag ``hide-input`` (the built book folds the code away
    and shows what it prints); its outputs and execution count are cleared.
    Every other cell, and the file's JSON layout (one-space indent, as Jupyter writes it), is left as it is.
    """
    if isinstance(paths, (str, Path)):
        raise TypeError("paths must be an iterable of notebook paths (a list), not a single path")
    changed = []
    for path in map(Path, paths):
        if path.suffix != ".ipynb":
            raise ValueError(f"paths must name .ipynb notebooks, got {path}")
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = next((c for c in nb["cells"] if c["cell_type"] == "code"), None)
        if cell is None:
            raise ValueError(f"{path} has no code cell to replace")
        new = source.splitlines(keepends=True)
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if cell["source"] == new and "hide-input" in tags and not cell.get("outputs") and cell.get("execution_count") is None:
            continue
        if "hide-input" not in tags:
            tags.append("hide-input")  # the online book folds it away; Colab and Jupyter show it
        cell["source"], cell["outputs"], cell["execution_count"] = new, [], None
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Apply the setup cell to the notebooks named in ``argv`` (default: every chapter); print what changed."""
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] or sorted((ROOT / "book").glob("[0-9][0-9]*_*.ipynb"))
    for path in apply(paths):
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
