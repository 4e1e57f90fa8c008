"""Segmentation metrics: confusion matrix, IoU, accuracy, NLL, pixel masks, and scores of uncertainty.

All functions honour an ignore index (pixels labelled :data:`utils.config.IGNORE_INDEX` count
nowhere) and work on any number of classes.

Scores of uncertainty follow one convention: a *score* is larger where the model should be less
sure (``1 - max-softmax``, entropy, mutual information), and an AUROC asks how well it ranks the
*positive* pixels (misclassified, or out-of-distribution) above the others. Hendrycks & Gimpel
rank the mirror image (correct pixels by max-softmax); the AUROC is the same number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import IGNORE_INDEX, NUM_CLASSES

__all__ = [
    "CalibrationMeter",
    "DetectionMeter",
    "PAvPUMeter",
    "ReliabilityBins",
    "aupr",
    "aurc",
    "auroc",
    "boundary_mask",
    "calibration_report",
    "confusion_matrix",
    "detection_report",
    "digit_accuracy",
    "fpr_at_tpr",
    "iou_per_class",
    "masked_mean",
    "max_softmax",
    "mean_iou",
    "misclassification_auroc",
    "nll",
    "ood_auroc",
    "pavpu",
    "pixel_accuracy",
    "risk_coverage",
    "roc_curve",
]


def _check_label_map(t: torch.Tensor, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer label map, got dtype {t.dtype}")


def _check_logits(logits: torch.Tensor, name: str = "logits") -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if logits.ndim != 4:
        raise ValueError(f"{name} must have shape (B, K, H, W), got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {logits.dtype}")


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Return the ``(K, K)`` int64 confusion matrix, rows = true class, columns = predicted class."""
    _check_label_map(pred, "pred")
    _check_label_map(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    for name, v in (("target", t), ("pred", p)):
        if v.numel() and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside [0, {num_classes}) other than ignore_index={ignore_index}")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(conf: torch.Tensor) -> torch.Tensor:
    """Return per-class IoU from a confusion matrix (NaN for a class absent from both target and prediction)."""
    if not isinstance(conf, torch.Tensor) or conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"conf must be a square (K, K) tensor, got {getattr(conf, 'shape', type(conf))}")
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(conf: torch.Tensor) -> float:
    """Return the mean IoU over the classes present in target or prediction."""
    iou = iou_per_class(conf)
    return float(iou[~iou.isnan()].mean()) if (~iou.isnan()).any() else float("nan")


def pixel_accuracy(conf: torch.Tensor) -> float:
    """Return the fraction of (non-ignored) pixels whose predicted class is right."""
    total = conf.sum()
    return float(conf.diag().sum() / total) if total > 0 else float("nan")


def digit_accuracy(pred: torch.Tensor, instances: torch.Tensor, digits: list[list[int]]) -> float:
    """Return the fraction of digit instances whose pixels are labelled, by majority, with the right digit.

    ``pred`` and ``instances`` are ``(N, H, W)`` maps; instance ``j + 1`` of scene ``n`` is digit
    ``digits[n][j]``. An instance's label is the most frequent *digit* class predicted on its pixels;
    an instance predicted entirely as background counts as wrong.
    """
    _check_label_map(pred, "pred")
    _check_label_map(instances, "instances")
    if pred.shape != instances.shape or pred.ndim != 3:
        raise ValueError(f"pred and instances must both be (N, H, W), got {tuple(pred.shape)}, {tuple(instances.shape)}")
    if len(digits) != pred.shape[0]:
        raise ValueError(f"digits must list one entry per scene ({pred.shape[0]}), got {len(digits)}")
    right = total = 0
    for n, scene_digits in enumerate(digits):
        for j, digit in enumerate(scene_digits):
            votes = pred[n][instances[n] == j + 1]
            total += 1
            if votes.numel() == 0:
                continue
            counts = torch.bincount(votes.long(), minlength=NUM_CLASSES)[1:]
            right += int(counts.sum() > 0 and int(counts.argmax()) == digit)
    if total == 0:
        raise ValueError("digits lists no digit instances")
    return right / total


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Return the per-pixel maximum softmax probability ``(B, H, W)`` of logits ``(B, K, H, W)``."""
    _check_logits(logits)
    return logits.float().softmax(dim=1).amax(dim=1)


def nll(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Return the mean per-pixel negative log-likelihood (nats) of ``target`` under ``softmax(logits)``."""
    _check_logits(logits)
    _check_label_map(target, "target")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"target must be (B, H, W) matching logits {tuple(logits.shape)}, got {tuple(target.shape)}")
    if not (target != ignore_index).any():
        return float("nan")
    return float(F.cross_entropy(logits.float(), target.long(), ignore_index=ignore_index))


