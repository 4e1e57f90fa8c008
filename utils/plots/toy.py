"""Figure of the 2-D toy of chapter 2: one ReLU MLP's max-softmax and an ensemble's mutual information on the plane."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..toy import PlaneMaps, RingProfile

#: Smallest font size (points) of the toy figure: at most 8.7 in wide at 100 dpi, shown on a 784 px page,
#: 9 pt text is at least 9 / 72 * 100 * 784 / 870 = 11.3 px high.
FONT_SIZE = 9.0


def show_toy_plane(
    points: torch.Tensor, labels: torch.Tensor, plane: PlaneMaps, ring: RingProfile, mark: float | None = None
) -> Figure:
    """Draw one MLP's max-softmax and the ensemble's mutual information over the plane, and both against distance.

    Left: max-softmax of the first model, with the training points. Middle: the ensemble's mutual
    information (nats) on the same grid. Right: their means on circles of growing radius around the
    data (log axis). ``mark`` draws one radius as a dashed circle on the maps and a line on the right.
    """
    if not isinstance(plane, PlaneMaps):
        raise TypeError(f"plane must be a PlaneMaps, got {type(plane).__name__}")
    if not isinstance(ring, RingProfile):
        raise TypeError(f"ring must be a RingProfile, got {type(ring).__name__}")
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be an (N, 2) tensor, got {getattr(points, 'shape', points)}")
    if not isinstance(labels, torch.Tensor) or labels.shape != points.shape[:1]:
        raise ValueError(f"labels must be a tensor of shape ({points.shape[0]},), got {getattr(labels, 'shape', labels)}")
    if mark is not None and (not math.isfinite(mark) or mark <= 0):
        raise ValueError(f"mark must be None or a positive radius, got {mark!r}")
    ticks = plane.ticks.numpy()
    extent = (ticks[0], ticks[-1], ticks[0], ticks[-1])
    pts, lab = points.detach().cpu().numpy(), labels.detach().cpu().numpy()
    classes = int(lab.max()) + 1 if len(lab) else 1
    with plt.rc_context({"font.size": FONT_SIZE + 1, "axes.titlesize": FONT_SIZE + 1, "axes.labelsize": FONT_SIZE + 1,
                         "xtick.labelsize": FONT_SIZE, "ytick.labelsize": FONT_SIZE, "legend.fontsize": FONT_SIZE}):
        fig, axes = plt.subplots(1, 3, figsize=(8.6, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.05]})
        maps = (
            (axes[0], plane.msp.numpy(), "max-softmax, one MLP", "viridis", (1 / classes, 1.0)),
            (axes[1], plane.mutual_information.numpy(), f"ensemble MI, S = {plane.members}", "magma",
             (0.0, math.log(classes))),
        )  # fmt: skip
        for ax, values, title, cmap, (lo, hi) in maps:
            im = ax.imshow(values, origin="lower", extent=extent, cmap=cmap, vmin=lo, vmax=hi)
            for k in range(classes):
                ax.scatter(*pts[lab == k].T, s=2, color=f"C{k}", edgecolors="none")
            if mark is not None and mark < ticks[-1]:
                ax.add_patch(plt.Circle((0, 0), mark, fill=False, ls="--", lw=1, color="w"))
            inner = float(np.floor(0.85 * ticks[-1]))  # ticks inside the corners, so that they never meet
            ax.set(title=title, xlabel="$x_1$", xticks=[-inner, 0, inner], yticks=[-inner, 0, inner])
            cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            cbar.ax.tick_params(labelsize=FONT_SIZE)
        axes[0].set_ylabel("$x_2$")
        axes[1].set_title(axes[1].get_title() + " (nats)")
        ax = axes[2]
        radii = ring.radii.numpy()
        ax.plot(radii, ring.msp.numpy(), "o-", ms=3, color="C0", label="max-softmax, one MLP")
        ax.plot(radii, ring.mutual_information.numpy(), "s-", ms=3, color="C3", label=f"MI, S = {plane.members} (nats)")
        ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
        if mark is not None:
            ax.axvline(mark, color="0.4", lw=1, ls="--")
        ax.set(xscale="log", xlabel="distance r from the data centre", ylabel="mean on the circle of radius r",
               title="away from the data", ylim=(0, 1.05))  # fmt: skip
        ax.legend(loc="center right", framealpha=1.0, edgecolor="none")
        fig.tight_layout(w_pad=0.8)
    return fig


def _smallest_text_px(fig: Figure, page_px: float = 784.0, dpi: float = 100.0) -> float:
    """Return the height in pixels of the figure's smallest visible text when shown at most ``page_px`` wide."""
    if page_px <= 0 or dpi <= 0:
        raise ValueError(f"page_px and dpi must be positive, got page_px={page_px!r}, dpi={dpi!r}")
    sizes = [t.get_fontsize() for t in fig.findobj(plt.Text) if t.get_visible() and t.get_text().strip()]
    if not sizes:
        raise ValueError("fig holds no visible text")
    width_px = fig.get_figwidth() * dpi
    return float(np.min(sizes)) / 72 * dpi * min(1.0, page_px / width_px)
