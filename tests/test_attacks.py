"""Unit tests of utils.attacks: FGSM and PGD against closed-form gradients, budgets, model hygiene, errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils.attacks import FoolingResult, dense_loss, fgsm, fooling_images, pgd
from utils.config import IGNORE_INDEX
from utils.models import UNet, forward_logits

# --- models with a known input gradient ------------------------------------------------------------

C, K, H, W = 3, 4, 6, 6


class PixelLinear(nn.Module):
    """A per-pixel linear "segmentation model": logits ``z = A x + b`` at every pixel (a 1x1 conv)."""

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.randn(K, C, generator=g, dtype=dtype) * 2)
        self.b = nn.Parameter(torch.randn(K, generator=g, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.A[:, :, None, None], self.b)

    def input_grad(self, x: torch.Tensor, y: torch.Tensor, ignore: int = IGNORE_INDEX) -> torch.Tensor:
        """dL/dx = A^T (softmax(z) - onehot(y)) per pixel, zero where y is ignored."""
        A, b = self.A.detach().double(), self.b.detach().double()
        z = torch.einsum("kc,bchw->bkhw", A, x.double()) + b[None, :, None, None]
        keep = y != ignore
        onehot = F.one_hot(torch.where(keep, y, 0), K).permute(0, 3, 1, 2).double()
        resid = (z.softmax(1) - onehot) * keep[:, None]
        return torch.einsum("kc,bkhw->bchw", A, resid)


class DenseLinear(nn.Module):
    """A linear map of the whole flattened image to ``(B, K, H, W)`` logits: every pixel sees every pixel."""

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.M = nn.Parameter(torch.randn(K * H * W, C * H * W, generator=g, dtype=dtype) / 4)
        self.b = nn.Parameter(torch.randn(K * H * W, generator=g, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) @ self.M.T + self.b).view(x.shape[0], K, H, W)

    def input_grad(self, x: torch.Tensor, y: torch.Tensor, ignore: int = IGNORE_INDEX) -> torch.Tensor:
        M, b = self.M.detach().double(), self.b.detach().double()
        z = (x.flatten(1).double() @ M.T + b).view(x.shape[0], K, H, W)
        keep = y != ignore
        onehot = F.one_hot(torch.where(keep, y, 0), K).permute(0, 3, 1, 2).double()
        resid = ((z.softmax(1) - onehot) * keep[:, None]).flatten(1)
        return (resid @ M).view_as(x)


class DictOut(nn.Module):
    """torchvision-style wrapper: forward returns ``{"out": logits, "aux": ...}``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.inner(x)
        return {"aux": torch.zeros_like(out), "out": out}


def _linear_batch(seed: int = 1, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, C, H, W, generator=g, dtype=dtype)
    x[0, 0, 0, :3] = 0.0  # some pixels on the box's edges so that clipping matters
    x[1, 1, 2, :3] = 1.0
    y = torch.randint(0, K, (2, H, W), generator=g)
    y[0, 1, 1] = y[1, 4, 2] = IGNORE_INDEX
    return x, y


def _nonzero_grad(g: torch.Tensor, y: torch.Tensor) -> None:
    """Guard of the closed-form tests: no gradient entry so small that float32 could flip its sign."""
    assert g.permute(1, 0, 2, 3)[:, y != IGNORE_INDEX].abs().min() > 1e-4
    assert g[g != 0].abs().min() > 1e-4


def test_dense_loss_is_the_summed_cross_entropy_of_kept_pixels():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, K, 3, 5, generator=g)
    y = torch.randint(0, K, (2, 3, 5), generator=g)
    y[0, 1, 2] = IGNORE_INDEX
    logp = logits.log_softmax(1)
    expected = -sum(
        float(logp[b, y[b, i, j], i, j])
        for b in range(2) for i in range(3) for j in range(5)
        if y[b, i, j] != IGNORE_INDEX
    )
    assert float(dense_loss(logits, y)) == pytest.approx(expected, rel=1e-6)
    assert float(dense_loss(logits.half(), y)) == pytest.approx(expected, rel=1e-2)
    assert dense_loss(logits.half(), y).dtype == torch.float32
    assert float(dense_loss(logits, torch.full_like(y, IGNORE_INDEX))) == 0.0


# --- FGSM against the closed form ----------------------------------------------------------------


