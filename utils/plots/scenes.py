"""Figures of scenes and predictions: scene grids, training curves, confusion matrices, heat maps, the heat-map explorer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..config import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from ._base import HEATMAP_CMAP, PAGE_WIDTH, SMALL, _legend, _no_ticks, _np, _show_gray, overlay

def show_scenes(images: torch.Tensor, labels: torch.Tensor, n: int = 8, title: str | None = None) -> Figure:
    """Draw the first ``n`` scenes (top row) above their label maps overlaid in colour (bottom row)."""
    n = min(n, len(images))
    fig, axes = plt.subplots(2, n, figsize=(0.9 * n + 0.5, 2.9), squeeze=False, layout="constrained")
    for i in range(n):
        _show_gray(axes[0, i], images[i])
        axes[1, i].imshow(overlay(images[i], labels[i]))
        axes[0, i].set_title(f"scene {i}", fontsize=SMALL)
    for ax in axes.flat:
        _no_ticks(ax)
        ax.spines[:].set_visible(False)
    axes[0, 0].set_ylabel("image", fontsize=SMALL)
    axes[1, 0].set_ylabel("label", fontsize=SMALL)
    _legend(fig)
    if title:
        fig.suptitle(title)
    return fig


def show_training(losses: Sequence[float], history: Sequence[dict], smooth: int = 20) -> Figure:
    """Plot the per-step training loss (raw and smoothed) and, if present, validation mIoU per epoch."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
    steps = np.arange(1, len(losses) + 1)
    ax1.plot(steps, losses, color="0.75", lw=0.8, label="per step")
    if len(losses) >= smooth:
        kernel = np.ones(smooth) / smooth
        ax1.plot(steps[smooth - 1 :], np.convolve(losses, kernel, mode="valid"), color="C0", label=f"mean of {smooth}")
    ax1.set(xlabel="optimiser step", ylabel="cross-entropy (nats)", yscale="log", title="training loss")
    ax1.legend()
    if history and "val_miou" in history[0]:
        x = [h["step"] for h in history]
        ax2.plot(x, [h["val_miou"] for h in history], "o-", label="mIoU")
        ax2.plot(x, [h["val_pixel_accuracy"] for h in history], "s-", label="pixel accuracy")
        ax2.set(xlabel="optimiser step", ylim=(0, 1.02), title="validation")
        ax2.legend()
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    return fig


def show_confusion(conf: torch.Tensor, digits_only: bool = True) -> Figure:
    """Draw the row-normalised confusion matrix (log colour scale), by default between digit classes only."""
    if not isinstance(conf, torch.Tensor) or conf.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"conf must be a ({NUM_CLASSES}, {NUM_CLASSES}) tensor, got {getattr(conf, 'shape', conf)}")
    c = conf.double()
    keep = slice(1, None) if digits_only else slice(None)
    c = c[keep, keep]
    rates = (c / c.sum(1, keepdim=True).clamp(min=1)).numpy()
    names = CLASS_NAMES[keep]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    shown = np.where(rates > 0, rates, np.nan)
    im = ax.imshow(shown, cmap="Blues", norm=plt.matplotlib.colors.LogNorm(vmin=1e-4, vmax=1))
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted class", ylabel="true class")
    fig.colorbar(im, ax=ax, label="fraction of the true class's pixels")
    fig.tight_layout()
    return fig


def show_heatmaps(
    images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, indices: Sequence[int] = (0, 1, 2, 3)
) -> Figure:
    """For each scene: image, truth, prediction, max-softmax heat map and the misclassified pixels."""
    indices = list(indices)
    fig, axes = plt.subplots(len(indices), 5, figsize=(8.4, 1.65 * len(indices) + 0.3), squeeze=False, layout="constrained")
    titles = ["image", "ground truth", "prediction", "max-softmax", "errors (red)"]
    for row, i in enumerate(indices):
        p = probs[i]
        pred = p.argmax(0)
        conf = _np(p.amax(0))
        _show_gray(axes[row, 0], images[i])
        axes[row, 1].imshow(overlay(images[i], labels[i]))
        axes[row, 2].imshow(overlay(images[i], pred))
        hm = axes[row, 3].imshow(conf, cmap=HEATMAP_CMAP, vmin=1 / NUM_CLASSES, vmax=1)
        wrong = ((pred != labels[i]) & (labels[i] != IGNORE_INDEX)).cpu()
        err = np.zeros((*wrong.shape, 4))
        err[wrong.numpy()] = (1, 0, 0, 1)
        axes[row, 4].imshow(conf, cmap="gray", vmin=0, vmax=1)
        axes[row, 4].imshow(err)
        axes[row, 0].set_ylabel(f"scene {i}")
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=10)
    fig.colorbar(hm, ax=axes[:, -1], shrink=0.8, label="max-softmax")
    return fig


