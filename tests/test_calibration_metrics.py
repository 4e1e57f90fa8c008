"""Tests of the calibration, detection, selective-prediction and PAvPU metrics of utils.metrics.

Hand-computed cases first, then edge cases and bad input, then agreement with torchmetrics and
scikit-learn, and the streaming (binned) meters against the exact functions.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from utils.config import IGNORE_INDEX
from utils.metrics import (
    CalibrationMeter,
    DetectionMeter,
    PAvPUMeter,
    ReliabilityBins,
    aupr,
    aurc,
    auroc,
    calibration_report,
    confusion_matrix,
    detection_report,
    fpr_at_tpr,
    mean_iou,
    pavpu,
    risk_coverage,
)

NAN = float("nan")

# --- hand-computed calibration case ---------------------------------------------------------------------------
# K = 3 classes, M = 4 equal-width bins (0, .25], (.25, .5], (.5, .75], (.75, 1]; all values dyadic, so exact.
#   pixel  p                      y   conf   pred  right  top bin
#   1      (.5,   .25,  .25)      1   .5     0     no     (.25, .5]
#   2      (.75,  .125, .125)     0   .75    0     yes    (.5, .75]   <- on an edge: Guo's bins are right-closed
#   3      (.25,  .625, .125)     0   .625   1     no     (.5, .75]
#   4      (.125, .875, 0)        1   .875   1     yes    (.75, 1]
#   5      (0,    0,    1)        2   1      2     yes    (.75, 1]
# ECE = (|0 - .5| + |1 - 1.375| + |2 - 1.875|) / 5 = (.5 + .375 + .125) / 5 = .2   (|Σ right - Σ conf| per bin / n)
# MCE: bin gaps .5 (1 pixel), .1875 (2 pixels), .0625 (2 pixels) -> .5 with min_count=1, .1875 with min_count=2
# ECE-EM: ranks by confidence .5, .625, .75, .875, 1 -> groups floor(4 r / 5) = 0, 0, 1, 2, 3:
#      (|0 - 1.125| + |1 - .75| + |1 - .875| + |1 - 1|) / 5 = 1.5 / 5 = .3
# SCE: class 0, p_0 = .5, .75, .25, .125, 0: bins (0,.25]: Σp .375 vs Σ1[y=0] 1, (.25,.5]: .5 vs 0, (.5,.75]: .75 vs 1
#      -> .625 + .5 + .25 = 1.375; class 1, p_1 = .25, .125, .625, .875, 0: .375 vs 1, .625 vs 0, .875 vs 1 -> 1.375;
#      class 2, p_2 = .25, .125, .125, 0, 1: .5 vs 0, 1 vs 1 -> .5.   SCE = (1.375 + 1.375 + .5) / (3 * 5) = 3.25 / 15
# NLL = -(ln .25 + ln .75 + ln .25 + ln .875 + ln 1) / 5
# Brier = (.875 + .09375 + .96875 + .03125 + 0) / 5 = 1.96875 / 5 = .39375
HAND_P = torch.tensor(
    [[0.5, 0.25, 0.25], [0.75, 0.125, 0.125], [0.25, 0.625, 0.125], [0.125, 0.875, 0.0], [0.0, 0.0, 1.0]],
    dtype=torch.float64,
)
HAND_Y = torch.tensor([1, 0, 0, 1, 2])


def hand_meter() -> CalibrationMeter:
    return CalibrationMeter(num_classes=3, n_bins=4).update(HAND_P, HAND_Y)


def random_probs(n: int, k: int = 11, seed: int = 0, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (n, k) float32 probabilities and labels drawn from slightly sharpened probabilities (so ECE > 0)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * scale
    target = torch.multinomial((logits / 1.5).softmax(1), 1, generator=g)[:, 0]
    return logits.softmax(1), target


def test_hand_computed_calibration_metrics():
    m = hand_meter()
    assert m.count == 5
    assert m.accuracy() == pytest.approx(3 / 5)
    assert m.ece() == pytest.approx(0.2, abs=1e-12)
    assert m.ece_em() == pytest.approx(0.3, abs=1e-12)
    assert m.mce(min_count=1) == pytest.approx(0.5, abs=1e-12)
    assert m.mce(min_count=2) == pytest.approx(0.1875, abs=1e-12)
    assert math.isnan(m.mce(min_count=3))
    assert m.sce() == pytest.approx(3.25 / 15, abs=1e-12)
    assert m.nll() == pytest.approx(-(2 * math.log(0.25) + math.log(0.75) + math.log(0.875)) / 5, abs=1e-12)
    assert m.brier() == pytest.approx(0.39375, abs=1e-12)


def test_hand_computed_reliability_bins_and_summary():
    rel = hand_meter().reliability()
    assert isinstance(rel, ReliabilityBins)
    np.testing.assert_allclose(rel.edges, [0, 0.25, 0.5, 0.75, 1])
    assert rel.count.dtype == np.int64 and rel.count.tolist() == [0, 1, 2, 2]
    np.testing.assert_allclose(rel.confidence, [NAN, 0.5, 0.6875, 0.9375])  # empty bin -> NaN
    np.testing.assert_allclose(rel.accuracy, [NAN, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(rel.gap, [NAN, -0.5, -0.1875, 0.0625])
    s = hand_meter().summary()
    assert set(s) == {"ece", "ece_em", "ace", "mce", "sce", "nll", "brier", "accuracy", "count"}
    assert s["count"] == 5 and math.isnan(s["mce"])  # default min_count=100 > any bin
    assert s["ece"] == pytest.approx(0.2)


def test_image_layout_equals_flat_pixels():
    probs, target = random_probs(2 * 8 * 6, k=5, seed=1)
    img_p = probs.reshape(2, 8, 6, 5).permute(0, 3, 1, 2)  # (B, K, H, W)
    img_y = target.reshape(2, 8, 6)
    flat = CalibrationMeter(5).update(probs, target).summary()
    assert calibration_report(img_p, img_y) == pytest.approx(flat, abs=1e-12, nan_ok=True)
    assert calibration_report(img_p.contiguous(), img_y) == pytest.approx(flat, abs=1e-12, nan_ok=True)


# --- edge cases -------------------------------------------------------------------------------------------------


def assert_empty(m: CalibrationMeter) -> None:
    assert m.count == 0
    s = m.summary()
    assert s["count"] == 0
    assert all(math.isnan(v) for k, v in s.items() if k != "count")
    assert math.isnan(m.mce(min_count=1))
    rel = m.reliability()
    assert rel.count.tolist() == [0] * 15 and np.isnan(rel.confidence).all() and np.isnan(rel.accuracy).all()


def test_no_pixel_counted_gives_nan_everywhere():
    probs, target = random_probs(40, k=11)
    assert_empty(CalibrationMeter())
    assert_empty(CalibrationMeter().update(probs, torch.full_like(target, IGNORE_INDEX)))
    assert_empty(CalibrationMeter().update(probs, target, torch.zeros(40, dtype=torch.bool)))
    assert_empty(CalibrationMeter().update(probs[:0], target[:0]))


def test_single_class_is_perfectly_calibrated():
    m = CalibrationMeter(num_classes=1).update(torch.ones(2, 1, 3, 3), torch.zeros(2, 3, 3, dtype=torch.long))
    assert m.count == 18
    assert (m.ece(), m.ace(), m.sce(), m.nll(), m.brier(), m.accuracy()) == (0, 0, 0, 0, 0, 1)
    assert m.mce(min_count=1) == 0


def test_confidence_exactly_one_and_exactly_one_over_k():
    # a one-hot pixel has confidence 1.0, in the last bin; a uniform pixel has confidence 1/K
    k = 4
    probs = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0], [0.25] * 4, [0.25] * 4])
    target = torch.tensor([0, 1, 0, 2])  # right, wrong; uniform predicts class 0: right, wrong
    m = CalibrationMeter(num_classes=k, n_bins=4).update(probs, target)
    rel = m.reliability()
    assert rel.count.tolist() == [2, 0, 0, 2]  # 1/4 sits on the edge .25, so in (0, .25]
    np.testing.assert_allclose(rel.confidence, [0.25, NAN, NAN, 1.0])
    np.testing.assert_allclose(rel.accuracy, [0.5, NAN, NAN, 0.5])
    assert m.ece() == pytest.approx((abs(1 - 0.5) + abs(1 - 2)) / 4)
    assert m.ece_em() == pytest.approx(m.ece())  # tied confidences share a fine bin: the same two groups as ECE
    # with M = 15 the edge 1/4 falls inside (3/15, 4/15]
    assert CalibrationMeter(k).update(probs, target).reliability().count[3] == 2
    # a wrong one-hot pixel: NLL clamped at 1e-12
    assert m.nll() == pytest.approx(-(math.log(1e-12) + 2 * math.log(0.25)) / 4)


def test_ignored_pixels_change_nothing():
    probs, target = random_probs(300, k=11, seed=2)
    junk, _ = random_probs(300, k=11, seed=3, scale=20.0)  # valid probabilities, unrelated to the labels
    reference = CalibrationMeter().update(probs, target).summary()
    both_p = torch.cat([probs, junk])
    both_y = torch.cat([target, torch.full((300,), IGNORE_INDEX)])
    assert CalibrationMeter().update(both_p, both_y).summary() == pytest.approx(reference, abs=1e-12, nan_ok=True)
    custom = torch.cat([target, torch.full((300,), 99)])
    custom_summary = CalibrationMeter(ignore_index=99).update(both_p, custom).summary()
    assert custom_summary == pytest.approx(reference, abs=1e-12, nan_ok=True)
    # the mask selects pixels just like indexing does
    keep = torch.arange(600) % 3 == 0
    masked = CalibrationMeter().update(both_p, both_y, keep).summary()
    indexed = CalibrationMeter().update(both_p[keep], both_y[keep]).summary()
    assert masked == pytest.approx(indexed, abs=1e-12, nan_ok=True)


def test_streaming_equals_one_shot_in_any_order():
    probs, target = random_probs(1000, k=11, seed=4)
    one = CalibrationMeter().update(probs, target)
    chunks = [slice(0, 100), slice(100, 450), slice(450, 451), slice(451, 1000)]
    forward, backward = CalibrationMeter(), CalibrationMeter()
    for sl in chunks:
        forward.update(probs[sl], target[sl])
    for sl in reversed(chunks):
        backward.update(probs[sl], target[sl])
    merged = CalibrationMeter().update(probs[:300], target[:300])
    merged.merge(CalibrationMeter().update(probs[300:], target[300:]))
    for m in (forward, backward, merged):
        assert m.summary() == pytest.approx(one.summary(), rel=1e-12, abs=1e-12, nan_ok=True)
        assert m.mce(1) == pytest.approx(one.mce(1), abs=1e-12)
        np.testing.assert_array_equal(m.reliability().count, one.reliability().count)


def test_calibration_report_streams_large_batches_like_the_meter():
    # 5 images of 128 x 512 pixels: 2^18 // (128 * 512) = 4 images per chunk, so two chunks
    g = torch.Generator().manual_seed(5)
    probs = (torch.randn(5, 3, 128, 512, generator=g) * 2).softmax(1)
    target = torch.randint(0, 3, (5, 128, 512), generator=g)
    report = calibration_report(probs, target, n_bins=10)
    meter = CalibrationMeter(3, 10)
    for i in range(5):
        meter.update(probs[i : i + 1], target[i : i + 1])
    assert report == pytest.approx(meter.summary(), rel=1e-10, nan_ok=True)
    assert report["count"] == 5 * 128 * 512


def test_ece_em_equals_exact_equal_mass_binning():
    # 200 confidences far apart on the logit scale: with 2^20 fine bins each pixel has a fine bin to itself
    probs, target = random_probs(200, k=11, seed=6)
    conf, pred = probs.double().max(1)
    right = (pred == target).double()
    order = torch.argsort(conf)
    group = torch.arange(200) * 15 // 200
    s_conf = torch.zeros(15, dtype=torch.float64).index_add_(0, group, conf[order])
    s_right = torch.zeros(15, dtype=torch.float64).index_add_(0, group, right[order])
    exact = float((s_right - s_conf).abs().sum() / 200)
    assert CalibrationMeter(fine_bins=1 << 20).update(probs, target).ece_em() == pytest.approx(exact, abs=1e-12)
    # the default resolution is exact up to one fine bin
    assert CalibrationMeter().update(probs, target).ece_em() == pytest.approx(exact, abs=0.01)


def nixon_ace(probs: torch.Tensor, target: torch.Tensor, ranges: int) -> float:
    """Nixon et al.'s ACE by brute force: per class, sort p_k, cut into equal-mass ranges, average |acc - conf|."""
    n, k = probs.shape
    total = 0.0
    for c in range(k):
        p = probs[:, c].double()
        hit = (target == c).double()
        order = torch.argsort(p)
        group = torch.arange(n) * ranges // n
        s_p = torch.zeros(ranges, dtype=torch.float64).index_add_(0, group, p[order])
        s_h = torch.zeros(ranges, dtype=torch.float64).index_add_(0, group, hit[order])
        count = torch.bincount(group, minlength=ranges).double()
        total += float(((s_h - s_p).abs() / count).sum()) / (k * ranges)  # (1/KR) Σ |acc - conf|
    return total


