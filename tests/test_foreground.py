"""Tests of utils.foreground: pooled vs digit-pixel scores and confident-error shares."""

from __future__ import annotations

import math

import pytest
import torch

from utils import foreground, metrics
from utils.config import IGNORE_INDEX


def _case() -> tuple[torch.Tensor, torch.Tensor]:
    """Random probabilities over 4 classes on 3 scenes of 8x8 with a digit square and a few ignored pixels."""
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(3, 4, 8, 8, generator=g).mul(3).softmax(1)
    labels = torch.zeros(3, 8, 8, dtype=torch.long)
    labels[:, 2:6, 2:6] = torch.randint(1, 4, (3, 1, 1), generator=g)
    labels[0, 0, :3] = IGNORE_INDEX
    return probs, labels


def test_pixel_masks_partition_the_labelled_pixels():
    _, labels = _case()
    m = foreground.pixel_masks(labels, foreground.POOLINGS)
    labelled = labels != IGNORE_INDEX
    assert torch.equal(m["all"], labelled)
    assert torch.equal(m["digits"], labelled & (labels > 0))
    assert torch.equal(m["boundary"] | m["off_boundary"], labelled)
    assert not (m["boundary"] & m["off_boundary"]).any()
    assert torch.equal(m["boundary"], labelled & metrics.boundary_mask(labels))


def test_pooled_and_digits_matches_direct_computation():
    probs, labels = _case()
    out = foreground.pooled_and_digits(probs, labels, poolings=("all", "digits", "boundary"))
    conf, pred = probs.max(1)
    for name, mask in [("all", labels != IGNORE_INDEX), ("digits", labels > 0)]:
        mask = mask & (labels != IGNORE_INDEX)
        assert out[name]["count"] == int(mask.sum())
        assert out[name]["accuracy"] == pytest.approx((pred == labels)[mask].double().mean().item())
        assert out[name]["confidence"] == pytest.approx(conf[mask].double().mean().item(), rel=1e-6)
        meter = metrics.CalibrationMeter(4).update(probs, labels, mask=mask)
        assert out[name]["ece"] == pytest.approx(meter.ece())
        assert out[name]["nll"] == pytest.approx(meter.nll())
    assert set(out) == {"all", "digits", "boundary"}


def test_pooled_and_digits_empty_pooling_is_nan():
    probs, labels = _case()
    labels = torch.zeros_like(labels)  # no digit pixel at all
    out = foreground.pooled_and_digits(probs, labels)
    assert out["digits"]["count"] == 0
    assert math.isnan(out["digits"]["accuracy"]) and math.isnan(out["digits"]["confidence"])
    assert out["all"]["count"] == labels.numel()


def test_confident_errors_counts_only_errors_in_each_pooling():
    probs, labels = _case()
    out = foreground.confident_errors(probs, labels, threshold=0.6)
    conf, pred = probs.max(1)
    labelled = labels != IGNORE_INDEX
    wrong = (pred != labels) & labelled
    assert out["all"]["errors"] == int(wrong.sum())
    assert out["all"]["share"] == pytest.approx((conf[wrong] >= 0.6).double().mean().item())
    digit_wrong = wrong & (labels > 0)
    assert out["digits"]["errors"] == int(digit_wrong.sum())
    assert out["digits"]["share"] == pytest.approx((conf[digit_wrong] >= 0.6).double().mean().item())
    off = wrong & ~metrics.boundary_mask(labels)
    assert out["off_boundary"]["errors"] == int(off.sum())


def test_confident_errors_threshold_edges():
    probs, labels = _case()
    assert foreground.confident_errors(probs, labels, threshold=0.0)["all"]["share"] == 1.0
    assert foreground.confident_errors(probs, labels, threshold=1.0)["all"]["share"] == 0.0


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"probs": [1.0]}, TypeError),
        ({"probs": torch.rand(3, 8, 8)}, ValueError),
        ({"labels": torch.zeros(3, 8, 8)}, TypeError),
        ({"labels": torch.zeros(3, 8, 9, dtype=torch.long)}, ValueError),
        ({"poolings": "all"}, TypeError),
        ({"poolings": ("all", "letters")}, ValueError),
    ],
)
def test_pooled_and_digits_rejects_bad_arguments(kwargs, error):
    probs, labels = _case()
    args = {"probs": probs, "labels": labels, **kwargs}
    with pytest.raises(error):
        foreground.pooled_and_digits(**args)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, True, "0.9"])
