"""The command line of the experiment: ``python -m utils.active --out FILE --seeds ...`` writes a checked results file."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import re
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..config import cpu_name, kernel_set
from .config import POOLS, STRATEGIES, ALConfig, arms
from .loop import run
from .results import check_results

__all__ = ["dumps", "main"]

_INTS = ("scene_size", "pool_size", "n_traps", "n_test", "initial", "acquire", "rounds", "patch", "steps",
         "finetune_steps", "batch_size", "width", "depth", "mc_samples", "threads")  # fmt: skip


def _machine(threads: int) -> dict[str, Any]:
    return {"cpu": cpu_name(), "kernels": kernel_set(), "torch": torch.__version__,
            "python": platform.python_version(), "threads": threads, "platform": platform.platform()}  # fmt: skip


def dumps(results: dict[str, Any]) -> str:
    """Return the results as JSON, one key per line but each list of numbers on one line (the units acquired are long)."""
    text = json.dumps(results, indent=1)
    return re.sub(r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text) + "\n"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    d = ALConfig()
    p = argparse.ArgumentParser(prog="python -m utils.active", description="Run the active-learning experiment of chapter 10.")
    p.add_argument("--out", type=Path, required=True, help="the JSON results file to write")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--pools", nargs="+", default=list(d.pools), choices=POOLS)
    p.add_argument("--strategies", nargs="+", default=list(d.strategies), choices=STRATEGIES)
    p.add_argument("--area-strategies", nargs="*", default=list(d.area_strategies), choices=STRATEGIES)
    for name in _INTS:
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--finetune-lr", type=float, default=d.finetune_lr)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--jobs", type=int, default=1, help="processes, one seed each (the numbers do not change)")
    p.add_argument("--resume", action="store_true",
                   help="keep the seeds already in OUT.partial.json (written as each seed finishes) if its config matches")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def _assemble(command: str, cfg: ALConfig, seeds: list[int], done: dict[str, Any]) -> dict[str, Any]:
    """Return a results dict of the seeds in ``done`` (``{"runs", "control", "start_auroc", "seconds"}``), in the order of ``seeds``."""
    have = [s for s in seeds if str(s) in done["seconds"]]
    keep = [str(s) for s in have]
    return {
        "command": command, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(sum(done["seconds"][s] for s in keep), 1), "machine": _machine(cfg.threads),
        "config": asdict(cfg), "seeds": have, "arms": arms(cfg),
        "runs": {arm: {s: done["runs"][arm][s] for s in keep} for arm in arms(cfg)},
        **{key: {s: done[key][s] for s in keep} for key in ("control", "start_auroc", "seconds")},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: run the experiment and write its results file (``wall_time_s`` sums the seeds' times)."""
    args = _parse(argv)
    command = "python -m utils.active " + shlex.join(sys.argv[1:] if argv is None else argv)
    fields = {k: getattr(args, k) for k in _INTS} | {"lr": args.lr, "finetune_lr": args.finetune_lr, "dropout": args.dropout}
    try:
        cfg = ALConfig(**fields, pools=tuple(args.pools), strategies=tuple(args.strategies),
                       area_strategies=tuple(args.area_strategies))  # fmt: skip
        if args.jobs < 1:
            raise ValueError(f"jobs must be a positive int, got {args.jobs}")
        if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
            raise ValueError(f"seeds must be distinct non-negative ints, got {args.seeds}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    partial = args.out.with_name(args.out.stem + ".partial.json")
    done: dict[str, Any] = {"runs": {arm: {} for arm in arms(cfg)}, "control": {}, "start_auroc": {}, "seconds": {}}
    if args.resume and partial.is_file():
        old = json.loads(partial.read_text())
        if old["config"] == json.loads(json.dumps(asdict(cfg))):
            done = {key: old[key] for key in done}
    todo = [s for s in args.seeds if str(s) not in done["seconds"]]
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def keep(seed: int, result: dict[str, Any]) -> None:
        for arm, records in result["runs"].items():
            done["runs"][arm][str(seed)] = records
        for key in ("control", "start_auroc", "seconds"):
            done[key][str(seed)] = result[key]
        partial.write_text(dumps(_assemble(command, cfg, args.seeds, done)))

    start = time.perf_counter()
    if todo:
        run(cfg, todo, progress=not args.quiet, jobs=args.jobs, on_seed=keep)
    results = check_results(_assemble(command, cfg, args.seeds, done))
    args.out.write_text(dumps(results))
    partial.unlink(missing_ok=True)
    print(f"wrote {args.out} ({len(todo)} seeds run in {time.perf_counter() - start:.0f} s; seeds' times sum to {results['wall_time_s']} s)")
    return 0