def test_ace_is_nixons_classwise_adaptive_error_by_hand():
    # K = 2, R = 2; p_1 = .1, .2, .8, .9 with labels 0, 1, 1, 1.
    # class 1 ranges {.1, .2}: acc .5, conf .15 -> .35; {.8, .9}: acc 1, conf .85 -> .15
    # class 0 ranges {.1, .2}: acc 0, conf .15 -> .15; {.8, .9}: acc .5, conf .85 -> .35
    # ACE = (.35 + .15 + .15 + .35) / (2 * 2) = .25
    p1 = torch.tensor([0.1, 0.2, 0.8, 0.9], dtype=torch.float64)
    probs = torch.stack([1 - p1, p1], dim=1)
    target = torch.tensor([0, 1, 1, 1])
    m = CalibrationMeter(num_classes=2, n_bins=2).update(probs, target)
    assert m.ace() == pytest.approx(0.25, abs=1e-12)
    assert nixon_ace(probs, target, 2) == pytest.approx(0.25, abs=1e-12)
    # the top-label equal-mass ECE differs: confidences .9, .8, .8, .9 -> {.8 (wrong), .8 (right)}, {.9, .9}, both right
    assert m.ece_em() == pytest.approx((abs(1 - 1.6) + abs(2 - 1.8)) / 4, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_ace_equals_brute_force_nixon_ace(seed):
    probs, target = random_probs(3000, k=5, seed=seed)
    expected = nixon_ace(probs, target, 15)
    assert CalibrationMeter(num_classes=5, fine_bins=1 << 16).update(probs, target).ace() == pytest.approx(expected, abs=2e-4)
    assert CalibrationMeter(num_classes=5).update(probs, target).ace() == pytest.approx(expected, abs=3e-3)
    # streaming in batches gives the same counts as one update
    m = CalibrationMeter(num_classes=5)
    for part in range(3):
        m.update(probs[part * 1000:(part + 1) * 1000], target[part * 1000:(part + 1) * 1000])
    assert m.ace() == pytest.approx(CalibrationMeter(num_classes=5).update(probs, target).ace(), abs=1e-12)


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probs", "target", "mask", "error", "match"),
    [
        (torch.full((2, 3, 4), 1 / 3), torch.zeros(2, 4, dtype=torch.long), None, ValueError, "probs must have shape"),
        (torch.ones(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), None, TypeError,
         "probs must be floating"),
        ([[1.0, 0, 0]], torch.zeros(1, dtype=torch.long), None, TypeError, "probs must be a torch.Tensor"),
        (torch.full((4, 3), 0.3), torch.zeros(4, dtype=torch.long), None, ValueError, "sum to 1"),
        (torch.tensor([[1.5, -0.5, 0.0]]), torch.zeros(1, dtype=torch.long), None, ValueError,
         r"probs must lie in \[0, 1\]"),
        (torch.tensor([[NAN, 0.5, 0.5]]), torch.zeros(1, dtype=torch.long), None, ValueError, "probs holds NaN"),
        (torch.full((4, 4), 0.25), torch.zeros(4, dtype=torch.long), None, ValueError, "num_classes=3"),
        (torch.full((4, 3), 1 / 3), torch.zeros(5, dtype=torch.long), None, ValueError, "target must have shape"),
        (torch.full((4, 3), 1 / 3), torch.zeros(4), None, TypeError, "target must be an integer label map"),
        (torch.full((4, 3), 1 / 3), torch.tensor([0, 1, 3, IGNORE_INDEX]), None, ValueError, "target holds labels"),
        (torch.full((4, 3), 1 / 3), torch.zeros(4, dtype=torch.long), torch.ones(4), TypeError, "mask must be a bool"),
        (torch.full((4, 3), 1 / 3), torch.zeros(4, dtype=torch.long), torch.ones(3, dtype=torch.bool), ValueError,
         "mask must have shape"),
    ],
)
def test_calibration_meter_rejects_bad_input(probs, target, mask, error, match):
    m = CalibrationMeter(num_classes=3).update(HAND_P, HAND_Y)
    before = m.summary()
    with pytest.raises(error, match=match):
        m.update(probs, target, mask)
    assert m.summary() == pytest.approx(before, nan_ok=True)  # a failed update changes nothing