@pytest.mark.parametrize("model_cls", [PixelLinear, DenseLinear])
@pytest.mark.parametrize("dict_out", [False, True])
def test_fgsm_matches_closed_form_gradient(model_cls, dict_out):
    inner = model_cls()
    model = DictOut(inner) if dict_out else inner
    x, y = _linear_batch()
    g = inner.input_grad(x, y)
    _nonzero_grad(g, y)
    eps = 0.1
    expected = (x + eps * g.sign()).clamp(0, 1)
    out = fgsm(model, x, y, eps)
    assert torch.equal(out, expected)
    assert ((x + eps * g.sign() > 1) | (x + eps * g.sign() < 0)).any()  # clipping was exercised
    targeted = fgsm(model, x, y, eps, targeted=True)
    assert torch.equal(targeted, (x - eps * g.sign()).clamp(0, 1))
    assert not torch.equal(out, targeted)


def test_fgsm_leaves_ignored_pixels_of_a_pixelwise_model_alone():
    model = PixelLinear()
    x, y = _linear_batch()
    out = fgsm(model, x, y, 0.2)
    ignored = (y == IGNORE_INDEX)[:, None].expand_as(x)
    assert torch.equal(out[ignored], x[ignored])
    assert (out[~ignored] != x[~ignored]).any()
    # a custom ignore index behaves like the default one
    y7 = torch.where(y == IGNORE_INDEX, torch.full_like(y, 7), y)
    assert torch.equal(fgsm(model, x, y7, 0.2, ignore_index=7), out)
    # and any integer label dtype gives the same result
    assert torch.equal(fgsm(model, x, y.to(torch.uint8), 0.2), out)


def test_untargeted_fgsm_raises_the_loss_of_a_linear_model():
    # the cross-entropy of a linear model is convex in x, so a step along sign(grad) cannot lower it
    model = DenseLinear(seed=3)
    x, y = _linear_batch(seed=4)
    adv_x = fgsm(model, x, y, 0.05)
    with torch.no_grad():
        clean = dense_loss(model(x), y)
        adv = dense_loss(model(adv_x), y)
    assert adv > clean + 1e-3


def test_attacks_work_under_no_grad():
    model = PixelLinear()
    x, y = _linear_batch()
    expected = fgsm(model, x, y, 0.1)
    with torch.no_grad():
        assert torch.equal(fgsm(model, x, y, 0.1), expected)


def test_pgd_one_step_without_focus_equals_fgsm():
    model = DenseLinear()
    x, y = _linear_batch()
    eps = 0.07
    expected = fgsm(model, x, y, eps)
    assert torch.equal(pgd(model, x, y, eps=eps, steps=1, step_size=eps, focus=False), expected)
    expected_t = fgsm(model, x, y, eps, targeted=True)
    assert torch.equal(pgd(model, x, target=y, eps=eps, steps=1, step_size=eps, focus=False), expected_t)


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_focus_drops_pixels_already_fooled(targeted):
    model = DenseLinear(seed=5)
    x, y = _linear_batch(seed=6)
    with torch.no_grad():
        pred = model(x).argmax(1)
    fooled = (pred == y) if targeted else (pred != y)
    assert fooled.any() and (~fooled & (y != IGNORE_INDEX)).any()
    y_focus = y.masked_fill(fooled, IGNORE_INDEX)
    g = model.input_grad(x, y_focus)
    _nonzero_grad(g, y_focus)
    step = 0.03
    sign = -1.0 if targeted else 1.0
    expected = (x + sign * step * g.sign()).clamp(0, 1)
    kwargs = dict(target=y) if targeted else dict(labels=y)
    out = pgd(model, x, eps=0.5, steps=1, step_size=step, focus=True, **kwargs)
    assert torch.equal(out, expected)
    plain = pgd(model, x, eps=0.5, steps=1, step_size=step, focus=False, **kwargs)
    assert not torch.equal(out, plain)
    assert torch.equal(plain, (x + sign * step * model.input_grad(x, y).sign()).clamp(0, 1))


