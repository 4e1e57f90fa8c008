"""Tests of the chapter 5-7 figures of utils.plots: reliability diagrams, curves, uncertainty maps, widgets.

Each figure is drawn from small hand-built inputs and its content (bar heights, line data, titles,
colour limits) is checked against values computed here; widgets are checked by moving their controls.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from utils import metrics, plots, uncertainty  # noqa: E402
from utils.config import NUM_CLASSES  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _title(ax) -> str:
    """An axes' title with line breaks (long titles are wrapped) read as spaces."""
    return ax.get_title().replace("\n", " ")


def _scene(n: int = 2, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, NUM_CLASSES, size, size, generator=g)
    target = torch.randint(0, NUM_CLASSES, (n, size, size), generator=g)
    images = torch.rand(n, 1, size, size, generator=g)
    return images, logits, target


def test_reliability_bars_are_the_bin_accuracies():
    _, logits, target = _scene(4, 16)
    meter = metrics.CalibrationMeter().update(logits.softmax(1), target)
    bins = meter.reliability()
    fig = plots.show_reliability({"all": bins}, {"all": meter.ece()})
    ax = fig.axes[0]
    filled = np.asarray(bins.count) > 0
    heights = np.array([p.get_height() for p in ax.containers[0]])
    assert len(heights) == int(filled.sum()) > 0
    np.testing.assert_allclose(heights, np.asarray(bins.accuracy)[filled])
    assert any(f"ECE {meter.ece():.4f}" in t.get_text() for t in ax.texts)
    assert ax.get_title() == "all"


def test_reliability_panels_and_errors():
    _, logits, target = _scene()
    bins = metrics.CalibrationMeter().update(logits.softmax(1), target).reliability()
    fig = plots.show_reliability({"a": bins, "b": bins, "c": bins})
    titles = [ax.get_title() for ax in fig.axes if ax.get_title() in {"a", "b", "c"}]
    assert titles == ["a", "b", "c"]
    with pytest.raises(ValueError, match="diagrams"):
        plots.show_reliability({})


def _hand_bins() -> metrics.ReliabilityBins:
    """Four bins: empty, over-confident (0.35 < 0.45), under-confident (0.8 > 0.65), over-confident (0.9 < 0.95)."""
    return metrics.ReliabilityBins(
        edges=np.linspace(0, 1, 5),
        confidence=np.array([np.nan, 0.45, 0.65, 0.95]),
        accuracy=np.array([np.nan, 0.35, 0.8, 0.9]),
        count=np.array([0, 10, 100, 1000]),
    )


def test_reliability_gaps_are_drawn_apart_from_the_accuracy_bars_and_named_in_the_legend():
    fig = plots.show_reliability({"hand": _hand_bins()})
    ax = fig.axes[0]
    accuracy, over, under = ax.containers[:3]
    np.testing.assert_allclose([p.get_height() for p in accuracy], [0.35, 0.8, 0.9])
    # over-confidence: from the accuracy up to the confidence, above the blue bar
    np.testing.assert_allclose([p.get_y() for p in over], [0.35, 0.9])
    np.testing.assert_allclose([p.get_height() for p in over], [0.10, 0.05])
    # under-confidence: from the confidence up to the accuracy, hatched over the blue bar, with no fill of its own
    np.testing.assert_allclose([p.get_y() for p in under], [0.65])
    np.testing.assert_allclose([p.get_height() for p in under], [0.15])
    blue = matplotlib.colors.to_rgba("tab:blue")
    for patch in (*over, *under):
        assert patch.get_hatch()
        assert patch.get_alpha() in (None, 1)  # no see-through fill: colours are never blended
    assert all(p.get_facecolor()[3] == 0 for p in under)
    assert all(p.get_facecolor() != blue and p.get_facecolor()[3] == 1 for p in over)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["accuracy", "over-confidence gap", "under-confidence gap", "perfect calibration"]


def test_reliability_legend_names_only_the_gaps_present():
    bins = _hand_bins()
    bins.accuracy[2] = 0.6  # no under-confident bin left
    fig = plots.show_reliability({"hand": bins})
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "under-confidence gap" not in labels and "over-confidence gap" in labels


