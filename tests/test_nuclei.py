"""Unit tests of utils.nuclei: the nuclei image, its disjoint regions, the tiles and the touching-nuclei mask."""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
import torch

from utils import nuclei
from utils.nuclei import REGIONS, NucleiTiles, instance_counts, nuclei_image, nuclei_region, touching_mask


def test_full_image_and_mask():
    image, mask = nuclei_image()
    assert image.shape == mask.shape == (512, 512)
    assert image.dtype == np.float32 and mask.dtype == np.int64
    assert 0.0 <= image.min() and image.max() <= 1.0
    # the raw file holds 8-bit values in uint16: dividing by 255 keeps them exact multiples of 1/255
    assert np.allclose(image * 255, np.round(image * 255), atol=1e-3)
    assert 0.1 < (mask > 0).mean() < 0.3
    # nuclei are brighter than background on average
    assert image[mask > 0].mean() > 2 * image[mask == 0].mean()
    image[0, 0] = 7.0  # a copy: the cached arrays stay untouched
    assert nuclei_image()[0][0, 0] <= 1.0


def test_regions_cover_the_image_disjointly():
    owner = np.zeros((512, 512), int)
    for r0, r1, c0, c1 in REGIONS.values():
        owner[r0:r1, c0:c1] += 1
    assert (owner == 1).all()  # every pixel in exactly one region


def test_region_arrays_match_the_image():
    image, mask = nuclei_image()
    for split, (r0, r1, c0, c1) in REGIONS.items():
        img, lab, inst = nuclei_region(split)
        assert np.array_equal(img, image[r0:r1, c0:c1]) and np.array_equal(inst, mask[r0:r1, c0:c1])
        assert set(np.unique(lab)) == {0, 1} and np.array_equal(lab, (inst > 0).astype(np.int64))


