"""Calibration of probabilities: a streaming meter for ECE, ACE, MCE, SCE, NLL and Brier, and reliability bins."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..config import IGNORE_INDEX, NUM_CLASSES
from ._checks import _check_int, _check_label_map, _check_mask, _check_prob_values, _check_probs

def _equal_mass_gap(count: np.ndarray, s_prob: np.ndarray, s_hit: np.ndarray, n_bins: int, n: int) -> float:
    """Σ_r |Σ hit - Σ prob| / n over ``n_bins`` equal-mass groups of consecutive fine bins (a fine bin joins the group of its first pixel)."""
    before = np.cumsum(count) - count  # pixels in the fine bins below
    group = np.minimum(n_bins * before // n, n_bins - 1)
    s_p = np.bincount(group, weights=s_prob, minlength=n_bins)
    s_h = np.bincount(group, weights=s_hit, minlength=n_bins)
    return float(np.abs(s_h - s_p).sum() / n)


@dataclass
class ReliabilityBins:
    """The equal-width top-label bins of a reliability diagram (NaN confidence and accuracy where a bin is empty)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """Return accuracy - confidence per bin (negative = overconfident; NaN where a bin is empty)."""
        return self.accuracy - self.confidence


def _bin_index(x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Return the 0-based index m of the bin (edges[m], edges[m+1]] holding each x (x <= edges[0] goes in bin 0)."""
    return (torch.bucketize(x, edges, right=False) - 1).clamp_(0, len(edges) - 2)


class CalibrationMeter:
    """Stream pixels' probabilities and labels into binned counts; read ECE, ECE-EM, ACE, MCE, SCE, NLL and Brier off them.

    Pixels are never stored, only per-bin sums (float64 and int64, on the CPU), so any number of pixels can
    be fed in batches from the CPU or a GPU. For each pixel i with probabilities p_i, label y_i, prediction
    ŷ_i = argmax p_i and confidence c_i = max p_i:

    * ECE (Guo et al. 2017): bin m = ((m-1)/M, m/M] of c (c = 0 goes in bin 1),
      ECE = Σ_m (n_m/n) |acc_m - conf_m|; empty bins are skipped.
    * ECE-EM, the top-label equal-mass ECE (Nixon et al. 2019 discuss it; Kumar et al. 2019 and Roelofs et
      al. 2022 call it equal-mass binning): the ECE sum over M bins of equal mass (equal pixel counts). Pixel
      of rank r (0-based, by increasing confidence) goes in bin floor(r M / n). The ranks come from a fine
      histogram of t = log(c / (1 - c)) (1 - c clamped at 1e-7) with ``fine_bins`` equal-width bins between
      logit(1/K) and logit(1 - 1e-7) ≈ 16.1: segmentation confidences pile up near 1, where the logit
      scale keeps them apart. A whole fine bin goes in the bin of its first pixel, so the edges of the
      equal-mass bins are exact up to one fine bin.
    * ACE, the adaptive calibration error of Nixon et al. (2019): class-wise, over *every* class's
      probability, with R = M ranges of equal mass per class:
      ACE = (1/(K R)) Σ_k Σ_r |acc(r,k) - conf(r,k)|, where range r of class k holds the pixels of rank r
      by p_k, acc(r,k) = mean of 1[y = k] and conf(r,k) = mean of p_k over them. The ranks come from a
      per-class fine histogram of log(p_k / (1 - p_k)) (p_k clamped to [1e-12, 1 - 1e-7]), as for ECE-EM;
      each range is weighted by its pixel share (n_{r,k} / n), which is 1/R when the ranges are exactly
      equal (so the formula above) and stays right when one fine bin holds more than n/R pixels.
    * MCE: max_m |acc_m - conf_m| over the equal-width bins holding at least ``min_count`` pixels.
    * SCE (Nixon et al. 2019): every class's probability, not just the top one: equal-width bins b of p_k
      for each class k, SCE = (1/K) Σ_k Σ_b (n_{b,k}/n) |acc(b,k) - conf(b,k)| with
      acc(b,k) = mean of 1[y = k] and conf(b,k) = mean of p_k over the pixels in bin b of class k.
    * NLL = mean of -log(max(p_{i,y_i}, 1e-12)) (nats).
    * Brier = mean of Σ_k (p_ik - 1[y_i = k])², summed over the classes, in [0, 2]
      (Lakshminarayanan et al. 2017 also divide by K).

    Pixels labelled ``ignore_index`` count nowhere; every method returns NaN while no pixel is counted.
    ``classwise=False`` skips the per-class bins of SCE and ACE (about half the work) for callers that
    need only the top-label scores, NLL and Brier; ``sce()`` and ``ace()`` then raise, and ``summary()``
    reports them as NaN.
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        n_bins: int = 15,
        ignore_index: int = IGNORE_INDEX,
        fine_bins: int = 4096,
        classwise: bool = True,
    ) -> None:
        self.num_classes = _check_int(num_classes, "num_classes", 1)
        self.n_bins = _check_int(n_bins, "n_bins", 1)
        self.fine_bins = _check_int(fine_bins, "fine_bins", 1)
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = ignore_index
        if not isinstance(classwise, bool):
            raise TypeError(f"classwise must be a bool, got {classwise!r}")
        self.classwise = classwise
        self.edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        # range of the logit of the confidence: c >= 1/K, and 1 - c is clamped at 1e-7
        k = num_classes
        self._t_low = (math.log(1 / (k - 1)) if k > 1 else 0.0) - 1e-6
        self._t_high = math.log(1 / 1e-7) + 1e-6
        self._u_low = math.log(1e-12) - 1e-6  # logit of a class probability clamped to [1e-12, 1 - 1e-7]
        self._reset()

    def _reset(self) -> None:
        m, k, f = self.n_bins, self.num_classes, self.fine_bins
        self._n = 0
        self._n_correct = 0
        self._nll = 0.0
        self._brier = 0.0
        self._top_count = np.zeros(m, np.int64)
        self._top_conf = np.zeros(m, np.float64)
        self._top_correct = np.zeros(m, np.float64)
        self._cls_count = np.zeros((k, m), np.int64)
        self._cls_prob = np.zeros((k, m), np.float64)
        self._cls_hit = np.zeros((k, m), np.float64)
        self._fine_count = np.zeros(f, np.int64)
        self._fine_conf = np.zeros(f, np.float64)
        self._fine_correct = np.zeros(f, np.float64)
        self._cfine_count = np.zeros((k, f), np.int64)
        self._cfine_prob = np.zeros((k, f), np.float64)
        self._cfine_hit = np.zeros((k, f), np.float64)

    @property
    def count(self) -> int:
        """Return the number of pixels counted so far."""
        return self._n

    def update(self, probs: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> CalibrationMeter:
        """Count the pixels of ``probs`` ``(B, K, H, W)`` against labels ``target`` ``(B, H, W)``; return self.

        Flat pixels work too: ``probs`` ``(N, K)`` with ``target`` ``(N,)``. ``mask`` (bool, shaped like
        ``target``) selects the pixels to count, e.g. digit pixels only. The input is processed in chunks
        of the batch dimension, and the meter changes only when every chunk passed its checks.
        """
        _check_probs(probs, self.num_classes)
        _check_label_map(target, "target")
        pixel_shape = probs.shape[:1] + probs.shape[2:]
        if target.shape != pixel_shape:
            raise ValueError(f"target must have shape {tuple(pixel_shape)} to match probs {tuple(probs.shape)}, "
                             f"got {tuple(target.shape)}")
        _check_mask(mask, pixel_shape)
        delta = CalibrationMeter(self.num_classes, self.n_bins, self.ignore_index, self.fine_bins, self.classwise)
        per_row = max(1, math.prod(pixel_shape[1:]))
        step = max(1, (1 << 18) // per_row)
        with torch.no_grad():
            for start in range(0, probs.shape[0], step):
                sl = slice(start, start + step)
                delta._accumulate(probs[sl], target[sl], None if mask is None else mask[sl])
        self.merge(delta)
        return self

    def _accumulate(self, probs: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> None:
        """Add one chunk (already shape-checked) to the counts."""
        _check_prob_values(probs)
        k, m, device = self.num_classes, self.n_bins, probs.device
        target = target.to(device)
        labelled = target != self.ignore_index
        labels = target[labelled]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
            raise ValueError(f"target holds labels outside [0, {k}) other than ignore_index={self.ignore_index}")
        keep = labelled if mask is None else labelled & mask.to(device)
        # (n, K) in the input's precision (float64 stays float64); every sum below is accumulated in float64
        work = torch.float64 if probs.dtype == torch.float64 else torch.float32
        p = probs.movedim(1, -1)[keep].to(work).clamp_(0, 1)
        if p.shape[0] == 0:
            return
        y = target[keep].long()
        conf_w, pred = p.max(dim=1)
        conf = conf_w.double()
        correct = (pred == y).double()
        p_y = p.gather(1, y[:, None])[:, 0]
        edges = self.edges.to(device)
        classes = torch.arange(k, device=device)

        def hist(index: torch.Tensor, size: int, *weights: torch.Tensor) -> list[np.ndarray]:
            out = [torch.bincount(index, minlength=size).cpu().numpy()]
            return out + [torch.bincount(index, weights=w, minlength=size).cpu().numpy() for w in weights]

        b = _bin_index(conf, edges)
        count, s_conf, s_correct = hist(b, m, conf, correct)
        self._top_count += count
        self._top_conf += s_conf
        self._top_correct += s_correct

        if self.classwise:
            self._accumulate_classwise(p, y, classes)

        t = conf.log() - (1 - conf).clamp(min=1e-7).log()
        scale = self.fine_bins / (self._t_high - self._t_low)
        fine = ((t - self._t_low) * scale).floor().clamp_(0, self.fine_bins - 1).long()
        count, s_conf, s_correct = hist(fine, self.fine_bins, conf, correct)
        self._fine_count += count
        self._fine_conf += s_conf
        self._fine_correct += s_correct

        p_y = p_y.double()
        self._nll += float(-p_y.clamp(min=1e-12).log().sum())
        # Σ_k (p_k - 1[y = k])² = Σ_k p_k² - 2 p_y + 1
        self._brier += float(p.pow(2).sum(dtype=torch.float64) - 2 * p_y.sum() + p.shape[0])
        self._n += int(p.shape[0])
        self._n_correct += int(correct.sum())

    def _accumulate_classwise(self, p: torch.Tensor, y: torch.Tensor, classes: torch.Tensor) -> None:
        """Add the per-class bins of SCE and ACE; the hits of class k are the pixels labelled k (n, not n*K, of them)."""
        k, m = self.num_classes, self.n_bins

        def hist(index: torch.Tensor, size: int, *weights: torch.Tensor) -> list[np.ndarray]:
            out = [torch.bincount(index, minlength=size).cpu().numpy()]
            return out + [torch.bincount(index, weights=w, minlength=size).cpu().numpy() for w in weights]

        p_flat = p.flatten().double()
        cls_bin = (p * m).ceil_().sub_(1).clamp_(0, m - 1).long()  # (n, K): bin ((j-1)/M, j/M], arithmetically
        count, s_prob = hist((cls_bin + classes * m).flatten(), k * m, p_flat)
        (s_hit,) = hist(y * m + cls_bin.gather(1, y[:, None])[:, 0], k * m)
        self._cls_count += count.reshape(k, m)
        self._cls_prob += s_prob.reshape(k, m)
        self._cls_hit += s_hit.reshape(k, m)

        pc = p.clamp(1e-12, 1 - 1e-7)
        u = pc.log() - (-pc).log1p()
        uscale = self.fine_bins / (self._t_high - self._u_low)
        cfine = ((u - self._u_low) * uscale).floor().clamp_(0, self.fine_bins - 1).long()
        count, s_prob = hist((cfine + classes * self.fine_bins).flatten(), k * self.fine_bins, p_flat)
        (s_hit,) = hist(y * self.fine_bins + cfine.gather(1, y[:, None])[:, 0], k * self.fine_bins)
        self._cfine_count += count.reshape(k, self.fine_bins)
        self._cfine_prob += s_prob.reshape(k, self.fine_bins)
        self._cfine_hit += s_hit.reshape(k, self.fine_bins)

    def merge(self, other: CalibrationMeter) -> CalibrationMeter:
        """Add the counts of ``other`` (a meter with the same settings) to this one; return self."""
        if not isinstance(other, CalibrationMeter):
            raise TypeError(f"other must be a CalibrationMeter, got {type(other).__name__}")
        mine = (self.num_classes, self.n_bins, self.ignore_index, self.fine_bins, self.classwise)
        theirs = (other.num_classes, other.n_bins, other.ignore_index, other.fine_bins, other.classwise)
        if mine != theirs:
            raise ValueError(f"other must have the same (num_classes, n_bins, ignore_index, fine_bins, classwise) "
                             f"{mine}, got {theirs}")
        self._n += other._n
        self._n_correct += other._n_correct
        self._nll += other._nll
        self._brier += other._brier
        for name in ("top_count", "top_conf", "top_correct", "cls_count", "cls_prob", "cls_hit",
                     "fine_count", "fine_conf", "fine_correct", "cfine_count", "cfine_prob", "cfine_hit"):
            getattr(self, "_" + name).__iadd__(getattr(other, "_" + name))
        return self

    def accuracy(self) -> float:
        """Return the fraction of counted pixels whose top-label prediction is right."""
        return self._n_correct / self._n if self._n else float("nan")

    def ece(self) -> float:
        """Return the expected calibration error over ``n_bins`` equal-width bins of the confidence."""
        # Σ_m (n_m / n) |acc_m - conf_m| = Σ_m |Σ_{i in m} correct_i - Σ_{i in m} c_i| / n; empty bins add 0
        return float(np.abs(self._top_correct - self._top_conf).sum() / self._n) if self._n else float("nan")

    def ece_em(self) -> float:
        """Return the top-label ECE over ``n_bins`` bins of equal mass (exact up to one fine bin)."""
        if not self._n:
            return float("nan")
        return _equal_mass_gap(self._fine_count, self._fine_conf, self._fine_correct, self.n_bins, self._n)

    def _need_classwise(self, name: str) -> None:
        if not self.classwise:
            raise ValueError(f"{name} needs the class-wise bins: make the meter with classwise=True (the default)")

    def ace(self) -> float:
        """Return Nixon et al.'s adaptive calibration error: class-wise, ``n_bins`` equal-mass ranges per class."""
        self._need_classwise("ACE")
        if not self._n:
            return float("nan")
        gaps = [_equal_mass_gap(self._cfine_count[k], self._cfine_prob[k], self._cfine_hit[k], self.n_bins, self._n)
                for k in range(self.num_classes)]  # fmt: skip
        return float(np.mean(gaps))

    def mce(self, min_count: int = 100) -> float:
        """Return the maximum |accuracy - confidence| over the equal-width bins holding >= ``min_count`` pixels."""
        _check_int(min_count, "min_count", 1)
        full = self._top_count >= min_count
        if not full.any():
            return float("nan")
        n = self._top_count[full]
        return float(np.abs(self._top_correct[full] / n - self._top_conf[full] / n).max())

    def sce(self) -> float:
        """Return the static (classwise) calibration error: equal-width bins of every class's probability."""
        self._need_classwise("SCE")
        if not self._n:
            return float("nan")
        return float(np.abs(self._cls_hit - self._cls_prob).sum() / (self.num_classes * self._n))

    def nll(self) -> float:
        """Return the mean negative log-likelihood (nats) of the labels, probabilities clamped at 1e-12."""
        return self._nll / self._n if self._n else float("nan")

    def brier(self) -> float:
        """Return the mean Brier score Σ_k (p_k - 1[y = k])², summed over classes (range [0, 2], not divided by K)."""
        return self._brier / self._n if self._n else float("nan")

    def reliability(self) -> ReliabilityBins:
        """Return the equal-width bins of a reliability diagram (NaN confidence and accuracy in empty bins)."""
        count = self._top_count.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            nonzero = np.where(count > 0, count, 1)
            confidence = np.where(count > 0, self._top_conf / nonzero, np.nan)
            accuracy = np.where(count > 0, self._top_correct / nonzero, np.nan)
        return ReliabilityBins(self.edges.numpy().copy(), confidence, accuracy, count)

    def summary(self) -> dict[str, float]:
        """Return ``ece, ece_em, ace, mce, sce, nll, brier, accuracy, count`` (MCE with its default ``min_count``)."""
        return {
            "ece": self.ece(),
            "ece_em": self.ece_em(),
            "ace": self.ace() if self.classwise else float("nan"),
            "mce": self.mce(),
            "sce": self.sce() if self.classwise else float("nan"),
            "nll": self.nll(),
            "brier": self.brier(),
            "accuracy": self.accuracy(),
            "count": self.count,
        }


def calibration_report(
    probs: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    n_bins: int = 15,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, float]:
    """Return :meth:`CalibrationMeter.summary` of one batch of probabilities ``(B, K, H, W)`` (streamed in chunks)."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    _check_probs(probs, probs.shape[1] if probs.ndim in (2, 4) else -1)
    return CalibrationMeter(probs.shape[1], n_bins, ignore_index).update(probs, target, mask).summary()

