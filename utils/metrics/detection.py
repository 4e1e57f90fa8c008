"""Detection scores: how well a per-pixel uncertainty score ranks positives (misclassified or OOD pixels) first.

AUROC (exact, ties counted one half), ROC curves, AUPR, FPR at 95 % TPR, and a streaming binned meter.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import IGNORE_INDEX
from ._checks import _check_fraction, _check_int, _check_label_map, _check_mask, _check_pixels, _flat_scores
from ._ranking import _ap_groups, _auroc_groups, _aurc_groups, _fpr_at_tpr_groups, _tie_groups

def auroc(score: torch.Tensor, positive: torch.Tensor) -> float:
    """Return the area under the ROC curve of ``score`` for telling ``positive`` from other entries.

    Exact (Mann-Whitney U with tied scores counted one half): the probability that a random positive
    scores higher than a random negative. ``score`` is any float tensor, ``positive`` a bool tensor of
    the same shape; it is NaN when either group is empty.
    """
    s, pos = _flat_scores(score, positive)
    n_pos = int(pos.sum())
    n_neg = pos.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(s)
    s_sorted, pos_sorted = s[order], pos[order]
    _, inverse, counts = torch.unique_consecutive(s_sorted, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mid_ranks = ends - (counts.double() - 1) / 2  # average 1-based rank of each group of tied scores
    rank_sum = mid_ranks[inverse][pos_sorted].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def misclassification_auroc(
    score: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> float:
    """Return the AUROC of a per-pixel ``score`` for finding misclassified pixels (``pred != target``).

    ``score``, ``pred`` and ``target`` share one shape, e.g. ``(B, H, W)``; ignored pixels are left out.
    """
    _check_pixels(score, "score")
    _check_label_map(pred, "pred")
    _check_label_map(target, "target")
    for name, t in (("pred", pred), ("target", target)):
        _check_pixels(t, name, score.shape)
    keep = target != ignore_index
    return auroc(score[keep], (pred != target)[keep])


def ood_auroc(score: torch.Tensor, ood: torch.Tensor, inlier: torch.Tensor | None = None) -> float:
    """Return the AUROC of a per-pixel ``score`` for finding out-of-distribution pixels (``ood`` True).

    The negatives are the ``inlier`` pixels (bool mask; by default every pixel that is not OOD), so a
    comparison can be restricted, e.g. to digit pixels only.
    """
    _check_pixels(score, "score")
    _check_pixels(ood, "ood", score.shape)
    if ood.dtype != torch.bool:
        raise TypeError(f"ood must be a bool mask, got dtype {ood.dtype}")
    if inlier is None:
        inlier = ~ood
    _check_pixels(inlier, "inlier", score.shape)
    if inlier.dtype != torch.bool:
        raise TypeError(f"inlier must be a bool mask, got dtype {inlier.dtype}")
    if (inlier & ood).any():
        raise ValueError("inlier and ood masks overlap: a pixel cannot be both")
    keep = inlier | ood
    return auroc(score[keep], ood[keep])


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Return the mean of ``values`` over the pixels where ``mask`` is True (all pixels if None; NaN if none)."""
    _check_pixels(values, "values")
    if mask is not None:
        _check_pixels(mask, "mask", values.shape)
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, got dtype {mask.dtype}")
        values = values[mask]
    return float(values.double().mean()) if values.numel() else float("nan")


