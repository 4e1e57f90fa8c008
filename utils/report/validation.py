"""What the validation images fit: the temperature (streamed) and the conformal thresholds (from mean loss curves).

One pass over the validation images adds up, per loss, the images' loss curves over the lambda grid
(:func:`utils.conformal.scene_losses`), so conformal risk control keeps one curve, not one per image.
The temperature is :func:`utils.calibration.fit_temperature_stream`: Newton steps on the NLL whose
derivatives are sums over batches. The logits of the first pass are kept while they fit in
``cache_mb``; beyond that they are dropped and every Newton step runs the model over the validation
images again (typically five to ten passes), so memory stays flat for any number of images.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import calibration, conformal
from .inputs import Data, batches, check_background, check_labels
from .predict import logits

__all__ = ["Fitted", "fit_on_validation"]


@dataclass
class Fitted:
    """The temperature, the thresholds (``fnr``, ``miscoverage``), the number of validation images and why guarantees are left out."""

    temperature: float | None
    thresholds: dict[str, float]
    images: int
    classes: int
    guarantee_note: str | None = None


def _labelled(val: Data, model: nn.Module, batch_size: int, device: torch.device, ignore_index: int,
              background: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """Yield the model's logits and the checked labels of every validation batch."""
    parts, _ = batches(val, "val", batch_size)
    for x, y in parts:
        if y is None:
            raise ValueError("val must come with label maps (it calibrates the temperature and the thresholds)")
        with torch.no_grad():
            z = logits(model, x, device)
        check_background(background, z.shape[1])
        yield z, check_labels(y, z.shape[1], ignore_index, "val").to(z.device)


def fit_on_validation(model: nn.Module, val: Data, *, temperature: float | None, alpha: float, background: int | None,
                      ignore_index: int, batch_size: int, device: torch.device, progress: bool = False,
                      cache_mb: float = 256.0) -> Fitted:  # fmt: skip
    """Return the temperature (fitted unless given) and the conformal thresholds at ``alpha`` from ``val``."""
    grid = conformal.lambda_grid()
    losses = ("miscoverage",) if background is None else ("miscoverage", "fnr")
    total = {loss: torch.zeros(grid.numel(), dtype=torch.float64) for loss in losses}
    cache: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if temperature is None else None
    held, budget, n, k = 0, cache_mb * 2**20, 0, 0
    passes = _labelled(val, model, batch_size, device, ignore_index, background)
    for z, y in tqdm(passes, desc="validation", disable=not progress, leave=False):
        p, k = z.softmax(1).cpu(), z.shape[1]
        for loss in losses:
            total[loss] += conformal.scene_losses(p, y.cpu(), grid, loss=loss, ignore_index=ignore_index,
                                                  background=background).sum(0)  # fmt: skip
        n += z.shape[0]
        if cache is not None:
            held += z.numel() * z.element_size() + y.numel() * y.element_size()
            if held <= budget:
                cache.append((z.cpu(), y.cpu()))
            else:
                cache = None  # over budget: the temperature's passes run the model again
    if temperature is None:
        source = (lambda: iter(cache)) if cache is not None else (
            lambda: _labelled(val, model, batch_size, device, ignore_index, background))  # fmt: skip
        temperature = calibration.fit_temperature_stream(source, ignore_index=ignore_index)
    del cache
    if 1 / (n + 1) > alpha:
        need = math.ceil(1 / alpha - 1 - 1e-9)
        note = f"val holds {n} images; conformal risk control at alpha={alpha:g} needs at least {need}"
        warnings.warn(f"{note}, so the report leaves the guarantee rows out", stacklevel=3)
        return Fitted(temperature, {}, n, k, note)
    thresholds = {loss: conformal.crc_lambda_from_mean(total[loss] / n, n, grid, alpha) for loss in losses}
    return Fitted(temperature, thresholds, n, k)
