"""Figures of the active-learning chapter: learning curves with their seed spread, trap picks and boundary shares."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..active import curves

__all__: list[str] = ["show_acquisition_bars", "show_learning_curves"]

#: Display names of the strategies of :data:`utils.active.STRATEGIES`.
_NAMES = {"random": "random", "least_confidence": "least confidence", "entropy": "entropy", "bald": "BALD"}


def _check(results: Any) -> None:
    if not isinstance(results, dict) or "runs" not in results or "seeds" not in results:
        raise TypeError("results must be a results dict of utils.active (load_results() or a run's file)")


def show_learning_curves(results: dict[str, Any], keys: tuple[str, ...] = ("miou", "digit_pixel_accuracy")) -> Figure:
    """Plot one panel per metric against the number of labelled scenes: each strategy's mean over seeds, with a min-max band."""
    _check(results)
    titles = {"miou": "test mIoU", "digit_pixel_accuracy": "test accuracy, digit pixels"}
    fig, axes = plt.subplots(1, len(keys), figsize=(7.6, 3.2), squeeze=False, layout="constrained")
    for ax, key in zip(axes[0], keys):
        per = curves(results, key)
        xs = curves(results, "labelled")
        for i, (strategy, values) in enumerate(per.items()):
            x = xs[strategy][0]
            ax.plot(x, values.mean(0), "-o", ms=3, lw=1.5, color=f"C{i}", label=_NAMES.get(strategy, strategy))
            ax.fill_between(x, values.min(0), values.max(0), color=f"C{i}", alpha=0.18, lw=0)
        ax.set_title(titles.get(key, key), fontsize=10)
        ax.set_xlabel("labelled scenes", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False, fontsize=9)
    return fig


def show_acquisition_bars(results: dict[str, Any]) -> Figure:
    """Plot, per strategy, the trap scenes labelled by the last round and the share of chosen uncertainty on boundary pixels (mean, min-max over seeds)."""
    _check(results)
    cfg = results["config"]
    traps = {s: v[:, -1] - v[:, 0] for s, v in curves(results, "traps_labelled").items()}
    share = {s: np.nanmean(v[:, 1:], axis=1) for s, v in curves(results, "boundary_share").items()}
    area = {s: np.nanmean(v[:, 1:], axis=1) for s, v in curves(results, "boundary_area").items()}
    names = list(traps)
    x = np.arange(len(names))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.6, 3.2), layout="constrained")
    for ax, data in ((ax1, traps), (ax2, share)):
        mean = np.array([data[s].mean() for s in names])
        err = np.array([[mean[i] - data[s].min(), data[s].max() - mean[i]] for i, s in enumerate(names)]).T
        ax.bar(x, mean, yerr=err, color=[f"C{i}" for i in range(len(names))], capsize=3, width=0.6)
        ax.set_xticks(x, [_NAMES.get(s, s).replace(" ", "\n") for s in names], fontsize=9)
        ax.tick_params(labelsize=9)
    acquired = cfg["rounds"] * cfg["acquire"]
    expected = acquired * cfg["n_traps"] / (cfg["pool_size"] + cfg["n_traps"])
    ax1.axhline(expected, color="0.3", ls="--", lw=1)
    ax1.set_title(f"trap scenes among {acquired} acquired", fontsize=10)
    ax1.set_ylabel("scenes", fontsize=10)
    ax2.plot(x, [area[s].mean() for s in names], "k_", ms=22, mew=2, label="boundary share of pixels")
    ax2.set_title("uncertainty on boundary pixels", fontsize=10)
    ax2.set_ylabel("share of the chosen scenes' mass", fontsize=10)
    ax2.set_ylim(0, 1)
    handles = [plt.Line2D([], [], color="0.3", ls="--"), plt.Line2D([], [], color="k", marker="_", ls="", ms=12, mew=2)]
    fig.legend(handles, ["traps if chosen at random", "boundary pixels' share of area"], loc="outside lower center",
               ncol=2, frameon=False, fontsize=9)  # fmt: skip
    return fig
