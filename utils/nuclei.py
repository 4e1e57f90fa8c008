"""Real microscopy: one annotated fluorescence image of cell nuclei, cut into disjoint train/val/test regions.

The image is ``img2d.tif`` of the ``stardist`` wheel (its test data, BSD-3 licensed): a 512x512
fluorescence image of stained nuclei from the 2018 Data Science Bowl (Broad Bioimage Benchmark
Collection BBBC038, Caicedo et al. 2019), with ``mask2d.tif``, its hand-annotated instance mask
(0 = background, one integer per nucleus). Nothing is downloaded and stardist is never imported:
the files are located through the installed distribution's metadata and read with ``tifffile``.

Regions (rows, columns of the 512x512 image; no pixel belongs to two of them)
    ``train``: the left half, rows 0-511 x columns 0-255;
    ``val``: the top of the right half, rows 0-255 x columns 256-511 (for temperature scaling and
    conformal calibration);
    ``test``: the bottom of the right half, rows 256-511 x columns 256-511.

A nucleus cut by a region border keeps its pixels on each side (each region counts it). The
semantic labels are 0 = background, 1 = nucleus. :class:`NucleiTiles` cuts a region into square
tiles on a regular grid, or (``augment=True``) draws seeded random crops inside it, each flipped
and rotated by a multiple of 90 degrees at random.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "NUCLEI_CLASS_NAMES",
    "REGIONS",
    "NucleiTiles",
    "instance_counts",
    "nuclei_image",
    "nuclei_region",
    "touching_mask",
]

#: Class names of the semantic labels, indexed by label value.
NUCLEI_CLASS_NAMES: tuple[str, ...] = ("background", "nucleus")
#: (first row, end row, first column, end column) of each split's region in the 512x512 image.
REGIONS: dict[str, tuple[int, int, int, int]] = {
    "train": (0, 512, 0, 256),
    "val": (0, 256, 256, 512),
    "test": (256, 512, 256, 512),
}
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_FILES = ("stardist/data/images/img2d.tif", "stardist/data/images/mask2d.tif")
_INSTALL = "pip install stardist (its wheel ships the image; utils reads it without importing stardist)"


def _check_split(split: str) -> None:
    if split not in REGIONS:
        raise ValueError(f"split must be one of {sorted(REGIONS)}, got {split!r}")


@lru_cache(maxsize=1)
def _read() -> tuple[np.ndarray, np.ndarray]:
    try:
        dist = metadata.distribution("stardist")
    except metadata.PackageNotFoundError as err:
        raise ImportError(f"the nuclei image ships inside the stardist wheel, which is not installed: {_INSTALL}") from err
    import tifffile  # a dependency of scikit-image

    arrays = []
    for rel in _FILES:
        path = dist.locate_file(rel)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from the installed stardist; reinstall it: {_INSTALL}")
        arrays.append(tifffile.imread(str(path)))
    image, mask = arrays
    if image.shape != (512, 512) or mask.shape != (512, 512):
        raise ValueError(f"expected 512x512 image and mask, got {image.shape} and {mask.shape}")
    # the Data Science Bowl images are 8-bit PNGs stored as uint16 (values 0-235): dividing by 255, the
    # range of the 8-bit data, maps them into [0, 1] without stretching the contrast of this one image
    image = (image.astype(np.float32) / 255.0).clip(0.0, 1.0)
    image.setflags(write=False)
    mask = mask.astype(np.int64)
    mask.setflags(write=False)
    return image, mask


def nuclei_image() -> tuple[np.ndarray, np.ndarray]:
    """Return the full image ``(512, 512)`` float32 in [0, 1] (uint16 values / 255) and its instance mask (int64, 0 = background)."""
    image, mask = _read()
    return image.copy(), mask.copy()


def nuclei_region(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``split``'s whole region: image float32 in [0, 1], semantic labels (0/1, int64) and instance mask."""
    _check_split(split)
    r0, r1, c0, c1 = REGIONS[split]
    image, mask = _read()
    inst = mask[r0:r1, c0:c1].copy()
    return image[r0:r1, c0:c1].copy(), (inst > 0).astype(np.int64), inst


def instance_counts() -> dict[str, int]:
    """Return the number of nuclei with at least one pixel in each region (and ``"image"``: in the whole image)."""
    _, mask = _read()
    counts = {}
    for split in REGIONS:
        ids = np.unique(nuclei_region(split)[2])
        counts[split] = int((ids > 0).sum())
    counts["image"] = int((np.unique(mask) > 0).sum())
    return counts