def boundary_mask(label: torch.Tensor, width: int = 1) -> torch.Tensor:
    """Return a boolean mask of pixels within ``width`` pixels (chessboard distance) of a label change."""
    _check_label_map(label, "label")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    squeeze = label.ndim == 2
    if squeeze:
        label = label[None]
    if label.ndim != 3:
        raise ValueError(f"label must be (H, W) or (N, H, W), got {tuple(label.shape)}")
    x = label[:, None].float()
    k = 2 * width + 1
    hi = F.max_pool2d(x, k, stride=1, padding=width)
    lo = -F.max_pool2d(-x, k, stride=1, padding=width)
    out = (hi != lo)[:, 0]
    return out[0] if squeeze else out


def _check_pixels(t: torch.Tensor, name: str, shape: torch.Size | None = None) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if shape is not None and t.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def _flat_scores(
    score: torch.Tensor, positive: torch.Tensor, name: str = "positive"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a float ``score`` and a bool ``positive`` (named ``name``) of one shape; return both flat, on the CPU."""
    _check_pixels(score, "score")
    _check_pixels(positive, name, score.shape)
    if positive.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got dtype {positive.dtype}")
    if not score.is_floating_point():
        raise TypeError(f"score must be floating point, got dtype {score.dtype}")
    s = score.detach().flatten().double().cpu()
    if torch.isnan(s).any():
        raise ValueError("score holds NaN values")
    return s, positive.detach().flatten().cpu()


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


# --- validation helpers of the calibration, detection and selective-prediction metrics ----------------------


def _check_int(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_fraction(value: object, name: str, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not ((0 < value) if low_open else (0 <= value)) or value > 1:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def _check_mask(mask: torch.Tensor | None, shape: torch.Size, name: str = "mask") -> None:
    if mask is None:
        return
    _check_pixels(mask, name, shape)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got dtype {mask.dtype}")


def _check_probs(probs: torch.Tensor, num_classes: int) -> None:
    """Check the shape and dtype of ``probs``: ``(B, K, H, W)`` or ``(N, K)`` floating point, K == ``num_classes``."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim not in (2, 4):
        raise ValueError(f"probs must have shape (B, K, H, W) or (N, K), got {tuple(probs.shape)}")
    if not probs.is_floating_point():
        raise TypeError(f"probs must be floating point probabilities, got dtype {probs.dtype}")
    if probs.shape[1] != num_classes:
        raise ValueError(f"probs must have num_classes={num_classes} entries along dim 1, got {tuple(probs.shape)}")


def _check_prob_values(p: torch.Tensor) -> None:
    """Check that ``p`` (classes along dim 1) holds finite probabilities in [0, 1] summing to 1 over dim 1."""
    if p.numel() == 0:
        return
    if not torch.isfinite(p).all():
        raise ValueError("probs holds NaN or infinite values")
    if float(p.min()) < -1e-6 or float(p.max()) > 1 + 1e-6:
        raise ValueError(f"probs must lie in [0, 1], got values in [{float(p.min()):.3g}, {float(p.max()):.3g}]")
    err = float((p.sum(dim=1, dtype=torch.float32) - 1).abs().max())
    if err > 1e-3:
        raise ValueError(f"probs must sum to 1 over dim 1 (classes), but a pixel is off by {err:.3g}")


# --- calibration ---------------------------------------------------------------------------------------------


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
    """Stream pixels' probabilities and labels into binned counts; read ECE, ACE, MCE, SCE, NLL and Brier off them.

    Pixels are never stored, only per-bin sums (float64 and int64, on the CPU), so any number of pixels can
    be fed in batches from the CPU or a GPU. For each pixel i with probabilities p_i, label y_i, prediction
    ŷ_i = argmax p_i and confidence c_i = max p_i:

    * ECE (Guo et al. 2017): bin m = ((m-1)/M, m/M] of c (c = 0 goes in bin 1),
      ECE = Σ_m (n_m/n) |acc_m - conf_m|; empty bins are skipped.
    * ACE (Nixon et al. 2019): the same sum over M bins of equal mass (equal pixel counts). Pixel of rank r
      (0-based, by increasing confidence) goes in bin floor(r M / n). The ranks come from a fine histogram
      of t = log(c / (1 - c)) (1 - c clamped at 1e-7) with ``fine_bins`` equal-width bins between
      logit(1/K) and logit(1 - 1e-7) ≈ 16.1: segmentation confidences pile up near 1, where the logit
      scale keeps them apart. A whole fine bin goes in the bin of its first pixel, so the edges of the
      equal-mass bins are exact up to one fine bin.
    * MCE: max_m |acc_m - conf_m| over the equal-width bins holding at least ``min_count`` pixels.
    * SCE (Nixon et al. 2019): every class's probability, not just the top one: equal-width bins b of p_k
      for each class k, SCE = (1/K) Σ_k Σ_b (n_{b,k}/n) |acc(b,k) - conf(b,k)| with
      acc(b,k) = mean of 1[y = k] and conf(b,k) = mean of p_k over the pixels in bin b of class k.
    * NLL = mean of -log(max(p_{i,y_i}, 1e-12)) (nats).
    * Brier = mean of Σ_k (p_ik - 1[y_i = k])², summed over the classes, in [0, 2]
      (Lakshminarayanan et al. 2017 also divide by K).

    Pixels labelled ``ignore_index`` count nowhere; every method returns NaN while no pixel is counted.
    """

    def __init__(
        self, num_classes: int = NUM_CLASSES, n_bins: int = 15, ignore_index: int = IGNORE_INDEX, fine_bins: int = 4096
    ) -> None:
        self.num_classes = _check_int(num_classes, "num_classes", 1)
        self.n_bins = _check_int(n_bins, "n_bins", 1)
        self.fine_bins = _check_int(fine_bins, "fine_bins", 1)
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = ignore_index
        self.edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        # range of the logit of the confidence: c >= 1/K, and 1 - c is clamped at 1e-7
        k = num_classes
        self._t_low = (math.log(1 / (k - 1)) if k > 1 else 0.0) - 1e-6
        self._t_high = math.log(1 / 1e-7) + 1e-6
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
        delta = CalibrationMeter(self.num_classes, self.n_bins, self.ignore_index, self.fine_bins)
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
        p = probs.movedim(1, -1)[keep].double().clamp_(0, 1)  # (n, K)
        if p.shape[0] == 0:
            return
        y = target[keep].long()
        onehot = F.one_hot(y, k).double()
        conf, pred = p.max(dim=1)
        correct = (pred == y).double()
        edges = self.edges.to(device)

        def hist(index: torch.Tensor, size: int, *weights: torch.Tensor) -> list[np.ndarray]:
            out = [torch.bincount(index, minlength=size).cpu().numpy()]
            return out + [torch.bincount(index, weights=w, minlength=size).cpu().numpy() for w in weights]

        b = _bin_index(conf, edges)
        count, s_conf, s_correct = hist(b, m, conf, correct)
        self._top_count += count
        self._top_conf += s_conf
        self._top_correct += s_correct

        bk = (_bin_index(p, edges) + torch.arange(k, device=device) * m).flatten()
        count, s_prob, s_hit = hist(bk, k * m, p.flatten(), onehot.flatten())
        self._cls_count += count.reshape(k, m)
        self._cls_prob += s_prob.reshape(k, m)
        self._cls_hit += s_hit.reshape(k, m)

        t = conf.log() - (1 - conf).clamp(min=1e-7).log()
        scale = self.fine_bins / (self._t_high - self._t_low)
        fine = ((t - self._t_low) * scale).floor().clamp_(0, self.fine_bins - 1).long()
        count, s_conf, s_correct = hist(fine, self.fine_bins, conf, correct)
        self._fine_count += count
        self._fine_conf += s_conf
        self._fine_correct += s_correct

        p_y = (p * onehot).sum(dim=1)
        self._nll += float(-p_y.clamp(min=1e-12).log().sum())
        self._brier += float(((p - onehot) ** 2).sum())
        self._n += int(p.shape[0])
        self._n_correct += int(correct.sum())

    def merge(self, other: CalibrationMeter) -> CalibrationMeter:
        """Add the counts of ``other`` (a meter with the same settings) to this one; return self."""
        if not isinstance(other, CalibrationMeter):
            raise TypeError(f"other must be a CalibrationMeter, got {type(other).__name__}")
        mine = (self.num_classes, self.n_bins, self.ignore_index, self.fine_bins)
        theirs = (other.num_classes, other.n_bins, other.ignore_index, other.fine_bins)
        if mine != theirs:
            raise ValueError(f"other must have the same (num_classes, n_bins, ignore_index, fine_bins) {mine}, "
                             f"got {theirs}")
        self._n += other._n
        self._n_correct += other._n_correct
        self._nll += other._nll
        self._brier += other._brier
        for name in ("top_count", "top_conf", "top_correct", "cls_count", "cls_prob", "cls_hit",
                     "fine_count", "fine_conf", "fine_correct"):
            getattr(self, "_" + name).__iadd__(getattr(other, "_" + name))
        return self

    def accuracy(self) -> float:
        """Return the fraction of counted pixels whose top-label prediction is right."""
        return self._n_correct / self._n if self._n else float("nan")

    def ece(self) -> float:
        """Return the expected calibration error over ``n_bins`` equal-width bins of the confidence."""
        # Σ_m (n_m / n) |acc_m - conf_m| = Σ_m |Σ_{i in m} correct_i - Σ_{i in m} c_i| / n; empty bins add 0
        return float(np.abs(self._top_correct - self._top_conf).sum() / self._n) if self._n else float("nan")

    def ace(self) -> float:
        """Return the adaptive calibration error over ``n_bins`` bins of equal mass (exact up to one fine bin)."""
        if not self._n:
            return float("nan")
        count = self._fine_count
        before = np.cumsum(count) - count  # pixels in the fine bins below
        group = np.minimum(self.n_bins * before // self._n, self.n_bins - 1)
        s_conf = np.bincount(group, weights=self._fine_conf, minlength=self.n_bins)
        s_correct = np.bincount(group, weights=self._fine_correct, minlength=self.n_bins)
        return float(np.abs(s_correct - s_conf).sum() / self._n)

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
        """Return ``ece, ace, mce, sce, nll, brier, accuracy, count`` (MCE with its default ``min_count``)."""
        return {
            "ece": self.ece(),
            "ace": self.ace(),
            "mce": self.mce(),
            "sce": self.sce(),
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


# --- detection: ranking positives (misclassified or OOD pixels) first -------------------------------------------


def _tie_groups(s: torch.Tensor, flag: torch.Tensor, descending: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort by score and return, per group of tied scores in that order, the float64 counts of flagged and others."""
    order = torch.argsort(s, descending=descending, stable=True)
    s, flag = s[order], flag[order]
    _, counts = torch.unique_consecutive(s, return_counts=True)
    ends = counts.cumsum(0) - 1
    flagged = flag.double().cumsum(0)[ends]
    flagged = torch.diff(flagged, prepend=flagged.new_zeros(1))
    return flagged, counts.double() - flagged


def _auroc_groups(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """AUROC from per-group counts in increasing score order (ties within a group count one half)."""
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = neg.cumsum(0) - neg
    return float((pos * (below + neg / 2)).sum() / (n_pos * n_neg))


def _ap_groups(tp: torch.Tensor, fp: torch.Tensor) -> float:
    """Average precision from per-group counts in decreasing score order: Σ_g (recall_g - recall_{g-1}) precision_g."""
    n_pos, n_neg = float(tp.sum()), float(fp.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ctp, cfp = tp.cumsum(0), fp.cumsum(0)
    precision = torch.where(tp > 0, ctp / (ctp + cfp).clamp(min=1), torch.zeros_like(ctp))
    return float((tp * precision).sum() / n_pos)


def _fpr_at_tpr_groups(tp: torch.Tensor, fp: torch.Tensor, tpr: float) -> float:
    """FPR at the first ROC point (per-group counts in decreasing score order) whose TPR reaches ``tpr``."""
    n_pos, n_neg = float(tp.sum()), float(fp.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    reached = tp.cumsum(0) / n_pos >= tpr - 1e-12
    first = int(reached.nonzero()[0, 0])
    return float(fp.cumsum(0)[first] / n_neg)


def _harmonic_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return H(b) - H(a) = Σ_{j=a+1}^{b} 1/j for float64 integer-valued tensors (H = harmonic numbers)."""
    return torch.special.digamma(b + 1) - torch.special.digamma(a + 1)


def _aurc_groups(err: torch.Tensor, ok: torch.Tensor) -> dict[str, float]:
    """AURC, its optimum, E-AURC and the error rate from per-group counts in increasing uncertainty order.

    A group of s tied pixels with e errors, entered after k0 pixels with E0 errors, has expected risk
    (E0 + j e/s) / (k0 + j) at its j-th pixel when the tie is broken at random; summed over j this is
    e + (E0 - k0 e/s) (H(k0 + s) - H(k0)).
    """
    size = err + ok
    n, n_err = float(size.sum()), float(err.sum())
    if n == 0:
        return {"aurc": float("nan"), "optimal": float("nan"), "e_aurc": float("nan"), "risk": float("nan")}
    err, size = err[size > 0], size[size > 0]
    k0 = size.cumsum(0) - size
    e0 = err.cumsum(0) - err
    total = (err + (e0 - k0 * err / size) * _harmonic_diff(k0, k0 + size)).sum()
    aurc_value = float(total / n)
    n_ok = n - n_err
    t = torch.tensor([n_ok], dtype=torch.float64)
    optimal = float((n_err - n_ok * _harmonic_diff(t, t + n_err)) / n) if n_err > 0 else 0.0
    return {"aurc": aurc_value, "optimal": optimal, "e_aurc": aurc_value - optimal, "risk": n_err / n}


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


# --- selective prediction: risk versus coverage ---------------------------------------------------------------


def risk_coverage(
    score: torch.Tensor, error: torch.Tensor, max_points: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the risk-coverage curve ``(coverage, selective risk)`` of keeping the pixels with the lowest ``score``.

    Pixels enter by increasing uncertainty ``score``, tied scores together; one point per distinct score,
    ending at coverage 1 with risk = overall error rate. ``error`` is a bool tensor shaped like ``score``;
    ``max_points`` thins the curve evenly (for plotting) while keeping both ends.
    """
    if max_points is not None and (not isinstance(max_points, int) or max_points < 2):
        raise ValueError(f"max_points must be None or an int >= 2 (both ends are kept), got {max_points!r}")
    s, err = _flat_scores(score, error, "error")
    if s.numel() == 0:
        raise ValueError("score is empty: a risk-coverage curve needs at least one pixel")
    n_err, n_ok = _tie_groups(s, err, descending=False)
    kept = (n_err + n_ok).cumsum(0)
    coverage, risk = kept / s.numel(), n_err.cumsum(0) / kept
    if max_points is not None and len(coverage) > max_points:
        keep = torch.linspace(0, len(coverage) - 1, max_points).round().long().unique()
        coverage, risk = coverage[keep], risk[keep]
    return coverage, risk


def aurc(score: torch.Tensor, error: torch.Tensor) -> dict[str, float]:
    """Return the area under the risk-coverage curve of uncertainty ``score`` for pixels in ``error`` (bool).

    Keys: ``aurc``, the mean selective risk over the n operating points (keep the 1, 2, ..., n least
    uncertain pixels; within tied scores the expected risk of a random order); ``optimal``, the AURC of a
    perfect ranking, (1/n) [n_e - n_c (H(n) - H(n_c))] with harmonic numbers H, n_e errors and n_c correct
    pixels, which is r + (1 - r) ln(1 - r) up to O(r/n) for error rate r; ``e_aurc`` = aurc - optimal
    (0 for a perfect ranking); and ``risk`` = r. All NaN for empty input.
    """
    s, err = _flat_scores(score, error, "error")
    if s.numel() == 0:
        return _aurc_groups(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    return _aurc_groups(*_tie_groups(s, err, descending=False))


# --- streaming ranking metrics on binned scores -----------------------------------------------------------------


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
            index = torch.bucketize(s.double(), self.edges.to(s.device), right=False)
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


# --- PAvPU (Mukhoti & Gal 2018) ----------------------------------------------------------------------------------


def _check_thresholds(thresholds: torch.Tensor | Sequence[float]) -> torch.Tensor:
    if not isinstance(thresholds, torch.Tensor):
        try:
            thresholds = torch.as_tensor(thresholds, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"thresholds must be a 1-D float tensor, got {type(thresholds).__name__}") from exc
    if not thresholds.is_floating_point():
        raise TypeError(f"thresholds must be a 1-D float tensor, got dtype {thresholds.dtype}")
    if thresholds.ndim != 1 or thresholds.numel() == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D tensor, got shape {tuple(thresholds.shape)}")
    if torch.isnan(thresholds).any():
        raise ValueError("thresholds holds NaN values")
    return thresholds.detach().double().cpu()


class PAvPUMeter:
    """Stream patches into the PAvPU counts of Mukhoti & Gal (2018), one set of counts per uncertainty threshold.

    Each image is tiled into non-overlapping ``patch`` × ``patch`` windows. A patch is *accurate* when the
    fraction of its non-ignored pixels that are right is >= ``accuracy_threshold``, and *uncertain* when
    the mean uncertainty over those pixels is >= the threshold; patches without a non-ignored pixel are
    skipped. PAvPU = (n_ac + n_iu) / (n_ac + n_au + n_ic + n_iu), p(accurate | certain) = n_ac / (n_ac + n_ic),
    p(uncertain | inaccurate) = n_iu / (n_ic + n_iu).
    """

    def __init__(
        self,
        thresholds: torch.Tensor | Sequence[float],
        patch: int = 4,
        accuracy_threshold: float = 0.5,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.thresholds = _check_thresholds(thresholds)
        self.patch = _check_int(patch, "patch", 1)
        self.accuracy_threshold = _check_fraction(accuracy_threshold, "accuracy_threshold")
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = ignore_index
        shape = self.thresholds.shape
        self._n_ac, self._n_au = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.int64)
        self._n_ic, self._n_iu = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.int64)

    def update(self, uncertainty: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> PAvPUMeter:
        """Count the patches of ``(B, H, W)`` maps of uncertainty (float), prediction and label; return self."""
        _check_pixels(uncertainty, "uncertainty")
        if not uncertainty.is_floating_point():
            raise TypeError(f"uncertainty must be floating point, got dtype {uncertainty.dtype}")
        if uncertainty.ndim != 3:
            raise ValueError(f"uncertainty must have shape (B, H, W), got {tuple(uncertainty.shape)}")
        for name, t in (("pred", pred), ("target", target)):
            _check_label_map(t, name)
            _check_pixels(t, name, uncertainty.shape)
        b, h, w = uncertainty.shape
        p = self.patch
        if h % p or w % p:
            raise ValueError(f"patch={p} must divide the image height and width, got (H, W) = ({h}, {w})")
        with torch.no_grad():
            u = uncertainty.detach().double()
            target = target.to(u.device)
            valid = target != self.ignore_index
            if torch.isnan(u[valid]).any():
                raise ValueError("uncertainty holds NaN values on non-ignored pixels")
            right = (pred.to(u.device) == target) & valid

            def per_patch(x: torch.Tensor) -> torch.Tensor:
                return x.reshape(b, h // p, p, w // p, p).sum(dim=(2, 4)).flatten()

            n_valid = per_patch(valid.double())
            n_right = per_patch(right.double())
            u_sum = per_patch(torch.where(valid, u, torch.zeros_like(u)))
            used = n_valid > 0
            accurate = (n_right[used] / n_valid[used] >= self.accuracy_threshold).cpu()
            mean_u = (u_sum[used] / n_valid[used]).cpu()
        thr = self.thresholds
        for flag, certain_count, uncertain_count in ((accurate, "_n_ac", "_n_au"), (~accurate, "_n_ic", "_n_iu")):
            sorted_u = mean_u[flag].sort().values
            n_certain = torch.searchsorted(sorted_u, thr, right=False)  # patches with mean uncertainty < threshold
            getattr(self, certain_count).add_(n_certain)
            getattr(self, uncertain_count).add_(sorted_u.numel() - n_certain)
        return self

    def result(self) -> dict[str, torch.Tensor]:
        """Return thresholds, pavpu, p_accurate_given_certain, p_uncertain_given_inaccurate, n_ac, n_au, n_ic, n_iu."""

        def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
            num, den = num.double(), den.double()
            return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(den, float("nan")))

        n_ac, n_au, n_ic, n_iu = self._n_ac, self._n_au, self._n_ic, self._n_iu
        return {
            "thresholds": self.thresholds.clone(),
            "pavpu": ratio(n_ac + n_iu, n_ac + n_au + n_ic + n_iu),
            "p_accurate_given_certain": ratio(n_ac, n_ac + n_ic),
            "p_uncertain_given_inaccurate": ratio(n_iu, n_ic + n_iu),
            "n_ac": n_ac.clone(),
            "n_au": n_au.clone(),
            "n_ic": n_ic.clone(),
            "n_iu": n_iu.clone(),
        }


def pavpu(
    uncertainty: torch.Tensor,
    pred: torch.Tensor,
    target: torch.Tensor,
    thresholds: torch.Tensor | Sequence[float],
    patch: int = 4,
    accuracy_threshold: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, torch.Tensor]:
    """Return the PAvPU counts and ratios of ``(B, H, W)`` maps, one entry per threshold (see :class:`PAvPUMeter`)."""
    return PAvPUMeter(thresholds, patch, accuracy_threshold, ignore_index).update(uncertainty, pred, target).result()
