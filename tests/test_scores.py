"""Unit tests of the AUROC helpers of utils.metrics (auroc, misclassification_auroc, ood_auroc, masked_mean)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from utils.config import IGNORE_INDEX
from utils.metrics import auroc, masked_mean, misclassification_auroc, ood_auroc


def _sk(score: torch.Tensor, positive: torch.Tensor) -> float:
    return float(roc_auc_score(positive.flatten().numpy(), score.flatten().double().numpy()))


# --- auroc ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("levels", [None, 3, 20])  # None: (almost surely) distinct scores; else heavy ties
def test_auroc_matches_sklearn(seed, dtype, levels):
    g = torch.Generator().manual_seed(seed)
    n = 500 + 37 * seed
    positive = torch.rand(n, generator=g) < 0.3
    score = torch.randn(n, generator=g, dtype=torch.float64) + 0.7 * positive  # informative but imperfect
    if levels is not None:
        score = (score * levels / 4).round()
    score = score.to(dtype)
    if levels is not None:
        assert score.unique().numel() < n / 5  # the case really has ties
    value = auroc(score, positive)
    assert isinstance(value, float)
    assert value == pytest.approx(_sk(score, positive), abs=1e-12)
    assert 0.5 < value < 1.0


def test_auroc_ties_between_the_groups_count_one_half():
    # pairs (pos, neg): (0.5, 0.5) -> 1/2, (0.5, 0.2) -> 1, (0.9, 0.5) -> 1, (0.9, 0.2) -> 1, (0.2, .) -> 1/2, 0
    score = torch.tensor([0.5, 0.9, 0.2, 0.5, 0.2])
    positive = torch.tensor([True, True, True, False, False])
    # positives 0.5, 0.9, 0.2 against negatives 0.5, 0.2: (0.5 + 1) + (1 + 1) + (0 + 0.5) = 4 of 6 pairs
    assert auroc(score, positive) == pytest.approx(4 / 6, abs=1e-15)
    assert auroc(score, positive) == pytest.approx(_sk(score, positive), abs=1e-15)


@pytest.mark.parametrize(
    "score, positive, expected",
    [
        ([0.1, 0.4, 0.35, 0.8], [False, False, True, True], 0.75),  # sklearn's documented example
        ([0.1, 0.2, 0.8, 0.9], [False, False, True, True], 1.0),  # perfect separation
        ([0.1, 0.2, 0.8, 0.9], [True, True, False, False], 0.0),  # reversed
        ([0.3, 0.3, 0.3, 0.3, 0.3], [True, False, False, True, False], 0.5),  # one score for all
        ([-math.inf, 0.0, math.inf], [False, False, True], 1.0),  # infinite scores are ordinary extremes
        ([5.0, -1.0], [True, False], 1.0),
    ],
)
def test_auroc_hand_computed(score, positive, expected):
    for dtype in (torch.float16, torch.float32, torch.float64):
        assert auroc(torch.tensor(score, dtype=dtype), torch.tensor(positive)) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("positive", [[True, True, True], [False, False, False], []])
def test_auroc_is_nan_with_one_group(positive):
    score = torch.arange(len(positive), dtype=torch.float32)
    assert math.isnan(auroc(score, torch.tensor(positive, dtype=torch.bool)))


def test_auroc_is_invariant_to_increasing_transforms():
    g = torch.Generator().manual_seed(7)
    score = torch.rand(400, generator=g, dtype=torch.float64)
    positive = torch.rand(400, generator=g) < score  # higher scores are more often positive
    base = auroc(score, positive)
    assert 0.6 < base < 1.0
    for f in (lambda s: 3 * s - 2, torch.exp, lambda s: torch.log(s + 1e-3), lambda s: s**3, torch.sigmoid):
        assert auroc(f(score), positive) == pytest.approx(base, abs=1e-12)
    # a decreasing transform mirrors it
    assert auroc(-score, positive) == pytest.approx(1 - base, abs=1e-12)
    # and swapping the groups mirrors it too
    assert auroc(score, ~positive) == pytest.approx(1 - base, abs=1e-12)


def test_auroc_takes_any_shape_and_order():
    g = torch.Generator().manual_seed(3)
    score = torch.rand(2, 5, 7, generator=g)
    positive = torch.rand(2, 5, 7, generator=g) < 0.4
    flat = auroc(score.flatten(), positive.flatten())
    assert auroc(score, positive) == flat
    assert auroc(score.transpose(1, 2), positive.transpose(1, 2)) == pytest.approx(flat, abs=1e-15)
    perm = torch.randperm(70, generator=g)
    assert auroc(score.flatten()[perm], positive.flatten()[perm]) == pytest.approx(flat, abs=1e-15)
    assert auroc(score[None], positive[None]) == flat
    # a score that still needs grad is fine and is left alone
    s = score.clone().requires_grad_(True)
    assert auroc(s, positive) == flat and s.grad is None


@pytest.mark.parametrize(
    "score, positive, error",
    [
        ([0.1, 0.2], torch.tensor([True, False]), TypeError),  # score not a tensor
        (torch.tensor([0.1, 0.2]), [True, False], TypeError),  # positive not a tensor
        (torch.tensor([1, 2]), torch.tensor([True, False]), TypeError),  # integer score
        (torch.tensor([True, False]), torch.tensor([True, False]), TypeError),  # bool score
        (torch.tensor([0.1, 0.2]), torch.tensor([1, 0]), TypeError),  # integer positive
        (torch.tensor([0.1, 0.2]), torch.tensor([1.0, 0.0]), TypeError),  # float positive
        (torch.tensor([0.1, 0.2]), torch.tensor([True, False, True]), ValueError),  # shape mismatch
        (torch.tensor([[0.1, 0.2]]), torch.tensor([True, False]), ValueError),  # same numel, other shape
        (torch.tensor([0.1, math.nan]), torch.tensor([True, False]), ValueError),  # NaN score
    ],
)
def test_auroc_rejects_bad_inputs(score, positive, error):
    with pytest.raises(error):
        auroc(score, positive)


def test_auroc_rejects_nan_even_with_one_group():
    with pytest.raises(ValueError, match="NaN"):
        auroc(torch.tensor([0.1, math.nan]), torch.tensor([True, True]))


# --- misclassification_auroc ---------------------------------------------------------------------


def _seg_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 4, (3, 8, 9), generator=g)
    pred = torch.where(torch.rand(3, 8, 9, generator=g) < 0.7, target, torch.randint(0, 4, (3, 8, 9), generator=g))
    target[torch.rand(3, 8, 9, generator=g) < 0.15] = IGNORE_INDEX
    score = torch.rand(3, 8, 9, generator=g) + 0.5 * (pred != target)
    return score, pred, target


def test_misclassification_auroc_matches_sklearn_on_kept_pixels():
    score, pred, target = _seg_case()
    keep = target != IGNORE_INDEX
    wrong = pred != target
    assert (wrong & keep).any() and (~wrong & keep).any() and (~keep).any()
    expected = _sk(score[keep], wrong[keep])
    assert misclassification_auroc(score, pred, target) == pytest.approx(expected, abs=1e-12)
    assert misclassification_auroc(score, pred, target) == pytest.approx(auroc(score[keep], wrong[keep]), abs=1e-15)
    # counting ignored pixels (all "wrong", since pred never equals 255) would give another number
    assert _sk(score, wrong) != pytest.approx(expected, abs=1e-6)


def test_misclassification_auroc_ignores_ignored_pixels():
    score, pred, target = _seg_case(1)
    base = misclassification_auroc(score, pred, target)
    ignored = target == IGNORE_INDEX
    for fill in (-1e6, 1e6, 0.5):
        moved = score.masked_fill(ignored, fill)
        assert misclassification_auroc(moved, pred, target) == base
    # what the model predicts there does not matter either
    assert misclassification_auroc(score, pred.masked_fill(ignored, 0), target) == base
    # a custom ignore index
    target7 = target.masked_fill(ignored, 7)
    assert misclassification_auroc(score, pred, target7, ignore_index=7) == base


def test_misclassification_auroc_hand_computed_and_label_dtypes():
    target = torch.tensor([[0, 1, 2], [2, IGNORE_INDEX, 1]])
    pred = torch.tensor([[0, 2, 2], [1, 0, 1]])  # wrong at (0, 1) and (1, 0); (1, 1) is ignored
    score = torch.tensor([[0.1, 0.9, 0.3], [0.4, 0.0, 0.2]])
    # wrong scores 0.9, 0.4 against right scores 0.1, 0.3, 0.2: every pair ordered -> 1.0
    assert misclassification_auroc(score, pred, target) == 1.0
    assert misclassification_auroc(-score, pred, target) == 0.0
    assert misclassification_auroc(score, pred.to(torch.uint8), target.to(torch.uint8)) == 1.0
    score2 = torch.tensor([[0.1, 0.9, 0.5], [0.4, 0.0, 0.2]])  # 0.4 now loses to 0.5: 5 of 6 pairs
    assert misclassification_auroc(score2, pred, target) == pytest.approx(5 / 6, abs=1e-15)


def test_misclassification_auroc_nan_cases():
    score = torch.rand(2, 3)
    t = torch.tensor([[0, 1, 2], [0, 1, 2]])
    assert math.isnan(misclassification_auroc(score, t.clone(), t))  # no mistakes
    assert math.isnan(misclassification_auroc(score, t, torch.full_like(t, IGNORE_INDEX)))  # all ignored
    # a NaN score on an ignored pixel is never looked at, on a kept pixel it is an error
    pred = torch.tensor([[0, 2, 2], [0, 1, 1]])
    target = torch.tensor([[0, 1, 2], [IGNORE_INDEX, 1, 2]])
    s = torch.tensor([[0.1, 0.9, 0.2], [math.nan, 0.3, 0.8]])
    assert misclassification_auroc(s, pred, target) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        misclassification_auroc(s, pred, target.masked_fill(target == IGNORE_INDEX, 0))


@pytest.mark.parametrize(
    "case, error",
    [
        ("score_list", TypeError),
        ("score_int", TypeError),
        ("pred_float", TypeError),
        ("target_bool", TypeError),
        ("pred_list", TypeError),
        ("pred_shape", ValueError),
        ("target_shape", ValueError),
    ],
)
def test_misclassification_auroc_rejects_bad_inputs(case, error):
    score, pred, target = _seg_case(2)
    if case == "score_list":
        score = score.tolist()
    elif case == "score_int":
        score = (score * 10).long()
    elif case == "pred_float":
        pred = pred.float()
    elif case == "target_bool":
        target = target > 0
    elif case == "pred_list":
        pred = pred.tolist()
    elif case == "pred_shape":
        pred = pred[:, :-1]
    elif case == "target_shape":
        target = target[:1]
    with pytest.raises(error):
        misclassification_auroc(score, pred, target)


# --- ood_auroc -----------------------------------------------------------------------------------


def _ood_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ood = torch.zeros(2, 10, 12, dtype=torch.bool)
    ood[:, 2:5, 3:8] = True
    digit = torch.zeros_like(ood)
    digit[:, 6:9, 1:10] = True
    score = torch.rand(2, 10, 12, generator=g, dtype=torch.float64) + 0.6 * ood - 0.2 * digit
    return score, ood, digit


def test_ood_auroc_default_negatives_are_all_other_pixels():
    score, ood, _ = _ood_case()
    expected = _sk(score, ood)
    assert ood_auroc(score, ood) == pytest.approx(expected, abs=1e-12)
    assert ood_auroc(score, ood) == auroc(score, ood)
    assert ood_auroc(score.float(), ood) == pytest.approx(_sk(score.float(), ood), abs=1e-12)


def test_ood_auroc_with_an_inlier_mask():
    score, ood, digit = _ood_case(1)
    keep = ood | digit
    expected = _sk(score[keep], ood[keep])
    value = ood_auroc(score, ood, digit)
    assert value == pytest.approx(expected, abs=1e-12)
    assert value != pytest.approx(ood_auroc(score, ood), abs=1e-6)  # the restriction matters here
    # pixels in neither mask are never looked at
    other = ~keep
    for fill in (-1e9, 1e9, math.nan):
        assert ood_auroc(score.masked_fill(other, fill), ood, digit) == value
    # an inlier mask of every non-OOD pixel is the default
    assert ood_auroc(score, ood, ~ood) == ood_auroc(score, ood)


def test_ood_auroc_hand_computed_and_nan():
    score = torch.tensor([0.9, 0.8, 0.1, 0.85, 0.0])
    ood = torch.tensor([True, True, False, False, False])
    # all negatives: 0.1, 0.85, 0.0 -> pairs won 3 + 2 = 5 of 6
    assert ood_auroc(score, ood) == pytest.approx(5 / 6, abs=1e-15)
    inlier = torch.tensor([False, False, True, False, True])  # leave out 0.85: perfect
    assert ood_auroc(score, ood, inlier) == 1.0
    assert math.isnan(ood_auroc(score, torch.zeros(5, dtype=torch.bool)))
    assert math.isnan(ood_auroc(score, ood, torch.zeros(5, dtype=torch.bool)))


def test_ood_auroc_rejects_overlapping_masks():
    score, ood, digit = _ood_case()
    bad = digit.clone()
    bad[0, 3, 4] = True  # an OOD pixel
    with pytest.raises(ValueError, match="overlap"):
        ood_auroc(score, ood, bad)


@pytest.mark.parametrize(
    "case, error",
    [
        ("score_list", TypeError),
        ("score_int", TypeError),
        ("ood_int", TypeError),
        ("ood_float", TypeError),
        ("inlier_uint8", TypeError),
        ("ood_list", TypeError),
        ("inlier_list", TypeError),
        ("ood_shape", ValueError),
        ("inlier_shape", ValueError),
        ("score_nan", ValueError),
    ],
)
def test_ood_auroc_rejects_bad_inputs(case, error):
    score, ood, inlier = _ood_case()
    if case == "score_list":
        score = score.tolist()
    elif case == "score_int":
        score = (score * 10).int()
    elif case == "ood_int":
        ood = ood.long()
    elif case == "ood_float":
        ood = ood.float()
    elif case == "inlier_uint8":
        inlier = inlier.to(torch.uint8)
    elif case == "ood_list":
        ood = ood.tolist()
    elif case == "inlier_list":
        inlier = inlier.tolist()
    elif case == "ood_shape":
        ood = ood[0]
    elif case == "inlier_shape":
        inlier = inlier[:, :-1]
    elif case == "score_nan":
        score = score.clone()
        score[0, 3, 4] = math.nan  # an OOD pixel
    with pytest.raises(error):
        ood_auroc(score, ood, inlier)


# --- masked_mean ---------------------------------------------------------------------------------


def test_masked_mean_hand_computed():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, False, True], [False, False, True]])
    assert masked_mean(values, mask) == pytest.approx(10 / 3, abs=1e-15)
    assert masked_mean(values) == 3.5
    assert masked_mean(values, torch.ones_like(mask)) == 3.5
    assert isinstance(masked_mean(values, mask), float)
    assert masked_mean(torch.tensor([1, 2, 4]), torch.tensor([True, False, True])) == 2.5  # integer values
    assert masked_mean(torch.tensor(7.0)) == 7.0  # a scalar tensor


def test_masked_mean_accumulates_in_double():
    g = torch.Generator().manual_seed(0)
    values = (torch.rand(200_000, generator=g, dtype=torch.float64) + 1e4).float()
    mask = torch.rand(200_000, generator=g) < 0.5
    expected = float(np.mean(values.numpy().astype(np.float64)[mask.numpy()]))
    assert masked_mean(values, mask) == pytest.approx(expected, rel=1e-14)
    assert masked_mean(values) == pytest.approx(float(np.mean(values.numpy().astype(np.float64))), rel=1e-14)


def test_masked_mean_is_nan_when_empty():
    values = torch.rand(3, 4)
    assert math.isnan(masked_mean(values, torch.zeros(3, 4, dtype=torch.bool)))
    assert math.isnan(masked_mean(torch.zeros(0)))
    assert math.isnan(masked_mean(torch.zeros(0, 5), torch.zeros(0, 5, dtype=torch.bool)))


@pytest.mark.parametrize(
    "values, mask, error",
    [
        ([1.0, 2.0], None, TypeError),
        (torch.rand(2, 3), torch.ones(2, 3), TypeError),  # float mask
        (torch.rand(2, 3), torch.ones(2, 3, dtype=torch.long), TypeError),  # integer mask
        (torch.rand(2, 3), [[True] * 3] * 2, TypeError),  # list mask
        (torch.rand(2, 3), torch.ones(3, 2, dtype=torch.bool), ValueError),  # shape mismatch
        (torch.rand(2, 3), torch.ones(6, dtype=torch.bool), ValueError),  # same numel, other shape
    ],
)
def test_masked_mean_rejects_bad_inputs(values, mask, error):
    with pytest.raises(error):
        masked_mean(values, mask)
