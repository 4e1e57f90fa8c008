"""A 2-D toy for chapter 2: ReLU MLPs trained on Gaussian clusters in the plane, and what they say far away.

Hein et al. (2019) prove that a ReLU network is piecewise affine in its input, so along almost every
ray ``r * u`` its max-softmax tends to 1 as ``r`` grows. In the plane this can be *seen*:
:func:`make_clusters` draws a few labelled clusters, :func:`train_ensemble` fits ``S`` small ReLU
MLPs that differ only in their seed, and :func:`evaluate_plane` and :func:`ring_profile` measure, on
a grid and on circles of growing radius around the data, one member's max-softmax and the ensemble's
mutual information ``H[p_bar] - (1/S) sum_s H[p_s]`` (in nats).

Everything runs on the CPU in float32, is seeded, and costs a few seconds; the same arguments give
the same tensors on a given machine. No function changes the global random state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "PlaneMaps",
    "RingProfile",
    "evaluate_plane",
    "make_clusters",
    "make_mlp",
    "member_probs",
    "mutual_information",
    "plane_grid",
    "ring_points",
    "ring_profile",
    "train_ensemble",
    "train_mlp",
]


# --------------------------------------------------------------------------------------------------
# argument checks


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _check_positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_points(points: torch.Tensor, name: str = "points") -> torch.Tensor:
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {points.dtype}")
    return points.detach().float().cpu()


def _check_labels(labels: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.shape != (n,):
        raise ValueError(f"labels must be an integer tensor of shape ({n},), got {labels.dtype} {tuple(labels.shape)}")
    if n and int(labels.min()) < 0:
        raise ValueError("labels must be non-negative class indices")
    return labels.detach().long().cpu()


def _check_models(models: Sequence[nn.Module]) -> list[nn.Module]:
    if isinstance(models, nn.Module) or not isinstance(models, Sequence):
        raise TypeError(f"models must be a sequence of nn.Module, got {type(models).__name__}")
    if len(models) == 0:
        raise ValueError("models must hold at least one model")
    for i, m in enumerate(models):
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{i}] must be an nn.Module, got {type(m).__name__}")
    return list(models)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run tiny CPU work on one intra-op thread (more only add overhead), then restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------------
# data and models


def make_clusters(
    n_per_class: int = 100, classes: int = 3, radius: float = 2.0, std: float = 0.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(points (N, 2), labels (N,))``: ``classes`` Gaussian clusters with centres evenly spaced on a circle."""
    n_per_class = _check_int(n_per_class, "n_per_class", 1)
    classes = _check_int(classes, "classes", 2)
    radius, std = _check_positive(radius, "radius"), _check_positive(std, "std")
    seed = _check_int(seed, "seed", 0)
    g = torch.Generator().manual_seed(seed)
    angles = 2 * math.pi * torch.arange(classes, dtype=torch.float64) / classes
    centres = radius * torch.stack([angles.cos(), angles.sin()], 1)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    points = centres[labels] + std * torch.randn(len(labels), 2, generator=g, dtype=torch.float64)
    return points.float(), labels


def make_mlp(classes: int = 3, hidden: int = 32, depth: int = 2, seed: int = 0) -> nn.Sequential:
    """Return a freshly initialised ReLU MLP ``2 -> hidden (x depth) -> classes``, seeded by ``seed``."""
    classes = _check_int(classes, "classes", 2)
    hidden, depth = _check_int(hidden, "hidden", 1), _check_int(depth, "depth", 1)
    seed = _check_int(seed, "seed", 0)
    layers: list[nn.Module] = []
    width_in = 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(depth):
            layers += [nn.Linear(width_in, hidden), nn.ReLU()]
            width_in = hidden
        layers.append(nn.Linear(width_in, classes))
        return nn.Sequential(*layers)


def train_mlp(
    points: torch.Tensor,
    labels: torch.Tensor,
    hidden: int = 32,
    depth: int = 2,
    steps: int = 300,
    lr: float = 0.01,
    seed: int = 0,
) -> nn.Sequential:
    """Train a ReLU MLP on ``(points, labels)`` with full-batch Adam and cross-entropy; return it in eval mode."""
    points = _check_points(points)
    labels = _check_labels(labels, points.shape[0])
    steps, lr = _check_int(steps, "steps", 0), _check_positive(lr, "lr")
    model = make_mlp(int(labels.max()) + 1 if len(labels) else 2, hidden, depth, seed)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.enable_grad(), _one_thread():
        for _ in range(steps):  # full batch: no sampling, so the run is deterministic
            opt.zero_grad()
            nn.functional.cross_entropy(model(points), labels).backward()
            opt.step()
    return model.eval()


