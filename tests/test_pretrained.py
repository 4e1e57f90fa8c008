"""utils.pretrained: the online-only cell's code path, run offline with random weights of the same architecture."""

from __future__ import annotations

import pytest
import torch

from utils import plots, pretrained


def test_offline_load_says_so_in_one_line(monkeypatch):
    import torchvision.models.segmentation as seg

    def refuse(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(seg, "lraspp_mobilenet_v3_large", refuse)
    model, message = pretrained.load("lraspp_mobilenet_v3_large")
    assert model is None
    assert message.startswith("offline:") and "\n" not in message and message.endswith("skipped")


def test_the_same_code_path_runs_with_random_weights():
    model, message = pretrained.load("lraspp_mobilenet_v3_large", weights=None)
    assert "random weights" in message and not model.training
    images = pretrained.photos(size=96)
    assert images.shape == (4, 3, 96, 96) and 0 <= images.min() and images.max() <= 1
    probs, table = pretrained.inspect(model, images, names=list(pretrained.PHOTOS))
    assert probs.shape == (4, 21, 96, 96)
    torch.testing.assert_close(probs.sum(1), torch.ones(4, 96, 96))
    assert list(table.index) == list(pretrained.PHOTOS)
    assert table["mean max-softmax"].between(1 / 21, 1).all()
    fig = plots.show_report_heatmaps(images, probs, titles=list(pretrained.PHOTOS))
    assert len(fig.axes) == 4 * 3 + 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="arch must be one of"):
        pretrained.load("resnet18")
    with pytest.raises(ValueError, match="weights must be"):
        pretrained.load(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="size must be"):
        pretrained.photos(size=8)
    with pytest.raises(ValueError, match="names must come from"):
        pretrained.photos(names=("lena",))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        pretrained.normalise(torch.rand(1, 1, 8, 8))
    model, _ = pretrained.load(weights=None)
    with pytest.raises(ValueError, match="train mode"):
        pretrained.inspect(model.train(), pretrained.photos(size=64, names=("chelsea",)))
