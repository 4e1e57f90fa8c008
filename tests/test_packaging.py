"""The course package installs with its weights as package data (what Colab's setup cell relies on)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from utils.weights import WEIGHTS_DIR, manifest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_weights_and_manifest(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("beyond_softmax-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "utils/weights/manifest.json" in names
    for entry in manifest(WEIGHTS_DIR).values():
        assert f"utils/weights/{entry['file']}" in names, f"{entry['file']} is not packaged"
    for module in ("data", "models", "train", "weights", "metrics", "plots", "config", "book", "ood", "attacks", "calibration", "shift", "uncertainty"):
        assert f"utils/{module}.py" in names or f"utils/{module}/__init__.py" in names, f"utils.{module} is not packaged"
    for package in ("metrics", "plots", "report"):  # split by concern into sub-packages: every module ships
        for path in (ROOT / "utils" / package).glob("*.py"):
            assert f"utils/{package}/{path.name}" in names, f"utils/{package}/{path.name} is not packaged"
