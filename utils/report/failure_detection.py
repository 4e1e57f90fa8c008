"""Image-level failure detection: which images will fail, from one score per image and aggregator (:mod:`utils.failure`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import failure
from .measures import NO_BACKGROUND, Batch, Measure, Settings, uncertainty_score
from .paired import FailureScores

__all__ = ["FailureMeasure"]


class FailureMeasure(Measure):
    """``image failure AUGRC, AGGREGATOR`` and ``image failure AURC, AGGREGATOR`` of every labelled set and method.

    Each image's risk is 1 - Dice of the foreground of the method's own label map
    (:func:`utils.failure.image_risk`); its score is the method's pixel score (1 - max-softmax for one
    pass, total entropy for several) turned into one number per aggregator (:data:`utils.failure.AGGREGATORS`).
    For an ensemble, ``pairwise Dice`` (one minus the mean Dice between every pair of members' label
    maps) scores the ensemble's images. Ignored pixels are left out of the risk, except in OOD sets,
    where they count as background: foreground painted on an OOD object is a false foreground. One
    risk and one score per image and aggregator are kept; the interval resamples the images.
    """

    group = 2

    def __init__(self, settings: Settings, aggregators: Sequence[str] = tuple(failure.AGGREGATORS)) -> None:
        super().__init__(settings)
        unknown = [a for a in aggregators if a not in failure.AGGREGATORS]
        if isinstance(aggregators, str) or unknown:
            raise ValueError(f"failure_aggregators must be a list of names from {list(failure.AGGREGATORS)}, got {aggregators!r}")
        self.aggregators = list(aggregators)
        self.risks: dict[tuple[str, str], list[torch.Tensor]] = {}
        self.scores: dict[tuple[str, str, str], list[torch.Tensor]] = {}
        self._members: dict[tuple[str, int], list[torch.Tensor]] = {}

    def _names(self, b: Batch, how: str) -> list[str]:
        return [f"image failure {m}, {how}{b.suffix}" for m in ("AUGRC", "AURC")]

    def update(self, b: Batch) -> None:
        """Keep each image's risk and its score per aggregator (and the members' label maps for the pairwise Dice)."""
        if not self.aggregators:
            return
        s = self.settings
        if b.labels is None or s.background is None:
            if not b.method.startswith("member"):
                reason = NO_BACKGROUND if s.background is None else f"needs label maps; {b.set_name} holds images only"
                for how in self.aggregators + (["pairwise Dice"] if b.method == "ensemble" else []):
                    for name in self._names(b, how):
                        self.skip(name, b.method, reason)
            return
        pred = b.pred.prediction.cpu()
        if b.method.startswith("member"):
            self._members.setdefault((b.set_name, b.start), []).append(pred)
            return
        labels = b.labels.long()
        if b.role == "ood":
            labels = torch.where(labels == s.ignore_index, torch.full_like(labels, s.background), labels)
        risk = failure.image_risk(pred, labels, background=s.background, ignore_index=s.ignore_index)
        pixel_map = uncertainty_score(b.pred).float().cpu()
        scores = {how: failure.aggregate(pixel_map, how, pred=pred, background=s.background) for how in self.aggregators}
        if b.method == "ensemble":
            maps = self._members.pop((b.set_name, b.start), [])
            if len(maps) >= 2:
                scores["pairwise Dice"] = failure.pairwise_dice(maps, s.background)
        self.risks.setdefault((b.set_name, b.method), []).append(risk)
        for how, v in scores.items():
            self.scores.setdefault((b.set_name, b.method, how), []).append(v)

    def _rows(self) -> dict[tuple[str, str], tuple[str, FailureScores]]:
        out = {}
        for (set_name, method, how), parts in self.scores.items():
            risks = torch.cat(self.risks[(set_name, method)])
            scores = torch.cat(parts)
            suffix = "" if set_name == "data" else f", {set_name}"
            cache: dict = {}  # one bootstrap serves both rows
            for metric in ("AUGRC", "AURC"):
                out[(f"image failure {metric}, {how}{suffix}", method)] = (set_name, FailureScores(scores, risks, metric.lower(), cache))
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Return AUGRC and AURC of every set, method and aggregator, with the percentile interval over resampled images."""
        out = []
        for (name, method), (set_name, f) in self._rows().items():
            value, low, high = f.value(), *f.interval(self.settings.n_boot, self.settings.seed)
            out.append({"measure": name, "method": method, "value": value, "low": low, "high": high,
                        "images": int(f.risks.numel()), "set": set_name})  # fmt: skip
        return out

    def paired(self) -> dict[tuple[str, str], FailureScores]:
        """Return every row's image scores and risks."""
        return {key: f for key, (_, f) in self._rows().items()}
