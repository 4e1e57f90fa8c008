"""Legibility cases of the segments chapter's figures (collected by tests/test_figure_legibility.py)."""

from __future__ import annotations

import numpy as np
import torch

from utils import plots, segments
from utils.data import DigitScenes


def _scatter():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 1, 400)
    return plots.show_segment_scatter({"clean segments": (x, np.clip(x + rng.normal(0, 0.2, 400), 0, 1)),
                                       "letter segments": (x[:40], np.zeros(40))})  # fmt: skip


def _maps():
    scenes = DigitScenes("test", 1)
    label = scenes.labels[0]
    probs = torch.nn.functional.one_hot(label, 11).permute(2, 0, 1).float()[None] * 0.9 + 0.1 / 11
    table = segments.segment_table(probs, scenes.labels)
    ids, _ = segments.label_segments(label, 11)
    return plots.show_segment_maps(scenes.images[0], label, label, ids,
                                   {"IoU": table["iou"], "mean max-softmax": table["max_softmax_mean"]})


def _triage():
    scenes = DigitScenes("test", 8)
    titles = [f"#{k + 1} shift 5\nrisk {r:.2f}" for k, r in enumerate(np.linspace(1, 0.7, 8))]
    return plots.show_triage(scenes.images, scenes.labels, titles)


CASES = {
    "show_segment_scatter": {"ch9 mean max-softmax vs IoU, two groups": _scatter},
    "show_segment_maps": {"ch9 a scene coloured by IoU and mean max-softmax": _maps},
    "show_triage": {"ch9 the eight images to check first": _triage},
}
