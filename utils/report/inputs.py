"""The report's inputs: data in any of its forms as batches, with clear errors, and what may be done to them.

Data are ``(images, labels)`` tensors, a DataLoader of such pairs, or a dataset with ``.images`` and
``.labels``. :func:`batches` turns each into batches and refuses an empty set by the name of its
argument (``data``, ``val``, ``shifted['NAME']``, ``ood['NAME']``). :class:`Fingerprint` summarises a
set's images in order, so that two results can tell whether they saw the same images. The
corruptions of :mod:`utils.shift` assume images in [0, 1] (:func:`check_unit_range`), and
``thickness`` assumes DigitScenes (:func:`check_shift_kind`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from .. import shift
from ..metrics._checks import _check_background
from ..models import _check_images

__all__ = ["Data", "Fingerprint", "batches", "check_labels", "check_models", "check_shift_kind", "check_unit_range", "shifted_batches"]

Data = Any  # a DataLoader of (images, labels), a pair of tensors, or an object with .images and .labels
Batches = Iterable[tuple[torch.Tensor, "torch.Tensor | None"]]

#: How the corruptions' error tells a reader to keep the normalisation inside the model.
NORMALISE_IN_MODEL = ("pass the images unnormalised, in [0, 1], and put the normalisation into the model, e.g. "
                      "model = nn.Sequential(torchvision.transforms.Normalize(mean, std), model)")  # fmt: skip


def _pair(item: Any, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    if isinstance(item, torch.Tensor):
        return item, None
    raise TypeError(f"{name} must yield (images, labels) pairs, got {type(item).__name__}")


def _not_empty(items: Iterable, name: str) -> Iterator:
    """Yield ``items``; raise a ``ValueError`` naming ``name`` if there was none."""
    seen = False
    for item in items:
        seen = True
        yield item
    if not seen:
        raise ValueError(f"{name} holds no images")


def batches(data: Data, name: str, batch_size: int) -> tuple[Batches, int | None]:
    """Return an iterable of ``(images, labels or None)`` batches of ``data`` and its number of images when known."""
    if data is None:
        raise TypeError(f"{name} must not be None")
    if hasattr(data, "images") and hasattr(data, "labels") and not isinstance(data, torch.utils.data.DataLoader):
        data = (data.images, data.labels)
    if isinstance(data, torch.Tensor):
        data = (data, None)
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise TypeError(f"{name} must be (images, labels) tensors, a DataLoader or a dataset with .images and .labels")
        x, y = data
        _check_images(x, f"{name} images")
        if y is not None:
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"{name} labels must be a torch.Tensor, got {type(y).__name__}")
            if y.shape != x.shape[:1] + x.shape[2:]:
                raise ValueError(f"{name} labels must have shape {tuple(x.shape[:1] + x.shape[2:])} (N, H, W), got {tuple(y.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} holds no images")
        parts = [(x[i : i + batch_size], None if y is None else y[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return parts, x.shape[0]
    if isinstance(data, torch.utils.data.DataLoader):
        try:
            n = len(data.dataset)  # type: ignore[arg-type]
        except TypeError:
            n = None
        if n == 0:
            raise ValueError(f"{name} holds no images")
        return _not_empty((_pair(b, name) for b in data), name), n
    raise TypeError(f"{name} must be (images, labels) tensors, a DataLoader or a dataset with .images and .labels, "
                    f"got {type(data).__name__}")  # fmt: skip


def check_labels(y: torch.Tensor, k: int, ignore_index: int, name: str) -> torch.Tensor:
    """Return ``y`` as int64 after checking that it holds classes in ``[0, k)`` or ``ignore_index``."""
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{name} labels must be an integer tensor, got {y.dtype}")
    y = y.long()
    valid = y[y != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= k):
        raise ValueError(f"{name} labels must lie in [0, {k}) or equal ignore_index={ignore_index}; "
                         f"found {int(valid.min())}..{int(valid.max())} (does the model predict {k} classes?)")  # fmt: skip
    return y


def check_models(model: Any) -> list[nn.Module]:
    """Return ``model`` as a list of modules (one, or an ensemble's members)."""
    if isinstance(model, nn.Module):
        return [model]
    if isinstance(model, (list, tuple)) and model and all(isinstance(m, nn.Module) for m in model):
        return list(model)
    raise TypeError("model must be a torch.nn.Module or a non-empty list of them (an ensemble)")


def check_unit_range(x: torch.Tensor, kind: str, name: str = "data") -> None:
    """Refuse images outside [0, 1] for the corruption ``kind``, saying how to keep a normalisation inside the model."""
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        finite = x[torch.isfinite(x)]
        found = f"[{float(finite.min()):.3g}, {float(finite.max()):.3g}]" if finite.numel() else "no finite value"
        nan = " and NaN" if bool(torch.isnan(x).any()) else ""
        raise ValueError(f"{name} images must lie in [0, 1] for shift_kind={kind!r} (utils.shift corrupts images in "
                         f"[0, 1]); found {found}{nan}: {NORMALISE_IN_MODEL}")  # fmt: skip


def _is_digitscenes(data: Data) -> bool:
    from ..data import DigitScenes

    inner = data.dataset if isinstance(data, torch.utils.data.DataLoader) else data
    return isinstance(inner, DigitScenes)


def check_shift_kind(kind: str | Callable | None, data: Data, background: int | None) -> None:
    """Refuse an unknown corruption, and ``thickness`` for anything but DigitScenes with background 0."""
    if kind is None or (callable(kind) and not isinstance(kind, str)):
        return
    if not isinstance(kind, str):
        raise TypeError(f"shift_kind must be a str or a callable, got {type(kind).__name__}")
    if kind not in shift.CORRUPTIONS:
        raise ValueError(f"shift_kind must be one of {shift.CORRUPTIONS} or a callable, got {kind!r}")
    if kind != "thickness":
        return
    if not _is_digitscenes(data):
        raise ValueError("shift_kind='thickness' dilates bright strokes on a dark background and grows their labels into "
                         "the background, which is DigitScenes' geometry: it is offered for utils.data.DigitScenes data "
                         "(the dataset, or a DataLoader over it) only; for other data use gaussian_noise, gaussian_blur "
                         "or contrast, or pass a corruption of your own as a callable")  # fmt: skip
    if background != 0:
        raise ValueError(f"shift_kind='thickness' grows the digit labels into the background class 0: it needs "
                         f"background=0, got background={background!r}")  # fmt: skip


def shift_name(kind: str | Callable, severity: int) -> str:
    """Return the name of the set made by corruption ``kind`` at ``severity`` (e.g. ``gaussian_noise 3``)."""
    label = kind if isinstance(kind, str) else getattr(kind, "__name__", "shift")
    return f"{label} {severity}"


def shifted_batches(parts: Batches, kind: str | Callable, severity: int, seed: int, ignore_index: int) -> Batches:
    """Yield the corrupted ``(images, labels)`` of each batch (a callable ``kind`` gets ``(images, severity)``)."""
    for x, y in parts:
        if callable(kind) and not isinstance(kind, str):
            out = kind(x, severity)
            yield out if isinstance(out, tuple) else (out, y)
            continue
        _check_images(x, "data images")
        check_unit_range(x, kind)
        if y is None:
            yield shift.corrupt(x, kind, severity, seed), None
        else:
            yield shift.shifted(x, y, kind, severity, seed=seed, ignore_index=ignore_index)


class Fingerprint:
    """A cheap fingerprint of a set's images and labels in order: per image, four float sums of its pixels and labels."""

    def __init__(self) -> None:
        self._hash = hashlib.sha1()
        self.images = 0

    def update(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        """Add one batch: per image the sum of its values, of their squares and a position-weighted sum (and of its labels)."""
        rows = [x.detach().to("cpu", torch.float64).flatten(1)]
        if y is not None:
            rows.append(y.detach().to("cpu", torch.float64).flatten(1))
        parts = []
        for v in rows:
            ramp = torch.linspace(0, 1, v.shape[1], dtype=torch.float64)
            parts += [v.sum(1), v.square().sum(1), (v * ramp).sum(1)]
        # float32: sums of the same images agree whatever the batch they came in
        self._hash.update(torch.stack(parts, 1).float().numpy().tobytes())
        self.images += x.shape[0]

    def hexdigest(self) -> str:
        """Return the fingerprint so far."""
        return self._hash.hexdigest()


def check_background(background: Any, k: int | None = None) -> int | None:
    """Return ``background`` checked: a class in ``[0, k)`` or ``None`` (no background class)."""
    return _check_background(background, k, allow_none=True)
