"""Find the training digits that the course's five-network ensemble finds most ambiguous, for the "ambiguous" trap scenes.

Usage (from the repository root)::

    python -m utils.active.ambiguous --out utils/results/ambiguous_digits.json

Each training-pool digit is drawn alone, upright and 28 pixels tall in the middle of a 64-pixel scene;
the ensemble ``unet_seed0`` ... ``unet_seed4`` predicts it, and its probabilities are averaged over the
digit's pixels (renormalised over the ten digit classes). The ``count`` digits with the largest
second-highest probability are listed with their two most probable classes: a trap glyph drawn from one
of them is labelled with either class by a coin flip. The list is shipped, so that every machine builds
the same trap scenes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from ..config import IMAGE_SIZE, STROKE_THRESHOLD, cpu_name, kernel_set
from ..data import _pool, _render_glyph

__all__ = ["digit_probabilities", "main", "most_ambiguous"]

_HEIGHT = 28.0


def _centred(digit: np.ndarray, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Return the digit drawn upright, ``_HEIGHT`` pixels tall, in the middle of a ``size`` scene, and its stroke mask."""
    glyph = _render_glyph(digit, _HEIGHT, 0.0)
    image = np.zeros((size, size), np.float32)
    h, w = glyph.shape
    top, left = (size - h) // 2, (size - w) // 2
    image[top : top + h, left : left + w] = glyph
    return image, image >= STROKE_THRESHOLD


def digit_probabilities(members: list[torch.nn.Module]) -> torch.Tensor:
    """Return ``(N, 10)``: the ensemble's class probabilities averaged over each training-pool digit's pixels, over the digit classes only."""
    from ..uncertainty import ensemble

    pool_x, _, _ = _pool("train")
    drawn = [_centred(d) for d in pool_x]
    images = torch.from_numpy(np.stack([im for im, _ in drawn]))[:, None]
    masks = torch.from_numpy(np.stack([m for _, m in drawn]))
    probs = ensemble(members, images, device="cpu").probs  # (N, 11, H, W)
    mean = (probs * masks[:, None]).sum((2, 3)) / masks.sum((1, 2)).clamp_min(1)[:, None]
    digits = mean[:, 1:]
    return digits / digits.sum(1, keepdim=True)


def most_ambiguous(probs: torch.Tensor, count: int) -> list[dict[str, object]]:
    """Return the ``count`` rows of ``probs`` ``(N, 10)`` with the largest second-highest probability, most ambiguous first."""
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or probs.shape[1] != 10:
        raise ValueError(f"probs must be a (N, 10) tensor, got {getattr(probs, 'shape', type(probs))}")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(probs):
        raise ValueError(f"count must be an int in [1, {len(probs)}], got {count!r}")
    top = probs.topk(2, dim=1)
    order = torch.sort(-top.values[:, 1].double(), stable=True).indices[:count]
    _, labels, sources = _pool("train")
    return [{"index": int(i), "source": int(sources[i]), "label": int(labels[i]),
             "classes": [int(c) for c in top.indices[i]], "probs": [round(float(p), 4) for p in top.values[i]]}
            for i in order]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: write the list of ambiguous training digits."""
    from ..weights import load

    p = argparse.ArgumentParser(prog="python -m utils.active.ambiguous", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--count", type=int, default=20)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    members = [load(f"unet_seed{s}", device="cpu") for s in range(5)]
    rows = most_ambiguous(digit_probabilities(members), args.count)
    command = "python -m utils.active.ambiguous " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = {"command": command, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpu": cpu_name(), "kernels": kernel_set(), "torch": torch.__version__,
                          "python": platform.python_version()},
              "ensemble": [f"unet_seed{s}" for s in range(5)], "digits": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}: {len(rows)} digits, second-class probability {rows[-1]['probs'][1]}-{rows[0]['probs'][1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
