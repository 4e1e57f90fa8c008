"""Figures of the softmax itself: temperatures, the softmax explorer, and confidence under input scaling."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..config import NUM_CLASSES
from ..data import PALETTE
from ._base import PAGE_WIDTH, SMALL


def _bars(ax: plt.Axes, names: Sequence[str], values, horizontal: bool):
    """Draw one bar per class, coloured by class; horizontal bars (names down the y-axis) for many classes."""
    if len(values) == NUM_CLASSES:  # the course's classes: their overlay colours, background grey
        colors = [(0.55, 0.55, 0.55)] + [tuple(c / 255 for c in rgb) for rgb in PALETTE[1:]]
    else:
        colors = [f"C{k}" for k in range(len(values))]
    if horizontal:
        bars = ax.barh(names, values, color=colors, edgecolor="0.3", lw=0.5)
        ax.invert_yaxis()  # first class on top
        ax.tick_params(axis="y", labelsize=SMALL)
        ax.axvline(0, color="0.3", lw=0.8)
    else:
        bars = ax.bar(names, values, color=colors)
        ax.tick_params(axis="x", labelsize=SMALL)
    return bars


def _softmax_panel(
    ax: plt.Axes, logits: Sequence[float], temperature: float, names: Sequence[str] | None = None, horizontal: bool = False
) -> None:
    z = torch.as_tensor(logits, dtype=torch.float64)
    p = (z / temperature).softmax(0).numpy()
    names = list(names) if names is not None else [f"class {k}" for k in range(len(p))]
    bars = _bars(ax, names, p, horizontal)
    ax.bar_label(bars, fmt="%.2f", fontsize=SMALL, padding=2)
    ax.set_title(f"T = {temperature:g}")
    if horizontal:
        ax.set(xlim=(0, 1.18), xlabel="probability")
    else:
        ax.set(ylim=(0, 1.12), ylabel="probability")


def show_temperatures(
    logits: Sequence[float], temperatures: Sequence[float] = (0.5, 1.0, 2.0, 5.0), names: Sequence[str] | None = None
) -> Figure:
    """Draw the logits (left panel) beside ``softmax(logits / T)`` as bars for each temperature ``T``.

    The temperatures fill a grid of two columns right of the logits. Up to five classes get vertical
    bars; more get horizontal bars, with the class names down the y-axis.
    """
    logits = [float(v) for v in logits]
    if len(logits) < 2:
        raise ValueError(f"logits must hold at least 2 values, got {len(logits)}")
    if not temperatures or min(temperatures) <= 0:
        raise ValueError(f"temperatures must be positive, got {temperatures!r}")
    if names is not None and len(names) != len(logits):
        raise ValueError(f"names must have one entry per logit ({len(logits)}), got {len(names)}")
    horizontal = len(logits) > 5
    t_cols = min(len(temperatures), 2)  # at most three panels across the page
    t_rows = -(-len(temperatures) // t_cols)
    panel_h = 0.3 * len(logits) + 1.0 if horizontal else 2.5
    fig = plt.figure(figsize=(PAGE_WIDTH, panel_h * t_rows), layout="constrained")
    grid = fig.add_gridspec(t_rows, t_cols + 1)
    labels = list(names) if names is not None else [f"class {k}" for k in range(len(logits))]
    first = fig.add_subplot(grid[:, 0])
    _bars(first, labels, logits, horizontal)
    first.set_title("logits z")
    if horizontal:
        first.set_xlabel("logit")
    else:
        first.set_ylabel("logit")
    shared = None
    for j, t in enumerate(temperatures):
        ax = fig.add_subplot(grid[j // t_cols, 1 + j % t_cols], **({"sharex": shared} if horizontal else {"sharey": shared}))
        shared = shared or ax
        _softmax_panel(ax, logits, t, names, horizontal)
        if j % t_cols:  # the second column repeats the first one's y-axis (probability, or the class names)
            ax.tick_params(axis="y", labelleft=False)
            ax.set_ylabel("")
    return fig


def softmax_explorer(logits: Sequence[float] = (2.0, 1.0, 0.5, -1.0)):
    """Return an ipywidgets demo: one slider per logit and one for the temperature, redrawing the softmax."""
    import ipywidgets as widgets

    sliders = [widgets.FloatSlider(value=float(v), min=-5, max=5, step=0.1, description=f"z{k}") for k, v in enumerate(logits)]
    temp = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1.3, step=0.05, description="T")
    shift = widgets.FloatSlider(value=0.0, min=-5, max=5, step=0.5, description="add c")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4.5, 3), layout="constrained")
            _softmax_panel(ax, [s.value + shift.value for s in sliders], temp.value)
            plt.show()

    for w in (*sliders, temp, shift):
        w.observe(draw, names="value")
    draw()
    return widgets.HBox([widgets.VBox([*sliders, shift, temp]), out])


def show_scaling(alphas: Sequence[float], mean_msp: Sequence[float], logit_norm: Sequence[float], mark: float = 100.0) -> Figure:
    """Plot mean max-softmax (left) and mean logit norm (right, log-log) against the input scale alpha."""
    if not len(alphas) == len(mean_msp) == len(logit_norm) or len(alphas) < 2:
        raise ValueError("alphas, mean_msp and logit_norm must have the same length (at least 2)")
    a = np.asarray(alphas, float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.3))
    ax1.plot(a, mean_msp, "o-", ms=3)
    ax1.axhline(0.99, color="0.5", ls="--", lw=1, label="0.99")
    ax1.axvline(mark, color="C3", ls=":", lw=1.2, label=f"alpha = {mark:g}")
    ax1.set(xscale="log", xlabel="input scale alpha", ylabel="mean max-softmax", title="confidence on alpha * x")
    ax1.legend(loc="lower right")
    norm = np.asarray(logit_norm, float)
    ax2.loglog(a, norm, "o-", ms=3, label="measured")
    ax2.loglog(a, norm[-1] * a / a[-1], color="0.5", ls="--", lw=1, label="slope 1 (linear growth)")
    ax2.axvline(mark, color="C3", ls=":", lw=1.2)
    ax2.set(xlabel="input scale alpha", ylabel="mean logit norm", title="size of the logits")
    ax2.legend(loc="upper left")
    fig.tight_layout()
    return fig
