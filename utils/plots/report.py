"""Figures of the diagnosis of your own model (:mod:`utils.report`): heat maps for any model and data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..config import IGNORE_INDEX
from ._base import HEATMAP_CMAP, PAGE_WIDTH, SMALL, _no_ticks

__all__ = ["show_report_heatmaps"]


def _picture(image: torch.Tensor) -> tuple[np.ndarray, str | None]:
    """An image ``(C, H, W)`` as something imshow draws: gray for one channel, RGB for three, else the first channel."""
    x = image.detach().float().cpu()
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:  # normalised inputs: stretch to [0, 1] for display only
        x = (x - lo) / max(hi - lo, 1e-12)
    if x.shape[0] == 3:
        return x.permute(1, 2, 0).numpy(), None
    return x[0].numpy(), "gray"


def show_report_heatmaps(
    images: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor | None = None, titles: list[str] | None = None
) -> Figure:
    """For each input: the image, the predicted class, the max-softmax heat map and, with ``labels``, the wrong pixels.

    Works for any channel count (1: gray, 3: RGB, else the first channel) and any number of classes K
    (the heat map spans [1/K, 1]).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    if not isinstance(probs, torch.Tensor) or probs.ndim != 4 or probs.shape[0] != images.shape[0] or probs.shape[2:] != images.shape[2:]:
        raise ValueError(f"probs must be a tensor (N, K, H, W) matching images {tuple(images.shape)}, got "
                         f"{getattr(probs, 'shape', type(probs).__name__)}")  # fmt: skip
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != probs.shape[:1] + probs.shape[2:]):
        raise ValueError(f"labels must be a tensor (N, H, W) matching probs, got {getattr(labels, 'shape', labels)}")
    n, k = images.shape[0], probs.shape[1]
    if n == 0:
        raise ValueError("images holds no image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must hold one title per image ({n}), got {len(titles)}")
    cols = 4 if labels is not None else 3
    fig, axes = plt.subplots(n, cols, figsize=(min(PAGE_WIDTH, 1.9 * cols + 0.9), 1.85 * n + 0.5), squeeze=False,
                             layout="constrained")  # fmt: skip
    heads = ["input", "prediction", "max-softmax", "wrong pixels (red)"]
    cmap = plt.get_cmap("tab20", max(k, 2))
    for r in range(n):
        pic, gray = _picture(images[r])
        axes[r, 0].imshow(pic, cmap=gray, vmin=0, vmax=1)
        pred = probs[r].argmax(0).cpu().numpy()
        axes[r, 1].imshow(pred, cmap=cmap, vmin=-0.5, vmax=max(k, 2) - 0.5, interpolation="nearest")
        conf = probs[r].amax(0).detach().float().cpu().numpy()
        hm = axes[r, 2].imshow(conf, cmap=HEATMAP_CMAP, vmin=1 / k, vmax=1)
        if labels is not None:
            y = labels[r].cpu()
            wrong = ((probs[r].argmax(0).cpu() != y) & (y != IGNORE_INDEX)).numpy()
            err = np.zeros((*wrong.shape, 4))
            err[wrong] = (1, 0, 0, 1)
            axes[r, 3].imshow(conf, cmap="gray", vmin=0, vmax=1)
            axes[r, 3].imshow(err)
        axes[r, 0].set_ylabel(titles[r] if titles else f"input {r}", fontsize=SMALL)
        for c in range(cols):
            _no_ticks(axes[r, c])
            if r == 0:
                axes[r, c].set_title(heads[c], fontsize=10)
    fig.colorbar(hm, ax=axes[:, -1], shrink=0.8, label="max-softmax")  # at the right edge, clear of the panels
    return fig
