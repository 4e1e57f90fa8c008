"""Legibility cases of the active-learning chapter's figures (utils/plots/active.py), in the chapter's shape."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from utils import plots


def _results() -> dict:
    """A results dict shaped like the shipped experiment (4 strategies, 3 seeds, 4 rounds), with made-up numbers."""
    rng = np.random.default_rng(0)
    cfg = {"pool_size": 200, "n_traps": 40, "initial": 20, "acquire": 20, "rounds": 4}
    runs = {}
    for j, strategy in enumerate(("random", "least_confidence", "entropy", "bald")):
        runs[strategy] = {}
        for seed in range(3):
            records, traps = [], 3
            for r in range(5):
                picked = int(rng.integers(2, 9)) if r else 3
                traps += picked if r else 0
                records.append({
                    "round": r, "labelled": 20 + 20 * r, "miou": 0.2 + 0.06 * r + 0.01 * j + 0.01 * rng.random(),
                    "digit_pixel_accuracy": 0.25 + 0.07 * r + 0.01 * rng.random(), "traps_picked": picked,
                    "traps_labelled": traps, "boundary_share": None if r == 0 else 0.8 + 0.1 * rng.random(),
                    "boundary_area": None if r == 0 else 0.2 + 0.05 * rng.random(), "acquired": [],
                })  # fmt: skip
            runs[strategy][str(seed)] = records
    return {"config": cfg, "seeds": [0, 1, 2], "runs": runs}


CASES: dict[str, dict[str, Callable[[], Figure]]] = {
    "show_learning_curves": {"ch10 shipped learning curves": lambda: plots.show_learning_curves(_results())},
    "show_acquisition_bars": {"ch10 trap picks and boundary shares": lambda: plots.show_acquisition_bars(_results())},
}
