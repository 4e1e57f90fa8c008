"""Tests of utils.uncertainty: entropies, their decomposition, MC dropout and deep ensembles."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchvision.models.segmentation import lraspp_mobilenet_v3_large

from utils.models import UNet
from utils.uncertainty import Predictive, decompose, ensemble, entropy, foreground_or_background, mc_dropout, single


@pytest.fixture(scope="module")
def lraspp_pair() -> tuple[nn.Module, nn.Module]:
    """Two untrained torchvision LRASPPs (dict output, 3 channels, 5 classes), in eval mode."""
    torch.manual_seed(0)
    first = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5).eval()
    second = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5).eval()
    return first, second


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))


def _random_members(t: int = 4, n: int = 2, k: int = 5, size: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.softmax(torch.randn(t, n, k, size, size, generator=g) * 3, dim=2)


def _bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def _flags(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def _mixed_mode(model: nn.Module) -> nn.Module:
    """Train mode with one BatchNorm in eval mode: a state that only per-module restoring preserves."""
    model.train()
    next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    return model


# ---------------------------------------------------------------- entropies


def test_entropy_of_uniform_and_one_hot() -> None:
    k = 11
    assert torch.allclose(entropy(torch.full((2, k, 3, 3), 1 / k)), torch.full((2, 3, 3), math.log(k)))
    one_hot = torch.zeros(2, k, 3, 3)
    one_hot[:, 4] = 1.0
    h = entropy(one_hot)
    assert not torch.isnan(h).any() and torch.equal(h, torch.zeros(2, 3, 3))
    assert torch.allclose(entropy(torch.tensor([[0.5, 0.5]]), dim=-1), torch.tensor([math.log(2)]))
    with pytest.raises(TypeError, match="probs"):
        entropy([0.5, 0.5])
    with pytest.raises(TypeError, match="floating-point"):
        entropy(torch.ones(2, 2, dtype=torch.long))


def test_decompose_identity_and_nonnegative_mi() -> None:
    members = _random_members()
    total, aleatoric, epistemic = decompose(members)
    assert total.shape == aleatoric.shape == epistemic.shape == (2, 6, 6)
    assert torch.allclose(total, aleatoric + epistemic, atol=1e-6)
    assert bool((epistemic >= 0).all()) and float(epistemic.max()) > 0
    assert float(total.max()) <= math.log(5) + 1e-6


def test_mi_is_zero_when_members_agree() -> None:
    members = _random_members(t=1).expand(5, -1, -1, -1, -1)
    _, aleatoric, epistemic = decompose(members)
    assert float(epistemic.abs().max()) < 1e-6 and float(aleatoric.min()) > 0


def test_mi_is_log2_for_two_disagreeing_one_hot_members() -> None:
    members = torch.zeros(2, 1, 3, 1, 1)
    members[0, 0, 0] = 1.0
    members[1, 0, 2] = 1.0
    total, aleatoric, epistemic = decompose(members)
    assert float(aleatoric) == 0.0
    assert float(total) == pytest.approx(math.log(2)) and float(epistemic) == pytest.approx(math.log(2))


def test_decompose_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="member_probs"):
        decompose(torch.rand(3, 4))
    with pytest.raises(TypeError, match="member_probs"):
        decompose([[0.5]])


def test_predictive_properties_and_subset() -> None:
    members = _random_members()
    pred = Predictive(members.mean(0), entropy(members, dim=2).mean(0), 4, members)
    total, aleatoric, epistemic = decompose(members)
    assert torch.allclose(pred.total_entropy, total) and torch.allclose(pred.mutual_information, epistemic)
    assert torch.allclose(pred.total_entropy, pred.expected_entropy + pred.mutual_information, atol=1e-6)
    assert torch.equal(pred.prediction, pred.probs.argmax(1)) and torch.equal(pred.max_softmax, pred.probs.amax(1))
    sub = pred.subset(2)
    assert sub.samples == 2 and sub.members.shape[0] == 2
    assert torch.allclose(sub.probs, members[:2].mean(0))
    assert torch.allclose(pred.subset(4).probs, pred.probs)
    for bad in (0, 5, 1.5):
        with pytest.raises(ValueError, match="n must be"):
            pred.subset(bad)
    with pytest.raises(ValueError, match="keep_members"):
        Predictive(pred.probs, pred.expected_entropy, 4).subset(2)


# ---------------------------------------------------------------- single model


def test_single_is_the_eval_softmax(tiny_unet: UNet, images: torch.Tensor) -> None:
    _mixed_mode(tiny_unet)
    flags = _flags(tiny_unet)
    pred = single(tiny_unet, images, batch_size=2)
    assert _flags(tiny_unet) == flags
    tiny_unet.eval()
    with torch.no_grad():
        ref = torch.softmax(tiny_unet(images), dim=1)
    assert pred.samples == 1 and pred.members is None
    assert pred.probs.dtype == torch.float32 and pred.probs.device.type == "cpu"
    assert torch.allclose(pred.probs, ref, atol=1e-6)
    assert torch.allclose(pred.expected_entropy, pred.total_entropy, atol=1e-6)
    assert float(pred.mutual_information.max()) < 1e-6


# ---------------------------------------------------------------- MC dropout


def test_mc_dropout_is_seeded_and_leaves_the_caller_rng_alone(tiny_unet: UNet, images: torch.Tensor) -> None:
    torch.manual_seed(42)
    a = mc_dropout(tiny_unet, images, samples=3, batch_size=2, seed=1)
    after = torch.rand(1)
    torch.manual_seed(42)
    expected = torch.rand(1)
    assert torch.equal(after, expected)  # the global RNG is untouched
    b = mc_dropout(tiny_unet, images, samples=3, batch_size=2, seed=1)
    c = mc_dropout(tiny_unet, images, samples=3, batch_size=2, seed=2)
    assert torch.equal(a.probs, b.probs) and torch.equal(a.expected_entropy, b.expected_entropy)
    assert not torch.allclose(a.probs, c.probs)
    eval_probs = single(tiny_unet, images).probs
    assert not torch.allclose(a.probs, eval_probs)
    assert float(a.mutual_information.max()) > 0
    assert torch.allclose(a.total_entropy, a.expected_entropy + a.mutual_information, atol=1e-6)


class _PlainUNet(UNet):
    """The same network run whole for every sample (a subclass with its own forward skips the stem cache)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from_stem(self.stem(x))


