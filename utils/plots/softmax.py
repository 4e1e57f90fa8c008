"""Figures of the softmax itself: temperatures, the softmax explorer, and confidence under input scaling."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def _softmax_panel(ax: plt.Axes, logits: Sequence[float], temperature: float, names: Sequence[str] | None = None) -> None:
    z = torch.as_tensor(logits, dtype=torch.float64)
    p = (z / temperature).softmax(0).numpy()
    names = list(names) if names is not None else [f"class {k}" for k in range(len(p))]
    bars = ax.bar(names, p, color=[f"C{k}" for k in range(len(p))])
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set(ylim=(0, 1.1), title=f"T = {temperature:g}", ylabel="probability")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)


def show_temperatures(
    logits: Sequence[float], temperatures: Sequence[float] = (0.5, 1.0, 2.0, 5.0), names: Sequence[str] | None = None
) -> Figure:
    """Draw ``softmax(logits / T)`` as bars for each temperature ``T``, beside the logits themselves."""
    logits = [float(v) for v in logits]
    if len(logits) < 2:
        raise ValueError(f"logits must hold at least 2 values, got {len(logits)}")
    if not temperatures or min(temperatures) <= 0:
        raise ValueError(f"temperatures must be positive, got {temperatures!r}")
    if names is not None and len(names) != len(logits):
        raise ValueError(f"names must have one entry per logit ({len(logits)}), got {len(names)}")
    width = 2.6 if len(logits) <= 5 else 3.4
    fig, axes = plt.subplots(1, len(temperatures) + 1, figsize=(width * (len(temperatures) + 1), 3.0))
    labels = list(names) if names is not None else [f"class {k}" for k in range(len(logits))]
    axes[0].bar(labels, logits, color=[f"C{k}" for k in range(len(logits))])
    axes[0].set(title="logits z", ylabel="logit")
    axes[0].tick_params(axis="x", labelrotation=45, labelsize=8)
    for ax, t in zip(axes[1:], temperatures):
        _softmax_panel(ax, logits, t, names)
    fig.tight_layout()
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
            fig, ax = plt.subplots(figsize=(4.5, 3))
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
