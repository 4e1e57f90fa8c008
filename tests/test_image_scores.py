"""Tests of utils.metrics.image_scores: one score per image from per-pixel scores."""

from __future__ import annotations

import pytest
import torch

from utils import metrics


def test_mean_is_the_per_image_mean():
    score = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    out = metrics.image_scores(score)
    assert out.dtype == torch.float64 and out.shape == (2,)
    assert out.tolist() == [5.5, 17.5]
    assert torch.equal(metrics.image_scores(score[:, None]), out)  # any trailing pixel dimensions


def test_topk_is_the_mean_of_the_k_largest():
    score = torch.zeros(3, 4, 4)
    score[0, 0, 0], score[0, 1, 1] = 1.0, 0.5
    score[1] = 0.25
    out = metrics.image_scores(score, reduce="topk", k=2)
    assert out.tolist() == [0.75, 0.25, 0.0]
    assert torch.allclose(metrics.image_scores(score, reduce="topk", k=16), metrics.image_scores(score))
    # a small confident object: top-k finds it where the mean hardly moves
    assert metrics.image_scores(score, "topk", k=1)[0] > metrics.image_scores(score, "topk", k=1)[1]
    assert metrics.image_scores(score)[0] < metrics.image_scores(score)[1]


def test_image_scores_rank_images_with_auroc():
    g = torch.Generator().manual_seed(0)
    inliers = 0.1 * torch.rand(50, 8, 8, generator=g)
    outliers = 0.1 * torch.rand(20, 8, 8, generator=g) + 0.05
    scores = metrics.image_scores(torch.cat([inliers, outliers]))
    positive = torch.arange(70) >= 50
    assert metrics.auroc(scores, positive) > 0.99


def test_bad_arguments_are_refused():
    score = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="reduce"):
        metrics.image_scores(score, reduce="max")
    with pytest.raises(ValueError, match="k"):
        metrics.image_scores(score, reduce="topk")
    with pytest.raises(ValueError, match="k"):
        metrics.image_scores(score, reduce="topk", k=0)
    with pytest.raises(ValueError, match="k"):
        metrics.image_scores(score, reduce="topk", k=17)
    with pytest.raises(ValueError, match="k"):
        metrics.image_scores(score, k=3)
    with pytest.raises(TypeError, match="score"):
        metrics.image_scores(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="score"):
        metrics.image_scores(score.numpy())
    with pytest.raises(ValueError, match="score"):
        metrics.image_scores(torch.rand(4))
    with pytest.raises(ValueError, match="NaN"):
        metrics.image_scores(torch.full((2, 3), float("nan")))
