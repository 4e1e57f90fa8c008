"""Figures of MC dropout and ensembles: uncertainty maps and the samples/members explorer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._base import HEATMAP_CMAP, PAGE_WIDTH, SMALL, _no_ticks, _np, _show_gray, overlay

def _map_colorbar(fig: Figure, im, ax: plt.Axes) -> None:
    """A horizontal colour bar just under ``ax``, as an inset, so that every panel of the row keeps its size."""
    cbar = fig.colorbar(im, cax=ax.inset_axes((0.05, -0.13, 0.9, 0.07)), orientation="horizontal")
    cbar.ax.tick_params(labelsize=SMALL)
    cbar.ax.xaxis.set_major_locator(MaxNLocator(3))


def _wrap(title: str, longest: int = 13) -> str:
    """Break a title longer than ``longest`` characters at its middle-most space (parts of 4 characters or more)."""
    spaces = [i for i, ch in enumerate(title) if ch == " " and 4 <= i <= len(title) - 5]
    if len(title) <= longest or not spaces:
        return title
    i = min(spaces, key=lambda i: abs(2 * i - len(title)))
    return title[:i] + "\n" + title[i + 1 :]


def _map_panel(ax: plt.Axes, values: torch.Tensor, vmax: float, title: str | None):
    im = ax.imshow(_np(values), cmap=HEATMAP_CMAP, vmin=0, vmax=vmax)
    if title is not None:
        ax.set_title(_wrap(title), fontsize=SMALL)
    return im


def show_uncertainty_maps(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    row_titles: Sequence[str] | None = None,
    labels: torch.Tensor | None = None,
    predictions: torch.Tensor | None = None,
) -> Figure:
    """Draw one row per image: the image (with the prediction overlaid if given) and each named map.

    ``images`` is ``(R, 1, H, W)``, each map ``(R, H, W)``; every map column shares one colour scale
    (from 0 to the column's largest value, one colour bar under the column), so rows can be compared.
    ``labels`` adds a truth column; ``row_titles`` name the rows (left of each row).
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
    side = min(1.6, (PAGE_WIDTH - 0.3) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols + 0.3, side * rows + 1.0), squeeze=False, layout="constrained")
    vmax = {name: max(float(m.max()), 1e-6) for name, m in maps.items()}
    for r in range(rows):
        top = r == 0
        c = 0
        _show_gray(axes[r, c], images[r])
        if top:
            axes[r, c].set_title("image", fontsize=SMALL)
        if row_titles:
            axes[r, c].set_ylabel(row_titles[r], fontsize=SMALL)
        if labels is not None:
            c += 1
            axes[r, c].imshow(overlay(images[r], labels[r]))
            axes[r, c].set_title("truth" if top else "", fontsize=SMALL)
        if predictions is not None:
            c += 1
            axes[r, c].imshow(overlay(images[r], predictions[r]))
            axes[r, c].set_title("prediction" if top else "", fontsize=SMALL)
        for name, m in maps.items():
            c += 1
            im = _map_panel(axes[r, c], m[r], vmax[name], name if top else None)
            if r == rows - 1:  # the column's one colour bar, under its last panel
                _map_colorbar(fig, im, axes[r, c])
    for ax in axes.flat:
        _no_ticks(ax)
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
    fig, axes = plt.subplots(1, 5, figsize=(PAGE_WIDTH, 2.5), layout="constrained")
    axes[0].imshow(overlay(image, mean.argmax(0)))
    axes[0].set_title("prediction", fontsize=SMALL)
    panels = [(1 - mean.amax(0), 1 - 1 / members.shape[1], "1 - max-softmax"), (total, log_k, "total entropy"),
              (aleatoric, log_k, "expected entropy"), (epistemic, 0.5 * log_k, "mutual information")]  # fmt: skip
    for ax, (values, vmax, name) in zip(axes[1:], panels):
        _map_colorbar(fig, _map_panel(ax, values, vmax, name), ax)
    for ax in axes:
        _no_ticks(ax)
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
