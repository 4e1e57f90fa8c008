"""What :func:`utils.report.diagnose` returns: the table, the rows left out, the figures, and a paired comparison."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["COMPARE_COLUMNS", "Diagnosis", "SKIPPED_COLUMNS"]

#: Columns of :meth:`Diagnosis.compare` and of :attr:`Diagnosis.skipped`.
COMPARE_COLUMNS = ["measure", "method", "difference", "low", "high", "separated"]
SKIPPED_COLUMNS = ["measure", "method", "reason"]


def _no_skips() -> pd.DataFrame:
    return pd.DataFrame(columns=SKIPPED_COLUMNS)


@dataclass
class Diagnosis:
    """What :func:`~utils.report.diagnose` returns: the tidy table, the rows left out and why, the figures, and what was fitted.

    ``table``: one row per measure and method (value, 95 % bootstrap interval over images, images).
    ``skipped``: the rows that were asked for but could not be given (measure, method, reason), e.g.
    a segment AUROC without any predicted segment, or the foreground rows with ``background=None``.
    ``images``: the number of images of every set; ``fingerprints``, ``paired``: what
    :meth:`compare` needs (per-unit sums, segment and image scores; at most ``max_units`` rows each).
    """

    table: pd.DataFrame
    figures: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=_no_skips)
    fingerprints: dict[str, str] = field(default_factory=dict, repr=False)
    paired: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    max_units: int = 1000
    n_boot: int = 1000
    seed: int = 0

    def wide(self, digits: int = 3) -> pd.DataFrame:
        """Return the table as measure x method (values only), like the answer chapter's table."""
        return self.table.pivot(index="measure", columns="method", values="value").round(digits)

    def compare(self, other: Diagnosis) -> pd.DataFrame:
        """Return the paired bootstrap difference ``self - other`` of every row both hold, with its 95 % interval.

        Both results must come from the same images in the same order (checked: the number of images
        and a fingerprint of every set both hold, and ``max_units``); units are then aligned, and each
        bootstrap draw resamples the same units of both (``utils.spread.bootstrap`` with a list of sums,
        the answer chapter's paired bootstrap; the same draws of units or images for the segment and
        image-level AUROCs). ``separated`` is True where the interval excludes zero. Columns: measure,
        method, difference, low, high, separated; the rows in this result's order.
        """
        if not isinstance(other, Diagnosis):
            raise TypeError(f"other must be a Diagnosis (what report.diagnose returns), got {type(other).__name__}")
        self._check_same_images(other)
        rows = []
        for key in zip(self.table["measure"], self.table["method"]):
            if key not in self.paired or key not in other.paired:
                continue
            diff, low, high = self.paired[key].difference(other.paired[key], self.n_boot, self.seed)
            rows.append((*key, diff, low, high, bool(low > 0 or high < 0)))
        return pd.DataFrame(rows, columns=COMPARE_COLUMNS)

    def _check_same_images(self, other: Diagnosis) -> None:
        if self.max_units != other.max_units:
            raise ValueError(f"compare needs the same max_units (units are images i mod max_units): {self.max_units} here, "
                             f"{other.max_units} there")  # fmt: skip
        for name in self.fingerprints.keys() & other.fingerprints.keys():
            a, b = self.images[name], other.images[name]
            if a != b:
                raise ValueError(f"compare needs the same images in the same order: {name} holds {a} images here and {b} there")
            if self.fingerprints[name] != other.fingerprints[name]:
                raise ValueError(f"compare needs the same images in the same order: {name} holds {a} images in both, but "
                                 "not the same images (or not in the same order)")  # fmt: skip
