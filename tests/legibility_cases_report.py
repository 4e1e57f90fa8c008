"""Legibility cases of the diagnosis figures (collected by tests/test_figure_legibility.py)."""

from __future__ import annotations

import torch

from utils import plots, uncertainty, weights
from utils.data import DigitScenes


def _digits():
    scenes = DigitScenes("test", 3)
    p = uncertainty.single(weights.load("unet_seed0"), scenes.images).probs
    return plots.show_report_heatmaps(scenes.images, p, scenes.labels)


def _rgb_no_labels():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 48, 48, generator=g)
    probs = torch.rand(2, 21, 48, 48, generator=g).softmax(1)
    return plots.show_report_heatmaps(images, probs, titles=["photo 1", "photo 2"])


CASES = {
    "show_report_heatmaps": {"ch12 three digit scenes with labels": _digits, "ch12 RGB photos, 21 classes, no labels": _rgb_no_labels},
}
