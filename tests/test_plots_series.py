"""Tests of plots.show_series: curves with their own x values, marks, and bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from utils import plots  # noqa: E402


def test_series_draw_each_run_with_its_own_x_and_marks():
    panels = {"NLL": {"fresh": ([1, 2, 3], [0.3, 0.2, 0.1]), "fixed": ([1, 2, 3, 4, 5], [0.3, 0.2, 0.25, 0.3, 0.35])},
              "accuracy": {"fresh": ([1, 2, 3], [0.9, 0.95, 0.97]), "fixed": ([1, 5], [0.9, 0.96])}}
    fig = plots.show_series(panels, "epoch", logy=["NLL"], marks={"NLL": {"fixed": ([2, 4], [0.2, 0.3])}})
    ax_nll, ax_acc = fig.axes[:2]
    assert ax_nll.get_yscale() == "log" and ax_acc.get_yscale() == "linear"
    lines = ax_nll.get_lines()
    assert [len(line.get_xdata()) for line in lines] == [3, 5, 2]  # two curves, then the marks
    assert lines[1].get_color() == ax_acc.get_lines()[1].get_color()  # one colour per run across panels
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["fresh", "fixed"]
    plt.close(fig)


@pytest.mark.parametrize("panels, match", [
    ({}, "non-empty"),
    ({"a": {}}, "at least one curve"),
    ({"a": {"x": ([1, 2], [1])}}, "one non-zero length"),
    ({"a": {"x": ([], [])}}, "one non-zero length"),
])
def test_bad_panels_are_refused(panels, match):
    with pytest.raises(ValueError, match=match):
        plots.show_series(panels, "epoch")


def test_marks_must_name_a_panel():
    with pytest.raises(ValueError, match="not in panels"):
        plots.show_series({"a": {"x": ([1], [1])}}, "epoch", marks={"b": {"x": ([1], [1])}})
