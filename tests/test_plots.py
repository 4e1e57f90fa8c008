"""Tests of utils.plots: every figure is drawn from real inputs, and bad inputs are refused."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from utils import plots  # noqa: E402
from utils.config import IGNORE_INDEX, NUM_CLASSES  # noqa: E402
from utils.data import PALETTE  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def scene_probs(small_val):
    torch.manual_seed(0)
    logits = torch.randn(len(small_val), NUM_CLASSES, 64, 64)
    return small_val.images, small_val.labels, logits.softmax(1)


def test_overlay_colours_digit_pixels_and_leaves_background_grey():
    image = torch.zeros(1, 8, 8)
    label = torch.zeros(8, 8, dtype=torch.long)
    label[2:4, 2:4] = 4  # digit 3
    label[6, 6] = IGNORE_INDEX
    rgb = plots.overlay(image, label, alpha=1.0)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[2, 2]) == PALETTE[4]
    assert tuple(rgb[0, 0]) == (0, 0, 0)  # background: the (black) image itself
    assert tuple(rgb[6, 6]) == (128, 128, 128)  # ignored pixels are grey


def test_overlay_rejects_bad_input():
    with pytest.raises(ValueError, match="label"):
        plots.overlay(torch.zeros(8, 8), torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="alpha"):
        plots.overlay(torch.zeros(8, 8), torch.zeros(8, 8, dtype=torch.long), alpha=2.0)
    with pytest.raises(TypeError, match="image"):
        plots.overlay(np.zeros((8, 8)), torch.zeros(8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="image"):
        plots.overlay(torch.zeros(2, 8, 8), torch.zeros(8, 8, dtype=torch.long))


def test_figures_are_drawn(scene_probs, small_val):
    images, labels, probs = scene_probs
    assert len(plots.show_scenes(images, labels, n=3).axes) >= 6
    assert isinstance(plots.show_heatmaps(images, labels, probs, indices=[0, 1]), Figure)
    assert isinstance(plots.show_class_probabilities(images[0], probs[0]), Figure)
    conf = torch.randint(0, 50, (NUM_CLASSES, NUM_CLASSES))
    assert isinstance(plots.show_confusion(conf), Figure)
    hist = plots.confidence_histogram({"a": probs.amax(1)[:4], "b": probs.amax(1)[4:]})
    assert len(hist.axes[0].patches) == 2
    history = [{"step": 10, "val_miou": 0.2, "val_pixel_accuracy": 0.9}]
    assert isinstance(plots.show_training([2.4 - 0.01 * i for i in range(40)], history), Figure)


def test_explorer_view_shows_the_chosen_map(scene_probs):
    images, labels, probs = scene_probs
    fig = plots.explorer_view(images[0], labels[0], probs[0], "p(class = 3)")
    shown = fig.axes[2].images[0].get_array()
    assert np.allclose(shown, probs[0, 4].numpy())  # class "3" is label 4
    fig = plots.explorer_view(images[0], labels[0], probs[0], "max-softmax")
    assert np.allclose(fig.axes[2].images[0].get_array(), probs[0].amax(0).numpy())
    with pytest.raises(ValueError, match="which"):
        plots.explorer_view(images[0], labels[0], probs[0], "entropy")
    assert plots.explorer_choices()[0] == "max-softmax" and len(plots.explorer_choices()) == NUM_CLASSES + 1


def test_heatmap_explorer_redraws_on_change(scene_probs, monkeypatch):
    images, labels, probs = scene_probs
    calls = []
    real = plots.explorer_view
    monkeypatch.setattr(plots.scenes, "explorer_view", lambda *a: calls.append(a[-1]) or real(*a))
    widget = plots.heatmap_explorer(images, labels, probs)
    slider, dropdown = widget.children[0].children
    assert slider.max == len(images) - 1
    dropdown.value = "p(class = background)"
    slider.value = 2
    assert calls == ["max-softmax", "p(class = background)", "p(class = background)"]


def test_class_probability_and_confusion_shapes_are_checked():
    with pytest.raises(ValueError, match="probs"):
        plots.show_class_probabilities(torch.zeros(1, 8, 8), torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="conf"):
        plots.show_confusion(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="groups"):
        plots.confidence_histogram({})
