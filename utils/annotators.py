"""Several annotators per DigitScenes scene, whose disagreement is known by construction; measures against them.

A multi-annotator scene is a DigitScenes scene (same pools, placement, overlap and noise rules as
:mod:`utils.data`) in which each of ``A`` annotators (4 by default, like LIDC-IDRI's radiologists)
draws their own label map. Every glyph is one of three kinds, drawn per glyph with probabilities
``AnnotatorConfig.kinds``:

``agreed``
    An ordinary digit; every annotator labels its stroke (ink >= 0.5, the mask rule of
    :mod:`utils.data`) as that digit.
``ambiguous``
    A digit blended between two classes: the 28x28 MNIST images of a digit of class ``a`` and one of
    another class ``b`` are mixed pixelwise, ``w * x_a + (1 - w) * x_b``, with ``w`` drawn from
    ``AnnotatorConfig.blend_weights``, and rescaled by ``1 / max(w, 1 - w)`` (clipped to 1) so that the
    dominant digit keeps full ink. All annotators draw the same stroke (ink >= 0.5); exactly
    ``round(w * A)`` of them (clipped to ``[1, A - 1]``), chosen at random, call it ``a``, the others
    ``b``. The proportion is known: it is the ``share`` recorded for the glyph.
``boundary``
    An ordinary digit drawn thinner or thicker: annotator ``j`` labels the pixels whose ink is at
    least ``t_j``, the thresholds spread evenly over ``AnnotatorConfig.thresholds`` (annotator 0 the
    lowest threshold: the thickest strokes). All agree on the class.

Per pixel, :func:`label_distribution` gives the annotators' label distribution, :func:`annotator_entropy`
its entropy (the disagreement, nats) and :func:`disagreement_kind` which kind of disagreement it is:
0 = all agree, 1 = class (all say digit, not the same one), 2 = boundary (some say background).

Scene ``i`` of split ``s`` with seed ``r`` is always the same: its random numbers come from
``numpy.random.default_rng([r, 20 + split_id, i])`` alone (DigitScenes uses ``split_id``, letter
scenes ``10 + split_id``).

Measures (Kohl et al. 2018's generalised energy distance; correlations of per-pixel scores with the
disagreement) are at the end of the module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .config import NUM_CLASSES, SPLIT_SIZES, SPLITS, STROKE_THRESHOLD
from .data import DigitScenes, Scene, SceneConfig, _add_noise, _check_split, _draw_glyph, _paste_glyph, _pool, _stack_field
from . import spread

__all__ = [
    "KINDS",
    "AnnotatorConfig",
    "AnnotatorScene",
    "AnnotatorScenes",
    "Glyph",
    "annotator_entropy",
    "correlation",
    "correlation_difference",
    "correlation_sums",
    "disagreement_kind",
    "energy_distance",
    "energy_distance_terms",
    "iou_distance",
    "label_distribution",
    "log_ratio_difference",
    "make_annotator_scene",
    "masked_mean",
    "mean_ratio",
    "pixel_correlation",
    "scene_energy_distances",
]

#: The glyph kinds, in the order of ``AnnotatorConfig.kinds``; also the codes of :func:`disagreement_kind` (0, 1, 2).
KINDS: tuple[str, ...] = ("agreed", "ambiguous", "boundary")

_SPLIT_OFFSET = 20  # multi-annotator scenes seed with 20 + split id, never colliding with DigitScenes' or letters'


@dataclass(frozen=True)
class AnnotatorConfig:
    """How many annotators there are and how they disagree; every field is validated on construction."""

    annotators: int = 4
    kinds: tuple[float, float, float] = (0.4, 0.3, 0.3)  # probability of an agreed, ambiguous, boundary glyph
    blend_weights: tuple[float, ...] = (0.25, 0.5, 0.75)  # weight w of class a in an ambiguous glyph
    thresholds: tuple[float, float] = (0.2, 0.8)  # ink thresholds of the thickest and the thinnest annotator

    def __post_init__(self) -> None:
        a = self.annotators
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 2:
            raise ValueError(f"annotators must be an int >= 2, got {a!r}")
        if len(self.kinds) != 3 or any(not 0.0 <= float(p) <= 1.0 for p in self.kinds):
            raise ValueError(f"kinds must be three probabilities (agreed, ambiguous, boundary), got {self.kinds!r}")
        if abs(sum(float(p) for p in self.kinds) - 1.0) > 1e-9:
            raise ValueError(f"kinds must sum to 1, got {self.kinds!r} (sum {sum(self.kinds):g})")
        if len(self.blend_weights) == 0 or any(not 0.0 < float(w) < 1.0 for w in self.blend_weights):
            raise ValueError(f"blend_weights must be a non-empty tuple of numbers in (0, 1), got {self.blend_weights!r}")
        if len(self.thresholds) != 2:
            raise ValueError(f"thresholds must be a (low, high) pair, got {self.thresholds!r}")
        lo, hi = float(self.thresholds[0]), float(self.thresholds[1])
        if not 0.0 < lo < hi <= 1.0:
            raise ValueError(f"thresholds must satisfy 0 < low < high <= 1, got {self.thresholds!r}")

    def annotator_thresholds(self) -> np.ndarray:
        """Return the ink threshold of each annotator on a boundary glyph (annotator 0 the lowest: thickest strokes)."""
        return np.linspace(float(self.thresholds[0]), float(self.thresholds[1]), int(self.annotators))

    def votes_for_a(self, w: float) -> int:
        """Return how many annotators call an ambiguous glyph of weight ``w`` class ``a``: ``round(w * A)`` in ``[1, A - 1]``."""
        return int(min(max(round(float(w) * self.annotators), 1), self.annotators - 1))


@dataclass
class Glyph:
    """One placed glyph: its kind, its class(es), the share of annotators giving each, its weight and box."""

    kind: str
    digits: tuple[int, ...]  # (a,) or, for an ambiguous glyph, (a, b)
    share: tuple[float, ...]  # fraction of annotators labelling it each digit (sums to 1)
    weight: float  # blend weight of a (1.0 unless ambiguous)
    box: tuple[int, int, int, int]  # (top, left, h, w)


@dataclass
class AnnotatorScene:
    """One multi-annotator scene: image, the annotators' label maps, a reference label map, and its glyphs."""

    image: np.ndarray  # (H, W) float32 in [0, 1]
    annotations: np.ndarray  # (A, H, W) uint8, one label map per annotator
    reference: np.ndarray  # (H, W) uint8: ink >= 0.5 labelled with the class most annotators give (ties: lower digit)
    instances: np.ndarray  # (H, W) uint8, 0 = none, j + 1 = j-th placed glyph (ink >= 0.5)
    glyphs: list[Glyph] = field(default_factory=list)

    @property
    def digits(self) -> list[int]:
        """Class of each placed glyph (0-9) in the reference label map."""
        return [_reference_digit(g) for g in self.glyphs]


