"""Whole OOD images: the image-level OOD AUROC, from one mean novelty score per image."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from .. import segments
from .measures import Batch, Measure, Settings, uncertainty_score
from .paired import ImageScores

__all__ = ["OODImageMeasure"]


class OODImageMeasure(Measure):
    """``NAME AUROC, images``: each image's mean novelty score, the OOD set's images against the data's (one score per image kept)."""

    group = 2

    def __init__(self, settings: Settings, active: bool = True) -> None:
        super().__init__(settings)
        self.active = active
        self.scores: dict[str, dict[str, list[torch.Tensor]]] = {}

    def update(self, b: Batch) -> None:
        """Keep the mean novelty score of every image of the data and of the OOD sets."""
        if not self.active or (b.set_name != "data" and b.role != "ood"):
            return
        score = uncertainty_score(b.pred, novelty=True).flatten(1).mean(1).cpu()
        self.scores.setdefault(b.set_name, {}).setdefault(b.method, []).append(score)

    def _pairs(self) -> dict[tuple[str, str], tuple[str, ImageScores]]:
        clean = self.scores.get("data", {})
        out = {}
        for set_name, by_method in self.scores.items():
            if set_name == "data":
                continue
            for method, parts in by_method.items():
                scores = ImageScores(torch.cat(clean[method]).double().numpy(), torch.cat(parts).double().numpy())
                out[(f"{set_name} AUROC, images", method)] = (set_name, scores)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Return the image-level AUROC of every OOD set and method; the interval resamples the images of both sets."""
        out = []
        for (name, method), (set_name, s) in self._pairs().items():
            score = np.r_[s.clean, s.ood]
            flag = np.arange(score.shape[0]) >= s.clean.shape[0]
            value = float(roc_auc_score(flag, score))  # exact: one score per image, no bins
            boot = segments.bootstrap_auroc(np.arange(score.shape[0]), flag, {"s": score}, n_boot=self.settings.n_boot,
                                            seed=self.settings.seed)["s"]  # fmt: skip
            low, high = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
            out.append({"measure": name, "method": method, "value": value, "low": low, "high": high,
                        "images": int(s.ood.shape[0]), "set": set_name})  # fmt: skip
        return out

    def paired(self) -> dict[tuple[str, str], ImageScores]:
        """Return every row's image scores."""
        return {key: s for key, (_, s) in self._pairs().items()}
