"""Tests of the chapter 2-4 figures of utils.plots (softmax, scaling, ROC, fooling, attacks) and of metrics.roc_curve.

Every figure is drawn from tiny, hand-built inputs, and its content (bar heights, line data, titles,
legend text, colour limits) is checked against values computed here; widgets are checked by changing
their sliders and watching what they redraw.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from utils import metrics, plots  # noqa: E402
from utils.config import CLASS_NAMES, NUM_CLASSES  # noqa: E402
from utils.data import PALETTE  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _heights(ax) -> np.ndarray:
    return np.array([p.get_height() for p in ax.patches])


def _probs(n: int, targets, rows: int, size: int = 8) -> torch.Tensor:
    """(n, K, size, size) probabilities whose argmax is ``targets[i]`` in the first ``rows`` rows, background elsewhere."""
    logits = torch.zeros(n, NUM_CLASSES, size, size)
    logits[:, 0] = 1.0
    for i, t in enumerate(targets):
        logits[i, t, :rows] = 4.0
    return logits.softmax(1)


# --- show_temperatures / softmax_explorer --------------------------------------------------------


def test_show_temperatures_draws_logits_and_softmax_at_each_temperature():
    z = [2.0, 0.5, -1.0]
    temps = (0.5, 1.0, 4.0)
    fig = plots.show_temperatures(z, temps, names=["cat", "dog", "cow"])
    assert isinstance(fig, Figure) and len(fig.axes) == len(temps) + 1
    assert np.allclose(_heights(fig.axes[0]), z)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["cat", "dog", "cow"]
    for ax, t in zip(fig.axes[1:], temps):
        expected = torch.softmax(torch.tensor(z, dtype=torch.float64) / t, 0).numpy()
        assert np.allclose(_heights(ax), expected, atol=1e-9)
        assert ax.get_title() == f"T = {t:g}"
    # lower temperature = sharper distribution
    assert _heights(fig.axes[1]).max() > _heights(fig.axes[2]).max() > _heights(fig.axes[3]).max()


def test_show_temperatures_default_names_and_temperatures():
    fig = plots.show_temperatures(torch.tensor([1.0, 0.0]))
    assert len(fig.axes) == 5  # logits + the four default temperatures
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["class 0", "class 1"]


def test_show_temperatures_of_many_classes_draws_horizontal_bars_named_by_class():
    z = [float(v) for v in torch.linspace(-2, 3, NUM_CLASSES)]
    fig = plots.show_temperatures(z, temperatures=(1,), names=CLASS_NAMES)
    fig.draw_without_rendering()  # the constrained layout places the axes when drawn
    logits_ax, probs_ax = fig.axes
    assert [t.get_text() for t in logits_ax.get_yticklabels()] == list(CLASS_NAMES)
    assert np.allclose([p.get_width() for p in logits_ax.patches], z)
    expected = torch.softmax(torch.tensor(z, dtype=torch.float64), 0).numpy()
    assert np.allclose([p.get_width() for p in probs_ax.patches], expected)
    assert logits_ax.get_position().x1 < probs_ax.get_position().x0  # logits left, softmax right
    # the bars take the course's class colours (background grey)
    assert np.allclose(logits_ax.patches[1].get_facecolor()[:3], np.array(PALETTE[1]) / 255)


def test_show_temperatures_puts_the_logits_left_of_a_grid_of_temperatures():
    fig = plots.show_temperatures([2.0, 1.0, 0.5, -1.0])
    fig.draw_without_rendering()
    logits_ax, *temps = fig.axes
    assert all(logits_ax.get_position().x1 < ax.get_position().x0 for ax in temps)
    assert len({round(ax.get_position().y0, 3) for ax in temps}) == 2  # two rows of two


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"logits": [1.0]}, "logits"),
        ({"logits": []}, "logits"),
        ({"logits": [1.0, 2.0], "temperatures": (1.0, 0.0)}, "temperatures"),
        ({"logits": [1.0, 2.0], "temperatures": (-1.0,)}, "temperatures"),
        ({"logits": [1.0, 2.0], "temperatures": ()}, "temperatures"),
        ({"logits": [1.0, 2.0], "names": ["a"]}, "names"),
        ({"logits": [1.0, 2.0], "names": ["a", "b", "c"]}, "names"),
    ],
)
def test_show_temperatures_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.show_temperatures(**kwargs)


def test_softmax_explorer_redraws_when_sliders_change():
    z = [2.0, 1.0, -1.0]
    widget = plots.softmax_explorer(z)
    controls = widget.children[0].children
    sliders, shift, temp = controls[: len(z)], controls[-2], controls[-1]
    assert [s.value for s in sliders] == z and temp.value == 1.0

    def shown():
        return _heights(plt.gcf().axes[0])

    first = shown()
    assert np.allclose(first, torch.softmax(torch.tensor(z, dtype=torch.float64), 0).numpy())

    temp.value = 2.0
    after_t = shown()
    assert plt.gcf().axes[0].get_title() == f"T = {temp.value:g}"
    assert np.allclose(after_t, torch.softmax(torch.tensor(z, dtype=torch.float64) / temp.value, 0).numpy())
    assert not np.allclose(after_t, first)

    shift.value = 3.0  # adding a constant to every logit leaves the softmax unchanged ...
    assert len(plt.get_fignums()) == 3  # ... but it still redraws
    assert np.allclose(shown(), after_t)

    sliders[2].value = 1.0
    z2 = torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)
    assert np.allclose(shown(), torch.softmax(z2 / temp.value, 0).numpy())


# --- show_scaling ---------------------------------------------------------------------------------


def test_show_scaling_plots_the_given_values():
    alphas = [1.0, 10.0, 100.0, 1000.0]
    msp = [0.6, 0.9, 0.99, 0.999]
    norm = [3.0, 30.0, 300.0, 3000.0]
    fig = plots.show_scaling(alphas, msp, norm, mark=10.0)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax1, ax2 = fig.axes
    assert np.allclose(ax1.lines[0].get_xdata(), alphas) and np.allclose(ax1.lines[0].get_ydata(), msp)
    assert np.allclose(ax2.lines[0].get_xdata(), alphas) and np.allclose(ax2.lines[0].get_ydata(), norm)
    assert ax1.get_xscale() == "log" and ax2.get_xscale() == "log" and ax2.get_yscale() == "log"
    # the slope-1 reference passes through the last measured point
    ref = ax2.lines[1]
    assert np.isclose(ref.get_ydata()[-1], norm[-1])
    assert np.allclose(np.diff(np.log(ref.get_ydata())), np.diff(np.log(alphas)))
    # the mark is a vertical line at alpha = mark, named in the legend
    assert any(np.allclose(line.get_xdata(), [10.0, 10.0]) for line in ax1.lines[1:])
    assert "alpha = 10" in [t.get_text() for t in ax1.get_legend().get_texts()]


@pytest.mark.parametrize(
    ("alphas", "msp", "norm"),
    [
        ([1.0, 10.0], [0.5, 0.9], [1.0]),
        ([1.0, 10.0], [0.5], [1.0, 2.0]),
        ([1.0], [0.5, 0.9], [1.0, 2.0]),
        ([1.0], [0.5], [1.0]),  # one point is not a curve
    ],
)
def test_show_scaling_rejects_length_mismatch(alphas, msp, norm):
    with pytest.raises(ValueError, match="same length"):
        plots.show_scaling(alphas, msp, norm)


# --- metrics.roc_curve ----------------------------------------------------------------------------


@pytest.fixture
def scores():
    g = torch.Generator().manual_seed(0)
    positive = torch.rand(400, generator=g) < 0.3
    score = (torch.randn(400, generator=g) + positive.float()).mul(4).round() / 4  # many ties
    return score, positive


def test_roc_curve_matches_sklearn_and_auroc(scores):
    from sklearn.metrics import roc_curve as sk_roc_curve

    score, positive = scores
    fpr, tpr = metrics.roc_curve(score, positive)
    assert fpr.dtype == tpr.dtype == torch.float64 and fpr.shape == tpr.shape
    sk_fpr, sk_tpr, thresholds = sk_roc_curve(positive.numpy(), score.numpy(), drop_intermediate=False)
    # sklearn starts with the (0, 0) point at threshold +inf, exactly as roc_curve starts at (0, 0)
    assert np.isinf(thresholds[0])
    assert len(fpr) == len(sk_fpr) == len(torch.unique(score)) + 1
    assert np.allclose(fpr.numpy(), sk_fpr) and np.allclose(tpr.numpy(), sk_tpr)
    area = float(np.sum(np.diff(fpr.numpy()) * (tpr.numpy()[1:] + tpr.numpy()[:-1]) / 2))
    assert area == pytest.approx(metrics.auroc(score, positive), abs=1e-12)


def test_roc_curve_runs_from_origin_to_one_and_is_monotone(scores):
    fpr, tpr = metrics.roc_curve(*scores)
    assert (fpr[0].item(), tpr[0].item()) == (0.0, 0.0)
    assert (fpr[-1].item(), tpr[-1].item()) == (1.0, 1.0)
    assert (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all()
    assert ((fpr.diff() > 0) | (tpr.diff() > 0)).all()  # one new point per distinct threshold


def test_roc_curve_of_a_perfect_and_of_a_reversed_score():
    positive = torch.tensor([False, False, True, True])
    fpr, tpr = metrics.roc_curve(torch.tensor([0.1, 0.2, 0.8, 0.9]), positive)
    assert fpr.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    fpr, tpr = metrics.roc_curve(torch.tensor([0.9, 0.8, 0.2, 0.1]), positive)
    assert fpr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0] and tpr.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]
    # all scores tied: one step straight from (0, 0) to (1, 1)
    fpr, tpr = metrics.roc_curve(torch.ones(4), positive)
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]


def test_roc_curve_thinning_keeps_both_ends():
    g = torch.Generator().manual_seed(1)
    positive = torch.arange(1000) % 3 == 0
    score = torch.rand(1000, generator=g, dtype=torch.float64)
    full_fpr, full_tpr = metrics.roc_curve(score, positive)
    assert len(full_fpr) == 1001
    fpr, tpr = metrics.roc_curve(score, positive, max_points=50)
    assert 2 <= len(fpr) <= 50 and len(fpr) == len(tpr)
    assert (fpr[0].item(), tpr[0].item()) == (0.0, 0.0) and (fpr[-1].item(), tpr[-1].item()) == (1.0, 1.0)
    assert (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all()
    full = set(zip(full_fpr.tolist(), full_tpr.tolist()))
    assert set(zip(fpr.tolist(), tpr.tolist())) <= full  # thinning picks points, it does not invent them
    fpr2, tpr2 = metrics.roc_curve(score, positive, max_points=2)
    assert fpr2.tolist() == [0.0, 1.0] and tpr2.tolist() == [0.0, 1.0]
    # a max_points above the curve's length leaves it untouched
    same_fpr, same_tpr = metrics.roc_curve(score, positive, max_points=5000)
    assert torch.equal(same_fpr, full_fpr) and torch.equal(same_tpr, full_tpr)


@pytest.mark.parametrize("max_points", [0, 1])
def test_roc_curve_rejects_max_points_below_two(scores, max_points):
    with pytest.raises(ValueError, match="max_points"):
        metrics.roc_curve(*scores, max_points=max_points)


def test_roc_curve_rejects_bad_input():
    score = torch.tensor([0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="both"):
        metrics.roc_curve(score, torch.tensor([True, True, True]))
    with pytest.raises(ValueError, match="both"):
        metrics.roc_curve(score, torch.tensor([False, False, False]))
    with pytest.raises(TypeError, match="bool"):
        metrics.roc_curve(score, torch.tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="bool"):
        metrics.roc_curve(score, torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        metrics.roc_curve(score, torch.tensor([True, False]))
    with pytest.raises(TypeError, match="score"):
        metrics.roc_curve([0.1, 0.5, 0.9], torch.tensor([True, False, True]))


# --- show_roc -------------------------------------------------------------------------------------


def test_show_roc_legend_holds_the_auroc_and_curves_end_at_one(scores):
    score, positive = scores
    noise = torch.rand(len(score), generator=torch.Generator().manual_seed(2))
    curves = {"signal": (score, positive), "noise": (noise, positive)}
    fig = plots.show_roc(curves)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == len(curves) + 1  # one per curve + the chance diagonal
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    for line, (name, (s, p)) in zip(ax.lines, curves.items()):
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert (x[0], y[0]) == (0.0, 0.0) and (x[-1], y[-1]) == (1.0, 1.0)
        fpr, tpr = metrics.roc_curve(s, p, max_points=2000)
        assert np.allclose(x, fpr.numpy()) and np.allclose(y, tpr.numpy())
        assert line.get_label() == f"{name} (AUROC {metrics.auroc(s, p):.3f})"
        assert line.get_label() in texts
    assert "chance (0.5)" in texts
    assert metrics.auroc(score, positive) > 0.6  # the signal really is better than chance ...
    assert f"{metrics.auroc(score, positive):.3f}" in texts[0]  # ... and its number is the one shown


def test_show_roc_thins_long_curves(scores):
    positive = torch.arange(600) % 2 == 0
    score = torch.rand(600, generator=torch.Generator().manual_seed(3))
    fig = plots.show_roc({"x": (score, positive)}, max_points=25)
    line = fig.axes[0].lines[0]
    assert len(line.get_xdata()) <= 25
    assert (line.get_xdata()[-1], line.get_ydata()[-1]) == (1.0, 1.0)


def test_show_roc_rejects_bad_input():
    with pytest.raises(ValueError, match="curves"):
        plots.show_roc({})
    with pytest.raises(ValueError, match="both"):
        plots.show_roc({"x": (torch.rand(4), torch.ones(4, dtype=torch.bool))})


# --- show_fooling / show_predictions ---------------------------------------------------------------


def test_show_fooling_titles_give_target_share_and_msp():
    images = torch.rand(2, 1, 8, 8)
    targets = [4, 7]  # digits "3" and "6"
    probs = _probs(2, targets, rows=2)  # target class wins in 2 of 8 rows: 25 %
    probs[1] = _probs(1, [7], rows=6)[0]  # 75 %
    fig = plots.show_fooling(images, probs, targets)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * 2 + 1  # three rows of panels + one colorbar
    grid = np.array(fig.axes[:6]).reshape(3, 2)
    for i, (t, share) in enumerate(zip(targets, (0.25, 0.75))):
        assert grid[0, i].get_title() == f"target {CLASS_NAMES[t]}"
        assert grid[1, i].get_title() == f"{share:.0%} target"
        msp = probs[i].amax(0)
        assert grid[2, i].get_title() == f"MSP {msp.mean().item():.3f}"
        assert np.allclose(grid[2, i].images[0].get_array(), msp.numpy())
        assert np.allclose(grid[0, i].images[0].get_array(), images[i, 0].numpy())
    assert grid[0, 0].get_title() == "target 3"
    assert [grid[r, 0].get_ylabel() for r in range(3)] == ["image", "prediction", "max-softmax"]


@pytest.mark.parametrize(("n_images", "n_probs", "n_targets"), [(2, 2, 1), (2, 1, 2), (1, 2, 2), (0, 0, 0)])
def test_show_fooling_rejects_length_mismatch(n_images, n_probs, n_targets):
    with pytest.raises(ValueError, match="same"):
        plots.show_fooling(torch.rand(n_images, 1, 8, 8), _probs(n_probs, [1] * n_probs, rows=8), [1] * n_targets)


def test_show_predictions_draws_images_predictions_and_msp():
    images = torch.rand(3, 1, 8, 8)
    probs = _probs(3, [2, 5, 9], rows=4)
    fig = plots.show_predictions(images, probs, titles=["a", "b", "c"])
    assert isinstance(fig, Figure) and len(fig.axes) == 3 * 3 + 1
    grid = np.array(fig.axes[:9]).reshape(3, 3)
    assert [ax.get_title() for ax in grid[0]] == ["a", "b", "c"]
    for i in range(3):
        assert np.allclose(grid[2, i].images[0].get_array(), probs[i].amax(0).numpy())
        assert grid[1, i].images[0].get_array().shape == (8, 8, 3)
    assert len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(CLASS_NAMES[1:])
    untitled = plots.show_predictions(images[:1], probs[:1])
    assert untitled.axes[0].get_title() == ""


def test_show_predictions_rejects_bad_input():
    with pytest.raises(ValueError, match="non-zero"):
        plots.show_predictions(torch.zeros(0, 1, 8, 8), torch.zeros(0, NUM_CLASSES, 8, 8))
    with pytest.raises(ValueError, match="same"):
        plots.show_predictions(torch.rand(2, 1, 8, 8), _probs(1, [1], rows=8))


@pytest.mark.parametrize("titles", [["a", "b", "c"], ["a"]])
def test_show_predictions_rejects_wrong_number_of_titles(titles):
    with pytest.raises(ValueError, match="titles"):
        plots.show_predictions(torch.rand(2, 1, 8, 8), _probs(2, [1, 2], rows=8), titles=titles)


# --- show_attack_sweep ----------------------------------------------------------------------------


def test_show_attack_sweep_splits_miou_and_confidence_curves():
    eps = [0.5 / 255, 1 / 255, 2 / 255, 8 / 255]
    rows = {"test mIoU": [0.9, 0.7, 0.5, 0.1], "mean MSP": [0.95, 0.9, 0.85, 0.8], "mIoU (digits)": [0.8, 0.6, 0.4, 0.05]}
    fig = plots.show_attack_sweep(eps, rows, reference={"clean OOD": 0.7, "clean mIoU": 0.95})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    left, right = fig.axes
    assert [line.get_label() for line in left.lines][:2] == ["test mIoU", "mIoU (digits)"]
    assert right.lines[0].get_label() == "mean MSP"
    for ax in (left, right):
        for line in ax.lines:
            if line.get_label() in rows:
                assert np.allclose(line.get_xdata(), [0.5, 1, 2, 8])
                assert np.allclose(line.get_ydata(), rows[line.get_label()])
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1", "2", "8"]
        assert ax.get_xscale() == "log"
    # references are horizontal lines with their names: mIoU ones on the left, the others on the right
    assert len(right.lines) == 2 and np.allclose(right.lines[1].get_ydata(), [0.7, 0.7])
    assert [t.get_text().strip() for t in right.texts] == ["clean OOD"]
    assert len(left.lines) == 3 and np.allclose(left.lines[2].get_ydata(), [0.95, 0.95])
    assert [t.get_text().strip() for t in left.texts] == ["clean mIoU"]
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["test mIoU", "mIoU (digits)"]
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["mean MSP"]


def test_show_attack_sweep_without_reference():
    fig = plots.show_attack_sweep([1 / 255, 4 / 255], {"mIoU": [0.9, 0.2], "MSP": [0.9, 0.95]})
    left, right = fig.axes
    assert len(left.lines) == 1 and len(right.lines) == 1 and not right.texts


@pytest.mark.parametrize(
    "rows", [{"mIoU": [0.9, 0.5]}, {"mIoU": [0.9, 0.5, 0.4], "MSP": [0.9, 0.8]}, {"MSP": [0.9, 0.8, 0.7, 0.6]}]
)
def test_show_attack_sweep_rejects_wrong_lengths(rows):
    with pytest.raises(ValueError, match="one value per eps"):
        plots.show_attack_sweep([0.5 / 255, 1 / 255, 2 / 255], rows)


def test_show_attack_sweep_rejects_non_positive_eps():
    with pytest.raises(ValueError, match="positive"):
        plots.show_attack_sweep([0.0, 1 / 255], {"mIoU": [0.9, 0.5]})


# --- attack_view / attack_explorer ----------------------------------------------------------------


@pytest.fixture
def attack():
    g = torch.Generator().manual_seed(4)
    image = torch.rand(1, 8, 8, generator=g)
    label = torch.zeros(8, 8, dtype=torch.long)
    delta = torch.zeros(1, 8, 8)
    delta[0, 2, 3] = -6 / 255
    delta[0, 5, 5] = 3 / 255
    advs = {0.0: image.clone(), 2 / 255: image + delta / 3, 6 / 255: image + delta}
    probs = {k: _probs(1, [1 + j], rows=2 * j)[0] for j, k in enumerate(advs)}
    return image, label, advs, probs


def test_attack_view_perturbation_limits_are_the_largest_change(attack):
    image, label, advs, probs = attack
    adv = advs[6 / 255]
    fig = plots.attack_view(image, adv, label, probs[0.0], probs[6 / 255], title="eps 6")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6 + 2  # six panels + two colorbars
    span = (adv - image).abs().max().item()
    assert span == pytest.approx(6 / 255)
    pert = fig.axes[1].images[0]
    assert np.allclose(pert.get_clim(), (-span, span))
    assert np.allclose(pert.get_array(), (adv - image)[0].numpy())
    assert fig.axes[1].get_title() == "perturbation (max 6/255)"
    assert np.allclose(fig.axes[0].images[0].get_array(), image[0].numpy())
    assert np.allclose(fig.axes[2].images[0].get_array(), adv[0].numpy())
    assert np.allclose(fig.axes[5].images[0].get_array(), probs[6 / 255].amax(0).numpy())
    assert fig._suptitle is not None and fig._suptitle.get_text() == "eps 6"
    # two rows of three: clean, attacked, perturbation on top; predictions and heat map below
    fig.draw_without_rendering()
    pos = [ax.get_position() for ax in fig.axes[:6]]
    assert pos[0].x1 < pos[2].x0 < pos[2].x1 < pos[1].x0  # clean | attacked | perturbation
    assert pos[3].y1 < pos[0].y0 and pos[5].y1 < pos[1].y0


def test_attack_view_of_an_unchanged_image_does_not_fail(attack):
    image, label, advs, probs = attack
    fig = plots.attack_view(image, image.clone(), label, probs[0.0], probs[0.0])
    vmin, vmax = fig.axes[1].images[0].get_clim()
    assert vmax > 0 and vmin == -vmax  # a zero perturbation still gets a valid, symmetric colour range
    assert fig._suptitle is None


def test_attack_explorer_redraws_on_epsilon_change(attack, monkeypatch):
    image, label, advs, probs = attack
    calls = []
    real = plots.attack_view

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(plots.attacks, "attack_view", spy)
    widget = plots.attack_explorer(image, label, advs, probs)
    slider = widget.children[0]
    assert [label for label, _ in slider.options] == ["0/255", "2/255", "6/255"]
    assert slider.value == 0.0 and len(calls) == 1
    slider.value = 6 / 255
    assert len(calls) == 2
    args, kwargs = calls[-1]
    assert args[1] is advs[6 / 255] and args[3] is probs[0.0] and args[4] is probs[6 / 255]
    assert kwargs["title"] == "epsilon = 6/255"
    # what was drawn is the attacked scene's perturbation
    drawn = plt.gcf()
    assert np.allclose(drawn.axes[1].images[0].get_clim(), (-6 / 255, 6 / 255))
    slider.value = 2 / 255
    assert len(calls) == 3 and calls[-1][1]["title"] == "epsilon = 2/255"


def test_attack_explorer_rejects_inconsistent_keys(attack):
    image, label, advs, probs = attack
    no_clean_advs = {k: v for k, v in advs.items() if k != 0.0}
    no_clean_probs = {k: v for k, v in probs.items() if k != 0.0}
    with pytest.raises(ValueError, match="0.0"):
        plots.attack_explorer(image, label, no_clean_advs, no_clean_probs)
    with pytest.raises(ValueError, match="share"):
        plots.attack_explorer(image, label, advs, {k: probs[k] for k in (0.0, 2 / 255)})
    with pytest.raises(ValueError, match="share"):
        plots.attack_explorer(image, label, {k: advs[k] for k in (0.0, 6 / 255)}, probs)
