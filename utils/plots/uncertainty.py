"""Figures of MC dropout and ensembles: uncertainty maps and the samples/members explorer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ._base import HEATMAP_CMAP, _np, _show_gray, overlay

def _map_panel(fig: Figure, ax: plt.Axes, values: torch.Tensor, vmax: float, title: str) -> None:
    im = ax.imshow(_np(values), cmap=HEATMAP_CMAP, vmin=0, vmax=vmax)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)


def show_uncertainty_maps(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    row_titles: Sequence[str] | None = None,
    labels: torch.Tensor | None = None,
    predictions: torch.Tensor | None = None,
) -> Figure:
    """Draw one row per image: the image (with the prediction overlaid if given) and each named map.

    ``images`` is ``(R, 1, H, W)``, each map ``(R, H, W)``; every map column shares one colour scale
    (from 0 to the column's largest value), so rows can be compared. ``labels`` adds a truth column.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be (R, 1, H, W), got {getattr(images, 'shape', type(images))}")
    rows = images.shape[0]
    for name, m in maps.items():
        if not isinstance(m, torch.Tensor) or m.shape != (rows,) + images.shape[-2:]:
            raise ValueError(f"map {name!r} must be (R, H, W) = {(rows,) + tuple(images.shape[-2:])}")
    if row_titles is not None and len(row_titles) != rows:
        raise ValueError(f"row_titles must have {rows} entries, got {len(row_titles)}")
    extra = (labels is not None) + (predictions is not None)
    cols = 1 + extra + len(maps)
    fig, axes = plt.subplots(rows, cols, figsize=(2.35 * cols, 2.2 * rows), squeeze=False, layout="constrained")
    vmax = {name: max(float(m.max()), 1e-6) for name, m in maps.items()}
    for r in range(rows):
        c = 0
        _show_gray(axes[r, c], images[r])
        axes[r, c].set_title(row_titles[r] if row_titles else "image", fontsize=9)
        if labels is not None:
            c += 1
            axes[r, c].imshow(overlay(images[r], labels[r]))
            axes[r, c].set_title("truth", fontsize=9)
        if predictions is not None:
            c += 1
            axes[r, c].imshow(overlay(images[r], predictions[r]))
            axes[r, c].set_title("prediction", fontsize=9)
        for name, m in maps.items():
            c += 1
            _map_panel(fig, axes[r, c], m[r], vmax[name], name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def members_view(image: torch.Tensor, members: torch.Tensor, count: int, title: str = "") -> Figure:
    """Draw the predictive maps from the first ``count`` of ``members`` ``(T, K, H, W)`` probabilities of one scene."""
    from ..uncertainty import decompose

    if not isinstance(members, torch.Tensor) or members.ndim != 4:
        raise ValueError(f"members must be (T, K, H, W) probabilities, got {getattr(members, 'shape', type(members))}")
    if not isinstance(count, int) or not 1 <= count <= members.shape[0]:
        raise ValueError(f"count must be an int in [1, {members.shape[0]}], got {count!r}")
    p = members[:count, None]
    total, aleatoric, epistemic = (v[0] for v in decompose(p))
    mean = p.mean(0)[0]
    log_k = float(np.log(members.shape[1]))
    fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.6), layout="constrained")
    axes[0].imshow(overlay(image, mean.argmax(0)))
    axes[0].set_title("prediction", fontsize=9)
    _map_panel(fig, axes[1], 1 - mean.amax(0), 1 - 1 / members.shape[1], "1 - max-softmax")
    _map_panel(fig, axes[2], total, log_k, "total entropy")
    _map_panel(fig, axes[3], aleatoric, log_k, "expected entropy")
    _map_panel(fig, axes[4], epistemic, 0.5 * log_k, "mutual information")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def members_explorer(image: torch.Tensor, members: dict[str, torch.Tensor]):
    """Return an ipywidgets demo: pick a method (e.g. MC dropout, ensemble) and how many of its samples to average."""
    import ipywidgets as widgets

    if not members:
        raise ValueError("members must map a method name to its (T, K, H, W) probabilities")
    method = widgets.Dropdown(options=list(members), description="method")
    count = widgets.IntSlider(value=1, min=1, max=members[method.value].shape[0], description="samples")
    out = widgets.Output()

    def draw(*_):
        count.max = members[method.value].shape[0]
        with out:
            out.clear_output(wait=True)
            members_view(image, members[method.value], count.value, f"{method.value}, {count.value} sample(s)")
            plt.show()

    method.observe(draw, names="value")
    count.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([method, count]), out])
