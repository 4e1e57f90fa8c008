"""Execute every chapter of the book in a fresh kernel, time it and its cells, and write book/runtimes.csv.

Usage (from the repository root, in the project's environment)::

    python tools/time_chapters.py            # all chapters listed in _toc.yml
    python tools/time_chapters.py book/01_segmentation_and_softmax.ipynb
    python tools/time_chapters.py --repeat 3 --slowest 5 --no-write book/08_conformal.ipynb

Each run records the chapter's wall time, the kernel's CPU time (user + system: on a shared machine
it moves less than the wall time) and peak memory, and every cell's time; ``--slowest K`` prints the
K slowest cells of each chapter. With ``--repeat N`` every chapter runs N times; the table keeps the
minimum wall time (and the median and the number of runs) and the script prints both.

The table is included by book/intro.md; tests/test_book.py checks that it lists every chapter
and that each measured time is within its budget.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

from utils.config import cpu_name

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "book" / "runtimes.csv"
BUDGET_S = 60  # every chapter's budget on a 2-core CPU (idle), for the fastest of the runs (issue 21)
HEADER = ["Chapter", "Title", "Run time on CPU (s)", "Median (s)", "Runs", "Budget (s)", "Peak memory (MB)",
          "Measured on", "Date"]  # run time: the fastest of the runs
# Appended to the executed copy only: the kernel's peak resident memory (Linux reports ru_maxrss in KiB)
# and its CPU time (user + system, over all its threads).
PEAK_CELL = ("import resource; _r = resource.getrusage(resource.RUSAGE_SELF); "
             "print('PEAK_KIB', _r.ru_maxrss, 'CPU_S', _r.ru_utime + _r.ru_stime)")


def chapters() -> list[Path]:
    """Return the numbered chapters listed in _toc.yml, in book order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [entry["file"] for entry in toc.get("chapters", [])]
    # numbered chapters only: the teaching guide has no run-time budget and no row in the table
    return [ROOT / f"{f}.ipynb" for f in files
            if (ROOT / f"{f}.ipynb").is_file() and Path(f).name[:2].isdigit()]


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


@dataclass
class Timing:
    """One execution of a chapter: wall time, kernel CPU time and peak memory, and each code cell's time."""

    seconds: float
    cpu_seconds: float
    peak_mb: float
    cells: list[tuple[int, float, str]]  # (cell index, seconds, first line of its source)


def _cell_seconds(cell: nbformat.NotebookNode) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return None
    return (dt.datetime.fromisoformat(end.replace("Z", "+00:00")) - dt.datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def run(path: Path) -> Timing:
    """Execute ``path`` top to bottom in a fresh kernel, in its own folder; return its :class:`Timing`."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))  # a trivial last cell: it reads the peak
    client = NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    fields = "".join(o.get("text", "") for o in nb.cells[-1].outputs).split()
    cells = []
    for i, cell in enumerate(nb.cells[:-1]):
        if cell.cell_type == "code" and (sec := _cell_seconds(cell)) is not None:
            cells.append((i, sec, (cell.source.strip().splitlines() or [""])[0][:70]))
    return Timing(seconds, float(fields[fields.index("CPU_S") + 1]), int(fields[fields.index("PEAK_KIB") + 1]) / 1024, cells)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="chapters to time (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per chapter (the table keeps the minimum)")
    parser.add_argument("--slowest", type=int, default=3, help="print this many slowest cells per chapter")
    parser.add_argument("--no-write", action="store_true", help="print only; leave book/runtimes.csv alone")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    selected = [p.resolve() for p in args.notebooks] or chapters()
    rows = {}
    if TABLE.is_file():
        with open(TABLE) as fh:
            rows = {r["Chapter"]: r for r in csv.DictReader(fh) if set(r) == set(HEADER)}
    today = dt.date.today().isoformat()
    for path in selected:
        runs = [run(path) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r.seconds)
        walls = [r.seconds for r in runs]
        number = number_of(path)
        peak_mb = max(r.peak_mb for r in runs)
        row = [number, title(path), f"{best.seconds:.0f}", f"{statistics.median(walls):.0f}", str(len(walls)),
               str(BUDGET_S), f"{peak_mb:.0f}", machine(), today]
        rows[number] = dict(zip(HEADER, row))
        print(f"chapter {number}, {title(path)}: wall min {min(walls):.1f} s, median {statistics.median(walls):.1f} s "
              f"({len(walls)} runs); CPU {best.cpu_seconds:.1f} s; peak memory {peak_mb:.0f} MB", flush=True)
        for i, sec, first in sorted(best.cells, key=lambda c: -c[1])[: args.slowest]:
            print(f"    cell {i:3d}: {sec:6.1f} s  {first}", flush=True)
    if args.no_write:
        return 0
    with open(TABLE, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        for path in chapters():
            if number_of(path) in rows:
                writer.writerow(rows[number_of(path)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
