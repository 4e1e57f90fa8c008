"""Tests of utils.linearity: pixel margins, their input gradients and the first-order check of Goodfellow et al."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils import linearity


def _linear_model(classes: int = 2, kernel: int = 5) -> nn.Module:
    """A purely linear dense model: one convolution, no activation."""
    torch.manual_seed(0)
    return nn.Conv2d(1, classes, kernel, padding=kernel // 2).eval()


def _images(n: int = 3, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))


def test_choose_pixels_picks_true_pixels_deterministically():
    mask = torch.zeros(4, 8, 8, dtype=torch.bool)
    mask[0, 2, 3] = True
    mask[1, :, 5] = True
    mask[2:, 4:, :2] = True
    px = linearity.choose_pixels(mask, seed=0)
    assert px.shape == (4, 2) and px.dtype == torch.long
    assert px[0].tolist() == [2, 3]
    assert all(bool(mask[i, r, c]) for i, (r, c) in enumerate(px.tolist()))
    assert torch.equal(px, linearity.choose_pixels(mask, seed=0))
    many = torch.ones(64, 8, 8, dtype=torch.bool)
    assert not torch.equal(linearity.choose_pixels(many, 0), linearity.choose_pixels(many, 1))


def test_pixel_margin_by_hand():
    logits = torch.zeros(2, 3, 4, 4)
    logits[0, :, 1, 2] = torch.tensor([1.0, 4.0, 2.5])
    logits[1, :, 3, 0] = torch.tensor([-1.0, 0.0, 2.0])
    pixels = torch.tensor([[1, 2], [3, 0]])
    m = linearity.pixel_margin(logits, pixels, torch.tensor([1, 0]))
    assert torch.allclose(m, torch.tensor([1.5, -3.0]))


def test_margin_gradient_matches_finite_differences_and_restores_the_mode():
    model = _linear_model(classes=3).train()
    x = _images(2)
    pixels, classes = torch.tensor([[5, 6], [0, 15]]), torch.tensor([0, 2])
    m, g = linearity.margin_gradient(model, x, pixels, classes)
    assert model.training  # mode restored
    assert g.shape == x.shape and m.shape == (2,)
    step = torch.zeros_like(x)
    step[0, 0, 4, 7] = step[1, 0, 1, 14] = 1e-2
    with torch.no_grad():
        moved = linearity.pixel_margin(model.eval()(x + step), pixels, classes)
    assert torch.allclose(moved - m, (g * step).flatten(1).sum(1), atol=1e-4)


def test_window_mask_counts_and_borders():
    pixels = torch.tensor([[8, 8], [0, 0], [15, 3]])
    win = linearity.window_mask(pixels, 5, (16, 16))
    assert win.shape == (3, 1, 16, 16) and win.dtype == torch.bool
    assert win.flatten(1).sum(1).tolist() == [25, 9, 15]
    assert bool(win[0, 0, 6, 10]) and not bool(win[0, 0, 5, 8])
    assert linearity.window_mask(pixels, 31, (16, 16)).all()


def test_linear_model_is_exactly_first_order_and_l1_saturates_at_the_kernel():
    model = _linear_model(classes=2, kernel=5)
    x = _images(3)
    pixels = torch.tensor([[8, 8], [7, 4], [10, 11]])
    classes = torch.tensor([0, 1, 0])
    check = linearity.linearity_check(model, x, pixels, classes, eps=0.1, sizes=[1, 3, 5, 9, 31])
    # two classes and no activation: the margin is linear, so first order is exact
    assert torch.allclose(check.actual, check.predicted, atol=1e-4)
    assert torch.allclose(check.predicted, -0.1 * check.l1, atol=1e-6)
    assert torch.allclose(check.ratio, torch.ones(3, 5), atol=1e-3)
    # ||g||_1 grows with the window until it covers the 5x5 kernel, then stays
    assert bool((check.l1[:, 1] > check.l1[:, 0]).all()) and bool((check.l1[:, 2] > check.l1[:, 1]).all())
    assert torch.allclose(check.l1[:, 2], check.l1[:, 4]) and torch.allclose(check.l1[:, 3], check.l1[:, 4])
    assert check.pixels_changed[0].tolist() == [1, 9, 25, 81, 256]
    assert torch.equal(check.flipped, check.margin[:, None] + check.actual < 0)


def test_clipped_perturbation_predicts_with_the_clipped_step():
    model = _linear_model(classes=2)
    x = torch.zeros(2, 1, 16, 16)  # black: half of every sign step is clipped away
    pixels, classes = torch.tensor([[8, 8], [3, 3]]), torch.tensor([0, 1])
    check = linearity.linearity_check(model, x, pixels, classes, eps=0.2, sizes=[31], clip=True)
    assert torch.allclose(check.actual, check.predicted, atol=1e-4)
    assert bool((check.predicted.abs() < 0.2 * check.l1 - 1e-6).all())


def test_relu_network_is_close_to_first_order_for_small_eps(tiny_unet):
    x = _images(4, 32)
    pixels = torch.tensor([[16, 16], [3, 30], [20, 5], [31, 0]])
    logits = tiny_unet(x)
    classes = logits[torch.arange(4), :, pixels[:, 0], pixels[:, 1]].argmax(1)
    check = linearity.linearity_check(tiny_unet, x, pixels, classes, eps=1e-4, sizes=[1, 7, 63])
    assert torch.allclose(check.actual, check.predicted, rtol=0.05, atol=1e-6)
    assert bool((check.l1[:, 2] >= check.l1[:, 0]).all())


def test_bad_arguments_are_refused(tiny_unet):
    x = _images(2)
    px, cls = torch.tensor([[1, 1], [2, 2]]), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="mask"):
        linearity.choose_pixels(torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        linearity.choose_pixels(torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="seed"):
        linearity.choose_pixels(torch.ones(1, 4, 4, dtype=torch.bool), seed=-1)
    with pytest.raises(ValueError, match="pixels"):
        linearity.margin_gradient(tiny_unet, x, torch.tensor([[1, 1]]), cls)
    with pytest.raises(ValueError, match="pixels"):
        linearity.margin_gradient(tiny_unet, x, torch.tensor([[1, 1], [2, 16]]), cls)
    with pytest.raises(ValueError, match="classes"):
        linearity.margin_gradient(tiny_unet, x, px, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="classes"):
        linearity.margin_gradient(tiny_unet, x, px, torch.tensor([0, 99]))
    with pytest.raises(TypeError, match="images"):
        linearity.margin_gradient(tiny_unet, x.numpy(), px, cls)
    with pytest.raises(ValueError, match="size"):
        linearity.window_mask(px, 4, (16, 16))
    with pytest.raises(ValueError, match="eps"):
        linearity.linearity_check(tiny_unet, x, px, cls, eps=0.0, sizes=[1])
    with pytest.raises(ValueError, match="sizes"):
        linearity.linearity_check(tiny_unet, x, px, cls, eps=0.1, sizes=[])
    with pytest.raises(ValueError, match="logits"):
        linearity.pixel_margin(torch.zeros(2, 3, 4), px, cls)
