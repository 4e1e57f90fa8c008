"""Per-pixel uncertainty scores from one trained segmentation network, without retraining.

Every score follows the convention of :mod:`utils.metrics`: it is *larger* where the model should be
less sure, so an AUROC ranks the positive (misclassified or out-of-distribution) pixels first.

From the logits ``z`` (B, K, H, W):

* :func:`max_logit_score`: ``-max_k z_k`` (the max logit of Hendrycks et al. 2022, negated);
* :func:`energy`: ``E = -T logsumexp(z / T)`` (Liu et al. 2020; T = 1 by default).

From the penultimate features (the input of the last layer, one D-vector per pixel):

* :class:`ClassGaussians`: one Gaussian per class with a shared covariance, fitted on a pixel
  subsample of training features (Lee et al. 2018; the density of Mukhoti et al.'s DDU); its score is
  the squared Mahalanobis distance to the nearest class mean, or the negative log-density of the
  mixture. :func:`features_and_logits` gets the features with a forward pre-hook on a named layer:
  :func:`resolve_layer` finds the course U-Net's last layer (``head``) by itself and takes a module or
  a dotted name for any other model (e.g. ``"classifier.4"``, the last convolution of a torchvision
  DeepLabV3 head; for LRASPP hook ``"classifier.high_classifier"``). Features of lower resolution are
  resized to the image's size (bilinear).

From several augmented passes:

* :func:`tta`: test-time augmentation (Wang et al. 2019): the mean softmax over ``S`` augmented copies
  (small shifts, intensity gains, optionally flips), each mapped back to the original pixel grid; a
  pixel shifted out of view counts only in the passes that saw it. It returns a
  :class:`TTAPredictive`: a :class:`utils.uncertainty.Predictive` with the entropy maps and the
  ``disagreement`` (share of the passes whose label differs from the mean's label).

Image-level scores (mean or top-k of any of these maps) come from :func:`utils.metrics.image_scores`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import IGNORE_INDEX
from .metrics._checks import _check_label_map, _check_logits
from .models import _check_images, forward_logits
from .uncertainty import Predictive, _check_model, _model_device, _restore_modes, entropy

__all__ = [
    "DEFAULT_AUGMENTS",
    "FLIP_AUGMENTS",
    "Augment",
    "ClassGaussians",
    "TTAPredictive",
    "energy",
    "features_and_logits",
    "fit_gaussians",
    "logit_scores",
    "max_logit_score",
    "percentile_rank",
    "resolve_layer",
    "sample_pixels",
    "score_maps",
    "seconds_per_image",
    "tail_scale",
    "tta",
]


# --------------------------------------------------------------------------------------------------
# scores from the logits


def max_logit_score(logits: torch.Tensor) -> torch.Tensor:
    """Return ``-max_k z_k`` ``(B, H, W)`` of logits ``(B, K, H, W)``: the max logit, negated so that larger means less sure."""
    _check_logits(logits)
    return -logits.amax(1)


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Return the free energy ``-T logsumexp(z / T)`` ``(B, H, W)`` of logits ``(B, K, H, W)`` (Liu et al. 2020)."""
    _check_logits(logits)
    ok = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not ok or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return -temperature * torch.logsumexp(logits / temperature, dim=1)


def logit_scores(logits: torch.Tensor, temperature: float = 1.0) -> dict[str, torch.Tensor]:
    """Return the four logit scores ``(B, H, W)``: ``1 - max-softmax``, ``entropy``, ``-max logit`` and ``energy``."""
    _check_logits(logits)
    probs = logits.float().softmax(1)
    return {
        "1 - max-softmax": 1 - probs.amax(1),
        "entropy": entropy(probs, dim=1),
        "-max logit": max_logit_score(logits),
        "energy": energy(logits, temperature),
    }


# --------------------------------------------------------------------------------------------------
# penultimate features


def resolve_layer(model: nn.Module, layer: nn.Module | str | None = None) -> nn.Module:
    """Return the layer whose *input* is the penultimate feature map of ``model``.

    ``layer=None`` finds the last layer of the course U-Net (its ``head``, a 1x1 convolution) or of
    any model with a ``head`` convolution; for other models pass the module itself or its dotted
    name in ``model.named_modules()`` (torchvision DeepLabV3: ``"classifier.4"``; FCN:
    ``"classifier.4"``; LRASPP: ``"classifier.high_classifier"``).
    """
    _check_model(model)
    named = dict(model.named_modules())
    if layer is None:
        head = getattr(model, "head", None)
        if isinstance(head, nn.Conv2d):
            return head
        raise ValueError(
            "layer=None finds only a 'head' convolution (the course U-Net); name the last layer of this "
            f"model, e.g. one of {[n for n, m in named.items() if isinstance(m, nn.Conv2d)][-3:]}"
        )
    if isinstance(layer, str):
        if layer not in named or layer == "":
            raise ValueError(f"layer {layer!r} is not a submodule name of the model")
        return named[layer]
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in named.values()):
            raise ValueError("layer is a module that is not part of the model")
        return layer
    raise TypeError(f"layer must be None, a module name (str) or an nn.Module, got {type(layer).__name__}")


