"""Figures of fooling images and of predictions on out-of-distribution inputs."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..config import CLASS_NAMES, NUM_CLASSES
from ._base import HEATMAP_CMAP, PAGE_WIDTH, SMALL, _legend, _no_ticks, _np, _show_gray, overlay

def _prediction_grid(
    images: torch.Tensor, probs: torch.Tensor, titles: Sequence[Sequence[str]] | None, width: float
) -> tuple[Figure, np.ndarray]:
    """Draw image / predicted label map / max-softmax rows, one column per image (``titles``: per row)."""
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(width * n + 0.9, 3 * width + 1.2), squeeze=False, layout="constrained")
    for i in range(n):
        _show_gray(axes[0, i], images[i])
        axes[1, i].imshow(overlay(images[i], probs[i].argmax(0), alpha=0.8))
        hm = axes[2, i].imshow(_np(probs[i].amax(0)), cmap=HEATMAP_CMAP, vmin=1 / NUM_CLASSES, vmax=1)
        for row, row_titles in enumerate(titles or []):
            if row_titles:
                axes[row, i].set_title(row_titles[i], fontsize=SMALL)
    for ax in axes.flat:
        _no_ticks(ax)
    for row, name in enumerate(["image", "prediction", "max-softmax"]):
        axes[row, 0].set_ylabel(name, fontsize=SMALL)
    fig.colorbar(hm, ax=axes[2, :], shrink=0.9, label="max-softmax")
    return fig, axes


def show_fooling(images: torch.Tensor, probs: torch.Tensor, targets: Sequence[int]) -> Figure:
    """For each fooling image: the image (top), its predicted label map (middle) and max-softmax (bottom)."""
    n = len(images)
    if not (len(probs) == len(targets) == n) or n == 0:
        raise ValueError("images, probs and targets must have the same, non-zero length")
    shares = [(probs[i].argmax(0) == targets[i]).float().mean().item() for i in range(n)]
    titles = [
        [f"target {CLASS_NAMES[t]}" for t in targets],
        [f"{share:.0%} target" for share in shares],
        [f"MSP {probs[i].amax(0).mean().item():.3f}" for i in range(n)],
    ]
    fig, _ = _prediction_grid(images, probs, titles, width=min(1.35, (PAGE_WIDTH - 0.9) / n))
    return fig


def show_predictions(images: torch.Tensor, probs: torch.Tensor, titles: Sequence[str] | None = None) -> Figure:
    """For each image: the image (top), its predicted label map (middle) and max-softmax heat map (bottom)."""
    n = len(images)
    if len(probs) != n or n == 0:
        raise ValueError("images and probs must have the same, non-zero length")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per image ({n}), got {len(titles)}")
    fig, _ = _prediction_grid(images, probs, [titles] if titles is not None else None, width=min(1.5, (PAGE_WIDTH - 0.9) / n))
    _legend(fig)
    return fig


# --- Chapter 4: adversarial perturbations ----------------------------------------------------------