# --- budgets, ranges, shapes ---------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.01, 8 / 255, 0.3])
def test_attacks_stay_in_the_budget_and_the_unit_box(eps):
    model = DenseLinear(dtype=torch.float32)
    x, y = _linear_batch(dtype=torch.float32)
    outs = [
        fgsm(model, x, y, eps),
        fgsm(model, x, y, eps, targeted=True),
        pgd(model, x, y, eps=eps, steps=7, step_size=eps / 2, random_start=True),
        pgd(model, x, target=y, eps=eps, steps=7, step_size=0.5),  # step bigger than the ball: projection
    ]
    for out in outs:
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        assert not out.requires_grad
        assert (out - x).abs().max() <= eps + 1e-6
        assert out.min() >= 0 and out.max() <= 1
        assert out.data_ptr() != x.data_ptr()
    assert (outs[3] - x).abs().max() > eps - 1e-6  # PGD does use the budget


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attacks_keep_the_dtype(dtype):
    model = PixelLinear(dtype=dtype)
    x, y = _linear_batch(dtype=dtype)
    assert fgsm(model, x, y, 0.1).dtype == dtype
    assert pgd(model, x, y, eps=0.1, steps=2, random_start=True).dtype == dtype
    assert fooling_images(model, x, 1, steps=2).images.dtype == dtype


def test_zero_budget_returns_the_input():
    model = DenseLinear()
    x, y = _linear_batch()
    x_before = x.clone()
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    assert torch.equal(fgsm(model, x, y, 0, targeted=True), x)
    assert torch.equal(pgd(model, x, y, eps=0.0, steps=3, step_size=0.1, random_start=True), x)
    assert torch.equal(pgd(model, x, target=y, eps=0.0, steps=3), x)
    assert torch.equal(x, x_before)  # the input itself is never modified


def test_inputs_are_not_modified_in_place():
    model = DenseLinear()
    x, y = _linear_batch()
    x.requires_grad_(True)
    x_before, y_before = x.detach().clone(), y.clone()
    fgsm(model, x, y, 0.1)
    pgd(model, x, y, eps=0.1, steps=2, random_start=True)
    fooling_images(model, x, 2, steps=2)
    assert torch.equal(x.detach(), x_before) and torch.equal(y, y_before)
    assert x.grad is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_attacks_return_tensors_on_the_input_device():
    model = PixelLinear(dtype=torch.float32).cuda()
    x, y = _linear_batch(dtype=torch.float32)
    x = x.cuda()
    for out in (fgsm(model, x, y, 0.1), pgd(model, x, y, eps=0.1, steps=2, random_start=True)):
        assert out.device == x.device
    res = fooling_images(model, x, 1, steps=2)
    assert res.images.device == x.device


# --- a small U-Net that reacts to its input --------------------------------------------------------


@pytest.fixture(scope="module")
def sensitive_unet(small_val) -> UNet:
    """The tiny seeded U-Net with BatchNorm statistics calibrated on real scenes, so that it reacts to input.

    (With fresh running statistics the untrained net's output barely depends on the image.)
    """
    torch.manual_seed(0)
    model = UNet(width=4)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one pass sets the statistics
    model.train()
    with torch.no_grad():
        model(small_val.images)
    return model.eval()


@pytest.fixture(scope="module")
def scenes(small_val) -> tuple[torch.Tensor, torch.Tensor]:
    return small_val.images[:2].clone(), small_val.labels[:2].clone()


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(dense_loss(forward_logits(model, x), y))


@pytest.mark.parametrize("focus", [False, True])
def test_untargeted_pgd_raises_the_loss(sensitive_unet, scenes, focus):
    x, y = scenes
    clean = _loss(sensitive_unet, x, y)
    adv = pgd(sensitive_unet, x, y, eps=8 / 255, steps=5, focus=focus)
    assert _loss(sensitive_unet, adv, y) > clean * 1.005
    one = fgsm(sensitive_unet, x, y, 8 / 255)
    assert _loss(sensitive_unet, one, y) > clean


@pytest.mark.parametrize("focus", [False, True])
def test_targeted_pgd_lowers_the_target_loss_more_with_more_steps(sensitive_unet, scenes, focus):
    x, _ = scenes
    target = torch.full((2, 64, 64), 3)
    target[:, :8] = IGNORE_INDEX  # ignored pixels are allowed in a target map
    clean = _loss(sensitive_unet, x, target)
    few = _loss(sensitive_unet, pgd(sensitive_unet, x, target=target, eps=8 / 255, steps=2, focus=focus), target)
    many = _loss(sensitive_unet, pgd(sensitive_unet, x, target=target, eps=8 / 255, steps=8, focus=focus), target)
    assert few < clean * 0.995
    assert many <= few * 1.001  # focus may wobble a little, but more steps must not undo the attack
    assert many < clean * 0.99


