"""Segmentation scores: confusion matrix, IoU, pixel and digit accuracy, max-softmax, NLL, boundary masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import IGNORE_INDEX, NUM_CLASSES
from ._checks import _check_label_map, _check_logits

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
