"""Project-wide constants and the runtime helpers that read them (device choice, seeding).

This is the only module of ``utils`` that holds configuration; every other module imports from it.
"""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

#: Number of classes in a DigitScenes label map: 0 = background, k + 1 = digit k.
NUM_CLASSES: int = 11
#: Label value for pixels that a split excludes from every metric (used for out-of-distribution objects).
IGNORE_INDEX: int = 255
#: Side length, in pixels, of a DigitScenes image.
IMAGE_SIZE: int = 64
#: Human-readable class names, indexed by label value.
CLASS_NAMES: tuple[str, ...] = ("background",) + tuple(str(d) for d in range(10))
#: Split identifiers; they enter every per-scene random seed so that splits never share scenes.
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
#: Default number of scenes per split.
SPLIT_SIZES: dict[str, int] = {"train": 8000, "val": 1000, "test": 1000}
#: Source digits per class in each split's disjoint pool (500 MNIST digits per class in total).
POOL_PER_CLASS: dict[str, int] = {"train": 350, "val": 50, "test": 100}
#: Seed of the fixed permutation that splits the source digits into pools.
POOL_SEED: int = 2015
#: Rendered ink at or above this value (in [0, 1]) makes a pixel part of its digit's mask.
STROKE_THRESHOLD: float = 0.5
#: Default seed of the course.
DEFAULT_SEED: int = 0


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return ``prefer`` if given, else CUDA when available, else the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = DEFAULT_SEED) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so that a run is repeatable."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def cpu_name() -> str:
    """Return the CPU's model name (from /proc/cpuinfo where available)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kernel_set() -> str:
    """Return the CPU kernels PyTorch uses here, e.g. ``"ATen AVX512, oneDNN max ISA: default"`` (they set the last bits of every float)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "default")
    return f"ATen {torch.backends.cpu.get_cpu_capability()}, oneDNN max ISA: {isa}"

