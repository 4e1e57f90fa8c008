"""The report's measures, each streamed on its own: ``update`` with every batch of every method, then ``rows``.

A measure sees one :class:`Batch` at a time (one method's predictive distribution on one batch of one
set) and keeps what it needs: per-unit sums (:class:`UnitMeasure`: calibration, error ranking and OOD
pixels here, the guarantees in :mod:`~utils.report.guarantees`), one row per segment
(:mod:`~utils.report.segment_auroc`) or one score per image (:mod:`~utils.report.image_auroc`). ``rows()`` returns the table's rows with their bootstrap interval,
``skipped()`` the rows it could not give with the reason, ``paired()`` what :meth:`Diagnosis.compare`
needs. A new measure is a subclass with an ``update``; :func:`utils.report.diagnose` runs a list of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .. import spread, uncertainty
from ..config import IGNORE_INDEX
from .paired import UnitSums
from .units import Units, metric_of

__all__ = [
    "NO_BACKGROUND",
    "Batch",
    "CalibrationMeasure",
    "ErrorMeasure",
    "Measure",
    "OODPixelMeasure",
    "Settings",
    "UnitMeasure",
    "boundary_pixels",
    "uncertainty_score",
]

#: The reason given for the rows that need a background class when there is none.
NO_BACKGROUND = "needs a background class (diagnose was called with background=None)"
_FAMILIES = ("ECE", "NLL", "accuracy", "confidence")


@dataclass(frozen=True)
class Settings:
    """What every measure needs to know: which pixels are which, and how to bootstrap."""

    background: int | None = 0
    foreground: str = "foreground"
    ignore_index: int = IGNORE_INDEX
    max_units: int = 1000
    n_boot: int = 1000
    seed: int = 0

    @property
    def fg(self) -> str:
        """The foreground's name in row names, e.g. ``foreground pixels``."""
        return f"{self.foreground} pixels"


@dataclass
class Batch:
    """One method's predictive distribution on one batch of one set; ``start`` is the index of its first image in the set."""

    set_name: str
    role: str  # "data", "shift" or "ood"
    method: str
    pred: uncertainty.Predictive
    labels: torch.Tensor | None
    start: int

    @property
    def suffix(self) -> str:
        """The row-name suffix of the set: empty for the data, ``, NAME`` otherwise."""
        return "" if self.set_name == "data" else f", {self.set_name}"

    @property
    def size(self) -> int:
        """The number of images in the batch."""
        return int(self.pred.probs.shape[0])


def uncertainty_score(p: uncertainty.Predictive, novelty: bool = False) -> torch.Tensor:
    """Return the pixel score: 1 - max-softmax for one pass; total entropy (errors) or mutual information (novelty) for several."""
    if p.samples == 1:
        return 1 - p.max_softmax
    return p.mutual_information if novelty else p.total_entropy


def boundary_pixels(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX, background: int = 0) -> torch.Tensor:
    """Return a bool map ``(N, H, W)``: labelled pixels whose 3x3 neighbourhood holds another label (ignored pixels count as ``background``)."""
    if not isinstance(labels, torch.Tensor) or labels.ndim != 3 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError("labels must be an integer tensor (N, H, W)")
    if isinstance(background, bool) or not isinstance(background, int):
        raise TypeError(f"background must be a class index (int), got {background!r}")
    y = labels.long()
    valid = y != ignore_index
    yv = torch.where(valid, y, torch.full_like(y, background)).double()[:, None]
    pad = F.pad(yv, (1, 1, 1, 1), mode="replicate")
    high = F.max_pool2d(pad, 3, stride=1)[:, 0]
    low = -F.max_pool2d(-pad, 3, stride=1)[:, 0]
    return ((high != yv[:, 0]) | (low != yv[:, 0])) & valid


def _foreground(labels: torch.Tensor, s: Settings) -> torch.Tensor:
    """Labelled pixels whose label is not the background (every labelled pixel without a background)."""
    labelled = labels != s.ignore_index
    return labelled if s.background is None else labelled & (labels != s.background)


class Measure:
    """A streamed measure: ``update`` with every batch, then ``rows`` (the table's), ``skipped`` and ``paired``."""

    #: Where its rows go within a method: per-unit rows (0), then segment rows (1), then image rows (2).
    group = 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._skipped: dict[tuple[str, str], str] = {}

    def update(self, batch: Batch) -> None:
        """Take one method's predictions on one batch."""
        raise NotImplementedError

    def rows(self) -> list[dict[str, Any]]:
        """Return the rows: measure, method, value, low, high, images, and the set they belong to."""
        raise NotImplementedError

    def paired(self) -> dict[tuple[str, str], Any]:
        """Return, per (measure, method), what a paired comparison of two results needs."""
        return {}

    def skip(self, measure: str, method: str, reason: str) -> None:
        """Record that a row is left out, and why (the first reason given stays)."""
        self._skipped.setdefault((measure, method), reason)

    def skipped(self) -> list[dict[str, str]]:
        """Return the rows left out: measure, method and the reason."""
        return [{"measure": m, "method": k, "reason": r} for (m, k), r in self._skipped.items()]