def test_instance_counts():
    counts = instance_counts()
    _, mask = nuclei_image()
    assert counts["image"] == len(np.unique(mask)) - 1
    assert all(counts[s] > 10 for s in REGIONS)
    # nuclei cut by a border count in both regions, so the regions' counts add up to at least the total
    assert sum(counts[s] for s in REGIONS) >= counts["image"]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_grid_tiles_shapes_dtypes_and_origins(split):
    tiles = NucleiTiles(split)
    r0, r1, c0, c1 = REGIONS[split]
    assert len(tiles) == ((r1 - r0) // 64) * ((c1 - c0) // 64)
    assert tiles.images.shape == (len(tiles), 1, 64, 64) and tiles.images.dtype == torch.float32
    assert tiles.labels.shape == (len(tiles), 64, 64) and tiles.labels.dtype == torch.int64
    assert float(tiles.images.min()) >= 0.0 and float(tiles.images.max()) <= 1.0
    assert set(tiles.labels.unique().tolist()) == {0, 1}
    image, mask = nuclei_image()
    for i, (y, x) in enumerate(tiles.origins):
        assert r0 <= y and y + 64 <= r1 and c0 <= x and x + 64 <= c1
        assert np.array_equal(tiles.images[i, 0].numpy(), image[y : y + 64, x : x + 64])
        assert np.array_equal(tiles.instances[i].numpy(), mask[y : y + 64, x : x + 64])
    img, lab = tiles[0]
    assert img.shape == (1, 64, 64) and lab.shape == (64, 64)


def test_no_pixel_is_used_by_two_splits_even_with_augmentation():
    used = {}
    for split in REGIONS:
        seen = np.zeros((512, 512), bool)
        for tiles in (NucleiTiles(split, stride=16), NucleiTiles(split, 200, augment=True, seed=3)):
            for y, x in tiles.origins:
                seen[y : y + 64, x : x + 64] = True
        used[split] = seen
    assert not (used["train"] & used["val"]).any()
    assert not (used["train"] & used["test"]).any()
    assert not (used["val"] & used["test"]).any()


def test_augmented_crops_are_deterministic_and_are_dihedral_views():
    a = NucleiTiles("train", 40, augment=True, seed=5)
    b = NucleiTiles("train", 40, augment=True, seed=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.origins == b.origins
    c = NucleiTiles("train", 40, augment=True, seed=6)
    assert a.origins != c.origins
    # start shifts the crop index: crops 20-39 of one draw are crops 0-19 of the next
    d = NucleiTiles("train", 20, augment=True, seed=5, start=20)
    assert torch.equal(d.images, a.images[20:]) and d.origins == a.origins[20:]
    # every crop is one of the 8 flips/rotations of the region's pixels at its origin
    image, mask = nuclei_image()
    kinds = set()
    for i, (y, x) in enumerate(a.origins):
        raw, inst = image[y : y + 64, x : x + 64], mask[y : y + 64, x : x + 64]
        views = [(f, k) for f in (False, True) for k in range(4)]
        match = [
            (f, k) for f, k in views
            if np.array_equal(np.rot90(raw[:, ::-1] if f else raw, k), a.images[i, 0].numpy())
            and np.array_equal(np.rot90(inst[:, ::-1] if f else inst, k), a.instances[i].numpy())
        ]  # fmt: skip
        assert match, i
        kinds.add(match[0])
    assert len(kinds) >= 4  # flips and rotations actually vary


def test_grid_stride_and_size():
    overlapping = NucleiTiles("val", stride=32)
    assert len(overlapping) == 7 * 7
    assert len(NucleiTiles("val", 5)) == 5
    assert len(NucleiTiles("test", tile_size=128)) == 4
    assert torch.equal(NucleiTiles("test", 3).images, NucleiTiles("test").images[:3])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"split": "validation"}, "split"),
        ({"split": "train", "tile_size": 4}, "tile_size"),
        ({"split": "val", "tile_size": 300}, "tile_size"),
        ({"split": "val", "tile_size": 64.0}, "tile_size"),
        ({"split": "val", "stride": 0}, "stride"),
        ({"split": "val", "size": -1}, "size"),
        ({"split": "val", "size": 17}, "size"),
        ({"split": "train", "augment": True, "seed": -1}, "seed"),
        ({"split": "train", "augment": True, "start": -2}, "start"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NucleiTiles(**kwargs)
    with pytest.raises(ValueError, match="split"):
        nuclei_region("all")


def test_touching_mask_on_a_toy():
    inst = np.zeros((8, 8), np.int64)
    inst[1:4, 1:4] = 1
    inst[1:4, 4:7] = 2  # touches nucleus 1 along columns 3|4
    inst[6:8, 0:2] = 3  # alone
    touch = touching_mask(inst)
    assert touch.dtype == bool and touch.shape == inst.shape
    assert touch[2, 3] and touch[2, 4] and not touch[2, 1] and not touch[2, 6]
    assert not touch[6:, :2].any()
    wide = touching_mask(inst, distance=2)
    assert wide[2, 2] and not touch[2, 2] and (wide >= touch).all()
    # a batch gives the mask of each item; a tensor works too
    both = touching_mask(torch.from_numpy(np.stack([inst, np.zeros_like(inst)])))
    assert np.array_equal(both[0], touch) and not both[1].any()


def test_touching_mask_on_the_image():
    _, mask = nuclei_image()
    touch = touching_mask(mask)
    assert 0 < touch.mean() < 0.05  # thin lines where nuclei meet
    for bad, err in [((mask > 0).astype(float), ValueError), (mask.tolist(), TypeError), (mask[0], ValueError)]:
        with pytest.raises(err, match="instances"):
            touching_mask(bad)
    with pytest.raises(ValueError, match="distance"):
        touching_mask(mask, distance=0)


def test_missing_stardist_says_how_to_install(monkeypatch):
    def absent(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(nuclei.metadata, "distribution", absent)
    nuclei._read.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install stardist"):
            nuclei_image()
    finally:
        monkeypatch.undo()
        nuclei._read.cache_clear()
    assert nuclei_image()[0].shape == (512, 512)


def test_missing_file_says_how_to_reinstall(monkeypatch, tmp_path):
    class Dist:
        def locate_file(self, rel):
            return tmp_path / rel

    monkeypatch.setattr(nuclei.metadata, "distribution", lambda name: Dist())
    nuclei._read.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="pip install stardist"):
            nuclei_image()
    finally:
        monkeypatch.undo()
        nuclei._read.cache_clear()
