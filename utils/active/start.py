"""The start model of one seed: trained once and shared by every arm, and shipped for seed 0 so that chapter 10 replays a round without retraining it.

``python -m utils.active.save_start --out utils/results/active_start_seed0.pt`` (on the machine that made
the results file) retrains it and saves it (:mod:`utils.active.save_start`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..models import UNet
from .config import ALConfig
from .pool import Pool, build_pool

__all__ = ["START_FILE", "load_start", "save_start", "start_scenes", "train_start"]

#: Seed 0's start model of the shipped results file (package data).
START_FILE: Path = Path(__file__).resolve().parents[1] / "results" / "active_start_seed0.pt"


def start_scenes(config: ALConfig, seed: int) -> torch.Tensor:
    """Return the labelled start: ``config.initial`` clean scene indices drawn with the seed alone, sorted."""
    import numpy as np

    rng = np.random.default_rng([seed, 7919])
    return torch.from_numpy(np.sort(rng.choice(config.pool_size, config.initial, replace=False)))


def train_start(config: ALConfig, seed: int, pool: Pool | None = None) -> UNet:
    """Train seed ``seed``'s start model from scratch on its labelled start (``config.steps`` steps, seeded by ``seed * 1000``)."""
    from .loop import _training_set, train_model

    pool = build_pool(config.pool_size, config.n_traps, seed, config.scene_config) if pool is None else pool
    labelled = torch.zeros(pool.labels.shape, dtype=torch.bool)
    labelled[start_scenes(config, seed)] = True
    return train_model(*_training_set(pool, labelled), config, seed * 1000)


def save_start(model: UNet, path: str | Path, config: ALConfig, seed: int, results_date: str) -> None:
    """Save a start model's float32 weights with the configuration, seed and results file's date they belong to."""
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a utils.models.UNet, got {type(model).__name__}")
    blob = {"state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "config": json.loads(json.dumps(asdict(config))), "seed": int(seed), "results_date": results_date}  # fmt: skip
    torch.save(blob, path)


def load_start(results: dict[str, Any], path: str | Path | None = None) -> tuple[UNet, int]:
    """Return ``(start model, seed)`` saved for ``results`` (default: :data:`START_FILE`); refuse one made for another file or configuration."""
    path = START_FILE if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no start model at {path}; run `python -m utils.active.save_start --out {path}`")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("results_date") != results.get("date") or blob.get("config") != results.get("config"):
        raise ValueError(f"{path.name} was saved for another results file (date {blob.get('results_date')}): "
                         f"rerun `python -m utils.active.save_start --out {path}`")  # fmt: skip
    cfg = results["config"]
    model = UNet(width=cfg["width"], depth=cfg["depth"], dropout=cfg["dropout"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), int(blob["seed"])
