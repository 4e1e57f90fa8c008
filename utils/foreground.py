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
per pooling, with the equal-width bins of :class:`utils.metrics.CalibrationMeter` (the unit tests
check it against the meter's ``mask=`` argument); :func:`confident_errors`
gives the share of misclassified pixels whose max-softmax is at least a threshold, per pooling.

A spread for comparing methods on the same scenes: :func:`scene_resamples` draws bootstrap resamples
of the scenes (with replacement, seeded); :func:`bootstrap_calibration` and :func:`bootstrap_miou`
score every resample from per-scene sums (binned calibration counts, confusion matrices), so a
thousand resamples cost little more than one evaluation. Scoring several methods with the *same*
resamples gives paired differences, whose percentile interval says whether a gap is separated.
"""

from __future__ import annotations

import math

import torch

from .config import IGNORE_INDEX, NUM_CLASSES
from .metrics import boundary_mask, mean_iou

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
    scores = bootstrap_calibration(probs, labels, identity, poolings, width, n_bins, ignore_index)
    counts = {name: int(mask.sum()) for name, mask in pixel_masks(labels, poolings, width, ignore_index).items()}
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


def _check_probs_labels(probs: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim != 4 or not probs.is_floating_point():
        raise ValueError(f"probs must be floating point of shape (B, K, H, W), got {probs.dtype} {tuple(probs.shape)}")
    _check_labels(labels)
    if labels.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f"labels must have shape {tuple(probs.shape[:1] + probs.shape[2:])} to match probs, "
                         f"got {tuple(labels.shape)}")


def _check_resamples(resamples: torch.Tensor, n_scenes: int) -> torch.Tensor:
    if not isinstance(resamples, torch.Tensor) or resamples.dtype != torch.long or resamples.ndim != 2:
        raise TypeError("resamples must be an int64 tensor (R, n) of scene indices, e.g. from scene_resamples")
    if resamples.numel() and (int(resamples.min()) < 0 or int(resamples.max()) >= n_scenes):
        raise ValueError(f"resamples must index scenes in [0, {n_scenes}), got values outside")
    return resamples


def scene_resamples(n_scenes: int, n_resamples: int = 1000, seed: int = 0) -> torch.Tensor:
    """Return ``(n_resamples, n_scenes)`` scene indices drawn with replacement from a generator seeded with ``seed``."""
    for name, value in (("n_scenes", n_scenes), ("n_resamples", n_resamples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_scenes, (n_resamples, n_scenes), generator=g)


def interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """Return the central percentile interval ``(low, high)`` holding ``level`` of ``values`` (e.g. bootstrap scores)."""
    if not isinstance(values, torch.Tensor) or not values.is_floating_point() or values.numel() == 0:
        raise TypeError("values must be a non-empty floating-point torch.Tensor")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(values.double().flatten(), q).tolist()
    return low, high


def bootstrap_calibration(
    probs: torch.Tensor,
    labels: torch.Tensor,
    resamples: torch.Tensor,
    poolings: tuple[str, ...] = ("all", "digits"),
    width: int = 1,
    n_bins: int = 15,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, dict[str, torch.Tensor]]:
    """Return ``{pooling: {accuracy, confidence, ece, nll}}``, each a float64 tensor with one value per resample.

    ``resamples`` ``(R, n)`` holds scene indices (:func:`scene_resamples`); a resample's score is that of
    the pixels of its scenes, a scene drawn twice counting twice. ECE uses the equal-width bins of
    :class:`utils.metrics.CalibrationMeter`, so the identity resample ``arange(n)`` reproduces
    :func:`pooled_and_digits`. A resample without pixels in a pooling gives NaN.
    """
    _check_probs_labels(probs, labels)
    resamples = _check_resamples(resamples, probs.shape[0])
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
    n = probs.shape[0]
    with torch.no_grad():
        p = probs.detach().cpu()
        conf, pred = p.max(dim=1)
        conf = conf.double().clamp_(0, 1)
        lab = labels.cpu()
        p_y = p.gather(1, lab.clamp(0, p.shape[1] - 1)[:, None])[:, 0].double().clamp_(0, 1)
        nll = -p_y.clamp(min=1e-12).log()
        correct = (pred == lab).double()
        edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        bins = (torch.bucketize(conf, edges, right=False) - 1).clamp_(0, n_bins - 1)
        scene = torch.arange(n)[:, None, None].expand_as(bins)
        out: dict[str, dict[str, torch.Tensor]] = {}
        for name, mask in pixel_masks(lab, poolings, width, ignore_index).items():
            key = (scene * n_bins + bins)[mask]
            count, s_conf, s_correct = (
                torch.bincount(key, weights=None if w is None else w[mask], minlength=n * n_bins)
                .double().reshape(n, n_bins)
                for w in (None, conf, correct)
            )
            s_nll = torch.zeros(n, dtype=torch.float64).index_add_(0, scene[mask], nll[mask])
            c, sc, sk = count[resamples].sum(1), s_conf[resamples].sum(1), s_correct[resamples].sum(1)
            total = c.sum(1)
            out[name] = {
                "accuracy": sk.sum(1) / total,
                "confidence": sc.sum(1) / total,
                "ece": (sk - sc).abs().sum(1) / total,
                "nll": s_nll[resamples].sum(1) / total,
            }
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
    resamples = _check_resamples(resamples, labels.shape[0])
    t, p = labels.cpu().long(), prediction.cpu().long()
    keep = t != ignore_index
    if bool(((t[keep] < 0) | (t[keep] >= num_classes) | (p[keep] < 0) | (p[keep] >= num_classes)).any()):
        raise ValueError(f"labels and prediction must hold classes in [0, {num_classes}) (or ignore_index in labels)")
    k = num_classes
    scene = torch.arange(t.shape[0])[:, None, None].expand_as(t)
    index = (scene * k * k + t * k + p)[keep]
    per_scene = torch.bincount(index, minlength=t.shape[0] * k * k).reshape(t.shape[0], k, k)
    return torch.tensor([mean_iou(c) for c in per_scene[resamples].sum(1)], dtype=torch.float64)
