"""Tests of utils.spread: per-scene sums give the metrics exactly, and the bootstrap over scenes behaves."""

from __future__ import annotations

import pytest
import torch

from utils import metrics, spread


def scenes(n: int = 12, k: int = 4, seed: int = 0, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, size, size, generator=g) * 3
    target = torch.multinomial((logits / 1.5).softmax(1).movedim(1, -1).reshape(-1, k), 1, generator=g)
    return logits.softmax(1), target.reshape(n, size, size)


def test_summed_calibration_sums_equal_the_meter():
    probs, target = scenes()
    target[0, :2] = 255  # ignored pixels count nowhere
    mask = target % 2 == 0
    for m in (None, mask):
        total = {k: v.sum(0) for k, v in spread.calibration_sums(probs, target, m).items()}
        meter = metrics.CalibrationMeter(num_classes=4).update(probs, target, mask=m)
        assert float(spread.ece(total)) == pytest.approx(meter.ece(), abs=1e-12)
        assert float(spread.accuracy(total)) == pytest.approx(meter.accuracy(), abs=1e-12)
        assert float(spread.nll(total)) == pytest.approx(meter.nll(), abs=1e-10)
        conf = probs.amax(1)[(target != 255) & (mask if m is not None else True)]
        assert float(spread.confidence(total)) == pytest.approx(float(conf.double().mean()), abs=1e-10)


def test_summed_detection_sums_give_the_auroc():
    g = torch.Generator().manual_seed(1)
    score = torch.rand(10, 8, 8, generator=g)
    positive = torch.rand(10, 8, 8, generator=g) < score  # informative score
    total = {k: v.sum(0) for k, v in spread.detection_sums(score, positive).items()}
    assert float(spread.auroc(total)) == pytest.approx(metrics.auroc(score, positive), abs=2e-3)
    mask = torch.rand(10, 8, 8, generator=g) < 0.5
    total = {k: v.sum(0) for k, v in spread.detection_sums(score, positive, mask).items()}
    assert float(spread.auroc(total)) == pytest.approx(metrics.auroc(score[mask], positive[mask]), abs=2e-3)


def test_bootstrap_is_seeded_and_brackets_the_point():
    probs, target = scenes(n=30)
    sums = spread.calibration_sums(probs, target)
    a = spread.bootstrap(sums, spread.accuracy, n_boot=300, seed=3)
    assert a == spread.bootstrap(sums, spread.accuracy, n_boot=300, seed=3)
    assert a != spread.bootstrap(sums, spread.accuracy, n_boot=300, seed=4)
    point, low, high = a
    assert low < point < high and high - low < 0.2
    # twice as many (independent) scenes: a narrower interval
    probs2, target2 = scenes(n=120, seed=5)
    _, low2, high2 = spread.bootstrap(spread.calibration_sums(probs2, target2), spread.accuracy, n_boot=300)
    assert high2 - low2 < high - low


def test_identical_scenes_give_a_degenerate_interval_and_joint_resampling_cancels():
    probs, target = scenes(n=1)
    probs, target = probs.expand(6, -1, -1, -1).contiguous(), target.expand(6, -1, -1).contiguous()
    sums = spread.calibration_sums(probs, target)
    point, low, high = spread.bootstrap(sums, spread.ece, n_boot=50)
    assert low == pytest.approx(point) and high == pytest.approx(point)
    probs, target = scenes(n=20)
    sums = spread.calibration_sums(probs, target)
    diff = spread.bootstrap([sums, sums], lambda a, b: spread.ece(a) - spread.ece(b), n_boot=50)
    assert diff == (0.0, 0.0, 0.0)


def test_scene_weights_draw_whole_samples():
    w = spread.scene_weights(7, n_boot=20, seed=0)
    assert w.shape == (20, 7) and torch.equal(w.sum(1), torch.full((20,), 7.0, dtype=torch.float64))
    assert torch.equal(w, spread.scene_weights(7, n_boot=20, seed=0))


@pytest.mark.parametrize("call, match", [
    (lambda p, t: spread.calibration_sums(p[0], t[0]), "probs must have shape"),
    (lambda p, t: spread.calibration_sums(p, t[:, :4]), "target must have shape"),
    (lambda p, t: spread.calibration_sums(p, t + 10), "labels outside"),
    (lambda p, t: spread.calibration_sums(p * 2, t), "probs must lie in"),
    (lambda p, t: spread.calibration_sums(p, t, mask=t > 0, n_bins=0), "n_bins"),
    (lambda p, t: spread.detection_sums(p[:, 0], t > 0, low=1.0, high=0.5), "low must be below high"),
    (lambda p, t: spread.detection_sums(p[:, 0], t[:, :4] > 0), "positive must have shape"),
    (lambda p, t: spread.bootstrap({}, spread.ece), "sums must be"),
    (lambda p, t: spread.bootstrap(spread.calibration_sums(p, t), spread.ece, level=1.5), "level"),
    (lambda p, t: spread.scene_weights(0), "n_scenes"),
])
def test_bad_arguments_are_refused(call, match):
    probs, target = scenes(n=4)
    with pytest.raises((ValueError, TypeError), match=match):
        call(probs, target)


def test_wrong_types_are_refused():
    probs, target = scenes(n=2)
    with pytest.raises(TypeError, match="probs must be a torch.Tensor"):
        spread.calibration_sums(probs.numpy(), target)
    with pytest.raises(TypeError, match="score must be"):
        spread.detection_sums(target, target > 0)
    with pytest.raises(TypeError, match="positive must be a bool"):
        spread.detection_sums(probs[:, 0], target)
