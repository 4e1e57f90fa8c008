"""Tests of utils.failure on hand-made cases: image risk, aggregators and image-level selective metrics."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from utils import failure


def _maps(*rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


# ------------------------------------------------------------------ image risk


def test_image_risk_dice_and_iou_by_hand():
    y = _maps([[1, 1, 0, 0], [1, 1, 0, 0]])
    pred = _maps([[1, 0, 1, 0], [1, 0, 1, 0]])  # 2 of 4 true pixels found, 2 false pixels
    assert failure.image_risk(pred, y).item() == pytest.approx(1 - 2 * 2 / 8)
    assert failure.image_risk(pred, y, kind="iou").item() == pytest.approx(1 - 2 / 6)
    assert failure.image_risk(y, y).item() == 0.0


def test_image_risk_counts_a_wrong_class_as_no_overlap():
    y = _maps([[1, 1], [0, 0]])
    assert failure.image_risk(_maps([[2, 2], [0, 0]]), y).item() == 1.0
    assert failure.image_risk(_maps([[1, 2], [0, 0]]), y).item() == pytest.approx(0.5)


def test_image_risk_of_empty_foregrounds():
    empty = _maps([[0, 0], [0, 0]])
    some = _maps([[0, 3], [0, 0]])
    risks = failure.image_risk(torch.cat([empty, some, empty]), torch.cat([empty, empty, some]))
    assert risks.tolist() == [0.0, 1.0, 1.0]


def test_image_risk_leaves_out_ignored_pixels_and_takes_the_background_class():
    y = _maps([[1, 255], [0, 0]])
    assert failure.image_risk(_maps([[1, 4], [0, 0]]), y).item() == 0.0
    # background 2: the same scene with classes 0 and 2 swapped gives the same risk
    y0, p0 = _maps([[1, 1, 0], [0, 3, 0]]), _maps([[1, 0, 0], [3, 3, 0]])
    swap = lambda t: torch.where(t == 0, 2, torch.where(t == 2, 0, t))  # noqa: E731
    assert failure.image_risk(swap(p0), swap(y0), background=2).item() == pytest.approx(failure.image_risk(p0, y0).item())


def test_image_risk_refuses_bad_input():
    y = _maps([[0, 1]])
    with pytest.raises(ValueError, match="kind"):
        failure.image_risk(y, y, kind="f1")
    with pytest.raises(ValueError, match="pred"):
        failure.image_risk(y.float(), y)
    with pytest.raises(ValueError, match="pred"):
        failure.image_risk(_maps([[0, 1, 1]]), y)
    with pytest.raises(ValueError, match="background"):
        failure.image_risk(y, y, background=-1)


# ------------------------------------------------------------------ aggregators


def test_mean_and_foreground_mean():
    m = torch.tensor([[[0.0, 1.0], [0.5, 0.5]], [[0.2, 0.2], [0.2, 0.6]]])
    pred = _maps([[0, 1], [0, 0]], [[0, 0], [0, 0]])
    assert failure.mean_all(m).tolist() == pytest.approx([0.5, 0.3])
    # image 2 predicts no foreground: its score is the image mean
    assert failure.mean_foreground(m, pred).tolist() == pytest.approx([1.0, 0.3])
    assert failure.aggregate(m, "foreground mean", pred=pred).tolist() == pytest.approx([1.0, 0.3])


def test_interior_mean_leaves_out_the_predicted_boundary():
    pred = torch.zeros(1, 5, 5, dtype=torch.long)
    pred[0, 2, 2] = 1  # one predicted pixel: it and its 8 neighbours are boundary
    m = torch.zeros(1, 5, 5)
    m[0, 1:4, 1:4] = 1.0
    assert failure.mean_interior(m, pred).item() == 0.0
    assert failure.mean_all(m).item() == pytest.approx(9 / 25)


def test_patch_max_finds_the_hottest_window_and_share_above_counts():
    m = torch.zeros(1, 6, 6)
    m[0, 4:6, 4:6] = 1.0
    m[0, 0, 0] = 1.0
    assert failure.patch_max(m, 2).item() == 1.0
    assert failure.patch_max(m, 3).item() == pytest.approx(4 / 9)
    assert failure.share_above(m, 0.5).item() == pytest.approx(5 / 36)
    with pytest.raises(ValueError, match="patch"):
        failure.patch_max(m, 7)
    with pytest.raises(ValueError, match="how"):
        failure.aggregate(m, "median")
    with pytest.raises(ValueError, match="pred"):
        failure.aggregate(m, "interior mean")


def test_pairwise_dice_by_hand():
    a = _maps([[1, 1], [0, 0]], [[0, 0], [0, 0]])
    b = _maps([[1, 0], [0, 0]], [[0, 0], [0, 0]])
    c = _maps([[2, 2], [0, 0]], [[0, 0], [0, 0]])
    # pairs: a-b Dice 2/3, a-c 0, b-c 0 -> mean 2/9; second image: all empty, Dice 1
    assert failure.pairwise_dice([a, b, c]).tolist() == pytest.approx([1 - 2 / 9, 0.0])
    assert failure.pairwise_dice([a, a]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="at least two"):
        failure.pairwise_dice([a])


# ------------------------------------------------------------------ selective metrics


def test_aurc_augrc_and_e_aurc_by_hand():
    scores, risks = [0.1, 0.2, 0.3], [0.0, 1.0, 0.0]
    # accepted in order: R = [0, 1/2, 1/3], G = [0, 1/3, 1/3]; perfect order [0, 0, 1]: R* = [0, 0, 1/3]
    assert failure.aurc(scores, risks) == pytest.approx((0 + 1 / 2 + 1 / 3) / 3)
    assert failure.augrc(scores, risks) == pytest.approx((0 + 1 / 3 + 1 / 3) / 3)
    assert failure.e_aurc(scores, risks) == pytest.approx((1 / 2 + 1 / 3) / 3 - (1 / 3) / 3)
    assert failure.e_aurc(risks, risks) == 0.0


def test_ties_are_the_expectation_over_random_orders():
    torch.manual_seed(0)
    scores = torch.tensor([0.3, 0.1, 0.3, 0.3, 0.2, 0.1])
    risks = torch.rand(6).double()
    orders = []  # brute force: every order consistent with the scores
    for perm in itertools.permutations(range(6)):
        if all(scores[perm[i]] <= scores[perm[i + 1]] for i in range(5)):
            orders.append(risks[list(perm)])
    brute_aurc = sum(float((o.cumsum(0) / torch.arange(1, 7)).mean()) for o in orders) / len(orders)
    brute_augrc = sum(float((o.cumsum(0) / 6).mean()) for o in orders) / len(orders)
    assert failure.aurc(scores, risks) == pytest.approx(brute_aurc, abs=1e-12)
    assert failure.augrc(scores, risks) == pytest.approx(brute_augrc, abs=1e-12)


def test_augrc_of_binary_failures_matches_traub_et_al():
    # Traub et al.: with binary failures, AUGRC averages over coverage the share of all images that are
    # accepted failures; a constant score gives the expectation: (1/n) sum_k (k/n) * rate = rate (n+1)/(2n)
    risks = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
    assert failure.augrc(torch.zeros(5), risks) == pytest.approx(0.4 * 6 / 10)
    # a perfect ranking accepts the failures last: G = [0, 0, 0, 1/5, 2/5]
    assert failure.augrc(risks, risks) == pytest.approx((1 / 5 + 2 / 5) / 5)


def test_risk_at_coverage_and_coverage_at_risk():
    scores, risks = [0.1, 0.2, 0.3], [0.0, 1.0, 0.0]
    assert failure.risk_at_coverage(scores, risks, 2 / 3) == pytest.approx(0.5)
    assert failure.risk_at_coverage(scores, risks, 1.0) == pytest.approx(1 / 3)
    assert failure.coverage_at_risk(scores, risks, 0.3) == pytest.approx(1 / 3)
    assert failure.coverage_at_risk(scores, risks, 0.4) == 1.0
    assert failure.coverage_at_risk([0.1, 0.2], [1.0, 1.0], 0.5) == 0.0
    curve = failure.selective_curve(scores, risks)
    assert curve["coverage"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_selective_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="one value per image"):
        failure.aurc([0.1, 0.2], [0.0])
    with pytest.raises(ValueError, match="risks must lie"):
        failure.aurc([0.1], [1.5])
    with pytest.raises(ValueError, match="scores holds NaN"):
        failure.augrc([math.nan], [0.0])
    with pytest.raises(ValueError, match="non-empty"):
        failure.aurc([], [])
    with pytest.raises(ValueError, match="coverage"):
        failure.risk_at_coverage([0.1], [0.0], 0.0)


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_draws_equal_the_metrics_of_the_images_drawn():
    from utils.spread import scene_draws

    g = torch.Generator().manual_seed(3)
    risks = torch.rand(30, generator=g, dtype=torch.float64)
    scores = {"ties": torch.randint(4, (30,), generator=g).double(), "smooth": torch.rand(30, generator=g, dtype=torch.float64)}
    boot = failure.bootstrap_selective(scores, risks, n_boot=20, seed=5)
    draws = scene_draws(30, 20, 5)
    for name, s in scores.items():
        for b in range(20):
            idx = draws[b]
            assert boot[name]["aurc"][b].item() == pytest.approx(failure.aurc(s[idx], risks[idx]), abs=1e-12)
            assert boot[name]["augrc"][b].item() == pytest.approx(failure.augrc(s[idx], risks[idx]), abs=1e-12)


def test_bootstrap_groups_draw_whole_groups_with_all_their_images():
    # hand-made: 5 images, scenes a (images 0, 3), b (1), c (2, 4); ids sorted: a=0, b=1, c=2
    from utils.spread import scene_draws

    risks = torch.tensor([0.0, 1.0, 0.5, 0.2, 0.9], dtype=torch.float64)
    scores = {"s": torch.tensor([0.1, 0.9, 0.4, 0.2, 0.8], dtype=torch.float64), "flat": torch.zeros(5, dtype=torch.float64)}
    groups = ["a", "b", "c", "a", "c"]
    members = {0: [0, 3], 1: [1], 2: [2, 4]}
    boot = failure.bootstrap_selective(scores, risks, n_boot=15, seed=2, groups=groups)
    draws = failure.image_draws(5, 15, 2, groups)
    for b, row in enumerate(scene_draws(3, 15, 2)):
        idx = torch.tensor([i for g in row.tolist() for i in members[g]])
        assert torch.equal(draws[b], idx)
        for name, s in scores.items():
            assert boot[name]["aurc"][b].item() == pytest.approx(failure.aurc(s[idx], risks[idx]), abs=1e-12)
            assert boot[name]["augrc"][b].item() == pytest.approx(failure.augrc(s[idx], risks[idx]), abs=1e-12)
    # one group holding every image: every resample is the whole set
    whole = failure.bootstrap_selective(scores, risks, n_boot=4, groups=[7] * 5)
    assert torch.allclose(whole["s"]["aurc"], torch.full((4,), failure.aurc(scores["s"], risks), dtype=torch.float64))


def test_bootstrap_one_group_per_image_equals_the_image_bootstrap():
    g = torch.Generator().manual_seed(4)
    risks = torch.rand(25, generator=g, dtype=torch.float64)
    scores = {"a": torch.randint(5, (25,), generator=g).double(), "b": torch.rand(25, generator=g, dtype=torch.float64)}
    plain = failure.bootstrap_selective(scores, risks, n_boot=30, seed=1)
    grouped = failure.bootstrap_selective(scores, risks, n_boot=30, seed=1, groups=torch.arange(25))
    for name in scores:
        for m in ("aurc", "augrc"):
            assert torch.allclose(plain[name][m], grouped[name][m], atol=1e-12)
    with pytest.raises(ValueError, match="groups"):
        failure.bootstrap_selective(scores, risks, groups=[0, 1])


def test_bootstrap_refuses_bad_input():
    with pytest.raises(ValueError, match="scores"):
        failure.bootstrap_selective({}, [0.1, 0.2])
    with pytest.raises(ValueError, match="one value per image"):
        failure.bootstrap_selective({"a": [0.1, 0.2, 0.3]}, [0.1, 0.2])
    with pytest.raises(ValueError, match="n_scenes|n_boot"):
        failure.bootstrap_selective({"a": [0.1, 0.2]}, [0.1, 0.2], n_boot=0)


def test_detector_scores_aggregates_every_map_every_way():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(3, 8, 8, generator=g)
    pred = torch.randint(3, (3, 8, 8), generator=g)
    out = failure.detector_scores({"u": m, "v": 2 * m}, pred, [pred, torch.zeros_like(pred)])
    assert len(out) == 2 * len(failure.AGGREGATORS) + 1
    assert torch.allclose(out["u, foreground mean"], failure.mean_foreground(m, pred))
    assert torch.allclose(out["v, mean"], 2 * failure.mean_all(m))
    assert torch.allclose(out["pairwise Dice"], failure.pairwise_dice([pred, torch.zeros_like(pred)]))
    with pytest.raises(ValueError, match="maps"):
        failure.detector_scores({}, pred)