def test_reliability_share_of_pixels_is_a_panel_under_each_diagram():
    fig = plots.show_reliability({"a": _hand_bins(), "b": _hand_bins()})
    fig.draw_without_rendering()
    diagram_a, share_a, diagram_b, share_b = fig.axes[:4]
    assert share_a.get_yscale() == "log"
    heights = np.array([p.get_height() for p in share_a.patches])
    np.testing.assert_allclose(heights[1:], np.array([10, 100, 1000]) / 1110)
    assert np.isnan(heights[0])  # an empty bin draws nothing
    assert share_a.get_position().y1 <= diagram_a.get_position().y0  # under its diagram
    assert diagram_a.get_position().x1 <= diagram_b.get_position().x0  # side by side


def test_reliability_rows_of_at_most_four():
    four = plots.show_reliability({str(i): _hand_bins() for i in range(4)})
    four.draw_without_rendering()
    assert len({round(ax.get_position().y0, 3) for ax in four.axes[::2]}) == 1
    five = plots.show_reliability({str(i): _hand_bins() for i in range(5)})
    five.draw_without_rendering()
    assert len({round(ax.get_position().y0, 3) for ax in five.axes[::2]}) == 2


def test_show_curves_draws_each_curve_and_reference():
    fig = plots.show_curves(
        [1, 2, 3], {"NLL": {"single": [0.3, 0.2, 0.1], "ensemble": [0.2, 0.1, 0.05]}, "ECE": {"x": [1, 2, 3]}},
        "severity", reference={"NLL": {"clean": 0.05}}, logy=["NLL"],
    )
    ax_nll, ax_ece = fig.axes[:2]
    np.testing.assert_allclose(ax_nll.lines[0].get_ydata(), [0.3, 0.2, 0.1])
    np.testing.assert_allclose(ax_nll.lines[1].get_ydata(), [0.2, 0.1, 0.05])
    assert ax_nll.get_yscale() == "log" and ax_ece.get_yscale() == "linear"
    assert any(np.allclose(line.get_ydata(), 0.05) for line in ax_nll.lines[2:])
    assert ax_ece.get_xlabel() == "severity"
    with pytest.raises(ValueError, match="one value per x"):
        plots.show_curves([1, 2], {"p": {"c": [1.0]}}, "x")
    with pytest.raises(ValueError, match="at least one panel"):
        plots.show_curves([1], {}, "x")


def test_calibration_view_reports_the_temperature_scaled_ece():
    _, logits, target = _scene(2, 16)
    fig = plots.calibration_view(logits, target, 2.0, fitted=1.5)
    expected = metrics.CalibrationMeter().update((logits / 2).softmax(1), target).ece()
    assert any(f"ECE {expected:.4f}" in t.get_text() for t in fig.axes[0].texts)
    assert "1.50" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="temperature"):
        plots.calibration_view(logits, target, 0.0)


def test_temperature_explorer_redraws_on_slide():
    _, logits, target = _scene(1, 8)
    box = plots.temperature_explorer(logits, target, fitted=1.2)
    slider = box.children[0]
    assert plt.gcf().axes[0].get_title() == "T = 1.00"
    slider.value = 2.0
    assert plt.gcf().axes[0].get_title() == "T = 2.00"
    expected = metrics.CalibrationMeter().update((logits / 2).softmax(1), target).ece()
    assert any(f"ECE {expected:.4f}" in t.get_text() for t in plt.gcf().axes[0].texts)


def test_uncertainty_maps_share_a_scale_per_column():
    images = torch.rand(2, 1, 8, 8)
    a = torch.zeros(2, 8, 8)
    a[1, 0, 0] = 2.0
    fig = plots.show_uncertainty_maps(images, {"MI": a, "other": a / 2}, row_titles=["x", "y"],
                                      predictions=torch.zeros(2, 8, 8, dtype=torch.long))
    panels = np.array([ax for ax in fig.axes if ax.images]).reshape(2, 4)  # image, prediction, MI, other
    assert [_title(ax) for ax in panels[0]] == ["image", "prediction", "MI", "other"]
    assert [ax.get_ylabel() for ax in panels[:, 0]] == ["x", "y"]
    for col, limits in ((2, (0.0, 2.0)), (3, (0.0, 1.0))):
        assert {ax.images[0].get_clim() for ax in panels[:, col]} == {limits}
    # one colour bar per map column, under its last panel
    assert [len(ax.child_axes) for ax in panels[1]] == [0, 0, 1, 1] and not any(ax.child_axes for ax in panels[0])
    with pytest.raises(ValueError, match="map 'MI'"):
        plots.show_uncertainty_maps(images, {"MI": a[0]})
    with pytest.raises(ValueError, match="row_titles"):
        plots.show_uncertainty_maps(images, {"MI": a}, row_titles=["only one"])


