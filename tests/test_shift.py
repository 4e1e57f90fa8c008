"""Tests of utils.shift: deterministic image corruptions at five severities, and their label maps."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.segmentation import lraspp_mobilenet_v3_large

from utils.config import IGNORE_INDEX, STROKE_THRESHOLD
from utils.models import forward_logits
from utils.shift import CORRUPTIONS, SEVERITY_PARAMS, corrupt, corrupt_labels, shifted

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def lraspp() -> torch.nn.Module:
    """An untrained torchvision LRASPP (dict output, 3 input channels, 5 classes), in eval mode."""
    torch.manual_seed(0)
    return lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5).eval()


def _blocks() -> tuple[torch.Tensor, torch.Tensor]:
    """Noise-free synthetic scenes: two touching 'digits' (labels 3 and 5) and an ignored object."""
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[:, 8:20, 6:10] = 3
    labels[:, 8:20, 10:13] = 5
    labels[1, 24:28, 20:30] = IGNORE_INDEX
    images = (labels > 0).float().unsqueeze(1) * 0.9
    return images, labels


def test_parameters_cover_five_severities() -> None:
    assert set(SEVERITY_PARAMS) == set(CORRUPTIONS)
    assert all(len(v) == 5 for v in SEVERITY_PARAMS.values())


@pytest.mark.parametrize("kind", CORRUPTIONS)
@pytest.mark.parametrize("device", DEVICES)
def test_output_keeps_shape_dtype_device_and_range(small_val, kind: str, device: str) -> None:
    x = small_val.images[:4].to(device)
    before = x.clone()
    for severity in range(6):
        out = corrupt(x, kind, severity)
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        assert out is not x and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(x, before)  # the input is never modified


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_dtypes_are_kept(small_val, dtype: torch.dtype) -> None:
    x = small_val.images[:2].to(dtype)
    for kind in CORRUPTIONS:
        out = corrupt(x, kind, 3)
        assert out.dtype == dtype and 0 <= float(out.min()) and float(out.max()) <= 1


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_severity_zero_is_an_unchanged_copy(small_val, kind: str) -> None:
    x = small_val.images[:2]
    out = corrupt(x, kind, 0, seed=5)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_deterministic(small_val, kind: str) -> None:
    x = small_val.images[:4]
    torch.manual_seed(123)
    a = corrupt(x, kind, 3, seed=7)
    torch.manual_seed(999)  # the global RNG plays no part
    assert torch.equal(a, corrupt(x, kind, 3, seed=7))


def test_noise_depends_on_seed_and_severity_only(small_val) -> None:
    x = small_val.images[:4]
    a = corrupt(x, "gaussian_noise", 2, seed=0)
    assert not torch.equal(a, corrupt(x, "gaussian_noise", 2, seed=1))
    state = torch.get_rng_state()
    corrupt(x, "gaussian_noise", 2, seed=0)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is untouched


@pytest.mark.parametrize("kind", ["gaussian_blur", "contrast", "thickness"])
def test_deterministic_kinds_ignore_seed_and_batch_split(small_val, kind: str) -> None:
    x = small_val.images[:4]
    whole = corrupt(x, kind, 4, seed=0)
    assert torch.equal(whole, corrupt(x, kind, 4, seed=3))
    split = torch.cat([corrupt(x[:1], kind, 4), corrupt(x[1:], kind, 4)])
    assert torch.allclose(whole, split, rtol=0, atol=1e-6)  # convolutions may round differently per batch size


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_change_grows_with_severity(small_val, kind: str) -> None:
    x = small_val.images
    change = [float((corrupt(x, kind, s) - x).abs().mean()) for s in range(6)]
    assert change[0] == 0.0
    assert all(a < b for a, b in zip(change, change[1:])), change


def test_noise_has_the_documented_std() -> None:
    x = torch.full((2, 1, 64, 64), 0.5)
    out = corrupt(x, "gaussian_noise", 1)
    assert float((out - x).std()) == pytest.approx(SEVERITY_PARAMS["gaussian_noise"][0], rel=0.05)


def test_contrast_formula() -> None:
    x = torch.rand(3, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    c = SEVERITY_PARAMS["contrast"][2]
    mean = x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(corrupt(x, "contrast", 3), (x - mean) * c + mean, atol=1e-6)


def test_blur_preserves_a_constant_image_and_mass() -> None:
    x = torch.full((1, 1, 32, 32), 0.3)
    assert torch.allclose(corrupt(x, "gaussian_blur", 5), x, atol=1e-6)
    dot = torch.zeros(1, 1, 32, 32)
    dot[..., 16, 16] = 1.0
    assert float(corrupt(dot, "gaussian_blur", 2).sum()) == pytest.approx(1.0, rel=1e-4)


def test_thickness_is_a_disc_dilation() -> None:
    dot = torch.zeros(1, 1, 15, 15)
    dot[..., 7, 7] = 1.0
    sizes = [int((corrupt(dot, "thickness", s) > 0).sum()) for s in range(1, 6)]
    assert sizes == [5, 9, 13, 29, 49]


def test_bad_inputs_raise(small_val) -> None:
    x = small_val.images[:2]
    with pytest.raises(ValueError, match="gaussian_noise"):
        corrupt(x, "fog", 1)
    for bad in (-1, 6):
        with pytest.raises(ValueError, match="severity"):
            corrupt(x, "contrast", bad)
    for bad in (2.0, True):
        with pytest.raises(TypeError, match="severity"):
            corrupt(x, "contrast", bad)
    with pytest.raises(ValueError, match="seed"):
        corrupt(x, "gaussian_noise", 1, seed=-1)
    with pytest.raises(ValueError, match="images"):
        corrupt(x[0], "contrast", 1)
    with pytest.raises(TypeError, match="images"):
        corrupt((x * 255).to(torch.uint8), "contrast", 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(x * 2, "contrast", 1)
    with pytest.raises(TypeError, match="images"):
        corrupt(x.numpy(), "contrast", 1)


@pytest.mark.parametrize("kind", [k for k in CORRUPTIONS if k != "thickness"])
def test_labels_unchanged_except_thickness(small_val, kind: str) -> None:
    labels = small_val.labels
    out = corrupt_labels(labels, kind, 5)
    assert torch.equal(out, labels) and out.data_ptr() != labels.data_ptr()


def test_thickness_labels_grow_monotonically(small_val) -> None:
    labels = small_val.labels
    areas = [int((corrupt_labels(labels, "thickness", s) > 0).sum()) for s in range(6)]
    assert all(a < b for a, b in zip(areas, areas[1:])), areas
    grown = corrupt_labels(labels, "thickness", 3)
    digit = labels > 0
    assert torch.equal(grown[digit], labels[digit])  # digit pixels keep their labels


def test_thickness_labels_keep_ignore_and_follow_the_mask_rule() -> None:
    images, labels = _blocks()
    for severity in range(1, 6):
        x, y = shifted(images, labels, "thickness", severity)
        ignored = labels == IGNORE_INDEX
        assert torch.equal(y == IGNORE_INDEX, ignored)  # stays, never spreads
        assert y.dtype == labels.dtype and y.shape == labels.shape
        ink = x[:, 0] >= STROKE_THRESHOLD
        assert torch.equal(ink[0], y[0] > 0)  # no ignored object: labels = thresholded dilated ink
        assert bool(((y[1] > 0) <= ink[1]).all())
    # where digits 3 and 5 meet, background reached by both takes the larger label
    y = corrupt_labels(labels, "thickness", 2)
    assert int(y[0, 7, 10]) == 5 and int(y[0, 7, 9]) == 5 and int(y[0, 7, 8]) == 3


def test_label_validation() -> None:
    _, labels = _blocks()
    with pytest.raises(TypeError, match="integer"):
        corrupt_labels(labels.float(), "thickness", 1)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        corrupt_labels(labels[0], "thickness", 1)
    with pytest.raises(ValueError, match="kind"):
        corrupt_labels(labels, "fog", 1)
    with pytest.raises(ValueError, match="labels must have shape"):
        shifted(torch.zeros(2, 1, 16, 16), labels, "contrast", 1)
    assert corrupt_labels(labels.to(torch.uint8), "thickness", 2).dtype == torch.uint8


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_three_channel_images_and_a_torchvision_model(lraspp: torch.nn.Module, kind: str) -> None:
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    out = corrupt(x, kind, 3, seed=1)
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert float((out - x).abs().mean()) > 0
    with torch.no_grad():
        assert forward_logits(lraspp, out).shape == (2, 5, 64, 64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(small_val) -> None:
    x = small_val.images[:4]
    for kind in CORRUPTIONS:
        assert torch.allclose(corrupt(x.cuda(), kind, 3).cpu(), corrupt(x, kind, 3), atol=1e-5)