def test_attacks_work_on_a_dict_returning_model(sensitive_unet, scenes):
    x, y = scenes
    wrapped = DictOut(sensitive_unet)
    assert torch.equal(fgsm(wrapped, x, y, 4 / 255), fgsm(sensitive_unet, x, y, 4 / 255))
    assert torch.equal(pgd(wrapped, x, y, eps=4 / 255, steps=2), pgd(sensitive_unet, x, y, eps=4 / 255, steps=2))
    a = fooling_images(wrapped, x, 1, steps=3)
    b = fooling_images(sensitive_unet, x, 1, steps=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.target_share, b.target_share)


# --- determinism ---------------------------------------------------------------------------------


def test_attacks_are_deterministic(sensitive_unet, scenes):
    x, y = scenes
    assert torch.equal(fgsm(sensitive_unet, x, y, 0.02), fgsm(sensitive_unet, x, y, 0.02))
    rng = torch.get_rng_state()
    a = pgd(sensitive_unet, x, y, eps=0.03, steps=2, random_start=True, seed=1)
    b = pgd(sensitive_unet, x, y, eps=0.03, steps=2, random_start=True, seed=1)
    c = pgd(sensitive_unet, x, y, eps=0.03, steps=2, random_start=True, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), rng)  # the random start has its own generator
    # without a random start the seed plays no part
    d = pgd(sensitive_unet, x, y, eps=0.03, steps=2, seed=1)
    assert torch.equal(d, pgd(sensitive_unet, x, y, eps=0.03, steps=2, seed=2))
    assert not torch.equal(d, a)


def test_random_start_is_uniform_in_the_ball():
    # with step_size 0 PGD returns its random start
    x = torch.full((1, 1, 64, 64), 0.5)
    torch.manual_seed(0)
    model = nn.Conv2d(1, K, 1)
    start = pgd(model, x, torch.zeros(1, 64, 64, dtype=torch.long), eps=0.1, steps=1, step_size=0.0, random_start=True)
    d = (start - x).flatten()
    assert d.abs().max() <= 0.1 + 1e-6
    assert d.min() < -0.09 and d.max() > 0.09
    assert abs(float(d.mean())) < 0.01  # mean of U(-0.1, 0.1) over 4096 pixels: sd ~ 0.0009
    assert abs(float(d.abs().mean()) - 0.05) < 0.005


# --- the model is left as it was -----------------------------------------------------------------


def _snapshot(model: nn.Module):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [(name, m.training) for name, m in model.named_modules()],
    )


def _run_all_attacks(model, x, y):
    outs = [
        fgsm(model, x, y, 0.03),
        pgd(model, x, y, eps=0.03, steps=2, random_start=True),
        pgd(model, x, target=torch.full_like(y, 2), eps=0.03, steps=2),
        fooling_images(model, x, 1, steps=2).images,
    ]
    return outs


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_attacks_leave_the_model_untouched(sensitive_unet, scenes, mode):
    model = copy.deepcopy(sensitive_unet)
    if mode == "train":
        model.train()
    elif mode == "mixed":  # per-module flags must come back, not just the top-level one
        model.eval()
        model.drop.train()
        model.down[1][1].train()
    x, y = scenes
    state, flags = _snapshot(model)
    outs = _run_all_attacks(model, x, y)
    new_state, new_flags = _snapshot(model)
    assert new_flags == flags
    assert state.keys() == new_state.keys()
    for k in state:  # parameters and BatchNorm buffers (running stats, num_batches_tracked) bit-identical
        assert torch.equal(state[k], new_state[k]), k
    assert all(p.grad is None for p in model.parameters())
    # the attacks ran the model in eval mode: a train-mode model (dropout, batch statistics) gives the
    # same images as the eval-mode one
    if mode != "eval":
        ref = _run_all_attacks(sensitive_unet, x, y)
        for a, b in zip(outs, ref):
            assert torch.equal(a, b)


def test_attacks_leave_existing_parameter_grads_alone(sensitive_unet, scenes):
    model = copy.deepcopy(sensitive_unet)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    _run_all_attacks(model, *scenes)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in model.parameters())


