"""The course's segmentation models (a small U-Net; torchvision's LR-ASPP) and helpers that work on *any* segmentation model.

Every helper that takes a model accepts one whose forward returns ``(B, K, H, W)`` logits or a
torchvision-style dict holding them under ``"out"`` (for example ``torchvision.models.segmentation``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .config import NUM_CLASSES

__all__ = ["ARCHITECTURES", "UNet", "count_parameters", "forward_logits", "lraspp", "mc_dropout_mode", "predict_logits"]

_DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with BatchNorm and channel dropout in its inner levels.

    ``depth`` is the number of 2x down-samplings; level ``i`` has ``width * 2**i`` channels. Dropout
    (``nn.Dropout2d``, probability ``dropout``) follows every encoder and decoder block except the
    full-resolution ones, and the bottleneck, as in Bayesian SegNet's "central" placement, so that
    it can be switched on at test time for MC dropout (:func:`mc_dropout_mode`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = NUM_CLASSES,
        width: int = 16,
        depth: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(depth, int) or not 1 <= depth <= 6:
            raise ValueError(f"depth must be an int in [1, 6], got {depth!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.config = dict(
            in_channels=in_channels, num_classes=num_classes, width=width, depth=depth, dropout=float(dropout)
        )
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_prev = in_channels
        for c in chans[:-1]:
            self.down.append(_block(c_prev, c))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _block(chans[-2], chans[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth)))
        self.dec = nn.ModuleList(_block(2 * chans[i], chans[i]) for i in reversed(range(depth)))
        self.drop = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        # Channels-last weights make the convolutions of small-image batches about 1.5-2x faster on CPUs
        # (oneDNN) without changing what is computed; forward returns contiguous logits all the same.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(B, C, H, W)`` (H, W divisible by ``2**depth``) to logits ``(B, K, H, W)``."""
        return self.forward_from_stem(self.stem(x))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Return the first (full-resolution) block's output: the part before any dropout layer."""
        return self.down[0](x)

    def first_block(self, h: torch.Tensor) -> torch.Tensor | None:
        """Return the second encoder block's output on the :meth:`stem`'s output ``h``, before its dropout (None at depth 1)."""
        return self.down[1](self.pool(h)) if len(self.down) > 1 else None

    def forward_from_stem(
        self, h: torch.Tensor, noise: Sequence[torch.Tensor] | None = None, first: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the logits from the :meth:`stem`'s output ``h``: every dropout layer lies in this part.

        ``noise``: the dropout masks to use, in the order of :meth:`dropout_noise` (for a slice of the
        batch they were drawn for), instead of drawing new ones. ``first``: :meth:`first_block` of ``h``,
        if already computed (it holds no dropout either). MC dropout computes both once per batch and
        only the rest per sample (:func:`utils.uncertainty.mc_dropout`).
        """
        masks = None if noise is None else iter(noise)

        def drop(x: torch.Tensor) -> torch.Tensor:
            return self.drop(x) if masks is None else x * next(masks)

        skips, x = [h], self.pool(h) if first is None else None
        for i, block in enumerate(self.down[1:]):
            x = drop(first if i == 0 and first is not None else block(x))
            skips.append(x)
            x = self.pool(x)
        x = drop(self.bottleneck(x))
        for i, (up, dec) in enumerate(zip(self.up, self.dec)):
            x = dec(torch.cat([up(x), skips[-1 - i]], dim=1))
            if i < len(self.dec) - 1:
                x = drop(x)
        return self.head(x).contiguous()

    def dropout_noise(self, batch: int, like: torch.Tensor) -> list[torch.Tensor] | None:
        """Draw the masks one forward pass of a ``batch`` would draw, in the same order from the same generator.

        ``nn.Dropout2d`` multiplies its input by a ``(B, C, 1, 1)`` mask drawn as
        ``empty(...).bernoulli_(1 - p).div_(1 - p)``; drawing them the same way, layer by layer, gives the
        same masks, which can then be applied to slices of the batch. ``None`` when dropout is off.
        """
        p = self.drop.p
        if not self.drop.training or p == 0:
            return None
        width, depth = self.config["width"], self.config["depth"]
        chans = [width * 2**i for i in range(depth + 1)]  # channels of each level, as built
        order = chans[1:depth] + [chans[depth]] + chans[depth - 1 : 0 : -1]  # encoder, bottleneck, decoder
        return [torch.empty((batch, c, 1, 1), dtype=like.dtype, device=like.device).bernoulli_(1 - p).div_(1 - p)
                for c in order]


def lraspp(num_classes: int = NUM_CLASSES, in_channels: int = 1, first_stride: int = 1) -> nn.Module:
    """Return torchvision's LR-ASPP MobileNetV3-Large, untrained, adapted to small ``in_channels``-channel images.

    This is the segmentation architecture a practitioner picks off the shelf (Howard et al. 2019):
    ``torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
    num_classes=num_classes)``, built for photographs of 512 px and more, with two adaptations to
    64 px scenes and a short CPU training run:

    * the backbone's first convolution (3 input channels, stride 2) is replaced by one with
      ``in_channels`` inputs and stride ``first_stride`` (default 1). The logits are computed at 1/8 of
      the resolution that convolution leaves and upsampled bilinearly: with stride 2 a 64 px scene gets
      8x8 logits, too coarse for 2-3 px strokes; stride 1 gives 16x16 (at four times the compute);
    * every BatchNorm's momentum is set to 0.1 (PyTorch's default) instead of MobileNetV3's 0.01, whose
      running statistics average over about 100 steps and so still lag the weights at the end of a
      run of a few hundred steps (the eval-mode model then predicted background everywhere).

    Nothing is downloaded. Its forward returns a dict ``{"out": (B, K, H, W) logits}``, which every
    helper of ``utils`` unwraps. It has BatchNorm but no dropout layer, so MC dropout does not apply.
    The module carries ``config = {"arch": "lraspp", "num_classes", "in_channels", "first_stride"}``
    so that :mod:`utils.weights` can rebuild it.
    """
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("first_stride", first_stride)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if first_stride > 2:
        raise ValueError(f"first_stride must be 1 or 2, got {first_stride!r}")
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
    first = model.backbone["0"][0]
    model.backbone["0"][0] = nn.Conv2d(
        in_channels, first.out_channels, first.kernel_size, first_stride, first.padding, bias=first.bias is not None
    )
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    model.config = {"arch": "lraspp", "num_classes": num_classes, "in_channels": in_channels, "first_stride": first_stride}
    return model


#: The architectures that :mod:`utils.train` trains and :mod:`utils.weights` saves and loads, by name.
ARCHITECTURES: tuple[str, ...] = ("unet", "lraspp")


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on ``x`` and return its ``(B, K, H, W)`` logits (unwrapping a ``{"out": ...}`` dict)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_images(x)
    out = model(x)
    if isinstance(out, dict):
        if "out" not in out:
            raise ValueError(f"model returned a dict without an 'out' entry (keys: {sorted(out)})")
        out = out["out"]
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise ValueError(f"model must return (B, K, H, W) logits, got {getattr(out, 'shape', type(out))}")
    if out.shape[0] != x.shape[0] or out.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"model output {tuple(out.shape)} does not match input {tuple(x.shape)} in batch or H, W")
    return out


def _check_images(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_unit_images(x: torch.Tensor, name: str = "images") -> None:
    """Check a 4-D float image batch whose values lie in [0, 1] (NaN fails too)."""
    _check_images(x, name)
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError(f"{name} must lie in [0, 1] (and hold no NaN)")


def _model_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """Return ``device`` if given, else that of the model's first parameter, else of its first buffer, else the CPU."""
    if device is not None:
        return torch.device(device)
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _batch_dependent_layers(model: nn.Module) -> list[str]:
    """Names of the layers that make ``model``'s output depend on the batch or on chance in its current mode.

    BatchNorm (and InstanceNorm with running statistics) in training mode normalise with the batch's
    own statistics. Dropout counts only while the model itself is in training mode: the MC-dropout
    setup (:func:`mc_dropout_mode`) puts the model in eval mode with its dropout layers on, on purpose.
    """
    found = []
    for name, module in model.named_modules():
        norm = isinstance(module, nn.modules.batchnorm._BatchNorm) or (
            isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats
        )
        if module.training and (norm or (model.training and isinstance(module, _DROPOUT_TYPES))):
            found.append(f"{name or type(model).__name__} ({type(module).__name__})")
    return found


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor | Iterable,
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return the logits of ``model`` for a tensor of images ``(N, C, H, W)`` or a loader, on the CPU.

    The model's train/eval state is left as it is, so that MC dropout (:func:`mc_dropout_mode`) keeps
    its dropout layers on. A model in training mode (a freshly built model is) normalises with batch
    statistics and drops units at random, so its logits depend on the batch: ``predict_logits`` then
    warns (``UserWarning``) and runs it anyway; call ``model.eval()`` first, or
    :func:`mc_dropout_mode` for MC dropout. The model runs on ``device`` (default: the device of its
    parameters, else of its buffers, else the CPU).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(images, np.ndarray):
        raise TypeError(
            "images must be a torch.Tensor (N, C, H, W) or an iterable of them, got a numpy array: "
            "pass torch.from_numpy(images).float()"
        )
    if not isinstance(images, (torch.Tensor, Iterable)) or isinstance(images, (str, bytes)):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W) or a loader of them, got {type(images).__name__}")
    layers = _batch_dependent_layers(model)
    if layers:
        shown = ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
        warnings.warn(
            f"predict_logits: the model is in training mode ({shown}), so its logits depend on the batch "
            "(BatchNorm batch statistics) or on chance (dropout); call model.eval() first, or "
            "utils.models.mc_dropout_mode(model) for MC dropout",
            UserWarning,
            stacklevel=3,  # the caller of predict_logits (torch.no_grad's wrapper adds one frame)
        )
    device = _model_device(model, device)
    if isinstance(images, torch.Tensor):
        _check_images(images, "images")
        batches = images.split(batch_size)
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in images)
    outs, out, start = [], None, 0
    for b in batches:
        if isinstance(b, np.ndarray):
            raise TypeError("images yielded a numpy array: yield torch tensors (torch.from_numpy(batch).float())")
        _check_images(b, "images (a batch of the loader)")
        logits = forward_logits(model, b.to(device)).float().cpu()
        if not isinstance(images, torch.Tensor):
            outs.append(logits)                     # a loader: its length is unknown
            continue
        if out is None:                             # a tensor: fill one output in place (half the memory of a concatenation)
            out = torch.empty((images.shape[0], *logits.shape[1:]))
        out[start : start + logits.shape[0]] = logits
        start += logits.shape[0]
    if out is not None:
        return out
    if not outs:
        raise ValueError("images is empty")
    return torch.cat(outs)


def mc_dropout_mode(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode with only its dropout layers active (BatchNorm stays frozen); return it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model.eval()
    found = 0
    for module in model.modules():
        if isinstance(module, _DROPOUT_TYPES):
            module.train()
            found += 1
    if found == 0:
        raise ValueError("model has no dropout layers, so MC dropout would return identical samples")
    return model
