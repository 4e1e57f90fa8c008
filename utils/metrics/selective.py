"""Selective prediction: risk-coverage curves, AURC and E-AURC, and PAvPU (Mukhoti & Gal 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..config import IGNORE_INDEX
from ._checks import _check_fraction, _check_int, _check_label_map, _check_pixels, _flat_scores
from ._ranking import _aurc_groups, _tie_groups

def risk_coverage(
    score: torch.Tensor, error: torch.Tensor, max_points: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the risk-coverage curve ``(coverage, selective risk)`` of keeping the pixels with the lowest ``score``.

    Pixels enter by increasing uncertainty ``score``, tied scores together; one point per distinct score,
    ending at coverage 1 with risk = overall error rate. ``error`` is a bool tensor shaped like ``score``;
    ``max_points`` thins the curve evenly (for plotting) while keeping both ends.
    """
    if max_points is not None and (not isinstance(max_points, int) or max_points < 2):
        raise ValueError(f"max_points must be None or an int >= 2 (both ends are kept), got {max_points!r}")
    s, err = _flat_scores(score, error, "error")
    if s.numel() == 0:
        raise ValueError("score is empty: a risk-coverage curve needs at least one pixel")
    n_err, n_ok = _tie_groups(s, err, descending=False)
    kept = (n_err + n_ok).cumsum(0)
    coverage, risk = kept / s.numel(), n_err.cumsum(0) / kept
    if max_points is not None and len(coverage) > max_points:
        keep = torch.linspace(0, len(coverage) - 1, max_points).round().long().unique()
        coverage, risk = coverage[keep], risk[keep]
    return coverage, risk