@torch.no_grad()
def features_and_logits(
    model: nn.Module,
    images: torch.Tensor,
    layer: nn.Module | str | None = None,
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the penultimate features ``(N, D, H, W)`` and the logits ``(N, K, H, W)`` of ``model`` in eval mode, on the CPU.

    The features are the input of ``layer`` (see :func:`resolve_layer`), caught by a forward
    pre-hook that is removed afterwards; features of another spatial size are resized to the
    image's (bilinear). The model's train/eval flags are restored afterwards.
    """
    _check_model(model)
    _check_images(images, "images")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if images.shape[0] == 0:
        raise ValueError("images is empty")
    target = resolve_layer(model, layer)
    dev = torch.device(device) if device is not None else _model_device(model)
    caught: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple) -> None:
        caught.append(inputs[0])

    feats, logits = [], []
    handle = target.register_forward_pre_hook(hook)
    try:
        with _restore_modes([model]):
            model.eval()
            for batch in images.split(batch_size):
                caught.clear()
                z = forward_logits(model, batch.to(dev)).float()
                if len(caught) != 1:
                    raise ValueError(f"layer ran {len(caught)} times in one forward pass; expected once")
                f = caught[0].float()
                if f.ndim != 4:
                    raise ValueError(f"the input of layer must be (B, D, h, w) feature maps, got {tuple(f.shape)}")
                if f.shape[-2:] != batch.shape[-2:]:
                    f = F.interpolate(f, size=batch.shape[-2:], mode="bilinear", align_corners=False)
                feats.append(f.cpu())
                logits.append(z.cpu())
    finally:
        handle.remove()
    return torch.cat(feats), torch.cat(logits)


def sample_pixels(
    features: torch.Tensor,
    labels: torch.Tensor,
    per_image: int = 64,
    seed: int = 0,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``per_image`` random pixels of every image: features ``(M, D)`` and labels ``(M,)`` (ignored pixels left out).

    Pixels are drawn without replacement, uniformly, by a generator seeded with ``seed``.
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 4 or not features.is_floating_point():
        raise ValueError(f"features must be a float tensor (N, D, H, W), got {getattr(features, 'shape', type(features))}")
    _check_label_map(labels, "labels")
    if labels.shape != (features.shape[0],) + features.shape[-2:]:
        raise ValueError(f"labels must have shape {(features.shape[0],) + tuple(features.shape[-2:])}, got {tuple(labels.shape)}")
    pixels = features.shape[-2] * features.shape[-1]
    if isinstance(per_image, bool) or not isinstance(per_image, int) or not 1 <= per_image <= pixels:
        raise ValueError(f"per_image must be an int in [1, {pixels}], got {per_image!r}")
    gen = torch.Generator().manual_seed(seed)
    flat_f = features.flatten(2)  # (N, D, P)
    flat_y = labels.flatten(1)
    idx = torch.stack([torch.randperm(pixels, generator=gen)[:per_image] for _ in range(features.shape[0])])
    f = torch.gather(flat_f, 2, idx[:, None].expand(-1, flat_f.shape[1], -1)).permute(0, 2, 1).reshape(-1, flat_f.shape[1])
    y = torch.gather(flat_y, 1, idx).reshape(-1)
    keep = y != ignore_index
    return f[keep], y[keep]


@dataclass
class ClassGaussians:
    """Class-conditional Gaussians ``N(mu_k, Sigma)`` with one shared covariance, and class priors.

    ``means`` ``(K, D)``, ``precision`` ``(D, D)`` (the inverse of the shared covariance), ``log_priors``
    ``(K,)`` and ``logdet`` (log-determinant of the covariance), all float64. Build it with :meth:`fit`.
    """

    means: torch.Tensor
    precision: torch.Tensor
    log_priors: torch.Tensor
    logdet: float

    @classmethod
    def fit(cls, features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None, ridge: float = 1e-4) -> ClassGaussians:
        """Fit the class means, the pooled within-class covariance and the class frequencies to features ``(M, D)``, labels ``(M,)``.

        ``ridge`` times the mean variance is added to the covariance's diagonal (features after a
        ReLU are often degenerate); ``num_classes`` defaults to ``labels.max() + 1``. Every class
        needs at least one sample.
        """
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or not features.is_floating_point():
            raise ValueError(f"features must be a float tensor (M, D), got {getattr(features, 'shape', type(features))}")
        _check_label_map(labels, "labels")
        if labels.shape != features.shape[:1]:
            raise ValueError(f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}")
        if labels.numel() == 0:
            raise ValueError("features is empty")
        if int(labels.min()) < 0:
            raise ValueError("labels must be >= 0 (leave ignored pixels out)")
        k = int(labels.max()) + 1 if num_classes is None else num_classes
        if isinstance(k, bool) or not isinstance(k, int) or k < int(labels.max()) + 1:
            raise ValueError(f"num_classes must be an int > every label ({int(labels.max())}), got {num_classes!r}")
        if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
        x = features.double()
        counts = torch.bincount(labels, minlength=k)
        if (counts == 0).any():
            raise ValueError(f"every class needs at least one sample; none for classes {torch.nonzero(counts == 0).flatten().tolist()}")
        means = torch.zeros(k, x.shape[1], dtype=torch.float64).index_add_(0, labels, x) / counts[:, None]
        centred = x - means[labels]
        cov = centred.T @ centred / max(len(x) - k, 1)
        cov = cov + ridge * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(x.shape[1], dtype=torch.float64)
        logdet = torch.linalg.slogdet(cov)[1]
        return cls(means, torch.linalg.inv(cov), (counts.double() / counts.sum()).log(), float(logdet))

    def _flat(self, features: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """Features ``(M, D)`` or ``(N, D, H, W)`` as ``(M, D)`` float64, and how to give a result the input's shape."""
        d = self.means.shape[1]
        if not isinstance(features, torch.Tensor) or not features.is_floating_point():
            raise TypeError(f"features must be a float tensor, got {type(features).__name__}")
        if features.ndim == 2 and features.shape[1] == d:
            return features.double(), lambda v: v
        if features.ndim == 4 and features.shape[1] == d:
            n, _, h, w = features.shape
            return features.permute(0, 2, 3, 1).reshape(-1, d).double(), lambda v: v.reshape(n, h, w)
        raise ValueError(f"features must be (M, {d}) or (N, {d}, H, W), got {tuple(features.shape)}")

    def squared_distances(self, features: torch.Tensor) -> torch.Tensor:
        """Return the squared Mahalanobis distance to every class mean, classes last: ``(M, K)`` or ``(N, H, W, K)``."""
        x, _ = self._flat(features)
        chol = torch.linalg.cholesky(self.precision)  # precision = L L^T, so d^2 = |(x - mu) L|^2
        xl, ml = x @ chol, self.means @ chol
        d2 = (xl**2).sum(1, keepdim=True) - 2 * xl @ ml.T + (ml**2).sum(1)
        d2 = d2.clamp_min(0.0)
        return d2 if features.ndim == 2 else d2.reshape(*features.shape[:1], *features.shape[2:], -1)

    def mahalanobis(self, features: torch.Tensor) -> torch.Tensor:
        """Return the squared Mahalanobis distance to the *nearest* class mean (Lee et al. 2018), ``(M,)`` or ``(N, H, W)``."""
        return self.squared_distances(features).amin(-1)

    def log_density(self, features: torch.Tensor) -> torch.Tensor:
        """Return ``log sum_k pi_k N(x; mu_k, Sigma)`` (the mixture's log-density, as in DDU), ``(M,)`` or ``(N, H, W)``."""
        return self._log_density(self.squared_distances(features))

    def _log_density(self, d2: torch.Tensor) -> torch.Tensor:
        d = self.means.shape[1]
        log_normal = -0.5 * (d * math.log(2 * math.pi) + self.logdet + d2)
        return torch.logsumexp(log_normal + self.log_priors, dim=-1)

    def score(self, features: torch.Tensor, kind: str = "density") -> torch.Tensor:
        """Return an uncertainty score (larger = less typical): ``"density"``, ``-log_density``; ``"mahalanobis"``, the nearest distance."""
        if kind == "density":
            return -self.log_density(features)
        if kind == "mahalanobis":
            return self.mahalanobis(features)
        raise ValueError(f"kind must be 'density' or 'mahalanobis', got {kind!r}")


