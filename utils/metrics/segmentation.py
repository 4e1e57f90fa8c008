"""Segmentation scores: confusion matrix, IoU, pixel and digit accuracy, max-softmax, NLL, boundary masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import IGNORE_INDEX
from ._checks import _check_label_map, _check_logits

#: Tolerance of the "these are probabilities, not logits" test: every pixel's values sum to 1 within it.
_PROB_SUM_TOL = 1e-2


def _check_num_classes(num_classes: int | None) -> None:
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int or None (inferred from the labels), got {num_classes!r}")


def _reject_probabilities(logits: torch.Tensor, function: str, instead: str) -> None:
    """Raise ``ValueError`` if ``logits`` look like probabilities: all in [0, 1] and summing to 1 over dim 1.

    Real logits practically never do (they are unbounded and their sum is arbitrary), while passing
    softmax outputs where logits are expected silently applies a second softmax.
    """
    if logits.numel() == 0 or logits.shape[1] < 2:
        return
    if float(logits.min()) < 0 or float(logits.max()) > 1:
        return
    if bool(((logits.sum(1, dtype=torch.float32) - 1).abs() <= _PROB_SUM_TOL).all()):
        raise ValueError(
            f"logits look like probabilities (all values in [0, 1], summing to 1 over dim 1), but {function} "
            f"takes logits and applies the softmax itself; for probabilities use {instead}"
        )


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int | None = None, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Return the ``(K, K)`` int64 confusion matrix, rows = true class, columns = predicted class.

    Pixels whose target is ``ignore_index`` count nowhere. With ``num_classes=None``, ``K`` is the
    largest label in ``target`` or ``pred`` (on the counted pixels) plus one, as ``calibration_report``
    takes ``K`` from its input; mIoU and pixel accuracy over the present classes do not depend on
    ``K``. Pass ``num_classes`` to get every class's row (for example to add up matrices of several
    batches, or when the last classes may be absent).
    """
    _check_label_map(pred, "pred")
    _check_label_map(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    _check_num_classes(num_classes)
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if num_classes is None:
        if p.numel() and bool((p == ignore_index).any()):
            raise ValueError(
                f"pred holds ignore_index={ignore_index} on pixels whose target is counted; "
                f"pass num_classes if {ignore_index} is a real class"
            )
        num_classes = int(torch.cat([t, p]).max()) + 1 if t.numel() else 0
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


def digit_accuracy(
    pred: torch.Tensor, instances: torch.Tensor, digits: list[list[int]], num_classes: int | None = None
) -> float:
    """Return the fraction of digit instances whose most frequent non-background predicted label is their digit.

    ``pred`` and ``instances`` are ``(N, H, W)`` maps; instance ``j + 1`` of scene ``n`` is digit
    ``digits[n][j]``, which is class ``digit + 1`` (class 0 is the background). An instance's label is
    the most frequent *non-background* class predicted on its pixels; an instance predicted entirely
    as background counts as wrong. Any number of classes works; with ``num_classes`` given, ``pred``
    and ``digits`` are checked against it (``pred`` in ``[0, K)``, digits in ``[0, K - 1)``).
    """
    _check_label_map(pred, "pred")
    _check_label_map(instances, "instances")
    if pred.shape != instances.shape or pred.ndim != 3:
        raise ValueError(f"pred and instances must both be (N, H, W), got {tuple(pred.shape)}, {tuple(instances.shape)}")
    if len(digits) != pred.shape[0]:
        raise ValueError(f"digits must list one entry per scene ({pred.shape[0]}), got {len(digits)}")
    _check_num_classes(num_classes)
    if pred.numel() and int(pred.min()) < 0:
        raise ValueError(f"pred must hold class labels >= 0, got {int(pred.min())}")
    if num_classes is not None:
        if pred.numel() and int(pred.max()) >= num_classes:
            raise ValueError(f"pred holds labels outside [0, {num_classes}): {int(pred.max())}")
        wrong = [d for scene in digits for d in scene if not 0 <= d < num_classes - 1]
        if wrong:
            raise ValueError(f"digits must be in [0, {num_classes - 1}) for num_classes={num_classes}, got {wrong[:5]}")
    right = total = 0
    for n, scene_digits in enumerate(digits):
        for j, digit in enumerate(scene_digits):
            votes = pred[n][instances[n] == j + 1]
            total += 1
            if votes.numel() == 0:
                continue
            counts = torch.bincount(votes.long())[1:]  # votes per non-background class
            right += int(counts.sum() > 0 and int(counts.argmax()) == digit)
    if total == 0:
        raise ValueError("digits lists no digit instances")
    return right / total


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Return the per-pixel maximum softmax probability ``(B, H, W)`` of *logits* ``(B, K, H, W)``.

    It applies the softmax itself. For probabilities (for example ``Predictive.probs``) take
    ``probs.amax(1)`` (``Predictive.max_softmax`` does); probabilities passed here raise ``ValueError``.
    """
    _check_logits(logits)
    _reject_probabilities(logits, "max_softmax", "probs.amax(1) (or Predictive.max_softmax)")
    return logits.float().softmax(dim=1).amax(dim=1)


def nll(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Return the mean per-pixel negative log-likelihood (nats) of ``target`` under ``softmax(logits)``.

    It takes *logits*; for probabilities use ``calibration_report(probs, target)["nll"]``
    (probabilities passed here raise ``ValueError``).
    """
    _check_logits(logits)
    _check_label_map(target, "target")
    _reject_probabilities(logits, "nll", 'metrics.calibration_report(probs, target)["nll"]')
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