def roc_curve(score: torch.Tensor, positive: torch.Tensor, max_points: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ROC curve ``(false-positive rates, true-positive rates)`` of ``score`` for ``positive``.

    One point per distinct score threshold, from (0, 0) to (1, 1); ``max_points`` thins the curve
    evenly (for plotting) while keeping both ends.
    """
    if max_points is not None and (not isinstance(max_points, int) or max_points < 2):
        raise ValueError(f"max_points must be None or an int >= 2 (both ends are kept), got {max_points!r}")
    s, pos = _flat_scores(score, positive)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("positive must hold both positive and negative entries for a ROC curve")
    order = torch.argsort(s, descending=True)
    s, pos = s[order], pos[order]
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]  # the last entry of each group of tied scores
    tp = pos.double().cumsum(0)[last]
    fp = (~pos).double().cumsum(0)[last]
    tpr = torch.cat([torch.zeros(1, dtype=torch.float64), tp / n_pos])
    fpr = torch.cat([torch.zeros(1, dtype=torch.float64), fp / n_neg])
    if max_points is not None and len(fpr) > max_points:
        keep = torch.linspace(0, len(fpr) - 1, max_points).round().long().unique()
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr, tpr


def aupr(score: torch.Tensor, positive: torch.Tensor) -> float:
    """Return the average precision of ranking ``positive`` entries first by decreasing ``score``.

    Step-wise, as sklearn's ``average_precision_score``: AP = Σ_n (R_n - R_{n-1}) P_n over the distinct
    score thresholds, tied scores entering together. NaN when either group is empty.
    """
    s, pos = _flat_scores(score, positive)
    if s.numel() == 0:
        return float("nan")
    return _ap_groups(*_tie_groups(s, pos, descending=True))


def fpr_at_tpr(score: torch.Tensor, positive: torch.Tensor, tpr: float = 0.95) -> float:
    """Return the false-positive rate at the first threshold, lowering it from the top score, whose TPR >= ``tpr``.

    A pixel counts as detected when its score is >= the threshold; the threshold runs over the distinct
    scores, so the result is the FPR of the largest threshold that finds at least a fraction ``tpr`` of
    the positives (no interpolation between ROC points). NaN when either group is empty.
    """
    tpr = _check_fraction(tpr, "tpr", low_open=True)
    s, pos = _flat_scores(score, positive)
    if s.numel() == 0:
        return float("nan")
    return _fpr_at_tpr_groups(*_tie_groups(s, pos, descending=True), tpr)


def detection_report(score: torch.Tensor, positive: torch.Tensor) -> dict[str, float]:
    """Return ``auroc``, ``aupr`` and ``fpr95`` (FPR at 95% TPR) of ``score`` for finding ``positive`` entries."""
    return {"auroc": auroc(score, positive), "aupr": aupr(score, positive), "fpr95": fpr_at_tpr(score, positive)}


def _log_bucketize(x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Return ``torch.bucketize(x.double(), edges, right=False)`` for increasing, log-spaced positive ``edges``.

    The bin is first guessed from ``log x`` (within one bin of the truth) and then settled by comparing
    ``x`` with the three edges around the guess: the same indices as the binary search, several times
    faster on millions of pixels.
    """
    x = x.double()
    n = edges.numel()
    if n < 3:
        return torch.bucketize(x, edges, right=False)
    lo, hi = float(edges[0]), float(edges[-1])
    step = (math.log(hi) - math.log(lo)) / (n - 1)
    guess = ((x.clamp(lo / 2, hi * 2).log() - math.log(lo)) / step).floor_().long()
    base = (guess - 1).clamp_(0, n - 3)
    count = base.clone()
    for t in range(3):  # edges below base are < x and edges above base + 2 are >= x
        count += edges[base + t] < x
    return count


class DetectionMeter:
    """Stream per-pixel scores and positive flags into a log-spaced histogram; read AUROC, AUPR, FPR95, AURC off it.

    Bin 0 holds scores <= ``low``, the last bin scores > ``high``, and the ``bins - 2`` bins between have
    log-spaced edges (relative width (high/low)^(1/(bins-2)) - 1, about 0.11% by default). Scores in one
    bin count as tied, so the results match the exact functions up to ties within a bin.
    """

    def __init__(self, low: float = 1e-7, high: float = 10.0, bins: int = 16384) -> None:
        for name, v in (("low", low), ("high", high)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if low >= high:
            raise ValueError(f"low must be below high, got low={low!r}, high={high!r}")
        self.bins = _check_int(bins, "bins", 3)
        self.low, self.high = float(low), float(high)
        self.edges = torch.logspace(math.log10(low), math.log10(high), bins - 1, dtype=torch.float64)
        self.edges[0], self.edges[-1] = self.low, self.high
        self._pos = np.zeros(bins, np.int64)
        self._neg = np.zeros(bins, np.int64)

    @property
    def count(self) -> int:
        """Return the number of pixels counted so far."""
        return int(self._pos.sum() + self._neg.sum())

    def update(self, score: torch.Tensor, positive: torch.Tensor, mask: torch.Tensor | None = None) -> DetectionMeter:
        """Count the pixels of float ``score`` flagged by bool ``positive`` (same shape) where ``mask``; return self."""
        _check_pixels(score, "score")
        if not score.is_floating_point():
            raise TypeError(f"score must be floating point, got dtype {score.dtype}")
        _check_pixels(positive, "positive", score.shape)
        if positive.dtype != torch.bool:
            raise TypeError(f"positive must be a bool tensor, got dtype {positive.dtype}")
        _check_mask(mask, score.shape)
        with torch.no_grad():
            s = score.detach()
            pos = positive.to(s.device)
            if mask is not None:
                keep = mask.to(s.device)
                s, pos = s[keep], pos[keep]
            s, pos = s.flatten(), pos.flatten()
            if torch.isnan(s).any():
                raise ValueError("score holds NaN values")
            index = _log_bucketize(s, self.edges.to(s.device))
            self._pos += torch.bincount(index[pos], minlength=self.bins).cpu().numpy()
            self._neg += torch.bincount(index[~pos], minlength=self.bins).cpu().numpy()
        return self

    def _counts(self, descending: bool) -> tuple[torch.Tensor, torch.Tensor]:
        pos, neg = torch.from_numpy(self._pos).double(), torch.from_numpy(self._neg).double()
        return (pos.flip(0), neg.flip(0)) if descending else (pos, neg)

    def auroc(self) -> float:
        """Return the AUROC of the binned scores (pairs in one bin count one half)."""
        return _auroc_groups(*self._counts(descending=False))

    def aupr(self) -> float:
        """Return the average precision of the binned scores (see :func:`aupr`)."""
        return _ap_groups(*self._counts(descending=True))

    def fpr_at_tpr(self, tpr: float = 0.95) -> float:
        """Return the FPR at the first bin threshold, from the top, whose TPR >= ``tpr`` (see :func:`fpr_at_tpr`)."""
        return _fpr_at_tpr_groups(*self._counts(descending=True), _check_fraction(tpr, "tpr", low_open=True))

    def aurc(self) -> dict[str, float]:
        """Return :func:`aurc` of the binned scores, ``positive`` read as error."""
        return _aurc_groups(*self._counts(descending=False))

    def report(self) -> dict[str, float]:
        """Return ``auroc``, ``aupr`` and ``fpr95`` as :func:`detection_report` does."""
        return {"auroc": self.auroc(), "aupr": self.aupr(), "fpr95": self.fpr_at_tpr(0.95)}



def image_scores(score: torch.Tensor, reduce: str = "mean", k: int | None = None) -> torch.Tensor:
    """Return one score per image ``(B,)`` from a per-pixel ``score`` ``(B, ...)``: the mean, or the mean of the ``k`` largest.

    ``reduce="mean"`` averages every pixel of an image; ``reduce="topk"`` averages its ``k`` highest
    pixel scores (a small object among confident pixels still raises the image's score). The result,
    in float64, can be ranked with :func:`auroc` to detect whole images.
    """
    _check_pixels(score, "score")
    if not score.is_floating_point():
        raise TypeError(f"score must be floating point, got dtype {score.dtype}")
    if score.ndim < 2:
        raise ValueError(f"score must have shape (B, ...) with at least one pixel dimension, got {tuple(score.shape)}")
    if reduce not in ("mean", "topk"):
        raise ValueError(f"reduce must be 'mean' or 'topk', got {reduce!r}")
    flat = score.detach().flatten(1).double()
    if torch.isnan(flat).any():
        raise ValueError("score holds NaN values")
    if reduce == "mean":
        if k is not None:
            raise ValueError(f"k is only used with reduce='topk', got k={k!r}")
        return flat.mean(1).cpu()
    if k is None:
        raise ValueError("k must be given with reduce='topk'")
    k = _check_int(k, "k", 1)
    if k > flat.shape[1]:
        raise ValueError(f"k must be at most the number of pixels per image ({flat.shape[1]}), got {k}")
    return flat.topk(k, dim=1).values.mean(1).cpu()