def test_calibration_meter_rejects_bad_settings():
    for kwargs, match in (({"n_bins": 0}, "n_bins"), ({"n_bins": 2.5}, "n_bins"), ({"num_classes": 0}, "num_classes"),
                          ({"fine_bins": True}, "fine_bins")):
        with pytest.raises(ValueError, match=match):
            CalibrationMeter(**kwargs)
    with pytest.raises(TypeError, match="ignore_index"):
        CalibrationMeter(ignore_index=None)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="min_count"):
            hand_meter().mce(min_count=bad)
    with pytest.raises(ValueError, match="same"):
        CalibrationMeter(3).merge(CalibrationMeter(4))
    with pytest.raises(TypeError, match="other"):
        CalibrationMeter(3).merge({})
    with pytest.raises(ValueError, match="n_bins"):
        calibration_report(HAND_P, HAND_Y, n_bins=-2)


# --- agreement with torchmetrics and scikit-learn ----------------------------------------------------------------


def test_ece_and_mce_match_torchmetrics():
    tmc = pytest.importorskip("torchmetrics.classification")
    probs, target = random_probs(4000, k=11, seed=7, scale=2.0)
    assert probs.max() < 1  # torchmetrics puts confidence 1.0 in an extra bin; the edges differ only on the edge
    m = CalibrationMeter(11).update(probs, target)
    ece = tmc.MulticlassCalibrationError(num_classes=11, n_bins=15, norm="l1")(probs, target)
    assert m.ece() == pytest.approx(float(ece), abs=1e-6)
    mce = tmc.MulticlassCalibrationError(num_classes=11, n_bins=15, norm="max")(probs, target)
    assert m.mce(min_count=1) == pytest.approx(float(mce), abs=1e-6)  # empty bins add a gap of 0 there


