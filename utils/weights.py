"""The trained weights that ship with the course, and their checksummed manifest.

Weights live in ``utils/weights/`` as ``NAME.pt`` (half-precision state dict plus the model's
configuration, whose ``"arch"`` names the architecture: ``"unet"`` for :class:`utils.models.UNet`,
``"lraspp"`` for :func:`utils.models.lraspp`; files written before the key existed are U-Nets) and are listed in ``utils/weights/manifest.json`` with their sha256, the exact command
that trained them, and their test scores. :func:`load` refuses any file whose checksum does not
match the manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import ARCHITECTURES, UNet, lraspp

__all__ = ["WEIGHTS_DIR", "WeightsError", "available", "load", "manifest", "save", "sha256_of", "update_manifest", "verify"]

#: Folder of the shipped weights (package data).
WEIGHTS_DIR: Path = Path(__file__).resolve().parent / "weights"
MANIFEST_NAME = "manifest.json"


class WeightsError(ValueError):
    """A weights file is missing, unknown, corrupted, or does not match its model."""


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(directory: str | Path = WEIGHTS_DIR) -> dict[str, dict[str, Any]]:
    """Return the manifest entries of ``directory``, keyed by weights name."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return {}
    with open(path) as fh:
        return json.load(fh)["weights"]


def available(directory: str | Path = WEIGHTS_DIR) -> list[str]:
    """Return the names of the weights listed in the manifest of ``directory``."""
    return sorted(manifest(directory))


def update_manifest(directory: str | Path, name: str, entry: dict[str, Any]) -> None:
    """Add or replace the manifest entry ``name`` in ``directory`` (keys sorted, stable diffs)."""
    directory = Path(directory)
    entries = manifest(directory)
    entries[name] = entry
    with open(directory / MANIFEST_NAME, "w") as fh:
        json.dump({"format": 1, "weights": dict(sorted(entries.items()))}, fh, indent=2, sort_keys=True)
        fh.write("\n")


def _arch_of(model: nn.Module) -> str:
    """Name of ``model``'s architecture in :data:`utils.models.ARCHITECTURES` (TypeError for any other model)."""
    if isinstance(model, UNet):
        return "unet"
    from torchvision.models.segmentation.lraspp import LRASPP

    if isinstance(model, LRASPP) and isinstance(getattr(model, "config", None), dict):
        if model.config.get("arch") == "lraspp":
            return "lraspp"
    raise TypeError(
        f"model must be a utils.models.UNet or a model built by utils.models.lraspp, got {type(model).__name__}"
    )


def _build(config: dict[str, Any], file_name: str) -> nn.Module:
    """Rebuild the (untrained) model a saved ``model_config`` describes."""
    config = dict(config)
    arch = config.pop("arch", "unet")  # files saved before architectures were recorded hold U-Nets
    if arch not in ARCHITECTURES:
        raise WeightsError(
            f"weights file {file_name} holds an unknown architecture {arch!r}; this version of utils knows "
            f"{list(ARCHITECTURES)} (update the course repository?)"
        )
    try:
        return UNet(**config) if arch == "unet" else lraspp(**config)
    except (TypeError, ValueError) as err:
        raise WeightsError(f"weights file {file_name} has a model configuration {arch} cannot take: {err}") from err


def save(model: nn.Module, path: str | Path) -> str:
    """Save ``model`` (a UNet or an :func:`~utils.models.lraspp`; half-precision tensors plus its config) to ``path``; return the sha256."""
    arch = _arch_of(model)
    config = {"arch": arch, **{k: v for k, v in model.config.items() if k != "arch"}}
    state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    torch.save({"model_config": config, "state_dict": state}, path)
    return sha256_of(path)


def verify(name: str, directory: str | Path = WEIGHTS_DIR) -> Path:
    """Return the path of weights ``name`` after checking its sha256 against the manifest."""
    entries = manifest(directory)
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in entries:
        raise WeightsError(f"unknown weights {name!r}; available: {sorted(entries) or 'none'} (in {directory})")
    entry = entries[name]
    path = Path(directory) / entry["file"]
    retrain = f"retrain it with `{entry.get('command', 'python -m utils.train')}` from the repository root"
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing; {retrain}")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise WeightsError(
            f"weights file {path.name} has sha256 {actual[:12]}..., but the manifest expects "
            f"{entry['sha256'][:12]}...: the file is corrupted or does not belong to this manifest. "
            f"Refusing to load it; {retrain}"
        )
    return path


def load(
    name: str = "unet_seed0", device: torch.device | str | None = None, directory: str | Path = WEIGHTS_DIR
) -> nn.Module:
    """Return the shipped model ``name`` (a UNet, or an LR-ASPP that returns ``{"out": logits}``) in eval mode, after verifying its checksum."""
    path = verify(name, directory)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = _build(blob["model_config"], path.name)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except RuntimeError as err:
        raise WeightsError(f"weights file {path.name} does not fit its model configuration: {err}") from err
    return model.to(device or "cpu").eval()
