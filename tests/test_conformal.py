"""Tests of utils.conformal: quantile vs brute force, scores, sets, per-scene losses, risk control on toy data."""

from __future__ import annotations

import math

import pytest
import torch

from utils import conformal
from utils.config import IGNORE_INDEX


def _probs(b=3, k=4, h=5, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, h, w, generator=g).mul(2).softmax(1)


def _labels(b=3, k=4, h=5, w=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, (b, h, w), generator=g)


# --- split-conformal quantile ---------------------------------------------------------------------


@pytest.mark.parametrize("n,alpha", [(9, 0.1), (10, 0.1), (19, 0.05), (37, 0.2), (100, 0.1), (99, 0.01)])
def test_quantile_matches_brute_force(n, alpha):
    scores = torch.randn(n, generator=torch.Generator().manual_seed(n)).double()
    q = conformal.conformal_quantile(scores, alpha)
    # brute force: the smallest calibration score t with #{s <= t} >= (n + 1)(1 - alpha)
    brute = min(float(t) for t in scores if int((scores <= t).sum()) >= (n + 1) * (1 - alpha) - 1e-9)
    assert q == brute


def test_quantile_exact_rank_without_float_trouble():
    # (n + 1)(1 - alpha) = 100 * 0.9 = 90 exactly: the 90th smallest, not the 91st
    scores = torch.arange(1, 100, dtype=torch.float64)
    assert conformal.conformal_quantile(scores, 0.1) == 90.0


def test_quantile_coverage_on_exchangeable_data():
    g = torch.Generator().manual_seed(0)
    n, alpha, reps = 50, 0.1, 4000
    data = torch.rand(reps, n + 1, generator=g)
    k = math.ceil((n + 1) * (1 - alpha))
    q = data[:, :n].sort(1).values[:, k - 1]
    covered = (data[:, n] <= q).double().mean()
    # coverage lies in [1 - alpha, 1 - alpha + 1/(n + 1)], up to Monte Carlo error (sd about 0.005)
    assert 1 - alpha - 0.015 <= covered <= 1 - alpha + 1 / (n + 1) + 0.015
    assert conformal.conformal_quantile(data[0, :n].double(), alpha) == float(q[0])


def test_quantile_rejects_too_few_scores_and_bad_alpha():
    with pytest.raises(ValueError, match="at least 9"):
        conformal.conformal_quantile(torch.rand(8), 0.1)
    for alpha in (0, 1, -0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="alpha"):
            conformal.conformal_quantile(torch.rand(100), alpha)
    with pytest.raises(TypeError):
        conformal.conformal_quantile(torch.arange(100), 0.1)
    with pytest.raises(ValueError, match="one-dimensional"):
        conformal.conformal_quantile(torch.rand(10, 10), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        conformal.conformal_quantile(torch.tensor([float("nan")] * 20), 0.1)


# --- scores and sets ------------------------------------------------------------------------------


def test_lac_and_aps_scores_by_hand():
    p = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1)
    for y, lac, aps in [(0, 0.5, 0.5), (1, 0.7, 0.8), (2, 0.8, 1.0)]:
        label = torch.full((1, 1, 1), y)
        assert float(conformal.lac_scores(p, label)) == pytest.approx(lac)
        assert float(conformal.aps_scores(p, label)) == pytest.approx(aps)


def test_randomized_aps_lies_between_mass_above_and_mass_including():
    p, y = _probs(), _labels()
    g = torch.Generator().manual_seed(3)
    r = conformal.aps_scores(p, y, randomized=True, generator=g)
    full = conformal.aps_scores(p, y)
    py = p.gather(1, y[:, None])[:, 0]
    assert bool((r <= full + 1e-6).all()) and bool((r >= full - py - 1e-6).all())
    assert not torch.allclose(r, full)


def test_ignored_pixels_get_nan():
    p, y = _probs(), _labels()
    y[0, 0, 0] = IGNORE_INDEX
    assert torch.isnan(conformal.lac_scores(p, y)[0, 0, 0])
    assert torch.isnan(conformal.aps_scores(p, y)[0, 0, 0])
    assert not torch.isnan(conformal.lac_scores(p, y)[0, 0, 1])


def test_sets_hold_the_true_label_exactly_when_its_score_is_below_the_threshold():
    p, y = _probs(), _labels()
    for score, fn in [("lac", conformal.lac_scores), ("aps", conformal.aps_scores)]:
        t = 0.6
        sets = conformal.prediction_sets(p, t, score=score)
        inside = sets.gather(1, y[:, None])[:, 0]
        assert torch.equal(inside, fn(p, y) <= t)
    sizes = conformal.set_sizes(conformal.prediction_sets(p, 1.0))
    assert bool((sizes == 4).all())
    assert bool((conformal.set_sizes(conformal.prediction_sets(p, -0.1)) == 0).all())


