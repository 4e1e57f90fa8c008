"""The pixels that matter: scores pooled over all pixels beside the same scores on digit pixels only.

About 91 % of a DigitScenes pixel is background, which the model gets right with near-certainty,
so any score pooled over all pixels mostly measures the background. The helpers here report each
score twice (and, on request, a third time on label-boundary pixels), so that a chapter can give
the foreground number beside the pooled one and say which pooling it uses:

* ``"all"``: every labelled pixel (ignore-index pixels never count);
* ``"digits"``: pixels whose *true* label is a digit, i.e. not the background class (``background=0``
  for DigitScenes; pass another class for other data);
* ``"boundary"``: pixels within ``width`` px of a label change (:func:`utils.metrics.boundary_mask`);
* ``"off_boundary"``: the other labelled pixels.

:func:`pooled_and_digits` scores a predictive distribution (accuracy, mean confidence, ECE, NLL)
per pooling, with the equal-width bins of :class:`utils.metrics.CalibrationMeter` (the unit tests
check it against the meter's ``mask=`` argument); :func:`confident_errors`
gives the share of misclassified pixels whose max-softmax is at least a threshold, per pooling.

A spread for comparing methods on the same scenes: :func:`scene_resamples` draws bootstrap resamples
of the scenes (with replacement, seeded); :func:`bootstrap_calibration` and :func:`bootstrap_miou`
score every resample from per-scene sums (the binned calibration sums of :mod:`utils.spread`,
confusion matrices), so a thousand resamples cost little more than one evaluation. Scoring several methods with the *same*
resamples gives paired differences, whose percentile interval says whether a gap is separated.
"""

from __future__ import annotations

import math

import torch

from .config import IGNORE_INDEX, NUM_CLASSES
from . import spread
from .metrics import boundary_mask, mean_iou
from .metrics._checks import _check_background, _check_label_map

__all__ = [
    "POOLINGS",
    "bootstrap_calibration",
    "bootstrap_miou",
    "confident_errors",
    "interval",
    "pixel_masks",
    "pooled_and_digits",
    "scene_resamples",
]

#: The poolings these helpers know, in the order they report them.
POOLINGS: tuple[str, ...] = ("all", "digits", "boundary", "off_boundary")


def _check_labels(labels: torch.Tensor, name: str = "labels") -> torch.Tensor:
    _check_label_map(labels, name)
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
    background: int = 0,
) -> dict[str, torch.Tensor]:
    """Return one bool mask ``(B, H, W)`` per pooling name of :data:`POOLINGS`; ignore-index pixels are in none."""
    labels = _check_labels(labels)
    poolings = _check_poolings(poolings)
    background = _check_background(background)
    labelled = labels != ignore_index
    masks: dict[str, torch.Tensor] = {}
    edge = None
    for name in poolings:
        if name == "all":
            masks[name] = labelled
        elif name == "digits":
            masks[name] = labelled & (labels != background)
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
    background: int = 0,
) -> dict[str, dict[str, float]]:
    """Return ``{pooling: {accuracy, confidence, ece, nll, count}}`` of probabilities ``(B, K, H, W)`` against ``labels``.

    ``confidence`` is the mean max-probability of the counted pixels (of ``probs`` as given, e.g. the
    predictive mean of MC dropout or an ensemble); ``ece`` uses the ``n_bins`` equal-width bins of
    :meth:`utils.metrics.CalibrationMeter.ece` (the same numbers, from per-scene bin sums, which is
    faster than the meter's full set of statistics); ``nll`` is in nats. A pooling with no pixel
    gives NaN.
    """
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim != 4:
        raise ValueError(f"probs must have shape (B, K, H, W), got {tuple(probs.shape)}")
    labels = _check_labels(labels)
    if labels.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f"labels must have shape {tuple(probs.shape[:1] + probs.shape[2:])} to match probs, "
                         f"got {tuple(labels.shape)}")
    identity = torch.arange(probs.shape[0])[None]
    scores = bootstrap_calibration(probs, labels, identity, poolings, width, n_bins, ignore_index, background)
    masks = pixel_masks(labels, poolings, width, ignore_index, background)
    counts = {name: int(mask.sum()) for name, mask in masks.items()}
    out: dict[str, dict[str, float]] = {}
    for name, values in scores.items():
        out[name] = {key: float(v[0]) for key, v in values.items()} | {"count": counts[name]}
    return out


