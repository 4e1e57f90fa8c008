"""Per-unit sums: what the report keeps of a measure, and the metric that reads a row off them.

Image ``i`` of a set adds its sums to unit ``i mod max_units``, so the storage of a measure never
exceeds ``max_units`` rows, however many images stream past; the bootstrap resamples units. With no
more images than ``max_units`` every unit is one image (the chapters' scene bootstrap).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import spread

__all__ = ["METRICS", "Units", "mean_loss", "metric_of"]

#: Metric of each measure family (the first words of a measure's name), read off the summed sums.
METRICS: dict[str, Callable[[dict[str, torch.Tensor]], torch.Tensor]] = {
    "ECE": spread.ece,
    "NLL": spread.nll,
    "accuracy": spread.accuracy,
    "confidence": spread.confidence,
}
_DETECTION = "AUROC"


def metric_of(measure: str) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """Return the function that reads ``measure`` (a row name of the report) off its summed sums."""
    if not isinstance(measure, str):
        raise TypeError(f"measure must be a str, got {type(measure).__name__}")
    if _DETECTION in measure:
        return spread.auroc
    for key, fn in METRICS.items():
        if measure.startswith(key):
            return fn
    raise ValueError(f"unknown measure {measure!r}: names start with {sorted(METRICS)} or contain 'AUROC'")


def mean_loss(sums: dict[str, torch.Tensor]) -> torch.Tensor:
    """Return the mean per-image loss from summed ``loss`` and ``n`` (images)."""
    return sums["loss"] / sums["n"]


class Units:
    """Per-unit sums of one measure: image ``i`` adds its sums to unit ``i mod max_units``."""

    def __init__(self, max_units: int) -> None:
        self.max_units = max_units
        self.sums: dict[str, torch.Tensor] = {}
        self.seen = 0

    def add(self, sums: dict[str, torch.Tensor], start: int) -> None:
        """Add per-image ``sums`` (first dimension: images ``start``, ``start + 1``, ...) to their units."""
        n = next(iter(sums.values())).shape[0]
        unit = torch.arange(start, start + n) % self.max_units
        rows = min(start + n, self.max_units)  # storage grows with the images seen, up to max_units rows
        for k, v in sums.items():
            have = self.sums.get(k)
            if have is None or have.shape[0] < rows:
                size = min(self.max_units, max(rows, 2 * (0 if have is None else have.shape[0])))
                grown = torch.zeros((size, *v.shape[1:]), dtype=torch.float64)
                if have is not None:
                    grown[: have.shape[0]] = have
                self.sums[k] = have = grown
            have.index_add_(0, unit, v.double())
        self.seen = max(self.seen, start + n)

    def result(self) -> dict[str, torch.Tensor]:
        """Return the sums of the units seen, ``(units, ...)`` each."""
        m = min(self.seen, self.max_units)
        return {k: v[:m] for k, v in self.sums.items()}
