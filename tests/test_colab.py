"""Colab: installing the course package (``pip install git+REPO@main``) must replace nothing preinstalled.

Colab runs the install inside a live session. If pip upgraded numpy, pandas, scipy, scikit-learn,
matplotlib or torch there, modules already imported would mix with new files on disk (the session
then needs a restart, and often breaks in confusing ways); if it replaced Colab's ipywidgets 7 with
8, widgets would often not display. So every declared dependency, and every requirement of the
mlxtend release pip would pick where mlxtend is missing, must already be met by Colab's versions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

#: What a Colab runtime has preinstalled (Colab's runtime of early 2026; patch levels taken as low as
#: the minor version allows, so that the check is not lenient). joblib is a dependency of scikit-learn.
COLAB = {
    "torch": "2.10.0+cu126",
    "torchvision": "0.25.0+cu126",
    "ipywidgets": "7.7.1",
    "numpy": "2.0.2",
    "pandas": "2.2.2",
    "scipy": "1.16.0",
    "scikit-learn": "1.6.1",
    "matplotlib": "3.10.0",
    "scikit-image": "0.25.0",
    "tqdm": "4.67.0",
    "pillow": "11.0.0",
    "joblib": "1.4.2",
    # what stardist's requirements find on Colab
    "numba": "0.60.0",
    "llvmlite": "0.43.0",
    "imageio": "2.37.0",
    "tifffile": "2025.1.10",
    "six": "1.17.0",
    "packaging": "24.2",
}

#: Declared dependencies that a Colab runtime may lack (or hold in an older release): pip then installs
#: the newest release the declared range allows, together with whatever that release requires.
MAY_BE_MISSING = {"mlxtend", "stardist", "csbdeep"}  # csbdeep: stardist's pure-Python requirement
#: stardist 0.9.2's run-time requirements (its wheel's METADATA, without extras and the macOS-x86 pins):
#: csbdeep>=0.8.2 (itself: numpy, scipy, matplotlib, six, tifffile, tqdm, packaging, no bounds),
#: numpy<3, scikit-image, numba, imageio: nothing that Colab's versions miss.
STARDIST_REQUIRES = ["csbdeep>=0.8.2", "numpy<3", "scikit-image", "numba", "imageio"]

#: mlxtend's run-time requirements (Requires-Dist without extras), copied from the METADATA of each
#: release's wheel (``pip download --no-deps mlxtend==V``), so that the check runs offline. 0.24.0 and
#: 0.25.0 are the releases the bound in pyproject.toml keeps out.
MLXTEND_REQUIRES = {
    "0.23.0": ["scipy>=1.2.1", "numpy>=1.16.2", "pandas>=0.24.2", "scikit-learn>=1.0.2", "matplotlib>=3.0.0", "joblib>=0.13.2"],
    "0.23.1": ["scipy>=1.2.1", "numpy>=1.16.2", "pandas>=0.24.2", "scikit-learn>=1.0.2", "matplotlib>=3.0.0", "joblib>=0.13.2"],
    "0.23.2": ["scipy>=1.2.1", "numpy>=1.16.2", "pandas>=0.24.2", "scikit-learn>=1.3.1", "matplotlib>=3.0.0", "joblib>=0.13.2"],
    "0.23.3": ["scipy>=1.2.1", "numpy>=1.16.2", "pandas>=0.24.2", "scikit-learn>=1.3.1", "matplotlib>=3.0.0", "joblib>=0.13.2"],
    "0.23.4": ["scipy>=1.2.1", "numpy>=1.16.2", "pandas>=0.24.2", "scikit-learn>=1.3.1", "matplotlib>=3.0.0", "joblib>=0.13.2"],
    "0.24.0": ["scipy>=1.16.3", "numpy>=2.3.5", "pandas>=2.3.3", "scikit-learn>=1.8.0", "matplotlib>=3.10.8", "joblib>=1.5.2"],
    "0.25.0": ["scipy>=1.16.3", "numpy>=2.3.5", "pandas>=2.3.3", "scikit-learn>=1.8.0", "matplotlib>=3.10.8", "joblib>=1.5.2"],
}  # fmt: skip

#: Top-level modules imported by the chapters or by utils, and the distribution that provides each.
DISTRIBUTION_OF = {
    "torch": "torch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "pandas": "pandas",
    "matplotlib": "matplotlib",
    "mlxtend": "mlxtend",
    "skimage": "scikit-image",
    "PIL": "pillow",
    "tqdm": "tqdm",
    "ipywidgets": "ipywidgets",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
}
#: Imported only inside ``try: ... except ImportError`` (the book build's tools, absent on Colab).
OPTIONAL_MODULES = {"myst_nb"}
#: Modules that a declared dependency brings along: IPython runs every Jupyter kernel (Colab's too),
#: and ipywidgets requires it.
BROUGHT_BY = {"IPython": "ipywidgets", "tifffile": "scikit-image"}


def _dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def _declared() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in _dependencies()}


def _unmet(requirements: list[Requirement]) -> list[str]:
    """Requirements on a Colab package that Colab's version does not meet (pip would replace that package)."""
    bad = []
    for req in requirements:
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if name in COLAB and not req.specifier.contains(COLAB[name], prereleases=True):
            bad.append(f"{req} (Colab has {name} {COLAB[name]})")
    return bad