def touching_mask(instances: np.ndarray | torch.Tensor, distance: int = 1) -> np.ndarray:
    """Return a bool mask of the pixels within ``distance`` px (chessboard) of two different nuclei: where nuclei touch.

    ``instances`` is an instance mask ``(H, W)`` or a batch ``(N, H, W)`` (0 = background). A pixel is
    marked when its ``(2 * distance + 1)``-square neighbourhood holds pixels of at least two different
    nuclei; the mask has the shape of ``instances``.
    """
    if isinstance(instances, torch.Tensor):
        instances = instances.cpu().numpy()
    if not isinstance(instances, np.ndarray):
        raise TypeError(f"instances must be a numpy array or torch tensor, got {type(instances).__name__}")
    if instances.ndim not in (2, 3) or not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(f"instances must be an integer array (H, W) or (N, H, W), got {instances.dtype} {instances.shape}")
    if isinstance(distance, bool) or not isinstance(distance, int) or distance < 1:
        raise ValueError(f"distance must be an int >= 1, got {distance!r}")
    batch = instances[None] if instances.ndim == 2 else instances
    big = np.iinfo(np.int64).max
    d = distance
    fg = np.pad(batch.astype(np.int64), ((0, 0), (d, d), (d, d)))
    low = np.where(fg > 0, fg, big)
    h, w = batch.shape[1:]
    hi = np.zeros(batch.shape, np.int64)
    lo = np.full(batch.shape, big, np.int64)
    for dy in range(2 * d + 1):
        for dx in range(2 * d + 1):
            hi = np.maximum(hi, fg[:, dy : dy + h, dx : dx + w])
            lo = np.minimum(lo, low[:, dy : dy + h, dx : dx + w])
    out = (hi > 0) & (lo < big) & (hi != lo)
    return out[0] if instances.ndim == 2 else out


def _grid(length: int, tile: int, stride: int) -> list[int]:
    return list(range(0, length - tile + 1, stride))


class NucleiTiles(Dataset):
    """Square tiles of one region: ``.images`` ``(N, 1, S, S)`` float32 in [0, 1], ``.labels`` ``(N, S, S)`` int64 (0/1), ``.instances``.

    ``augment=False`` (default): the tiles of a regular grid over the region, row by row, ``stride``
    pixels apart (default ``tile_size``: no overlap; a remainder narrower than a tile at the bottom or
    right is left out); ``size`` keeps the first ``size`` tiles (default all). ``augment=True``:
    ``size`` random crops inside the region (default 256), crop ``i`` drawn from
    ``numpy.random.default_rng([seed, split_id, start + i])`` alone: a position, a left-right flip
    (probability 1/2) and a rotation by ``k * 90`` degrees (k uniform in 0-3); ``start`` lets a
    training loop draw fresh crops every epoch. ``.origins`` holds each tile's (row, column) in the
    full image before flipping and rotating. ``__getitem__`` returns ``(image, label)``.
    """

    def __init__(
        self,
        split: str,
        size: int | None = None,
        tile_size: int = 64,
        stride: int | None = None,
        augment: bool = False,
        seed: int = 0,
        start: int = 0,
    ) -> None:
        _check_split(split)
        r0, r1, c0, c1 = REGIONS[split]
        if isinstance(tile_size, bool) or not isinstance(tile_size, int) or not 8 <= tile_size <= min(r1 - r0, c1 - c0):
            raise ValueError(f"tile_size must be an int in [8, {min(r1 - r0, c1 - c0)}] (the {split} region's side), got {tile_size!r}")
        stride = tile_size if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be None or a positive int, got {stride!r}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValueError(f"size must be None or a non-negative int, got {size!r}")
        for name, value in (("seed", seed), ("start", start)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        self.split, self.tile_size, self.augment = split, tile_size, bool(augment)
        image, mask = _read()
        h, w = r1 - r0, c1 - c0
        if self.augment:
            n = 256 if size is None else size
            rngs = [np.random.default_rng([seed, _SPLIT_IDS[split], start + i]) for i in range(n)]
            draws = [(int(g.integers(0, h - tile_size + 1)), int(g.integers(0, w - tile_size + 1)),
                      bool(g.random() < 0.5), int(g.integers(0, 4))) for g in rngs]  # fmt: skip
        else:
            draws = [(y, x, False, 0) for y in _grid(h, tile_size, stride) for x in _grid(w, tile_size, stride)]
            if size is not None:
                if size > len(draws):
                    raise ValueError(f"size must be at most {len(draws)} (the {split} grid's tiles), got {size}")
                draws = draws[:size]
        imgs, insts, origins = [], [], []
        for y, x, flip, k in draws:
            ys, xs = slice(r0 + y, r0 + y + tile_size), slice(c0 + x, c0 + x + tile_size)
            a, b = image[ys, xs], mask[ys, xs]
            if flip:
                a, b = a[:, ::-1], b[:, ::-1]
            imgs.append(np.rot90(a, k))
            insts.append(np.rot90(b, k))
            origins.append((r0 + y, c0 + x))
        shape = (0, tile_size, tile_size)
        self.images = torch.from_numpy(np.ascontiguousarray(np.stack(imgs) if imgs else np.zeros(shape, np.float32)))[:, None]
        self.instances = torch.from_numpy(np.ascontiguousarray(np.stack(insts) if insts else np.zeros(shape, np.int64)))
        self.labels = (self.instances > 0).long()
        self.origins = origins

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]