def test_confident_errors_rejects_bad_threshold(threshold):
    probs, labels = _case()
    with pytest.raises(ValueError, match="threshold"):
        foreground.confident_errors(probs, labels, threshold=threshold)


def test_scene_resamples_are_seeded_and_in_range():
    a = foreground.scene_resamples(7, 50, seed=3)
    assert a.shape == (50, 7) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 7
    assert torch.equal(a, foreground.scene_resamples(7, 50, seed=3))
    assert not torch.equal(a, foreground.scene_resamples(7, 50, seed=4))


def test_bootstrap_calibration_identity_resample_matches_pooled_and_digits():
    probs, labels = _case()
    identity = torch.arange(3)[None]
    boot = foreground.bootstrap_calibration(probs, labels, identity, poolings=("all", "digits", "off_boundary"))
    direct = foreground.pooled_and_digits(probs, labels, poolings=("all", "digits", "off_boundary"))
    for name in direct:
        for score in ("accuracy", "confidence", "ece", "nll"):
            assert boot[name][score].shape == (1,)
            assert boot[name][score].item() == pytest.approx(direct[name][score], rel=1e-9, abs=1e-12)


def test_bootstrap_calibration_repeated_scene_counts_twice():
    probs, labels = _case()
    twice = torch.tensor([[0, 0, 1]])
    boot = foreground.bootstrap_calibration(probs, labels, twice)
    stacked = foreground.pooled_and_digits(probs[[0, 0, 1]], labels[[0, 0, 1]])
    for score in ("accuracy", "confidence", "ece", "nll"):
        assert boot["digits"][score].item() == pytest.approx(stacked["digits"][score], rel=1e-9)


def test_bootstrap_miou_matches_summed_confusion():
    probs, labels = _case()
    pred = probs.argmax(1)
    rows = torch.tensor([[0, 1, 2], [2, 2, 0]])
    out = foreground.bootstrap_miou(pred, labels, rows, num_classes=4)
    for r, value in zip(rows, out):
        conf = metrics.confusion_matrix(pred[r], labels[r], num_classes=4)
        assert value.item() == pytest.approx(metrics.mean_iou(conf))


def test_interval_is_central_percentiles():
    values = torch.arange(1001, dtype=torch.float64)
    assert foreground.interval(values, 0.9) == pytest.approx((50.0, 950.0))


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda p, l: foreground.scene_resamples(0), ValueError),
        (lambda p, l: foreground.scene_resamples(3, seed=-1), ValueError),
        (lambda p, l: foreground.bootstrap_calibration(p, l, torch.tensor([[0, 5]])), ValueError),
        (lambda p, l: foreground.bootstrap_calibration(p, l, [[0, 1]]), TypeError),
        (lambda p, l: foreground.bootstrap_miou(p.argmax(1), l, torch.tensor([[0]]), num_classes=2), ValueError),
        (lambda p, l: foreground.bootstrap_miou(p.argmax(1)[:2], l, torch.tensor([[0]])), ValueError),
        (lambda p, l: foreground.interval(torch.tensor([1.0]), level=1.0), ValueError),
        (lambda p, l: foreground.interval([1.0]), TypeError),
    ],
)
def test_bootstrap_helpers_reject_bad_arguments(call, error):
    probs, labels = _case()
    with pytest.raises(error):
        call(probs, labels)


def test_the_background_class_is_an_argument():
    probs, labels = _case()
    perm = torch.tensor([3, 0, 1, 2])  # background 0 becomes class 3
    p2 = torch.empty_like(probs)
    p2[:, perm] = probs
    ignored = labels == IGNORE_INDEX
    y2 = torch.where(ignored, labels, perm[torch.where(ignored, 0, labels)])
    masks = foreground.pixel_masks(y2, ("all", "digits"), background=3)
    assert torch.equal(masks["digits"], foreground.pixel_masks(labels)["digits"])
    assert foreground.pooled_and_digits(p2, y2, background=3) == foreground.pooled_and_digits(probs, labels)
    assert foreground.confident_errors(p2, y2, background=3) == foreground.confident_errors(probs, labels)
    assert foreground.pooled_and_digits(p2, y2)["digits"] != foreground.pooled_and_digits(probs, labels)["digits"]
    with pytest.raises(ValueError, match="background"):
        foreground.pixel_masks(y2, background=-2)