def test_model_flags_are_restored_when_the_attack_fails():
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Dropout2d(0.5), nn.Conv2d(3, K, 1)).train()
    x = torch.rand(1, 1, 4, 4)
    bad = torch.full((1, 4, 4), K + 3)  # out of range for the model: cross-entropy raises inside the attack
    with pytest.raises((IndexError, RuntimeError, ValueError)):
        fgsm(model, x, bad, 0.1)
    assert all(m.training for m in model.modules())


# --- fooling images ------------------------------------------------------------------------------


def _share_and_conf(model, images, cls, region):
    with torch.no_grad():
        probs = forward_logits(model, images).softmax(1)
    cls = torch.as_tensor(cls).expand(images.shape[0])
    hit = (probs.argmax(1) == cls[:, None, None]) & region
    share = hit.flatten(1).sum(1).double() / region.flatten(1).sum(1)
    conf = torch.stack([probs[i].amax(0)[region[i]].double().mean() for i in range(images.shape[0])])
    p_target = torch.stack([probs[i, cls[i]][region[i]].double().mean() for i in range(images.shape[0])])
    return share, conf, p_target


def test_fooling_images_raise_the_target_and_report_consistently(sensitive_unet, scenes):
    x, _ = scenes
    cls = torch.tensor([1, 0])  # class 1 is reachable on this model in ~20 steps, class 0 is not in 30
    budget = 30
    full = torch.ones(2, 64, 64, dtype=torch.bool)
    res = fooling_images(sensitive_unet, x, cls, steps=budget, step_size=2 / 255, min_share=0.5, min_confidence=0.0)
    assert isinstance(res, FoolingResult)
    assert res.images.shape == x.shape and res.images.dtype == x.dtype
    assert res.images.min() >= 0 and res.images.max() <= 1
    assert res.steps.shape == res.reached.shape == res.target_share.shape == res.confidence.shape == (2,)
    assert res.reached.dtype == torch.bool
    assert res.reached.tolist() == [True, False]
    assert all(0 < s <= budget for s in res.steps.tolist())
    assert int(res.steps[1]) == budget and int(res.steps[0]) < budget
    # the reported statistics are those of the returned images
    share, conf, p_target = _share_and_conf(sensitive_unet, res.images, cls, full)
    assert torch.allclose(res.target_share.double(), share, atol=1e-6)
    assert torch.allclose(res.confidence.double(), conf, atol=1e-5)
    assert bool((res.target_share[res.reached] >= 0.5).all())
    # the target's share and mean probability rose from the initial images
    share0, _, p0 = _share_and_conf(sensitive_unet, x, cls, full)
    assert (share > share0).all() and (p_target > p0).all()
    # a reached image stopped at its step: with that exact budget the same image comes out
    s0 = int(res.steps[0])
    again = fooling_images(sensitive_unet, x, cls, steps=s0, step_size=2 / 255, min_share=0.5, min_confidence=0.0)
    assert torch.equal(again.images[0], res.images[0])


@pytest.mark.parametrize("min_share, min_confidence", [(0.5, 0.0), (0.0, 0.99), (0.3, 0.18)])
def test_fooling_images_reached_implies_both_thresholds(sensitive_unet, scenes, min_share, min_confidence):
    x, _ = scenes
    res = fooling_images(
        sensitive_unet, x, 1, steps=12, step_size=3 / 255, min_share=min_share, min_confidence=min_confidence
    )
    for i in range(2):
        assert int(res.steps[i]) <= 12
        if res.reached[i]:
            assert res.target_share[i] >= min_share and res.confidence[i] >= min_confidence
        else:
            assert int(res.steps[i]) == 12
            assert res.target_share[i] < min_share or res.confidence[i] < min_confidence


def test_fooling_images_that_already_qualify_do_not_move(sensitive_unet, scenes):
    x, _ = scenes
    res = fooling_images(sensitive_unet, x, 5, steps=10, min_share=0.0, min_confidence=0.0)
    assert res.reached.all() and res.steps.tolist() == [0, 0]
    assert torch.equal(res.images, x)


