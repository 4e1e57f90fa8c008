"""What :func:`utils.report.diagnose` returns: the table, the rows left out, the figures, and a paired comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["COMPARE_COLUMNS", "METHOD_COMPARE_COLUMNS", "Diagnosis", "SKIPPED_COLUMNS"]

#: Columns of :meth:`Diagnosis.compare`, of :meth:`Diagnosis.compare_methods` and of :attr:`Diagnosis.skipped`.
COMPARE_COLUMNS = ["measure", "method", "difference", "low", "high", "separated"]
METHOD_COMPARE_COLUMNS = ["measure", "difference", "low", "high", "separated"]
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
    :meth:`compare` and :meth:`compare_methods` need (per-unit sums, segment and image scores; at most
    ``max_units`` rows of sums each). ``reliability``: the bins behind the reliability diagrams of the data,
    ``{"reliability" or "reliability, <foreground> pixels": {method: ReliabilityBins}}`` (empty with
    ``figures=False``); ``bins.gap`` > 0 is an under-confident bin, < 0 an over-confident one.
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
    reliability: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def wide(self, digits: int = 3) -> pd.DataFrame:
        """Return the table as measure x method (values only), like the answer chapter's table."""
        return self.table.pivot(index="measure", columns="method", values="value").round(digits)

    def compare(self, other: Diagnosis, measures: Sequence[str] | None = None) -> pd.DataFrame:
        """Return the paired bootstrap difference ``self - other`` of every row both hold, with its 95 % interval.

        Both results must come from the same images in the same order (checked: the number of images
        and a fingerprint of every set both hold, and ``max_units``); units are then aligned, and each
        bootstrap draw resamples the same units of both (``utils.spread.bootstrap`` with a list of sums,
        the answer chapter's paired bootstrap; the same draws of units or images for the segment and
        image-level AUROCs). ``separated`` is True where the interval excludes zero. Columns: measure,
        method, difference, low, high, separated; the rows in this result's order. ``measures``: only
        these rows (each bootstrap costs time; all rows by default).
        """
        if not isinstance(other, Diagnosis):
            raise TypeError(f"other must be a Diagnosis (what report.diagnose returns), got {type(other).__name__}")
        self._check_same_images(other)
        wanted = self._check_measures(measures)
        rows = []
        for key in zip(self.table["measure"], self.table["method"]):
            if key[0] not in wanted or key not in self.paired or key not in other.paired:
                continue
            diff, low, high = self.paired[key].difference(other.paired[key], self.n_boot, self.seed)
            rows.append((*key, diff, low, high, bool(low > 0 or high < 0)))
        return pd.DataFrame(rows, columns=COMPARE_COLUMNS)

    def compare_methods(self, a: str, b: str, measures: Sequence[str] | None = None) -> pd.DataFrame:
        """Return the paired bootstrap difference of two methods of this result, ``a - b``, on every measure both hold.

        Both methods were measured on the same images, so each bootstrap draw resamples the same units
        (images) for both, as :meth:`compare` does for two results: e.g. ``compare_methods("MC dropout",
        "max-softmax")`` or ``compare_methods("temperature-scaled", "max-softmax")``. ``separated`` is True
        where the 95 % interval excludes zero. Columns: measure, difference, low, high, separated; the rows
        in the table's order. ``measures``: only these rows (all by default).
        """
        known = list(dict.fromkeys(self.table["method"]))
        for name, method in (("a", a), ("b", b)):
            if not isinstance(method, str) or method not in known:
                raise ValueError(f"{name} must be one of this result's methods {known}, got {method!r}")
        wanted = self._check_measures(measures)
        rows = []
        for measure in dict.fromkeys(self.table["measure"]):
            if measure not in wanted:
                continue
            x, y = self.paired.get((measure, a)), self.paired.get((measure, b))
            if x is None or y is None or type(x) is not type(y):
                continue
            diff, low, high = x.difference(y, self.n_boot, self.seed)
            rows.append((measure, diff, low, high, bool(low > 0 or high < 0)))
        return pd.DataFrame(rows, columns=METHOD_COMPARE_COLUMNS)

    def _check_measures(self, measures: Sequence[str] | None) -> set[str]:
        """Return the measures asked for (all of the table's by default); unknown names are refused."""
        known = list(dict.fromkeys(self.table["measure"]))
        if measures is None:
            return set(known)
        if isinstance(measures, str) or not all(isinstance(m, str) for m in measures):
            raise TypeError(f"measures must be a list of row names (str), got {measures!r}")
        unknown = [m for m in measures if m not in known]
        if unknown:
            raise ValueError(f"measures names rows this result does not hold: {unknown}; known: {known}")
        return set(measures)

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