def test_score_argument_errors():
    p, y = _probs(), _labels()
    with pytest.raises(ValueError, match="shape"):
        conformal.lac_scores(p[0], y)
    with pytest.raises(ValueError, match="labels must have shape"):
        conformal.lac_scores(p, y[:2])
    with pytest.raises(ValueError, match="labels must lie"):
        conformal.lac_scores(p, y + 4)
    with pytest.raises(TypeError, match="integer"):
        conformal.aps_scores(p, y.float())
    with pytest.raises(ValueError, match="sum to 1"):
        conformal.lac_scores(p * 0.5, y)
    with pytest.raises(ValueError, match="score"):
        conformal.prediction_sets(p, 0.5, score="raps")
    with pytest.raises(ValueError, match="threshold"):
        conformal.prediction_sets(p, float("inf"))
    with pytest.raises(TypeError, match="randomized"):
        conformal.aps_scores(p, y, randomized=1)
    with pytest.raises(TypeError, match="sets"):
        conformal.set_sizes(p)


# --- per-scene losses -----------------------------------------------------------------------------


def test_scene_losses_match_a_plain_loop():
    p, y = _probs(b=4, k=3), _labels(b=4, k=3)
    y[1] = 0  # a scene with no digit pixel
    y[2, 0, :3] = IGNORE_INDEX
    grid = torch.tensor([0.0, 0.1, 0.35, 0.5, 0.9, 1.0], dtype=torch.float64)
    mis = conformal.scene_losses(p, y, grid, batch_size=3)
    mis_dig = conformal.scene_losses(p, y, grid, pixels="digits")
    fnr = conformal.scene_losses(p, y, grid, loss="fnr", batch_size=1)
    for b in range(4):
        valid = y[b] != IGNORE_INDEX
        digit = valid & (y[b] > 0)
        py = p[b].gather(0, torch.where(valid, y[b], 0)[None])[0].double()
        for j, lam in enumerate(grid.tolist()):
            outside = (1 - py > lam)
            assert float(mis[b, j]) == pytest.approx(float(outside[valid].double().mean()))
            want = float(outside[digit].double().mean()) if digit.any() else 0.0
            assert float(mis_dig[b, j]) == pytest.approx(want)
            missed = p[b, 0].double() > lam
            want = float(missed[digit].double().mean()) if digit.any() else 0.0
            assert float(fnr[b, j]) == pytest.approx(want)
    assert bool((fnr[1] == 0).all())


def test_scene_losses_are_monotone_and_zero_at_one():
    p, y = _probs(b=6), _labels(b=6)
    grid = conformal.lambda_grid(101)
    for loss in conformal.LOSSES:
        curves = conformal.scene_losses(p, y, grid, loss=loss)
        assert bool((curves[:, 1:] <= curves[:, :-1]).all())
        assert bool((curves[:, -1] == 0).all())
        assert bool((curves >= 0).all() and (curves <= 1).all())


def test_scene_losses_argument_errors():
    p, y = _probs(), _labels()
    grid = conformal.lambda_grid(11)
    with pytest.raises(ValueError, match="loss"):
        conformal.scene_losses(p, y, grid, loss="iou")
    with pytest.raises(ValueError, match="pixels"):
        conformal.scene_losses(p, y, grid, pixels="boundary")
    with pytest.raises(ValueError, match="pixels applies"):
        conformal.scene_losses(p, y, grid, loss="fnr", pixels="digits")
    with pytest.raises(ValueError, match="increasing"):
        conformal.scene_losses(p, y, grid.flip(0))
    with pytest.raises(ValueError, match="lambdas in"):
        conformal.scene_losses(p, y, grid + 1)
    with pytest.raises(TypeError, match="grid"):
        conformal.scene_losses(p, y, [0.1, 0.2])
    with pytest.raises(ValueError, match="batch_size"):
        conformal.scene_losses(p, y, grid, batch_size=0)
    with pytest.raises(ValueError, match="steps"):
        conformal.lambda_grid(1)


# --- conformal risk control -----------------------------------------------------------------------


