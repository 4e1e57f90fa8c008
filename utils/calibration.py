"""Temperature scaling (Guo et al. 2017) for dense prediction: one scalar T for every pixel.

Calibrated probabilities are ``softmax(logits / T)``. Because ``T > 0`` divides every logit of a
pixel by the same positive number, the order of the logits, and so the argmax map (the
segmentation), never changes: temperature scaling changes confidence, never accuracy or IoU.

:func:`fit_temperature` picks the ``T`` that minimises the mean pixel negative log-likelihood over
the non-ignored pixels of a held-out split (fit it on validation pixels, never on the test split).
:func:`fit_temperature_stream` fits the same ``T`` by the same steps from batches of logits that are
computed anew for every step, so that the validation logits never need to be held at once.
:class:`TemperatureScaled` wraps any model so that the scaled model can be passed wherever a model
is expected.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .config import IGNORE_INDEX
from .metrics._checks import _check_label_map, _check_mask
from .models import forward_logits

__all__ = ["TemperatureScaled", "apply_temperature", "fit_temperature", "fit_temperature_stream"]

#: Relative tolerance of the fitted temperature, and the most Newton/bisection steps of the search.
_TOL = 1e-6
_MAX_STEPS = 100
#: Float64 elements per chunk of the NLL evaluation (32 MB), so memory stays flat for any number of pixels.
_CHUNK_ELEMENTS = 1 << 22


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, torch.Tensor) and temperature.numel() == 1:
        temperature = float(temperature)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return float(temperature)


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(
            f"logits must have a class dimension 1, e.g. (N, K, H, W) or (P, K), got {tuple(logits.shape)}"
        )


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Return ``logits / temperature`` (class dimension 1); the argmax is unchanged for any ``T > 0``."""
    _check_logits(logits)
    return logits / _check_temperature(temperature)