def test_auroc_aupr_match_torchmetrics_and_sklearn():
    tmc = pytest.importorskip("torchmetrics.classification")
    skm = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(8)
    positive = torch.rand(3000, generator=g) < 0.2
    score = torch.randn(3000, generator=g) + positive.float()
    tied = (score * 4).round() / 4  # many ties
    for s in (score, tied):
        # torchmetrics squashes scores outside [0, 1] with a sigmoid, in float32 unless given float64
        assert auroc(s, positive) == pytest.approx(float(tmc.BinaryAUROC()(s.double(), positive.long())), abs=1e-6)
        assert auroc(s, positive) == pytest.approx(skm.roc_auc_score(positive.numpy(), s.numpy()), abs=1e-12)
        ap = float(tmc.BinaryAveragePrecision()(s.double(), positive.long()))
        assert aupr(s, positive) == pytest.approx(ap, abs=1e-6)
        assert aupr(s, positive) == pytest.approx(skm.average_precision_score(positive.numpy(), s.numpy()), abs=1e-12)
        fpr, tpr, _ = skm.roc_curve(positive.numpy(), s.numpy(), drop_intermediate=False)
        for level in (0.95, 0.5, 1.0):
            expected = fpr[np.argmax(tpr >= level)]
            assert fpr_at_tpr(s, positive, level) == pytest.approx(expected, abs=1e-12)


