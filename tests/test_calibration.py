"""Tests of utils.calibration: temperature scaling fitted by pixel NLL."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.segmentation import lraspp_mobilenet_v3_large

from utils import calibration
from utils.calibration import TemperatureScaled, apply_temperature, fit_temperature
from utils.config import IGNORE_INDEX
from utils.models import forward_logits, predict_logits


@pytest.fixture(scope="module")
def lraspp() -> torch.nn.Module:
    """An untrained torchvision LRASPP (dict output, 5 classes, nothing downloaded), in eval mode."""
    torch.manual_seed(0)
    return lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5).eval()


def _synthetic(n: int = 16, k: int = 5, size: int = 32, scale: float = 2.0, seed: int = 0):
    """Logits ``z`` and labels drawn from ``softmax(z)``: the calibrated temperature of ``z`` is 1."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, size, size, generator=g) * scale
    probs = F.softmax(z, dim=1).permute(0, 2, 3, 1).reshape(-1, k)
    labels = torch.multinomial(probs, 1, generator=g).reshape(n, size, size)
    return z, labels


def _nll(logits: torch.Tensor, target: torch.Tensor, t: float = 1.0) -> float:
    return float(F.cross_entropy(logits.double() / t, target, ignore_index=IGNORE_INDEX))


@pytest.mark.parametrize("true_t", [3.0, 0.5])
def test_fit_recovers_known_temperature(true_t: float) -> None:
    z, labels = _synthetic()
    t = fit_temperature(z * true_t, labels)
    assert abs(t / true_t - 1) < 0.05


def test_fit_lowers_nll_and_is_a_minimum() -> None:
    z, labels = _synthetic()
    logits = z * 2.5
    t = fit_temperature(logits, labels)
    best = _nll(logits, labels, t)
    assert best <= _nll(logits, labels, 1.0)
    assert best <= _nll(logits, labels, t * 1.01) and best <= _nll(logits, labels, t / 1.01)


def test_fit_is_deterministic_and_accepts_flat_pixels() -> None:
    z, labels = _synthetic(n=4)
    t = fit_temperature(z * 2, labels)
    assert fit_temperature(z * 2, labels) == t
    flat = (z * 2).permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    assert fit_temperature(flat, labels.reshape(-1)) == pytest.approx(t, rel=1e-6)


def test_chunking_does_not_change_the_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    z, labels = _synthetic(n=4)
    t = fit_temperature(z * 2, labels)
    for elements in (5 * 32 * 32 * 2, 1000):  # two images per chunk; pieces of one image
        monkeypatch.setattr(calibration, "_CHUNK_ELEMENTS", elements)
        assert fit_temperature(z * 2, labels) == pytest.approx(t, rel=1e-9)


def test_ignored_and_masked_pixels_do_not_influence_the_fit() -> None:
    z, labels = _synthetic(n=4)
    logits = z * 2
    region = torch.zeros_like(labels, dtype=torch.bool)
    region[:, :10] = True
    ignored = labels.masked_fill(region, IGNORE_INDEX)
    t = fit_temperature(logits, ignored)
    wild = logits.clone()
    wild[:, 0][region] = 50.0  # huge confident logits where the label is ignored
    assert fit_temperature(wild, ignored) == pytest.approx(t, rel=1e-9)
    assert fit_temperature(wild, labels, mask=~region) == pytest.approx(t, rel=1e-9)
    assert fit_temperature(wild, labels) != pytest.approx(t, rel=1e-3)


