"""Tests of utils.toy (the 2-D ReLU-MLP toy of chapter 2) and its figure."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from utils import plots, toy, uncertainty  # noqa: E402
from utils.plots.toy import _smallest_text_px  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return toy.make_clusters(n_per_class=40)


@pytest.fixture(scope="module")
def members(data) -> list[torch.nn.Sequential]:
    return toy.train_ensemble(*data, members=3, steps=150)


def test_clusters_have_the_asked_shapes_and_centres():
    points, labels = toy.make_clusters(n_per_class=50, classes=4, radius=3.0, std=0.1)
    assert points.shape == (200, 2) and points.dtype == torch.float32
    assert labels.tolist() == sum(([k] * 50 for k in range(4)), [])
    centres = torch.stack([points[labels == k].mean(0) for k in range(4)])
    expected = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, 0.0], [0.0, -3.0]])
    assert torch.allclose(centres, expected, atol=0.05)


def test_everything_is_deterministic_and_leaves_the_global_rng_alone(data):
    state = torch.random.get_rng_state()
    a, b = toy.make_clusters(seed=3), toy.make_clusters(seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], toy.make_clusters(seed=4)[0])
    m1 = toy.train_mlp(*data, steps=20, seed=5)
    m2 = toy.train_mlp(*data, steps=20, seed=5)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    m3 = toy.train_mlp(*data, steps=20, seed=6)
    assert not torch.equal(next(m1.parameters()), next(m3.parameters()))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_training_fits_the_clusters(data, members):
    points, labels = data
    for m in members:
        assert not m.training
        assert (m(points).argmax(1) == labels).float().mean() > 0.95


def test_mlp_shape_and_layers():
    m = toy.make_mlp(classes=4, hidden=8, depth=3)
    assert m(torch.zeros(5, 2)).shape == (5, 4)
    assert sum(isinstance(layer, torch.nn.ReLU) for layer in m) == 3


def test_mutual_information_is_non_negative_and_zero_for_one_model():
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(5, 1000, 4, generator=g).mul(3).softmax(-1)
    mi = toy.mutual_information(probs)
    assert mi.shape == (1000,) and mi.dtype == torch.float64
    assert float(mi.min()) >= -1e-12  # Jensen: no clamping inside
    assert float(mi.max()) > 0.1
    assert torch.equal(toy.mutual_information(probs[:1]), torch.zeros(1000, dtype=torch.float64))
    assert torch.equal(toy.mutual_information(probs[:1].expand(3, -1, -1)).abs() < 1e-12, torch.ones(1000, dtype=torch.bool))
    # two members sure of different classes: the label is one fair coin, log 2 nats
    split = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert math.isclose(float(toy.mutual_information(split)), math.log(2), rel_tol=1e-12)
    # agrees with the package's decomposition (which clamps at 0)
    _, _, epistemic = uncertainty.decompose(probs)
    assert torch.allclose(mi.clamp_min(0).float(), epistemic, atol=1e-5)


def test_max_softmax_tends_to_one_along_a_ray(members):
    direction = torch.tensor([[0.6, 0.8]])
    radii = torch.tensor([2.0, 20.0, 200.0, 2000.0, 20000.0])
    for m in members:
        msp = toy.member_probs([m], radii[:, None] * direction)[0].amax(-1)
        assert float(msp[-1]) > 0.999
        assert float(msp[-1]) >= float(msp[1]) - 1e-6
        # piecewise affine: far out, the logits grow linearly in r (x10 per decade, +-1 %)
        with torch.no_grad():
            logits = m(radii[-2:, None] * direction)
        growth = (logits[1] - logits[1].mean()).norm() / (logits[0] - logits[0].mean()).norm()
        assert 9.9 < float(growth) < 10.1


def test_plane_and_ring_evaluation_shapes_and_values(data, members):
    plane = toy.evaluate_plane(members, extent=5.0, n=11)
    assert plane.msp.shape == plane.mutual_information.shape == (11, 11) and plane.members == 3
    assert plane.ticks[0] == -5 and plane.ticks[-1] == 5
    assert float(plane.msp.min()) >= 1 / 3 - 1e-6 and float(plane.msp.max()) <= 1 + 1e-6
    assert float(plane.mutual_information.min()) >= -1e-6
    points, ticks = toy.plane_grid(5.0, 11)
    assert torch.equal(points[12], torch.stack([ticks[1], ticks[1]]))  # row 1 (y), column 1 (x)
    ring = toy.ring_profile(members, [1.0, 10.0, 1000.0], n=90)
    assert ring.member_msp.shape == (3, 3) and ring.mutual_information.shape == ring.disagree.shape == (3,)
    assert torch.equal(ring.msp, ring.member_msp[0])
    assert float(ring.member_msp[:, -1].min()) > 0.99  # every member is sure far away
    one = toy.ring_profile(members[:1], [1.0, 1000.0], n=90)
    assert float(one.mutual_information.abs().max()) < 1e-9 and float(one.disagree.max()) == 0.0
    pts = toy.ring_points(2.0, 8, centre=(1.0, -1.0))
    assert torch.allclose((pts - torch.tensor([1.0, -1.0])).norm(dim=1), torch.full((8,), 2.0))


def test_bad_arguments_are_refused(data, members):
    points, labels = data
    with pytest.raises(ValueError, match="n_per_class"):
        toy.make_clusters(n_per_class=0)
    with pytest.raises(ValueError, match="classes"):
        toy.make_clusters(classes=1)
    with pytest.raises(ValueError, match="std"):
        toy.make_clusters(std=-1.0)
    with pytest.raises(TypeError, match="seed"):
        toy.make_clusters(seed=1.5)
    with pytest.raises(ValueError, match="points"):
        toy.train_mlp(points[:, :1], labels)
    with pytest.raises(ValueError, match="labels"):
        toy.train_mlp(points, labels[:-1])
    with pytest.raises(ValueError, match="lr"):
        toy.train_mlp(points, labels, lr=0.0)
    with pytest.raises(ValueError, match="members"):
        toy.train_ensemble(points, labels, members=0)
    with pytest.raises(TypeError, match="seed"):
        toy.train_ensemble(points, labels, members=2, steps=1, seed=0, **{"seed": 1})  # type: ignore[misc]
    with pytest.raises(ValueError, match="models"):
        toy.member_probs([], points)
    with pytest.raises(TypeError, match="models"):
        toy.member_probs(members[0], points)
    with pytest.raises(ValueError, match="member_probs"):
        toy.mutual_information(torch.ones(3, 4))
    with pytest.raises(ValueError, match="extent"):
        toy.plane_grid(extent=0.0)
    with pytest.raises(ValueError, match="radius"):
        toy.ring_points(-1.0)
    with pytest.raises(ValueError, match="centre"):
        toy.ring_points(1.0, centre=(0.0,))
    with pytest.raises(ValueError, match="radii"):
        toy.ring_profile(members, [])


def test_figure_is_drawn_legibly(data, members):
    plane = toy.evaluate_plane(members, extent=8.0, n=21)
    ring = toy.ring_profile(members, [3.0, 30.0, 300.0], n=36)
    fig = plots.show_toy_plane(*data, plane, ring, mark=5.0)
    assert isinstance(fig, Figure) and len(fig.axes) == 5  # three panels, two colour bars
    assert fig.get_figwidth() <= 8.7
    assert _smallest_text_px(fig) >= 9.0  # legible on a 784 px page
    with pytest.raises(TypeError, match="plane"):
        plots.show_toy_plane(*data, ring, ring)
    with pytest.raises(ValueError, match="mark"):
        plots.show_toy_plane(*data, plane, ring, mark=-1.0)
    with pytest.raises(ValueError, match="labels"):
        plots.show_toy_plane(data[0], data[1][:-1], plane, ring)