def test_mean_iou_matches_torchmetrics():
    tmc = pytest.importorskip("torchmetrics.classification")
    g = torch.Generator().manual_seed(9)
    target = torch.randint(0, 11, (4, 16, 16), generator=g)
    pred = torch.where(torch.rand(4, 16, 16, generator=g) < 0.6, target, torch.randint(0, 11, (4, 16, 16), generator=g))
    target[0, :3] = IGNORE_INDEX
    jaccard = tmc.MulticlassJaccardIndex(num_classes=11, ignore_index=IGNORE_INDEX, average="macro")(pred, target)
    assert mean_iou(confusion_matrix(pred, target)) == pytest.approx(float(jaccard), abs=1e-6)


# --- detection metrics ---------------------------------------------------------------------------------------------


def test_aupr_and_fpr_hand_computed():
    # scores 4 3 2 1 with positives P N P N: precision at the two positives 1 and 2/3 -> AP = (1 + 2/3) / 2
    score = torch.tensor([4.0, 3.0, 2.0, 1.0])
    positive = torch.tensor([True, False, True, False])
    assert aupr(score, positive) == pytest.approx(5 / 6)
    assert fpr_at_tpr(score, positive, 0.5) == 0.0  # the top score alone finds half the positives
    assert fpr_at_tpr(score, positive, 0.95) == 0.5  # threshold 2 finds both, with one false positive of two
    report = detection_report(score, positive)
    assert report == pytest.approx({"auroc": 0.75, "aupr": 5 / 6, "fpr95": 0.5})
    # tied scores enter together: all tied -> precision = base rate, FPR = 1
    flat = torch.zeros(4)
    assert aupr(flat, positive) == pytest.approx(0.5) and fpr_at_tpr(flat, positive) == 1.0


def test_detection_metrics_nan_and_bad_input():
    score = torch.tensor([0.1, 0.2])
    for positive in (torch.tensor([True, True]), torch.tensor([False, False])):
        assert all(math.isnan(v) for v in detection_report(score, positive).values())
    assert math.isnan(aupr(torch.zeros(0), torch.zeros(0, dtype=torch.bool)))
    for bad in (0.0, 1.5, "0.9"):
        with pytest.raises(ValueError, match="tpr"):
            fpr_at_tpr(score, torch.tensor([True, False]), bad)
    with pytest.raises(TypeError, match="positive must be a bool"):
        aupr(score, torch.tensor([1, 0]))
    with pytest.raises(TypeError, match="score must be floating"):
        aupr(torch.tensor([1, 2]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="positive must have shape"):
        fpr_at_tpr(score, torch.tensor([True]))


# --- risk-coverage and AURC -------------------------------------------------------------------------------------------


def naive_aurc(score: torch.Tensor, error: torch.Tensor) -> float:
    """Mean over k = 1..n of the error rate among the k lowest scores (scores distinct)."""
    e = error[torch.argsort(score)].double()
    return float((e.cumsum(0) / torch.arange(1, len(e) + 1)).mean())


def test_aurc_equals_brute_force_without_ties():
    g = torch.Generator().manual_seed(10)
    error = torch.rand(500, generator=g) < 0.3
    score = torch.rand(500, generator=g) + 0.5 * error
    out = aurc(score, error)
    assert set(out) == {"aurc", "optimal", "e_aurc", "risk"}
    assert out["aurc"] == pytest.approx(naive_aurc(score, error), abs=1e-12)
    assert out["risk"] == pytest.approx(float(error.double().mean()))
    assert out["e_aurc"] == pytest.approx(out["aurc"] - out["optimal"])
    # without ties the mean over the n operating points is the area under the step curve
    coverage, risk = risk_coverage(score, error)
    width = torch.diff(coverage, prepend=torch.zeros(1, dtype=torch.float64))
    assert float((risk * width).sum()) == pytest.approx(out["aurc"], abs=1e-12)


def test_aurc_with_ties_is_the_mean_over_random_tie_breaks():
    score = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 2.0])
    error = torch.tensor([False, True, False, True, False, True])
    runs = []
    for first in itertools.permutations(range(3)):
        for second in itertools.permutations(range(3, 5)):
            order = torch.tensor(list(first) + list(second) + [5])
            runs.append(naive_aurc(torch.arange(6.0), error[order]))
    assert aurc(score, error)["aurc"] == pytest.approx(sum(runs) / len(runs), abs=1e-12)
    constant = aurc(torch.zeros(6), error)  # one tie: every operating point has the overall risk
    assert constant["aurc"] == pytest.approx(0.5, abs=1e-12)


