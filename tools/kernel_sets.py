"""Measure how far chapter 10's live run moves from the shipped results file under other CPU kernel sets.

PyTorch picks its CPU kernels by the instruction set it finds; two environment variables make it use
others on the same machine (``ATEN_CPU_CAPABILITY`` for ATen's vectorised kernels, ``ONEDNN_MAX_CPU_ISA``
for oneDNN's convolutions). This tool reruns the replay of chapter 10 (seed 0's first round from its shipped
start model, random and least-confidence acquisition of whole scenes from the pool with overlaid traps,
``utils.active.replay_config``) under each kernel set in a fresh process and writes
the gaps to the shipped file, which ``utils.active.REPLAY_TOLERANCE`` must exceed (a test checks it)::

    python tools/kernel_sets.py --out utils/results/replay_kernels.json

Pass ``--run`` to print one command's exit status and time under every kernel set instead, e.g.
``python tools/kernel_sets.py --run -- python -m pytest book/08_conformal.ipynb``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: The kernel sets: environment variables that select them (the machine's own first).
KERNEL_SETS: dict[str, dict[str, str]] = {
    "native": {},
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "AVX": {"ONEDNN_MAX_CPU_ISA": "AVX"},
    "AVX, ATen default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX"},
}

_REPLAY = """
import json
from utils import active
from utils.config import kernel_set
shipped = active.load_results()
start, seed = active.load_start(shipped)
live = active.run(active.replay_config(shipped), seeds=[seed], progress=False, start_models={seed: start})
table = active.replay_table(live, shipped)
lc = table[(table["arm"] == active.REPLAY_ARMS[1]) & (table["round"] == 1)].iloc[0]
print(json.dumps({"kernels": kernel_set(),
                  "miou_gap": float((table["miou"] - table["miou_shipped"]).abs().max()),
                  "accuracy_gap": float((table["accuracy"] - table["accuracy_shipped"]).abs().max()),
                  "least_confidence_same_units": int(lc["same_units"]), "acquired": int(lc["acquired"])}))
"""


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    return env | extra


def replay(out: Path) -> dict:
    """Run the replay under every kernel set; write and return the measurement."""
    from utils import active
    from utils.config import cpu_name

    sets = {}
    for name, extra in KERNEL_SETS.items():
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _REPLAY], env=_env(extra), capture_output=True, text=True, check=True)
        sets[name] = json.loads(done.stdout.strip().splitlines()[-1]) | {"seconds": round(time.perf_counter() - start, 1)}
        print(name, sets[name], flush=True)
    import torch

    result = {
        "command": "python tools/kernel_sets.py --out " + str(out),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(), "torch": torch.__version__,
        "results_file": active.RESULTS_FILE.name, "results_date": active.load_results()["date"],
        "sets": sets,
    }  # fmt: skip
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def run_everywhere(command: list[str]) -> int:
    """Run ``command`` under every kernel set; print each exit status and time; return the worst status."""
    worst = 0
    for name, extra in KERNEL_SETS.items():
        start = time.perf_counter()
        rc = subprocess.run(command, env=_env(extra)).returncode
        print(f"{name}: exit {rc}, {time.perf_counter() - start:.1f} s", flush=True)
        worst = max(worst, rc)
    return worst


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--run" in argv:
        command = argv[argv.index("--run") + 1 :]
        command = command[1:] if command[:1] == ["--"] else command
        if not command:
            raise SystemExit("--run needs a command after it")
        return run_everywhere(command)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="or: --run [--] COMMAND ...")
    p.add_argument("--out", type=Path, required=True, help="write the replay measurement here")
    args = p.parse_args(argv)
    replay(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