def _reference_digit(g: Glyph) -> int:
    """The digit most annotators give a glyph; a tie goes to the lower digit (the lower class index)."""
    best = max(g.share)
    return min(d for d, s in zip(g.digits, g.share) if s == best)


def _check_index(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def _blend(x_a: np.ndarray, x_b: np.ndarray, w: float) -> np.ndarray:
    """Pixelwise mix ``w x_a + (1 - w) x_b`` of two 28x28 digits, rescaled so that the dominant digit keeps full ink."""
    return np.clip((w * x_a + (1.0 - w) * x_b) / max(w, 1.0 - w), 0.0, 1.0).astype(np.float32)


def make_annotator_scene(
    split: str,
    index: int,
    seed: int = 0,
    config: SceneConfig | None = None,
    annotators: AnnotatorConfig | None = None,
) -> AnnotatorScene:
    """Render multi-annotator scene ``index`` of ``split``; the same arguments always give the same arrays."""
    _check_split(split)
    index = _check_index(index, "index")
    seed = _check_index(seed, "seed")
    if config is not None and not isinstance(config, SceneConfig):
        raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
    if annotators is not None and not isinstance(annotators, AnnotatorConfig):
        raise TypeError(f"annotators must be an AnnotatorConfig, got {type(annotators).__name__}")
    cfg, acfg = config or SceneConfig(), annotators or AnnotatorConfig()
    pool_x, pool_y, _ = _pool(split)
    rng = np.random.default_rng([seed, _SPLIT_OFFSET + SPLITS[split], index])
    size, n_ann = cfg.size, int(acfg.annotators)
    scene = Scene(np.zeros((size, size), np.float32), np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8))
    annotations = np.zeros((n_ann, size, size), np.uint8)
    thresholds = acfg.annotator_thresholds()
    glyphs: list[Glyph] = []
    n = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
    for _ in range(n):
        kind = KINDS[int(rng.choice(3, p=np.asarray(acfg.kinds, dtype=float) / sum(acfg.kinds)))]
        k = int(rng.integers(len(pool_x)))
        a = int(pool_y[k])
        if kind == "ambiguous":
            k2 = int(rng.integers(len(pool_x)))
            while int(pool_y[k2]) == a:
                k2 = int(rng.integers(len(pool_x)))
            b = int(pool_y[k2])
            w = float(acfg.blend_weights[int(rng.integers(len(acfg.blend_weights)))])
            votes = acfg.votes_for_a(w)
            says_a = np.zeros(n_ann, bool)
            says_a[rng.permutation(n_ann)[:votes]] = True
            source = _blend(pool_x[k], pool_x[k2], w)
            glyph = Glyph(kind, (a, b), (votes / n_ann, 1 - votes / n_ann), w, (0, 0, 0, 0))
        else:
            source = pool_x[k]
            glyph = Glyph(kind, (a,), (1.0,), 1.0, (0, 0, 0, 0))
        ink = _draw_glyph(rng, source, cfg)
        if not _paste_glyph(scene, ink, _reference_digit(glyph), rng, cfg):
            continue  # no room for this glyph: left out, as in DigitScenes
        top, left, h, wd = scene.boxes[-1]
        glyph.box = (top, left, h, wd)
        window = (slice(top, top + h), slice(left, left + wd))
        for j in range(n_ann):
            threshold = thresholds[j] if kind == "boundary" else STROKE_THRESHOLD
            label = (a if kind != "ambiguous" or says_a[j] else b) + 1
            annotations[j][window][ink >= threshold] = label  # the later glyph wins, as in DigitScenes
        glyphs.append(glyph)
    _add_noise(scene, rng, cfg)
    return AnnotatorScene(scene.image, annotations, scene.label, scene.instances, glyphs)


