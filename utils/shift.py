"""Dataset shift: image corruptions at five severities, in the style of Hendrycks & Dietterich (2019).

Each corruption maps images ``(N, C, H, W)`` in ``[0, 1]`` to new images in ``[0, 1]``; severity 1 is
mild, 5 severe, and 0 leaves the images unchanged. One parameter per severity, in
:data:`SEVERITY_PARAMS`:

``gaussian_noise``
    ``x + e`` with ``e ~ N(0, std^2)`` per pixel and channel, std ``(0.08, 0.12, 0.18, 0.26, 0.38)``
    (ImageNet-C's values).
``gaussian_blur``
    Gaussian blur with standard deviation ``sigma`` pixels (kernel radius ``ceil(3 sigma)``, reflected
    borders), applied to each channel.
``contrast``
    ``(x - m) * c + m`` with ``m`` the mean of each image and channel, factor ``c``
    ``(0.9, 0.8, 0.7, 0.6, 0.5)``. ImageNet-C's factors (0.4 ... 0.05) are far too strong here: dim
    ink on a black background is what the model reads, and at ``c = 0.4`` it finds no digit at all.
``thickness``
    Grey dilation (a max filter) of each channel with a flat disc of radius ``r`` pixels: every pixel
    takes the brightest value within distance ``r``. Bright ink on a dark background, as in
    DigitScenes, gets bolder strokes. Radii ``(1, 1.5, 2, 3, 4)`` are discs of 5, 9, 13, 29 and 49 pixels.

The parameters were chosen so that the course's trained U-Net (``unet_seed0``) degrades gradually:
on 200 validation scenes its mean IoU (clean 0.93) falls to about 0.89 / 0.85 / 0.76 / 0.53 / 0.19
(noise), 0.90 / 0.85 / 0.73 / 0.48 / 0.18 (blur), 0.91 / 0.85 / 0.75 / 0.51 / 0.20 (contrast) and
0.91 / 0.88 / 0.84 / 0.65 / 0.42 (thickness) at severities 1-5.

Every result is clipped to ``[0, 1]`` and keeps the input's shape, dtype and device. Noise comes from
a CPU ``torch.Generator`` seeded from ``(seed, kind, severity)`` and is then moved to the device, so
the same images and seed always give the same output on any device. The noise of an image depends on
its position in the batch: corrupt a whole split in one call to reproduce it exactly.

Labels: only ``thickness`` moves the objects, see :func:`corrupt_labels`.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from .config import IGNORE_INDEX
from .models import _check_unit_images

__all__ = ["CORRUPTIONS", "SEVERITY_PARAMS", "corrupt", "corrupt_labels", "shifted"]

#: The corruption kinds, in the order the book shows them.
CORRUPTIONS: tuple[str, ...] = ("gaussian_noise", "gaussian_blur", "contrast", "thickness")

#: One parameter per severity 1..5: noise std, blur sigma (pixels), contrast factor, dilation disc radius (pixels).
SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "gaussian_blur": (0.6, 0.9, 1.2, 1.6, 2.2),
    "contrast": (0.9, 0.8, 0.7, 0.6, 0.5),
    "thickness": (1.0, 1.5, 2.0, 3.0, 4.0),
}

MAX_SEVERITY = 5


def _check_kind(kind: str) -> str:
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {list(CORRUPTIONS)}, got {kind!r}")
    return kind


def _check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise TypeError(f"severity must be an int in 0..{MAX_SEVERITY}, got {type(severity).__name__}")
    if not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must be an int in 0..{MAX_SEVERITY}, got {severity!r}")
    return int(severity)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _generator(seed: int, kind: str, severity: int) -> torch.Generator:
    """A CPU generator whose stream depends on ``(seed, kind, severity)`` only."""
    state = np.random.SeedSequence([seed, zlib.crc32(kind.encode()), severity]).generate_state(1, np.uint64)[0]
    return torch.Generator(device="cpu").manual_seed(int(state))


def _disc_offsets(radius: float) -> list[tuple[int, int]]:
    r = int(math.floor(radius))
    span = range(-r, r + 1)
    return [(dy, dx) for dy in span for dx in span if dy * dy + dx * dx <= radius * radius + 1e-9]


def _dilate(x: torch.Tensor, radius: float, fill: float) -> torch.Tensor:
    """Grey dilation of ``(N, C, H, W)`` by a flat disc of ``radius`` pixels; outside the image counts as ``fill``."""
    r = int(math.floor(radius))
    h, w = x.shape[-2:]
    padded = F.pad(x, (r, r, r, r), value=fill)
    out = x.clone()
    for dy, dx in _disc_offsets(radius):
        out = torch.maximum(out, padded[..., r + dy : r + dy + h, r + dx : r + dx + w])
    return out


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    mode = "reflect" if radius < min(h, w) else "replicate"  # reflect needs the pad to be smaller than the side
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode=mode), kernel.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode=mode), kernel.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def corrupt(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Return a corrupted copy of ``images`` ``(N, C, H, W)`` in ``[0, 1]`` (``kind`` at ``severity`` 0..5)."""
    _check_kind(kind)
    severity = _check_severity(severity)
    seed = _check_seed(seed)
    _check_unit_images(images)
    if severity == 0 or images.numel() == 0:
        return images.detach().clone()
    param = SEVERITY_PARAMS[kind][severity - 1]
    x = images.detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # half-precision convolutions are not available on every device
    if kind == "gaussian_noise":
        noise = torch.randn(x.shape, generator=_generator(seed, kind, severity), dtype=torch.float32)
        out = x + param * noise.to(device=x.device, dtype=x.dtype)
    elif kind == "gaussian_blur":
        out = _gaussian_blur(x, param)
    elif kind == "contrast":
        mean = x.mean(dim=(2, 3), keepdim=True)
        out = (x - mean) * param + mean
    else:  # thickness
        out = _dilate(x, param, fill=0.0)
    return out.clamp_(0.0, 1.0).to(images.dtype)


