"""Image-level failure detection: which images will fail, from one score per image.

A segmentation team triages *images*: which should a human check? This module gives the three parts:

- **image risk**, 1 - Dice (or 1 - IoU) of the foreground of each image (:func:`image_risk`);
- **aggregators** that turn any pixel map (1 - max softmax, entropy, mutual information...) into one
  score per image (:func:`aggregate`, :data:`AGGREGATORS`), and the ensemble's mean pairwise Dice between
  its members' label maps (:func:`pairwise_dice`);
- **selective metrics** over images with a continuous risk (:func:`selective_curve`, :func:`aurc`,
  :func:`e_aurc`, :func:`augrc`, :func:`risk_at_coverage`, :func:`coverage_at_risk`), and their
  image bootstrap, the same draws for every score (:func:`bootstrap_selective`: paired differences;
  with ``groups``, whole scenes where several images show one, :func:`image_draws`).

Conventions: a higher score means *less* confident, so images are accepted by increasing score, and
images with tied scores are taken in random order: every curve and area is the expectation over that
order, which equals using the mean risk of each tied group. Definitions (Geifman et al. 2019; Traub et
al. 2024; ValUES, Kahl et al. 2024): accept the k least uncertain of n images; the selective risk is
R(k) = (1/k) Σ_{i<=k} r_i, the generalised risk G(k) = (1/n) Σ_{i<=k} r_i (the risk of failures that are
accepted, i.e. go undetected), AURC = (1/n) Σ_k R(k), AUGRC = (1/n) Σ_k G(k), and E-AURC = AURC minus
the AURC of the same risks accepted in increasing order of risk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .config import IGNORE_INDEX

__all__ = [
    "AGGREGATORS",
    "aggregate",
    "augrc",
    "aurc",
    "bootstrap_selective",
    "coverage_at_risk",
    "detector_scores",
    "e_aurc",
    "image_draws",
    "image_risk",
    "mean_all",
    "mean_foreground",
    "mean_interior",
    "pairwise_dice",
    "patch_max",
    "risk_at_coverage",
    "selective_curve",
    "share_above",
]


# --------------------------------------------------------------------------------------------------
# checks


def _check_map(pixel_map: object, name: str = "pixel_map") -> torch.Tensor:
    if not isinstance(pixel_map, torch.Tensor) or not pixel_map.is_floating_point() or pixel_map.ndim != 3:
        raise ValueError(f"{name} must be a floating-point tensor (N, H, W), got {getattr(pixel_map, 'shape', type(pixel_map))}")
    if torch.isnan(pixel_map).any():
        raise ValueError(f"{name} holds NaN values")
    return pixel_map


def _check_labels(labels: object, name: str, shape: torch.Size | None = None) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool or labels.ndim != 3:
        raise ValueError(f"{name} must be an integer label tensor (N, H, W), got {getattr(labels, 'dtype', type(labels))}")
    if shape is not None and labels.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(labels.shape)}")
    return labels


def _check_background(background: object) -> int:
    if isinstance(background, bool) or not isinstance(background, int) or background < 0:
        raise ValueError(f"background must be a non-negative int (the background class), got {background!r}")
    return background


def _check_scores_risks(scores: object, risks: object) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = []
    for name, value in (("scores", scores), ("risks", risks)):
        t = torch.as_tensor(value, dtype=torch.float64) if not isinstance(value, torch.Tensor) else value.detach().double().cpu()
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D sequence (one value per image), got shape {tuple(t.shape)}")
        if torch.isnan(t).any():
            raise ValueError(f"{name} holds NaN values")
        tensors.append(t)
    s, r = tensors
    if s.shape != r.shape:
        raise ValueError(f"scores and risks must have one value per image each, got {s.numel()} and {r.numel()}")
    if (r < 0).any() or (r > 1).any():
        raise ValueError("risks must lie in [0, 1] (for example 1 - Dice)")
    return s, r


# --------------------------------------------------------------------------------------------------
# image risk


def image_risk(pred: torch.Tensor, labels: torch.Tensor, kind: str = "dice", background: int = 0,
               ignore_index: int = IGNORE_INDEX) -> torch.Tensor:  # fmt: skip
    """Return each image's risk ``(N,)``: 1 - Dice or 1 - IoU of its foreground, a pixel counting as overlap where its class is right.

    Foreground pixels are those whose true (or predicted) class is not ``background``; pixels labelled
    ``ignore_index`` are left out. Overlap = foreground pixels predicted with their true class, so Dice =
    2 overlap / (predicted + true foreground) and IoU = overlap / (predicted + true - overlap). An image
    with neither true nor predicted foreground has risk 0 (nothing to find, nothing found); one with only
    one of them has risk 1.
    """
    if kind not in ("dice", "iou"):
        raise ValueError(f"kind must be 'dice' or 'iou', got {kind!r}")
    labels = _check_labels(labels, "labels")
    pred = _check_labels(pred, "pred", labels.shape)
    background = _check_background(background)
    valid = labels != ignore_index
    true_fg = (labels != background) & valid
    pred_fg = (pred.to(labels.device) != background) & valid
    overlap = (true_fg & (pred.to(labels.device) == labels)).sum((1, 2)).double()
    n_true, n_pred = true_fg.sum((1, 2)).double(), pred_fg.sum((1, 2)).double()
    if kind == "dice":
        num, den = 2 * overlap, n_true + n_pred
    else:
        num, den = overlap, n_true + n_pred - overlap
    score = torch.where(den > 0, num / den.clamp(min=1), torch.ones_like(den))
    return (1.0 - score).cpu()


# --------------------------------------------------------------------------------------------------
# aggregators: one score per image from a pixel map


def mean_all(pixel_map: torch.Tensor) -> torch.Tensor:
    """Return the mean of the map over all pixels of each image ``(N,)`` (the practitioner's average over the image)."""
    return _check_map(pixel_map).double().mean((1, 2)).cpu()


def _masked_mean(pixel_map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over ``mask`` per image; the image mean where the mask is empty."""
    m = pixel_map.double()
    count = mask.sum((1, 2))
    inside = (m * mask).sum((1, 2)) / count.clamp(min=1)
    return torch.where(count > 0, inside, m.mean((1, 2))).cpu()


def mean_foreground(pixel_map: torch.Tensor, pred: torch.Tensor, background: int = 0) -> torch.Tensor:
    """Return the mean of the map over each image's predicted foreground ``(N,)`` (the image mean where none is predicted)."""
    pixel_map = _check_map(pixel_map)
    pred = _check_labels(pred, "pred", pixel_map.shape)
    return _masked_mean(pixel_map, pred.to(pixel_map.device) != _check_background(background))


def _predicted_boundary(pred: torch.Tensor) -> torch.Tensor:
    """Pixels of the predicted map whose 3x3 neighbourhood holds another predicted class."""
    p = pred.double()[:, None]
    pad = F.pad(p, (1, 1, 1, 1), mode="replicate")
    high, low = F.max_pool2d(pad, 3, stride=1), -F.max_pool2d(-pad, 3, stride=1)
    return ((high != p) | (low != p))[:, 0]


def mean_interior(pixel_map: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Return the mean of the map over each image with the one-pixel boundary of the predicted map left out ``(N,)``."""
    pixel_map = _check_map(pixel_map)
    pred = _check_labels(pred, "pred", pixel_map.shape)
    return _masked_mean(pixel_map, ~_predicted_boundary(pred.to(pixel_map.device)))


def patch_max(pixel_map: torch.Tensor, patch: int = 8) -> torch.Tensor:
    """Return the largest mean of the map over any ``patch`` x ``patch`` window of each image ``(N,)``."""
    pixel_map = _check_map(pixel_map)
    if isinstance(patch, bool) or not isinstance(patch, int) or not 1 <= patch <= min(pixel_map.shape[1:]):
        raise ValueError(f"patch must be an int in [1, {min(pixel_map.shape[1:])}] (the image side), got {patch!r}")
    means = F.avg_pool2d(pixel_map.double()[:, None], patch, stride=1)
    return means.flatten(1).amax(1).cpu()


def share_above(pixel_map: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Return the share of each image's pixels whose map value exceeds ``threshold`` ``(N,)``."""
    pixel_map = _check_map(pixel_map)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    return (pixel_map > threshold).double().mean((1, 2)).cpu()


def pairwise_dice(label_maps: Sequence[torch.Tensor], background: int = 0) -> torch.Tensor:
    """Return each image's disagreement ``(N,)``: 1 - the mean Dice between every pair of the models' label maps.

    The Dice of two maps counts a pixel as overlap where both predict the same foreground class; two
    maps without foreground agree (Dice 1). Zenk et al. (2025) found the pairwise Dice of ensemble
    members a simple and robust baseline for detecting failed images.
    """
    if not isinstance(label_maps, Sequence) or len(label_maps) < 2:
        raise ValueError("label_maps must be a sequence of at least two (N, H, W) label maps")
    first = _check_labels(label_maps[0], "label_maps[0]")
    maps = [first] + [_check_labels(m, f"label_maps[{i}]", first.shape) for i, m in enumerate(label_maps[1:], 1)]
    background = _check_background(background)
    total, pairs = torch.zeros(first.shape[0], dtype=torch.float64), 0
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            a, b = maps[i].cpu(), maps[j].cpu()
            fa, fb = a != background, b != background
            overlap = (fa & (a == b)).sum((1, 2)).double()
            den = fa.sum((1, 2)).double() + fb.sum((1, 2)).double()
            total += torch.where(den > 0, 2 * overlap / den.clamp(min=1), torch.ones_like(den))
            pairs += 1
    return 1.0 - total / pairs


#: The aggregators of a pixel map, by name: each takes the map and keyword arguments (pred, patch, threshold).
AGGREGATORS: dict[str, Callable[..., torch.Tensor]] = {
    "mean": lambda m, **kw: mean_all(m),
    "foreground mean": lambda m, pred, background=0, **kw: mean_foreground(m, pred, background),
    "interior mean": lambda m, pred, **kw: mean_interior(m, pred),
    "patch max": lambda m, patch=8, **kw: patch_max(m, patch),
    "share above": lambda m, threshold=0.5, **kw: share_above(m, threshold),
}


def detector_scores(maps: dict[str, torch.Tensor], pred: torch.Tensor, label_maps: Sequence[torch.Tensor] | None = None,
                    background: int = 0, **kwargs: object) -> dict[str, torch.Tensor]:  # fmt: skip
    """Return ``{"MAP, AGGREGATOR": (N,)}`` for every map and every aggregator, plus ``"pairwise Dice"`` of ``label_maps`` if given.

    ``pred`` is the label map the foreground and interior aggregators use; ``kwargs`` (patch, threshold)
    go to the aggregators. One call gives every image-level score of one set of images.
    """
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps must be a non-empty dict {name: pixel map (N, H, W)}")
    out = {f"{name}, {how}": aggregate(m, how, pred=pred, background=background, **kwargs)
           for name, m in maps.items() for how in AGGREGATORS}  # fmt: skip
    if label_maps is not None:
        out["pairwise Dice"] = pairwise_dice(label_maps, background)
    return out


def aggregate(pixel_map: torch.Tensor, how: str, **kwargs: object) -> torch.Tensor:
    """Return one score per image ``(N,)`` from a pixel map by the aggregator ``how`` (a key of :data:`AGGREGATORS`)."""
    if how not in AGGREGATORS:
        raise ValueError(f"how must be one of {sorted(AGGREGATORS)}, got {how!r}")
    if how in ("foreground mean", "interior mean") and "pred" not in kwargs:
        raise ValueError(f"the {how!r} aggregator needs pred= (the predicted label map)")
    return AGGREGATORS[how](pixel_map, **kwargs)


# --------------------------------------------------------------------------------------------------
# selective metrics over images


def _sorted_risks(scores: torch.Tensor, risks: torch.Tensor) -> torch.Tensor:
    """Risks in order of acceptance (increasing score), each replaced by its tied group's mean (the expectation over tie orders)."""
    order = torch.argsort(scores, stable=True)
    s, r = scores[order], risks[order]
    _, inverse, counts = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    group_mean = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, inverse, r) / counts.double()
    return group_mean[inverse]


def selective_curve(scores: Sequence[float] | torch.Tensor, risks: Sequence[float] | torch.Tensor) -> dict[str, torch.Tensor]:
    """Return ``coverage``, selective ``risk`` R(k) and ``generalised`` risk G(k) of accepting the k = 1..n least uncertain images."""
    s, r = _check_scores_risks(scores, risks)
    cum = _sorted_risks(s, r).cumsum(0)
    n = len(r)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return {"coverage": k / n, "risk": cum / k, "generalised": cum / n}


def aurc(scores: Sequence[float] | torch.Tensor, risks: Sequence[float] | torch.Tensor) -> float:
    """Return the area under the risk-coverage curve, (1/n) Σ_k R(k) (Geifman et al. 2019)."""
    return float(selective_curve(scores, risks)["risk"].mean())


def e_aurc(scores: Sequence[float] | torch.Tensor, risks: Sequence[float] | torch.Tensor) -> float:
    """Return AURC minus the AURC of a perfect ranking (the same risks accepted in increasing order): 0 is perfect."""
    s, r = _check_scores_risks(scores, risks)
    return aurc(s, r) - aurc(r, r)


def augrc(scores: Sequence[float] | torch.Tensor, risks: Sequence[float] | torch.Tensor) -> float:
    """Return the area under the generalised risk-coverage curve, (1/n) Σ_k G(k): the average risk of undetected failures (Traub et al. 2024)."""
    return float(selective_curve(scores, risks)["generalised"].mean())


def risk_at_coverage(scores: Sequence[float] | torch.Tensor, risks: Sequence[float] | torch.Tensor, coverage: float) -> float:
    """Return the selective risk of accepting the ``ceil(coverage * n)`` least uncertain images."""
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float)) or not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
    curve = selective_curve(scores, risks)
    n = len(curve["risk"])
    k = max(1, min(n, int(torch.ceil(torch.tensor(coverage * n - 1e-9)).item())))
    return float(curve["risk"][k - 1])


