"""Inputs built to fool a segmentation model: FGSM, PGD (untargeted and targeted) and fooling images.

Every attack works on any model whose forward returns ``(B, K, H, W)`` logits or a dict with
``"out"``. It runs the model in eval mode, restores the model's train/eval state afterwards, never
touches its parameters or their ``.grad``, keeps images in ``[0, 1]``, and returns new tensors on
the device of the input images.

Images must lie in ``[0, 1]``. If your model expects normalised inputs (for example ImageNet mean
and standard deviation), put the normalisation inside the model so that the attack budget ``eps``
is measured in pixel intensities.

Loss convention: the dense cross-entropy summed over the pixels whose label is not the ignore
index. The attacks step along the *sign* of its gradient, so the sum (rather than the mean) only
keeps each image's step independent of the other images in the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import IGNORE_INDEX
from .models import _check_unit_images, forward_logits

__all__ = ["FoolingResult", "dense_loss", "fgsm", "fooling_images", "pgd"]


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode, then restore every module's own train/eval flag."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def _check_eps(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] (images live in [0, 1]), got {value!r}")
    return float(value)


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    return steps


def _check_labels(labels: torch.Tensor, images: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor label map, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer label map, got dtype {labels.dtype}")
    expected = (images.shape[0], *images.shape[2:])
    if tuple(labels.shape) != expected:
        raise ValueError(f"{name} must have shape (B, H, W) = {expected}, got {tuple(labels.shape)}")
    return labels.to(images.device).long()


def _check_label_range(labels: torch.Tensor, num_classes: int, ignore_index: int, name: str) -> None:
    """Check that every label of ``labels`` is a class of the model (``[0, num_classes)``) or ``ignore_index``."""
    kept = labels[labels != ignore_index]
    if kept.numel() and bool((kept.min() < 0) | (kept.max() >= num_classes)):
        bad = sorted({int(v) for v in kept[(kept < 0) | (kept >= num_classes)].unique()[:5]})
        raise ValueError(
            f"{name} must hold class labels in [0, {num_classes}) (the model predicts {num_classes} classes) "
            f"or ignore_index={ignore_index}, got {bad}"
        )


def _dense_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="sum")


def dense_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Return the per-pixel cross-entropy of ``labels`` under ``logits``, summed over non-ignored pixels."""
    if not isinstance(logits, torch.Tensor) or logits.ndim < 2 or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor (B, K, H, W), got {getattr(logits, 'shape', type(logits))}")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer label map, got {getattr(labels, 'dtype', type(labels))}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(labels.shape) != expected:
        raise ValueError(f"labels must have shape {expected} to match logits {tuple(logits.shape)}, got {tuple(labels.shape)}")
    _check_label_range(labels, logits.shape[1], ignore_index, "labels")
    return _dense_loss(logits, labels.long(), ignore_index)


def _input_gradient(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, ignore_index: int, focus: int = 0, name: str | None = None
) -> torch.Tensor:
    """Gradient of the dense loss; ``focus`` = +1 (targeted) / -1 (untargeted) drops pixels already fooled.

    With ``name``, the labels are first checked against the model's number of classes (named ``name``).
    """
    with torch.enable_grad():  # attacks also work when called under torch.no_grad()
        x = x.detach().requires_grad_(True)
        logits = forward_logits(model, x)
        if name is not None:  # the model's K is known only now, after a forward
            _check_label_range(labels, logits.shape[1], ignore_index, name)
        return _loss_gradient(logits, x, labels, ignore_index, focus)


