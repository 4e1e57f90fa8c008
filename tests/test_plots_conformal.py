"""Argument checks and shapes of the conformal chapter's figures (utils/plots/conformal.py)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from utils import plots


def test_set_sizes_draws_one_row_per_image_and_checks_shapes():
    images, soft = torch.rand(2, 1, 8, 8), torch.rand(2, 8, 8)
    sizes = {"a": torch.randint(0, 5, (2, 8, 8)), "b": torch.zeros(2, 8, 8, dtype=torch.long)}
    fig = plots.show_set_sizes(images, soft, sizes, row_titles=["x", "y"])
    assert len([ax for ax in fig.axes if ax.images]) >= 2 * 4
    plt.close(fig)
    with pytest.raises(ValueError, match="images"):
        plots.show_set_sizes(images[0], soft, sizes)
    with pytest.raises(ValueError, match="max_softmax"):
        plots.show_set_sizes(images, soft[:1], sizes)
    with pytest.raises(ValueError, match="sizes"):
        plots.show_set_sizes(images, soft, {"a": torch.rand(2, 8, 8)})
    with pytest.raises(ValueError, match="row_titles"):
        plots.show_set_sizes(images, soft, sizes, row_titles=["x"])


def test_risk_histograms_mark_alpha_and_check_arguments():
    panels = {"p": {"a": torch.rand(50), "b": torch.tensor([0.1, float("nan"), 0.2])}}
    fig = plots.show_risk_histograms(panels, {"p": 0.1})
    ax = fig.axes[0]
    assert any(abs(line.get_xdata()[0] - 0.1) < 1e-12 and line.get_linestyle() == "--" for line in ax.lines)
    plt.close(fig)
    with pytest.raises(ValueError, match="panels"):
        plots.show_risk_histograms({}, {})
    with pytest.raises(ValueError, match="alpha"):
        plots.show_risk_histograms(panels, {"q": 0.1})