def show_class_probabilities(image: torch.Tensor, probs: torch.Tensor) -> Figure:
    """Draw the image and the softmax probability map of each of the 11 classes for one scene (3 rows of 4)."""
    if not isinstance(probs, torch.Tensor) or probs.ndim != 3 or probs.shape[0] != NUM_CLASSES:
        raise ValueError(f"probs must be ({NUM_CLASSES}, H, W), got {getattr(probs, 'shape', probs)}")
    cols = 4
    rows = -(-(NUM_CLASSES + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE_WIDTH, 2.0 * rows), layout="constrained")
    _show_gray(axes[0, 0], image)
    axes[0, 0].set_title("image", fontsize=10)
    for k in range(NUM_CLASSES):
        ax = axes.flat[k + 1]
        im = ax.imshow(_np(probs[k]), cmap=HEATMAP_CMAP, vmin=0, vmax=1)
        ax.set_title(f"p(class = {CLASS_NAMES[k]})", fontsize=10)
    for ax in axes.flat[NUM_CLASSES + 1 :]:
        ax.set_axis_off()
    for ax in axes.flat:
        _no_ticks(ax)
    fig.colorbar(im, ax=axes, shrink=0.6, label="softmax probability")
    return fig


def explorer_view(image: torch.Tensor, label: torch.Tensor, probs: torch.Tensor, which: str = "max-softmax") -> Figure:
    """Draw one view of the heat-map explorer: truth, prediction, and ``which`` map (max-softmax or a class)."""
    choices = explorer_choices()
    if which not in choices:
        raise ValueError(f"which must be one of {choices}, got {which!r}")
    if not isinstance(probs, torch.Tensor) or probs.ndim != 3 or probs.shape[0] != NUM_CLASSES:
        raise ValueError(f"probs must be ({NUM_CLASSES}, H, W), got {getattr(probs, 'shape', probs)}")
    heat = probs.amax(0) if which == "max-softmax" else probs[choices.index(which) - 1]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    axes[0].imshow(overlay(image, label))
    axes[0].set_title("ground truth")
    axes[1].imshow(overlay(image, probs.argmax(0)))
    axes[1].set_title("prediction")
    im = axes[2].imshow(_np(heat), cmap=HEATMAP_CMAP, vmin=0, vmax=1)
    axes[2].set_title(which)
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    return fig


def explorer_choices() -> list[str]:
    """Return the maps the explorer offers: max-softmax, then each class's probability."""
    return ["max-softmax"] + [f"p(class = {name})" for name in CLASS_NAMES]


def heatmap_explorer(images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor):
    """Return an ipywidgets explorer: pick a scene and a map (max-softmax or one class's probability)."""
    import ipywidgets as widgets

    scene = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="scene")
    which = widgets.Dropdown(options=explorer_choices(), value="max-softmax", description="map")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            explorer_view(images[scene.value], labels[scene.value], probs[scene.value], which.value)
            plt.show()

    scene.observe(draw, names="value")
    which.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([scene, which]), out])


# --- Chapter 2: softmax, temperature, scaling, ROC -------------------------------------------------

def show_image_grid(grid: torch.Tensor, row_titles: Sequence[str], col_titles: Sequence[str]) -> Figure:
    """Draw a grid of grey images ``(R, C, 1, H, W)`` (e.g. corruption kinds by severity) with row and column titles."""
    if not isinstance(grid, torch.Tensor) or grid.ndim != 5:
        raise ValueError(f"grid must be (R, C, 1, H, W), got {getattr(grid, 'shape', type(grid))}")
    rows, cols = grid.shape[:2]
    if len(row_titles) != rows or len(col_titles) != cols:
        raise ValueError(f"need {rows} row titles and {cols} column titles, got {len(row_titles)} and {len(col_titles)}")
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.75 * rows), squeeze=False, layout="constrained")
    for r in range(rows):
        for c in range(cols):
            _show_gray(axes[r, c], grid[r, c])
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(col_titles[c], fontsize=9)
        axes[r, 0].set_ylabel(row_titles[r], fontsize=9)
    return fig
