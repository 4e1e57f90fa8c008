"""Figures of the segments chapter: segment confidence against IoU, and scenes coloured per segment."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ._base import PAGE_WIDTH, SMALL, _no_ticks, _show_gray, overlay

__all__: list[str] = ["show_segment_maps", "show_segment_scatter", "show_triage"]


def _flat(values, name: str) -> np.ndarray:
    a = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one value per segment (1-D), got shape {a.shape}")
    return a.astype(float)


def show_segment_scatter(
    groups: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str = "segment's mean max-softmax",
    ylabel: str = "segment's IoU (adjusted)",
) -> Figure:
    """Scatter one point per segment: ``groups`` maps a legend name to ``(x, y)`` arrays (e.g. mean max-softmax, IoU)."""
    if not groups:
        raise ValueError("groups must name at least one (x, y) pair")
    fig, ax = plt.subplots(figsize=(6.2, 3.8), layout="constrained")
    markers = ["o", "x", "s", "^", "D"]
    for j, (name, (x, y)) in enumerate(groups.items()):
        x, y = _flat(x, f"{name} x"), _flat(y, f"{name} y")
        if x.shape != y.shape:
            raise ValueError(f"{name}: x and y must have the same length, got {x.size} and {y.size}")
        ax.scatter(x, y, s=12, alpha=0.6, marker=markers[j % len(markers)], label=f"{name} (n = {x.size:,})",
                   linewidths=1 if markers[j % len(markers)] == "x" else 0)  # fmt: skip
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1.02), ylim=(-0.03, 1.03))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=SMALL, frameon=False)
    return fig


def show_segment_maps(
    image: torch.Tensor,
    label: torch.Tensor,
    prediction: torch.Tensor,
    ids: np.ndarray | torch.Tensor,
    values: dict[str, Sequence[float]],
) -> Figure:
    """Show a scene, its ground truth and prediction, then one panel per entry of ``values`` (one value per segment id 1..n)."""
    ids = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"ids must be a (H, W) segment map, got shape {ids.shape}")
    n = int(ids.max())
    panels = 3 + len(values)
    fig, axes = plt.subplots(1, panels, figsize=(min(PAGE_WIDTH, 1.95 * panels), 2.6), layout="constrained")
    _show_gray(axes[0], image)
    axes[0].set_title("image", fontsize=SMALL)
    axes[1].imshow(overlay(image, label))
    axes[1].set_title("ground truth", fontsize=SMALL)
    axes[2].imshow(overlay(image, prediction))
    axes[2].set_title("prediction", fontsize=SMALL)
    for ax, (name, v) in zip(axes[3:], values.items()):
        v = _flat(v, name)
        if v.size != n:
            raise ValueError(f"values[{name!r}] must hold one value per segment ({n}), got {v.size}")
        shown = np.where(ids > 0, np.concatenate([[np.nan], v])[ids], np.nan)
        ax.imshow(np.zeros(ids.shape), cmap="gray", vmin=0, vmax=1)
        im = ax.imshow(shown, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(name, fontsize=SMALL)
        cb = fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.06, pad=0.03, ticks=[0, 0.5, 1])
        cb.ax.tick_params(labelsize=SMALL)
    for ax in axes:
        _no_ticks(ax)
    return fig


def show_triage(images: torch.Tensor, predictions: torch.Tensor, titles: Sequence[str]) -> Figure:
    """Draw images to check (top row) above the model's prediction overlaid in colour (bottom row), one title per image."""
    n = len(titles)
    if not 1 <= n <= len(images) or len(predictions) < n:
        raise ValueError(f"need images and predictions for each of the {n} titles, got {len(images)} and {len(predictions)}")
    fig, axes = plt.subplots(2, n, figsize=(min(PAGE_WIDTH, 1.2 * n + 0.4), 2.45), squeeze=False, layout="constrained")
    for i in range(n):
        _show_gray(axes[0, i], images[i])
        axes[1, i].imshow(overlay(images[i], predictions[i]))
        axes[0, i].set_title(titles[i], fontsize=SMALL)
    for ax in axes.flat:
        _no_ticks(ax)
    axes[0, 0].set_ylabel("image", fontsize=SMALL)
    axes[1, 0].set_ylabel("prediction", fontsize=SMALL)
    return fig
