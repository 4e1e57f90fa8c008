"""Results files of the experiment: their schema check, per-round curves, and the replay of a live run beside one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import ALConfig, arms, parse_arm

__all__ = [
    "REPLAY_ARMS",
    "REPLAY_KERNELS_FILE",
    "REPLAY_TOLERANCE",
    "RESULTS_FILE",
    "check_results",
    "config_of",
    "control_curves",
    "curves",
    "final",
    "load_results",
    "replay_config",
    "replay_kernels",
    "replay_table",
    "start_aurocs",
]

#: The shipped results of the full experiment (package data).
RESULTS_FILE: Path = Path(__file__).resolve().parents[1] / "results" / "active_learning.json"
#: The measured gaps of the chapter's replay to :data:`RESULTS_FILE` under four CPU kernel sets.
REPLAY_KERNELS_FILE: Path = Path(__file__).resolve().parents[1] / "results" / "replay_kernels.json"
#: Largest difference in test mIoU or digit-pixel accuracy allowed between a live run and a results file
#: made on another machine, round by round: at least 1.5 times the largest gap measured under four CPU
#: kernel sets (:data:`REPLAY_KERNELS_FILE`, written by ``python tools/kernel_sets.py``; a test keeps it so).
REPLAY_TOLERANCE: float = 0.05
#: The arms of the chapter's live replay: whole scenes from the pool with overlaid traps, at random and by least confidence.
REPLAY_ARMS: tuple[str, ...] = ("overlaid/scenes/random", "overlaid/scenes/least_confidence")
_RESULT_KEYS = ("command", "date", "wall_time_s", "machine", "config", "seeds", "arms", "runs", "control", "start_auroc",
                "seconds")  # fmt: skip
_START_KEYS = ("round", "labelled_pixels", "labelled_scenes", "miou", "digit_pixel_accuracy", "acquired")
_STAT_KEYS = ("trap_share", "pool_trap_share", "digit_share", "mass_digit", "mass_ring", "area_ring")
_ROUND_KEYS = _START_KEYS + _STAT_KEYS


def config_of(results: dict[str, Any]) -> ALConfig:
    """Return the :class:`ALConfig` recorded in a results dict (validated)."""
    if not isinstance(results, dict) or not isinstance(results.get("config"), dict):
        raise TypeError("results must be a results dict holding a 'config' dict")
    tuples = ("pools", "strategies", "area_strategies")
    return ALConfig(**{k: tuple(v) if k in tuples else v for k, v in results["config"].items()})


def _kinds(cfg: ALConfig) -> np.ndarray:
    """Return the kind of every pool scene (0 clean, 1 overlaid, 2 ambiguous), as :func:`utils.active.build_pool` lays them out."""
    return np.repeat([0, 1, 2], [cfg.pool_size, cfg.n_traps, cfg.n_traps])


def _check_record(rec: dict[str, Any], rnd: int, cfg: ALConfig, where: str) -> None:
    keys = _START_KEYS if rnd == 0 else _ROUND_KEYS
    if sorted(rec) != sorted(keys):
        raise ValueError(f"results: {where} round {rnd} has keys {sorted(rec)}, expected {sorted(keys)}")
    pixels = (cfg.initial + rnd * cfg.acquire) * cfg.scene_size**2
    if rec["round"] != rnd or rec["labelled_pixels"] != pixels:
        raise ValueError(f"results: {where} round {rnd} has round={rec['round']}, labelled_pixels={rec['labelled_pixels']}, "
                         f"expected {rnd}, {pixels}")  # fmt: skip
    for key in ("miou", "digit_pixel_accuracy") + (_STAT_KEYS if rnd else ()):
        value = rec[key]
        if not (value is None and key.startswith("mass")) and not 0.0 <= value <= 1.0:
            raise ValueError(f"results: {where} round {rnd} {key}={value} outside [0, 1]")


def _check_arm(records: list[dict[str, Any]], arm: str, cfg: ALConfig, where: str) -> None:
    """Check one arm's records of one seed: rounds, counts, units new and in its pool, trap shares."""
    pool, unit, _ = parse_arm(arm)
    if len(records) != cfg.rounds + 1:
        raise ValueError(f"results: {where} has {len(records)} rounds, expected {cfg.rounds + 1}")
    per = cfg.patches_per_scene(unit)
    kinds = _kinds(cfg)
    allowed = {0} if pool == "clean" else {0, 1 + ("overlaid", "ambiguous").index(pool)}
    seen = {u for s in records[0]["acquired"] for u in range(s * per, (s + 1) * per)}
    for rnd, rec in enumerate(records):
        _check_record(rec, rnd, cfg, where)
        if rnd == 0:
            continue
        units = rec["acquired"]
        if len(units) != cfg.acquire * per or len(set(units)) != len(units) or seen & set(units) \
                or not all(0 <= u < len(kinds) * per and kinds[u // per] in allowed for u in units):  # fmt: skip
            raise ValueError(f"results: {where} round {rnd} acquired units are not new units of its pool, of the right count")
        seen |= set(units)
        traps = sum(kinds[u // per] > 0 for u in units) / len(units)
        if abs(rec["trap_share"] - traps) > 1e-5:
            raise ValueError(f"results: {where} round {rnd} trap_share={rec['trap_share']} disagrees with its units ({traps:.6f})")


def check_results(results: dict[str, Any]) -> dict[str, Any]:
    """Check a results dict against the schema and its own configuration; return it, or raise ``ValueError``."""
    if not isinstance(results, dict):
        raise TypeError(f"results must be a dict, got {type(results).__name__}")
    missing = [k for k in _RESULT_KEYS if k not in results]
    if missing:
        raise ValueError(f"results lacks the keys {missing}")
    cfg = config_of(results)
    if list(results["arms"]) != arms(cfg) or sorted(results["runs"]) != sorted(arms(cfg)):
        raise ValueError("results: arms, the arms of config and runs disagree")
    for key in ("cpu", "kernels", "torch", "threads"):
        if key not in results["machine"]:
            raise ValueError(f"results['machine'] lacks {key!r}")
    if results["machine"]["threads"] != cfg.threads:
        raise ValueError("results: machine threads differ from config.threads")
    seeds = sorted(str(s) for s in results["seeds"])
    for name in ("control", "start_auroc", "seconds"):
        if sorted(results[name]) != seeds:
            raise ValueError(f"results: {name} has seeds {sorted(results[name])}, expected {seeds}")
    for arm, per_seed in results["runs"].items():
        if sorted(per_seed) != seeds:
            raise ValueError(f"results: runs[{arm!r}] has seeds {sorted(per_seed)}, expected {seeds}")
        for seed, records in per_seed.items():
            _check_arm(records, arm, cfg, f"runs[{arm!r}][{seed!r}]")
    for seed in seeds:
        starts = {json.dumps(per_seed[seed][0], sort_keys=True) for per_seed in results["runs"].values()}
        control = results["control"][seed]
        if len(starts) != 1 or len(control) != cfg.rounds + 1:
            raise ValueError(f"results: seed {seed}: round 0 differs between arms, or control has the wrong rounds")
        first = results["runs"][arms(cfg)[0]][seed][0]
        if control[0]["miou"] != first["miou"] or any(not 0 <= r["miou"] <= 1 for r in control):
            raise ValueError(f"results: seed {seed}: control does not start from the start model, or its mIoU is outside [0, 1]")
        kinds = [p for p in cfg.pools if p != "clean"]
        aurocs = results["start_auroc"][seed]
        if sorted(aurocs) != sorted(kinds) or not all(0 <= v <= 1 for per in aurocs.values() for v in per.values()):
            raise ValueError(f"results: seed {seed}: start_auroc must hold an AUROC in [0, 1] per trap pool {kinds}")
    return results


def load_results(path: str | Path | None = None) -> dict[str, Any]:
    """Load and check a results file (default: the shipped full experiment, :data:`RESULTS_FILE`)."""
    path = RESULTS_FILE if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}; run `python -m utils.active --out {path}`")
    return check_results(json.loads(path.read_text()))


def curves(results: dict[str, Any], key: str = "miou") -> dict[str, np.ndarray]:
    """Return ``{arm: array (seeds, rounds + 1)}`` of one per-round number (NaN where a round lacks it, e.g. round 0's shares)."""
    if key not in _ROUND_KEYS or key == "acquired":
        raise ValueError(f"key must be a per-round number from {[k for k in _ROUND_KEYS if k != 'acquired']}, got {key!r}")
    out = {}
    for arm, per_seed in results["runs"].items():
        rows = [[np.nan if r.get(key) is None else r[key] for r in per_seed[str(s)]] for s in results["seeds"]]
        out[arm] = np.asarray(rows, dtype=float)
    return out


def control_curves(results: dict[str, Any], key: str = "miou") -> np.ndarray:
    """Return the control's ``key`` (``miou`` or ``digit_pixel_accuracy``) ``(seeds, rounds + 1)``: the start fine-tuned on the start alone."""
    if key not in ("miou", "digit_pixel_accuracy"):
        raise ValueError(f"key must be 'miou' or 'digit_pixel_accuracy', got {key!r}")
    return np.asarray([[r[key] for r in results["control"][str(s)]] for s in results["seeds"]], dtype=float)


def start_aurocs(results: dict[str, Any], kind: str) -> pd.DataFrame:
    """Return the start model's AUROC of each strategy's scene score for ``kind`` trap scenes against clean ones: one row per seed."""
    if kind not in results["start_auroc"][str(results["seeds"][0])]:
        raise ValueError(f"kind must be a trap pool of the results, got {kind!r}")
    return pd.DataFrame([results["start_auroc"][str(s)][kind] for s in results["seeds"]], index=results["seeds"])


def final(results: dict[str, Any], key: str = "miou") -> dict[str, np.ndarray]:
    """Return ``{arm: (seeds,)}``: the last round's ``key`` of every arm, seeds in the file's order."""
    return {arm: values[:, -1] for arm, values in curves(results, key).items()}


def replay_config(results: dict[str, Any]) -> ALConfig:
    """Return the configuration of the chapter's replay of ``results``: its first round, for the :data:`REPLAY_ARMS` only."""
    return dataclasses.replace(config_of(results), rounds=1, pools=("overlaid",), strategies=("random", "least_confidence"),
                               area_strategies=())  # fmt: skip


def replay_kernels() -> dict[str, Any]:
    """Return the shipped measurement of the replay's gaps under four CPU kernel sets (:data:`REPLAY_KERNELS_FILE`)."""
    if not REPLAY_KERNELS_FILE.is_file():
        raise FileNotFoundError(f"no measurement at {REPLAY_KERNELS_FILE}; run `python tools/kernel_sets.py --out {REPLAY_KERNELS_FILE}`")
    measured = json.loads(REPLAY_KERNELS_FILE.read_text())
    if not isinstance(measured.get("sets"), dict) or not measured["sets"]:
        raise ValueError(f"{REPLAY_KERNELS_FILE} holds no kernel sets")
    return measured


def replay_table(live: dict[str, Any], results: dict[str, Any]) -> pd.DataFrame:
    """Return one row per arm, seed and round of ``live`` (a :func:`utils.active.run` output) beside the same round of ``results``.

    Columns: test mIoU and digit-pixel accuracy of both and their absolute ``gap`` (the larger of the
    two), how many of the units acquired in that round both chose (``same_units`` of ``acquired``),
    and the trap share of each. On the machine that made ``results`` the gaps are zero and the units
    identical; elsewhere they differ within :data:`REPLAY_TOLERANCE`.
    """
    if not isinstance(live, dict) or "runs" not in live or not isinstance(results, dict) or "runs" not in results:
        raise TypeError("live must be a run() output and results a results dict")
    rows = []
    for arm, per_seed in live["runs"].items():
        if arm not in results["runs"]:
            raise ValueError(f"live holds the arm {arm!r}, which results lacks")
        for seed, records in per_seed.items():
            theirs = results["runs"][arm].get(seed)
            if theirs is None or len(records) > len(theirs):
                raise ValueError(f"results lacks seed {seed} or rounds of the arm {arm!r}")
            for mine, ref in zip(records, theirs):
                rows.append({
                    "arm": arm, "seed": int(seed), "round": mine["round"],
                    "miou": mine["miou"], "miou_shipped": ref["miou"],
                    "accuracy": mine["digit_pixel_accuracy"], "accuracy_shipped": ref["digit_pixel_accuracy"],
                    "gap": max(abs(mine["miou"] - ref["miou"]),
                               abs(mine["digit_pixel_accuracy"] - ref["digit_pixel_accuracy"])),
                    "same_units": len(set(mine["acquired"]) & set(ref["acquired"])), "acquired": len(ref["acquired"]),
                    "trap_share": mine.get("trap_share"), "trap_share_shipped": ref.get("trap_share"),
                })  # fmt: skip
    return pd.DataFrame(rows)
