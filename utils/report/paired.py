"""What a diagnosis keeps for a paired comparison, and the paired bootstrap of a difference.

Two results on the same images in the same order have aligned units (image ``i`` joins unit
``i mod max_units`` in both), so one draw of units resamples both results alike: the interval of the
difference ``a - b`` is that of :func:`utils.spread.bootstrap` with a list of sums (the answer
chapter's paired bootstrap), and for the AUROCs of segments and images the same draws weight both
tables (:func:`utils.segments.bootstrap_auroc`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from .. import segments, spread

__all__ = ["FailureScores", "ImageScores", "SegmentScores", "UnitSums"]

Interval = tuple[float, float, float]


def _interval(differences: np.ndarray) -> tuple[float, float]:
    return spread.interval(torch.tensor(np.asarray(differences, dtype=np.float64)))


@dataclass
class UnitSums:
    """Per-unit sums of one row and the metric that reads it."""

    sums: dict[str, torch.Tensor]
    metric: Callable[[dict[str, torch.Tensor]], torch.Tensor]

    def difference(self, other: UnitSums, n_boot: int, seed: int) -> Interval:
        """Return ``(a - b, low, high)``: the row's difference and its paired bootstrap interval over units."""
        return spread.bootstrap([self.sums, other.sums], lambda a, b: self.metric(a) - other.metric(b), n_boot=n_boot, seed=seed)


@dataclass
class SegmentScores:
    """One row's segments: unit of each segment, false positive or not, and its score; ``n_units`` units in all."""

    unit: np.ndarray
    positive: np.ndarray
    score: np.ndarray
    n_units: int

    def auroc(self) -> float:
        """Return the AUROC of the score for false positives."""
        return float(roc_auc_score(self.positive, self.score))

    def draws(self, n_boot: int, seed: int) -> np.ndarray:
        """Return the AUROC of ``n_boot`` resamples of all units (the same units for any table of the same images)."""
        return segments.bootstrap_auroc(self.unit, self.positive, {"s": self.score}, n_boot=n_boot, seed=seed,
                                        n_scenes=self.n_units)["s"].to_numpy()  # fmt: skip

    def difference(self, other: SegmentScores, n_boot: int, seed: int) -> Interval:
        """Return ``(a - b, low, high)`` of the two segment AUROCs over the same draws of units."""
        low, high = _interval(self.draws(n_boot, seed) - other.draws(n_boot, seed))
        return self.auroc() - other.auroc(), low, high


@dataclass
class ImageScores:
    """One image-level OOD row: the mean novelty score of each in-distribution image and of each OOD image."""

    clean: np.ndarray
    ood: np.ndarray

    def difference(self, other: ImageScores, n_boot: int, seed: int) -> Interval:
        """Return ``(a - b, low, high)`` of the two image AUROCs over the same draws of images."""
        flag = np.r_[np.zeros(len(self.clean), bool), np.ones(len(self.ood), bool)]
        scores = {"a": np.r_[self.clean, self.ood], "b": np.r_[other.clean, other.ood]}
        boot = segments.bootstrap_auroc(np.arange(flag.size), flag, scores, n_boot=n_boot, seed=seed)
        point = roc_auc_score(flag, scores["a"]) - roc_auc_score(flag, scores["b"])
        return float(point), *_interval((boot["a"] - boot["b"]).to_numpy())


@dataclass
class FailureScores:
    """One image-level failure-detection row: each image's score and risk, and the metric (``"aurc"`` or ``"augrc"``)."""

    scores: torch.Tensor
    risks: torch.Tensor
    metric: str
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # bootstrap draws, shared by the AURC and AUGRC rows

    def value(self) -> float:
        """Return the row's AURC or AUGRC (:mod:`utils.failure`)."""
        from .. import failure

        return (failure.aurc if self.metric == "aurc" else failure.augrc)(self.scores, self.risks)

    def draws(self, n_boot: int, seed: int) -> torch.Tensor:
        """Return the metric over ``n_boot`` resamples of the images (the same resamples for any row of as many images)."""
        from .. import failure

        if (n_boot, seed) not in self.cache:
            self.cache[(n_boot, seed)] = failure.bootstrap_selective({"s": self.scores}, self.risks, n_boot=n_boot, seed=seed)["s"]
        return self.cache[(n_boot, seed)][self.metric]

    def interval(self, n_boot: int, seed: int) -> tuple[float, float]:
        """Return the 95 % percentile interval of the metric over resampled images."""
        return spread.interval(self.draws(n_boot, seed))

    def difference(self, other: FailureScores, n_boot: int, seed: int) -> Interval:
        """Return ``(a - b, low, high)`` of the two rows over the same draws of images."""
        if self.risks.numel() != other.risks.numel():
            raise ValueError(f"the two rows hold {self.risks.numel()} and {other.risks.numel()} images: not the same images")
        low, high = spread.interval(self.draws(n_boot, seed) - other.draws(n_boot, seed))
        return self.value() - other.value(), low, high
