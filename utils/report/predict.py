"""Every method's predictive distribution on one batch: the plain softmax, with a temperature, MC dropout, an ensemble."""

from __future__ import annotations

import torch
from torch import nn

from .. import uncertainty
from ..models import forward_logits, mc_dropout_mode

__all__ = ["check_logits_not_probs", "logits", "methods", "predict"]


def check_logits_not_probs(z: torch.Tensor) -> None:
    """Refuse model outputs that look like probabilities: every pixel's outputs non-negative and summing to 1."""
    if z.numel() and bool((z >= 0).all()) and torch.allclose(z.sum(1), torch.ones_like(z[:, 0]), atol=1e-4):
        raise ValueError("the model returns probabilities (non-negative, summing to 1 over classes), "
                         "but diagnose expects logits: remove the final softmax from the model's forward")  # fmt: skip


def logits(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Return the model's float32 logits of ``x`` on ``device``, checked not to be probabilities."""
    z = forward_logits(model, x.to(device)).float()
    check_logits_not_probs(z)
    return z


def methods(temperature: float | None, mc_dropout: int | None, n_models: int) -> list[str]:
    """Return the methods a diagnosis reports, in the table's order."""
    out = ["max-softmax"]
    if temperature is not None:
        out.append("temperature-scaled")
    if mc_dropout:
        out.append("MC dropout")
    if n_models > 1:
        out += ["ensemble", *(f"member {i}" for i in range(n_models))]
    return out


def _one_pass(z: torch.Tensor) -> uncertainty.Predictive:
    """The one-member predictive distribution of logits ``z``, computed as ``uncertainty.single`` computes it."""
    p = torch.softmax(z.float(), dim=1)
    return uncertainty.Predictive(p.cpu(), uncertainty.entropy(p, dim=1).cpu(), 1)


def predict(models: list[nn.Module], x: torch.Tensor, temperature: float | None, mc_dropout: int | None,
            device: torch.device) -> dict[str, uncertainty.Predictive]:  # fmt: skip
    """Return every method's predictive distribution on one batch (the code paths of utils.uncertainty, one batch each)."""
    first = models[0]
    out: dict[str, uncertainty.Predictive] = {}
    first.eval()
    z = logits(first, x, device)  # one forward pass serves the plain and the scaled softmax
    out["max-softmax"] = _one_pass(z)
    if temperature is not None:
        out["temperature-scaled"] = _one_pass(z / temperature)  # what calibration.TemperatureScaled returns
    if mc_dropout:
        mc_dropout_mode(first)
        passes = [uncertainty._sampler(first, device)] * mc_dropout  # the course's U-Net: stem once, chunks of 16
        out["MC dropout"] = uncertainty._stream(passes, x, x.shape[0], keep_members=False)
        first.eval()
    if len(models) > 1:
        ens = uncertainty.ensemble(models, x, batch_size=16, device=device, keep_members=True)  # faster in cache
        for i in range(len(models)):
            m = ens.members[i]
            out[f"member {i}"] = uncertainty.Predictive(m, uncertainty.entropy(m), 1)
        ens.members = None
        out["ensemble"] = ens
    return out
