"""The report's standard figures, streamed from the data: reliability diagrams, the risk-coverage curve, heat maps."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..metrics import CalibrationMeter, DetectionMeter
from .measures import Batch, Settings, uncertainty_score

__all__ = ["FigureMaker", "risk_coverage_from_counts"]


def risk_coverage_from_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(coverage, risk)`` of keeping pixels by increasing score from binned counts of wrong (``pos``) and right pixels."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if pos.shape != neg.shape or pos.ndim != 1:
        raise ValueError("pos and neg must be 1-D arrays of the same length")
    n = pos + neg
    keep = n > 0
    cum_n, cum_err = np.cumsum(n[keep]), np.cumsum(pos[keep])
    if cum_n.size == 0:
        raise ValueError("pos and neg hold no pixels")
    return cum_n / cum_n[-1], cum_err / cum_n


class FigureMaker:
    """Streams the data's reliability bins, risk-coverage histograms and first images; ``figures()`` draws them."""

    def __init__(self, settings: Settings, n_examples: int = 4) -> None:
        self.settings = settings
        self.n_examples = n_examples
        self.meters: dict[str, dict[str, Any]] = {}
        self.examples: dict[str, list[torch.Tensor]] = {"images": [], "labels": [], "probs": []}

    def add_examples(self, x: torch.Tensor, y: torch.Tensor, probs: torch.Tensor) -> None:
        """Keep the first ``n_examples`` images of the data, their labels and plain-softmax probabilities."""
        take = self.n_examples - len(self.examples["images"])
        if take > 0:
            for key, v in (("images", x), ("labels", y), ("probs", probs)):
                self.examples[key].extend(v[:take].cpu())

    def update(self, b: Batch) -> None:
        """Add one method's batch of the data to its reliability bins and risk-coverage histogram."""
        if b.set_name != "data" or b.labels is None:
            return
        s, fg = self.settings, f"reliability, {self.settings.fg}"
        k = b.pred.probs.shape[1]
        labelled = b.labels != s.ignore_index
        if b.method not in self.meters:
            self.meters[b.method] = {"reliability": CalibrationMeter(num_classes=k, classwise=False), "risk": DetectionMeter(bins=4096)}
            if s.background is not None:
                self.meters[b.method][fg] = CalibrationMeter(num_classes=k, classwise=False)
        meters = self.meters[b.method]
        meters["reliability"].update(b.pred.probs, b.labels, mask=labelled)
        if fg in meters:
            meters[fg].update(b.pred.probs, b.labels, mask=labelled & (b.labels != s.background))
        wrong = (b.pred.prediction != b.labels) & labelled
        meters["risk"].update(uncertainty_score(b.pred), wrong, mask=labelled)

    def reliability(self) -> dict[str, dict[str, Any]]:
        """Return the reliability bins of every method, ``{"reliability" or "reliability, <fg> pixels": {method: bins}}``."""
        out: dict[str, dict[str, Any]] = {}
        for which in ("reliability", f"reliability, {self.settings.fg}"):
            bins = {m: v[which].reliability() for m, v in self.meters.items() if which in v and v[which].count}
            if bins:
                out[which] = bins
        return out

    def figures(self) -> dict[str, Any]:
        """Return the figures (closed: a notebook displays only those it asks for)."""
        from ..plots import show_reliability, show_report_heatmaps, show_risk_coverage

        figs: dict[str, Any] = {}
        shown = {m: v for m, v in self.meters.items() if not m.startswith("member")}
        for which in ("reliability", f"reliability, {self.settings.fg}"):
            diagrams = {m: v[which].reliability() for m, v in shown.items() if which in v and v[which].count}
            if diagrams:
                figs[which] = show_reliability(diagrams, {m: shown[m][which].ece() for m in diagrams})
        curves = {m: risk_coverage_from_counts(v["risk"]._pos, v["risk"]._neg) for m, v in shown.items() if v["risk"].count}
        if curves:
            figs["risk-coverage"] = show_risk_coverage(curves)
        if self.examples["images"]:
            ex = {k: torch.stack(v) for k, v in self.examples.items()}
            figs["heat maps"] = show_report_heatmaps(ex["images"], ex["probs"], ex["labels"])
        import matplotlib.pyplot as plt

        for fig in figs.values():
            plt.close(fig)
        return figs
