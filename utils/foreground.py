"""The pixels that matter: scores pooled over all pixels beside the same scores on digit pixels only.

About 91 % of a DigitScenes pixel is background, which the model gets right with near-certainty,
so any score pooled over all pixels mostly measures the background. The helpers here report each
score twice (and, on request, a third time on label-boundary pixels), so that a chapter can give
the foreground number beside the pooled one and say which pooling it uses:

* ``"all"``: every labelled pixel (ignore-index pixels never count);
* ``"digits"``: pixels whose *true* label is a digit (label > 0);
* ``"boundary"``: pixels within ``width`` px of a label change (:func:`utils.metrics.boundary_mask`);
* ``"off_boundary"``: the other labelled pixels.

:func:`pooled_and_digits` scores a predictive distribution (accuracy, mean confidence, ECE, NLL)
with :class:`utils.metrics.CalibrationMeter` and its ``mask=`` argument; :func:`confident_errors`
gives the share of misclassified pixels whose max-softmax is at least a threshold, per pooling.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import IGNORE_INDEX
from .metrics import CalibrationMeter, boundary_mask

__all__ = ["POOLINGS", "confident_errors", "pixel_masks", "pooled_and_digits"]

#: The poolings these helpers know, in the order they report them.
POOLINGS: tuple[str, ...] = ("all", "digits", "boundary", "off_boundary")


def _check_labels(labels: torch.Tensor, name: str = "labels") -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer label map, got dtype {labels.dtype}")
    if labels.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W), got {tuple(labels.shape)}")
    return labels


def _check_poolings(poolings: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if isinstance(poolings, str) or not isinstance(poolings, (tuple, list)) or not poolings:
        raise TypeError(f"poolings must be a non-empty tuple of names from {POOLINGS}, got {poolings!r}")
    unknown = [p for p in poolings if p not in POOLINGS]
    if unknown:
        raise ValueError(f"poolings must be names from {POOLINGS}, got unknown {unknown}")
    return tuple(poolings)


def pixel_masks(
    labels: torch.Tensor,
    poolings: tuple[str, ...] = ("all", "digits"),
    width: int = 1,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, torch.Tensor]:
    """Return one bool mask ``(B, H, W)`` per pooling name of :data:`POOLINGS`; ignore-index pixels are in none."""
    labels = _check_labels(labels)
    poolings = _check_poolings(poolings)
    labelled = labels != ignore_index
    masks: dict[str, torch.Tensor] = {}
    edge = None
    for name in poolings:
        if name == "all":
            masks[name] = labelled
        elif name == "digits":
            masks[name] = labelled & (labels > 0)
        else:
            if edge is None:
                edge = boundary_mask(labels, width=width)
            masks[name] = labelled & (edge if name == "boundary" else ~edge)
    return masks


def pooled_and_digits(
    probs: torch.Tensor,
    labels: torch.Tensor,
    poolings: tuple[str, ...] = ("all", "digits"),
    width: int = 1,
    n_bins: int = 15,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, dict[str, float]]:
    """Return ``{pooling: {accuracy, confidence, ece, nll, count}}`` of probabilities ``(B, K, H, W)`` against ``labels``.

    ``confidence`` is the mean max-probability of the counted pixels (of ``probs`` as given, e.g. the
    predictive mean of MC dropout or an ensemble); ``ece`` uses ``n_bins`` equal-width bins
    (:meth:`utils.metrics.CalibrationMeter.ece`); ``nll`` is in nats. A pooling with no pixel gives NaN.
    """
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim != 4:
        raise ValueError(f"probs must have shape (B, K, H, W), got {tuple(probs.shape)}")
    labels = _check_labels(labels)
    if labels.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f"labels must have shape {tuple(probs.shape[:1] + probs.shape[2:])} to match probs, "
                         f"got {tuple(labels.shape)}")
    out: dict[str, dict[str, float]] = {}
    for name, mask in pixel_masks(labels, poolings, width, ignore_index).items():
        meter = CalibrationMeter(probs.shape[1], n_bins, ignore_index).update(probs, labels, mask=mask)
        bins = meter.reliability()
        count = int(bins.count.sum())
        confidence = float(np.nansum(bins.confidence * bins.count) / count) if count else math.nan
        out[name] = {"accuracy": meter.accuracy(), "confidence": confidence, "ece": meter.ece(),
                     "nll": meter.nll(), "count": meter.count}
    return out


def confident_errors(
    probs: torch.Tensor,
    labels: torch.Tensor,
    threshold: float = 0.9,
    poolings: tuple[str, ...] = ("all", "digits", "off_boundary"),
    width: int = 1,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, dict[str, float]]:
    """Return ``{pooling: {share, errors}}``: the share of misclassified pixels with max-probability >= ``threshold``.

    ``errors`` is the number of misclassified pixels in the pooling (``share`` is NaN where it is 0).
    ``"digits"`` counts errors on pixels whose *true* label is a digit (label > 0).
    """
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim != 4 or probs.shape[1] < 2:
        raise ValueError(f"probs must have shape (B, K, H, W) with K >= 2, got {tuple(probs.shape)}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    labels = _check_labels(labels)
    if labels.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f"labels must have shape {tuple(probs.shape[:1] + probs.shape[2:])} to match probs, "
                         f"got {tuple(labels.shape)}")
    conf, pred = probs.max(dim=1)
    wrong = pred != labels.to(pred.device)
    sure = conf >= threshold
    out: dict[str, dict[str, float]] = {}
    for name, mask in pixel_masks(labels, poolings, width, ignore_index).items():
        errors = wrong & mask.to(wrong.device)
        n = int(errors.sum())
        share = float((sure & errors).sum()) / n if n else math.nan
        out[name] = {"share": share, "errors": n}
    return out