def test_mc_dropout_stem_cache_gives_the_plain_samples(tiny_unet: UNet, images: torch.Tensor) -> None:
    plain = _PlainUNet(**tiny_unet.config)
    plain.load_state_dict(tiny_unet.state_dict())
    plain.train(tiny_unet.training)
    calls = {"stem": 0}
    original = tiny_unet.stem

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls["stem"] += 1
        return original(x)

    tiny_unet.stem = counted  # count the stem's passes
    firsts = []  # and the second encoder block's (a hook on the block, not on the model)
    handle = tiny_unet.down[1].register_forward_hook(lambda module, inp, out: firsts.append(out.shape[0]))
    try:
        cached = mc_dropout(tiny_unet, images, samples=5, batch_size=2, seed=3, keep_members=True)
    finally:
        del tiny_unet.stem
        handle.remove()
    whole = mc_dropout(plain, images, samples=5, batch_size=2, seed=3, keep_members=True)
    assert calls["stem"] == 2  # once per batch (3 images in batches of 2), not once per sample
    assert firsts == [2, 1]  # the dropout-free second block too: once per batch, not 5 times
    assert torch.allclose(cached.members, whole.members, atol=1e-6, rtol=0)
    assert torch.allclose(cached.expected_entropy, whole.expected_entropy, atol=1e-5, rtol=0)
    with torch.no_grad():
        assert torch.equal(plain(images), tiny_unet(images))  # forward = forward_from_stem(stem(x))


def test_mc_dropout_chunks_a_batch_with_the_masks_drawn_for_the_whole_batch(tiny_unet: UNet) -> None:
    torch.manual_seed(5)
    many = torch.rand(40, 1, 16, 16)  # one batch of 40: three chunks of at most 16 images
    plain = _PlainUNet(**tiny_unet.config)
    plain.load_state_dict(tiny_unet.state_dict())
    for model in (tiny_unet, plain):
        for m in model.modules():
            if isinstance(m, nn.Dropout2d):
                m.p = 0.5  # many dropped channels: a different mask would show
    chunked = mc_dropout(tiny_unet, many, samples=4, batch_size=40, seed=7, keep_members=True)
    whole = mc_dropout(plain, many, samples=4, batch_size=40, seed=7, keep_members=True)
    other = mc_dropout(plain, many, samples=4, batch_size=40, seed=8, keep_members=True)
    same = (chunked.members - whole.members).abs().max()
    seed_gap = (whole.members - other.members).abs().max()  # what other masks change: the test can fail
    assert same < 1e-6 and seed_gap > 1e-5 and seed_gap > 100 * same