def test_fooling_images_region_statistics(sensitive_unet, scenes):
    x, _ = scenes
    region = torch.zeros(2, 64, 64, dtype=torch.bool)
    region[0, 8:40, 8:40] = True
    region[1, 30:50, 10:60] = True
    res = fooling_images(sensitive_unet, x, 9, region=region, steps=15, step_size=2 / 255, min_share=1.0)
    share, conf, p_target = _share_and_conf(sensitive_unet, res.images, 9, region)
    assert torch.allclose(res.target_share.double(), share, atol=1e-6)
    assert torch.allclose(res.confidence.double(), conf, atol=1e-5)
    share0, _, p0 = _share_and_conf(sensitive_unet, x, 9, region)
    assert (p_target > p0).all() and (share >= share0).all()
    # the region statistics differ from the whole-image ones, so the region was honoured
    whole, _, _ = _share_and_conf(sensitive_unet, res.images, 9, torch.ones_like(region))
    assert not torch.allclose(whole, share)


def test_fooling_images_mask_keeps_the_pixels_outside_it(sensitive_unet, scenes):
    x, _ = scenes
    square = torch.zeros(2, 64, 64, dtype=torch.bool)
    square[:, 20:44, 20:44] = True
    res = fooling_images(sensitive_unet, x, 9, region=square, mask=square, steps=15, step_size=2 / 255,
                         min_share=1.0)
    outside = ~square[:, None].expand_as(x)
    # outside the mask every input pixel keeps its initial value exactly ...
    assert torch.equal(res.images[outside], x[outside])
    # ... inside it the ascent did change the image, and raised the target there
    assert (res.images != x)[~outside].any()
    _, _, p_target = _share_and_conf(sensitive_unet, res.images, 9, square)
    _, _, p0 = _share_and_conf(sensitive_unet, x, 9, square)
    assert (p_target > p0).all()
    # without the mask the same ascent also changes pixels outside the square
    free = fooling_images(sensitive_unet, x, 9, region=square, steps=15, step_size=2 / 255, min_share=1.0)
    assert (free.images != x)[outside].any()


def test_fooling_images_full_mask_is_the_default(sensitive_unet, scenes):
    x, _ = scenes
    full = torch.ones(2, 64, 64, dtype=torch.bool)
    a = fooling_images(sensitive_unet, x, 1, steps=4, step_size=2 / 255)
    b = fooling_images(sensitive_unet, x, 1, mask=full, steps=4, step_size=2 / 255)
    assert torch.equal(a.images, b.images)


# --- argument checks -----------------------------------------------------------------------------


@pytest.fixture
def lin_batch():
    model = PixelLinear(dtype=torch.float32)
    x, y = _linear_batch(dtype=torch.float32)
    return model, x, y


@pytest.mark.parametrize("eps, error", [(-0.01, ValueError), (1.5, ValueError), (math.nan, ValueError),
                                        ("0.1", TypeError), (None, TypeError), (True, TypeError),
                                        (torch.tensor(0.1), TypeError)])
def test_bad_eps_is_rejected(lin_batch, eps, error):
    model, x, y = lin_batch
    with pytest.raises(error, match="eps"):
        fgsm(model, x, y, eps)
    with pytest.raises(error, match="eps"):
        pgd(model, x, y, eps=eps)
    with pytest.raises(error, match="step_size"):
        pgd(model, x, y, eps=0.1, step_size=eps)
    with pytest.raises(error, match="step_size"):
        fooling_images(model, x, 1, step_size=eps)


@pytest.mark.parametrize("steps", [0, -1, 2.0, "3", None, True])
def test_bad_steps_are_rejected(lin_batch, steps):
    model, x, y = lin_batch
    with pytest.raises((TypeError, ValueError), match="steps"):
        pgd(model, x, y, steps=steps)
    with pytest.raises((TypeError, ValueError), match="steps"):
        fooling_images(model, x, 1, steps=steps)


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda y: y[:, :, :-1], ValueError),  # wrong H, W
        (lambda y: y[:1], ValueError),  # wrong batch
        (lambda y: y[0], ValueError),  # missing batch dimension
        (lambda y: y[:, None], ValueError),  # (B, 1, H, W)
        (lambda y: y.float(), TypeError),
        (lambda y: y == 1, TypeError),
        (lambda y: y.tolist(), TypeError),
    ],
)
def test_bad_labels_are_rejected(lin_batch, make, error):
    model, x, y = lin_batch
    bad = make(y)
    with pytest.raises(error, match="labels"):
        fgsm(model, x, bad, 0.1)
    with pytest.raises(error, match="labels"):
        pgd(model, x, bad)
    with pytest.raises(error, match="target"):
        pgd(model, x, target=bad)


