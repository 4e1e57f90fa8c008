"""Acquisition scores: a pixel map per strategy, its mean over scenes or areas, and the top-k choice."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics._checks import _check_probs4
from ..uncertainty import Predictive
from .config import STRATEGIES

__all__ = [
    "area_scores",
    "bald",
    "least_confidence",
    "pixel_uncertainty",
    "predictive_entropy",
    "scene_scores",
    "select",
    "var_ratios",
    "variation_ratio_map",
]

#: The strategies that need MC-dropout samples; the others need one eval-mode pass (random: none).
MC_STRATEGIES: tuple[str, ...] = ("bald", "var_ratios")


def variation_ratio_map(member_probs: torch.Tensor) -> torch.Tensor:
    """Return ``1 - f_mode / T`` per pixel ``(N, H, W)``: the share of the T samples whose argmax is not the most frequent class."""
    if not isinstance(member_probs, torch.Tensor) or member_probs.ndim != 5 or member_probs.shape[0] < 2:
        raise ValueError(f"member_probs must have shape (T, N, K, H, W) with T >= 2, got {tuple(getattr(member_probs, 'shape', ()))}")
    votes = F.one_hot(member_probs.argmax(2), member_probs.shape[2]).sum(0)  # (N, H, W, K)
    return 1.0 - votes.amax(-1).float() / member_probs.shape[0]


def pixel_uncertainty(predictive: Predictive, strategy: str) -> torch.Tensor:
    """Return the pixel map ``(N, H, W)`` that ``strategy`` averages: 1 - max softmax, entropy, mutual information or variation ratio."""
    if not isinstance(predictive, Predictive):
        raise TypeError(f"predictive must be a utils.uncertainty.Predictive, got {type(predictive).__name__}")
    if strategy == "least_confidence":
        return 1.0 - predictive.max_softmax
    if strategy == "entropy":
        return predictive.total_entropy
    if strategy in MC_STRATEGIES and predictive.samples < 2:
        raise ValueError(f"{strategy} needs a predictive with >= 2 samples (MC dropout or an ensemble)")
    if strategy == "bald":
        return predictive.mutual_information
    if strategy == "var_ratios":
        if predictive.members is None:
            raise ValueError("var_ratios needs the samples' probabilities: predict with keep_members=True")
        return variation_ratio_map(predictive.members)
    raise ValueError(f"strategy must be one of {STRATEGIES[1:]}, got {strategy!r}")


def _check_map(pixel_map: torch.Tensor) -> None:
    if not isinstance(pixel_map, torch.Tensor) or not pixel_map.is_floating_point():
        raise TypeError(f"pixel_map must be a floating-point torch.Tensor, got {getattr(pixel_map, 'dtype', type(pixel_map))}")
    if pixel_map.ndim != 3:
        raise ValueError(f"pixel_map must have shape (N, H, W), got {tuple(pixel_map.shape)}")


def scene_scores(pixel_map: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Return the scene mean ``(N,)`` of a pixel map ``(N, H, W)``, over all pixels or over ``mask`` (bool, same shape)."""
    _check_map(pixel_map)
    if mask is None:
        return pixel_map.mean((1, 2))
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != pixel_map.shape:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(pixel_map.shape)}")
    return (pixel_map * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)


def area_scores(pixel_map: torch.Tensor, patch: int) -> torch.Tensor:
    """Return the mean of a pixel map ``(N, H, W)`` over each ``patch`` x ``patch`` area, ``(N, (H / patch) * (W / patch))``, row by row."""
    _check_map(pixel_map)
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1 or pixel_map.shape[1] % patch or pixel_map.shape[2] % patch:
        raise ValueError(f"patch must be a positive int dividing {tuple(pixel_map.shape[1:])}, got {patch!r}")
    return F.avg_pool2d(pixel_map[:, None].double(), patch).flatten(1).to(pixel_map.dtype)


def least_confidence(probs: torch.Tensor) -> torch.Tensor:
    """Return each scene's mean of ``1 - max_k p_k`` ``(N,)`` from softmax probabilities ``(N, K, H, W)``."""
    _check_probs4(probs)
    return scene_scores(1.0 - probs.amax(1))


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Return each scene's mean predictive entropy (nats) ``(N,)`` from probabilities ``(N, K, H, W)``."""
    _check_probs4(probs)
    return scene_scores(-torch.special.xlogy(probs, probs).sum(1))


def _check_members(member_probs: torch.Tensor) -> None:
    if not isinstance(member_probs, torch.Tensor):
        raise TypeError(f"member_probs must be a torch.Tensor, got {type(member_probs).__name__}")
    if member_probs.ndim != 5 or member_probs.shape[0] < 2:
        raise ValueError(f"member_probs must have shape (T, N, K, H, W) with T >= 2, got {tuple(member_probs.shape)}")
    _check_probs4(member_probs.flatten(0, 1), "member_probs")


def bald(member_probs: torch.Tensor) -> torch.Tensor:
    """Return each scene's mean mutual information (BALD, nats) ``(N,)`` from member probabilities ``(T, N, K, H, W)``, T >= 2."""
    _check_members(member_probs)
    ent = -torch.special.xlogy(member_probs, member_probs).sum(2)
    mean = member_probs.mean(0)
    total = -torch.special.xlogy(mean, mean).sum(1)
    return scene_scores((total - ent.mean(0)).clamp_min(0.0))


def var_ratios(member_probs: torch.Tensor) -> torch.Tensor:
    """Return each scene's mean variation ratio ``1 - f_mode / T`` ``(N,)`` from member probabilities ``(T, N, K, H, W)``, T >= 2."""
    _check_members(member_probs)
    return scene_scores(variation_ratio_map(member_probs))


def select(scores: torch.Tensor, k: int, available: torch.Tensor, tiebreak: torch.Tensor | None = None) -> torch.Tensor:
    """Return the indices of the ``k`` highest ``scores`` among ``available`` (bool mask), highest first.

    Ties go to the higher ``tiebreak`` (same shape; e.g. seeded random numbers), then to the lower index.
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 1 or not scores.is_floating_point():
        raise ValueError(f"scores must be a 1-D floating-point tensor, got {getattr(scores, 'shape', type(scores))}")
    if not isinstance(available, torch.Tensor) or available.dtype != torch.bool or available.shape != scores.shape:
        raise ValueError(f"available must be a bool tensor of shape {tuple(scores.shape)}")
    if tiebreak is not None and (not isinstance(tiebreak, torch.Tensor) or tiebreak.shape != scores.shape):
        raise ValueError(f"tiebreak must be None or a tensor of shape {tuple(scores.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= int(available.sum()):
        raise ValueError(f"k must be an int in [1, {int(available.sum())}] (the available units), got {k!r}")
    if torch.isnan(scores[available]).any():
        raise ValueError("scores holds NaN for an available unit")
    order = torch.arange(len(scores))
    if tiebreak is not None:
        order = torch.sort(-tiebreak.double(), stable=True).indices
    masked = torch.where(available, scores.double(), torch.tensor(-torch.inf, dtype=torch.float64))[order]
    return order[torch.sort(-masked, stable=True).indices][:k]
