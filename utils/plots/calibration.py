"""Figures of calibration: reliability diagrams, metric curves, and the temperature explorer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..config import IGNORE_INDEX
from ._base import _np

def _reliability_panel(ax: plt.Axes, bins, title: str) -> None:
    """Draw one reliability diagram (accuracy per equal-width confidence bin) from a ``ReliabilityBins``."""
    edges = np.asarray(bins.edges, float)
    acc, conf, count = (np.asarray(v, float) for v in (bins.accuracy, bins.confidence, bins.count))
    lo, width = edges[:-1], np.diff(edges)
    filled = count > 0
    ax.bar(lo[filled], acc[filled], width[filled], align="edge", color="tab:blue", edgecolor="white", label="accuracy")
    gap_lo = np.minimum(acc, conf)
    ax.bar(
        lo[filled], np.abs(acc - conf)[filled], width[filled], bottom=gap_lo[filled], align="edge",
        color="tab:red", alpha=0.35, hatch="//", edgecolor="tab:red", lw=0, label="gap to the diagonal",
    )
    ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max-softmax)", ylabel="accuracy", title=title)
    share = ax.inset_axes((0.17, 0.6, 0.4, 0.3))
    share.bar(lo, np.where(count > 0, count / max(count.sum(), 1), np.nan), width, align="edge", color="0.45")
    share.set_yscale("log")
    share.set_ylim(1e-5, 1.5)
    share.set_xlim(0, 1)
    share.set_title("share of pixels", fontsize=7)
    share.tick_params(labelsize=6)


def show_reliability(diagrams: dict, scores: dict[str, float] | None = None) -> Figure:
    """Draw reliability diagrams side by side: ``diagrams`` maps a title to a ``metrics.ReliabilityBins``.

    ``scores`` optionally maps the same titles to an ECE, printed in each panel.
    """
    if not diagrams:
        raise ValueError("diagrams must hold at least one ReliabilityBins")
    n = len(diagrams)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.7), squeeze=False, layout="constrained")
    for ax, (title, bins) in zip(axes[0], diagrams.items()):
        _reliability_panel(ax, bins, title)
        if scores and title in scores:
            ax.text(0.97, 0.04, f"ECE {scores[title]:.4f}", ha="right", va="bottom", transform=ax.transAxes, fontsize=9)
    axes[0, 0].legend(loc="lower right", bbox_to_anchor=(1, 0.12), fontsize=7.5, frameon=False)
    return fig


def show_curves(
    x: Sequence[float],
    panels: dict[str, dict[str, Sequence[float]]],
    xlabel: str,
    reference: dict[str, dict[str, float]] | None = None,
    logy: Sequence[str] = (),
) -> Figure:
    """Plot one panel per metric: ``panels`` maps a panel title to {curve name: values, one per ``x``}.

    ``reference`` maps a panel title to {name: value} drawn as dotted horizontal lines; panels named
    in ``logy`` get a log y-axis.
    """
    if not panels:
        raise ValueError("panels must hold at least one panel")
    xs = np.asarray(x, float)
    for title, curves in panels.items():
        if any(len(v) != len(xs) for v in curves.values()):
            raise ValueError(f"every curve of panel {title!r} must have one value per x")
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.9 * n, 3.4), squeeze=False, layout="constrained")
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, values in curves.items():
            ax.plot(xs, values, "o-", ms=4, label=name)
        for name, value in (reference or {}).get(title, {}).items():
            ax.axhline(value, color="0.5", ls=":", lw=1)
            ax.text(xs[-1], value, f"{name} ", ha="right", va="bottom", fontsize=7.5, color="0.3")
        ax.set(xlabel=xlabel, title=title)
        if title in logy:
            ax.set_yscale("log")
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
        if len(curves) > 1:
            ax.legend(fontsize=7.5)
    return fig


def calibration_view(logits: torch.Tensor, target: torch.Tensor, temperature: float, fitted: float | None = None) -> Figure:
    """Draw the reliability diagram and the confidence histogram of ``logits / temperature`` (one slider view)."""
    from ..metrics import CalibrationMeter

    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    probs = (logits.float() / temperature).softmax(1)
    meter = CalibrationMeter(num_classes=probs.shape[1]).update(probs, target)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.6, 3.6), layout="constrained")
    _reliability_panel(ax1, meter.reliability(), f"T = {temperature:.2f}")
    ax1.text(0.97, 0.04, f"ECE {meter.ece():.4f}\nNLL {meter.nll():.4f}", ha="right", va="bottom",
             transform=ax1.transAxes, fontsize=9)
    conf = probs.amax(1)[target != IGNORE_INDEX]
    ax2.hist(_np(conf).ravel(), bins=np.linspace(1 / probs.shape[1], 1, 41), color="0.45")
    ax2.set(yscale="log", xlabel="confidence (max-softmax)", ylabel="pixels", title="where the confidences lie")
    if fitted is not None:
        fig.suptitle(f"temperature T = {temperature:.2f} (fitted on validation: {fitted:.2f})", fontsize=10)
    return fig


def temperature_explorer(logits: torch.Tensor, target: torch.Tensor, fitted: float | None = None):
    """Return an ipywidgets demo: a temperature slider that redraws :func:`calibration_view`."""
    import ipywidgets as widgets

    slider = widgets.FloatLogSlider(value=1.0, base=10, min=-0.7, max=0.7, step=0.02, description="T")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            calibration_view(logits, target, slider.value, fitted)
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, out])