def corrupt_labels(labels: torch.Tensor, kind: str, severity: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Return the label maps ``(N, H, W)`` that go with ``corrupt(images, kind, severity)``.

    Only ``thickness`` moves objects. Its rule: a background pixel (0) within the dilation disc of a
    digit pixel takes that digit's label (if digits of two labels reach it, the larger label value
    wins, as in a max filter); digit pixels keep their labels; ignore pixels (``ignore_index``) stay
    ignored and never spread. Without ignore pixels this is
    exactly the mask rule of the dilated image: the dilated ink is at least the stroke threshold
    wherever the disc reaches a pixel whose ink was. Dilated ink of an ignored object (an
    out-of-distribution letter) over background stays labelled background.
    """
    _check_kind(kind)
    severity = _check_severity(severity)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor label map, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer label map, got dtype {labels.dtype}")
    if labels.ndim != 3:
        raise ValueError(f"labels must have shape (N, H, W), got {tuple(labels.shape)}")
    if severity == 0 or kind != "thickness" or labels.numel() == 0:
        return labels.clone()
    lab = labels.long()
    digits = torch.where(lab == ignore_index, torch.zeros_like(lab), lab)
    grown = _dilate(digits.unsqueeze(1), SEVERITY_PARAMS[kind][severity - 1], fill=0).squeeze(1)
    out = torch.where(lab == 0, grown, lab)
    return out.to(labels.dtype)


def shifted(
    images: torch.Tensor,
    labels: torch.Tensor,
    kind: str,
    severity: int,
    seed: int = 0,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(corrupt(images, ...), corrupt_labels(labels, ...))``: a shifted copy of a labelled split."""
    _check_unit_images(images)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor label map, got {type(labels).__name__}")
    expected = (images.shape[0], *images.shape[2:])
    if tuple(labels.shape) != expected:
        raise ValueError(f"labels must have shape (N, H, W) = {expected} to match images, got {tuple(labels.shape)}")
    return corrupt(images, kind, severity, seed), corrupt_labels(labels, kind, severity, ignore_index)
