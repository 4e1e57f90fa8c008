"""Figures of calibration: reliability diagrams, metric curves, and the temperature explorer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..config import IGNORE_INDEX
from ._base import _LABEL_BOX, PAGE_WIDTH, SMALL, _np

#: Fill and hatch of the gap bars: over-confidence (accuracy below confidence) in red above the blue
#: accuracy bar, under-confidence (accuracy above confidence) as white hatching on the blue bar itself,
#: so that no two colours are ever blended.
_ACCURACY = "tab:blue"
_OVER = {"facecolor": "#f6b3ac", "edgecolor": "#b2182b", "hatch": "////"}
_UNDER = {"facecolor": "none", "edgecolor": "white", "hatch": "\\\\\\\\"}


def _reliability_panel(ax: plt.Axes, bins, title: str, share_ax: plt.Axes | None = None, xlabel: bool = True) -> bool:
    """Draw one reliability diagram (accuracy per equal-width confidence bin) from a ``ReliabilityBins``.

    The gap of each bin to the diagonal is drawn as in :data:`_OVER`/:data:`_UNDER`; ``share_ax``, if
    given, gets the share of pixels per bin (log scale). Returns whether any bin is under-confident.
    """
    edges = np.asarray(bins.edges, float)
    acc, conf, count = (np.asarray(v, float) for v in (bins.accuracy, bins.confidence, bins.count))
    lo, width = edges[:-1], np.diff(edges)
    filled = count > 0
    ax.bar(lo[filled], acc[filled], width[filled], align="edge", color=_ACCURACY, edgecolor="white", lw=0.6,
           label="accuracy")  # fmt: skip
    over, under = filled & (conf > acc), filled & (acc > conf)
    ax.bar(lo[over], (conf - acc)[over], width[over], bottom=acc[over], align="edge", lw=0.6, **_OVER,
           label="over-confidence gap")  # fmt: skip
    ax.bar(lo[under], (acc - conf)[under], width[under], bottom=conf[under], align="edge", lw=0, **_UNDER,
           label="under-confidence gap")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="0.2", ls="--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    ticks = [0, 0.2, 0.4, 0.6, 0.8, 1]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])  # short labels: the two "0"s at the origin stay apart
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_title(title, fontsize=10)
    if xlabel:
        ax.set_xlabel("confidence (max-softmax)")
    if share_ax is not None:
        share_ax.bar(lo, np.where(filled, count / max(count.sum(), 1), np.nan), width, align="edge", color="0.45")
        share_ax.set(yscale="log", ylim=(1e-5, 1.5), xlim=(0, 1), yticks=[1e-4, 1e-2, 1])
        share_ax.set_ylabel("share of\npixels", fontsize=SMALL)
        share_ax.minorticks_off()
    return bool(under.any())


def _reliability_legend(fig: Figure, under: bool, where: str = "upper") -> None:
    """Explain the bars of the reliability diagrams once, above (``where="upper"``) or below the panels."""
    handles = [
        Patch(color=_ACCURACY, label="accuracy"),
        Patch(**_OVER, lw=0.6, label="over-confidence gap"),
        *([Patch(facecolor=_ACCURACY, edgecolor="white", hatch=_UNDER["hatch"], lw=0, label="under-confidence gap")]
          if under else []),
        Line2D([], [], color="0.2", ls="--", lw=1, label="perfect calibration"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc=f"outside {where} center", ncol=len(handles), frameon=False, fontsize=SMALL,
               handlelength=1.6, columnspacing=1.2)  # fmt: skip


def show_reliability(diagrams: dict, scores: dict[str, float] | None = None) -> Figure:
    """Draw reliability diagrams side by side: ``diagrams`` maps a title to a ``metrics.ReliabilityBins``.

    Under each diagram a small panel shows the share of pixels per bin (log scale), which is what the
    ECE weighs each gap by. ``scores`` optionally maps the same titles to an ECE, printed in each panel.
    Up to four diagrams share one row; more wrap into rows of three.
    """
    if not diagrams:
        raise ValueError("diagrams must hold at least one ReliabilityBins")
    n = len(diagrams)
    cols = n if n <= 4 else 3
    rows = -(-n // cols)
    width = min(PAGE_WIDTH, 0.4 + 2.6 * cols)
    side = (width - 0.4) / cols  # each diagram about square
    fig = plt.figure(figsize=(width, rows * (1.25 * side + 0.6) + 0.5), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=(3, 1) * rows)
    under = False
    first_diagram = first_share = None
    for i, (title, bins) in enumerate(diagrams.items()):
        r, c = divmod(i, cols)
        ax = fig.add_subplot(grid[2 * r, c], sharey=first_diagram)
        share = fig.add_subplot(grid[2 * r + 1, c], sharex=ax, sharey=first_share)
        first_diagram, first_share = first_diagram or ax, first_share or share
        under |= _reliability_panel(ax, bins, title, share, xlabel=False)
        ax.tick_params(axis="x", labelbottom=False)
        share.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
        if i % cols:
            ax.tick_params(axis="y", labelleft=False)
            share.tick_params(axis="y", labelleft=False)
            ax.set_ylabel("")
            share.set_ylabel("")
        if scores and title in scores:
            ax.text(0.04, 0.96, f"ECE {scores[title]:.4f}", ha="left", va="top", transform=ax.transAxes,
                    fontsize=SMALL, bbox=_LABEL_BOX)  # fmt: skip
    fig.supxlabel("confidence (max-softmax)", fontsize=10)
    _reliability_legend(fig, under)
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
    fig, axes = plt.subplots(1, n, figsize=(min(PAGE_WIDTH + 0.3, 2.7 * n + 0.3), 3.1), squeeze=False, layout="constrained")
    names = [list(curves) for curves in panels.values()]
    shared_legend = n > 1 and len(names[0]) > 1 and all(k == names[0] for k in names)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, values in curves.items():
            ax.plot(xs, values, "o-", ms=4, label=name)
        for name, value in (reference or {}).get(title, {}).items():
            ax.axhline(value, color="0.5", ls=":", lw=1)
            ax.text(xs[-1], value, f"{name} ", ha="right", va="bottom", fontsize=SMALL, color="0.3", bbox=_LABEL_BOX)
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        if title in logy:
            ax.set_yscale("log")
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
        if len(curves) > 1 and not shared_legend:
            ax.legend(fontsize=SMALL)
    if shared_legend:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=len(names[0]),
                   frameon=False, fontsize=SMALL)  # fmt: skip
    return fig


def calibration_view(logits: torch.Tensor, target: torch.Tensor, temperature: float, fitted: float | None = None) -> Figure:
    """Draw the reliability diagram and the confidence histogram of ``logits / temperature`` (one slider view)."""
    from ..metrics import CalibrationMeter

    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    probs = (logits.float() / temperature).softmax(1)
    meter = CalibrationMeter(num_classes=probs.shape[1]).update(probs, target)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.6), layout="constrained")
    under = _reliability_panel(ax1, meter.reliability(), f"T = {temperature:.2f}")
    ax1.text(0.04, 0.96, f"ECE {meter.ece():.4f}\nNLL {meter.nll():.4f}", ha="left", va="top", transform=ax1.transAxes,
             fontsize=SMALL, bbox=_LABEL_BOX)  # fmt: skip
    _reliability_legend(fig, under, "lower")
    conf = probs.amax(1)[target != IGNORE_INDEX]
    ax2.hist(_np(conf).ravel(), bins=np.linspace(1 / probs.shape[1], 1, 41), color="0.45")
    ax2.set(yscale="log", xlabel="confidence (max-softmax)", ylabel="pixels")
    ax2.set_title("where the confidences lie", fontsize=10)
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
