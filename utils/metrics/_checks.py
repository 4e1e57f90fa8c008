"""Argument checks shared by the metrics (private): they raise ``TypeError``/``ValueError`` naming the argument."""

from __future__ import annotations

import math
import numbers

import torch


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


def _check_pixels(t: torch.Tensor, name: str, shape: torch.Size | None = None) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if shape is not None and t.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def _flat_scores(
    score: torch.Tensor, positive: torch.Tensor, name: str = "positive"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a float ``score`` and a bool ``positive`` (named ``name``) of one shape; return both flat, on the CPU."""
    _check_pixels(score, "score")
    _check_pixels(positive, name, score.shape)
    if positive.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got dtype {positive.dtype}")
    if not score.is_floating_point():
        raise TypeError(f"score must be floating point, got dtype {score.dtype}")
    s = score.detach().flatten().double().cpu()
    if torch.isnan(s).any():
        raise ValueError("score holds NaN values")
    return s, positive.detach().flatten().cpu()


def _check_int(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_fraction(value: object, name: str, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not ((0 < value) if low_open else (0 <= value)) or value > 1:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def _check_mask(mask: torch.Tensor | None, shape: torch.Size, name: str = "mask") -> None:
    if mask is None:
        return
    _check_pixels(mask, name, shape)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got dtype {mask.dtype}")


def _check_probs(probs: torch.Tensor, num_classes: int) -> None:
    """Check the shape and dtype of ``probs``: ``(B, K, H, W)`` or ``(N, K)`` floating point, K == ``num_classes``."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim not in (2, 4):
        raise ValueError(f"probs must have shape (B, K, H, W) or (N, K), got {tuple(probs.shape)}")
    if not probs.is_floating_point():
        raise TypeError(f"probs must be floating point probabilities, got dtype {probs.dtype}")
    if probs.shape[1] != num_classes:
        raise ValueError(f"probs must have num_classes={num_classes} entries along dim 1, got {tuple(probs.shape)}")


def _check_probs4(probs: object, name: str = "probs", values: bool = True) -> torch.Tensor:
    """Check that ``probs`` is a floating-point ``(B, K, H, W)`` tensor (with ``values``: of probabilities over dim 1); return it."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim != 4:
        raise ValueError(f"{name} must have shape (B, K, H, W), got {tuple(probs.shape)}")
    if not probs.is_floating_point():
        raise TypeError(f"{name} must be floating-point probabilities, got dtype {probs.dtype}")
    if values:
        _check_prob_values(probs)
    return probs


def _check_prob_values(p: torch.Tensor) -> None:
    """Check that ``p`` (classes along dim 1) holds finite probabilities in [0, 1] summing to 1 over dim 1."""
    if p.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(p))  # one pass; NaN anywhere makes both NaN
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("probs holds NaN or infinite values")
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"probs must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]")
    err = float((p.sum(dim=1, dtype=torch.float32) - 1).abs().max())
    if err > 1e-3:
        raise ValueError(f"probs must sum to 1 over dim 1 (classes), but a pixel is off by {err:.3g}")



def _check_background(background: object, num_classes: int | None = None, allow_none: bool = False) -> int | None:
    """Return the background class as an int in ``[0, num_classes)`` (``None`` only where ``allow_none``)."""
    if background is None and allow_none:
        return None
    if isinstance(background, bool) or not isinstance(background, numbers.Integral):
        also = " or None (no background class)" if allow_none else ""
        raise TypeError(f"background must be a class index (int){also}, got {background!r}")
    if background < 0 or (num_classes is not None and background >= num_classes):
        bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise ValueError(f"background must be a class in {bound}, got {background!r}")
    return int(background)