def confident_errors(
    probs: torch.Tensor,
    labels: torch.Tensor,
    threshold: float = 0.9,
    poolings: tuple[str, ...] = ("all", "digits", "off_boundary"),
    width: int = 1,
    ignore_index: int = IGNORE_INDEX,
    background: int = 0,
) -> dict[str, dict[str, float]]:
    """Return ``{pooling: {share, errors}}``: the share of misclassified pixels with max-probability >= ``threshold``.

    ``errors`` is the number of misclassified pixels in the pooling (``share`` is NaN where it is 0).
    ``"digits"`` counts errors on pixels whose *true* label is a digit (not ``background``).
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
    for name, mask in pixel_masks(labels, poolings, width, ignore_index, background).items():
        errors = wrong & mask.to(wrong.device)
        n = int(errors.sum())
        share = float((sure & errors).sum()) / n if n else math.nan
        out[name] = {"share": share, "errors": n}
    return out


def _check_probs_labels(probs: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim != 4 or not probs.is_floating_point():
        raise ValueError(f"probs must be floating point of shape (B, K, H, W), got {probs.dtype} {tuple(probs.shape)}")
    _check_labels(labels)
    if labels.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f"labels must have shape {tuple(probs.shape[:1] + probs.shape[2:])} to match probs, "
                         f"got {tuple(labels.shape)}")


def scene_resamples(n_scenes: int, n_resamples: int = 1000, seed: int = 0) -> torch.Tensor:
    """Return ``(n_resamples, n_scenes)`` scene indices drawn with replacement (seeded): :func:`utils.spread.scene_draws`."""
    return spread.scene_draws(n_scenes, n_resamples, seed)


def interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """Return the central percentile interval ``(low, high)`` holding ``level`` of ``values``: :func:`utils.spread.interval`."""
    return spread.interval(values, level)


def bootstrap_calibration(
    probs: torch.Tensor,
    labels: torch.Tensor,
    resamples: torch.Tensor,
    poolings: tuple[str, ...] = ("all", "digits"),
    width: int = 1,
    n_bins: int = 15,
    ignore_index: int = IGNORE_INDEX,
    background: int = 0,
) -> dict[str, dict[str, torch.Tensor]]:
    """Return ``{pooling: {accuracy, confidence, ece, nll}}``, each a float64 tensor with one value per resample.

    ``resamples`` ``(R, n)`` holds scene indices (:func:`scene_resamples`); a resample's score is that of
    the pixels of its scenes, a scene drawn twice counting twice. The per-scene sums are
    :func:`utils.spread.calibration_sums` (the equal-width bins of :class:`utils.metrics.CalibrationMeter`),
    so the identity resample ``arange(n)`` reproduces :func:`pooled_and_digits`. A resample without
    pixels in a pooling gives NaN.
    """
    _check_probs_labels(probs, labels)
    weights = spread.draws_to_weights(resamples, probs.shape[0])
    out: dict[str, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for name, mask in pixel_masks(labels, poolings, width, ignore_index, background).items():
            sums = spread.calibration_sums(probs.detach(), labels.to(probs.device), mask.to(probs.device), n_bins, ignore_index)
            r = spread.resample(sums, weights)
            out[name] = {"accuracy": spread.accuracy(r), "confidence": spread.confidence(r),
                         "ece": spread.ece(r), "nll": spread.nll(r)}  # fmt: skip
    return out


def bootstrap_miou(
    prediction: torch.Tensor,
    labels: torch.Tensor,
    resamples: torch.Tensor,
    num_classes: int = NUM_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Return the mIoU of each resample of scenes (float64, one per row of ``resamples``), from per-scene confusions.

    A resample's confusion matrix is the sum of its scenes' matrices (:func:`utils.metrics.confusion_matrix`
    rows, ``num_classes`` classes); its mIoU is :func:`utils.metrics.mean_iou` of that sum.
    """
    labels = _check_labels(labels)
    _check_labels(prediction, "prediction")
    if prediction.shape != labels.shape:
        raise ValueError(f"prediction must have shape {tuple(labels.shape)} like labels, got {tuple(prediction.shape)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    weights = spread.draws_to_weights(resamples, labels.shape[0])
    t, p = labels.cpu().long(), prediction.cpu().long()
    keep = t != ignore_index
    if bool(((t[keep] < 0) | (t[keep] >= num_classes) | (p[keep] < 0) | (p[keep] >= num_classes)).any()):
        raise ValueError(f"labels and prediction must hold classes in [0, {num_classes}) (or ignore_index in labels)")
    k = num_classes
    scene = torch.arange(t.shape[0])[:, None, None].expand_as(t)
    index = (scene * k * k + t * k + p)[keep]
    per_scene = torch.bincount(index, minlength=t.shape[0] * k * k).reshape(t.shape[0], k, k)
    summed = (weights @ per_scene.reshape(t.shape[0], -1).double()).reshape(-1, k, k)
    return torch.tensor([mean_iou(c) for c in summed], dtype=torch.float64)