def _toy_curves(n_scenes: int, grid: torch.Tensor, seed: int) -> torch.Tensor:
    """Exchangeable toy scenes with continuous scores: loss(lambda) = share of a scene's 50 scores above lambda."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(n_scenes, 1, generator=g) * 0.6          # scenes differ: dependent pixels
    s = (torch.rand(n_scenes, 50, generator=g) * scale).double().sort(1).values
    at_most = torch.searchsorted(s, grid.expand(n_scenes, -1).contiguous(), right=True)
    return (50 - at_most).double() / 50


def test_crc_lambda_is_the_first_grid_point_meeting_the_bound():
    grid = conformal.lambda_grid(201)
    curves = _toy_curves(40, grid, 0)
    alpha, n = 0.1, 40
    lam = conformal.crc_lambda(curves, grid, alpha)
    bound = n / (n + 1) * curves.mean(0) + 1 / (n + 1)
    i = int((grid == lam).nonzero())
    assert bound[i] <= alpha and (i == 0 or bound[i - 1] > alpha)
    splits = conformal.random_splits(60, 40, 1, seed=0)
    all_curves = torch.cat([curves, _toy_curves(20, grid, 1)])
    out = conformal.split_risks(all_curves, grid, splits, alpha)
    assert float(out["lambda"][0]) == conformal.crc_lambda(all_curves[splits[0]], grid, alpha)


def test_mean_realised_loss_lies_in_the_theory_band():
    grid = conformal.lambda_grid(1001)
    n_cal, n_test, alpha, reps = 100, 200, 0.1, 400
    curves = _toy_curves(n_cal + n_test, grid, 2)
    splits = conformal.random_splits(n_cal + n_test, n_cal, reps, seed=0)
    out = conformal.split_risks(curves, grid, splits, alpha, evaluate={"again": curves})
    risk = out["risk"]
    mc = 3 * float(risk.std()) / math.sqrt(reps)
    # E[L(lambda_hat)] in [alpha - 2B/(n+1), alpha], up to Monte Carlo error; fixed scenes, fresh splits
    assert alpha - 2 / (n_cal + 1) - mc <= float(risk.mean()) <= alpha + mc
    assert torch.equal(out["risk_again"], risk)
    assert out["scene_loss"].shape == (reps, n_cal + n_test)
    assert bool(torch.isnan(out["scene_loss"][splits]).all())
    # fresh scenes every repetition, so the expectation is over scenes too
    fresh = torch.stack([_toy_curves(n_cal + 1, grid, 100 + r) for r in range(reps)])
    lam = torch.tensor([conformal.crc_lambda(c[:n_cal], grid, alpha) for c in fresh[:, :, :]])
    idx = torch.searchsorted(grid, lam)
    realised = fresh[torch.arange(reps), n_cal, idx]
    mc = 3 * float(realised.std()) / math.sqrt(reps)
    assert alpha - 2 / (n_cal + 1) - mc <= float(realised.mean()) <= alpha + mc


def test_crc_is_monotone_in_alpha():
    grid = conformal.lambda_grid(501)
    curves = _toy_curves(200, grid, 5)
    lams = [conformal.crc_lambda(curves, grid, a) for a in (0.2, 0.1, 0.05, 0.01)]
    assert lams == sorted(lams)


def test_crc_argument_errors():
    grid = conformal.lambda_grid(11)
    curves = _toy_curves(50, grid, 0)
    with pytest.raises(ValueError, match="at least 99"):
        conformal.crc_lambda(curves, grid, 0.01)
    with pytest.raises(ValueError, match="shape"):
        conformal.crc_lambda(curves[:, :5], grid, 0.1)
    with pytest.raises(ValueError, match=r"\[0, B"):
        conformal.crc_lambda(curves * 2, grid, 0.1)
    with pytest.raises(ValueError, match="bound"):
        conformal.crc_lambda(curves, grid, 0.1, bound=0)
    with pytest.raises(ValueError, match="no lambda"):
        conformal.crc_lambda(curves + 0.5 * (curves == 0), grid, 0.1)
    with pytest.raises(ValueError, match="n_calibration"):
        conformal.random_splits(10, 10, 5)
    with pytest.raises(ValueError, match="splits"):
        conformal.split_risks(curves, grid, torch.ones(3, 10, dtype=torch.bool), 0.1)
    with pytest.raises(ValueError, match="at least 19"):
        conformal.split_risks(curves, grid, conformal.random_splits(50, 10, 3), 0.05)


def test_random_splits_are_seeded_and_sized():
    a = conformal.random_splits(30, 12, 7, seed=4)
    assert a.shape == (7, 30) and bool((a.sum(1) == 12).all())
    assert torch.equal(a, conformal.random_splits(30, 12, 7, seed=4))
    assert not torch.equal(a, conformal.random_splits(30, 12, 7, seed=5))


def test_pooled_pixel_threshold_pools_and_drops_nan():
    s = torch.tensor([[0.1, float("nan")], [0.3, 0.2]] * 10)
    flat = s.flatten()
    assert conformal.pooled_pixel_threshold(s, 0.1) == conformal.conformal_quantile(flat[~flat.isnan()].double(), 0.1)
    with pytest.raises(TypeError):
        conformal.pooled_pixel_threshold(torch.ones(3, dtype=torch.long), 0.1)


def test_pooled_split_risks_match_the_exact_pooled_quantile_up_to_the_grid():
    p, y = _probs(b=8, k=3, h=8, w=8, seed=7), _labels(b=8, k=3, h=8, w=8, seed=8)
    y[0, 0, :4] = IGNORE_INDEX
    grid = torch.linspace(0, 1, 10001, dtype=torch.float64)
    losses = conformal.scene_losses(p, y, grid)
    counts = conformal.pixel_counts(y)
    assert counts.tolist() == [60] + [64] * 7
    splits = conformal.random_splits(8, 5, 3, seed=1)
    out = conformal.pooled_split_risks(losses, counts, grid, splits, 0.1)
    scores = conformal.lac_scores(p, y)
    for s in range(3):
        exact = conformal.pooled_pixel_threshold(scores[splits[s]], 0.1)
        assert exact <= float(out["lambda"][s]) < exact + 1.5e-4
        test = scores[~splits[s]]
        lam = float(out["lambda"][s])
        assert float(out["pixel_risk"][s]) == pytest.approx(float((test[~test.isnan()] > lam).double().mean()))
    with pytest.raises(ValueError, match="counts"):
        conformal.pooled_split_risks(losses, counts.double(), grid, splits, 0.1)
    with pytest.raises(ValueError, match="loss"):
        conformal.pixel_counts(y, loss="dice")


def _relabel(p: torch.Tensor, y: torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same scenes with class ``c`` renamed ``perm[c]`` (ignored pixels stay ignored)."""
    p2 = torch.empty_like(p)
    p2[:, perm] = p
    ignored = y == IGNORE_INDEX
    return p2, torch.where(ignored, y, perm[torch.where(ignored, 0, y)])


