"""Segmentation metrics: confusion matrix, IoU, accuracy, NLL, pixel masks, and scores of uncertainty.

All functions honour an ignore index (pixels labelled :data:`utils.config.IGNORE_INDEX` count
nowhere) and work on any number of classes.

Scores of uncertainty follow one convention: a *score* is larger where the model should be less
sure (``1 - max-softmax``, entropy, mutual information), and an AUROC asks how well it ranks the
*positive* pixels (misclassified, or out-of-distribution) above the others. Hendrycks & Gimpel
rank the mirror image (correct pixels by max-softmax); the AUROC is the same number.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import IGNORE_INDEX, NUM_CLASSES

__all__ = [
    "auroc",
    "boundary_mask",
    "confusion_matrix",
    "digit_accuracy",
    "iou_per_class",
    "masked_mean",
    "max_softmax",
    "mean_iou",
    "misclassification_auroc",
    "nll",
    "ood_auroc",
    "pixel_accuracy",
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


def _flat_scores(score: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a float ``score`` and a bool ``positive`` of one shape; return both flattened, on the CPU."""
    _check_pixels(score, "score")
    _check_pixels(positive, "positive", score.shape)
    if positive.dtype != torch.bool:
        raise TypeError(f"positive must be a bool tensor, got dtype {positive.dtype}")
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
