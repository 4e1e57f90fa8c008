"""Paired comparisons of arms over seeds: differences seed by seed, bootstrap intervals, sign counts and power.

Every arm of one seed shares the start, the test scenes, the optimiser steps and the random numbers
(:func:`utils.active.run`), so the difference of two arms *within* a seed is free of the seed's
luck, and the seeds are the independent units: intervals resample seeds, not scenes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..spread import interval
from .config import arm_name
from .results import config_of, final

__all__ = [
    "bootstrap_mean",
    "comparisons",
    "minimum_detectable_effect",
    "paired",
    "paired_table",
    "seeds_needed",
    "sign_counts",
]


def _check_values(values: object, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or len(array) < 2 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a 1-D array of at least 2 finite numbers, got shape {array.shape}")
    return array


def bootstrap_mean(values: object, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Return ``(mean, low, high)``: the mean of ``values`` (one per seed) and its percentile bootstrap interval over them."""
    array = _check_values(values)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    draws = np.random.default_rng(seed).integers(len(array), size=(n_boot, len(array)))
    low, high = interval(torch.from_numpy(array[draws].mean(1)), level)
    return float(array.mean()), low, high


def sign_counts(values: object) -> tuple[int, int, int]:
    """Return how many of ``values`` are above, below and equal to zero."""
    array = np.asarray(values, dtype=float)
    return int((array > 0).sum()), int((array < 0).sum()), int((array == 0).sum())


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Return the smallest true mean difference a two-sided paired t-test over ``n`` seeds finds with ``power``: ``(t_{1-alpha/2} + t_{power}) sd / sqrt(n)``."""
    if not isinstance(sd, (int, float)) or isinstance(sd, bool) or not sd >= 0:
        raise ValueError(f"sd must be a non-negative number, got {sd!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha!r}, {power!r}")
    df = int(n) - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def seeds_needed(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8, most: int = 10000) -> int:
    """Return the fewest seeds whose :func:`minimum_detectable_effect` is at most ``effect`` (``most`` + 1 if none up to ``most``)."""
    if not isinstance(effect, (int, float)) or isinstance(effect, bool) or not effect > 0:
        raise ValueError(f"effect must be a positive number, got {effect!r}")
    for n in range(2, most + 1):
        if minimum_detectable_effect(sd, n, alpha, power) <= effect:
            return n
    return most + 1


def paired_t_p(values: object) -> float:
    """Return the two-sided p-value of a one-sample t-test of mean zero (1.0 when every value is equal)."""
    v = _check_values(values)
    sd = float(v.std(ddof=1))
    if sd == 0:
        return 1.0 if float(v.mean()) == 0 else 0.0
    t = float(v.mean()) / (sd / np.sqrt(len(v)))
    return float(2 * stats.t.sf(abs(t), len(v) - 1))


def paired(results: dict[str, Any], plus: list[str] | str, minus: list[str] | str, key: str = "miou") -> np.ndarray:
    """Return per seed ``sum(plus arms) - sum(minus arms)`` of the last round's ``key``, ``(seeds,)``.

    ``paired(r, "clean/scenes/bald", "clean/scenes/random")`` is BALD minus random, seed by seed;
    two arms on each side give a difference of differences.
    """
    plus, minus = ([plus] if isinstance(plus, str) else list(plus)), ([minus] if isinstance(minus, str) else list(minus))
    values = final(results, key)
    for arm in plus + minus:
        if arm not in values:
            raise ValueError(f"arm {arm!r} is not in results (arms: {sorted(values)})")
    return sum((values[a] for a in plus), np.zeros(len(results["seeds"]))) - sum((values[a] for a in minus), np.zeros(len(results["seeds"])))


def comparisons(results: dict[str, Any]) -> dict[str, tuple[list[str], list[str]]]:
    """Return the chapter's comparisons ``{name: (plus arms, minus arms)}``.

    Every strategy minus random in each pool and unit; areas minus scenes for each strategy run on
    both; each trap pool minus the clean pool, for random and for each strategy's gain over random.
    """
    cfg = config_of(results)
    out: dict[str, tuple[list[str], list[str]]] = {}
    for pool in cfg.pools:
        for unit, strategies in (("scenes", cfg.strategies), ("areas", cfg.area_strategies)):
            if "random" in strategies:
                for s in strategies:
                    if s != "random":
                        out[f"{pool}/{unit}: {s} - random"] = ([arm_name(pool, unit, s)], [arm_name(pool, unit, "random")])
        for s in (s for s in cfg.area_strategies if s in cfg.strategies):
            out[f"{pool}/{s}: areas - scenes"] = ([arm_name(pool, "areas", s)], [arm_name(pool, "scenes", s)])
    for pool in (p for p in cfg.pools if p != "clean" and "clean" in cfg.pools):
        if "random" in cfg.strategies:
            out[f"scenes/random: {pool} - clean"] = ([arm_name(pool, "scenes", "random")], [arm_name("clean", "scenes", "random")])
            for s in (s for s in cfg.strategies if s != "random"):
                out[f"scenes/{s} - random: {pool} - clean"] = (
                    [arm_name(pool, "scenes", s), arm_name("clean", "scenes", "random")],
                    [arm_name(pool, "scenes", "random"), arm_name("clean", "scenes", s)])  # fmt: skip
    return out


def paired_table(results: dict[str, Any], key: str = "miou", chosen: dict[str, tuple[list[str], list[str]]] | None = None,
                 level: float = 0.95, power: float = 0.8) -> pd.DataFrame:  # fmt: skip
    """Return one row per comparison (default :func:`comparisons`): mean paired difference of the last round's ``key``, its bootstrap interval over seeds, sign counts, sd, the minimum detectable effect and a verdict.

    ``verdict`` is ``"higher"`` or ``"lower"`` where the interval excludes zero, else ``"inconclusive"``;
    ``mde`` is the true difference that a paired t-test at ``1 - level`` finds with ``power`` given the seeds' sd;
    ``p_t`` is that t-test's two-sided p-value (a check on the bootstrap verdict, which covers less than
    ``level`` with few seeds).
    """
    chosen = comparisons(results) if chosen is None else chosen
    rows = {}
    for name, (plus, minus) in chosen.items():
        diff = paired(results, plus, minus, key)
        mean, low, high = bootstrap_mean(diff, level=level)
        above, below, _ = sign_counts(diff)
        sd = float(diff.std(ddof=1))
        rows[name] = {"mean": mean, "low": low, "high": high, "above": above, "below": below, "n": len(diff), "sd": sd,
                      "mde": minimum_detectable_effect(sd, len(diff), 1 - level, power), "p_t": paired_t_p(diff),
                      "verdict": "higher" if low > 0 else "lower" if high < 0 else "inconclusive"}  # fmt: skip
    return pd.DataFrame(rows).T.astype({"mean": float, "low": float, "high": float, "above": int, "below": int, "n": int,
                                        "sd": float, "mde": float, "p_t": float})  # fmt: skip