def test_mc_dropout_runs_a_hooked_unet_whole(tiny_unet: UNet, images: torch.Tensor) -> None:
    seen = []
    handle = tiny_unet.register_forward_hook(lambda module, inp, out: seen.append(out.shape[0]))
    try:
        mc_dropout(tiny_unet, images, samples=2, batch_size=2)
    finally:
        handle.remove()
    assert seen == [2, 2, 1, 1]  # the hook saw every sample of every batch


def test_mc_dropout_freezes_batchnorm_and_restores_flags(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = _mixed_mode(UNet(width=4, dropout=0.3))
    bn, flags = _bn_state(model), _flags(model)
    mc_dropout(model, images, samples=2)
    assert _flags(model) == flags
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in bn.items())


def test_mc_dropout_keep_members(tiny_unet: UNet, images: torch.Tensor) -> None:
    pred = mc_dropout(tiny_unet, images, samples=4, batch_size=2, keep_members=True)
    assert pred.members.shape == (4, 3, 11, 16, 16) and pred.samples == 4
    assert torch.allclose(pred.members.mean(0), pred.probs, atol=1e-6)
    assert torch.allclose(entropy(pred.members, dim=2).mean(0), pred.expected_entropy, atol=1e-6)
    assert mc_dropout(tiny_unet, images, samples=4, batch_size=2).members is None


