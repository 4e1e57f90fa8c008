"""Execute every chapter of the book in a fresh kernel, time it, and write book/runtimes.csv.

Usage (from the repository root, in the project's environment)::

    python tools/time_chapters.py            # all chapters listed in _toc.yml
    python tools/time_chapters.py book/01_segmentation_and_softmax.ipynb

The table is included by book/intro.md; tests/test_book.py checks that it lists every chapter
and that each measured time is within its budget.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

from utils.config import cpu_name

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "book" / "runtimes.csv"
BUDGET_S = 180  # every chapter's budget on a 2-core CPU
HEADER = ["Chapter", "Title", "Run time on CPU (s)", "Budget (s)", "Peak memory (MB)", "Measured on", "Date"]
# Appended to the executed copy only: the kernel's peak resident memory (Linux reports ru_maxrss in KiB).
PEAK_CELL = "import resource; print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def chapters() -> list[Path]:
    """Return the notebooks listed in _toc.yml, in book order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [entry["file"] for entry in toc.get("chapters", [])]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").is_file()]


def title(path: Path) -> str:
    """Return the first heading of a notebook."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def number_of(path: Path) -> str:
    """Return a chapter's number from its file name (``01_x.ipynb`` -> ``"1"``)."""
    return path.stem.split("_")[0].lstrip("0") or "0"


def machine() -> str:
    """Describe the CPU the chapters ran on."""
    return f"{cpu_name()}, {os.cpu_count()} cores"


def run(path: Path) -> tuple[float, float]:
    """Execute ``path`` top to bottom in a fresh kernel, in its own folder; return wall time (s) and peak memory (MB)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))  # a trivial last cell: it reads the peak
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return seconds, int(text.split("PEAK_KIB")[1]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="chapters to time (default: all)")
    args = parser.parse_args(argv)
    selected = [p.resolve() for p in args.notebooks] or chapters()
    rows = {}
    if TABLE.is_file():
        with open(TABLE) as fh:
            rows = {r["Chapter"]: r for r in csv.DictReader(fh) if set(r) == set(HEADER)}
    today = dt.date.today().isoformat()
    for path in selected:
        seconds, peak_mb = run(path)
        number = number_of(path)
        row = [number, title(path), f"{seconds:.0f}", str(BUDGET_S), f"{peak_mb:.0f}", machine(), today]
        rows[number] = dict(zip(HEADER, row))
        print(f"chapter {number}, {title(path)}: {seconds:.1f} s, peak memory {peak_mb:.0f} MB", flush=True)
    with open(TABLE, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        for path in chapters():
            if number_of(path) in rows:
                writer.writerow(rows[number_of(path)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