def test_perfect_ranking_has_zero_excess_aurc():
    g = torch.Generator().manual_seed(11)
    n = 2000
    error = torch.rand(n, generator=g) < 0.1
    out = aurc(error.double() + 0.01 * torch.rand(n, generator=g, dtype=torch.float64), error)
    assert out["e_aurc"] == pytest.approx(0.0, abs=1e-12)
    # optimal is the discrete optimum (1/n)[n_e - n_c (H(n) - H(n_c))]; the continuous r + (1 - r) ln(1 - r)
    # differs from it by about r / (2n)
    r = out["risk"]
    assert out["optimal"] == pytest.approx(r + (1 - r) * math.log(1 - r), abs=1 / n)
    assert out["optimal"] != r + (1 - r) * math.log(1 - r)
    worst = aurc(-error.double(), error)
    assert worst["e_aurc"] > 0.25  # errors first: about r + r ln(1/r) = .33 for r = .1
    assert aurc(torch.rand(10), torch.zeros(10, dtype=torch.bool)) == {"aurc": 0.0, "optimal": 0.0, "e_aurc": 0.0,
                                                                         "risk": 0.0}
    assert aurc(torch.rand(10), torch.ones(10, dtype=torch.bool))["optimal"] == pytest.approx(1.0)


def test_random_score_has_aurc_near_the_error_rate():
    g = torch.Generator().manual_seed(12)
    error = torch.rand(20000, generator=g) < 0.25
    out = aurc(torch.rand(20000, generator=g), error)
    assert out["aurc"] == pytest.approx(out["risk"], abs=0.02)


def test_risk_coverage_curve():
    score = torch.tensor([0.3, 0.1, 0.1, 0.2, 0.3])
    error = torch.tensor([True, False, True, False, False])
    coverage, risk = risk_coverage(score, error)
    # tied scores enter together: 2 pixels (1 error), 3 pixels, 5 pixels (2 errors)
    torch.testing.assert_close(coverage, torch.tensor([0.4, 0.6, 1.0], dtype=torch.float64))
    torch.testing.assert_close(risk, torch.tensor([0.5, 1 / 3, 0.4], dtype=torch.float64))
    g = torch.Generator().manual_seed(13)
    coverage, risk = risk_coverage(torch.rand(1000, generator=g), torch.rand(1000, generator=g) < 0.2, max_points=50)
    assert len(coverage) == 50 and coverage[-1] == 1.0 and (torch.diff(coverage) > 0).all()
    with pytest.raises(ValueError, match="max_points"):
        risk_coverage(score, error, max_points=1)
    with pytest.raises(ValueError, match="empty"):
        risk_coverage(torch.zeros(0), torch.zeros(0, dtype=torch.bool))
    with pytest.raises(TypeError, match="error must be a bool"):
        aurc(score, error.long())
    with pytest.raises(ValueError, match="error must have shape"):
        aurc(score, error[:2])
    assert all(math.isnan(v) for v in aurc(torch.zeros(0), torch.zeros(0, dtype=torch.bool)).values())


# --- PAvPU --------------------------------------------------------------------------------------------------------