def fit_gaussians(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    layer: nn.Module | str | None = None,
    per_image: int = 64,
    seed: int = 0,
    ridge: float = 1e-4,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
) -> ClassGaussians:
    """Fit :class:`ClassGaussians` on ``per_image`` random pixels of every training image's penultimate features.

    ``num_classes`` defaults to the model's number of output channels.
    """
    _check_label_map(labels, "labels")
    feats, logits = features_and_logits(model, images, layer, device=device)
    f, y = sample_pixels(feats, labels, per_image, seed)
    return ClassGaussians.fit(f, y, logits.shape[1] if num_classes is None else num_classes, ridge)


def score_maps(
    model: nn.Module,
    images: torch.Tensor,
    gaussians: ClassGaussians | None = None,
    layer: nn.Module | str | None = None,
    temperature: float = 1.0,
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Return every one-pass score map ``(N, H, W)`` (float32) of ``model`` on ``images``, and the logits.

    The maps are those of :func:`logit_scores`, plus ``"density"`` (``-log density``) and
    ``"mahalanobis"`` of ``gaussians`` on the penultimate features of ``layer`` when ``gaussians`` is
    given; all come from one forward pass.
    """
    if gaussians is not None and not isinstance(gaussians, ClassGaussians):
        raise TypeError(f"gaussians must be a ClassGaussians or None, got {type(gaussians).__name__}")
    feats, logits = features_and_logits(model, images, layer, batch_size, device)
    maps = logit_scores(logits, temperature)
    if gaussians is not None:
        d2 = gaussians.squared_distances(feats)  # once, for both scores
        maps["density"] = (-gaussians._log_density(d2)).float()
        maps["mahalanobis"] = d2.amin(-1).float()
    return maps, logits


# --------------------------------------------------------------------------------------------------
# test-time augmentation


@dataclass(frozen=True)
class Augment:
    """One test-time augmentation: multiply the intensity by ``gain`` (clipped to [0, 1]), flip, then shift by ``(dy, dx)`` pixels.

    The shift fills the uncovered border with 0 (dark background). Mapping a prediction back undoes
    the shift and the flips; the intensity gain needs no mapping.
    """

    dy: int = 0
    dx: int = 0
    flip_h: bool = False
    flip_v: bool = False
    gain: float = 1.0

    def __post_init__(self) -> None:
        for name in ("dy", "dx"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be an int (pixels), got {v!r}")
        if not (isinstance(self.gain, (int, float)) and math.isfinite(self.gain) and self.gain > 0):
            raise ValueError(f"gain must be a positive finite number, got {self.gain!r}")

    def _flip(self, t: torch.Tensor) -> torch.Tensor:
        dims = [d for d, on in ((-1, self.flip_h), (-2, self.flip_v)) if on]
        return t.flip(dims) if dims else t

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """Return the augmented images ``(B, C, H, W)``."""
        x = (images * self.gain).clamp(0, 1) if self.gain != 1 else images
        return _shift(self._flip(x), self.dy, self.dx)

    def invert(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``(B, K, H, W)`` outputs back to the original grid; return them and the ``(H, W)`` mask of pixels the pass saw."""
        seen = _shift(torch.ones(maps.shape[-2:], device=maps.device), -self.dy, -self.dx)
        return self._flip(_shift(maps, -self.dy, -self.dx)), self._flip(seen) > 0


def _shift(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift the last two axes of ``t`` by ``(dy, dx)`` (down, right), filling with zeros."""
    if dy == 0 and dx == 0:
        return t
    h, w = t.shape[-2:]
    out = torch.zeros_like(t)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = t[..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


#: Nine augmentations for digit scenes: none, four 2-pixel shifts, two intensity gains, two shift-and-gain.
#: No flips: a mirrored digit is not the same digit (see :data:`FLIP_AUGMENTS`).
DEFAULT_AUGMENTS: tuple[Augment, ...] = (
    Augment(),
    Augment(dy=2),
    Augment(dy=-2),
    Augment(dx=2),
    Augment(dx=-2),
    Augment(gain=0.8),
    Augment(gain=1.25),
    Augment(dy=2, dx=2, gain=0.9),
    Augment(dy=-2, dx=-2, gain=1.1),
)

#: The default set with three flips added (horizontal, vertical, both): for scenes whose classes are mirror-symmetric.
FLIP_AUGMENTS: tuple[Augment, ...] = DEFAULT_AUGMENTS + (
    Augment(flip_h=True),
    Augment(flip_v=True),
    Augment(flip_h=True, flip_v=True),
)


@dataclass
class TTAPredictive(Predictive):
    """A :class:`~utils.uncertainty.Predictive` from test-time augmentation, with ``disagreement`` ``(N, H, W)``.

    ``disagreement`` is the share of the passes that saw a pixel whose label differs from the
    label of the mean prediction (0 when all agree).
    """

    disagreement: torch.Tensor | None = None


@torch.no_grad()
def tta(
    model: nn.Module,
    images: torch.Tensor,
    augments: Sequence[Augment] = DEFAULT_AUGMENTS,
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> TTAPredictive:
    """Return the test-time-augmentation predictive distribution of ``model`` (eval mode) over ``augments`` (Wang et al. 2019).

    Each pass's softmax is mapped back to the original pixels; a pixel's mean, expected entropy and
    disagreement use only the passes that saw it (a shifted-out border pixel is missing from some).
    ``samples`` is the number of augmentations. The model's train/eval flags are restored.
    """
    _check_model(model)
    _check_images(images, "images")
    if isinstance(augments, Augment) or not isinstance(augments, Sequence) or len(augments) == 0:
        raise TypeError("augments must be a non-empty sequence of Augment")
    for i, a in enumerate(augments):
        if not isinstance(a, Augment):
            raise TypeError(f"augments[{i}] must be an Augment, got {type(a).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if images.shape[0] == 0:
        raise ValueError("images is empty")
    dev = torch.device(device) if device is not None else _model_device(model)
    probs_out, ent_out, dis_out = [], [], []
    with _restore_modes([model]):
        model.eval()
        for batch in images.split(batch_size):
            batch = batch.to(dev)
            passes, seen = [], []
            for a in augments:
                p = forward_logits(model, a.apply(batch)).float().softmax(1)
                p, s = a.invert(p)
                passes.append(p)
                seen.append(s)
            seen_t = torch.stack(seen).float()  # (S, H, W)
            count = seen_t.sum(0).clamp_min(1.0)
            stacked = torch.stack(passes)  # (S, B, K, H, W)
            mean = (stacked * seen_t[:, None, None]).sum(0) / count
            ent = (entropy(stacked, dim=2) * seen_t[:, None]).sum(0) / count
            label = mean.argmax(1)
            differs = (stacked.argmax(2) != label).float() * seen_t[:, None]
            probs_out.append(mean.cpu())
            ent_out.append(ent.cpu())
            dis_out.append((differs.sum(0) / count).cpu())
    return TTAPredictive(torch.cat(probs_out), torch.cat(ent_out), len(augments), None, torch.cat(dis_out))


# --------------------------------------------------------------------------------------------------
# display and cost


def percentile_rank(score: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Return, for every entry of ``score``, the share of ``reference`` values below it (0 to 1), in ``score``'s shape.

    Puts scores of different units on one scale for display: 0.99 means "higher than 99 % of the
    reference pixels" (e.g. the clean test pixels).
    """
    for name, t in (("score", score), ("reference", reference)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got {type(t).__name__}")
    if reference.numel() == 0:
        raise ValueError("reference is empty")
    ref = reference.detach().flatten().double().cpu().sort().values
    return torch.searchsorted(ref, score.detach().double().cpu().contiguous(), right=False).float() / ref.numel()


def tail_scale(score: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Map ``score`` monotonically onto (0, 10) as ``-log10(1 - rank)``, ranked among ``reference``, for :func:`utils.spread.detection_sums`.

    The scene bootstrap of :mod:`utils.spread` bins scores on a log scale from 1e-7 to 10, made for
    ``1 - max-softmax``. Scores in other units (a logit, an energy, a log-density) would fall into its
    first or last bin; their rank among the ``reference`` values (e.g. every scored pixel) keeps their
    order, and ``-log10(1 - rank)`` spreads the upper tail, where the errors are, over many bins.
    An AUROC depends on the order only, so it is unchanged up to the binning.
    """
    rank = percentile_rank(score, reference).double()
    n = reference.numel()
    rank = (rank * n + 0.5) / (n + 1)                       # strictly inside (0, 1)
    return (-torch.log10(1 - rank)).float()


def seconds_per_image(
    runs: Mapping[str, Callable[[torch.Tensor], object]], images: torch.Tensor, repeats: int = 3
) -> dict[str, float]:
    """Return, for every named ``run``, the fastest of ``repeats`` timings of ``run(images)`` per image (seconds).

    The runs are timed in turn, round after round (``time.perf_counter``), so that a burst of load on
    a shared machine hits all of them alike. The absolute times depend on the machine; ratios between
    runs timed together are what carries over.
    """
    _check_images(images, "images")
    if not isinstance(runs, Mapping) or not runs:
        raise TypeError("runs must be a non-empty mapping of name -> callable")
    for name, run in runs.items():
        if not callable(run):
            raise TypeError(f"runs[{name!r}] must be callable, got {type(run).__name__}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    if images.shape[0] == 0:
        raise ValueError("images is empty")
    best = {name: math.inf for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(images)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: t / images.shape[0] for name, t in best.items()}
