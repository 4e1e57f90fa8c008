"""Tests of tools/kernel_sets.py and utils.config.kernel_set: the environment variables select other CPU kernels."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("kernel_sets", ROOT / "tools" / "kernel_sets.py")
kernel_sets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_sets)

_PRINT = "from utils.config import kernel_set; print(kernel_set())"


def test_every_kernel_set_is_a_different_set_of_kernels():
    seen = {}
    for name, extra in kernel_sets.KERNEL_SETS.items():
        out = subprocess.run([sys.executable, "-c", _PRINT], env=kernel_sets._env(extra), capture_output=True,
                             text=True, check=True, cwd=ROOT)  # fmt: skip
        seen[name] = out.stdout.strip()
    assert seen["AVX, ATen default"] == "ATen DEFAULT, oneDNN max ISA: AVX"
    assert seen["AVX"].endswith("oneDNN max ISA: AVX") and seen["native"].endswith("oneDNN max ISA: default")
    assert len(set(seen.values())) == len(seen), seen


def test_run_everywhere_returns_the_worst_exit_status(capsys):
    assert kernel_sets.main(["--run", "--", sys.executable, "-c", "import os, sys; sys.exit(3 if os.environ.get('ATEN_CPU_CAPABILITY') == 'default' else 0)"]) == 3
    out = capsys.readouterr().out
    assert out.count("exit 0") == 3 and out.count("exit 3") == 1
