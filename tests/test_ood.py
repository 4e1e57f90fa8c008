"""Unit tests of utils.ood: letter glyphs, letter scenes, photo crops and noise images."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from utils.config import IGNORE_INDEX, NUM_CLASSES, STROKE_THRESHOLD
from utils.data import SceneConfig, make_scene
from utils.ood import (
    FONT_FILES,
    LETTERS,
    PHOTO_NAMES,
    LetterScenes,
    font_paths,
    letter_glyphs,
    make_letter_scene,
    noise_images,
    photo_crops,
)

NOISELESS = SceneConfig(noise_std=0.0)


def _digit_base(index: int, seed: int = 0, split: str = "test", config: SceneConfig = NOISELESS):
    """The digits-only scene a letter scene starts from (noise-free, at most three digits)."""
    cfg = dataclasses.replace(config, noise_std=0.0, max_digits=min(config.max_digits, 3))
    return make_scene(split, index, seed, cfg)


@pytest.fixture(scope="module")
def noiseless_scenes():
    """Fifty noise-free letter scenes of the test split (built once)."""
    return [make_letter_scene(i, config=NOISELESS) for i in range(50)]


# --- fonts and glyphs -----------------------------------------------------------------------------


def test_font_paths_exist_and_follow_font_files():
    paths = font_paths()
    assert [p.name for p in paths] == list(FONT_FILES)
    assert len(FONT_FILES) == 21 and len(set(FONT_FILES)) == 21
    assert all(p.is_absolute() and p.is_file() for p in paths)


def test_letter_glyphs_shapes_dtypes_and_order():
    glyphs, classes, fonts = letter_glyphs()
    n = len(LETTERS) * len(FONT_FILES)
    assert LETTERS == "ABCDEFGHIJ"
    assert glyphs.shape == (n, 28, 28) and glyphs.dtype == np.float32
    assert classes.shape == (n,) and classes.dtype == np.int64
    assert np.array_equal(classes, np.tile(np.arange(10), len(FONT_FILES)))
    assert fonts == [f for f in FONT_FILES for _ in LETTERS]
    assert glyphs.min() >= 0.0 and glyphs.max() <= 1.0


def test_every_glyph_has_ink_fitted_in_a_centred_20x20_box():
    glyphs, _, fonts = letter_glyphs()
    for g, font in zip(glyphs, fonts):
        assert g.max() >= 0.9 and (g >= STROKE_THRESHOLD).sum() >= 20, font
        rows = np.flatnonzero(g.max(axis=1) > 0)
        cols = np.flatnonzero(g.max(axis=0) > 0)
        assert rows[0] >= 4 and rows[-1] <= 23 and cols[0] >= 4 and cols[-1] <= 23, font
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= 18, font  # the longer side fills the box
        # centred: the margins on either side differ by at most one pixel
        assert abs(rows[0] - (27 - rows[-1])) <= 1 and abs(cols[0] - (27 - cols[-1])) <= 1, font


def test_letters_of_each_font_are_pairwise_different():
    glyphs, _, _ = letter_glyphs()
    for f, font in enumerate(FONT_FILES):
        g = glyphs[10 * f : 10 * f + 10].reshape(10, -1)
        diff = np.abs(g[:, None] - g[None]).mean(-1)
        off_diagonal = diff[~np.eye(10, dtype=bool)]
        assert off_diagonal.min() > 0.01, font


def test_glyphs_look_like_their_letter():
    """Leave-one-font-out nearest template: a font whose character map is off would fail this."""
    glyphs, classes, fonts = letter_glyphs()
    fonts = np.asarray(fonts)
    correct = 0
    for font in FONT_FILES:
        mine, rest = fonts == font, fonts != font
        templates = np.stack([glyphs[rest & (classes == k)].mean(0) for k in range(10)]).reshape(10, -1)
        dist = ((glyphs[mine].reshape(10, 1, -1) - templates[None]) ** 2).sum(-1)
        hits = int((dist.argmin(1) == classes[mine]).sum())
        assert hits >= 5, f"{font}: only {hits}/10 letters are nearest their own letter"
        correct += hits
    assert correct >= 0.85 * len(glyphs)


def test_letter_glyphs_returns_copies():
    glyphs, classes, fonts = letter_glyphs()
    glyphs[:] = -1.0
    classes[:] = 99
    fonts.clear()
    again = letter_glyphs()
    assert again[0].min() >= 0.0 and again[1].max() == 9 and len(again[2]) == len(again[0])


# --- letter scenes --------------------------------------------------------------------------------


def test_make_letter_scene_types_shapes_and_ranges():
    scene = make_letter_scene(0)
    assert scene.image.shape == (64, 64) and scene.image.dtype == np.float32
    assert scene.label.shape == (64, 64) and scene.label.dtype == np.uint8
    assert scene.ood.shape == (64, 64) and scene.ood.dtype == np.bool_
    assert 0.0 <= scene.image.min() and scene.image.max() <= 1.0
    values = set(np.unique(scene.label).tolist())
    assert values <= set(range(NUM_CLASSES)) | {IGNORE_INDEX}


def test_make_letter_scene_is_deterministic():
    for index, seed, split in ((0, 0, "test"), (7, 3, "val"), (2, 1, "train")):
        a = make_letter_scene(index, seed, split)
        b = make_letter_scene(index, seed, split)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
        assert np.array_equal(a.ood, b.ood)
        assert a.digits == b.digits and a.letters == b.letters and a.boxes == b.boxes


def test_make_letter_scene_differs_by_index_seed_and_split():
    base = make_letter_scene(5)
    assert not np.array_equal(base.image, make_letter_scene(6).image)
    assert not np.array_equal(base.image, make_letter_scene(5, seed=1).image)
    assert not np.array_equal(base.image, make_letter_scene(5, split="val").image)


def test_ood_is_exactly_the_ignored_letter_strokes(noiseless_scenes):
    for scene in noiseless_scenes:
        assert np.array_equal(scene.ood, scene.label == IGNORE_INDEX)
        assert np.all(scene.image[scene.ood] >= STROKE_THRESHOLD)  # noise_std = 0: image is the ink
        # every stroke pixel is labelled: a digit or a letter
        assert np.array_equal(scene.label > 0, scene.image >= STROKE_THRESHOLD)


def test_most_scenes_hold_a_letter(noiseless_scenes):
    with_letter = sum(bool(s.ood.any()) for s in noiseless_scenes)
    assert with_letter >= 45, f"only {with_letter}/50 scenes have letter pixels"


def test_contents_lists_match_what_is_placed(noiseless_scenes):
    for i, scene in enumerate(noiseless_scenes):
        base = _digit_base(i)
        assert scene.digits == base.digits
        assert scene.boxes[: len(base.boxes)] == base.boxes
        assert len(scene.boxes) == len(scene.digits) + len(scene.letters)
        assert 0 <= len(scene.letters) <= 2 and 1 <= len(scene.digits) <= 3
        assert all(letter in LETTERS for letter in scene.letters)
        assert bool(scene.letters) == bool(scene.ood.any())
        # the digits are untouched wherever no letter stroke lies; letters only ever add ink
        assert np.array_equal(scene.label[~scene.ood], base.label[~scene.ood])
        assert np.all(scene.image >= base.image)
        # every letter pixel lies inside a letter box
        inside = np.zeros_like(scene.ood)
        for top, left, h, w in scene.boxes[len(scene.digits) :]:
            inside[top : top + h, left : left + w] = True
        assert not (scene.ood & ~inside).any()
        assert np.array_equal(scene.image[~inside], base.image[~inside])


def test_letter_count_follows_the_letters_range():
    for i in range(6):
        none = make_letter_scene(i, letters=(0, 0), config=NOISELESS)
        base = _digit_base(i)
        assert none.letters == [] and not none.ood.any()
        assert np.array_equal(none.image, base.image) and np.array_equal(none.label, base.label)
    counts = [len(make_letter_scene(i, letters=(3, 3), config=NOISELESS).letters) for i in range(10)]
    assert max(counts) == 3 and sum(counts) >= 20  # a letter is only left out when there is no room


def test_noise_changes_the_image_but_not_labels_or_contents():
    clean = make_letter_scene(3, config=NOISELESS)
    noisy = make_letter_scene(3, config=SceneConfig(noise_std=0.05))
    assert np.array_equal(clean.label, noisy.label) and np.array_equal(clean.ood, noisy.ood)
    assert clean.digits == noisy.digits and clean.letters == noisy.letters
    assert not np.array_equal(clean.image, noisy.image)
    assert np.abs(clean.image - noisy.image).max() < 0.4
    default = make_letter_scene(3)  # the default config adds noise too
    assert not np.array_equal(clean.image, default.image)


def test_letter_scenes_dataset_matches_make_letter_scene():
    ds = LetterScenes(5, seed=2)
    assert len(ds) == 5
    assert ds.images.shape == (5, 1, 64, 64) and ds.images.dtype == torch.float32
    assert ds.labels.shape == (5, 64, 64) and ds.labels.dtype == torch.int64
    assert ds.ood.shape == (5, 64, 64) and ds.ood.dtype == torch.bool
    assert torch.equal(ds.ood, ds.labels == IGNORE_INDEX)
    image, label = ds[1]
    assert image.shape == (1, 64, 64) and label.shape == (64, 64)
    for i in range(5):
        scene = make_letter_scene(i, seed=2)
        assert np.array_equal(ds.images[i, 0].numpy(), scene.image)
        assert np.array_equal(ds.labels[i].numpy(), scene.label.astype(np.int64))
        assert ds.digits[i] == scene.digits and ds.letters[i] == scene.letters
    again = LetterScenes(5, seed=2)
    assert torch.equal(ds.images, again.images) and torch.equal(ds.labels, again.labels)
    assert not torch.equal(ds.images, LetterScenes(5, seed=3).images)


def test_empty_dataset_and_custom_canvas():
    empty = LetterScenes(0)
    assert len(empty) == 0 and empty.images.shape == (0, 1, 64, 64) and empty.ood.shape == (0, 64, 64)
    small = LetterScenes(3, config=SceneConfig(size=32, scale=(8.0, 16.0)))
    assert small.images.shape == (3, 1, 32, 32) and small.ood.shape == (3, 32, 32)


def test_letter_scenes_build_quickly():
    t0 = time.perf_counter()
    ds = LetterScenes(200)
    elapsed = time.perf_counter() - t0
    assert len(ds) == 200
    assert elapsed < 10.0, f"LetterScenes(200) took {elapsed:.1f} s"


# --- photo crops ----------------------------------------------------------------------------------


def test_photo_crops_shapes_ranges_and_determinism():
    crops = photo_crops(12, seed=1)
    assert crops.shape == (12, 1, 64, 64) and crops.dtype == torch.float32
    assert float(crops.min()) >= 0.0 and float(crops.max()) <= 1.0
    assert torch.equal(crops, photo_crops(12, seed=1))
    assert not torch.equal(crops, photo_crops(12, seed=2))
    assert torch.equal(photo_crops(5, seed=1), crops[:5])  # crop i does not depend on n
    assert all(float(c.std()) > 0.0 for c in crops)  # real image content, not a flat fill
    assert len({round(float(c.mean()), 4) for c in crops}) >= 10  # crops differ from one another


def test_photo_crops_size_names_and_empty():
    assert photo_crops(3, size=32).shape == (3, 1, 32, 32)
    assert photo_crops(0).shape == (0, 1, 64, 64)
    moon = photo_crops(4, names=("moon",))
    assert moon.shape == (4, 1, 64, 64)
    assert not torch.equal(moon, photo_crops(4, names=("text",)))
    assert len(PHOTO_NAMES) == 15
    every = photo_crops(40, seed=0)  # every listed photo loads
    assert every.shape == (40, 1, 64, 64)


# --- noise ----------------------------------------------------------------------------------------


def test_uniform_noise_statistics_and_determinism():
    x = noise_images(8, seed=1)
    assert x.shape == (8, 1, 64, 64) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert abs(float(x.mean()) - 0.5) < 0.01 and abs(float(x.std()) - 12**-0.5) < 0.01
    assert torch.equal(x, noise_images(8, seed=1))
    assert not torch.equal(x, noise_images(8, seed=2))


def test_gaussian_noise_statistics():
    x = noise_images(8, kind="gaussian", seed=0, size=32, std=0.1)
    assert x.shape == (8, 1, 32, 32)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert abs(float(x.mean()) - 0.5) < 0.01 and abs(float(x.std()) - 0.1) < 0.01
    wide = noise_images(8, kind="gaussian", std=0.25)
    assert abs(float(wide.mean()) - 0.5) < 0.01 and 0.2 < float(wide.std()) < 0.25  # clipping shrinks it
    assert torch.equal(wide, noise_images(8, kind="gaussian", std=0.25))
    assert noise_images(0, kind="gaussian").shape == (0, 1, 64, 64)


# --- argument validation --------------------------------------------------------------------------


def test_bad_counts_sizes_and_seeds_raise():
    with pytest.raises(ValueError, match="n must"):
        photo_crops(-1)
    with pytest.raises(ValueError, match="n must"):
        noise_images(-1)
    with pytest.raises(TypeError, match="n must"):
        noise_images(2.5)
    with pytest.raises(ValueError, match="size"):
        photo_crops(1, size=8)
    with pytest.raises(ValueError, match="size"):
        noise_images(1, size=0)
    with pytest.raises(ValueError, match="size"):
        LetterScenes(-1)
    with pytest.raises(ValueError, match="seed"):
        photo_crops(1, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        make_letter_scene(0, seed=-1)
    with pytest.raises(ValueError, match="index"):
        make_letter_scene(-1)


def test_bad_kind_std_and_names_raise():
    with pytest.raises(ValueError, match="kind.*uniform.*gaussian"):
        noise_images(1, kind="pink")
    with pytest.raises(ValueError, match="std"):
        noise_images(1, kind="gaussian", std=-0.1)
    with pytest.raises(ValueError, match="names.*unknown.*lena"):
        photo_crops(1, names=("moon", "lena"))
    with pytest.raises(ValueError, match="names"):
        photo_crops(1, names=())
    with pytest.raises(TypeError, match="names"):
        photo_crops(1, names="moon")


def test_bad_letters_split_and_config_raise():
    for bad in ((2, 1), (-1, 1), (1,), (1, 2, 3)):
        with pytest.raises(ValueError, match="letters"):
            make_letter_scene(0, letters=bad)
    with pytest.raises(TypeError, match="letters"):
        make_letter_scene(0, letters=(1.0, 2))
    with pytest.raises(ValueError, match="letters"):
        LetterScenes(1, letters=(3, 2))
    with pytest.raises(ValueError, match="split"):
        make_letter_scene(0, split="holdout")
    with pytest.raises(ValueError, match="split"):
        LetterScenes(1, split="holdout")
    with pytest.raises(TypeError, match="SceneConfig"):
        LetterScenes(1, config={"noise_std": 0.0})
