"""Figures of adversarial attacks: the epsilon sweep and the attacked-scene view and explorer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..config import NUM_CLASSES
from ._base import HEATMAP_CMAP, PAGE_WIDTH, SMALL, _LABEL_BOX, _as_image, _no_ticks, _np, _show_gray, overlay

def show_attack_sweep(eps: Sequence[float], rows: dict[str, Sequence[float]], reference: dict[str, float] | None = None) -> Figure:
    """Plot attack results against epsilon (> 0; axis in units of 1/255): ``rows`` maps a curve name to its values.

    Curves (and ``reference`` lines: name -> value) whose name contains "mIoU" go to the left panel,
    the others (confidences) to the right one.
    """
    e = np.asarray(eps, float) * 255
    if len(e) == 0 or (e <= 0).any():
        raise ValueError("eps must hold positive values")
    if any(len(v) != len(e) for v in rows.values()):
        raise ValueError("every curve in rows must have one value per eps")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(PAGE_WIDTH + 0.4, 3.5), layout="constrained")
    for name, values in rows.items():
        ax = ax1 if "mIoU" in name else ax2
        ax.plot(e, values, "o-", ms=4, label=name)
    for name, value in (reference or {}).items():
        ax = ax1 if "mIoU" in name else ax2
        ax.axhline(value, color="0.5", ls=":", lw=1)
        ax.text(e[-1], value, f"{name} ", ha="right", va="bottom", fontsize=SMALL, color="0.3", bbox=_LABEL_BOX)
    ax1.set(xlabel="epsilon (x 1/255)", ylabel="test mIoU", ylim=(0, 1.05), title="accuracy under attack")
    ax2.set(xlabel="epsilon (x 1/255)", ylabel="mean max-softmax", ylim=(0.4, 1.05), title="confidence under attack")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(e, [f"{v:g}" for v in e])
        ax.minorticks_off()
        ax.legend(fontsize=SMALL, loc="lower left" if ax is ax1 else "lower right")
    return fig


def attack_view(
    image: torch.Tensor, adv: torch.Tensor, label: torch.Tensor, probs_clean: torch.Tensor, probs_adv: torch.Tensor, title: str = ""
) -> Figure:
    """Draw one attacked scene: clean and attacked images and the perturbation (top), predictions and heat map (bottom)."""
    delta = _np(_as_image(adv) - _as_image(image))
    span = max(float(np.abs(delta).max()), 1e-8)
    fig = plt.figure(figsize=(PAGE_WIDTH, 5.3), layout="constrained")
    grid = fig.add_gridspec(2, 3)
    # top row: clean image, attacked image, their difference; bottom row: what the model makes of them.
    # Created in the order clean, perturbation, attacked, predictions, heat map (fig.axes[0..5]).
    axes = [fig.add_subplot(grid[pos]) for pos in ((0, 0), (0, 2), (0, 1), (1, 0), (1, 1), (1, 2))]
    _show_gray(axes[0], image)
    axes[0].set_title("clean image", fontsize=10)
    im = axes[1].imshow(delta, cmap="RdBu_r", vmin=-span, vmax=span)
    axes[1].set_title(f"perturbation (max {span * 255:.0f}/255)", fontsize=10)
    _colorbar(fig, im, axes[1])
    _show_gray(axes[2], adv)
    axes[2].set_title("attacked image", fontsize=10)
    axes[3].imshow(overlay(image, probs_clean.argmax(0)))
    axes[3].set_title("prediction, clean", fontsize=10)
    axes[4].imshow(overlay(adv, probs_adv.argmax(0)))
    axes[4].set_title("prediction, attacked", fontsize=10)
    hm = axes[5].imshow(_np(probs_adv.amax(0)), cmap=HEATMAP_CMAP, vmin=1 / NUM_CLASSES, vmax=1)
    axes[5].set_title("max-softmax, attacked", fontsize=10)
    _colorbar(fig, hm, axes[5])
    for ax in axes:
        _no_ticks(ax)
    if title:
        fig.suptitle(title)
    return fig


def _colorbar(fig: Figure, mappable, ax: plt.Axes) -> None:
    cbar = fig.colorbar(mappable, ax=ax, shrink=0.8)
    cbar.ax.tick_params(labelsize=SMALL)
    cbar.ax.yaxis.set_major_locator(MaxNLocator(4))


def attack_explorer(
    image: torch.Tensor, label: torch.Tensor, advs: dict[float, torch.Tensor], probs: dict[float, torch.Tensor]
):
    """Return an ipywidgets demo: an epsilon slider over precomputed attacks (``advs``/``probs`` keyed by eps)."""
    import ipywidgets as widgets

    keys = sorted(advs)
    if sorted(probs) != keys or 0.0 not in keys:
        raise ValueError("advs and probs must share their eps keys, including 0.0 (the clean scene)")
    slider = widgets.SelectionSlider(options=[(f"{k * 255:g}/255", k) for k in keys], value=keys[0], description="epsilon")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            k = slider.value
            attack_view(image, advs[k], label, probs[0.0], probs[k], title=f"epsilon = {k * 255:g}/255")
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, out])


# --- Chapters 5-7: calibration, MC dropout and ensembles, risk-coverage ----------------------------