def train_ensemble(
    points: torch.Tensor, labels: torch.Tensor, members: int = 5, seed: int = 0, **kwargs: int | float
) -> list[nn.Sequential]:
    """Train ``members`` MLPs on the same data that differ only in their seed (``seed``, ``seed + 1``, ...)."""
    members, seed = _check_int(members, "members", 1), _check_int(seed, "seed", 0)
    if "seed" in kwargs:
        raise TypeError("pass seed once, as the seed of the first member")
    return [train_mlp(points, labels, seed=seed + s, **kwargs) for s in range(members)]


# --------------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def member_probs(models: Sequence[nn.Module], points: torch.Tensor) -> torch.Tensor:
    """Return each model's softmax probabilities at ``points`` as one ``(S, N, K)`` tensor."""
    models = _check_models(models)
    points = _check_points(points)
    return torch.stack([m.eval()(points).softmax(-1) for m in models])


def mutual_information(member_probs: torch.Tensor) -> torch.Tensor:
    """Return ``H[mean_s p_s] - mean_s H[p_s]`` (nats, float64, not clamped) of ``(S, N, K)`` probabilities."""
    if not isinstance(member_probs, torch.Tensor):
        raise TypeError(f"member_probs must be a torch.Tensor, got {type(member_probs).__name__}")
    if member_probs.ndim != 3 or member_probs.shape[0] < 1:
        raise ValueError(f"member_probs must have shape (S, N, K) with S >= 1, got {tuple(member_probs.shape)}")
    if not member_probs.is_floating_point():
        raise TypeError(f"member_probs must be floating point, got dtype {member_probs.dtype}")
    p = member_probs.double()
    total = -torch.special.xlogy(p.mean(0), p.mean(0)).sum(-1)
    expected = -torch.special.xlogy(p, p).sum(-1).mean(0)
    return total - expected


def plane_grid(extent: float = 12.0, n: int = 201) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(points (n * n, 2), ticks (n,))``: a square grid over ``[-extent, extent]^2``, rows along y."""
    extent, n = _check_positive(extent, "extent"), _check_int(n, "n", 2)
    ticks = torch.linspace(-extent, extent, n)
    yy, xx = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], 1), ticks


def ring_points(radius: float, n: int = 360, centre: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """Return ``n`` points evenly spaced on the circle of ``radius`` around ``centre``, shape ``(n, 2)``."""
    radius, n = _check_positive(radius, "radius"), _check_int(n, "n", 1)
    if len(centre) != 2:
        raise ValueError(f"centre must be an (x, y) pair, got {centre!r}")
    angles = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    ring = torch.stack([angles.cos(), angles.sin()], 1) * radius
    return (ring + torch.tensor(centre, dtype=torch.float64)).float()


@dataclass
class PlaneMaps:
    """One member's max-softmax and the ensemble's mutual information on a square grid of the plane."""

    ticks: torch.Tensor  # (n,) grid coordinates along x and along y
    msp: torch.Tensor  # (n, n) max-softmax of the first model, rows along y
    mutual_information: torch.Tensor  # (n, n) ensemble mutual information in nats, rows along y
    members: int  # S, the number of models


def evaluate_plane(models: Sequence[nn.Module], extent: float = 12.0, n: int = 201) -> PlaneMaps:
    """Evaluate the first model's max-softmax and all models' mutual information on :func:`plane_grid`."""
    models = _check_models(models)
    points, ticks = plane_grid(extent, n)
    probs = member_probs(models, points)
    mi = mutual_information(probs).float()
    return PlaneMaps(ticks, probs[0].amax(-1).reshape(n, n), mi.reshape(n, n), len(models))


@dataclass
class RingProfile:
    """Means over circles of growing radius around the data: each member's max-softmax and the ensemble's MI."""

    radii: torch.Tensor  # (R,) circle radii
    member_msp: torch.Tensor  # (S, R) mean max-softmax of each model on each circle
    mutual_information: torch.Tensor  # (R,) mean ensemble mutual information on each circle (nats)
    disagree: torch.Tensor  # (R,) share of the circle's points where the models' predicted classes differ

    @property
    def msp(self) -> torch.Tensor:
        """Mean max-softmax of the first model on each circle ``(R,)``."""
        return self.member_msp[0]


def ring_profile(
    models: Sequence[nn.Module],
    radii: Sequence[float],
    n: int = 360,
    centre: tuple[float, float] = (0.0, 0.0),
) -> RingProfile:
    """Measure, on ``n`` points of each circle of ``radii`` around ``centre``, mean max-softmax and mutual information."""
    models = _check_models(models)
    radii = [float(r) for r in radii]
    if not radii:
        raise ValueError("radii must hold at least one radius")
    msp, mi, disagree = [], [], []
    for r in radii:
        probs = member_probs(models, ring_points(r, n, centre))
        msp.append(probs.amax(-1).mean(1))
        mi.append(mutual_information(probs).mean())
        votes = probs.argmax(-1)
        disagree.append((votes != votes[:1]).any(0).float().mean())
    return RingProfile(torch.tensor(radii), torch.stack(msp, 1), torch.stack(mi).float(), torch.stack(disagree))
