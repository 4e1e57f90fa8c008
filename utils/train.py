"""Training and evaluation of the course's segmentation models, and the command line that produced the shipped weights.

Usage (from the repository root)::

    python -m utils.train --seed 0 --out utils/weights

trains the default recipe (a U-Net on DigitScenes), saves the final weights and the snapshots along
the way into ``--out``, scores each on the test split and records it in ``--out/manifest.json``.
``--arch lraspp`` trains torchvision's LR-ASPP MobileNetV3 instead (:func:`utils.models.lraspp`);
``--data nuclei`` trains on the nuclei image of :mod:`utils.nuclei` (random training crops, the val
and test regions' tiles; 2 classes). ``--data annotators`` trains on the multi-annotator scenes of
:mod:`utils.annotators` with one annotator's label map drawn at random per scene and epoch (validation
and test score the reference map). ``--help`` lists the flags.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import IGNORE_INDEX, NUM_CLASSES, SPLIT_SIZES, cpu_name, get_device, seed_everything
from .annotators import AnnotatorScenes
from .data import DigitScenes
from .metrics import CalibrationMeter, confusion_matrix, digit_accuracy, iou_per_class, mean_iou, pixel_accuracy
from .models import ARCHITECTURES, UNet, forward_logits, lraspp, predict_logits
from .nuclei import NucleiTiles
from . import weights as weights_mod

__all__ = ["DATASETS", "TrainConfig", "TrainResult", "build_model", "evaluate", "main", "train"]

#: Training data the loop knows, with their number of classes.
DATASETS: dict[str, int] = {"digitscenes": NUM_CLASSES, "nuclei": 2, "annotators": NUM_CLASSES}


@dataclass
class TrainConfig:
    """The training recipe; the defaults are the recipe of the shipped model."""

    seed: int = 0
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    depth: int = 3
    dropout: float = 0.1
    train_size: int = SPLIT_SIZES["train"]
    val_size: int = SPLIT_SIZES["val"]
    recompose: bool = True  # draw fresh scene compositions of the same digit pool every epoch
    snapshots: tuple[int, ...] = (2, 4, 6, 9)  # epochs after which a copy of the weights is kept
    max_steps: int | None = None  # stop early after this many optimiser steps (for demonstrations)
    arch: str = "unet"  # "unet" or "lraspp" (width, depth and dropout apply to the U-Net only)
    data: str = "digitscenes"  # "digitscenes", "nuclei" or "annotators" (train_size: scenes or random crops per epoch)

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {list(ARCHITECTURES)}, got {self.arch!r}")
        if self.data not in DATASETS:
            raise ValueError(f"data must be one of {list(DATASETS)}, got {self.data!r}")
        for name in ("epochs", "batch_size", "width", "depth", "train_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if not isinstance(self.val_size, int) or self.val_size < 0:
            raise ValueError(f"val_size must be a non-negative int, got {self.val_size!r}")
        if self.depth > 6:
            raise ValueError(f"depth must be an int in [1, 6], got {self.depth!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"max_steps must be None or a positive int, got {self.max_steps!r}")
        self.snapshots = tuple(sorted(set(int(e) for e in self.snapshots)))
        if any(not 1 <= e < self.epochs for e in self.snapshots):
            raise ValueError(f"snapshots must be epochs in [1, epochs={self.epochs}), got {self.snapshots}")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model, per-epoch history, snapshots and wall time."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # training loss of every optimiser step
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    steps: int = 0


def build_model(config: TrainConfig) -> nn.Module:
    """Return the untrained model ``config`` describes (its architecture, for its data's number of classes)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    k = DATASETS[config.data]
    if config.arch == "lraspp":
        return lraspp(num_classes=k)
    return UNet(num_classes=k, width=config.width, depth=config.depth, dropout=config.dropout)


def _dataset(config: TrainConfig, split: str, size: int, start: int = 0, epoch: int = 0) -> DigitScenes | NucleiTiles:
    """``size`` scenes of DigitScenes, or for nuclei: random crops (train) or the first ``size`` grid tiles.

    For ``annotators``: multi-annotator scenes labelled, in training, by one annotator drawn per scene
    and ``epoch`` (draw seed ``1000 * seed + epoch``); in validation and test by the reference map.
    """
    if config.data == "annotators":
        if split == "train":
            return AnnotatorScenes("train", size, seed=config.seed, start=start, label="random",
                                   draw_seed=1000 * config.seed + epoch)
        return AnnotatorScenes(split, size, seed=0)
    if config.data == "digitscenes":
        seed = config.seed if split == "train" else 0
        return DigitScenes(split, size, seed=seed, start=start)
    if split == "train":
        return NucleiTiles("train", size, augment=True, seed=config.seed, start=start)
    return NucleiTiles(split, min(size, len(NucleiTiles(split))))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: DigitScenes | NucleiTiles,
    batch_size: int = 128,
    device: torch.device | str | None = None,
) -> dict[str, object]:
    """Score ``model`` (in eval mode) on ``dataset``: mIoU, pixel (and digit) accuracy, NLL, ECE (all and foreground pixels), per-class IoU.

    On DigitScenes the foreground ECE is ``digit_ece`` and ``digit_accuracy`` is reported; on
    :class:`utils.nuclei.NucleiTiles` they are ``foreground_ece`` and ``foreground_iou`` (the IoU of
    class 1, nucleus).
    """
    if not isinstance(dataset, (DigitScenes, NucleiTiles)):
        raise TypeError(f"dataset must be a utils.data.DigitScenes or utils.nuclei.NucleiTiles, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    digits = isinstance(dataset, DigitScenes)
    k = NUM_CLASSES if digits else DATASETS["nuclei"]
    was_training = model.training
    model.eval()
    try:
        logits = predict_logits(model, dataset.images, batch_size=batch_size, device=device)
    finally:
        model.train(was_training)
    if logits.shape[1] != k:
        raise ValueError(f"model returns {logits.shape[1]} classes, but {type(dataset).__name__} has {k}")
    pred = logits.argmax(1)
    conf = confusion_matrix(pred, dataset.labels, k)
    probs = logits.softmax(1)
    ece = CalibrationMeter(k, classwise=False).update(probs, dataset.labels).ece()
    fg_ece = CalibrationMeter(k, classwise=False).update(probs, dataset.labels, mask=dataset.labels > 0).ece()
    scores: dict[str, object] = {
        "miou": mean_iou(conf),
        "pixel_accuracy": pixel_accuracy(conf),
        "nll": float(F.cross_entropy(logits, dataset.labels, ignore_index=IGNORE_INDEX)),
    }
    if digits:
        scores |= {"digit_accuracy": digit_accuracy(pred, dataset.instances, dataset.digits), "ece": ece, "digit_ece": fg_ece}
    else:
        scores |= {"foreground_iou": float(iou_per_class(conf)[1]), "ece": ece, "foreground_ece": fg_ece}
    return scores | {"iou_per_class": iou_per_class(conf).tolist(), "confusion": conf}


def _score_keys(config: TrainConfig) -> tuple[str, ...]:
    """The scalar scores of :func:`evaluate` that the history and the manifest record."""
    if config.data != "nuclei":
        return ("miou", "pixel_accuracy", "nll", "digit_accuracy", "ece", "digit_ece")
    return ("miou", "pixel_accuracy", "nll", "foreground_iou", "ece", "foreground_ece")


def train(
    config: TrainConfig | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``config.arch`` on ``config.data`` with ``config``; seeded, AMP on CUDA, validation after every epoch."""
    cfg = config or TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(cfg).__name__}")
    device = get_device(device)
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device, memory_format=torch.channels_last)
    steps_per_epoch = -(-cfg.train_size // cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.15)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    val = _dataset(cfg, "val", cfg.val_size) if cfg.val_size else None
    result = TrainResult(model=model)
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc="training", disable=not progress, mininterval=1.0)
    for epoch in range(1, cfg.epochs + 1):
        first = (epoch - 1) * cfg.train_size if cfg.recompose else 0
        data = _dataset(cfg, "train", cfg.train_size, start=first, epoch=epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        model.train()
        loss_sum, n_batches = 0.0, 0
        for idx in order.split(cfg.batch_size):
            x, y = data.images[idx].to(device), data.labels[idx].to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = F.cross_entropy(forward_logits(model, x), y, ignore_index=IGNORE_INDEX)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            schedule.step()
            result.losses.append(float(loss.detach()))
            loss_sum, n_batches = loss_sum + result.losses[-1], n_batches + 1
            result.steps += 1
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss_sum / n_batches:.3f}", refresh=False)
            if result.steps >= total_steps:
                break
        record = {"epoch": epoch, "step": result.steps, "train_loss": loss_sum / max(n_batches, 1)}
        if val is not None:
            scores = evaluate(model, val, device=device)
            record |= {f"val_{k}": scores[k] for k in _score_keys(cfg)}
        result.history.append(record)
        if epoch in cfg.snapshots:
            result.snapshots[epoch] = copy.deepcopy(model.state_dict())
        if result.steps >= total_steps:
            break
    bar.close()
    result.wall_time_s = time.perf_counter() - start
    model.eval()
    return result


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    return f"{cpu_name()}, {torch.get_num_threads()} threads (CPU), torch {torch.__version__}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m utils.train", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, required=True, help="folder for the weights and manifest.json")
    p.add_argument("--name", default=None, help="weights name (default: [nuclei_|annot_]{ARCH}_seed{SEED})")
    p.add_argument("--arch", choices=ARCHITECTURES, default=d.arch, help="model (--width/--depth/--dropout: unet only)")
    p.add_argument("--data", choices=tuple(DATASETS), default=d.data,
                   help="training data; nuclei: --train-size random crops per epoch, val/test sizes capped at their region's tiles; "
                        "annotators: one annotator's map drawn per scene and epoch, scored on the reference map")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--depth", type=int, default=d.depth)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--train-size", type=int, default=d.train_size)
    p.add_argument("--val-size", type=int, default=d.val_size)
    p.add_argument("--test-size", type=int, default=SPLIT_SIZES["test"])
    p.add_argument("--no-recompose", action="store_true", help="reuse the same training scenes every epoch")
    p.add_argument("--snapshots", default=",".join(map(str, d.snapshots)), help="comma-separated epochs ('' for none)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: train, save final weights and snapshots, score them, update the manifest."""
    args = _parse(argv)
    command = "python -m utils.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        cfg = TrainConfig(
            seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            weight_decay=args.weight_decay, width=args.width, depth=args.depth, dropout=args.dropout,
            train_size=args.train_size, val_size=args.val_size, recompose=not args.no_recompose,
            snapshots=tuple(int(e) for e in args.snapshots.split(",") if e.strip()), max_steps=args.max_steps,
            arch=args.arch, data=args.data,
        )  # fmt: skip
    except ValueError as err:
        hint = " (pass --snapshots '' to keep no snapshots, or list epochs below --epochs)" if "snapshots" in str(err) else ""
        print(f"error: {err}{hint}", file=sys.stderr)
        return 2
    if args.test_size < 0:
        print(f"error: test_size must be >= 0, got {args.test_size}", file=sys.stderr)
        return 2
    prefix = {"nuclei": "nuclei_", "annotators": "annot_"}.get(cfg.data, "")
    name = args.name or f"{prefix}{cfg.arch}_seed{cfg.seed}"
    device = get_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    result = train(cfg, device=device, progress=not args.quiet)
    test = _dataset(cfg, "test", args.test_size) if args.test_size else None
    states = {**result.snapshots, cfg.epochs: result.model.state_dict()}
    for epoch, state in states.items():
        file_name = f"{name}.pt" if epoch == cfg.epochs else f"{name}_epoch{epoch:02d}.pt"
        model = build_model(cfg)
        model.load_state_dict(state)
        sha = weights_mod.save(model, args.out / file_name)
        entry: dict[str, object] = {
            "file": file_name, "sha256": sha, "command": command, "epochs": cfg.epochs, "epoch": epoch,
            "config": asdict(cfg), "wall_time_s": round(result.wall_time_s, 1), "hardware": _hardware(device),
            "history": [h for h in result.history if h["epoch"] <= epoch],
        }  # fmt: skip
        weights_mod.update_manifest(args.out, file_name[:-3], entry)
        if test is not None:  # score the file as shipped (half precision), not the in-memory model
            scores = evaluate(weights_mod.load(file_name[:-3], directory=args.out), test)
            entry |= {f"test_{k}": round(float(scores[k]), 5) for k in _score_keys(cfg)[:4]}
            entry["test_size"] = len(test)
            weights_mod.update_manifest(args.out, file_name[:-3], entry)
        print(f"saved {args.out / file_name}: " + ", ".join(f"{k}={v}" for k, v in entry.items() if k.startswith("test_")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
