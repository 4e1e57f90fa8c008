"""Unit tests of utils.metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.config import IGNORE_INDEX
from utils.metrics import (
    boundary_mask,
    confusion_matrix,
    digit_accuracy,
    iou_per_class,
    max_softmax,
    mean_iou,
    nll,
    pixel_accuracy,
)

TARGET = torch.tensor([[0, 1], [2, 2]])
PRED = torch.tensor([[0, 2], [2, 1]])
# rows = true class, columns = predicted class
CONF = [[1, 0, 0], [0, 0, 1], [0, 1, 1]]


# --- confusion matrix ---------------------------------------------------------------------------


def test_confusion_matrix_hand_computed():
    conf = confusion_matrix(PRED, TARGET, num_classes=3)
    assert conf.dtype == torch.int64
    assert conf.tolist() == CONF


def test_confusion_matrix_matches_brute_force_on_batches():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 7, 9), generator=g)
    pred = torch.randint(0, 5, (3, 7, 9), generator=g)
    expected = np.zeros((5, 5), np.int64)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        expected[t, p] += 1
    assert confusion_matrix(pred, target, num_classes=5).numpy().tolist() == expected.tolist()
    assert confusion_matrix(pred.to(torch.uint8), target.to(torch.uint8), num_classes=5).tolist() == expected.tolist()


def test_confusion_matrix_infers_the_number_of_classes():
    """The default used to be 11 classes (DigitScenes): labels >= 11 of another model raised."""
    assert confusion_matrix(PRED, TARGET).tolist() == CONF  # K = largest label + 1 = 3
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 21, (2, 9, 9), generator=g)  # a 21-class model (e.g. Pascal VOC)
    pred = torch.randint(0, 21, (2, 9, 9), generator=g)
    target[0, 0, 0], pred[0, 0, 1] = 20, 20
    assert torch.equal(confusion_matrix(pred, target), confusion_matrix(pred, target, num_classes=21))
    # ignored pixels do not count towards K, whatever pred says there
    ignored = TARGET.clone()
    ignored[1, 1] = IGNORE_INDEX
    assert confusion_matrix(torch.tensor([[0, 2], [2, 9]]), ignored).shape == (3, 3)
    assert confusion_matrix(PRED, torch.full_like(TARGET, IGNORE_INDEX)).shape == (0, 0)


def test_mean_iou_and_pixel_accuracy_do_not_depend_on_the_inferred_k():
    """mIoU over present classes is the same with K inferred or K = 11 (the course's calls)."""
    g = torch.Generator().manual_seed(3)
    for top in (3, 7, 11):  # the last classes absent from both maps
        target = torch.randint(0, top, (4, 16, 16), generator=g)
        pred = torch.randint(0, top, (4, 16, 16), generator=g)
        target[0, :2] = IGNORE_INDEX
        inferred, fixed = confusion_matrix(pred, target), confusion_matrix(pred, target, num_classes=11)
        assert inferred.shape == (top, top)
        assert mean_iou(inferred) == mean_iou(fixed)
        assert pixel_accuracy(inferred) == pixel_accuracy(fixed)
        assert torch.equal(inferred, fixed[:top, :top])


def test_confusion_matrix_rejects_the_ignore_index_in_pred_when_inferring():
    pred = torch.tensor([[0, IGNORE_INDEX], [2, 2]])
    with pytest.raises(ValueError, match="pred holds ignore_index=255.*num_classes"):
        confusion_matrix(pred, TARGET)
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(torch.tensor([[0, -1], [2, 2]]), TARGET)


def test_confusion_matrix_excludes_ignore_index():
    target = torch.tensor([[0, 1], [IGNORE_INDEX, 2]])
    pred = torch.tensor([[0, 1], [9, 0]])  # 9 is out of range for K=3, but its pixel is ignored
    conf = confusion_matrix(pred, target, num_classes=3)
    assert conf.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert int(conf.sum()) == 3
    custom = confusion_matrix(pred, torch.tensor([[0, 1], [7, 2]]), num_classes=3, ignore_index=7)
    assert torch.equal(custom, conf)


def test_confusion_matrix_all_ignored_is_zero():
    target = torch.full((2, 2), IGNORE_INDEX)
    assert int(confusion_matrix(torch.zeros(2, 2, dtype=torch.long), target, num_classes=3).sum()) == 0


@pytest.mark.parametrize(
    "pred, target, name",
    [
        ([[0, 1], [2, 3]], [[0, 1], [2, 2]], "pred"),
        ([[0, 1], [2, 2]], [[0, 1], [2, 3]], "target"),
        ([[0, -1], [2, 2]], [[0, 1], [2, 2]], "pred"),
        ([[0, IGNORE_INDEX], [2, 2]], [[0, 1], [2, 2]], "pred"),  # ignore_index in pred is not ignored
    ],
)
def test_confusion_matrix_rejects_out_of_range_labels(pred, target, name):
    with pytest.raises(ValueError, match=name):
        confusion_matrix(torch.tensor(pred), torch.tensor(target), num_classes=3)


def test_confusion_matrix_type_and_shape_errors():
    with pytest.raises(TypeError):
        confusion_matrix(PRED.float(), TARGET, num_classes=3)
    with pytest.raises(TypeError):
        confusion_matrix(PRED, TARGET.float(), num_classes=3)
    with pytest.raises(TypeError):
        confusion_matrix(PRED > 0, TARGET, num_classes=3)
    with pytest.raises(TypeError):
        confusion_matrix(PRED.numpy(), TARGET, num_classes=3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(PRED[:1], TARGET, num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(PRED, TARGET, num_classes=0)
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(PRED, TARGET, num_classes=2.0)


# --- IoU and accuracy ---------------------------------------------------------------------------


def test_iou_mean_iou_pixel_accuracy_hand_computed():
    conf = torch.tensor(CONF)
    iou = iou_per_class(conf)
    assert iou.tolist() == pytest.approx([1.0, 0.0, 1 / 3])
    assert mean_iou(conf) == pytest.approx(4 / 9)
    assert pixel_accuracy(conf) == pytest.approx(0.5)


def test_absent_class_is_nan_and_excluded_from_mean():
    conf = confusion_matrix(PRED, TARGET, num_classes=4)
    iou = iou_per_class(conf)
    assert iou[:3].tolist() == pytest.approx([1.0, 0.0, 1 / 3])
    assert math.isnan(float(iou[3]))
    assert mean_iou(conf) == pytest.approx(4 / 9)
    assert pixel_accuracy(conf) == pytest.approx(0.5)


def test_class_only_predicted_counts_in_iou():
    # class 1 never in target but predicted once: IoU 0, not NaN
    conf = confusion_matrix(torch.tensor([0, 1, 0]), torch.tensor([0, 0, 0]), num_classes=2)
    assert iou_per_class(conf).tolist() == pytest.approx([2 / 3, 0.0])
    assert mean_iou(conf) == pytest.approx(1 / 3)


def test_perfect_prediction_and_empty_matrix():
    conf = confusion_matrix(TARGET, TARGET, num_classes=3)
    assert mean_iou(conf) == 1.0 and pixel_accuracy(conf) == 1.0
    empty = torch.zeros(3, 3, dtype=torch.long)
    assert math.isnan(mean_iou(empty)) and math.isnan(pixel_accuracy(empty))


def test_iou_per_class_rejects_non_square():
    with pytest.raises(ValueError):
        iou_per_class(torch.zeros(2, 3))
    with pytest.raises(ValueError):
        iou_per_class(torch.zeros(3))


# --- digit accuracy -----------------------------------------------------------------------------


def _digit_case():
    instances = torch.zeros(2, 4, 4, dtype=torch.long)
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    # scene 0, instance 1 (digit 3): 5 background votes, 2 for digit 3 (class 4), 1 for digit 5 -> right
    instances[0, 0, :4] = 1
    instances[0, 1, :4] = 1
    pred[0, 0, :2] = 4
    pred[0, 0, 2] = 6
    # scene 0, instance 2 (digit 1): predicted all background -> wrong
    instances[0, 3, :] = 2
    # scene 1, instance 1 (digit 2): majority digit 7 (class 8) -> wrong
    instances[1, 0, :] = 1
    pred[1, 0, :3] = 8
    pred[1, 0, 3] = 3
    # scene 1, instance 2 (digit 0): all class 1 -> right
    instances[1, 2, :] = 2
    pred[1, 2, :] = 1
    return pred, instances, [[3, 1], [2, 0]]


def test_digit_accuracy_hand_made():
    pred, instances, digits = _digit_case()
    assert digit_accuracy(pred, instances, digits) == pytest.approx(0.5)
    # fix scene 1 instance 1: now 3 of 4 right
    pred[1, 0, :] = 3
    assert digit_accuracy(pred, instances, digits) == pytest.approx(0.75)


def test_digit_accuracy_all_background_instance_is_wrong():
    instances = torch.ones(1, 3, 3, dtype=torch.long)
    pred = torch.zeros(1, 3, 3, dtype=torch.long)
    assert digit_accuracy(pred, instances, [[0]]) == 0.0
    pred[0, 0, 0] = 1  # a single digit vote outweighs the background pixels
    assert digit_accuracy(pred, instances, [[0]]) == 1.0


def test_digit_accuracy_counts_instance_without_pixels_as_wrong():
    instances = torch.ones(1, 2, 2, dtype=torch.long)
    pred = torch.full((1, 2, 2), 5)
    assert digit_accuracy(pred, instances, [[4, 7]]) == pytest.approx(0.5)


def test_digit_accuracy_errors():
    pred, instances, digits = _digit_case()
    with pytest.raises(ValueError, match="digits"):
        digit_accuracy(pred, instances, digits[:1])
    with pytest.raises(ValueError):
        digit_accuracy(pred[0], instances[0], digits)
    with pytest.raises(ValueError):
        digit_accuracy(pred, instances, [[], []])
    with pytest.raises(TypeError):
        digit_accuracy(pred.float(), instances, digits)


def test_digit_accuracy_takes_num_classes_and_works_beyond_eleven():
    pred, instances, digits = _digit_case()
    assert digit_accuracy(pred, instances, digits, num_classes=11) == pytest.approx(0.5)
    assert digit_accuracy(pred, instances, digits, num_classes=9) == pytest.approx(0.5)  # labels up to 8
    with pytest.raises(ValueError, match=r"pred holds labels outside \[0, 5\)"):
        digit_accuracy(pred, instances, digits, num_classes=5)
    with pytest.raises(ValueError, match="digits must be in"):
        digit_accuracy(torch.zeros_like(pred), instances, digits, num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        digit_accuracy(pred, instances, digits, num_classes=0)
    # a model with 14 "digit" classes (class 13 = digit 12)
    instances = torch.ones(1, 2, 2, dtype=torch.long)
    many = torch.full((1, 2, 2), 13)
    assert digit_accuracy(many, instances, [[12]]) == 1.0 == digit_accuracy(many, instances, [[12]], num_classes=14)


def test_digit_accuracy_rejects_negative_predictions():
    """A negative label used to reach torch.bincount (RuntimeError)."""
    pred, instances, digits = _digit_case()
    pred[0, 0, 0] = -1
    with pytest.raises(ValueError, match="pred"):
        digit_accuracy(pred, instances, digits)


# --- max softmax and NLL ------------------------------------------------------------------------


def test_max_softmax_equals_softmax_max_and_is_bounded():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(2, 5, 4, 6, generator=g)
    conf = max_softmax(logits)
    assert conf.shape == (2, 4, 6)
    assert torch.allclose(conf, logits.softmax(1).max(1).values)
    assert float(conf.min()) >= 1 / 5 - 1e-6 and float(conf.max()) <= 1.0
    assert torch.allclose(max_softmax(torch.zeros(1, 4, 2, 2)), torch.full((1, 2, 2), 0.25))
    assert max_softmax(logits.half()).dtype == torch.float32


def test_max_softmax_and_nll_refuse_probabilities():
    """Probabilities passed as logits used to get a second softmax silently (wrong values)."""
    g = torch.Generator().manual_seed(2)
    logits = 4 * torch.randn(2, 5, 3, 3, generator=g)
    probs = logits.softmax(1)
    with pytest.raises(ValueError, match=r"look like probabilities.*probs\.amax\(1\)"):
        max_softmax(probs)
    with pytest.raises(ValueError, match="look like probabilities"):
        max_softmax(probs.half())
    target = torch.randint(0, 5, (2, 3, 3), generator=g)
    with pytest.raises(ValueError, match=r"look like probabilities.*calibration_report"):
        nll(probs, target)
    # logits, even non-negative ones or ones in [0, 1], pass
    assert torch.allclose(max_softmax(logits), probs.amax(1))
    assert max_softmax(logits.abs()).shape == (2, 3, 3)
    assert max_softmax(torch.full((1, 4, 2, 2), 0.5)).allclose(torch.full((1, 2, 2), 0.25))  # sums to 2
    one_hot_like = torch.zeros(1, 3, 2, 2)
    one_hot_like[:, 0] = 1.0  # a one-hot map also sums to 1: refused, it is a probability map
    with pytest.raises(ValueError, match="probabilities"):
        max_softmax(one_hot_like)
    assert max_softmax(torch.zeros(0, 4, 2, 2)).shape == (0, 2, 2)


def test_max_softmax_errors():
    with pytest.raises(ValueError):
        max_softmax(torch.zeros(4, 2, 2))
    with pytest.raises(TypeError):
        max_softmax(torch.zeros(1, 4, 2, 2, dtype=torch.long))


def test_nll_hand_computed():
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 1] = math.log(3.0)  # p = (1/4, 3/4) at both pixels
    target = torch.tensor([[[1, 0]]])
    assert nll(logits, target) == pytest.approx((-math.log(0.75) - math.log(0.25)) / 2, rel=1e-6)


def test_nll_honours_ignore_index():
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 1] = math.log(3.0)
    target = torch.tensor([[[1, IGNORE_INDEX]]])
    assert nll(logits, target) == pytest.approx(-math.log(0.75), rel=1e-6)
    assert nll(logits, torch.tensor([[[1, 0]]]), ignore_index=0) == pytest.approx(-math.log(0.75), rel=1e-6)
    assert math.isnan(nll(logits, torch.full((1, 1, 2), IGNORE_INDEX)))


def test_nll_errors():
    logits = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError):
        nll(logits, torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(TypeError):
        nll(logits, torch.zeros(1, 2, 2))


# --- boundary mask ------------------------------------------------------------------------------


def _square():
    label = torch.zeros(8, 8, dtype=torch.long)
    label[2:5, 2:5] = 3
    return label


def test_boundary_mask_width_one():
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[1:6, 1:6] = True
    expected[3, 3] = False  # centre of the square: its 3x3 window is all one class
    mask = boundary_mask(_square())
    assert mask.dtype == torch.bool and mask.shape == (8, 8)
    assert torch.equal(mask, expected)


def test_boundary_mask_width_two():
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[0:7, 0:7] = True
    assert torch.equal(boundary_mask(_square(), width=2), expected)


def test_boundary_mask_batched_and_uniform_maps():
    batch = torch.stack([_square(), torch.full((8, 8), 4)])
    mask = boundary_mask(batch)
    assert mask.shape == (2, 8, 8)
    assert torch.equal(mask[0], boundary_mask(_square()))
    assert not mask[1].any()  # no label change, and the image border is not a boundary


def test_boundary_mask_errors():
    with pytest.raises(TypeError):
        boundary_mask(_square().float())
    with pytest.raises(ValueError, match="width"):
        boundary_mask(_square(), width=0)
    with pytest.raises(ValueError):
        boundary_mask(_square()[None, None])


@pytest.mark.parametrize("low, high, bins", [(1e-7, 10.0, 4096), (1e-7, 10.0, 16384), (0.5, 2.0, 3), (1e-3, 1.0, 5)])
def test_log_bucketize_equals_the_binary_search(low, high, bins):
    from utils.metrics.detection import _log_bucketize

    edges = torch.logspace(math.log10(low), math.log10(high), bins - 1, dtype=torch.float64)
    edges[0], edges[-1] = low, high  # as DetectionMeter sets them
    g = torch.Generator().manual_seed(0)
    below = edges.nextafter(torch.tensor(0.0, dtype=torch.float64))
    above = edges.nextafter(torch.tensor(1e300, dtype=torch.float64))
    x = torch.cat([torch.rand(50_000, generator=g, dtype=torch.float64) * 20,
                   torch.rand(50_000, generator=g, dtype=torch.float64) ** 30,
                   edges, below, above, torch.tensor([0.0, -1.0, 1e-300, 1e300, math.inf], dtype=torch.float64)])
    expected = torch.bucketize(x, edges, right=False)
    assert torch.equal(_log_bucketize(x, edges), expected)               # exact edges and their neighbours too
    assert torch.equal(_log_bucketize(x.float(), edges), torch.bucketize(x.float().double(), edges, right=False))
    assert expected.min() == 0 and expected.max() == edges.numel()         # both open-ended bins are exercised


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_probability_check_names_nan_and_infinite_values(bad):
    from utils.metrics._checks import _check_prob_values

    p = torch.full((2, 4, 3, 3), 0.25)
    p[1, 2, 0, 1] = bad  # one value among many: the one-pass min/max must still see it
    with pytest.raises(ValueError, match="NaN or infinite"):
        _check_prob_values(p)
    p[1, 2, 0, 1] = 1.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _check_prob_values(p)