def test_scene_losses_take_the_background_class_from_the_argument():
    p, y = _probs(b=5, k=3), _labels(b=5, k=3)
    y[1, :2] = IGNORE_INDEX
    p2, y2 = _relabel(p, y, torch.tensor([2, 0, 1]))  # background 0 becomes class 2
    grid = conformal.lambda_grid(51)
    for loss, pixels in (("fnr", "all"), ("miscoverage", "digits"), ("miscoverage", "all")):
        want = conformal.scene_losses(p, y, grid, loss=loss, pixels=pixels)
        got = conformal.scene_losses(p2, y2, grid, loss=loss, pixels=pixels, background=2)
        assert torch.equal(got, want), (loss, pixels)
        counts = conformal.pixel_counts(y2, loss=loss, pixels=pixels, background=2)
        assert torch.equal(counts, conformal.pixel_counts(y, loss=loss, pixels=pixels))
    # class 0 taken as the background of the relabelled scenes gives other (wrong) losses
    assert not torch.equal(conformal.scene_losses(p2, y2, grid, loss="fnr"), conformal.scene_losses(p, y, grid, loss="fnr"))
    for bad in (3, -1, None, 1.0):
        with pytest.raises((ValueError, TypeError), match="background"):
            conformal.scene_losses(p2, y2, grid, loss="fnr", background=bad)
    # the miscoverage of all pixels needs no background class
    assert torch.equal(conformal.scene_losses(p2, y2, grid, background=None), conformal.scene_losses(p2, y2, grid))


def test_crc_lambda_from_the_mean_curve_matches_crc_lambda():
    grid = conformal.lambda_grid(201)
    curves = _toy_curves(40, grid, seed=3)
    for alpha in (0.05, 0.1, 0.3):
        want = conformal.crc_lambda(curves, grid, alpha)
        assert conformal.crc_lambda_from_mean(curves.sum(0) / 40, 40, grid, alpha) == want
    with pytest.raises(ValueError, match="needs at least"):
        conformal.crc_lambda_from_mean(curves.mean(0), 5, grid, 0.1)
    with pytest.raises(ValueError, match="mean_loss"):
        conformal.crc_lambda_from_mean(curves, 40, grid, 0.1)