def test_pgd_needs_exactly_one_of_labels_and_target(lin_batch):
    model, x, y = lin_batch
    with pytest.raises(ValueError, match="exactly one"):
        pgd(model, x)
    with pytest.raises(ValueError, match="exactly one"):
        pgd(model, x, y, target=y)


@pytest.mark.parametrize("low, high", [(-0.1, 0.5), (0.5, 1.01), (0.0, math.inf)])
def test_images_outside_the_unit_box_are_rejected(lin_batch, low, high):
    model, x, y = lin_batch
    x = x.clone()
    x[0, 0, 0, 0], x[1, 2, 3, 4] = low, high
    for call in (lambda: fgsm(model, x, y, 0.1), lambda: pgd(model, x, y), lambda: fooling_images(model, x, 1)):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            call()


def test_nan_images_are_rejected(lin_batch):
    model, x, y = lin_batch
    x = x.clone()
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError):
        fgsm(model, x, y, 0.1)


@pytest.mark.parametrize("images, error", [("img", TypeError), (torch.zeros(C, H, W), ValueError),
                                           (torch.zeros(2, C, H, W, dtype=torch.long), TypeError)])
def test_bad_image_tensors_are_rejected(lin_batch, images, error):
    model, _, y = lin_batch
    with pytest.raises(error):
        fgsm(model, images, y, 0.1)
    with pytest.raises(error):
        pgd(model, images, y)
    with pytest.raises(error):
        fooling_images(model, images, 1)


def test_non_module_models_are_rejected(lin_batch):
    model, x, y = lin_batch
    fn = model.forward  # callable, but not an nn.Module
    with pytest.raises(TypeError, match="Module"):
        fgsm(fn, x, y, 0.1)
    with pytest.raises(TypeError, match="Module"):
        pgd(fn, x, y)
    with pytest.raises(TypeError, match="Module"):
        fooling_images(fn, x, 1)


@pytest.mark.parametrize("target_class", [torch.tensor([1, 2, 3]), torch.tensor([[1], [2]]), torch.tensor([1]),
                                          2.0, torch.tensor([1.0, 2.0])])
def test_fooling_images_rejects_bad_target_class(lin_batch, target_class):
    model, x, _ = lin_batch
    with pytest.raises(ValueError, match="target_class"):
        fooling_images(model, x, target_class)


def test_fooling_images_accepts_int_and_per_image_target_class(lin_batch):
    model, x, _ = lin_batch
    a = fooling_images(model, x, 2, steps=3)
    b = fooling_images(model, x, torch.tensor(2), steps=3)
    c = fooling_images(model, x, torch.tensor([2, 2]), steps=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.images, c.images)
    d = fooling_images(model, x, torch.tensor([2, 3]), steps=3)
    assert torch.equal(d.images[0], a.images[0]) and not torch.equal(d.images[1], a.images[1])


@pytest.mark.parametrize(
    "region",
    [
        torch.ones(2, H, W + 1, dtype=torch.bool),
        torch.ones(1, H, W, dtype=torch.bool),
        torch.ones(2, 1, H, W, dtype=torch.bool),
        torch.ones(2, H, W, dtype=torch.uint8),
        torch.ones(2, H, W),
        [[True] * W] * H,
    ],
)
def test_fooling_images_rejects_bad_regions(lin_batch, region):
    model, x, _ = lin_batch
    with pytest.raises((TypeError, ValueError), match="region"):
        fooling_images(model, x, 1, region=region)


@pytest.mark.parametrize(
    "mask",
    [torch.ones(2, H, W + 1, dtype=torch.bool), torch.ones(2, H, W, dtype=torch.uint8), torch.ones(2, H, W)],
)
def test_fooling_images_rejects_bad_masks(lin_batch, mask):
    model, x, _ = lin_batch
    with pytest.raises((TypeError, ValueError), match="mask"):
        fooling_images(model, x, 1, mask=mask)


@pytest.mark.parametrize(("arg", "empty", "message"), [("mask", 0, "mask must let"), ("region", 1, "at least one pixel")])
def test_fooling_images_rejects_a_mask_or_region_empty_in_one_image(lin_batch, arg, empty, message):
    model, x, _ = lin_batch
    chosen = torch.ones(2, H, W, dtype=torch.bool)
    chosen[empty] = False
    with pytest.raises(ValueError, match=message):
        fooling_images(model, x, 1, **{arg: chosen})


