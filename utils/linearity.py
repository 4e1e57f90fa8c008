"""Goodfellow et al.'s linearity argument, measured on a segmentation model, one pixel's logit margin at a time.

Goodfellow, Shlens & Szegedy (2015) explain adversarial examples by linearity: a perturbation
``eta = eps * sign(w)`` moves a linear unit ``w . x`` by ``eps * ||w||_1``, which grows with the
number of input dimensions although no single input moves by more than ``eps``. For a network, ``w``
is the input gradient ``g`` of the quantity that decides the answer. Here that is one pixel's *logit
margin* ``m(x) = z_c(x) - max_{k != c} z_k(x)`` (the pixel keeps label ``c`` while ``m > 0``):

* :func:`margin_gradient` returns ``m`` and ``g = dm/dx`` for one chosen pixel per image;
* :func:`linearity_check` perturbs each image by ``-eps * sign(g)`` inside a square window of growing
  side around its pixel, and compares the first-order prediction ``-eps * ||g_window||_1`` with the
  change of ``m`` that the model actually shows.

The perturbation is not clipped to ``[0, 1]`` by default: the check is about the model as a
function, not about valid images (pass ``clip=True`` to clip and predict with the clipped step).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .models import _check_images, forward_logits

__all__ = ["LinearityCheck", "choose_pixels", "linearity_check", "margin_gradient", "pixel_margin", "window_mask"]


@contextmanager
def _eval(model: nn.Module) -> Iterator[nn.Module]:
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode


def _check_pixels_arg(pixels: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    if not isinstance(pixels, torch.Tensor):
        raise TypeError(f"pixels must be a torch.Tensor, got {type(pixels).__name__}")
    if pixels.shape != (b, 2) or pixels.is_floating_point() or pixels.dtype == torch.bool:
        raise ValueError(f"pixels must be a ({b}, 2) integer tensor of (row, col), got {pixels.dtype} {tuple(pixels.shape)}")
    if b and (int(pixels.min()) < 0 or int(pixels[:, 0].max()) >= h or int(pixels[:, 1].max()) >= w):
        raise ValueError(f"pixels must lie inside the {h}x{w} image, got rows/cols outside it")
    return pixels.long()


def _check_classes(classes: torch.Tensor, b: int) -> torch.Tensor:
    if not isinstance(classes, torch.Tensor):
        raise TypeError(f"classes must be a torch.Tensor, got {type(classes).__name__}")
    if classes.shape != (b,) or classes.is_floating_point() or classes.dtype == torch.bool:
        raise ValueError(f"classes must be a ({b},) integer tensor, got {classes.dtype} {tuple(classes.shape)}")
    if b and int(classes.min()) < 0:
        raise ValueError("classes must be non-negative class indices")
    return classes.long()


def choose_pixels(mask: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Return one pixel ``(row, col)`` per image, drawn uniformly (seeded) among the True pixels of ``mask`` ``(B, H, W)``."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 3:
        raise ValueError(f"mask must be a (B, H, W) bool tensor, got {getattr(mask, 'dtype', type(mask))} {tuple(getattr(mask, 'shape', ()))}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    flat = mask.flatten(1).cpu()
    if not bool(flat.any(1).all()):
        raise ValueError("mask must hold at least one True pixel in every image")
    g = torch.Generator().manual_seed(seed)
    keys = torch.rand(flat.shape, generator=g, dtype=torch.float64).masked_fill(~flat, -1.0)
    index = keys.argmax(1)
    return torch.stack([index // mask.shape[2], index % mask.shape[2]], 1)


def pixel_margin(logits: torch.Tensor, pixels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Return ``z_c - max_{k != c} z_k`` at one pixel per image: ``logits`` ``(B, K, H, W)``, result ``(B,)``."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or not logits.is_floating_point():
        raise ValueError(f"logits must be a (B, K, H, W) floating-point tensor, got {getattr(logits, 'shape', type(logits))}")
    b, k, h, w = logits.shape
    pixels = _check_pixels_arg(pixels, b, h, w).to(logits.device)
    classes = _check_classes(classes, b).to(logits.device)
    if b and int(classes.max()) >= k:
        raise ValueError(f"classes must be below the number of classes {k}, got {int(classes.max())}")
    z = logits[torch.arange(b, device=logits.device), :, pixels[:, 0], pixels[:, 1]]  # (B, K)
    own = z.gather(1, classes[:, None])[:, 0]
    others = z.scatter(1, classes[:, None], float("-inf")).amax(1)
    return own - others


def margin_gradient(
    model: nn.Module, images: torch.Tensor, pixels: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(m (B,), g (B, C, H, W))``: each image's pixel margin and its gradient with respect to the image.

    One backward pass serves the whole batch: in eval mode the images do not interact, so the
    gradient of the summed margins with respect to image ``i`` is that of margin ``i``.
    """
    _check_images(images, "images")
    with _eval(model), torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        m = pixel_margin(forward_logits(model, x), pixels, classes)
        (g,) = torch.autograd.grad(m.sum(), x)
    return m.detach(), g.detach()