def _loss_gradient(
    logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, ignore_index: int, focus: int
) -> torch.Tensor:
    if focus:
        pred = logits.detach().argmax(1)
        fooled = (pred == labels) if focus > 0 else (pred != labels)
        labels = labels.masked_fill(fooled, ignore_index)
    loss = _dense_loss(logits, labels, ignore_index)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    targeted: bool = False,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Return FGSM images ``clip(x + eps * sign(grad_x loss), 0, 1)`` (Goodfellow et al. 2015).

    Untargeted, ``labels`` are the true label maps and the step increases their loss; with
    ``targeted=True`` they are the target maps and the step decreases it. Labels must be classes of
    the model (``[0, K)``) or ``ignore_index``; anything else raises ``ValueError``.
    """
    eps = _check_eps(eps, "eps")
    _check_unit_images(images)
    labels = _check_labels(labels, images, "labels")
    with _eval_mode(model):
        grad = _input_gradient(model, images, labels, ignore_index, name="labels")
    direction = -1.0 if targeted else 1.0
    return (images.detach() + direction * eps * grad.sign()).clamp(0.0, 1.0)


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    eps: float = 8 / 255,
    steps: int = 20,
    step_size: float = 2 / 255,
    target: torch.Tensor | None = None,
    random_start: bool = False,
    seed: int = 0,
    focus: bool = False,
    ignore_index: int = IGNORE_INDEX,
    progress: bool = False,
) -> torch.Tensor:
    """Return PGD images within the L-infinity ball of radius ``eps`` around ``images`` (Madry et al. 2018).

    Give ``labels`` (true maps) for an untargeted attack that raises their loss, or ``target`` (any
    label map per image, ignore index allowed) for a targeted dense attack that lowers the loss of
    ``target`` (Xie et al. 2017). ``random_start`` begins at a seeded uniform point of the ball.
    With ``focus``, each step follows the loss of only the pixels not yet fooled (still right for an
    untargeted attack, not yet on target for a targeted one), as Xie et al.'s DAG does; without it
    (Madry et al.'s plain PGD), pixels that are already fooled keep pulling the image their way.
    Labels (or targets) must be classes of the model (``[0, K)``) or ``ignore_index``. ``progress``
    shows a progress bar over the steps (the result is the same either way).
    """
    eps = _check_eps(eps, "eps")
    step_size = _check_eps(step_size, "step_size")
    steps = _check_steps(steps)
    _check_unit_images(images)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if (labels is None) == (target is None):
        raise ValueError("give exactly one of labels (untargeted attack) or target (targeted attack)")
    targeted = target is not None
    goal_name = "target" if targeted else "labels"
    goal = _check_labels(target if targeted else labels, images, goal_name)
    x0 = images.detach()
    x = x0.clone()
    if random_start and eps > 0:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.rand(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
        x = (x0 + (2 * noise - 1) * eps).clamp(0.0, 1.0)
    direction = -1.0 if targeted else 1.0
    with _eval_mode(model):
        for step in tqdm(range(steps), desc="PGD steps", disable=not progress, leave=False):
            name = goal_name if step == 0 else None  # check the labels against K once, at the first forward
            grad = _input_gradient(model, x, goal, ignore_index, int(-direction) if focus else 0, name)
            x = x + direction * step_size * grad.sign()
            x = torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0.0, 1.0).detach()
    return x


@dataclass
class FoolingResult:
    """Fooling images and how they were reached."""

    images: torch.Tensor  # (B, C, H, W) in [0, 1]
    steps: torch.Tensor  # (B,) steps each image needed to meet the stopping rule (or the step budget)
    steps_to_share: torch.Tensor  # (B,) first step with >= min_share of the region on target (-1: never)
    reached: torch.Tensor  # (B,) bool: whether the stopping rule was met
    target_share: torch.Tensor  # (B,) share of region pixels labelled as the target class
    confidence: torch.Tensor  # (B,) mean max-softmax over the region


def fooling_images(
    model: nn.Module,
    init: torch.Tensor,
    target_class: int | torch.Tensor,
    region: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    steps: int = 500,
    step_size: float = 1 / 255,
    min_share: float = 0.95,
    min_confidence: float = 0.99,
    progress: bool = False,
) -> FoolingResult:
    """Drive ``region`` (default: every pixel) of each image towards ``target_class`` by gradient ascent.

    Each step moves the image by ``step_size`` along the sign of the gradient of the target class's
    log-probability summed over the region (Nguyen et al. 2015, here for a dense model), staying in
    ``[0, 1]``. ``region`` only chooses the pixels whose *labels* are pushed; the step may change any
    input pixel. ``mask`` (a bool ``(B, H, W)`` map, default every pixel) chooses the input pixels the
    step may change: outside it the image keeps its initial values exactly. An image stops changing
    once at least ``min_share`` of its region is labelled as the target with mean max-softmax at least
    ``min_confidence`` there, or after ``steps`` steps.
    ``progress`` shows a progress bar over the steps (the result is the same either way).
    """
    _check_unit_images(init, "init")
    steps = _check_steps(steps)
    step_size = _check_eps(step_size, "step_size")
    for name, value in (("min_share", min_share), ("min_confidence", min_confidence)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    b, _, h, w = init.shape
    device = init.device
    cls = torch.as_tensor(target_class, device=device)
    if cls.is_floating_point() or cls.ndim > 1 or (cls.ndim == 1 and cls.shape[0] != b):
        raise ValueError(f"target_class must be an int or a (B,) = ({b},) integer tensor, got {target_class!r}")
    cls = cls.long().expand(b)
    if bool((cls < 0).any()):
        raise ValueError(f"target_class must be a non-negative class index, got {target_class!r}")
    if region is None:
        region = torch.ones(b, h, w, dtype=torch.bool, device=device)
    if not isinstance(region, torch.Tensor) or region.dtype != torch.bool or tuple(region.shape) != (b, h, w):
        raise ValueError(f"region must be a bool tensor of shape (B, H, W) = {(b, h, w)}, got {getattr(region, 'shape', region)}")
    region = region.to(device)
    if not region.flatten(1).any(1).all():
        raise ValueError("region must select at least one pixel in every image")
    if mask is None:
        mask = torch.ones(b, h, w, dtype=torch.bool, device=device)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (b, h, w):
        raise ValueError(f"mask must be a bool tensor of shape (B, H, W) = {(b, h, w)}, got {getattr(mask, 'shape', mask)}")
    if not mask.flatten(1).any(1).all():
        raise ValueError("mask must let the step change at least one pixel in every image")
    changeable = mask.to(device)[:, None].to(init.dtype)  # (B, 1, H, W): 1 where the step may act
    target = torch.where(region, cls[:, None, None], torch.full_like(cls[:, None, None], IGNORE_INDEX))
    x = init.detach().clone()
    used = torch.full((b,), steps, dtype=torch.long)
    to_share = torch.full((b,), -1, dtype=torch.long)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    npix = region.flatten(1).sum(1).float()

    def measure(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = logits.detach().float().softmax(1)
        hit = (probs.argmax(1) == cls[:, None, None]) & region
        share = hit.flatten(1).sum(1) / npix
        conf = (probs.amax(1) * region).flatten(1).sum(1) / npix
        return share, conf

    bar = tqdm(total=steps, desc="fooling steps", disable=not progress, leave=False)
    with _eval_mode(model), torch.enable_grad(), bar:
        for step in range(steps + 1):
            x_req = x.detach().requires_grad_(True)
            logits = forward_logits(model, x_req)
            if step == 0 and not bool((cls < logits.shape[1]).all()):
                raise ValueError(f"target_class must be in [0, {logits.shape[1]}), got {target_class!r}")
            share, conf = measure(logits)
            first = ((share >= min_share).cpu() & (to_share < 0))
            to_share[first] = step
            newly = ~done & (share >= min_share) & (conf >= min_confidence)
            used[newly.cpu()] = step
            done |= newly
            if done.all() or step == steps:
                break
            # minimising the target's loss maximises its log-probability over the region
            grad = _loss_gradient(logits, x_req, target, IGNORE_INDEX, focus=0)
            move = (~done).to(x.dtype)[:, None, None, None] * changeable
            x = (x - move * step_size * grad.sign()).clamp(0.0, 1.0).detach()
            bar.update(1)
    return FoolingResult(x.detach(), used, to_share, done.cpu(), share.cpu(), conf.cpu())
