"""Ranking counts shared by the detection and selective-prediction metrics (private)."""

from __future__ import annotations

import torch

def _tie_groups(s: torch.Tensor, flag: torch.Tensor, descending: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort by score and return, per group of tied scores in that order, the float64 counts of flagged and others."""
    order = torch.argsort(s, descending=descending, stable=True)
    s, flag = s[order], flag[order]
    _, counts = torch.unique_consecutive(s, return_counts=True)
    ends = counts.cumsum(0) - 1
    flagged = flag.double().cumsum(0)[ends]
    flagged = torch.diff(flagged, prepend=flagged.new_zeros(1))
    return flagged, counts.double() - flagged


def _auroc_groups(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """AUROC from per-group counts in increasing score order (ties within a group count one half)."""
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = neg.cumsum(0) - neg
    return float((pos * (below + neg / 2)).sum() / (n_pos * n_neg))


def _ap_groups(tp: torch.Tensor, fp: torch.Tensor) -> float:
    """Average precision from per-group counts in decreasing score order: Σ_g (recall_g - recall_{g-1}) precision_g."""
    n_pos, n_neg = float(tp.sum()), float(fp.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ctp, cfp = tp.cumsum(0), fp.cumsum(0)
    precision = torch.where(tp > 0, ctp / (ctp + cfp).clamp(min=1), torch.zeros_like(ctp))
    return float((tp * precision).sum() / n_pos)


def _fpr_at_tpr_groups(tp: torch.Tensor, fp: torch.Tensor, tpr: float) -> float:
    """FPR at the first ROC point (per-group counts in decreasing score order) whose TPR reaches ``tpr``."""
    n_pos, n_neg = float(tp.sum()), float(fp.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    reached = tp.cumsum(0) / n_pos >= tpr - 1e-12
    first = int(reached.nonzero()[0, 0])
    return float(fp.cumsum(0)[first] / n_neg)


def _harmonic_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return H(b) - H(a) = Σ_{j=a+1}^{b} 1/j for float64 integer-valued tensors (H = harmonic numbers)."""
    return torch.special.digamma(b + 1) - torch.special.digamma(a + 1)


def _aurc_groups(err: torch.Tensor, ok: torch.Tensor) -> dict[str, float]:
    """AURC, its optimum, E-AURC and the error rate from per-group counts in increasing uncertainty order.

    A group of s tied pixels with e errors, entered after k0 pixels with E0 errors, has expected risk
    (E0 + j e/s) / (k0 + j) at its j-th pixel when the tie is broken at random; summed over j this is
    e + (E0 - k0 e/s) (H(k0 + s) - H(k0)).
    """
    size = err + ok
    n, n_err = float(size.sum()), float(err.sum())
    if n == 0:
        return {"aurc": float("nan"), "optimal": float("nan"), "e_aurc": float("nan"), "risk": float("nan")}
    err, size = err[size > 0], size[size > 0]
    k0 = size.cumsum(0) - size
    e0 = err.cumsum(0) - err
    total = (err + (e0 - k0 * err / size) * _harmonic_diff(k0, k0 + size)).sum()
    aurc_value = float(total / n)
    n_ok = n - n_err
    t = torch.tensor([n_ok], dtype=torch.float64)
    optimal = float((n_err - n_ok * _harmonic_diff(t, t + n_err)) / n) if n_err > 0 else 0.0
    return {"aurc": aurc_value, "optimal": optimal, "e_aurc": aurc_value - optimal, "risk": n_err / n}