class AnnotatorScenes(DigitScenes):
    """Multi-annotator scenes as a DigitScenes-like dataset of ``(image (1, H, W), label (H, W) int64)``.

    ``annotations`` ``(N, A, H, W)`` uint8 holds every annotator's map. ``labels`` is what the dataset
    trains or scores on: ``label="reference"`` the reference map (ink >= 0.5, class most annotators
    give), ``label="random"`` one annotator drawn per scene from ``numpy.random.default_rng([draw_seed,
    start + i])`` (what a team with several annotators usually trains on), or an int: that annotator's map.
    """

    def __init__(
        self,
        split: str,
        size: int | None = None,
        seed: int = 0,
        start: int = 0,
        config: SceneConfig | None = None,
        annotators: AnnotatorConfig | None = None,
        label: str | int = "reference",
        draw_seed: int = 0,
    ) -> None:
        _check_split(split)
        size = SPLIT_SIZES[split] if size is None else size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"size must be a non-negative int, got {size!r}")
        start, seed, draw_seed = _check_index(start, "start"), _check_index(seed, "seed"), _check_index(draw_seed, "draw_seed")
        acfg = annotators or AnnotatorConfig()
        if not isinstance(acfg, AnnotatorConfig):
            raise TypeError(f"annotators must be an AnnotatorConfig, got {type(acfg).__name__}")
        if isinstance(label, bool) or not (label in ("reference", "random") or
                                           (isinstance(label, (int, np.integer)) and 0 <= label < acfg.annotators)):
            raise ValueError(f"label must be 'reference', 'random' or an annotator index in [0, {acfg.annotators}), got {label!r}")
        if config is not None and not isinstance(config, SceneConfig):
            raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
        self.split, self.seed, self.start, self.label_source, self.draw_seed = split, seed, start, label, draw_seed
        self.config, self.annotator_config = config or SceneConfig(), acfg
        scenes = [make_annotator_scene(split, start + i, seed, self.config, acfg) for i in range(size)]
        s, n_ann = self.config.size, int(acfg.annotators)
        self.images = torch.from_numpy(_stack_field(scenes, "image", np.float32, s)).unsqueeze(1)
        self.annotations = torch.from_numpy(
            np.stack([sc.annotations for sc in scenes]) if scenes else np.zeros((0, n_ann, s, s), np.uint8))
        self.reference = torch.from_numpy(_stack_field(scenes, "reference", np.uint8, s).astype(np.int64))
        self.instances = torch.from_numpy(_stack_field(scenes, "instances", np.uint8, s).astype(np.int64))
        self.glyphs: list[list[Glyph]] = [sc.glyphs for sc in scenes]
        self.digits: list[list[int]] = [sc.digits for sc in scenes]
        if label == "reference":
            self.labels = self.reference
        else:
            if label == "random":
                pick = [int(np.random.default_rng([draw_seed, start + i]).integers(n_ann)) for i in range(size)]
            else:
                pick = [int(label)] * size
            self.picked = torch.tensor(pick, dtype=torch.long)
            self.labels = self.annotations[torch.arange(size), self.picked].long() if size else self.reference

    def distribution(self, num_classes: int = NUM_CLASSES) -> torch.Tensor:
        """The annotators' label distribution per pixel ``(N, K, H, W)`` (see :func:`label_distribution`)."""
        return label_distribution(self.annotations, num_classes)

    def disagreement(self, num_classes: int = NUM_CLASSES) -> torch.Tensor:
        """Entropy (nats) of the annotators' labels per pixel ``(N, H, W)`` (see :func:`annotator_entropy`)."""
        return annotator_entropy(self.annotations, num_classes)

    def kind(self) -> torch.Tensor:
        """Kind of disagreement per pixel ``(N, H, W)`` uint8: 0 agreed, 1 class, 2 boundary (see :func:`disagreement_kind`)."""
        return disagreement_kind(self.annotations)

    def glyph_boxes(self, kind: str) -> torch.Tensor:
        """Pixels ``(N, H, W)`` bool inside the box of a glyph of ``kind`` and of no glyph of another kind."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        s = self.config.size
        inside = torch.zeros(len(self.glyphs), s, s, dtype=torch.bool)
        other = torch.zeros_like(inside)
        for n, scene in enumerate(self.glyphs):
            for g in scene:
                top, left, h, w = g.box
                (inside if g.kind == kind else other)[n, top:top + h, left:left + w] = True
        return inside & ~other


# --------------------------------------------------------------------------------------------------
# the annotators' disagreement per pixel


def _check_annotations(annotations: torch.Tensor, name: str = "annotations") -> torch.Tensor:
    if not isinstance(annotations, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(annotations).__name__}")
    if annotations.is_floating_point() or annotations.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer label tensor (..., A, H, W), got {annotations.dtype}")
    if annotations.ndim < 3 or annotations.shape[-3] < 1:
        raise ValueError(f"{name} must have shape (..., A, H, W) with A >= 1, got {tuple(annotations.shape)}")
    return annotations.long()


def label_distribution(annotations: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Return the fraction of annotators giving each class per pixel: ``(..., A, H, W)`` labels -> ``(..., K, H, W)`` float32."""
    ann = _check_annotations(annotations)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if ann.numel() and (int(ann.min()) < 0 or int(ann.max()) >= num_classes):
        raise ValueError(f"annotations must hold labels in [0, {num_classes}), got {int(ann.min())}..{int(ann.max())}")
    one_hot = torch.nn.functional.one_hot(ann, num_classes).float()  # (..., A, H, W, K)
    return one_hot.mean(-4).movedim(-1, -3)