def test_members_view_shows_zero_disagreement_for_equal_members():
    probs = torch.rand(NUM_CLASSES, 8, 8).softmax(0)
    members = probs.expand(3, -1, -1, -1).clone()
    fig = plots.members_view(torch.rand(1, 8, 8), members, 3, "same")
    mi_ax = next(ax for ax in fig.axes if _title(ax) == "mutual information")
    assert np.abs(mi_ax.images[0].get_array()).max() < 1e-6
    with pytest.raises(ValueError, match="count"):
        plots.members_view(torch.rand(1, 8, 8), members, 4)


def test_members_view_matches_decompose():
    g = torch.Generator().manual_seed(1)
    members = torch.randn(4, NUM_CLASSES, 8, 8, generator=g).mul(3).softmax(1)
    fig = plots.members_view(torch.rand(1, 8, 8), members, 2)
    _, _, epistemic = uncertainty.decompose(members[:2, None])
    mi_ax = next(ax for ax in fig.axes if _title(ax) == "mutual information")
    np.testing.assert_allclose(mi_ax.images[0].get_array(), epistemic[0].numpy(), atol=1e-6)


def test_members_explorer_switches_method_and_count():
    members = {"a": torch.rand(5, NUM_CLASSES, 8, 8).softmax(1), "b": torch.rand(3, NUM_CLASSES, 8, 8).softmax(1)}
    box = plots.members_explorer(torch.rand(1, 8, 8), members)
    method, count = box.children[0].children
    assert count.max == 5 and plt.gcf()._suptitle.get_text() == "a, 1 sample(s)"
    method.value = "b"
    assert count.max == 3 and plt.gcf()._suptitle.get_text() == "b, 1 sample(s)"
    count.value = 2
    assert plt.gcf()._suptitle.get_text() == "b, 2 sample(s)"
    with pytest.raises(ValueError, match="members"):
        plots.members_explorer(torch.rand(1, 8, 8), {})


def test_risk_coverage_plot_draws_the_curves():
    cov = torch.linspace(0.01, 1, 100)
    risk = cov**2 / 10
    fig = plots.show_risk_coverage({"m": (cov, risk)}, max_points=50)
    line = fig.axes[0].lines[0]
    assert len(line.get_xdata()) <= 100
    assert line.get_xdata()[-1] == pytest.approx(1.0) and line.get_ydata()[-1] == pytest.approx(0.1)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_xlim() == (0.9, 1.0)
    caught = fig.axes[1].lines[0]
    # at coverage c the kept errors are c * risk(c) * n out of risk(1) * n in all
    c = caught.get_xdata()
    expected = 1 - (1 - c) * (1 - c) ** 2 / 10 / 0.1
    np.testing.assert_allclose(caught.get_ydata(), expected, atol=1e-6)
    assert caught.get_ydata()[-1] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="zoom"):
        plots.show_risk_coverage({"m": (cov, risk)}, zoom=1.0)


def test_image_grid_layout_and_errors():
    grid = torch.rand(2, 3, 1, 8, 8)
    fig = plots.show_image_grid(grid, ["r1", "r2"], ["c1", "c2", "c3"])
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["c1", "c2", "c3"]
    assert fig.axes[3].get_ylabel() == "r2"
    with pytest.raises(ValueError, match="row titles"):
        plots.show_image_grid(grid, ["r1"], ["c1", "c2", "c3"])
    with pytest.raises(ValueError, match="grid"):
        plots.show_image_grid(torch.rand(2, 3, 8, 8), ["r1", "r2"], ["c1", "c2", "c3"])
