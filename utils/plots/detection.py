"""Figures of detection and selection: confidence histograms, ROC curves, risk-coverage curves."""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..config import NUM_CLASSES
from ._base import PAGE_WIDTH, SMALL

def confidence_histogram(groups: dict[str, torch.Tensor], bins: int = 50) -> Figure:
    """Overlay histograms (as densities, log y-axis) of max-softmax values for named groups of pixels."""
    if not groups:
        raise ValueError("groups must name at least one group of confidence values")
    fig, ax = plt.subplots(figsize=(8.4, 3.4))
    edges = np.linspace(1 / NUM_CLASSES, 1, bins + 1)
    for name, values in groups.items():
        v = values.detach().float().cpu().numpy().ravel()
        ax.hist(v, bins=edges, density=True, histtype="step", lw=1.8, label=f"{name} (n = {v.size:,})")
    ax.set(xlabel="max-softmax", ylabel="density", yscale="log")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig

def show_roc(curves: dict[str, tuple[torch.Tensor, torch.Tensor]], max_points: int = 2000) -> Figure:
    """Draw ROC curves: ``curves`` maps a legend name to ``(score, positive)`` (higher score = more positive)."""
    from ..metrics import auroc, roc_curve

    if not curves:
        raise ValueError("curves must name at least one (score, positive) pair")
    fig, ax = plt.subplots(figsize=(4.8, 3.9 + 0.22 * len(curves)), layout="constrained")
    for name, (score, positive) in curves.items():
        fpr, tpr = roc_curve(score, positive, max_points=max_points)
        ax.plot(fpr.numpy(), tpr.numpy(), label=f"{name} (AUROC {auroc(score, positive):.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance (0.5)")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    ticks = [0, 0.2, 0.4, 0.6, 0.8, 1]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    # below the axes (long names would cover the curves or the tick labels inside)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=SMALL, frameon=False)
    return fig


# --- Chapter 3: fooling images and out-of-distribution inputs -------------------------------------

def show_risk_coverage(
    curves: dict[str, tuple[torch.Tensor, torch.Tensor]], max_points: int = 2000, zoom: float = 0.9
) -> Figure:
    """Plot selective risk against coverage, and the share of errors caught against the share of pixels set aside.

    ``curves`` maps a name to ``(coverage, risk)`` (as from ``metrics.risk_coverage``); the left panel
    shows coverage from ``zoom`` to 1 with a log risk axis, where methods differ.
    """
    if not curves:
        raise ValueError("curves must hold at least one (coverage, risk) pair")
    if not 0 <= zoom < 1:
        raise ValueError(f"zoom must be in [0, 1), got {zoom!r}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(PAGE_WIDTH + 0.4, 3.6), layout="constrained")
    for name, (cov, risk) in curves.items():
        cov, risk = np.asarray(cov, float), np.asarray(risk, float)
        caught = 1 - cov * risk / max(risk[-1], 1e-300)  # errors among the pixels set aside, as a share
        if len(cov) > max_points:
            keep = np.unique(np.concatenate([np.linspace(0, len(cov) - 1, max_points).round().astype(int),
                                             np.flatnonzero(cov >= zoom)[:: max(1, (cov >= zoom).sum() // max_points)]]))
            cov, risk, caught = cov[keep], risk[keep], caught[keep]
        ax1.plot(cov, risk, lw=1.6, label=name)
        ax2.plot(1 - cov, caught, lw=1.6, label=name)
    ax1.set(xlabel="coverage (share of pixels kept)", ylabel="error rate of kept pixels", yscale="log",
            xlim=(zoom, 1.0), title="risk-coverage")
    ax2.set(xlabel="share of pixels set aside (least certain first)", ylabel="share of all errors set aside",
            xscale="log", xlim=(1e-4, 1), ylim=(0, 1.02), title="errors caught")
    ax2.set_yticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
    ax2.tick_params(axis="x", pad=6)  # keeps the tall "10^-4" clear of the "0" at the corner
    fig.legend(*ax1.get_legend_handles_labels(), loc="outside lower center", ncol=min(len(curves), 4), frameon=False,
               fontsize=SMALL)  # fmt: skip
    return fig