def test_mc_dropout_rejects_bad_input(tiny_unet: UNet, images: torch.Tensor) -> None:
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="samples"):
            mc_dropout(tiny_unet, images, samples=bad)
    with pytest.raises(ValueError, match="batch_size"):
        mc_dropout(tiny_unet, images, samples=2, batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        mc_dropout(tiny_unet, images, seed=-1)
    with pytest.raises(TypeError, match="images"):
        mc_dropout(tiny_unet, images.numpy())
    with pytest.raises(ValueError, match="images"):
        mc_dropout(tiny_unet, images[0])
    with pytest.raises(TypeError, match="model"):
        mc_dropout(lambda x: x, images)


# ---------------------------------------------------------------- ensembles


def test_ensemble_of_one_equals_single(tiny_unet: UNet, images: torch.Tensor) -> None:
    a = ensemble([tiny_unet], images, batch_size=2)
    b = single(tiny_unet, images)
    assert torch.allclose(a.probs, b.probs, atol=1e-6) and torch.allclose(a.expected_entropy, b.expected_entropy)
    assert a.samples == 1


def test_ensemble_of_two_members(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    models = [_mixed_mode(UNet(width=4)), UNet(width=4).eval()]
    flags = [_flags(m) for m in models]
    pred = ensemble(models, images, batch_size=2, keep_members=True)
    assert [_flags(m) for m in models] == flags
    assert pred.samples == 2 and pred.members.shape == (2, 3, 11, 16, 16)
    for member, model in zip(pred.members, models):
        assert torch.allclose(member, single(model, images).probs, atol=1e-6)
    assert torch.allclose(pred.probs, pred.members.mean(0), atol=1e-6)
    assert float(pred.mutual_information.max()) > 0


def test_ensemble_rejects_bad_input(tiny_unet: UNet, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ensemble([], images)
    with pytest.raises(TypeError, match="models"):
        ensemble(tiny_unet, images)
    with pytest.raises(TypeError, match=r"models\[1\]"):
        ensemble([tiny_unet, "model"], images)
    with pytest.raises(ValueError, match="classes"):
        ensemble([tiny_unet, UNet(width=4, num_classes=5).eval()], images)
    with pytest.raises(TypeError, match="images"):
        ensemble([tiny_unet], images.tolist())
    with pytest.raises(ValueError, match="empty"):
        ensemble([tiny_unet], images[:0])


# ---------------------------------------------------------------- a model the book did not build


def test_torchvision_lraspp_single_and_ensemble(lraspp_pair: tuple[nn.Module, nn.Module]) -> None:
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    first, second = lraspp_pair
    one = single(first, x)
    assert one.probs.shape == (2, 5, 64, 64)
    with torch.no_grad():
        assert torch.allclose(one.probs, torch.softmax(first(x)["out"], dim=1), atol=1e-6)
    pair = ensemble([first, second], x, batch_size=1)
    assert pair.probs.shape == (2, 5, 64, 64) and pair.samples == 2
    assert torch.allclose(pair.total_entropy, pair.expected_entropy + pair.mutual_information, atol=1e-6)
    assert not first.training and not second.training


def test_torchvision_lraspp_has_no_dropout_for_mc_dropout(lraspp_pair: tuple[nn.Module, nn.Module]) -> None:
    first, _ = lraspp_pair
    assert not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in first.modules())
    flags = _flags(first)
    with pytest.raises(ValueError, match="no dropout"):
        mc_dropout(first, torch.rand(1, 3, 64, 64), samples=2)
    assert _flags(first) == flags


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_outputs_on_cpu_and_seeded(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = UNet(width=4).cuda().eval()
    cuda_state = torch.cuda.get_rng_state()
    a = mc_dropout(model, images, samples=3, seed=5)
    assert torch.equal(cuda_state, torch.cuda.get_rng_state())
    assert a.probs.device.type == "cpu"
    assert torch.equal(a.probs, mc_dropout(model, images.cuda(), samples=3, seed=5).probs)
    assert torch.allclose(single(model, images).probs, single(model.cpu(), images).probs, atol=1e-5)


# ---------------------------------------------------------------- progress bars (issue 13)


def _same(a: Predictive, b: Predictive) -> bool:
    return (
        torch.equal(a.probs, b.probs)
        and torch.equal(a.expected_entropy, b.expected_entropy)
        and a.samples == b.samples
        and (a.members is None) == (b.members is None)
        and (a.members is None or torch.equal(a.members, b.members))
    )


def test_progress_bars_do_not_change_the_results(tiny_unet: UNet, images: torch.Tensor, capsys) -> None:
    quiet = mc_dropout(tiny_unet, images, samples=3, batch_size=2, seed=4, keep_members=True)
    loud = mc_dropout(tiny_unet, images, samples=3, batch_size=2, seed=4, keep_members=True, progress=True)
    assert _same(quiet, loud)  # the bar draws no random numbers: the dropout masks are the same
    torch.manual_seed(1)
    members = [tiny_unet, UNet(width=4).eval()]
    assert _same(ensemble(members, images, batch_size=2), ensemble(members, images, batch_size=2, progress=True))
    err = capsys.readouterr().err
    assert "MC-dropout samples" in err and "ensemble members" in err
    assert "/6 " in err and "/4 " in err  # totals: samples (or members) x batches


def test_no_progress_bar_by_default(tiny_unet: UNet, images: torch.Tensor, capsys) -> None:
    mc_dropout(tiny_unet, images, samples=2)
    ensemble([tiny_unet], images)
    assert capsys.readouterr().err == ""


def test_mc_dropout_of_a_one_level_unet_runs_without_a_second_block(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    shallow = UNet(width=4, depth=1, dropout=0.5).eval()
    plain = _PlainUNet(**shallow.config)
    plain.load_state_dict(shallow.state_dict())
    assert shallow.first_block(shallow.stem(images)) is None
    cached = mc_dropout(shallow, images, samples=3, batch_size=2, seed=4, keep_members=True)
    whole = mc_dropout(plain, images, samples=3, batch_size=2, seed=4, keep_members=True)
    assert torch.allclose(cached.members, whole.members, atol=1e-6, rtol=0)
    assert float(cached.mutual_information.max()) > 0  # dropout acts: the samples differ


def test_foreground_or_background_collapses_classes() -> None:
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])  # (2 pixels, 3 classes)
    two = foreground_or_background(p, dim=1)
    assert torch.allclose(two, torch.tensor([[0.7, 0.3], [0.1, 0.9]]))
    # another background class and another dim
    assert torch.allclose(foreground_or_background(p.T, dim=0, background=2), torch.tensor([[0.1, 0.6], [0.9, 0.4]]))
    # members (T, N, K, H, W): two members that agree on the background share but not on the digit
    # have no mutual information about "digit or background", only about which digit.
    members = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]]).view(2, 1, 3, 1, 1)
    _, _, mi = decompose(members)
    _, ee2, mi2 = decompose(foreground_or_background(members, dim=2))
    assert mi.item() > 0.3 and mi2.item() == pytest.approx(0.0, abs=1e-7)
    assert ee2.item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 2}, "dim"), ({"dim": True}, "dim"), ({"background": 3}, "background"),
    ({"background": -1}, "background"), ({"background": 1.0}, "background")])
def test_foreground_or_background_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        foreground_or_background(torch.full((2, 3), 1 / 3), **kwargs)
    with pytest.raises(TypeError, match="probs"):
        foreground_or_background(torch.ones(2, 3, dtype=torch.long))
