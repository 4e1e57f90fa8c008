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