def _allowed_mlxtend_releases() -> list[str]:
    spec = _declared()["mlxtend"].specifier
    return sorted((v for v in MLXTEND_REQUIRES if spec.contains(v)), key=Version)


# --- offline checks -----------------------------------------------------------------------------


def test_colab_versions_meet_every_declared_dependency():
    assert not _unmet(_dependencies()), "pip would replace Colab's own packages: " + "; ".join(_unmet(_dependencies()))


def test_every_declared_dependency_is_preinstalled_or_known_to_be_safe():
    """A new dependency must be added to COLAB (with Colab's version) or vetted like mlxtend."""
    unknown = set(_declared()) - set(COLAB) - MAY_BE_MISSING
    assert not unknown, f"check these against Colab and add them to COLAB or MAY_BE_MISSING: {sorted(unknown)}"


def test_stardist_requires_nothing_colab_lacks():
    assert not _unmet([Requirement(r) for r in STARDIST_REQUIRES])


def test_ipywidgets_7_is_accepted():
    assert _declared()["ipywidgets"].specifier.contains("7.7.1"), "ipywidgets>=8 would replace Colab's 7.x"


def test_no_allowed_mlxtend_release_upgrades_colab():
    """mlxtend 0.25 (the newest) requires numpy>=2.3.5, pandas>=2.3.3, ...: the bound must keep it out."""
    allowed = _allowed_mlxtend_releases()
    assert allowed, f"no known mlxtend release satisfies {_declared()['mlxtend']}; add its requirements to MLXTEND_REQUIRES"
    for version in allowed:
        bad = _unmet([Requirement(r) for r in MLXTEND_REQUIRES[version]])
        assert not bad, f"mlxtend {version} would upgrade Colab: {bad}"
    spec = _declared()["mlxtend"].specifier
    newest = max(MLXTEND_REQUIRES, key=Version)
    assert not spec.contains(newest) and _unmet([Requirement(r) for r in MLXTEND_REQUIRES[newest]])
    # the bound is an upper bound: a future mlxtend that nobody has vetted is kept out too
    assert not spec.contains("9.0"), f"bound mlxtend from above: {_declared()['mlxtend']}"


def test_the_mlxtend_table_matches_an_installed_release():
    try:
        version = importlib.metadata.version("mlxtend")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mlxtend is not installed here")
    if version not in MLXTEND_REQUIRES:
        pytest.skip(f"mlxtend {version} is not in MLXTEND_REQUIRES")
    requires = [Requirement(r) for r in importlib.metadata.requires("mlxtend") or []]
    runtime = sorted(str(r) for r in requires if r.marker is None)
    assert runtime == sorted(str(Requirement(r)) for r in MLXTEND_REQUIRES[version])


def test_requirements_txt_bounds_mlxtend_like_pyproject():
    """The local install uses the same mlxtend range as Colab (the digits are byte-identical anyway)."""
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    local = [Requirement(line) for line in lines if line and re.match(r"mlxtend\b", line)]
    assert len(local) == 1 and local[0].specifier == _declared()["mlxtend"].specifier


