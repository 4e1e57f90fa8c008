"""Legibility cases of the active-learning chapter's figures (utils/plots/active.py), in the chapter's shape."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from utils import active, plots


def _results() -> dict:
    """A results dict shaped like the shipped experiment (3 pools, 8 arms each, 4 rounds, 12 seeds), with made-up numbers."""
    rng = np.random.default_rng(0)
    cfg = active.ALConfig()
    arms = active.arms(cfg)
    seeds = list(range(12))
    runs, control = {}, {}
    for j, arm in enumerate(arms):
        runs[arm] = {}
        for seed in seeds:
            records = []
            for r in range(cfg.rounds + 1):
                rec = {"round": r, "labelled_pixels": (cfg.initial + r * cfg.acquire) * cfg.scene_size**2,
                       "miou": 0.45 + 0.03 * r + 0.002 * j + 0.01 * rng.random(),
                       "digit_pixel_accuracy": 0.55 + 0.03 * r + 0.01 * rng.random()}  # fmt: skip
                if r:
                    rec |= {"trap_share": 0.0 if arm.startswith("clean") else rng.uniform(0.05, 0.4),
                            "pool_trap_share": 0.0 if arm.startswith("clean") else 0.16}  # fmt: skip
                records.append(rec)
            runs[arm][str(seed)] = records
    for seed in seeds:
        control[str(seed)] = [{"round": r, "miou": 0.45 + 0.01 * r, "digit_pixel_accuracy": 0.55} for r in range(cfg.rounds + 1)]
    return {"config": {"scene_size": cfg.scene_size}, "seeds": seeds, "arms": arms, "runs": runs, "control": control}


def _table() -> pd.DataFrame:
    """A paired table with the chapter's longest row names."""
    names = [f"{p}/{u}: {s} - random" for p in ("clean", "overlaid", "ambiguous") for u, ss in
             (("scenes", ("least_confidence", "entropy", "bald", "var_ratios")), ("areas", ("least_confidence", "bald")))
             for s in ss]  # fmt: skip
    mean = np.linspace(-0.02, 0.03, len(names))
    return pd.DataFrame({"mean": mean, "low": mean - 0.01, "high": mean + 0.01}, index=names)


CASES: dict[str, dict[str, Callable[[], Figure]]] = {
    "show_learning_curves": {"ch10 learning curves per pool": lambda: plots.show_learning_curves(_results())},
    "show_paired_differences": {"ch10 paired differences": lambda: plots.show_paired_differences(_table(), effect=0.01)},
    "show_trap_shares": {"ch10 trap shares": lambda: plots.show_trap_shares(_results())},
}
