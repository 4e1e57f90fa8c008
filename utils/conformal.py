"""Conformal prediction for segmentation: split-conformal quantiles, LAC and APS scores, prediction sets,
and conformal risk control with per-scene losses (Angelopoulos et al., ICLR 2024).

The exchangeable units are *scenes*: the pixels of one scene share a digit, a position and a rendering,
so they are dependent, and a guarantee that treats them as independent draws is not one. Every loss here
is therefore computed per scene, as a curve over a grid of the parameter lambda, and the risk-control
bound is applied to the mean of those curves over calibration scenes.

Parametrisation (both losses are non-increasing in lambda, in [0, 1], and 0 at lambda = 1):

- ``"miscoverage"``: the prediction set of a pixel is ``{k : p_k >= 1 - lambda}``; the loss of a scene is
  the share of its (non-ignored) pixels whose true label is outside the set, i.e. whose LAC score
  ``1 - p_y`` exceeds lambda. ``pixels="digits"`` restricts the share to pixels with a digit label.
- ``"fnr"``: the digit mask is ``{pixel : 1 - p_background >= 1 - lambda}`` (i.e. ``p_background <= lambda``);
  the loss of a scene is the share of its digit pixels left outside the mask. A scene with no digit pixel
  has loss 0 (nothing to miss).

The background is class 0 (DigitScenes) unless ``background=`` names another class; "digit pixels" are
the pixels of every other class (the foreground).
"""

from __future__ import annotations

import math

import torch

from .config import IGNORE_INDEX
from .metrics._checks import (
    _check_background,
    _check_int,
    _check_label_map,
    _check_prob_values,
    _check_probs4,
)

__all__ = [
    "LOSSES",
    "conformal_quantile",
    "lac_scores",
    "aps_scores",
    "prediction_sets",
    "set_sizes",
    "lambda_grid",
    "scene_losses",
    "crc_lambda",
    "crc_lambda_from_mean",
    "random_splits",
    "split_risks",
    "pooled_pixel_threshold",
    "pixel_counts",
    "pooled_split_risks",
]

#: The per-scene losses :func:`scene_losses` knows.
LOSSES: tuple[str, ...] = ("miscoverage", "fnr")
_POOLINGS = ("all", "digits")
_SCORES = ("lac", "aps")


def _check_alpha(alpha: object) -> float:
    ok = isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and math.isfinite(alpha)
    if not ok or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _check_labels_for(probs: torch.Tensor, labels: object, ignore_index: int) -> torch.Tensor:
    _check_label_map(labels, "labels")
    expected = (probs.shape[0], *probs.shape[2:])
    if tuple(labels.shape) != expected:
        raise ValueError(f"labels must have shape (B, H, W) = {expected} to match probs, got {tuple(labels.shape)}")
    valid = labels != ignore_index
    if valid.any() and (int(labels[valid].min()) < 0 or int(labels[valid].max()) >= probs.shape[1]):
        raise ValueError(f"labels must lie in [0, {probs.shape[1] - 1}] or equal ignore_index={ignore_index}")
    return labels