def _flatten(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int, mask: torch.Tensor | None, need_valid: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate; return logits ``(N, K, S)``, clamped target ``(N, S)`` and the valid-pixel mask ``(N, S)``."""
    _check_logits(logits)
    _check_label_map(target, "target")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have shape {expected} to match logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
    num_classes = logits.shape[1]
    target = target.to(logits.device)
    valid = target != ignore_index
    if mask is not None:
        _check_mask(mask, torch.Size(expected))
        valid = valid & mask.to(logits.device)
    bad = valid & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        raise ValueError(f"target holds labels outside [0, {num_classes}) that are not ignore_index={ignore_index}")
    if need_valid and not bool(valid.any()):
        raise ValueError("no valid pixel to fit the temperature on (all ignored or masked out)")
    n, k = logits.shape[:2]
    flat = logits.reshape(n, k, -1)
    target = torch.where(valid, target, torch.zeros_like(target)).long().reshape(n, -1)
    return flat, target, valid.reshape(n, -1)


def _derivatives_fn(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> Callable[[float], tuple[float, float]]:
    """Return ``beta -> (f'(beta), f''(beta))`` of the mean NLL ``f`` of ``softmax(beta * logits)``, in float64 chunks.

    With ``p = softmax(beta * z)``: ``f'(beta) = mean(E_p[z] - z_y)`` and ``f''(beta) = mean(Var_p[z]) >= 0``.
    """
    count = int(valid.sum())
    sums = _sums_fn(logits, target, valid)

    def derivatives(beta: float) -> tuple[float, float]:
        grad, hess = sums(beta)
        return float(grad) / count, float(hess) / count

    return derivatives


def _sums_fn(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> Callable[[float], tuple[torch.Tensor, torch.Tensor]]:
    """Return ``beta -> (sum of E_p[z] - z_y, sum of Var_p[z])`` over the valid pixels, float64, chunk by chunk."""
    n, k, s = logits.shape
    true_logit = logits.gather(1, target.unsqueeze(1)).squeeze(1).double()  # one value per pixel
    if k * s <= _CHUNK_ELEMENTS:  # whole images per chunk
        rows = _CHUNK_ELEMENTS // (k * s)
        chunks = [(slice(i, i + rows), slice(None)) for i in range(0, n, rows)]
    else:  # one image is larger than a chunk: split its pixels
        cols = max(1, _CHUNK_ELEMENTS // k)
        chunks = [(slice(i, i + 1), slice(j, j + cols)) for i in range(n) for j in range(0, s, cols)]

    def sums(beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        grad = torch.zeros((), dtype=torch.float64, device=logits.device)
        hess = torch.zeros((), dtype=torch.float64, device=logits.device)
        for rows_, cols_ in chunks:
            z = logits[rows_, :, cols_].double()
            p = torch.softmax(beta * z, dim=1)
            mean_z = (p * z).sum(1)
            var_z = (p * (z - mean_z.unsqueeze(1)).square()).sum(1)
            keep = valid[rows_, cols_]
            grad += (mean_z - true_logit[rows_, cols_])[keep].sum()
            hess += var_z[keep].sum()
        return grad, hess

    return sums


def fit_temperature(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    mask: torch.Tensor | None = None,
    bounds: tuple[float, float] = (0.01, 100.0),
) -> float:
    """Return the temperature ``T`` in ``bounds`` minimising the mean NLL of ``softmax(logits / T)``.

    ``logits`` are ``(N, K, H, W)`` with a ``(N, H, W)`` integer ``target`` (or ``(P, K)`` with ``(P,)``);
    pixels labelled ``ignore_index`` or ``False`` in the optional bool ``mask`` are left out. The
    mean NLL is convex in ``beta = 1 / T`` (its second derivative is the mean variance of the logits
    under the predicted distribution), so a safeguarded Newton search on ``log beta``, kept inside a
    shrinking bracket and falling back to bisection, finds the minimum to a relative tolerance of
    about 1e-6 in a handful of passes; it is deterministic. Each pass runs in float64 chunks, so
    memory stays flat for millions of pixels. A minimum beyond a bound returns that bound with a
    ``UserWarning`` saying which bound to widen (the NLL still falls there: for example labels that
    contradict the logits push ``T`` up, perfectly separated logits push it towards 0).
    """
    lo, hi = _check_bounds(bounds)
    flat, tgt, valid = _flatten(logits, target, ignore_index, mask)
    with torch.no_grad():
        derivatives = _derivatives_fn(flat.detach(), tgt, valid)
        beta = _newton(derivatives, lo, hi)
        _warn_at_bound(derivatives, beta, lo, hi)
    return 1.0 / beta


def fit_temperature_stream(
    batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    ignore_index: int = IGNORE_INDEX,
    bounds: tuple[float, float] = (0.01, 100.0),
) -> float:
    """Return :func:`fit_temperature`'s ``T`` from ``batches()``, an iterable of ``(logits, target)`` pairs made anew on each call.

    The search is :func:`fit_temperature`'s (the same Newton steps from the same start); each step
    calls ``batches()`` once and adds the NLL's derivatives over the batches, so only one batch of
    logits is held at a time (for example ``lambda: ((model(x), y) for x, y in loader)``: the model runs
    once per step, typically five to ten times). Sums in another order make it equal to
    :func:`fit_temperature` on all the logits up to float64 rounding (about 1e-15 relative). Every call
    must give the same pixels.
    """
    if not callable(batches):
        raise TypeError("batches must be a callable returning an iterable of (logits, target) pairs, anew on each call")
    lo, hi = _check_bounds(bounds)

    def derivatives(beta: float) -> tuple[float, float]:
        grad = hess = 0.0
        count = seen = 0
        for item in batches():
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"batches() must yield (logits, target) pairs, got {type(item).__name__}")
            flat, tgt, valid = _flatten(item[0], item[1], ignore_index, None, need_valid=False)
            g, h = _sums_fn(flat.detach(), tgt, valid)(beta)
            grad, hess, count, seen = grad + float(g), hess + float(h), count + int(valid.sum()), seen + 1
        if not seen:
            raise ValueError("batches() gave no batch to fit the temperature on")
        if not count:
            raise ValueError("no valid pixel to fit the temperature on (all ignored)")
        return grad / count, hess / count

    with torch.no_grad():
        beta = _newton(derivatives, lo, hi)
        _warn_at_bound(derivatives, beta, lo, hi)
    return 1.0 / beta


def _check_bounds(bounds: object) -> tuple[float, float]:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds must be a (low, high) pair, got {bounds!r}")
    lo, hi = (_check_temperature(b) for b in bounds)
    if not lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds!r}")
    return lo, hi


def _newton(derivatives: Callable[[float], tuple[float, float]], lo: float, hi: float) -> float:
    """Return the minimising ``beta = 1 / T`` in ``[1 / hi, 1 / lo]``: safeguarded Newton steps on ``log beta`` from beta = 1, bisection as fallback.

    Steps on ``log beta`` rather than ``beta``: for a confident model the NLL is nearly flat at beta = 1
    and steep below, so a Newton step in ``beta`` overshoots far (ten passes instead of six on the
    fixed-set recipe's validation logits, the same T to 1e-13).
    """
    a, b = 1.0 / hi, 1.0 / lo  # bracket on beta; an end is "seen" once its derivative is known
    a_seen = b_seen = False
    beta = min(max(1.0, a), b)
    for _ in range(_MAX_STEPS):
        grad, hess = derivatives(beta)
        if grad == 0.0:
            break
        if grad < 0:  # the minimum lies at larger beta
            a, a_seen = beta, True
        else:
            b, b_seen = beta, True
        if b - a <= _TOL * beta:
            break
        curvature = beta * beta * hess + beta * grad  # second derivative in u = log beta
        step = beta * math.exp(min(50.0, max(-50.0, -beta * grad / curvature))) if curvature > 0 else math.nan
        if not math.isfinite(step) or (step <= a and a_seen) or (step >= b and b_seen):
            step = math.sqrt(a * b)  # bisection (geometric: beta spans decades)
        step = min(max(step, a), b)
        converged = abs(step - beta) <= _TOL * beta
        beta = step
        if converged:
            break
    return beta


def _warn_at_bound(derivatives: Callable[[float], tuple[float, float]], beta: float, lo: float, hi: float) -> None:
    """Warn if ``beta`` sits on a bound of the search while the NLL still falls beyond it."""
    for bound, beyond, wider in ((hi, 1, (lo, hi * 10)), (lo, -1, (lo / 10, hi))):
        if abs(beta * bound - 1.0) <= 1e-6:
            grad, _ = derivatives(1.0 / bound)
            if grad * beyond > 0:  # grad > 0 at T = hi: smaller beta (larger T) is better; the mirror at lo
                side = "above" if beyond > 0 else "below"
                warnings.warn(
                    f"fit_temperature: the NLL is still falling at the bound T = {bound:g}, so the best temperature "
                    f"lies {side} it and {bound:g} is returned; pass wider bounds, e.g. bounds=({wider[0]:g}, {wider[1]:g}), "
                    "or check that logits and labels belong together",
                    UserWarning,
                    stacklevel=3,
                )


class TemperatureScaled(nn.Module):
    """Wrap ``model`` so that its forward returns ``logits / temperature`` (a plain ``(B, K, H, W)`` tensor).

    The wrapped model keeps its parameters (``.to``, ``.eval`` and ``.parameters()`` reach it), and
    dict outputs (``{"out": ...}``) are unwrapped. The argmax map is the model's own.
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.temperature = _check_temperature(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the wrapped model's logits for ``x`` divided by the temperature."""
        return forward_logits(self.model, x) / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}"