def aurc(score: torch.Tensor, error: torch.Tensor) -> dict[str, float]:
    """Return the area under the risk-coverage curve of uncertainty ``score`` for pixels in ``error`` (bool).

    Keys: ``aurc``, the mean selective risk over the n operating points (keep the 1, 2, ..., n least
    uncertain pixels; within tied scores the expected risk of a random order); ``optimal``, the AURC of a
    perfect ranking, (1/n) [n_e - n_c (H(n) - H(n_c))] with harmonic numbers H, n_e errors and n_c correct
    pixels, which is r + (1 - r) ln(1 - r) up to O(r/n) for error rate r; ``e_aurc`` = aurc - optimal
    (0 for a perfect ranking); and ``risk`` = r. All NaN for empty input.
    """
    s, err = _flat_scores(score, error, "error")
    if s.numel() == 0:
        return _aurc_groups(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    return _aurc_groups(*_tie_groups(s, err, descending=False))


def _check_thresholds(thresholds: torch.Tensor | Sequence[float]) -> torch.Tensor:
    if not isinstance(thresholds, torch.Tensor):
        try:
            thresholds = torch.as_tensor(thresholds, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"thresholds must be a 1-D float tensor, got {type(thresholds).__name__}") from exc
    if not thresholds.is_floating_point():
        raise TypeError(f"thresholds must be a 1-D float tensor, got dtype {thresholds.dtype}")
    if thresholds.ndim != 1 or thresholds.numel() == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D tensor, got shape {tuple(thresholds.shape)}")
    if torch.isnan(thresholds).any():
        raise ValueError("thresholds holds NaN values")
    return thresholds.detach().double().cpu()


class PAvPUMeter:
    """Stream patches into the PAvPU counts of Mukhoti & Gal (2018), one set of counts per uncertainty threshold.

    Each image is tiled into non-overlapping ``patch`` × ``patch`` windows. A patch is *accurate* when the
    fraction of its non-ignored pixels that are right is >= ``accuracy_threshold``, and *uncertain* when
    the mean uncertainty over those pixels is >= the threshold; patches without a non-ignored pixel are
    skipped. PAvPU = (n_ac + n_iu) / (n_ac + n_au + n_ic + n_iu), p(accurate | certain) = n_ac / (n_ac + n_ic),
    p(uncertain | inaccurate) = n_iu / (n_ic + n_iu).
    """

    def __init__(
        self,
        thresholds: torch.Tensor | Sequence[float],
        patch: int = 4,
        accuracy_threshold: float = 0.5,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.thresholds = _check_thresholds(thresholds)
        self.patch = _check_int(patch, "patch", 1)
        self.accuracy_threshold = _check_fraction(accuracy_threshold, "accuracy_threshold")
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = ignore_index
        shape = self.thresholds.shape
        self._n_ac, self._n_au = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.int64)
        self._n_ic, self._n_iu = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.int64)

    def update(self, uncertainty: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> PAvPUMeter:
        """Count the patches of ``(B, H, W)`` maps of uncertainty (float), prediction and label; return self."""
        _check_pixels(uncertainty, "uncertainty")
        if not uncertainty.is_floating_point():
            raise TypeError(f"uncertainty must be floating point, got dtype {uncertainty.dtype}")
        if uncertainty.ndim != 3:
            raise ValueError(f"uncertainty must have shape (B, H, W), got {tuple(uncertainty.shape)}")
        for name, t in (("pred", pred), ("target", target)):
            _check_label_map(t, name)
            _check_pixels(t, name, uncertainty.shape)
        b, h, w = uncertainty.shape
        p = self.patch
        if h % p or w % p:
            raise ValueError(f"patch={p} must divide the image height and width, got (H, W) = ({h}, {w})")
        with torch.no_grad():
            u = uncertainty.detach().double()
            target = target.to(u.device)
            valid = target != self.ignore_index
            if torch.isnan(u[valid]).any():
                raise ValueError("uncertainty holds NaN values on non-ignored pixels")
            right = (pred.to(u.device) == target) & valid

            def per_patch(x: torch.Tensor) -> torch.Tensor:
                return x.reshape(b, h // p, p, w // p, p).sum(dim=(2, 4)).flatten()

            n_valid = per_patch(valid.double())
            n_right = per_patch(right.double())
            u_sum = per_patch(torch.where(valid, u, torch.zeros_like(u)))
            used = n_valid > 0
            accurate = (n_right[used] / n_valid[used] >= self.accuracy_threshold).cpu()
            mean_u = (u_sum[used] / n_valid[used]).cpu()
        thr = self.thresholds
        for flag, certain_count, uncertain_count in ((accurate, "_n_ac", "_n_au"), (~accurate, "_n_ic", "_n_iu")):
            sorted_u = mean_u[flag].sort().values
            n_certain = torch.searchsorted(sorted_u, thr, right=False)  # patches with mean uncertainty < threshold
            getattr(self, certain_count).add_(n_certain)
            getattr(self, uncertain_count).add_(sorted_u.numel() - n_certain)
        return self

    def result(self) -> dict[str, torch.Tensor]:
        """Return thresholds, pavpu, p_accurate_given_certain, p_uncertain_given_inaccurate, n_ac, n_au, n_ic, n_iu."""

        def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
            num, den = num.double(), den.double()
            return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(den, float("nan")))

        n_ac, n_au, n_ic, n_iu = self._n_ac, self._n_au, self._n_ic, self._n_iu
        return {
            "thresholds": self.thresholds.clone(),
            "pavpu": ratio(n_ac + n_iu, n_ac + n_au + n_ic + n_iu),
            "p_accurate_given_certain": ratio(n_ac, n_ac + n_ic),
            "p_uncertain_given_inaccurate": ratio(n_iu, n_ic + n_iu),
            "n_ac": n_ac.clone(),
            "n_au": n_au.clone(),
            "n_ic": n_ic.clone(),
            "n_iu": n_iu.clone(),
        }


def pavpu(
    uncertainty: torch.Tensor,
    pred: torch.Tensor,
    target: torch.Tensor,
    thresholds: torch.Tensor | Sequence[float],
    patch: int = 4,
    accuracy_threshold: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, torch.Tensor]:
    """Return the PAvPU counts and ratios of ``(B, H, W)`` maps, one entry per threshold (see :class:`PAvPUMeter`)."""
    return PAvPUMeter(thresholds, patch, accuracy_threshold, ignore_index).update(uncertainty, pred, target).result()