def _check_scores(scores: object, name: str = "scores") -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {scores.dtype}")
    if scores.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one score per calibration unit), got {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError(f"{name} holds NaN values")
    return scores


def conformal_quantile(scores: torch.Tensor, alpha: float) -> float:
    """Return the split-conformal threshold: the ceil((n+1)(1-alpha))-th smallest of ``n`` calibration scores.

    That is the ceil((n+1)(1-alpha))/n empirical quantile; a new exchangeable score is at or below it with
    probability at least 1 - alpha. Raises ``ValueError`` when n < 1/alpha - 1 (the rank would exceed n).
    """
    scores = _check_scores(scores)
    alpha = _check_alpha(alpha)
    n = scores.numel()
    rank = math.ceil((n + 1) * (1 - alpha) - 1e-9)
    if rank > n:
        raise ValueError(
            f"alpha={alpha} needs at least {math.ceil(1 / alpha - 1 - 1e-9)} calibration scores, got n={n}"
        )
    return float(torch.sort(scores.detach().double().cpu()).values[rank - 1])


def lac_scores(probs: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Return the LAC score 1 - p_y of every pixel, ``(B, H, W)``; ignored pixels get NaN."""
    probs = _check_probs4(probs)
    labels = _check_labels_for(probs, labels, ignore_index)
    valid = labels != ignore_index
    py = probs.gather(1, torch.where(valid, labels, 0).unsqueeze(1)).squeeze(1)
    return torch.where(valid, 1 - py, torch.full_like(py, float("nan")))


def _aps_all(probs: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
    """APS score of every class at every pixel, ``(B, K, H, W)``: the mass of the classes ranked above it,
    plus its own probability (times ``u`` when randomised). Ties are broken by class index."""
    sorted_p, order = probs.sort(dim=1, descending=True, stable=True)
    above = sorted_p.cumsum(1) - sorted_p
    own = sorted_p if u is None else sorted_p * u.unsqueeze(1)
    return torch.empty_like(probs).scatter_(1, order, above + own)


def _uniform(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    shape = (probs.shape[0], *probs.shape[2:])
    return torch.rand(shape, generator=generator, dtype=probs.dtype).to(probs.device)


def aps_scores(
    probs: torch.Tensor,
    labels: torch.Tensor,
    randomized: bool = False,
    generator: torch.Generator | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Return the APS score of the true label at every pixel, ``(B, H, W)``; ignored pixels get NaN.

    Not randomised (default): the sum of the probabilities of the classes ranked at or above the true
    one (ties broken by class index). Randomised: the mass ranked strictly above plus ``U * p_y`` with
    ``U ~ Uniform(0, 1)`` drawn per pixel from ``generator`` (Romano, Sesia & Candes, 2020).
    """
    probs = _check_probs4(probs)
    labels = _check_labels_for(probs, labels, ignore_index)
    if not isinstance(randomized, bool):
        raise TypeError(f"randomized must be a bool, got {type(randomized).__name__}")
    valid = labels != ignore_index
    u = _uniform(probs, generator) if randomized else None
    s = _aps_all(probs, u).gather(1, torch.where(valid, labels, 0).unsqueeze(1)).squeeze(1)
    return torch.where(valid, s, torch.full_like(s, float("nan")))


def prediction_sets(
    probs: torch.Tensor,
    threshold: float,
    score: str = "lac",
    randomized: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return the bool prediction sets ``(B, K, H, W)``: the classes whose score is at most ``threshold``.

    ``score="lac"``: ``{k : 1 - p_k <= threshold}``; ``score="aps"``: the classes whose APS score (as in
    :func:`aps_scores`, randomised or not) is at most ``threshold``. A set may be empty.
    """
    probs = _check_probs4(probs)
    if score not in _SCORES:
        raise ValueError(f"score must be one of {_SCORES}, got {score!r}")
    ok = isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and math.isfinite(threshold)
    if not ok:
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if score == "lac":
        return 1 - probs <= threshold
    u = _uniform(probs, generator) if randomized else None
    return _aps_all(probs, u) <= threshold


def set_sizes(sets: torch.Tensor) -> torch.Tensor:
    """Return the number of classes in each pixel's prediction set, ``(B, H, W)`` int64."""
    if not isinstance(sets, torch.Tensor) or sets.dtype != torch.bool or sets.ndim != 4:
        raise TypeError(f"sets must be a (B, K, H, W) bool tensor, got {getattr(sets, 'dtype', type(sets))}")
    return sets.sum(1)


def lambda_grid(steps: int = 2001) -> torch.Tensor:
    """Return a grid of lambda in [0, 1], float64: ``steps`` equal steps plus a log-spaced part near 0
    (where 1 - lambda thresholds probabilities close to 1, which is where a good segmenter's pixels are)."""
    steps = _check_int(steps, "steps", 2)
    near_zero = torch.logspace(-7, -2, 1001, dtype=torch.float64)
    return torch.unique(torch.cat([torch.linspace(0, 1, steps, dtype=torch.float64), near_zero]))


def _check_grid(grid: object) -> torch.Tensor:
    if not isinstance(grid, torch.Tensor) or grid.ndim != 1 or not grid.is_floating_point() or grid.numel() < 1:
        raise TypeError("grid must be a non-empty 1-D floating-point tensor of lambdas")
    if torch.isnan(grid).any() or float(grid.min()) < 0 or float(grid.max()) > 1:
        raise ValueError("grid must hold lambdas in [0, 1]")
    if grid.numel() > 1 and not bool((grid[1:] > grid[:-1]).all()):
        raise ValueError("grid must be strictly increasing")
    return grid.double().cpu()


def scene_losses(
    probs: torch.Tensor,
    labels: torch.Tensor,
    grid: torch.Tensor,
    loss: str = "miscoverage",
    pixels: str = "all",
    ignore_index: int = IGNORE_INDEX,
    batch_size: int = 128,
    background: int | None = 0,
) -> torch.Tensor:
    """Return each scene's loss at every lambda of ``grid``, ``(B, len(grid))`` float64, in [0, 1].

    ``loss="miscoverage"``: share of the scene's non-ignored pixels (``pixels="digits"``: of its digit
    pixels, label other than ``background``) whose LAC score 1 - p_y exceeds lambda, i.e. whose true
    label is outside ``{k : p_k >= 1 - lambda}``. ``loss="fnr"``: share of the scene's digit pixels with
    p_background > lambda, i.e. outside the mask ``{1 - p_background >= 1 - lambda}``. A scene with no
    pixel to count has loss 0. Scenes are processed ``batch_size`` at a time, so the working memory is
    bounded by one batch; the result holds one curve per scene. ``background`` is the background class
    (0 for DigitScenes); ``None`` (no background class) only for the miscoverage of all pixels.
    """
    probs = _check_probs4(probs, values=False)
    labels = _check_labels_for(probs, labels, ignore_index)
    background = _check_background(background, probs.shape[1], allow_none=True)
    grid = _check_grid(grid)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if pixels not in _POOLINGS:
        raise ValueError(f"pixels must be one of {_POOLINGS}, got {pixels!r}")
    if loss == "fnr" and pixels != "all":
        raise ValueError("pixels applies to loss='miscoverage' only (the FNR counts digit pixels by definition)")
    if background is None and (loss == "fnr" or pixels == "digits"):
        raise ValueError(f"loss={loss!r} with pixels={pixels!r} counts the pixels of the foreground: it needs a background class, got background=None")
    batch_size = _check_int(batch_size, "batch_size", 1)
    out = torch.empty(probs.shape[0], grid.numel(), dtype=torch.float64)
    for start in range(0, probs.shape[0], batch_size):
        p = probs[start : start + batch_size].detach().cpu()
        y = labels[start : start + batch_size].detach().cpu()
        _check_prob_values(p)
        valid = y != ignore_index
        if loss == "fnr":
            counted = valid & (y != background)
            s = p[:, background].double()
        else:
            counted = valid & (y != background) if pixels == "digits" else valid
            s = 1 - p.gather(1, torch.where(valid, y, 0).unsqueeze(1)).squeeze(1).double()
        s = torch.where(counted, s, torch.full_like(s, float("inf"))).flatten(1).sort(1).values
        n = counted.flatten(1).sum(1, keepdim=True).double()
        at_most = torch.searchsorted(s, grid.expand(s.shape[0], -1).contiguous(), right=True).double()
        out[start : start + batch_size] = torch.where(n > 0, (n - at_most) / n.clamp_min(1), torch.zeros_like(at_most))
    return out


def _check_losses(losses: object, grid: torch.Tensor, bound: float) -> torch.Tensor:
    if not isinstance(losses, torch.Tensor) or not losses.is_floating_point():
        raise TypeError("losses must be a floating-point tensor (scenes, len(grid))")
    if losses.ndim != 2 or losses.shape[1] != grid.numel():
        raise ValueError(f"losses must have shape (scenes, {grid.numel()}), got {tuple(losses.shape)}")
    if torch.isnan(losses).any() or float(losses.min()) < 0 or float(losses.max()) > bound + 1e-12:
        raise ValueError(f"losses must lie in [0, B={bound}]")
    return losses.double().cpu()


def _check_bound(bound: object) -> float:
    ok = isinstance(bound, (int, float)) and not isinstance(bound, bool) and math.isfinite(bound)
    if not ok or bound <= 0:
        raise ValueError(f"bound must be a positive number (the loss's maximum B), got {bound!r}")
    return float(bound)


def _lambda_hat(mean_loss: torch.Tensor, n: int, grid: torch.Tensor, alpha: float, bound: float) -> torch.Tensor:
    """Index into ``grid`` of lambda_hat for each row of ``mean_loss`` ``(S, G)``; -1 where no lambda qualifies."""
    ok = n / (n + 1) * mean_loss + bound / (n + 1) <= alpha + 1e-12
    first = torch.where(ok.any(1), ok.double().argmax(1), torch.full((ok.shape[0],), -1))
    return first


def crc_lambda(losses: torch.Tensor, grid: torch.Tensor, alpha: float, bound: float = 1.0) -> float:
    """Return conformal risk control's lambda_hat = min{lambda in grid : n/(n+1) R_hat(lambda) + B/(n+1) <= alpha}.

    ``losses`` ``(n, len(grid))`` are the calibration scenes' loss curves (non-increasing in lambda, in
    [0, B]); R_hat is their mean. Raises ``ValueError`` when no lambda of the grid qualifies (n too small
    for alpha, since B/(n+1) must be at most alpha, or the loss at the largest lambda above alpha).
    """
    grid = _check_grid(grid)
    alpha, bound = _check_alpha(alpha), _check_bound(bound)
    losses = _check_losses(losses, grid, bound)
    return _crc_of_mean(losses.mean(0), losses.shape[0], grid, alpha, bound)


def crc_lambda_from_mean(mean_loss: torch.Tensor, n: int, grid: torch.Tensor, alpha: float, bound: float = 1.0) -> float:
    """Return :func:`crc_lambda` from the mean loss curve ``(len(grid),)`` of ``n`` calibration scenes.

    The mean is all that conformal risk control needs, so a stream of scenes can add up their curves
    (:func:`scene_losses`, batch by batch) and keep one curve instead of one per scene.
    """
    grid = _check_grid(grid)
    alpha, bound = _check_alpha(alpha), _check_bound(bound)
    n = _check_int(n, "n", 1)
    if not isinstance(mean_loss, torch.Tensor) or mean_loss.shape != (grid.numel(),):
        raise ValueError(f"mean_loss must be a tensor of shape ({grid.numel()},), one mean loss per lambda of grid")
    mean_loss = _check_losses(mean_loss[None].double(), grid, bound)[0]
    return _crc_of_mean(mean_loss, n, grid, alpha, bound)


def _crc_of_mean(mean_loss: torch.Tensor, n: int, grid: torch.Tensor, alpha: float, bound: float) -> float:
    if bound / (n + 1) > alpha:
        raise ValueError(f"alpha={alpha} with B={bound} needs at least {math.ceil(bound / alpha - 1 - 1e-9)} calibration scenes, got n={n}")
    i = int(_lambda_hat(mean_loss[None], n, grid, alpha, bound)[0])
    if i < 0:
        raise ValueError(f"no lambda of the grid meets the bound at alpha={alpha}: the loss at lambda={float(grid[-1])} is too high")
    return float(grid[i])


def random_splits(n_scenes: int, n_calibration: int, n_splits: int, seed: int = 0) -> torch.Tensor:
    """Return ``(n_splits, n_scenes)`` bool masks, each marking ``n_calibration`` scenes drawn at random (seeded)."""
    n_scenes = _check_int(n_scenes, "n_scenes", 2)
    n_calibration = _check_int(n_calibration, "n_calibration", 1)
    n_splits = _check_int(n_splits, "n_splits", 1)
    if n_calibration >= n_scenes:
        raise ValueError(f"n_calibration must be below n_scenes={n_scenes} (test scenes are needed), got {n_calibration}")
    g = torch.Generator().manual_seed(_check_int(seed, "seed", 0))
    ranks = torch.rand(n_splits, n_scenes, generator=g).argsort(1).argsort(1)
    return ranks < n_calibration


def split_risks(
    losses: torch.Tensor,
    grid: torch.Tensor,
    splits: torch.Tensor,
    alpha: float,
    bound: float = 1.0,
    evaluate: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Run conformal risk control on every split at once and score it on the split's test scenes.

    ``losses`` ``(N, G)`` are all scenes' loss curves, ``splits`` ``(S, N)`` bool masks of calibration
    scenes (:func:`random_splits`). Returns ``lambda`` ``(S,)``, ``index`` (into ``grid``), ``risk``
    ``(S,)`` the mean test-scene loss at the split's lambda, and ``scene_loss`` ``(S, N)`` each scene's
    loss at that lambda (NaN for calibration scenes). ``evaluate`` maps names to other ``(N, G)`` loss
    curves (e.g. digit-pixel miscoverage) scored at the same lambdas; their means are returned as
    ``risk_<name>``.
    """
    grid = _check_grid(grid)
    alpha, bound = _check_alpha(alpha), _check_bound(bound)
    losses = _check_losses(losses, grid, bound)
    if not isinstance(splits, torch.Tensor) or splits.dtype != torch.bool or splits.ndim != 2 or splits.shape[1] != losses.shape[0]:
        raise ValueError(f"splits must be a (S, {losses.shape[0]}) bool tensor of calibration masks")
    n = splits.sum(1)
    if not bool((n == n[0]).all()) or int(n[0]) < 1 or int(n[0]) >= losses.shape[0]:
        raise ValueError("every split must hold the same number of calibration scenes, at least one, and leave test scenes")
    n = int(n[0])
    if bound / (n + 1) > alpha:
        raise ValueError(f"alpha={alpha} with B={bound} needs at least {math.ceil(bound / alpha - 1 - 1e-9)} calibration scenes, got n={n}")
    cal = splits.double()
    index = _lambda_hat(cal @ losses / n, n, grid, alpha, bound)
    if bool((index < 0).any()):
        raise ValueError(f"no lambda of the grid meets the bound at alpha={alpha} on some split")
    test = ~splits
    out = {"lambda": grid[index], "index": index}
    for name, curves in {"": losses, **(evaluate or {})}.items():
        if name:
            curves = _check_losses(curves, grid, bound)
        at = curves.T[index]  # (S, N): each scene's loss at the split's lambda
        key = "_" + name if name else ""
        out["risk" + key] = (at * test).sum(1) / test.sum(1)
        if not name:
            out["scene_loss"] = torch.where(test, at, torch.full_like(at, float("nan")))
    return out


def pooled_pixel_threshold(scores: torch.Tensor, alpha: float) -> float:
    """Return the conformal threshold computed as if every pixel were an exchangeable unit (a mistake).

    ``scores`` are per-pixel scores of any shape (NaN = ignored) from the calibration scenes; they are
    pooled into one list and passed to :func:`conformal_quantile`. The pixels of a scene are dependent,
    so the finite-sample guarantee, whose correction shrinks with the number of pixels, does not hold.
    """
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise TypeError("scores must be a floating-point tensor of per-pixel scores")
    flat = scores.detach().flatten()
    return conformal_quantile(flat[~torch.isnan(flat)], alpha)


def pixel_counts(
    labels: torch.Tensor,
    loss: str = "miscoverage",
    pixels: str = "all",
    ignore_index: int = IGNORE_INDEX,
    background: int = 0,
) -> torch.Tensor:
    """Return, per scene, the number of pixels that :func:`scene_losses` counts for ``loss`` and ``pixels``, ``(B,)``."""
    _check_label_map(labels, "labels")
    background = _check_background(background)
    if labels.ndim != 3:
        raise ValueError(f"labels must have shape (B, H, W), got {tuple(labels.shape)}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if pixels not in _POOLINGS:
        raise ValueError(f"pixels must be one of {_POOLINGS}, got {pixels!r}")
    valid = labels != ignore_index
    counted = valid & (labels != background) if (loss == "fnr" or pixels == "digits") else valid
    return counted.flatten(1).sum(1).cpu()


def pooled_split_risks(
    losses: torch.Tensor, counts: torch.Tensor, grid: torch.Tensor, splits: torch.Tensor, alpha: float
) -> dict[str, torch.Tensor]:
    """The mistake, on every split at once: calibrate as if the calibration scenes' *pixels* were exchangeable.

    lambda is the smallest grid point at which at least ceil((m+1)(1-alpha)) of the m pooled calibration
    pixels have a score at most lambda (the split-conformal quantile of :func:`pooled_pixel_threshold`,
    rounded up to the grid). ``losses`` ``(N, G)`` and ``counts`` ``(N,)`` come from :func:`scene_losses`
    and :func:`pixel_counts`. Returns ``lambda``, ``index``, ``risk`` (mean over test scenes of the
    per-scene loss, as in :func:`split_risks`) and ``pixel_risk`` (share of all test pixels pooled).
    """
    grid = _check_grid(grid)
    alpha = _check_alpha(alpha)
    losses = _check_losses(losses, grid, 1.0)
    if not isinstance(counts, torch.Tensor) or counts.shape != (losses.shape[0],) or counts.is_floating_point():
        raise ValueError(f"counts must be an integer tensor of shape ({losses.shape[0]},), one pixel count per scene")
    if not isinstance(splits, torch.Tensor) or splits.dtype != torch.bool or splits.ndim != 2 or splits.shape[1] != losses.shape[0]:
        raise ValueError(f"splits must be a (S, {losses.shape[0]}) bool tensor of calibration masks")
    c = counts.double()
    above = losses * c[:, None]  # pixels per scene whose score exceeds lambda
    cal, test = splits.double(), (~splits).double()
    m = cal @ c  # (S,) pooled calibration pixels
    rank = torch.ceil((m + 1) * (1 - alpha) - 1e-9)
    if bool((rank > m).any()):
        raise ValueError(f"alpha={alpha} needs more calibration pixels than some split holds")
    ok = (m[:, None] - cal @ above) >= rank[:, None]
    index = torch.where(ok.any(1), ok.double().argmax(1), torch.full((ok.shape[0],), -1))
    if bool((index < 0).any()):
        raise ValueError("no lambda of the grid reaches the pooled quantile on some split")
    at = losses.T[index]
    return {
        "lambda": grid[index],
        "index": index,
        "risk": (at * test).sum(1) / test.sum(1),
        "pixel_risk": (above.T[index] * test).sum(1) / (test @ c),
    }
