"""Figures of the active-learning chapter: learning curves per pool, paired differences with their intervals, trap shares."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..active.analysis import bootstrap_mean
from ..active.config import STRATEGIES, parse_arm
from ..active.results import control_curves, curves

__all__: list[str] = ["show_learning_curves", "show_paired_differences", "show_trap_shares"]

#: Display names of the strategies of :data:`utils.active.STRATEGIES`.
NAMES = {"random": "random", "least_confidence": "least confidence", "entropy": "entropy", "bald": "BALD",
         "var_ratios": "variation ratio"}  # fmt: skip
_TITLES = {"clean": "clean pool", "overlaid": "pool with overlaid traps", "ambiguous": "pool with ambiguous traps"}
_METRICS = {"miou": "test mIoU", "digit_pixel_accuracy": "test accuracy, digit pixels"}


def _check(results: Any) -> None:
    if not isinstance(results, dict) or not {"runs", "seeds", "arms", "control", "config"} <= set(results):
        raise TypeError("results must be a results dict of utils.active (load_results() or a run's file)")


def _colour(strategy: str) -> str:
    return f"C{STRATEGIES.index(strategy)}"


def _pretty(name: str) -> str:
    """Return a comparison name of :func:`utils.active.comparisons` with the strategies' display names."""
    for key in sorted(NAMES, key=len, reverse=True):
        name = name.replace(key, NAMES[key])
    return name.replace(" - ", " − ")


def show_learning_curves(results: dict[str, Any], key: str = "miou") -> Figure:
    """Plot one panel per pool: every arm's mean ``key`` over seeds against labelled pixels (in scenes' worth); areas dashed, the control dotted grey."""
    _check(results)
    if key not in _METRICS:
        raise ValueError(f"key must be one of {tuple(_METRICS)}, got {key!r}")
    pools = list(dict.fromkeys(parse_arm(a)[0] for a in results["arms"]))
    per, size = curves(results, key), results["config"]["scene_size"] ** 2
    pixels = curves(results, "labelled_pixels")
    fig, axes = plt.subplots(1, len(pools), figsize=(7.6, 3.4), sharey=True, squeeze=False, layout="constrained")
    for ax, pool in zip(axes[0], pools):
        for arm in (a for a in results["arms"] if a.startswith(pool + "/")):
            _, unit, strategy = parse_arm(arm)
            ax.plot(pixels[arm][0] / size, per[arm].mean(0), "-" if unit == "scenes" else "--", marker="o", ms=2.5,
                    lw=1.3, color=_colour(strategy))  # fmt: skip
        ax.plot(pixels[results["arms"][0]][0] / size, control_curves(results, key).mean(0), ":", color="0.45", lw=1.5)
        ax.set_title(_TITLES[pool], fontsize=10)
        ax.set_xlabel("labelled pixels (scenes' worth)", fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(_METRICS[key] + ", mean over seeds", fontsize=9)
    strategies = list(dict.fromkeys(parse_arm(a)[2] for a in results["arms"]))
    handles = [plt.Line2D([], [], color=_colour(s), lw=2) for s in strategies]
    handles += [plt.Line2D([], [], color="k", ls="-"), plt.Line2D([], [], color="k", ls="--"), plt.Line2D([], [], color="0.45", ls=":")]
    labels = [NAMES[s] for s in strategies] + ["whole scenes", "areas", "no new labels"]
    fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False, fontsize=9)
    return fig


def show_paired_differences(table: pd.DataFrame, effect: float | None = None, xlabel: str = "difference in test mIoU") -> Figure:
    """Plot each row of a :func:`utils.active.paired_table` as its mean paired difference with its interval; a band marks +-``effect``."""
    if not isinstance(table, pd.DataFrame) or not {"mean", "low", "high"} <= set(table.columns) or table.empty:
        raise TypeError("table must be a non-empty utils.active.paired_table DataFrame")
    y = np.arange(len(table))[::-1]
    fig, ax = plt.subplots(figsize=(7.6, 0.28 * len(table) + 1.1), layout="constrained")
    if effect is not None:
        ax.axvspan(-effect, effect, color="0.9", lw=0)
    ax.axvline(0, color="0.3", lw=1)
    colours = ["C2" if lo > 0 else "C3" if hi < 0 else "0.25" for lo, hi in zip(table["low"], table["high"])]
    ax.hlines(y, table["low"], table["high"], colors=colours, lw=2)
    ax.scatter(table["mean"], y, color=colours, s=18, zorder=3)
    ax.set_yticks(y, [_pretty(str(i)) for i in table.index], fontsize=9)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=9)
    ax.grid(axis="x", alpha=0.3)
    return fig


def show_trap_shares(results: dict[str, Any]) -> Figure:
    """Plot, per trap pool and arm, the share of the labelled pixels that lie on trap scenes (mean over rounds, interval over seeds) beside the pool's share."""
    _check(results)
    trap_pools = [p for p in dict.fromkeys(parse_arm(a)[0] for a in results["arms"]) if p != "clean"]
    if not trap_pools:
        raise ValueError("results hold no pool with traps")
    share, base = curves(results, "trap_share"), curves(results, "pool_trap_share")
    arms = [a for a in results["arms"] if a.startswith(trap_pools[0] + "/")]
    y = np.arange(len(arms))[::-1]
    fig, axes = plt.subplots(1, len(trap_pools), figsize=(7.6, 0.3 * len(arms) + 1.4), sharey=True, squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, pool in zip(axes[0], trap_pools):
        mine = [f"{pool}/{parse_arm(a)[1]}/{parse_arm(a)[2]}" for a in arms]
        stats = [bootstrap_mean(np.nanmean(share[a][:, 1:], 1)) for a in mine]
        mean = np.array([s[0] for s in stats])
        err = np.array([[m - s[1], s[2] - m] for m, s in zip(mean, stats)]).T
        ax.barh(y, mean, xerr=err, capsize=2, height=0.65, color=[_colour(parse_arm(a)[2]) for a in mine],
                edgecolor=["none" if parse_arm(a)[1] == "scenes" else "k" for a in mine])  # fmt: skip
        ax.plot([np.nanmean(base[a][:, 1:]) for a in mine], y, "k|", ms=12, mew=2)
        ax.set_title(_TITLES[pool], fontsize=10)
        ax.set_xlabel("share of labelled pixels on traps", fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(y, [("areas: " if parse_arm(a)[1] == "areas" else "scenes: ") + NAMES[parse_arm(a)[2]] for a in arms])
    fig.legend([plt.Line2D([], [], color="k", marker="|", ls="", ms=10, mew=2)], ["the unlabelled pool's share (random's expectation)"],
               loc="outside lower center", frameon=False, fontsize=9)  # fmt: skip
    return fig
