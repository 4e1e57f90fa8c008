"""How sure is a number? Bootstrap intervals over scenes for the course's pixel metrics.

Pixels of one scene are not independent, so the unit that is resampled is the *scene*. Each metric is
computed from additive per-scene sums (counts, sums of confidence, histograms of scores); a bootstrap
replicate draws scenes with replacement, adds their sums and computes the metric again. The sums make
a thousand replicates cheap: one matrix product instead of a thousand passes over the pixels.

``calibration_sums`` feeds :func:`ece`, :func:`accuracy`, :func:`confidence` and :func:`nll`;
``detection_sums`` feeds :func:`auroc`. :func:`bootstrap` returns the point estimate (on all scenes)
and a percentile interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .config import IGNORE_INDEX
from .metrics.detection import _log_bucketize
from .metrics._checks import _check_int, _check_label_map, _check_mask, _check_prob_values, _check_probs

__all__ = [
    "accuracy",
    "auroc",
    "bootstrap",
    "calibration_sums",
    "confidence",
    "detection_sums",
    "draws_to_weights",
    "ece",
    "interval",
    "nll",
    "resample",
    "scene_draws",
    "scene_weights",
]

Sums = dict[str, torch.Tensor]


def calibration_sums(
    probs: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    n_bins: int = 15,
    ignore_index: int = IGNORE_INDEX,
) -> Sums:
    """Return per-scene sums for ECE, accuracy, mean confidence and NLL of ``probs`` ``(S, K, H, W)`` against ``target``.

    Keys (each with the scene as first dimension): ``count``, ``conf``, ``correct`` per equal-width
    confidence bin ``(S, n_bins)`` (the bins of :class:`utils.metrics.CalibrationMeter`), and ``nll``
    ``(S,)`` (sum of -log p_y, p clamped at 1e-12). Ignored pixels and pixels outside ``mask`` count nowhere.
    """
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim != 4:
        raise ValueError(f"probs must have shape (S, K, H, W), got {tuple(probs.shape)}")
    _check_probs(probs, probs.shape[1])
    _check_label_map(target, "target")
    if target.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f"target must have shape {tuple(probs.shape[:1] + probs.shape[2:])}, got {tuple(target.shape)}")
    _check_mask(mask, target.shape)
    n_bins = _check_int(n_bins, "n_bins", 1)
    _check_prob_values(probs)
    k = probs.shape[1]
    labelled = target != ignore_index
    labels = target[labelled]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"target holds labels outside [0, {k}) other than ignore_index={ignore_index}")
    keep = labelled if mask is None else labelled & mask.to(labelled.device)
    s = probs.shape[0]
    scene = torch.arange(s, device=probs.device)[:, None, None].expand_as(target)[keep]
    # per-pixel values first (max and gather over classes), then the kept pixels: the same numbers as
    # indexing the (pixels, K) probabilities, with K times less data moved
    top, pred = probs.max(dim=1)
    true_p = probs.gather(1, target.clamp(0, k - 1).long().unsqueeze(1)).squeeze(1)
    conf = top[keep].double().clamp(0, 1)
    y = target[keep].long()
    correct = (pred[keep] == y).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=conf.device)
    b = (torch.bucketize(conf, edges, right=False) - 1).clamp_(0, n_bins - 1)
    index = scene * n_bins + b

    def per_bin(weights: torch.Tensor | None) -> torch.Tensor:
        out = torch.bincount(index, weights=weights, minlength=s * n_bins)
        return out.double().reshape(s, n_bins).cpu()

    nll_sum = torch.bincount(scene, weights=-true_p[keep].double().clamp(0, 1).clamp(min=1e-12).log(), minlength=s)
    return {"count": per_bin(None), "conf": per_bin(conf), "correct": per_bin(correct), "nll": nll_sum.double().cpu()}


def ece(sums: Sums) -> torch.Tensor:
    """Return the ECE of summed calibration sums (last dimension = bins), NaN where no pixel counts."""
    n = sums["count"].sum(-1)
    return (sums["correct"] - sums["conf"]).abs().sum(-1) / torch.where(n > 0, n, torch.nan)


def accuracy(sums: Sums) -> torch.Tensor:
    """Return the fraction of right pixels from summed calibration sums."""
    n = sums["count"].sum(-1)
    return sums["correct"].sum(-1) / torch.where(n > 0, n, torch.nan)


def confidence(sums: Sums) -> torch.Tensor:
    """Return the mean confidence (max-softmax) from summed calibration sums."""
    n = sums["count"].sum(-1)
    return sums["conf"].sum(-1) / torch.where(n > 0, n, torch.nan)


def nll(sums: Sums) -> torch.Tensor:
    """Return the mean negative log-likelihood (nats) from summed calibration sums."""
    n = sums["count"].sum(-1)
    return sums["nll"] / torch.where(n > 0, n, torch.nan)


def detection_sums(
    score: torch.Tensor,
    positive: torch.Tensor,
    mask: torch.Tensor | None = None,
    low: float = 1e-7,
    high: float = 10.0,
    bins: int = 4096,
) -> Sums:
    """Return per-scene histograms ``pos``, ``neg`` ``(S, bins)`` of an uncertainty ``score`` ``(S, H, W)`` for :func:`auroc`.

    Bin 0 holds scores <= ``low``, the last bin scores > ``high``, the bins between are log-spaced
    (as :class:`utils.metrics.DetectionMeter`); scores in one bin count as tied. Pixels outside
    ``mask`` count nowhere.
    """
    if not isinstance(score, torch.Tensor) or not score.is_floating_point():
        raise TypeError(f"score must be a floating-point torch.Tensor, got {type(score).__name__}")
    if score.ndim < 2:
        raise ValueError(f"score must have the scene as first dimension, e.g. (S, H, W), got {tuple(score.shape)}")
    if not isinstance(positive, torch.Tensor) or positive.dtype != torch.bool:
        raise TypeError("positive must be a bool torch.Tensor")
    if positive.shape != score.shape:
        raise ValueError(f"positive must have shape {tuple(score.shape)}, got {tuple(positive.shape)}")
    _check_mask(mask, score.shape)
    if torch.isnan(score).any():
        raise ValueError("score holds NaN values")
    for name, v in (("low", low), ("high", high)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    if low >= high:
        raise ValueError(f"low must be below high, got low={low!r}, high={high!r}")
    bins = _check_int(bins, "bins", 3)
    s = score.shape[0]
    edges = torch.logspace(math.log10(low), math.log10(high), bins - 1, dtype=torch.float64, device=score.device)
    index = _log_bucketize(score, edges)
    scene = torch.arange(s, device=score.device).view(-1, *([1] * (score.ndim - 1))).expand_as(score)
    flat = scene * bins + index
    keep = torch.ones_like(positive) if mask is None else mask.to(positive.device)

    def hist(flag: torch.Tensor) -> torch.Tensor:
        return torch.bincount(flat[flag & keep], minlength=s * bins).double().reshape(s, bins).cpu()

    return {"pos": hist(positive), "neg": hist(~positive)}


def auroc(sums: Sums) -> torch.Tensor:
    """Return the AUROC (positives ranked above negatives, ties count one half) of summed detection histograms."""
    pos, neg = sums["pos"], sums["neg"]
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)
    below = neg.cumsum(-1) - neg
    value = (pos * (below + neg / 2)).sum(-1) / (n_pos * n_neg)
    return torch.where((n_pos > 0) & (n_neg > 0), value, torch.nan)


def scene_draws(n_scenes: int, n_boot: int = 1000, seed: int = 0) -> torch.Tensor:
    """Return ``(n_boot, n_scenes)`` int64 scene indices drawn with replacement from a generator seeded with ``seed``."""
    n_scenes = _check_int(n_scenes, "n_scenes", 1)
    n_boot = _check_int(n_boot, "n_boot", 1)
    seed = _check_int(seed, "seed", 0)
    g = torch.Generator().manual_seed(seed)
    return torch.randint(n_scenes, (n_boot, n_scenes), generator=g)


def draws_to_weights(draws: torch.Tensor, n_scenes: int) -> torch.Tensor:
    """Return ``(R, n_scenes)`` float64 counts of how often each scene appears in each row of ``draws`` ``(R, n)``."""
    if not isinstance(draws, torch.Tensor) or draws.dtype != torch.long or draws.ndim != 2:
        raise TypeError("draws must be an int64 tensor (R, n) of scene indices, e.g. from scene_draws")
    n_scenes = _check_int(n_scenes, "n_scenes", 1)
    if draws.numel() and (int(draws.min()) < 0 or int(draws.max()) >= n_scenes):
        raise ValueError(f"draws must index scenes in [0, {n_scenes}), got values outside")
    weights = torch.zeros(draws.shape[0], n_scenes, dtype=torch.float64)
    return weights.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))


def scene_weights(n_scenes: int, n_boot: int = 1000, seed: int = 0) -> torch.Tensor:
    """Return ``(n_boot, n_scenes)`` float64 counts: how often each scene is drawn in each bootstrap replicate (seeded)."""
    return draws_to_weights(scene_draws(n_scenes, n_boot, seed), n_scenes)


def resample(sums: Sums, weights: torch.Tensor) -> Sums:
    """Return the sums of every replicate: per-scene ``sums`` weighted by ``weights`` ``(R, n_scenes)`` (first dimension R)."""
    out = {}
    for k, v in sums.items():
        if v.shape[0] != weights.shape[1]:
            raise ValueError(f"sums[{k!r}] has {v.shape[0]} scenes, weights has {weights.shape[1]}")
        out[k] = (weights @ v.reshape(v.shape[0], -1).double()).reshape(-1, *v.shape[1:])
    return out


def interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """Return the central percentile interval ``(low, high)`` holding ``level`` of ``values`` (NaN values dropped)."""
    if not isinstance(values, torch.Tensor) or not values.is_floating_point() or values.numel() == 0:
        raise TypeError("values must be a non-empty floating-point torch.Tensor")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    values = values.double().flatten()
    values = values[~values.isnan()]
    if values.numel() == 0:
        return float("nan"), float("nan")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(values, q).tolist()
    return low, high


def bootstrap(
    sums: Sums | list[Sums],
    metric: Callable[..., torch.Tensor],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Return ``(point, low, high)``: ``metric`` on all scenes and its percentile bootstrap interval over scenes.

    ``sums`` are per-scene sums (from :func:`calibration_sums` or :func:`detection_sums`); a list of
    several (same scenes, e.g. two methods) is resampled jointly and passed to ``metric`` as separate
    arguments, so ``metric`` can be a difference between methods. The same ``seed`` gives the same scenes.
    """
    group = [sums] if isinstance(sums, dict) else list(sums)
    if not group or not all(isinstance(g, dict) and g for g in group):
        raise TypeError("sums must be a dict of per-scene tensors or a non-empty list of them")
    n = {int(v.shape[0]) for g in group for v in g.values()}
    if len(n) != 1:
        raise ValueError(f"every per-scene tensor must have the same number of scenes, got {sorted(n)}")
    if not (isinstance(level, float) and 0 < level < 1):
        raise ValueError(f"level must be a float in (0, 1), got {level!r}")
    weights = scene_weights(n.pop(), n_boot, seed)
    point = float(metric(*[{k: v.sum(0) for k, v in g.items()} for g in group]))
    values = torch.cat([metric(*[resample(g, chunk) for g in group]).double()
                        for chunk in weights.split(250)])  # chunks keep (replicates x bins) small
    return (point, *interval(values, level))
