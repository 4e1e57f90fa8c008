"""Figures of metrics over training: one panel per metric, one curve per run, each with its own x values."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["show_series"]


def show_series(
    panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
    xlabel: str,
    logy: Sequence[str] = (),
    marks: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]] | None = None,
) -> Figure:
    """Plot one panel per metric: ``panels`` maps a title to {curve name: (x values, y values)}.

    Curves of one name share a colour across panels and one legend below them; ``marks`` adds
    points (same structure, e.g. values recomputed at saved snapshots) drawn as circles on the curve
    of the same name; panels named in ``logy`` get a log y-axis.
    """
    if not isinstance(panels, dict) or not panels:
        raise ValueError("panels must be a non-empty dict of {title: {curve: (x, y)}}")
    names: list[str] = []
    for title, curves in panels.items():
        if not isinstance(curves, dict) or not curves:
            raise ValueError(f"panel {title!r} must hold at least one curve")
        for name, xy in curves.items():
            if len(xy) != 2 or len(xy[0]) != len(xy[1]) or len(xy[0]) == 0:
                raise ValueError(f"curve {name!r} of panel {title!r} must be (x, y) of one non-zero length")
            if name not in names:
                names.append(name)
    for title in (marks or {}):
        if title not in panels:
            raise ValueError(f"marks names panel {title!r}, which is not in panels")
    colour = {name: f"C{i}" for i, name in enumerate(names)}
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(min(7.8, 2.6 * n + 0.2), 3.0), squeeze=False, layout="constrained")
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, (x, y) in curves.items():
            ax.plot(np.asarray(x, float), np.asarray(y, float), "-", lw=1.5, color=colour[name], label=name)
        for name, (x, y) in (marks or {}).get(title, {}).items():
            ax.plot(np.asarray(x, float), np.asarray(y, float), "o", ms=5, mfc="none", color=colour.get(name, "0.2"))
        if title in logy:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=10)
        ax.tick_params(labelsize=9)
    handles = [plt.Line2D([], [], color=colour[name], lw=2) for name in names]
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 3), frameon=False, fontsize=9)
    return fig
