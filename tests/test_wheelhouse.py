"""The lab-without-internet install of the teaching guide: the course's own wheel installs from a local
wheelhouse with pip's network use off, and the installed package imports and verifies its weights.

The third-party dependencies are not installed again (``--no-deps``; the new environment sees this
one's site-packages through a .pth file), so the test takes seconds; the full wheelhouse was tried once
and measured in tools/wheelhouse.json, which the guide reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    """This process's environment without any pip configuration (no index, find-links or constraints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def test_course_wheel_installs_from_a_local_wheelhouse_without_network(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheelhouse), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheelhouse.glob("beyond_softmax-*.whl")
    lab = tmp_path / "lab"
    venv.EnvBuilder(with_pip=False).create(lab)
    python = lab / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # the lab environment sees this one's packages (torch, pip...) after its own, as if installed there
    (site / "zz_course_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheelhouse),
                    "--no-deps", "--target", str(site), "beyond-softmax"],
                   check=True, capture_output=True, timeout=300, env=_env(), cwd=tmp_path)
    probe = ("import json, utils; from utils import weights, exercises\n"
             "names = weights.available()\n"
             "print(json.dumps({'file': utils.__file__, 'course': utils.__course__, 'verified': [weights.verify(n).name for n in names],"
             " 'names': names}))")
    out = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, timeout=300,
                         env=_env(), cwd=tmp_path)
    found = json.loads(out.stdout)
    assert Path(found["file"]).is_relative_to(site), f"utils came from {found['file']}, not from the wheel installed in {site}"
    assert found["course"] == "beyond-softmax"
    assert "unet_seed0" in found["names"] and len(found["verified"]) == len(found["names"])
    assert wheel.stat().st_size > 0


def test_measured_wheelhouse_numbers_are_complete():
    measured = json.loads((ROOT / "tools" / "wheelhouse.json").read_text())
    for key in ("date", "machine", "how_measured", "prepare", "install"):
        assert measured[key], key
    assert measured["wheelhouse_bytes"] > 0 and measured["download_s"] > 0 and measured["install_s"] > 0
    assert any("--no-index" in line for line in measured["install"])