class UnitMeasure(Measure):
    """A measure kept as per-unit sums (:class:`~utils.report.units.Units`), bootstrapped over units."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.units: dict[tuple[str, str], Units] = {}
        self._set: dict[tuple[str, str], str] = {}

    def add(self, measure: str, batch: Batch, sums: dict[str, torch.Tensor]) -> None:
        """Add one batch's per-image ``sums`` to the row ``measure`` of the batch's method."""
        key = (measure, batch.method)
        self.units.setdefault(key, Units(self.settings.max_units)).add(sums, batch.start)
        self._set.setdefault(key, batch.set_name)

    def metric(self, measure: str) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        """Return the function that reads the row ``measure`` off its summed sums."""
        return metric_of(measure)

    def rows(self) -> list[dict[str, Any]]:
        """Return every row with its percentile bootstrap interval over units."""
        out = []
        for (measure, method), u in self.units.items():
            value, low, high = spread.bootstrap(u.result(), self.metric(measure), n_boot=self.settings.n_boot,
                                                seed=self.settings.seed)  # fmt: skip
            out.append({"measure": measure, "method": method, "value": value, "low": low, "high": high,
                        "images": u.seen, "set": self._set[(measure, method)]})  # fmt: skip
        return out

    def paired(self) -> dict[tuple[str, str], UnitSums]:
        """Return every row's per-unit sums."""
        return {key: UnitSums(u.result(), self.metric(key[0])) for key, u in self.units.items()}


class CalibrationMeasure(UnitMeasure):
    """ECE, NLL, accuracy and confidence over all, foreground and boundary pixels of the data; ECE and foreground rows per shifted set."""

    def update(self, b: Batch) -> None:
        """Add the batch's calibration sums (OOD sets have none)."""
        if b.role == "ood":
            return
        s = self.settings

        def cal(mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
            return spread.calibration_sums(b.pred.probs, b.labels, mask=mask, ignore_index=s.ignore_index)

        every = cal()
        fg = None if s.background is None else cal(_foreground(b.labels, s))
        if b.set_name == "data":
            for fam in _FAMILIES:
                self.add(fam, b, every)
                self._add_or_skip(f"{fam}, {s.fg}", b, fg)
            edge = None if s.background is None else cal(boundary_pixels(b.labels, s.ignore_index, s.background))
            for fam in ("ECE", "accuracy", "confidence"):
                self._add_or_skip(f"{fam}, boundary pixels", b, edge)
        else:
            self.add(f"ECE{b.suffix}", b, every)
            for fam in ("ECE", "accuracy", "confidence"):
                self._add_or_skip(f"{fam}, {s.fg}{b.suffix}", b, fg)

    def _add_or_skip(self, measure: str, b: Batch, sums: dict[str, torch.Tensor] | None) -> None:
        if sums is None:
            self.skip(measure, b.method, NO_BACKGROUND)
        else:
            self.add(measure, b, sums)


class ErrorMeasure(UnitMeasure):
    """Error AUROC: how well the score ranks wrong pixels above right ones, over all pixels, the foreground region and boundaries."""

    def update(self, b: Batch) -> None:
        """Add the batch's histograms of the score on wrong and right pixels."""
        if b.role == "ood":
            return
        s, y = self.settings, b.labels
        labelled = y != s.ignore_index
        score = uncertainty_score(b.pred)
        wrong = (b.pred.prediction != y) & labelled
        self.add(f"error AUROC{b.suffix}", b, spread.detection_sums(score, wrong, mask=labelled))
        if b.set_name != "data":
            return
        if s.background is None:
            for name in (f"error AUROC, {s.fg}", "error AUROC, boundary pixels"):
                self.skip(name, b.method, NO_BACKGROUND)
            return
        region = (_foreground(y, s) | (b.pred.prediction != s.background)) & labelled  # true or predicted foreground
        self.add(f"error AUROC, {s.fg}", b, spread.detection_sums(score, wrong, mask=region))
        edge = boundary_pixels(y, s.ignore_index, s.background)
        self.add("error AUROC, boundary pixels", b, spread.detection_sums(score, wrong, mask=edge))


class OODPixelMeasure(UnitMeasure):
    """``NAME AUROC``: the novelty score of OOD pixels (labelled ``ignore_index``) against the foreground pixels of the same images.

    Without a background class every labelled pixel of the OOD set's images counts as foreground.
    """

    def update(self, b: Batch) -> None:
        """Add the histograms of OOD and in-distribution pixels (OOD sets with label maps only)."""
        if b.role != "ood" or b.labels is None:
            return
        ood_px = b.labels == self.settings.ignore_index
        inlier = _foreground(b.labels, self.settings)
        score = uncertainty_score(b.pred, novelty=True)
        self.add(f"{b.set_name} AUROC", b, spread.detection_sums(score, ood_px, mask=ood_px | inlier))