def _imported_modules() -> dict[str, set[str]]:
    """Top-level modules imported by the chapters' code cells and by utils, with where each is imported."""
    found: dict[str, set[str]] = {}
    pattern = re.compile(r"^\s*(?:from\s+([A-Za-z_][\w.]*)\s+import|import\s+([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*))", re.M)
    sources = [(p.name, "\n".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code"))
               for p in sorted((ROOT / "book").glob("*.ipynb"))]
    sources += [(str(p.relative_to(ROOT)), p.read_text()) for p in sorted((ROOT / "utils").rglob("*.py"))]  # fmt: skip
    for where, text in sources:
        for m in pattern.finditer(text):
            for name in (m.group(1) or m.group(2)).split(","):
                found.setdefault(name.strip().split(".")[0], set()).add(where)
    return found


def test_every_third_party_import_is_declared():
    """chapter 7 imports pandas, which pyproject.toml did not declare (Colab has it, a local pip may not)."""
    declared = set(_declared())
    local = {"utils", "__future__"}
    missing = {}
    for module, where in _imported_modules().items():
        if module in sys.stdlib_module_names or module in local or module in OPTIONAL_MODULES:
            continue
        dist = DISTRIBUTION_OF.get(module) or BROUGHT_BY.get(module)
        if dist is None or canonicalize_name(dist) not in declared:
            missing[module] = sorted(where)
    assert not missing, f"declare these in pyproject.toml (and add them to DISTRIBUTION_OF and COLAB): {missing}"


# --- pip itself, against a stand-in for Colab's site-packages (needs a package index) -------------


def _fake_colab_env(folder: Path) -> Path:
    """A bare venv whose site-packages holds metadata-only stand-ins for Colab's preinstalled packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True, timeout=120)
    python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()  # fmt: skip
    for name, version in COLAB.items():
        info = Path(purelib) / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return python


def _dry_run(python: Path, requirements: list[str], report: Path) -> list[tuple[str, str]]:
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run", "--quiet", "--no-input",
           "--timeout", "30", "--retries", "2", "--report", str(report), *requirements]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [(canonicalize_name(i["metadata"]["name"]), i["metadata"]["version"]) for i in json.loads(report.read_text())["install"]]


def _index_reachable() -> str | None:
    """None if pip can list mlxtend's releases from its configured index, else the reason it cannot."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", "mlxtend", "--timeout", "15", "--retries", "1", "--no-input"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "pip timed out reaching its package index"
    if proc.returncode != 0 or "0.23.4" not in proc.stdout:
        return "pip cannot reach a package index that lists mlxtend: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


def test_pip_dry_run_in_a_colab_like_environment_replaces_nothing(tmp_path):
    reason = _index_reachable()
    if reason:
        pytest.skip(reason)
    python = _fake_colab_env(tmp_path / "colab")
    requirements = [str(r) for r in _dependencies()]
    installed = _dry_run(python, requirements, tmp_path / "report.json")
    replaced = [(n, v) for n, v in installed if n in COLAB]
    assert not replaced, f"installing the course package would replace Colab's {replaced}"
    assert {n for n, _ in installed} <= {canonicalize_name(m) for m in MAY_BE_MISSING}, installed
    # the stand-in environment does detect upgrades: an unbounded mlxtend pulls Colab's numpy & co. along
    unbounded = [r if not r.startswith("mlxtend") else "mlxtend>=0.23" for r in requirements]
    upgraded = {n for n, _ in _dry_run(python, unbounded, tmp_path / "unbounded.json")}
    assert {"numpy", "pandas", "scikit-learn"} <= upgraded, upgraded



# --- the setup cell (tools/setup_cell.py) ---------------------------------------------------------


def _setup_cell_module():
    spec = importlib.util.spec_from_file_location("setup_cell", ROOT / "tools" / "setup_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Runs the setup cell as a chapter's first cell would; pip is replaced by a recorder (nothing installs).
#: With INSTALL_INTO set, the fake pip "installs" a stand-in of the course package there.
_DRIVER = r"""
import json, os, shutil, subprocess, sys, types
calls = []
def fake_check_call(cmd, *args, **kwargs):
    calls.append(cmd)
    target = os.environ.get("INSTALL_INTO")
    if target:
        shutil.copytree(os.environ["STAND_IN"], os.path.join(target, "utils"))
    return 0
subprocess.check_call = fake_check_call
if os.environ.get("INSTALL_INTO"):
    sys.path.append(os.environ["INSTALL_INTO"])
if os.environ.get("PRELOAD_FOREIGN"):
    sys.modules["utils"] = types.ModuleType("utils")  # an earlier cell imported another utils
namespace = {}
try:
    exec(compile(open(os.environ["CELL"]).read(), "<setup cell>", "exec"), namespace)
    result = {"device": str(namespace["device"])}
except Exception as err:
    result = {"error": f"{type(err).__name__}: {err}"}
result["pip_calls"] = calls
print("RESULT " + json.dumps(result))
"""


def _run_setup_cell(tmp_path: Path, cwd: Path, *python_flags: str, **env: str) -> dict:
    cell = tmp_path / "setup_cell.py"
    cell.write_text(_setup_cell_module().SETUP_CELL)
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ |= {"CELL": str(cell), **env}
    proc = subprocess.run([sys.executable, *python_flags, "-c", _DRIVER], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stdout + proc.stderr
    return json.loads(line[len("RESULT "):])


def test_setup_cell_finds_the_course_package(tmp_path):
    empty = tmp_path / "work"
    empty.mkdir()
    result = _run_setup_cell(tmp_path, empty)
    assert result == {"device": result.get("device"), "pip_calls": []}, result
    assert result["device"] in ("cpu", "cuda", "mps")
    assert _run_setup_cell(tmp_path, ROOT)["pip_calls"] == []  # from the repository root, utils/ is the package


@pytest.mark.parametrize("foreign", ["utils.py", "utils/__init__.py"])
def test_setup_cell_names_a_foreign_utils_and_what_to_do(tmp_path, foreign):
    """A utils.py (or utils/ folder) from another tutorial in the working folder hides the course package."""
    work = tmp_path / "content"
    path = work / foreign
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("raise SystemExit('the foreign utils was executed')\n")
    result = _run_setup_cell(tmp_path, work)
    assert result["pip_calls"] == []
    error = result.get("error", "")
    assert error.startswith("RuntimeError: `import utils` finds another module"), result
    assert str(work / "utils") in error  # where it is
    assert "rename or move it" in error and "restart the runtime" in error
    assert "\n" not in error  # one line


def test_setup_cell_detects_a_foreign_utils_already_imported(tmp_path):
    result = _run_setup_cell(tmp_path, tmp_path, PRELOAD_FOREIGN="1")
    assert "finds another module" in result.get("error", "") and result["pip_calls"] == []


def test_setup_cell_installs_the_package_where_it_is_missing(tmp_path):
    # a stand-in for the installed package: the marker, and the two helpers the cell imports
    stand_in = tmp_path / "stand_in"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text((ROOT / "utils" / "__init__.py").read_text())
    (stand_in / "config.py").write_text("def get_device():\n    return 'cpu'\n\ndef seed_everything(seed):\n    pass\n")
    site = tmp_path / "site"
    site.mkdir()
    work = tmp_path / "content"
    work.mkdir()
    # -S: no site-packages, so the course package (and torch) are missing, as on a fresh Colab runtime
    result = _run_setup_cell(tmp_path, work, "-S", INSTALL_INTO=str(site), STAND_IN=str(stand_in))
    url, branch = _setup_cell_module().repository()
    assert len(result["pip_calls"]) == 1, result
    call = result["pip_calls"][0]
    assert call[1:5] == ["-m", "pip", "install", "--quiet"] and call[-1] == f"git+{url}@{branch}"
    assert result.get("device") == "cpu", result  # found after the install, without a restart
    # an install that Python cannot see yet asks for a restart
    result = _run_setup_cell(tmp_path, work, "-S")
    assert len(result["pip_calls"]) == 1 and "restart the runtime" in result.get("error", ""), result


def test_utils_carries_the_marker_the_setup_cell_looks_for():
    import utils

    module = _setup_cell_module()
    assert utils.__course__ == "beyond-softmax"
    assert module.MARKER in (ROOT / "utils" / "__init__.py").read_text()
    assert module.MARKER in module.SETUP_CELL


def test_setup_cell_meets_the_book_checks_and_follows_the_config(tmp_path):
    module = _setup_cell_module()
    url, branch = module.repository()
    cell = module.SETUP_CELL
    compile(cell, "<setup cell>", "exec")
    assert re.findall(r'REPO_URL\s*=\s*"([^"]+)"', cell) == [url]  # what tests/test_book.py checks
    assert f"git+{{REPO_URL}}@{branch}" in cell and "pip" in cell
    assert "seed_everything" in cell and "get_device" in cell and "print(" in cell
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://github.com/someone/elsewhere/\n  branch: dev\n")
    moved = module.setup_cell(config)
    assert 'REPO_URL = "https://github.com/someone/elsewhere"' in moved and "git+{REPO_URL}@dev" in moved


def test_apply_replaces_only_the_first_code_cell(tmp_path):
    module = _setup_cell_module()
    chapter = sorted((ROOT / "book").glob("[0-9][0-9]*_*.ipynb"))[0]
    copy = tmp_path / chapter.name
    original = json.loads(chapter.read_text())
    nb = json.loads(chapter.read_text())
    first = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    nb["cells"][first]["source"] = ["print('an old setup cell')\n"]
    nb["cells"][first]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["old\n"]}]
    nb["cells"][first]["execution_count"] = 3
    nb["cells"][first]["metadata"] = {"tags": ["keep-me"]}
    copy.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    assert module.apply([copy]) == [copy]
    after = json.loads(copy.read_text())
    cell = after["cells"][first]
    assert "".join(cell["source"]) == module.SETUP_CELL
    assert cell["outputs"] == [] and cell["execution_count"] is None
    assert cell["metadata"] == {"tags": ["keep-me", "hide-input"]} and cell.get("id") == original["cells"][first].get("id")
    others = [c for i, c in enumerate(after["cells"]) if i != first]
    assert others == [c for i, c in enumerate(original["cells"]) if i != first]
    assert after["metadata"] == original["metadata"]
    text = copy.read_text()
    assert module.apply([copy]) == [] and copy.read_text() == text  # idempotent
    with pytest.raises(TypeError, match="paths"):
        module.apply(copy)
    with pytest.raises(ValueError, match="ipynb"):
        module.apply([tmp_path / "notes.md"])