@pytest.mark.parametrize("true_t", [50.0, 0.02])
def test_fit_finds_temperatures_beyond_the_old_bounds(true_t: float) -> None:
    """The search used to stop at (0.05, 20) and return the bound silently."""
    z, labels = _synthetic(n=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inside the default bounds: no warning
        t = fit_temperature(z * true_t, labels)
    assert abs(t / true_t - 1) < 0.05


@pytest.mark.parametrize(
    "scale, bounds, expected",
    [(1000.0, None, 100.0), (1 / 1000, None, 0.01), (3.0, (0.5, 2.0), 2.0), (0.2, (0.5, 2.0), 0.5)],
)
def test_fit_warns_when_the_optimum_lies_beyond_a_bound(scale: float, bounds, expected: float) -> None:
    z, labels = _synthetic(n=2)
    kwargs = {} if bounds is None else {"bounds": bounds}
    side = "above" if scale > 1 else "below"
    with pytest.warns(UserWarning, match=rf"still falling at the bound T = {expected:g}.*lies {side}.*wider bounds") as record:
        t = fit_temperature(z * scale, labels, **kwargs)
    assert t == pytest.approx(expected)
    assert record[0].filename == __file__  # points at the caller


def test_fit_does_not_warn_when_the_optimum_is_inside_the_bounds() -> None:
    z, labels = _synthetic(n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_temperature(z * 1.5, labels, bounds=(0.5, 2.0)) == pytest.approx(1.5, rel=0.05)
        # an optimum right next to a bound, but inside it
        t = fit_temperature(z * 1.5, labels)
        assert fit_temperature(z * 1.5, labels, bounds=(t * 0.999, 10.0)) == pytest.approx(t, rel=1e-5)


def test_chunk_size_bounds_memory() -> None:
    """A float64 chunk stays small (tens of MB), whatever the number of pixels."""
    assert calibration._CHUNK_ELEMENTS * 8 <= 64 * 2**20


def test_fit_rejects_bad_inputs() -> None:
    z, labels = _synthetic(n=2, size=8)
    with pytest.raises(ValueError, match="no valid pixel"):
        fit_temperature(z, torch.full_like(labels, IGNORE_INDEX))
    with pytest.raises(ValueError, match="no valid pixel"):
        fit_temperature(z, labels, mask=torch.zeros_like(labels, dtype=torch.bool))
    with pytest.raises(ValueError, match="target must have shape"):
        fit_temperature(z, labels[:, :4])
    with pytest.raises(ValueError, match="outside"):
        fit_temperature(z, labels.masked_fill(labels == 0, 7))
    with pytest.raises(TypeError, match="floating-point"):
        fit_temperature(z.long(), labels)
    with pytest.raises(TypeError, match="integer label map"):
        fit_temperature(z, labels.float())
    with pytest.raises(TypeError, match="mask"):
        fit_temperature(z, labels, mask=torch.ones_like(labels))
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(z, labels, bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="temperature"):
        fit_temperature(z, labels, bounds=(0.0, 1.0))
    with pytest.raises(TypeError, match="logits"):
        fit_temperature(z.numpy(), labels)


def test_apply_temperature_keeps_the_argmax_bit_identical() -> None:
    z, _ = _synthetic(n=2)
    for t in (0.05, 0.3, 1.0, 3.0, 17.0):
        scaled = apply_temperature(z, t)
        assert torch.equal(scaled.argmax(1), z.argmax(1))
        assert torch.allclose(scaled * t, z, atol=1e-5)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_apply_temperature_rejects_bad_temperatures(bad: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(torch.zeros(1, 3, 2, 2), bad)


def test_apply_temperature_rejects_bad_types() -> None:
    with pytest.raises(TypeError, match="temperature"):
        apply_temperature(torch.zeros(1, 3, 2, 2), "2")
    with pytest.raises(TypeError, match="temperature"):
        apply_temperature(torch.zeros(1, 3, 2, 2), True)
    with pytest.raises(TypeError, match="floating-point"):
        apply_temperature(torch.zeros(1, 3, 2, 2, dtype=torch.long), 2.0)
    with pytest.raises(ValueError, match="class dimension"):
        apply_temperature(torch.zeros(3), 2.0)


def test_temperature_scaled_wraps_the_course_unet(tiny_unet: torch.nn.Module) -> None:
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    scaled = TemperatureScaled(tiny_unet, 2.5)
    assert scaled.temperature == 2.5 and "temperature=2.5" in repr(scaled)
    with torch.no_grad():
        ref = tiny_unet(x)
        out = scaled(x)
    assert torch.allclose(out, ref / 2.5)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    assert torch.allclose(predict_logits(scaled, x, batch_size=1), ref / 2.5, atol=1e-6)
    assert sum(p.numel() for p in scaled.parameters()) == sum(p.numel() for p in tiny_unet.parameters())
    scaled.train()
    assert tiny_unet.training
    with pytest.raises(ValueError, match="temperature"):
        TemperatureScaled(tiny_unet, 0.0)
    with pytest.raises(TypeError, match="model"):
        TemperatureScaled(lambda x: x, 1.0)


def test_lraspp_fit_and_wrap(lraspp: torch.nn.Module) -> None:
    """A torchvision model the book did not build: dict output, 3 channels, 5 classes."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        logits = forward_logits(lraspp, x)
    labels = torch.randint(0, 5, (2, 64, 64), generator=g)
    labels[:, :8] = IGNORE_INDEX
    t = fit_temperature(logits, labels)  # random labels: a high T (about 25, above the old bound of 20)
    assert 0.01 < t < 100.0 and _nll(logits, labels, t) <= _nll(logits, labels) + 1e-12
    assert _nll(logits, labels, t) <= min(_nll(logits, labels, t * 1.01), _nll(logits, labels, t / 1.01))
    scaled = TemperatureScaled(lraspp, t).eval()
    with torch.no_grad():
        out = scaled(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 64, 64)
    assert torch.allclose(out, logits / t, atol=1e-6)
    assert torch.equal(out.argmax(1), logits.argmax(1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_matches_cpu() -> None:
    z, labels = _synthetic(n=4)
    t_cpu = fit_temperature(z * 2, labels)
    t_gpu = fit_temperature((z * 2).cuda(), labels.cuda())
    assert t_gpu == pytest.approx(t_cpu, rel=1e-6)


def test_the_streamed_fit_equals_the_fit_on_all_logits_one_pass_per_step() -> None:
    z, labels = _synthetic(n=12)
    logits = z * 1.7
    labels[0, :3] = IGNORE_INDEX
    labels[10:] = IGNORE_INDEX  # a batch may hold no valid pixel; the whole stream may not
    want = fit_temperature(logits, labels)
    passes = []

    def batches():
        passes.append(1)
        return ((logits[i : i + 5], labels[i : i + 5]) for i in range(0, 12, 5))

    got = calibration.fit_temperature_stream(batches)
    # the same Newton steps on the same sums, added batch by batch: equal up to float64 rounding
    assert got == pytest.approx(want, rel=1e-12)
    assert 2 <= len(passes) <= calibration._MAX_STEPS  # the pixels are read once per step, never kept
    with pytest.warns(UserWarning, match="still falling at the bound T = 1, ") as record:
        calibration.fit_temperature_stream(batches, bounds=(0.5, 1.0))
    assert record[0].filename == __file__


def test_the_streamed_fit_rejects_bad_inputs() -> None:
    z, labels = _synthetic(n=2, size=8)
    with pytest.raises(TypeError, match="batches must be a callable"):
        calibration.fit_temperature_stream([(z, labels)])
    with pytest.raises(ValueError, match="no batch"):
        calibration.fit_temperature_stream(lambda: iter(()))
    with pytest.raises(ValueError, match="no valid pixel"):
        calibration.fit_temperature_stream(lambda: [(z, torch.full_like(labels, IGNORE_INDEX))])
    with pytest.raises(ValueError, match="outside"):
        calibration.fit_temperature_stream(lambda: [(z, labels.masked_fill(labels == 0, 7))])
    with pytest.raises(TypeError, match=r"\(logits, target\) pairs"):
        calibration.fit_temperature_stream(lambda: [z])
