"""Legibility cases of the conformal chapter's figures (utils/plots/conformal.py), in the chapter's shape."""

from __future__ import annotations

from collections.abc import Callable

import torch
from matplotlib.figure import Figure

from utils import plots


def _show_set_sizes() -> Figure:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 64, 64, generator=g)
    soft = torch.rand(3, 64, 64, generator=g)
    sizes = {f"sets, α = {a}": torch.randint(0, 4, (3, 64, 64), generator=g) for a in (0.1, 0.05, 0.01)}
    return plots.show_set_sizes(images, soft, sizes, row_titles=["clean", "severity 5", "letters"])


def _show_risk_histograms() -> Figure:
    g = torch.Generator().manual_seed(0)
    panels = {
        f"miscoverage, α = {a}": {
            "scenes as units": a * (0.97 + 0.03 * torch.randn(200, generator=g)),
            "pixels pooled": a * (1 + 0.03 * torch.randn(200, generator=g)),
        }
        for a in (0.1, 0.05, 0.01)
    }
    return plots.show_risk_histograms(panels, {k: float(k.split("= ")[1]) for k in panels}, "mean test-scene loss")


CASES: dict[str, dict[str, Callable[[], Figure]]] = {
    "show_set_sizes": {"ch8 three rows, three levels": _show_set_sizes},
    "show_risk_histograms": {"ch8 three levels, two methods": _show_risk_histograms},
}