def pavpu_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One 8x8 image of four 4x4 patches, plus one fully ignored image.

    patch   right / valid   accurate   mean uncertainty (valid pixels)
    TL      16 / 16         yes        .125 (half 0, half .25)
    TR      10 / 16         yes        .625
    BL       4 / 16         no         .875
    BR       4 / 8          yes (>=)   .375 (its 8 ignored pixels have uncertainty 100: not counted)
    """
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    pred = torch.zeros(2, 8, 8, dtype=torch.long)
    unc = torch.zeros(2, 8, 8)
    unc[0, :4, :4] = torch.tensor([0.0, 0.25]).repeat(8).reshape(4, 4)
    pred[0, 0, 4:] = 1  # 6 wrong pixels in TR
    pred[0, 1, 4:6] = 1
    unc[0, :4, 4:] = 0.625
    pred[0, 4:7, :4] = 1  # 12 wrong pixels in BL
    unc[0, 4:, :4] = 0.875
    target[0, 4:6, 4:] = IGNORE_INDEX
    unc[0, 4:6, 4:] = 100.0
    pred[0, 6, 4:] = 1  # 4 wrong of the 8 valid pixels in BR
    unc[0, 6:, 4:] = 0.375
    target[1] = IGNORE_INDEX
    return unc, pred, target


def test_pavpu_hand_computed():
    thresholds = torch.tensor([0.0625, 0.25, 0.5, 0.625, 0.75, 1.0])
    out = pavpu(*pavpu_case(), thresholds)
    assert set(out) == {"thresholds", "pavpu", "p_accurate_given_certain", "p_uncertain_given_inaccurate",
                        "n_ac", "n_au", "n_ic", "n_iu"}
    # uncertain = mean >= threshold (.625 >= .625: TR uncertain at that threshold)
    assert out["n_ac"].tolist() == [0, 1, 2, 2, 3, 3]
    assert out["n_au"].tolist() == [3, 2, 1, 1, 0, 0]
    assert out["n_ic"].tolist() == [0, 0, 0, 0, 0, 1]
    assert out["n_iu"].tolist() == [1, 1, 1, 1, 1, 0]
    torch.testing.assert_close(out["pavpu"], torch.tensor([0.25, 0.5, 0.75, 0.75, 1.0, 0.75], dtype=torch.float64))
    pac = out["p_accurate_given_certain"]
    assert math.isnan(pac[0]) and pac[1:].tolist() == [1, 1, 1, 1, 0.75]
    assert out["p_uncertain_given_inaccurate"].tolist() == [1, 1, 1, 1, 1, 0]
    torch.testing.assert_close(out["thresholds"], thresholds.double())
    # with accuracy_threshold .6 the BR patch (.5) is inaccurate, TR (.625) still accurate
    strict = pavpu(*pavpu_case(), thresholds, accuracy_threshold=0.6)
    assert (strict["n_ic"] + strict["n_iu"]).tolist() == [2] * 6


def test_pavpu_threshold_sweep_and_streaming():
    g = torch.Generator().manual_seed(14)
    target = torch.randint(0, 3, (6, 16, 16), generator=g)
    wrong_rate = torch.rand(6, 4, 4, generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)  # per 4x4 patch
    pred = torch.where(torch.rand(6, 16, 16, generator=g) < wrong_rate, (target + 1) % 3, target)
    unc = torch.rand(6, 16, 16, generator=g) * 0.5 + 0.5 * (pred != target)
    thresholds = torch.quantile(unc.flatten(), torch.linspace(0, 1, 21))
    out = pavpu(unc, pred, target, thresholds)
    uncertain = out["n_au"] + out["n_iu"]
    assert ((out["n_ac"] + out["n_au"] + out["n_ic"] + out["n_iu"]) == 6 * 16).all()
    assert (torch.diff(uncertain) <= 0).all() and (torch.diff(out["n_ac"] + out["n_ic"]) >= 0).all()
    assert (torch.diff(out["p_uncertain_given_inaccurate"]) <= 0).all()
    meter = PAvPUMeter(thresholds)
    for i in (4, 0, 2):
        meter.update(unc[i : i + 2], pred[i : i + 2], target[i : i + 2])
    streamed = meter.result()
    for key in out:
        torch.testing.assert_close(streamed[key], out[key], equal_nan=True)
    assert pavpu(unc, pred, target, [0.5])["n_ac"].shape == (1,)


def test_pavpu_rejects_bad_input():
    unc, pred, target = pavpu_case()
    with pytest.raises(ValueError, match="patch=3 must divide"):
        pavpu(unc, pred, target, torch.tensor([0.5]), patch=3)
    with pytest.raises(ValueError, match="patch"):
        pavpu(unc, pred, target, torch.tensor([0.5]), patch=0)
    with pytest.raises(ValueError, match="uncertainty must have shape"):
        pavpu(unc[0], pred[0], target[0], torch.tensor([0.5]))
    with pytest.raises(TypeError, match="uncertainty must be floating"):
        pavpu(pred, pred, target, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="target must have shape"):
        pavpu(unc, pred, target[:1], torch.tensor([0.5]))
    with pytest.raises(TypeError, match="pred must be an integer"):
        pavpu(unc, unc, target, torch.tensor([0.5]))
    with pytest.raises(TypeError, match="thresholds"):
        pavpu(unc, pred, target, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="thresholds must be a non-empty 1-D"):
        pavpu(unc, pred, target, torch.zeros(0))
    with pytest.raises(ValueError, match="accuracy_threshold"):
        pavpu(unc, pred, target, torch.tensor([0.5]), accuracy_threshold=1.5)


# --- streaming detection meter ------------------------------------------------------------------------------------


def realistic_scores(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return 1 - max-softmax of logits at scales spreading it over about 1e-6 .. 0.5, and misclassified flags."""
    g = torch.Generator().manual_seed(seed)
    scale = 10 ** (torch.rand(n, 1, generator=g) * 1.5)  # 1 .. 30
    probs = (torch.randn(n, 11, generator=g) * scale).softmax(1)
    label = torch.multinomial(probs.double().clamp(min=1e-12) ** 0.8, 1, generator=g)[:, 0]
    return 1 - probs.amax(1), probs.argmax(1) != label


