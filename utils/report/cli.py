"""The command line: ``python -m utils.report --help``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import shift

__all__ = ["main"]


def _load_data(spec: str, name: str) -> Any:
    """Data named on the command line: ``digitscenes:SPLIT[:N]``, ``letters[:N]``, ``nuclei:SPLIT`` or a ``.pt``/``.npz`` file."""
    from .. import data as data_mod, ood as ood_mod

    parts = spec.split(":")
    try:
        if parts[0] == "digitscenes" and len(parts) in (2, 3):
            return data_mod.DigitScenes(parts[1], *(int(p) for p in parts[2:]))
        if parts[0] == "letters" and len(parts) in (1, 2):
            return ood_mod.LetterScenes(*(int(p) for p in parts[1:]))
        if parts[0] == "nuclei" and len(parts) == 2:
            from .. import nuclei

            return nuclei.NucleiTiles(parts[1])
    except (TypeError, ValueError) as err:
        raise SystemExit(f"error: --{name} {spec!r}: {err}") from err
    path = Path(spec)
    if path.suffix not in (".pt", ".npz") or not path.is_file():
        raise SystemExit(f"error: --{name} must be digitscenes:SPLIT[:N], letters[:N], nuclei:SPLIT or an existing "
                         f".pt/.npz file with 'images' (N, C, H, W) and 'labels' (N, H, W); got {spec!r}")  # fmt: skip
    if path.suffix == ".npz":
        blob = dict(np.load(path))
    else:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    if "images" not in blob:
        raise SystemExit(f"error: --{name} file {path} holds no 'images' entry (keys: {sorted(blob)})")
    images = torch.as_tensor(blob["images"]).float()
    labels = torch.as_tensor(blob["labels"]).long() if "labels" in blob else None
    return images if labels is None else (images, labels)


def _background(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--background must be a class index or 'none', got {text!r}") from err


def _parse(argv: list[str] | None, description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m utils.report", description=description)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--weights", nargs="+", help="shipped weights name(s); several make an ensemble (e.g. unet_seed0 unet_seed1)")
    who.add_argument("--model", nargs="+", type=Path, help="TorchScript file(s) of your model (torch.jit.save); several make an ensemble")
    p.add_argument("--data", required=True, help="digitscenes:test:100, nuclei:test, or a .pt/.npz file with images and labels")
    p.add_argument("--val", help="validation data (same forms): fits the temperature and the conformal thresholds")
    p.add_argument("--shift", help=f"one of {', '.join(shift.CORRUPTIONS)} (images in [0, 1]; thickness for DigitScenes only): "
                                   "applied to --data at each --severity")  # fmt: skip
    p.add_argument("--severity", type=int, nargs="+", default=[3, 5])
    p.add_argument("--ood", nargs="+", default=[], metavar="NAME=DATA", help="OOD sets, e.g. letter=letters:200 noise=noise.pt")
    p.add_argument("--mc-dropout", type=int, default=None, metavar="S", help="add MC dropout with S samples")
    p.add_argument("--background", type=_background, default=0, help="the background class (default 0), or 'none'")
    p.add_argument("--foreground", default="foreground", help="the word for non-background pixels in the measure names")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.csv, skipped.csv and the figures (PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: diagnose, then write ``report.csv``, ``skipped.csv`` and one PNG per figure into ``--out``."""
    from ..config import get_device
    from . import __doc__ as doc, diagnose

    args = _parse(argv, (doc or "").split("\n")[0])
    device = get_device(args.device)
    if args.weights:
        from .. import weights as weights_mod

        try:
            models = [weights_mod.load(w, device=device) for w in args.weights]
        except (ValueError, TypeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        missing = [str(m) for m in args.model if not m.is_file()]
        if missing:
            print(f"error: --model file(s) not found: {missing}", file=sys.stderr)
            return 2
        models = [torch.jit.load(str(m), map_location=device).eval() for m in args.model]
    ood_sets = {}
    for item in args.ood:
        if "=" not in item:
            print(f"error: --ood entries are NAME=DATA, got {item!r}", file=sys.stderr)
            return 2
        name, spec = item.split("=", 1)
        ood_sets[name] = _load_data(spec, "ood")
    try:
        result = diagnose(models if len(models) > 1 else models[0], _load_data(args.data, "data"),
                          val=_load_data(args.val, "val") if args.val else None, shift_kind=args.shift,
                          severities=tuple(args.severity), ood=ood_sets, mc_dropout=args.mc_dropout,
                          background=args.background, foreground=args.foreground, batch_size=args.batch_size,
                          device=device, progress=not args.quiet)  # fmt: skip
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(args.out / "report.csv", index=False)
    result.skipped.to_csv(args.out / "skipped.csv", index=False)
    for name, fig in result.figures.items():
        fig.savefig(args.out / f"{name.replace(', ', '_').replace(' ', '_')}.png", dpi=100, bbox_inches="tight")
    print(result.wide().to_string())
    for row in result.skipped.itertuples():
        print(f"left out: {row.measure} ({row.method}): {row.reason}")
    print(f"wrote {args.out / 'report.csv'} ({len(result.table)} rows, {len(result.skipped)} left out) and "
          f"{len(result.figures)} figures")  # fmt: skip
    return 0