@pytest.mark.parametrize("name", ["min_share", "min_confidence"])
@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan])
def test_fooling_images_rejects_thresholds_outside_the_unit_interval(lin_batch, name, value):
    model, x, _ = lin_batch
    with pytest.raises(ValueError, match=name):
        fooling_images(model, x, 1, **{name: value})


def test_fooling_images_reject_a_class_the_model_does_not_have(lin_batch):
    model, x, _ = lin_batch
    with pytest.raises(ValueError, match="target_class"):
        fooling_images(model, x, 10**6, steps=1)
    with pytest.raises(ValueError, match="target_class"):
        fooling_images(model, x, -1, steps=1)


def test_fooling_images_record_when_the_share_was_first_reached(lin_batch):
    model, x, _ = lin_batch
    res = fooling_images(model, x, 1, steps=30, step_size=0.05, min_share=0.5, min_confidence=1.0)
    for k in range(len(x)):
        first = int(res.steps_to_share[k])
        assert -1 <= first <= 30
        if first >= 0:  # re-running for exactly that many steps reaches the share at its last step
            again = fooling_images(model, x[k : k + 1], 1, steps=max(first, 1), step_size=0.05, min_share=0.5, min_confidence=0.0)
            assert int(again.steps_to_share[0]) == first
        else:
            assert float(res.target_share[k]) < 0.5


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_pgd_rejects_a_bad_seed(lin_batch, seed):
    model, x, y = lin_batch
    with pytest.raises(ValueError, match="seed"):
        pgd(model, x, y, eps=0.1, steps=1, random_start=True, seed=seed)


# --- labels are checked against the model's number of classes (issue 13) ----------------------------


@pytest.mark.parametrize("bad_value", [K, K + 7, -1])
def test_labels_outside_the_model_classes_are_a_value_error(lin_batch, bad_value):
    """A label >= K (or < 0) used to reach cross_entropy: IndexError on the CPU, a device assert on CUDA."""
    model, x, y = lin_batch
    bad = y.clone()
    bad[0, 0, 0] = bad_value
    with pytest.raises(ValueError, match=rf"labels must hold class labels in \[0, {K}\).*{bad_value}"):
        fgsm(model, x, bad, 0.1)
    with pytest.raises(ValueError, match=rf"labels must hold class labels in \[0, {K}\)"):
        pgd(model, x, bad, eps=0.1, steps=2)
    with pytest.raises(ValueError, match=rf"target must hold class labels in \[0, {K}\)"):
        pgd(model, x, target=bad, eps=0.1, steps=2)
    with pytest.raises(ValueError, match="labels must hold class labels"):
        dense_loss(forward_logits(model, x), bad)


def test_the_ignore_index_is_not_a_bad_label(lin_batch):
    model, x, y = lin_batch
    ignored = y.clone()
    ignored[:, :2] = IGNORE_INDEX
    fgsm(model, x, ignored, 0.1)
    pgd(model, x, target=ignored, eps=0.1, steps=1)
    custom = y.masked_fill(y == IGNORE_INDEX, 17)  # 17 >= K, but it is the ignore index given
    assert torch.equal(fgsm(model, x, custom, 0.1, ignore_index=17), fgsm(model, x, y, 0.1))
    with pytest.raises(ValueError, match="ignore_index=17"):
        fgsm(model, x, torch.full_like(y, IGNORE_INDEX), 0.1, ignore_index=17)


# --- progress bars (issue 13) ----------------------------------------------------------------------


def test_progress_bars_do_not_change_the_attacks(lin_batch, capsys):
    model, x, y = lin_batch
    quiet = pgd(model, x, y, eps=0.1, steps=3, random_start=True)
    loud = pgd(model, x, y, eps=0.1, steps=3, random_start=True, progress=True)
    assert torch.equal(quiet, loud)
    a = fooling_images(model, x, 1, steps=4)
    b = fooling_images(model, x, 1, steps=4, progress=True)
    for field in ("images", "steps", "steps_to_share", "reached", "target_share", "confidence"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    err = capsys.readouterr().err
    assert "PGD steps" in err and "fooling steps" in err  # the bars were drawn (on stderr)


def test_attacks_draw_no_progress_bar_by_default(lin_batch, capsys):
    model, x, y = lin_batch
    pgd(model, x, y, eps=0.1, steps=2)
    fooling_images(model, x, 1, steps=2)
    assert capsys.readouterr().err == ""