def test_detection_meter_matches_exact_functions():
    score, error = realistic_scores(40000, seed=15)
    assert 0.05 < error.float().mean() < 0.5 and (score < 1e-3).float().mean() > 0.1
    meter = DetectionMeter()
    for part in torch.arange(40000).chunk(3):
        meter.update(score[part], error[part])
    assert meter.count == 40000
    exact = detection_report(score, error)
    binned = meter.report()
    assert set(binned) == {"auroc", "aupr", "fpr95"}
    for key in exact:
        assert binned[key] == pytest.approx(exact[key], abs=2e-3), key
    assert meter.fpr_at_tpr(0.5) == pytest.approx(fpr_at_tpr(score, error, 0.5), abs=2e-3)
    exact_rc, binned_rc = aurc(score, error), meter.aurc()
    for key in exact_rc:
        assert binned_rc[key] == pytest.approx(exact_rc[key], abs=2e-3), key
    assert binned_rc["optimal"] == pytest.approx(exact_rc["optimal"], abs=1e-12)
    masked = DetectionMeter().update(score, error, mask=score > 1e-3)
    assert masked.auroc() == pytest.approx(auroc(score[score > 1e-3], error[score > 1e-3]), abs=2e-3)


def test_detection_meter_end_bins_and_ties():
    pos = torch.tensor([True, False])
    # at or below low: one bin; above high: one bin; so these pairs tie
    assert DetectionMeter().update(torch.tensor([0.0, 1e-8]), pos).auroc() == 0.5
    assert DetectionMeter().update(torch.tensor([-1.0, 1e-7], dtype=torch.float64), pos).auroc() == 0.5
    assert DetectionMeter().update(torch.tensor([11.0, float("inf")]), pos).auroc() == 0.5
    assert DetectionMeter().update(torch.tensor([11.0, 10.0]), pos).auroc() == 1.0
    assert DetectionMeter().update(torch.tensor([2e-7, 1e-7], dtype=torch.float64), pos).auroc() == 1.0
    empty = DetectionMeter()
    assert empty.count == 0 and all(math.isnan(v) for v in (*empty.report().values(), *empty.aurc().values()))


def test_detection_meter_rejects_bad_input():
    bad_settings = (({"low": 0.0}, "low"), ({"high": -1.0}, "high"), ({"low": 1.0, "high": 0.5}, "low must be below"),
                    ({"bins": 2}, "bins"))
    for kwargs, match in bad_settings:
        with pytest.raises(ValueError, match=match):
            DetectionMeter(**kwargs)
    m = DetectionMeter()
    with pytest.raises(TypeError, match="positive must be a bool"):
        m.update(torch.rand(3), torch.ones(3))
    with pytest.raises(TypeError, match="score must be floating"):
        m.update(torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must have shape"):
        m.update(torch.rand(3), torch.ones(3, dtype=torch.bool), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="score holds NaN"):
        m.update(torch.tensor([NAN]), torch.ones(1, dtype=torch.bool))
    with pytest.raises(ValueError, match="tpr"):
        m.fpr_at_tpr(2.0)
    assert m.count == 0


def test_classwise_false_gives_the_same_top_label_scores_and_refuses_ace_and_sce():
    probs, target = random_probs(2000, k=11, seed=3)
    full = CalibrationMeter().update(probs, target)
    lean = CalibrationMeter(classwise=False).update(probs, target)
    for name in ("ece", "ece_em", "mce", "nll", "brier", "accuracy"):
        assert getattr(lean, name)() == pytest.approx(getattr(full, name)(), abs=1e-12), name
    with pytest.raises(ValueError, match="classwise=True"):
        lean.ace()
    with pytest.raises(ValueError, match="classwise=True"):
        lean.sce()
    s = lean.summary()
    assert math.isnan(s["ace"]) and math.isnan(s["sce"]) and s["ece"] == full.ece()
    with pytest.raises(ValueError, match="classwise"):
        full.merge(lean)
    with pytest.raises(TypeError, match="classwise must be a bool"):
        CalibrationMeter(classwise=1)
