"""Unit tests of utils.scores: logit scores, penultimate features, class Gaussians, test-time augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch import nn

from utils import scores
from utils.models import UNet


class DictModel(nn.Module):
    """A torchvision-like segmentation model: a backbone, a classifier whose last conv is 'classifier.1', a dict output."""

    def __init__(self, k: int = 3, d: int = 4) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(1, d, 3, padding=1)
        self.classifier = nn.Sequential(nn.ReLU(), nn.Conv2d(d, k, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.classifier(self.backbone(x)), "aux": x}


class LowResModel(nn.Module):
    """Features at half resolution, logits upsampled (as DeepLab's head)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(1, 5, 2, stride=2)
        self.last = nn.Conv2d(5, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.last(self.down(x)), size=x.shape[-2:], mode="nearest")


class Pointwise(nn.Module):
    """Logits that depend only on whether a pixel is lit: equivariant to shifts and flips, invariant to gains."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv((x > 0).float())


def test_energy_and_max_logit_match_the_formulas():
    z = torch.randn(2, 5, 3, 4) * 3
    assert torch.allclose(scores.energy(z), -torch.logsumexp(z, 1))
    for t in (0.5, 2.0):
        assert torch.allclose(scores.energy(z, t), -t * torch.logsumexp(z / t, 1))
    assert torch.equal(scores.max_logit_score(z), -z.max(1).values)
    # energy at small T tends to -max logit
    assert torch.allclose(scores.energy(z, 1e-3), scores.max_logit_score(z), atol=1e-2)
    d = scores.logit_scores(z)
    p = z.softmax(1)
    assert torch.allclose(d["1 - max-softmax"], 1 - p.max(1).values)
    assert torch.allclose(d["entropy"], -(p * p.log()).sum(1), atol=1e-6)


def test_logit_scores_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        scores.energy(torch.zeros(1, 2, 3, 3), 0.0)
    with pytest.raises(ValueError, match="temperature"):
        scores.energy(torch.zeros(1, 2, 3, 3), float("nan"))
    with pytest.raises(ValueError, match="logits"):
        scores.max_logit_score(torch.zeros(2, 3, 4))
    with pytest.raises(TypeError, match="logits"):
        scores.energy(torch.zeros(1, 2, 3, 3, dtype=torch.long))


def _toy(seed: int = 0, k: int = 3, d: int = 2, n: int = 300):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (k, d))
    a = rng.normal(size=(d, d))
    cov = a @ a.T + np.eye(d)
    y = rng.integers(0, k, n)
    x = means[y] + rng.multivariate_normal(np.zeros(d), cov, n)
    return torch.from_numpy(x).float(), torch.from_numpy(y).long()


def test_class_gaussians_match_a_density_by_hand():
    x, y = _toy()
    g = scores.ClassGaussians.fit(x, y, ridge=0.0)
    xn, yn = x.double().numpy(), y.numpy()
    k = 3
    means = np.stack([xn[yn == c].mean(0) for c in range(k)])
    resid = xn - means[yn]
    cov = resid.T @ resid / (len(xn) - k)
    priors = np.bincount(yn, minlength=k) / len(yn)
    assert np.allclose(g.means.numpy(), means)
    assert np.allclose(np.linalg.inv(g.precision.numpy()), cov)
    query = np.array([[0.0, 0.0], [5.0, -2.0], [30.0, 30.0]])
    by_hand = np.log(sum(priors[c] * multivariate_normal(means[c], cov).pdf(query) for c in range(k)))
    assert np.allclose(g.log_density(torch.from_numpy(query).float()).numpy(), by_hand, rtol=1e-5)
    maha = np.min([[(q - m) @ np.linalg.inv(cov) @ (q - m) for m in means] for q in query], axis=1)
    assert np.allclose(g.mahalanobis(torch.from_numpy(query).float()).numpy(), maha, rtol=1e-5)
    # scores: larger means less typical; the far point scores highest
    assert g.score(torch.from_numpy(query).float()).argmax() == 2
    assert torch.equal(g.score(torch.from_numpy(query).float(), "mahalanobis"), g.mahalanobis(torch.from_numpy(query).float()))


def test_class_gaussians_on_feature_maps_keep_the_pixel_layout():
    x, y = _toy(d=3)
    g = scores.ClassGaussians.fit(x, y)
    fmap = torch.randn(2, 3, 4, 5)
    flat = fmap.permute(0, 2, 3, 1).reshape(-1, 3)
    assert g.log_density(fmap).shape == (2, 4, 5)
    assert torch.allclose(g.log_density(fmap).flatten(), g.log_density(flat))
    assert torch.allclose(g.mahalanobis(fmap)[1, 2, 3], g.mahalanobis(fmap[1, :, 2, 3][None])[0])


def test_class_gaussians_bad_arguments():
    x, y = _toy()
    with pytest.raises(ValueError, match="no"):
        scores.ClassGaussians.fit(x, y, num_classes=5)  # classes 3 and 4 have no samples
    with pytest.raises(ValueError, match="num_classes"):
        scores.ClassGaussians.fit(x, y, num_classes=2)
    with pytest.raises(TypeError, match="labels"):
        scores.ClassGaussians.fit(x, y.float())
    with pytest.raises(ValueError, match="labels must have shape"):
        scores.ClassGaussians.fit(x, y[:-1])
    with pytest.raises(ValueError, match="ridge"):
        scores.ClassGaussians.fit(x, y, ridge=-1.0)
    g = scores.ClassGaussians.fit(x, y)
    with pytest.raises(ValueError, match="features must be"):
        g.log_density(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="kind"):
        g.score(x, "energy")


def test_features_hook_on_a_dict_out_model_and_the_unet():
    torch.manual_seed(0)
    model = DictModel()
    x = torch.rand(3, 1, 8, 8)
    feats, logits = scores.features_and_logits(model, x, "classifier.1", batch_size=2)
    # batches of 2 and of 3 may take different convolution kernels (they do under ATEN_CPU_CAPABILITY=default):
    # equal up to float32 rounding
    assert torch.allclose(feats, model.classifier[0](model.backbone(x)), rtol=1e-5, atol=1e-6)
    assert torch.allclose(logits, model(x)["out"], rtol=1e-5, atol=1e-6)
    # the hook is removed afterwards, the same by module
    assert not model.classifier[1]._forward_pre_hooks
    feats2, _ = scores.features_and_logits(model, x, model.classifier[1])
    assert torch.allclose(feats, feats2, rtol=1e-5, atol=1e-6)
    unet = UNet(width=4, depth=2).train()
    f, z = scores.features_and_logits(unet, torch.rand(2, 1, 16, 16))
    assert f.shape == (2, 4, 16, 16) and z.shape == (2, 11, 16, 16)
    assert unet.training  # flags restored
    assert torch.allclose(unet.eval().head(f), z, atol=1e-5)


def test_features_are_resized_to_the_image():
    f, z = scores.features_and_logits(LowResModel(), torch.rand(2, 1, 8, 8), "last")
    assert f.shape == (2, 5, 8, 8) and z.shape == (2, 3, 8, 8)


def test_feature_bad_arguments():
    model = DictModel()
    with pytest.raises(ValueError, match="head"):
        scores.resolve_layer(model)
    with pytest.raises(ValueError, match="not a submodule"):
        scores.resolve_layer(model, "classifier.7")
    with pytest.raises(ValueError, match="not part"):
        scores.resolve_layer(model, nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="layer"):
        scores.resolve_layer(model, 3)
    with pytest.raises(TypeError, match="model"):
        scores.features_and_logits("model", torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="images"):
        scores.features_and_logits(model, torch.rand(1, 4, 4), "classifier.1")
    with pytest.raises(ValueError, match="batch_size"):
        scores.features_and_logits(model, torch.rand(1, 1, 4, 4), "classifier.1", batch_size=0)


def test_sample_pixels_draws_per_image_and_drops_ignored():
    feats = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).reshape(2, 2, 3, 3)
    labels = torch.arange(18).reshape(2, 3, 3) % 4
    labels[0, 0, 0] = 255
    f, y = scores.sample_pixels(feats, labels, per_image=9)
    assert len(y) == 17 and (y != 255).all()
    # each drawn feature vector is the one of its pixel (channel 1 = channel 0 + 9)
    assert torch.equal(f[:, 1], f[:, 0] + 9)
    f1, y1 = scores.sample_pixels(feats, labels, per_image=4, seed=1)
    f2, y2 = scores.sample_pixels(feats, labels, per_image=4, seed=1)
    assert torch.equal(f1, f2) and len(y1) <= 8
    with pytest.raises(ValueError, match="per_image"):
        scores.sample_pixels(feats, labels, per_image=10)
    with pytest.raises(ValueError, match="labels must have shape"):
        scores.sample_pixels(feats, labels[:1], per_image=2)


def test_fit_gaussians_on_a_model():
    torch.manual_seed(0)
    unet = UNet(width=4, depth=2).eval()
    x = torch.rand(3, 1, 16, 16)
    y = torch.randint(0, 11, (3, 16, 16))
    g = scores.fit_gaussians(unet, x, y, per_image=256)
    assert g.means.shape == (11, 4)
    assert g.score(scores.features_and_logits(unet, x)[0]).shape == (3, 16, 16)


def test_tta_maps_back_exactly_for_an_equivariant_model():
    torch.manual_seed(0)
    model = Pointwise()
    x = torch.rand(4, 1, 12, 12) * (torch.rand(4, 1, 12, 12) > 0.5)
    plain = model(x).softmax(1)
    for augments in (scores.DEFAULT_AUGMENTS, scores.FLIP_AUGMENTS):
        p = scores.tta(model, x, augments, batch_size=3)
        assert p.samples == len(augments) >= 8
        assert torch.allclose(p.probs, plain, atol=1e-6)
        assert torch.count_nonzero(p.disagreement) == 0
        assert torch.allclose(p.expected_entropy, p.total_entropy, atol=1e-5)


def test_tta_disagreement_and_partial_views():
    # a model that reads the absolute column: shifts change its answer
    class Column(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            col = torch.arange(x.shape[-1], dtype=torch.float32).expand_as(x[:, :1])
            return torch.cat([col - 5.5, 5.5 - col], 1) * 10

    x = torch.ones(1, 1, 4, 12)
    p = scores.tta(Column(), x, [scores.Augment(), scores.Augment(dx=2)])
    # column 0 is seen only by the unshifted pass; columns 4 and 5 flip label under the shift
    assert torch.allclose(p.probs[0, :, 0, 0], Column()(x).softmax(1)[0, :, 0, 0])
    assert float(p.disagreement[0, 0, 0]) == 0.0
    assert torch.allclose(p.disagreement[0, 0, 4:6], torch.tensor([0.5, 0.5]))
    a = scores.Augment(dy=1, dx=-2, flip_h=True, gain=2.0)
    img = torch.rand(1, 1, 6, 6)
    back, seen = a.invert(a.apply(img))
    assert torch.allclose(back[..., seen], (img * 2).clamp(0, 1)[..., seen])
    assert int(seen.sum()) == 5 * 4


def test_tta_bad_arguments():
    model = Pointwise()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(TypeError, match="augments"):
        scores.tta(model, x, scores.Augment())
    with pytest.raises(TypeError, match="augments"):
        scores.tta(model, x, [])
    with pytest.raises(TypeError, match=r"augments\[1\]"):
        scores.tta(model, x, [scores.Augment(), "flip"])
    with pytest.raises(ValueError, match="gain"):
        scores.Augment(gain=0.0)
    with pytest.raises(ValueError, match="dy"):
        scores.Augment(dy=1.5)
    with pytest.raises(ValueError, match="images"):
        scores.tta(model, torch.rand(8, 8))


def test_percentile_rank_and_timing():
    ref = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert scores.percentile_rank(torch.tensor([[0.5, 2.5], [10.0, 3.0]]), ref).tolist() == [[0.0, 0.5], [1.0, 0.5]]
    with pytest.raises(ValueError, match="reference"):
        scores.percentile_rank(ref, torch.tensor([]))
    with pytest.raises(TypeError, match="score"):
        scores.percentile_rank(torch.tensor([1, 2]), ref)
    t = scores.seconds_per_image({"sum": lambda im: im.sum(), "sleep": lambda im: __import__("time").sleep(0.02)},
                                 torch.rand(4, 1, 8, 8), repeats=2)
    assert set(t) == {"sum", "sleep"} and 0 <= t["sum"] < t["sleep"] and t["sleep"] >= 0.02 / 4
    with pytest.raises(ValueError, match="repeats"):
        scores.seconds_per_image({"id": lambda im: im}, torch.rand(4, 1, 8, 8), repeats=0)
    with pytest.raises(TypeError, match="runs"):
        scores.seconds_per_image({"x": 3}, torch.rand(4, 1, 8, 8))
    with pytest.raises(TypeError, match="runs"):
        scores.seconds_per_image(lambda im: im, torch.rand(4, 1, 8, 8))


def test_score_maps_gather_every_one_pass_score():
    torch.manual_seed(0)
    unet = UNet(width=4, depth=2).eval()
    x = torch.rand(3, 1, 16, 16)
    g = scores.fit_gaussians(unet, x, torch.randint(0, 11, (3, 16, 16)), per_image=256)
    maps, logits = scores.score_maps(unet, x, g)
    assert set(maps) == {"1 - max-softmax", "entropy", "-max logit", "energy", "density", "mahalanobis"}
    assert torch.allclose(maps["energy"], scores.energy(logits))
    feats = scores.features_and_logits(unet, x)[0]
    assert torch.allclose(maps["density"], (-g.log_density(feats)).float())
    assert set(scores.score_maps(unet, x)[0]) == {"1 - max-softmax", "entropy", "-max logit", "energy"}
    with pytest.raises(TypeError, match="gaussians"):
        scores.score_maps(unet, x, "g")


# --- tail_scale ----------------------------------------------------------------------------------


def test_tail_scale_keeps_the_order_inside_the_bootstrap_bins():
    from sklearn.metrics import roc_auc_score

    from utils import spread

    g = torch.Generator().manual_seed(0)
    positive = torch.rand(20, 16, 16, generator=g) < 0.05
    energy_like = -30 + 25 * torch.rand(20, 16, 16, generator=g) + 3 * positive  # negative, wide range
    v = scores.tail_scale(energy_like, energy_like)
    assert v.shape == energy_like.shape and float(v.min()) > 0 and float(v.max()) < 10
    order = energy_like.flatten().argsort()
    assert bool((v.flatten()[order].diff() >= 0).all())          # monotone
    exact = roc_auc_score(positive.flatten().numpy(), energy_like.flatten().numpy())
    binned = float(spread.auroc({k: t.sum(0) for k, t in spread.detection_sums(v, positive).items()}))
    assert abs(binned - exact) < 2e-3
    raw = float(spread.auroc({k: t.sum(0) for k, t in spread.detection_sums(energy_like, positive).items()}))
    assert raw == 0.5 and exact > 0.6          # unscaled, every negative score falls into the first bin


def test_tail_scale_rejects_bad_arguments():
    with pytest.raises(TypeError, match="score"):
        scores.tail_scale(torch.ones(3, dtype=torch.long), torch.ones(3))
    with pytest.raises(ValueError, match="reference"):
        scores.tail_scale(torch.ones(3), torch.ones(0))
