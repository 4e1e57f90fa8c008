"""Tests of tools/time_chapters.py: per-cell times, CPU time and peak memory of one executed notebook."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("time_chapters", ROOT / "tools" / "time_chapters.py")
time_chapters = sys.modules.setdefault("time_chapters", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(time_chapters)


def test_run_times_every_code_cell_and_reads_cpu_time_and_peak(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A title"),
                nbformat.v4.new_code_cell("import time\ntime.sleep(0.4)"),
                nbformat.v4.new_code_cell("total = sum(i * i for i in range(3_000_000))")]  # fmt: skip
    path = tmp_path / "01_tiny.ipynb"
    nbformat.write(nb, path)
    timing = time_chapters.run(path)
    assert [c[0] for c in timing.cells] == [1, 2]
    assert timing.cells[0][1] >= 0.4 and timing.cells[0][2] == "import time"
    assert timing.cpu_seconds > 0.05 and timing.peak_mb > 10
    assert timing.seconds >= sum(c[1] for c in timing.cells)
    assert time_chapters.title(path) == "A title" and time_chapters.number_of(path) == "1"


def test_table_keeps_the_fastest_run_with_the_median_and_the_number_of_runs(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny")]
    path = tmp_path / "03_tiny.ipynb"
    nbformat.write(nb, path)
    walls = iter([50.2, 41.6, 47.0])
    monkeypatch.setattr(time_chapters, "run", lambda p: time_chapters.Timing(next(walls), 30.0, 900.0, []))
    monkeypatch.setattr(time_chapters, "TABLE", tmp_path / "runtimes.csv")
    monkeypatch.setattr(time_chapters, "chapters", lambda: [path])
    assert time_chapters.main([str(path), "--repeat", "3"]) == 0
    with open(tmp_path / "runtimes.csv") as fh:
        (row,) = list(time_chapters.csv.DictReader(fh))
    assert list(row) == time_chapters.HEADER
    assert (row["Chapter"], row["Run time on CPU (s)"], row["Median (s)"], row["Runs"]) == ("3", "42", "47", "3")