def annotator_entropy(annotations: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Return the entropy (nats) of the annotators' labels per pixel ``(..., H, W)``: 0 where all agree, log 2 for a 2-2 split."""
    p = label_distribution(annotations, num_classes)
    return -torch.special.xlogy(p, p).sum(-3)


def disagreement_kind(annotations: torch.Tensor) -> torch.Tensor:
    """Return per pixel ``(..., H, W)`` uint8: 0 all annotators agree, 1 all say digit but not the same, 2 some say background and some digit."""
    ann = _check_annotations(annotations)
    lo, hi = ann.amin(-3), ann.amax(-3)
    out = torch.zeros(lo.shape, dtype=torch.uint8)
    out[(lo != hi) & (lo > 0)] = 1
    out[(lo != hi) & (lo == 0)] = 2
    return out


# --------------------------------------------------------------------------------------------------
# measures: generalised energy distance, correlation with the disagreement, masked means


def iou_distance(a: torch.Tensor, b: torch.Tensor, mode: str = "foreground", num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Return ``d = 1 - IoU`` between label maps ``a`` ``(..., H, W)`` and ``b`` ``(..., H, W)`` (broadcast), per leading index.

    ``mode="foreground"``: IoU of the digit masks (label > 0). ``mode="classes"``: the mean, over the
    digit classes present in ``a`` or ``b``, of each class's IoU (Kohl et al. 2018's evaluation code
    averages over the classes present, ignoring the rest). Two maps without any digit have IoU 1, so d = 0.
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.ndim < 2:
            raise TypeError(f"{name} must be an integer label tensor (..., H, W), got {getattr(t, 'dtype', type(t).__name__)}")
    if mode not in ("foreground", "classes"):
        raise ValueError(f"mode must be 'foreground' or 'classes', got {mode!r}")
    a, b = torch.broadcast_tensors(a.long(), b.long())
    if mode == "foreground":
        classes = [(a > 0, b > 0)]
    else:
        classes = [(a == c, b == c) for c in range(1, num_classes)]
    iou_sum = torch.zeros(a.shape[:-2], dtype=torch.float64)
    present = torch.zeros(a.shape[:-2], dtype=torch.float64)
    for ma, mb in classes:
        inter = (ma & mb).sum((-2, -1)).double()
        union = (ma | mb).sum((-2, -1)).double()
        here = union > 0
        iou_sum += torch.where(here, inter / union.clamp_min(1), 0.0)
        present += here.double()
    return torch.where(present > 0, 1.0 - iou_sum / present.clamp_min(1), 0.0)


def _pairwise_distances(a: torch.Tensor, b: torch.Tensor, mode: str, num_classes: int) -> torch.Tensor:
    """``1 - IoU`` of every pair of label maps ``a`` ``(P, N, H, W)`` and ``b`` ``(Q, N, H, W)`` of the same scene: ``(P, Q, N)`` float64.

    The same definition as :func:`iou_distance`, computed with one matrix product per class.
    """
    if mode not in ("foreground", "classes"):
        raise ValueError(f"mode must be 'foreground' or 'classes', got {mode!r}")
    a, b = a.long().flatten(2), b.long().flatten(2)  # (P, N, HW), (Q, N, HW)
    tests = [lambda x: x > 0] if mode == "foreground" else [lambda x, c=c: x == c for c in range(1, num_classes)]
    iou_sum = torch.zeros(a.shape[0], b.shape[0], a.shape[1], dtype=torch.float64)
    present = torch.zeros_like(iou_sum)
    for test in tests:
        ma, mb = test(a).float(), test(b).float()
        inter = torch.einsum("pnx,qnx->pqn", ma, mb).double()
        union = ma.sum(-1).double()[:, None] + mb.sum(-1).double()[None] - inter
        here = union > 0
        iou_sum += torch.where(here, inter / union.clamp_min(1), 0.0)
        present += here.double()
    return torch.where(present > 0, 1.0 - iou_sum / present.clamp_min(1), 0.0)


def _check_label_map_sets(samples: torch.Tensor, annotations: torch.Tensor) -> None:
    """Refuse anything but integer label maps ``(M, N, H, W)`` and ``(N, A, H, W)`` of the same N, H and W."""
    for name, t in (("samples", samples), ("annotations", annotations)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.is_floating_point() or min(t.shape[:2]) < 1:
            raise ValueError(f"{name} must be an integer tensor of label maps, (M, N, H, W) for samples and (N, A, H, W) "
                             f"for annotations, got {getattr(t, 'shape', type(t).__name__)}")
    if annotations.shape[0] != samples.shape[1]:
        raise ValueError(f"annotations must hold the same N = {samples.shape[1]} scenes as samples, got {annotations.shape[0]}")
    if samples.shape[2:] != annotations.shape[2:]:
        raise ValueError(f"samples and annotations must have the same H, W, got {tuple(samples.shape[2:])} and {tuple(annotations.shape[2:])}")


def scene_energy_distances(samples: torch.Tensor, annotations: torch.Tensor, mode: str = "foreground",
                           num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Return Kohl et al. (2018)'s generalised energy distance of every scene ``(N,)`` float64.

    ``samples`` ``(M, N, H, W)`` are the model's label maps (M per scene), ``annotations`` ``(N, A, H, W)``
    the annotators'; per scene ``D^2 = 2 E d(S, Y) - E d(S, S') - E d(Y, Y')`` with ``d = 1 - IoU``
    (:func:`iou_distance`). Each expectation is the mean over all pairs of the empirical distributions, the
    same member twice included (as Kohl et al.'s evaluation code does), so two equal sets have distance 0.
    """
    d_sy, d_ss, d_yy = energy_distance_terms(samples, annotations, mode, num_classes)
    return 2 * d_sy - d_ss - d_yy


def energy_distance_terms(samples: torch.Tensor, annotations: torch.Tensor, mode: str = "foreground",
                          num_classes: int = NUM_CLASSES) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the three expectations of :func:`scene_energy_distances` per scene: ``E d(S, Y)``, ``E d(S, S')``, ``E d(Y, Y')``.

    The first says how far each model map is from the annotators' maps, the second how spread the model's
    maps are, the third how spread the annotators' are; ``D^2 = 2 E d(S, Y) - E d(S, S') - E d(Y, Y')``.
    """
    _check_label_map_sets(samples, annotations)
    y = annotations.transpose(0, 1)  # (A, N, H, W)
    d_sy = _pairwise_distances(samples, y, mode, num_classes).mean((0, 1))
    d_ss = _pairwise_distances(samples, samples, mode, num_classes).mean((0, 1))
    d_yy = _pairwise_distances(y, y, mode, num_classes).mean((0, 1))
    return d_sy, d_ss, d_yy


def energy_distance(samples: torch.Tensor, annotations: torch.Tensor, mode: str = "foreground",
                    num_classes: int = NUM_CLASSES) -> float:
    """Return the generalised energy distance of one image: ``samples`` ``(M, H, W)`` vs ``annotations`` ``(A, H, W)`` (see :func:`scene_energy_distances`)."""
    for name, t in (("samples", samples), ("annotations", annotations)):
        if not isinstance(t, torch.Tensor) or t.ndim != 3 or t.shape[0] < 1:
            raise ValueError(f"{name} must be a tensor (M, H, W) of label maps with M >= 1, got {getattr(t, 'shape', type(t).__name__)}")
    if samples.shape[1:] != annotations.shape[1:]:
        raise ValueError(f"samples and annotations must have the same H, W, got {tuple(samples.shape[1:])} and {tuple(annotations.shape[1:])}")
    return float(scene_energy_distances(samples[:, None], annotations[None], mode, num_classes)[0])


def _check_scores(x: torch.Tensor, name: str, shape: torch.Size | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor (S, H, W), got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have the scene as first dimension, e.g. (S, H, W), got {tuple(x.shape)}")
    if shape is not None and x.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError(f"{name} holds NaN values")
    return x


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Mid-ranks (1-based, ties share their mean rank) of a 1-D tensor, float64."""
    values, inverse, counts = torch.unique(x.double(), return_inverse=True, return_counts=True)
    upper = counts.cumsum(0).double()
    mid = upper - (counts.double() - 1) / 2
    return mid[inverse]


def correlation_sums(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, method: str = "pearson") -> spread.Sums:
    """Return per-scene sums ``n, x, y, xx, yy, xy`` ``(S,)`` of two per-pixel scores ``(S, H, W)`` for :func:`correlation`.

    ``method="spearman"`` replaces the values inside ``mask`` by their mid-ranks over all scenes first, so
    that :func:`correlation` gives Spearman's rho on all scenes; a bootstrap replicate keeps those ranks
    (it does not re-rank the resampled pixels), an approximation that keeps replicates cheap.
    """
    _check_scores(x, "x")
    _check_scores(y, "y", x.shape)
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if mask is None:
        mask = torch.ones(x.shape, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != x.shape:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(x.shape)}")
    s = x.shape[0]
    scene = torch.arange(s).view(-1, *([1] * (x.ndim - 1))).expand_as(x)[mask]
    xv, yv = x[mask].double(), y[mask].double()
    if method == "spearman" and xv.numel():
        xv, yv = _ranks(xv), _ranks(yv)
    # centre on the pooled means: the same correlation, without cancellation in the sums of squares
    xv, yv = xv - (xv.mean() if xv.numel() else 0), yv - (yv.mean() if yv.numel() else 0)

    def per_scene(v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(s, dtype=torch.float64).index_add_(0, scene, v)

    return {"n": per_scene(torch.ones_like(xv)), "x": per_scene(xv), "y": per_scene(yv),
            "xx": per_scene(xv * xv), "yy": per_scene(yv * yv), "xy": per_scene(xv * yv)}


def correlation(sums: spread.Sums) -> torch.Tensor:
    """Return the Pearson correlation of (summed or resampled) :func:`correlation_sums`; NaN when a score is constant."""
    n = sums["n"]
    cov = sums["xy"] - sums["x"] * sums["y"] / n
    vx = sums["xx"] - sums["x"] ** 2 / n
    vy = sums["yy"] - sums["y"] ** 2 / n
    ok = (n > 1) & (vx > 1e-12 * sums["xx"].clamp_min(1e-300)) & (vy > 1e-12 * sums["yy"].clamp_min(1e-300))
    return torch.where(ok, cov / (vx.clamp_min(1e-300) * vy.clamp_min(1e-300)).sqrt(), torch.nan)


def pixel_correlation(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, method: str = "pearson",
                      n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Return ``(r, low, high)``: the correlation of two per-pixel scores ``(S, H, W)`` pooled over the pixels in ``mask``, and its scene-bootstrap 95 % interval.

    ``method`` is ``"pearson"`` or ``"spearman"`` (mid-ranks; see :func:`correlation_sums`). Scenes are
    resampled (:func:`utils.spread.bootstrap`), since pixels of one scene are not independent.
    """
    return spread.bootstrap(correlation_sums(x, y, mask, method), correlation, n_boot=n_boot, seed=seed)


def correlation_difference(x: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor, mask: torch.Tensor | None = None,
                           method: str = "pearson", n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Return ``corr(x, y1) - corr(x, y2)`` on the pixels in ``mask`` with a paired scene-bootstrap 95 % interval (same scenes in each replicate)."""
    sums = [correlation_sums(x, y1, mask, method), correlation_sums(x, y2, mask, method)]
    return spread.bootstrap(sums, lambda a, b: correlation(a) - correlation(b), n_boot=n_boot, seed=seed)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Return ``(mean, low, high)``: the mean of a per-pixel score ``(S, H, W)`` over the pixels in ``mask`` pooled over scenes, with a scene-bootstrap 95 % interval."""
    _check_scores(values, "values")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != values.shape:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(values.shape)}")
    dims = tuple(range(1, values.ndim))
    sums = {"sum": (values.double() * mask).sum(dims), "n": mask.double().sum(dims)}
    return spread.bootstrap(sums, lambda s: s["sum"] / torch.where(s["n"] > 0, s["n"], torch.nan), n_boot=n_boot, seed=seed)


def _ratio_sums(values: torch.Tensor, probe: torch.Tensor, base: torch.Tensor, base_values: torch.Tensor | None,
                tag: str) -> spread.Sums:
    """Per-scene sums of ``values`` on ``probe`` and of ``base_values`` (default ``values``) on ``base``, keys suffixed with ``tag``."""
    _check_scores(values, "values")
    base_values = values if base_values is None else _check_scores(base_values, "base_values", values.shape)
    for name, m in (("probe", probe), ("base", base)):
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.shape != values.shape:
            raise ValueError(f"{name} must be a bool tensor of shape {tuple(values.shape)}")
    dims = tuple(range(1, values.ndim))
    return {f"p{tag}": (values.double() * probe).sum(dims), f"np{tag}": probe.double().sum(dims),
            f"b{tag}": (base_values.double() * base).sum(dims), f"nb{tag}": base.double().sum(dims)}


def _ratio(q: spread.Sums, tag: str = "") -> torch.Tensor:
    return (q[f"p{tag}"] / q[f"np{tag}"]) / (q[f"b{tag}"] / q[f"nb{tag}"])


def mean_ratio(values: torch.Tensor, probe: torch.Tensor, base: torch.Tensor, base_values: torch.Tensor | None = None,
               n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Return ``(ratio, low, high)``: mean of ``values`` on the ``probe`` pixels over its mean on the ``base`` pixels, with a scene-bootstrap 95 % interval.

    ``values``, ``probe`` and ``base`` are ``(S, H, W)`` (pixels pooled over scenes); with ``base_values``
    the base mean is taken of them instead (for example the same pixels on the unshifted images), paired by scene.
    """
    return spread.bootstrap(_ratio_sums(values, probe, base, base_values, ""), _ratio, n_boot=n_boot, seed=seed)


def log_ratio_difference(a: torch.Tensor, b: torch.Tensor, probe: torch.Tensor, base: torch.Tensor,
                         a_base: torch.Tensor | None = None, b_base: torch.Tensor | None = None,
                         n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Return ``log(ratio_a / ratio_b)`` of two scores' :func:`mean_ratio` on the same pixels, with a paired scene-bootstrap 95 % interval.

    Positive: score ``a`` rises more, relative to its own base level, on the probe pixels than score ``b``
    (for example ``a`` the mutual information and ``b`` the expected entropy on letter pixels).
    """
    sums = _ratio_sums(a, probe, base, a_base, "a") | _ratio_sums(b, probe, base, b_base, "b")
    return spread.bootstrap(sums, lambda q: torch.log(_ratio(q, "a") / _ratio(q, "b")), n_boot=n_boot, seed=seed)
