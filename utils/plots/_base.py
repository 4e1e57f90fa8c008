"""Shared drawing helpers of the figures (private, except :func:`overlay`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import draw_segmentation_masks

from ..config import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from ..data import PALETTE

HEATMAP_CMAP = "inferno"

#: The book's content column is 784 px wide; the inline backend saves figures at 100 dpi, so a figure
#: up to this wide (in inches, after ``bbox_inches="tight"``) is shown unscaled, a wider one shrunk.
#: tests/test_figure_legibility.py checks every figure's smallest text at that width (>= 9 px).
PAGE_WIDTH = 7.8
#: Font size (points) of the smallest texts of the figures: dense tick labels, legends, panel titles.
SMALL = 9
#: Background of a label written over data (reference-line names, scores), so that a curve never crosses it unseen.
_LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0}


def _as_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise ValueError(f"image must be (H, W) or (1, H, W), got {tuple(image.shape)}")
    return image.detach().float().cpu()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _show_gray(ax: plt.Axes, image: torch.Tensor) -> None:
    ax.imshow(_np(_as_image(image)), cmap="gray", vmin=0, vmax=1)


def overlay(image: torch.Tensor, label: torch.Tensor, alpha: float = 0.55) -> np.ndarray:
    """Return an ``(H, W, 3)`` uint8 picture of ``image`` with the digit classes of ``label`` coloured in."""
    img = _as_image(image)
    if not isinstance(label, torch.Tensor) or label.shape != img.shape:
        raise ValueError(f"label must be a tensor of shape {tuple(img.shape)}, got {getattr(label, 'shape', label)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    rgb = (img.clamp(0, 1) * 255).to(torch.uint8).expand(3, *img.shape).clone()
    label = label.detach().cpu()
    present = [k for k in range(1, NUM_CLASSES) if (label == k).any()]
    if present:
        masks = torch.stack([label == k for k in present])
        rgb = draw_segmentation_masks(rgb, masks, alpha=alpha, colors=[PALETTE[k] for k in present])
    if (label == IGNORE_INDEX).any():
        rgb = draw_segmentation_masks(rgb, (label == IGNORE_INDEX)[None], alpha=alpha, colors=[(128, 128, 128)])
    return rgb.permute(1, 2, 0).numpy()


def _legend(fig: Figure, classes: Sequence[int] = range(1, NUM_CLASSES)) -> None:
    """Add the digit-class colour legend below the panels (in space the constrained layout reserves)."""
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.array(PALETTE[k]) / 255) for k in classes]
    fig.legend(handles, [CLASS_NAMES[k] for k in classes], loc="outside lower center", ncol=len(handles), frameon=False,
               title="digit class", fontsize=SMALL, title_fontsize=SMALL, handlelength=1.4, columnspacing=1.2)  # fmt: skip


def _no_ticks(ax: plt.Axes) -> None:
    """Hide an image panel's ticks (keeping its frame and its axis labels)."""
    ax.set_xticks([])
    ax.set_yticks([])