def coverage_at_risk(scores: Sequence[float] | torch.Tensor, risks: Sequence[float] | torch.Tensor, risk: float) -> float:
    """Return the largest coverage whose selective risk is at most ``risk`` (0 if even the most confident image is riskier)."""
    if isinstance(risk, bool) or not isinstance(risk, (int, float)) or not 0 <= risk <= 1:
        raise ValueError(f"risk must be in [0, 1], got {risk!r}")
    curve = selective_curve(scores, risks)
    ok = curve["risk"] <= risk + 1e-12
    return float(curve["coverage"][ok].max()) if ok.any() else 0.0


def _row_areas(s: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """AURC and AUGRC ``(R,)`` of every row of scores ``s`` and risks ``r`` ``(R, n)``, ties as in :func:`selective_curve`."""
    order = torch.argsort(s, dim=1, stable=True)
    s, r = s.gather(1, order), r.gather(1, order)
    n_boot, n = s.shape
    new = torch.ones_like(s, dtype=torch.long)
    new[:, 1:] = (s[:, 1:] != s[:, :-1]).long()
    group = (new.cumsum(1) - 1 + n * torch.arange(n_boot)[:, None]).flatten()
    sums = torch.zeros(n_boot * n, dtype=torch.float64).index_add_(0, group, r.flatten())
    counts = torch.zeros(n_boot * n, dtype=torch.float64).index_add_(0, group, torch.ones(n_boot * n, dtype=torch.float64))
    tied = (sums / counts.clamp(min=1))[group].view(n_boot, n)
    cum = tied.cumsum(1)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return (cum / k).mean(1), (cum / n).mean(1)


def _draw_areas(scores: torch.Tensor, risks: torch.Tensor, draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """AURC and AUGRC ``(R,)`` of every row of ``draws`` (image indices), ties as in :func:`selective_curve`."""
    return _row_areas(scores[draws], risks[draws])


def _group_members(groups: Sequence[object] | torch.Tensor, n: int) -> list[torch.Tensor]:
    """Image indices of each group, the groups in sorted order of their ids (one id per image)."""
    ids = groups.tolist() if isinstance(groups, torch.Tensor) else list(groups)
    if len(ids) != n:
        raise ValueError(f"groups must hold one group id per image ({n}), got {len(ids)}")
    try:
        keys = sorted(set(ids))
    except TypeError as err:
        raise ValueError("groups must hold sortable group ids (e.g. scene indices)") from err
    where = {key: i for i, key in enumerate(keys)}
    members: list[list[int]] = [[] for _ in keys]
    for i, key in enumerate(ids):
        members[where[key]].append(i)
    return [torch.tensor(m, dtype=torch.long) for m in members]


def image_draws(n_images: int, n_boot: int = 1000, seed: int = 0,
                groups: Sequence[object] | torch.Tensor | None = None) -> list[torch.Tensor]:  # fmt: skip
    """Return the ``n_boot`` resamples of :func:`bootstrap_selective` as image indices, one tensor per resample.

    Without ``groups`` each row of :func:`utils.spread.scene_draws` ``(n_images, n_boot, seed)`` is one
    resample. With ``groups`` (one id per image, e.g. its scene) the groups are drawn with replacement
    (``scene_draws`` over the groups, sorted by id) and each brings all its images, so resamples can
    differ in length.
    """
    from .spread import scene_draws

    if groups is None:
        return list(scene_draws(n_images, n_boot, seed))
    members = _group_members(groups, n_images)
    return [torch.cat([members[g] for g in row.tolist()]) for row in scene_draws(len(members), n_boot, seed)]


def bootstrap_selective(scores: dict[str, Sequence[float] | torch.Tensor], risks: Sequence[float] | torch.Tensor,
                        n_boot: int = 1000, seed: int = 0,
                        groups: Sequence[object] | torch.Tensor | None = None) -> dict[str, dict[str, torch.Tensor]]:  # fmt: skip
    """Return ``{name: {"aurc": (n_boot,), "augrc": (n_boot,)}}`` over resamples of the images, the same resamples for every score.

    Each resample draws the n images with replacement (:func:`utils.spread.scene_draws` with ``seed``:
    one image is one scene), and each draw's areas equal :func:`aurc` and :func:`augrc` of the images
    drawn. Where several images show one scene (e.g. two corruptions of it), pass ``groups``, one group
    id per image: whole groups are then drawn, each with all its images (:func:`image_draws`).
    Differences of two scores' draws give a paired bootstrap of the difference.
    """
    from .spread import scene_draws

    if not isinstance(scores, dict) or not scores:
        raise ValueError("scores must be a non-empty dict {name: one score per image}")
    checked = {name: _check_scores_risks(s, risks) for name, s in scores.items()}
    n = len(next(iter(checked.values()))[1])
    if groups is None:
        draws = scene_draws(n, n_boot, seed)
        out = {}
        for name, (s, r) in checked.items():
            a, g = _draw_areas(s, r, draws)
            out[name] = {"aurc": a, "augrc": g}
        return out
    names = list(checked)
    s_all = torch.stack([checked[k][0] for k in names])
    r = checked[names[0]][1]
    areas = [_row_areas(s_all[:, idx], r[idx].expand(len(names), -1)) for idx in image_draws(n, n_boot, seed, groups)]
    return {k: {"aurc": torch.stack([a[i] for a, _ in areas]), "augrc": torch.stack([g[i] for _, g in areas])}
            for i, k in enumerate(names)}
