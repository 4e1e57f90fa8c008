"""Unit tests of utils.models: the U-Net and the model-agnostic helpers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from utils.data import DigitScenes, make_loader
from utils.models import UNet, _model_device, count_parameters, forward_logits, mc_dropout_mode, predict_logits


class DictWrapper(nn.Module):
    """A torchvision-style model: returns ``{"out": logits, "aux": ...}``."""

    def __init__(self, inner: nn.Module, key: str = "out") -> None:
        super().__init__()
        self.inner, self.key = inner, key

    def forward(self, x):
        y = self.inner(x)
        return {self.key: y, "aux": y * 0}


class Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.fn(x)


# --- UNet ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 32])
def test_unet_output_shape(tiny_unet, size):
    out = tiny_unet(torch.rand(2, 1, size, size))
    assert out.shape == (2, 11, size, size)


def test_unet_custom_channels_and_depth():
    model = UNet(in_channels=3, num_classes=5, width=4, depth=2).eval()
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 5, 16, 16)
    assert model.config == dict(in_channels=3, num_classes=5, width=4, depth=2, dropout=0.1)


def test_default_parameter_count():
    n = count_parameters(UNet())
    assert 400_000 <= n <= 600_000
    assert count_parameters(UNet(width=4)) < n


def test_count_parameters_counts_only_trainable():
    model = UNet(width=4)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    model.head.weight.requires_grad_(False)
    assert count_parameters(model) == total - model.head.weight.numel()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"width": 0}, "width"),
        ({"width": 2.5}, "width"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": -1}, "num_classes"),
        ({"depth": 0}, "depth"),
        ({"depth": 7}, "depth"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
    ],
)
def test_unet_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        UNet(**kwargs)


# --- forward_logits -----------------------------------------------------------------------------


def test_forward_logits_plain_and_dict(tiny_unet):
    x = torch.rand(2, 1, 32, 32)
    plain = forward_logits(tiny_unet, x)
    wrapped = forward_logits(DictWrapper(tiny_unet), x)
    assert plain.shape == (2, 11, 32, 32)
    assert torch.equal(plain, wrapped)


def test_forward_logits_rejects_dict_without_out(tiny_unet):
    with pytest.raises(ValueError, match="out"):
        forward_logits(DictWrapper(tiny_unet, key="logits"), torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.mean(1),  # 3-D output
        lambda x: x[:, :, ::2, ::2].repeat(1, 11, 1, 1),  # wrong H, W
        lambda x: x[:1].repeat(1, 11, 1, 1),  # wrong batch size
        lambda x: [x],  # not a tensor
    ],
)
def test_forward_logits_rejects_wrong_output_shapes(fn):
    with pytest.raises(ValueError):
        forward_logits(Lambda(fn), torch.rand(2, 1, 8, 8))


def test_forward_logits_rejects_bad_inputs(tiny_unet):
    with pytest.raises(TypeError):
        forward_logits(tiny_unet, [[0.0]])
    with pytest.raises(TypeError):
        forward_logits(tiny_unet, torch.zeros(1, 1, 32, 32, dtype=torch.int64))
    with pytest.raises(TypeError):
        forward_logits(lambda x: x, torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError):
        forward_logits(tiny_unet, torch.rand(1, 32, 32))


# --- mc_dropout_mode ----------------------------------------------------------------------------


def test_mc_dropout_mode_sets_module_modes(tiny_unet):
    tiny_unet.train()
    assert mc_dropout_mode(tiny_unet) is tiny_unet
    assert not tiny_unet.training
    kinds = {type(m) for m in tiny_unet.modules()}
    assert nn.Dropout2d in kinds and nn.BatchNorm2d in kinds
    for m in tiny_unet.modules():
        if isinstance(m, nn.Dropout2d):
            assert m.training
        elif isinstance(m, nn.BatchNorm2d):
            assert not m.training


def test_mc_dropout_samples_differ_and_batchnorm_is_frozen(tiny_unet):
    x = torch.rand(2, 1, 32, 32)
    deterministic = tiny_unet(x)
    mc_dropout_mode(tiny_unet)
    buffers = {k: v.clone() for k, v in tiny_unet.state_dict().items() if "running" in k or "num_batches" in k}
    with torch.no_grad():
        a, b = tiny_unet(x), tiny_unet(x)
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, deterministic)
    for k, v in tiny_unet.state_dict().items():
        if k in buffers:
            assert torch.equal(v, buffers[k]), k
    tiny_unet.eval()
    assert torch.allclose(tiny_unet(x), deterministic)


def test_mc_dropout_mode_needs_dropout():
    with pytest.raises(ValueError, match="dropout"):
        mc_dropout_mode(nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)))
    with pytest.raises(TypeError):
        mc_dropout_mode("not a model")


# --- predict_logits -----------------------------------------------------------------------------


def test_predict_logits_tensor_and_loader_agree(tiny_unet):
    data = DigitScenes("val", 5)
    from_tensor = predict_logits(tiny_unet, data.images, batch_size=2)
    from_loader = predict_logits(tiny_unet, make_loader("val", size=5, batch_size=3))
    expected = tiny_unet(data.images).detach()
    assert from_tensor.shape == from_loader.shape == (5, 11, 64, 64)
    assert from_tensor.device.type == "cpu" and not from_tensor.requires_grad
    assert torch.allclose(from_tensor, from_loader, atol=1e-5)
    assert torch.allclose(from_tensor, expected, atol=1e-5)


def test_predict_logits_accepts_plain_tensor_iterables(tiny_unet):
    x = torch.rand(4, 1, 32, 32)
    got = predict_logits(tiny_unet, [x[:3], x[3:]])
    assert torch.allclose(got, predict_logits(tiny_unet, x), atol=1e-5)


def test_predict_logits_leaves_model_mode_untouched(tiny_unet):
    x = torch.rand(2, 1, 32, 32)
    tiny_unet.eval()
    predict_logits(tiny_unet, x)
    assert not tiny_unet.training
    tiny_unet.train()
    with pytest.warns(UserWarning, match="training mode"):
        predict_logits(tiny_unet, x)
    assert tiny_unet.training and all(m.training for m in tiny_unet.modules())
    mc_dropout_mode(tiny_unet)
    a, b = predict_logits(tiny_unet, x), predict_logits(tiny_unet, x)
    assert not torch.allclose(a, b)  # dropout still active
    assert not tiny_unet.training and tiny_unet.drop.training


def test_predict_logits_validation(tiny_unet):
    with pytest.raises(ValueError, match="batch_size"):
        predict_logits(tiny_unet, torch.rand(1, 1, 32, 32), batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        predict_logits(tiny_unet, [])
    with pytest.raises(TypeError):
        predict_logits(tiny_unet, torch.zeros(1, 1, 32, 32, dtype=torch.uint8))


def test_predict_logits_rejects_numpy_arrays_with_a_hint(tiny_unet):
    """A numpy array used to fail with AttributeError ('numpy.ndarray' object has no attribute 'split'/'to')."""
    x = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    with pytest.raises(TypeError, match=r"images must be a torch\.Tensor.*torch\.from_numpy"):
        predict_logits(tiny_unet, x)
    with pytest.raises(TypeError, match=r"torch\.from_numpy"):
        predict_logits(tiny_unet, [x[:1], x[1:]])  # a loader that yields numpy arrays
    with pytest.raises(TypeError, match="images"):
        predict_logits(tiny_unet, 3)
    with pytest.raises(TypeError, match="model"):
        predict_logits(lambda t: t, torch.rand(1, 1, 32, 32))
    assert torch.allclose(predict_logits(tiny_unet, torch.from_numpy(x).float()), tiny_unet(torch.from_numpy(x)).detach(), atol=1e-5)


class _Scale(nn.Module):
    """A model without parameters (optionally with a buffer): logits are a fixed map of the image."""

    def __init__(self, buffer_device: str | None = None) -> None:
        super().__init__()
        if buffer_device is not None:
            self.register_buffer("scale", torch.full((1, 3, 1, 1), 2.0, device=buffer_device))

    def forward(self, x):
        scale = self.scale if hasattr(self, "scale") else 2.0
        return torch.cat([x, -x, 0 * x], dim=1) * scale


@pytest.mark.parametrize("buffer_device", [None, "cpu"])
def test_predict_logits_on_a_model_without_parameters(buffer_device):
    """``next(model.parameters())`` used to raise a bare StopIteration for a parameter-free model."""
    model = _Scale(buffer_device).eval()
    x = torch.rand(3, 1, 8, 8)
    out = predict_logits(model, x, batch_size=2)
    assert out.shape == (3, 3, 8, 8) and torch.equal(out[:, 0], 2 * x[:, 0])
    assert torch.equal(predict_logits(model, x, device="cpu"), out)


def test_model_device_falls_back_to_buffers_then_the_cpu():
    assert _model_device(_Scale()) == torch.device("cpu")
    assert _model_device(_Scale("meta")) == torch.device("meta")  # no parameter: the buffer decides
    assert _model_device(_Scale("meta"), device="cpu") == torch.device("cpu")  # the argument wins
    assert _model_device(nn.Conv2d(1, 1, 1, device="meta")) == torch.device("meta")


def test_predict_logits_warns_when_batchnorm_or_the_model_is_in_training_mode():
    torch.manual_seed(0)
    fresh = UNet(width=4)  # a freshly built model is in training mode
    x = torch.rand(4, 1, 32, 32)
    with pytest.warns(UserWarning, match=r"model\.eval\(\).*mc_dropout_mode") as record:
        predict_logits(fresh, x)
    assert "BatchNorm2d" in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller's line
    assert fresh.training  # it warns, it does not switch the mode
    only_bn = UNet(width=4).eval()
    only_bn.down[0][1].train()  # one BatchNorm left in training mode is enough to warn
    with pytest.warns(UserWarning, match="down.0.1"):
        predict_logits(only_bn, x)
    no_bn = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Dropout2d(0.5))  # the whole model in training mode, dropout on
    with pytest.warns(UserWarning, match="Dropout2d"):
        predict_logits(no_bn, x)


def test_predict_logits_is_silent_in_eval_and_mc_dropout_mode(tiny_unet):
    x = torch.rand(2, 1, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eval_out = predict_logits(tiny_unet.eval(), x)
        mc_dropout_mode(tiny_unet)
        torch.manual_seed(0)
        mc_out = predict_logits(tiny_unet, x)  # dropout on, BatchNorm frozen: intended, so no warning
        predict_logits(nn.Sequential(nn.Conv2d(1, 3, 1)), x)  # training mode, but nothing depends on it
    assert not torch.allclose(eval_out, mc_out)
    tiny_unet.eval()


# --- a torchvision model ------------------------------------------------------------------------


def test_torchvision_segmentation_model_works_with_helpers():
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=11).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        logits = forward_logits(model, x)
        direct = model(x)["out"]
    assert logits.shape == (1, 11, 64, 64)
    assert torch.equal(logits, direct)
    batch = torch.rand(3, 3, 64, 64)
    pred = predict_logits(model, batch, batch_size=2)
    assert pred.shape == (3, 11, 64, 64)
    assert torch.allclose(pred[:1], predict_logits(model, batch[:1]), atol=1e-5)
    assert not model.training


# --- the practitioner's architecture: utils.models.lraspp ---------------------------------------


def test_lraspp_factory_builds_a_one_channel_torchvision_model():
    from torchvision.models.segmentation.lraspp import LRASPP

    from utils.models import ARCHITECTURES, lraspp

    torch.manual_seed(0)
    model = lraspp()
    assert isinstance(model, LRASPP) and "lraspp" in ARCHITECTURES
    assert model.config == {"arch": "lraspp", "num_classes": 11, "in_channels": 1, "first_stride": 1}
    first = model.backbone["0"][0]
    assert first.in_channels == 1 and first.out_channels == 16 and first.stride == (1, 1)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    # torchvision's own first-layer stride on request; the parameters (and so a state dict) are the same
    assert lraspp(first_stride=2).backbone["0"][0].stride == (2, 2)
    assert {k: v.shape for k, v in lraspp(first_stride=2).state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    model.eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, dict) and out["out"].shape == (2, 11, 64, 64)
    # BatchNorm in eval mode: the logits of an image do not depend on the rest of the batch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "training mode" warning on an eval model
        batched = predict_logits(model, x, batch_size=2)
        alone = predict_logits(model, x[1:])
    assert torch.allclose(batched[1:], alone, atol=1e-5)
    assert not any(m.training for m in model.modules())
    other = lraspp(num_classes=2, in_channels=3).eval()
    assert forward_logits(other, torch.rand(1, 3, 32, 32)).shape == (1, 2, 32, 32)


def test_lraspp_in_training_mode_warns_and_has_no_dropout():
    from utils.models import lraspp

    model = lraspp(num_classes=2)
    with pytest.warns(UserWarning, match="BatchNorm"):
        predict_logits(model, torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="no dropout"):
        mc_dropout_mode(model)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"num_classes": 0}, "num_classes"), ({"in_channels": 1.0}, "in_channels"), ({"first_stride": 3}, "first_stride")],
)
def test_lraspp_rejects_bad_arguments(kwargs, name):
    from utils.models import lraspp

    with pytest.raises(ValueError, match=name):
        lraspp(**kwargs)
