"""Figures of the conformal chapter: set-size maps beside max-softmax maps, realised-risk histograms."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from ._base import _LABEL_BOX, HEATMAP_CMAP, PAGE_WIDTH, SMALL, _no_ticks, _np, _show_gray

__all__: list[str] = ["show_set_sizes", "show_risk_histograms"]

#: Colours of set sizes 0 (empty), 1, 2 and 3 or more.
_SIZE_COLOURS = ("#2166ac", "#f7f7f7", "#f4a582", "#b2182b")


def show_set_sizes(
    images: torch.Tensor,
    max_softmax: torch.Tensor,
    sizes: dict[str, torch.Tensor],
    row_titles: Sequence[str] | None = None,
) -> Figure:
    """Draw one row per image: the image, its max-softmax map, and one map of prediction-set sizes per entry.

    ``images`` ``(R, 1, H, W)``; ``max_softmax`` ``(R, H, W)``; each ``sizes`` value ``(R, H, W)`` integer
    set sizes, drawn in four colours: empty, one class, two, three or more.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be (R, 1, H, W), got {getattr(images, 'shape', type(images))}")
    rows, hw = images.shape[0], tuple(images.shape[-2:])
    if not isinstance(max_softmax, torch.Tensor) or tuple(max_softmax.shape) != (rows, *hw):
        raise ValueError(f"max_softmax must be (R, H, W) = {(rows, *hw)}")
    for name, s in sizes.items():
        if not isinstance(s, torch.Tensor) or tuple(s.shape) != (rows, *hw) or s.is_floating_point():
            raise ValueError(f"sizes[{name!r}] must be an integer tensor (R, H, W) = {(rows, *hw)}")
    if row_titles is not None and len(row_titles) != rows:
        raise ValueError(f"row_titles must have {rows} entries, got {len(row_titles)}")
    cols = 2 + len(sizes)
    side = min(1.7, (PAGE_WIDTH - 0.4) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols + 0.4, side * rows + 1.1), squeeze=False, layout="constrained")
    cmap, norm = ListedColormap(_SIZE_COLOURS), BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 3.5], 4)
    for r in range(rows):
        _show_gray(axes[r, 0], images[r])
        im_soft = axes[r, 1].imshow(_np(max_softmax[r]), cmap=HEATMAP_CMAP, vmin=0, vmax=1)
        if row_titles:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=SMALL)
        for c, (name, s) in enumerate(sizes.items(), start=2):
            im_size = axes[r, c].imshow(np.minimum(_np(s[r]), 3), cmap=cmap, norm=norm, interpolation="nearest")
            if r == 0:
                axes[r, c].set_title(name, fontsize=SMALL)
    axes[0, 0].set_title("image", fontsize=SMALL)
    axes[0, 1].set_title("max-softmax", fontsize=SMALL)
    bar = fig.colorbar(im_soft, cax=axes[-1, 1].inset_axes((0.05, -0.14, 0.9, 0.07)), orientation="horizontal")
    bar.ax.tick_params(labelsize=SMALL)
    bar.set_ticks([0, 0.5, 1])
    if sizes:
        last = axes[-1, 2:]
        bar = fig.colorbar(im_size, ax=list(last), location="bottom", shrink=0.9, aspect=30, pad=0.02)
        bar.set_ticks([0, 1, 2, 3], labels=["empty", "1 class", "2", "3+"])
        bar.ax.tick_params(labelsize=SMALL)
    for ax in axes.flat:
        _no_ticks(ax)
    return fig


def show_risk_histograms(
    panels: dict[str, dict[str, torch.Tensor]],
    alpha: dict[str, float],
    xlabel: str = "realised loss",
    bins: int = 30,
) -> Figure:
    """Draw one histogram panel per entry of ``panels`` (each a dict of named 1-D samples, overlaid).

    A dashed line marks the guarantee ``alpha[panel]`` and a solid tick each sample's mean, so one sees
    whether the *mean* stays below alpha and how far single draws spread. NaNs are dropped.
    """
    if not panels:
        raise ValueError("panels must name at least one panel")
    if set(alpha) != set(panels):
        raise ValueError(f"alpha must give a level for each panel {sorted(panels)}, got {sorted(alpha)}")
    cols = len(panels)
    width = min(PAGE_WIDTH, 2.6 * cols + 0.4)
    fig, axes = plt.subplots(1, cols, figsize=(width, 2.6), squeeze=False, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, samples) in zip(axes[0], panels.items()):
        values = {k: _np(v.flatten()[~torch.isnan(v.flatten())]).astype(float) for k, v in samples.items()}
        lo = min([v.min() for v in values.values()] + [alpha[title]])
        hi = max([v.max() for v in values.values()] + [alpha[title]])
        edges = np.linspace(lo, hi + 1e-12, bins + 1)
        for i, (name, v) in enumerate(values.items()):
            ax.hist(v, bins=edges, color=colours[i % len(colours)], alpha=0.55, label=name, density=True)
            ax.axvline(v.mean(), color=colours[i % len(colours)], lw=2)
        ax.axvline(alpha[title], color="k", ls="--", lw=1.2)
        ax.text(alpha[title], 0.97, " α", transform=ax.get_xaxis_transform(), va="top", ha="left", fontsize=SMALL, bbox=_LABEL_BOX)
        ax.set_title(title, fontsize=SMALL)
        ax.set_xlabel(xlabel, fontsize=SMALL)
        ax.tick_params(labelsize=SMALL)
        ax.set_yticks([])
        ax.xaxis.set_major_locator(plt.MaxNLocator(3))
    axes[0, 0].set_ylabel("density", fontsize=SMALL)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if len(labels) > 1:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=SMALL, frameon=False)
    return fig
