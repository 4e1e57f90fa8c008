"""A pretrained torchvision segmentation network on real photographs: online only, with an offline fallback.

:func:`load` builds one of torchvision's segmentation models with its default pretrained weights (21
Pascal VOC classes, trained on a subset of COCO), which torchvision downloads on first use. Where there
is no network (as in this project's CI) it returns ``None`` and a one-line reason instead of failing,
so a chapter can go on; ``weights=None`` builds the same architecture with random weights, which is how
the code path is tested offline. :func:`photos` gives scikit-image's bundled photographs (no download),
and :func:`inspect` runs a model on them: per-pixel softmax, heat maps and one row of scores per photo.
"""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .models import forward_logits

__all__ = ["ARCHITECTURES", "IMAGENET_MEAN", "IMAGENET_STD", "PHOTOS", "VOC_CLASSES", "inspect", "load", "normalise", "photos"]

#: torchvision segmentation builders this module loads.
ARCHITECTURES: tuple[str, ...] = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50", "deeplabv3_resnet50")
#: The 21 classes of torchvision's pretrained segmentation weights (Pascal VOC's, with background).
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv/monitor",
)  # fmt: skip
#: Per-channel mean and std of ImageNet, which the pretrained backbones expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: scikit-image's bundled photographs used here (files inside the scikit-image package).
PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "motorcycle_left")


def load(arch: str = "lraspp_mobilenet_v3_large", weights: str | None = "DEFAULT", timeout: float = 20.0) -> tuple[nn.Module | None, str]:
    """Return ``(model in eval mode, message)``, or ``(None, reason)`` when the pretrained weights cannot be fetched."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    if weights not in ("DEFAULT", None):
        raise ValueError(f"weights must be 'DEFAULT' (pretrained, downloaded) or None (random), got {weights!r}")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    from torchvision.models import segmentation

    builder = getattr(segmentation, arch)
    if weights is None:
        torch.manual_seed(0)
        return builder(weights=None, weights_backbone=None).eval(), f"{arch} with random weights (no download)"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:  # torch.hub's "Downloading: ..." line and progress bar go to a buffer: one line of ours instead
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            model = builder(weights="DEFAULT")
    except Exception as err:  # no network, a proxy, a firewall: all mean "not here"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return None, f"offline: {arch}'s pretrained weights could not be downloaded ({reason[:80]}); skipped"
    finally:
        socket.setdefaulttimeout(previous)
    return model.eval(), f"{arch} with its pretrained weights (21 Pascal VOC classes)"


def photos(size: int = 256, names: Sequence[str] = PHOTOS) -> torch.Tensor:
    """Return scikit-image's bundled photographs ``names`` as RGB ``(N, 3, size, size)`` in [0, 1] (centre crop, resized)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32, got {size!r}")
    from skimage import data as skdata

    out = []
    for name in names:
        if name not in PHOTOS:
            raise ValueError(f"names must come from {PHOTOS}, got {name!r}")
        img = np.asarray(getattr(skdata, name)() if name != "motorcycle_left" else skdata.stereo_motorcycle()[0])
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = torch.from_numpy(img[..., :3].copy()).permute(2, 0, 1).float() / 255
        h, w = img.shape[1:]
        s = min(h, w)
        img = img[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        out.append(F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0])
    return torch.stack(out).clamp(0, 1)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Return RGB ``images`` in [0, 1] normalised with ImageNet's mean and std (what the pretrained backbones expect)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (N, 3, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


@torch.no_grad()
def inspect(model: nn.Module, images: torch.Tensor, names: Sequence[str] | None = None,
            classes: Sequence[str] = VOC_CLASSES) -> tuple[torch.Tensor, pd.DataFrame]:  # fmt: skip
    """Return the softmax ``(N, K, H, W)`` of ``model`` on normalised ``images`` and one row of scores per image.

    Columns: the mean max-softmax, the share of pixels with max-softmax below 0.5, the most frequent
    predicted class other than background and its share of the pixels, and the mean maximum logit.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError("model is in train mode: call model.eval() first")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    logits = torch.cat([forward_logits(model, normalise(x[None]).to(device)).float().cpu() for x in images])
    if logits.shape[1] != len(classes):
        raise ValueError(f"the model predicts {logits.shape[1]} classes, but classes names {len(classes)}")
    probs = logits.softmax(1)
    msp = probs.amax(1)
    pred = probs.argmax(1)
    rows = []
    for i in range(images.shape[0]):
        counts = torch.bincount(pred[i].flatten(), minlength=len(classes))
        counts[0] = 0
        top = int(counts.argmax())
        rows.append({"image": names[i] if names else f"image {i}", "mean max-softmax": float(msp[i].mean()),
                     "pixels below 0.5": float((msp[i] < 0.5).float().mean()),
                     "top class": classes[top] if counts[top] > 0 else "(background only)",
                     "its share": float(counts[top]) / pred[i].numel(), "mean max logit": float(logits[i].amax(0).mean())})  # fmt: skip
    return probs, pd.DataFrame(rows).set_index("image")
