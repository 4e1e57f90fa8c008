"""Guarantees: conformal risk control of the plain softmax, applied image by image to every labelled set."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import conformal
from .measures import NO_BACKGROUND, Batch, Settings, UnitMeasure
from .units import mean_loss

__all__ = ["GuaranteeMeasure"]


class GuaranteeMeasure(UnitMeasure):
    """Conformal risk control of the plain softmax, thresholds fitted on the validation images, applied to every labelled set.

    Rows: ``mask FNR`` (share of foreground pixels with ``p_background > lambda``, per image),
    ``sets: pixels left out`` and ``sets: foreground pixels left out``, each a mean over images.
    ``thresholds`` are ``{"fnr": ..., "miscoverage": ...}`` (empty: no rows); ``reason`` says why the
    rows are left out although validation images were given.
    """

    def __init__(self, settings: Settings, thresholds: dict[str, float], alpha: float, reason: str | None = None) -> None:
        super().__init__(settings)
        self.at = {k: torch.tensor([v], dtype=torch.float64) for k, v in thresholds.items()}
        self.alpha = alpha
        self.reason = reason

    def metric(self, measure: str) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        """Every row is a mean of per-image losses."""
        return mean_loss

    def update(self, b: Batch) -> None:
        """Add each image's losses at the thresholds (the plain softmax only: the thresholds were fitted on it)."""
        if b.role == "ood" or b.method != "max-softmax" or (not self.at and self.reason is None):
            return
        s = self.settings
        rows = ((f"mask FNR (α = {self.alpha:g})", "fnr", "all", True), ("sets: pixels left out", "miscoverage", "all", False),
                (f"sets: {s.fg} left out", "miscoverage", "digits", True))  # fmt: skip
        for name, loss, pixels, needs_background in rows:
            reason = self.reason or (NO_BACKGROUND if needs_background and s.background is None else None)
            if reason is not None:
                self.skip(name + b.suffix, b.method, reason)
                continue
            v = conformal.scene_losses(b.pred.probs, b.labels, self.at[loss], loss=loss, pixels=pixels,
                                       ignore_index=s.ignore_index, background=s.background)[:, 0]  # fmt: skip
            self.add(name + b.suffix, b, {"loss": v.double(), "n": torch.ones_like(v, dtype=torch.float64)})