def window_mask(pixels: torch.Tensor, size: int, shape: tuple[int, int]) -> torch.Tensor:
    """Return ``(B, 1, H, W)`` bool masks of the square of side ``size`` (odd) centred on each pixel, cut at the borders."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd int >= 1, got {size!r}")
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be an (H, W) pair of positive ints, got {shape!r}")
    h, w = int(shape[0]), int(shape[1])
    pixels = _check_pixels_arg(pixels, pixels.shape[0] if isinstance(pixels, torch.Tensor) else 0, h, w)
    rows = torch.arange(h, device=pixels.device)[None, :, None]
    cols = torch.arange(w, device=pixels.device)[None, None, :]
    half = size // 2
    near_r = (rows - pixels[:, 0, None, None]).abs() <= half
    near_c = (cols - pixels[:, 1, None, None]).abs() <= half
    return (near_r & near_c)[:, None]


@dataclass
class LinearityCheck:
    """First-order prediction against the measured change of one pixel margin per image, per window size."""

    eps: float  # the L-infinity size of the perturbation
    sizes: list[int]  # window sides (odd); a side >= 2 * max(H, W) - 1 covers the whole image from any pixel
    margin: torch.Tensor  # (B,) clean margins m(x)
    pixels_changed: torch.Tensor  # (B, W) number of input pixels inside each window
    l1: torch.Tensor  # (B, W) ||g||_1 over each window
    predicted: torch.Tensor  # (B, W) first-order change of m: g . delta (= -eps * l1 without clipping)
    actual: torch.Tensor  # (B, W) measured change of m: m(x + delta) - m(x)

    @property
    def flipped(self) -> torch.Tensor:
        """``(B, W)`` bool: whether the perturbation turned the margin negative (the pixel changed label)."""
        return self.margin[:, None] + self.actual < 0

    @property
    def ratio(self) -> torch.Tensor:
        """``(B, W)`` measured over predicted change (1 where the model is linear over the step)."""
        return self.actual / self.predicted


@torch.no_grad()
def linearity_check(
    model: nn.Module,
    images: torch.Tensor,
    pixels: torch.Tensor,
    classes: torch.Tensor,
    eps: float,
    sizes: Sequence[int],
    clip: bool = False,
) -> LinearityCheck:
    """Perturb each image by ``-eps * sign(g)`` inside windows of side ``sizes`` around its pixel; compare with ``-eps * ||g||_1``."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ValueError(f"eps must be a number in (0, 1), got {eps!r}")
    sizes = list(sizes)
    if not sizes:
        raise ValueError("sizes must hold at least one window side")
    m0, g = margin_gradient(model, images, pixels, classes)
    x = images.detach()
    b, _, h, w = x.shape
    pixels = pixels.to(x.device)
    n_in, l1, predicted, actual = [], [], [], []
    with _eval(model):
        for size in sizes:
            win = window_mask(pixels, size, (h, w)).to(x.dtype)
            delta = -eps * g.sign() * win
            if clip:
                delta = (x + delta).clamp(0.0, 1.0) - x
            m1 = pixel_margin(forward_logits(model, x + delta), pixels, classes)
            n_in.append(win.flatten(1).sum(1) * x.shape[1])
            l1.append((g * win).abs().flatten(1).sum(1))
            predicted.append((g * delta).flatten(1).sum(1))
            actual.append(m1 - m0)
    stack = lambda ts: torch.stack(ts, 1).float().cpu()  # noqa: E731
    return LinearityCheck(float(eps), sizes, m0.float().cpu(), stack(n_in), stack(l1), stack(predicted), stack(actual))
