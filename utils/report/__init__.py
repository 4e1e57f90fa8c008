"""Diagnose your own segmentation model: the answer chapter's measures in one call, streamed.

:func:`diagnose` runs a model (a list of models: a deep ensemble; ``mc_dropout=S``: MC dropout) over
in-distribution data and optional held-out validation data, shifted data and out-of-distribution (OOD)
data, batch by batch, and returns a :class:`Diagnosis`: one tidy :class:`pandas.DataFrame` (one row per
measure and method, with a 95 % bootstrap interval over images), the rows it had to leave out with the
reason (``skipped``), and the standard figures. ``a.compare(b)`` gives the paired bootstrap difference
of two results on the same images (two models, or two settings), row by row; ``d.compare_methods(m1, m2)``
that of two methods of one result (e.g. MC dropout and the plain softmax).

The measures and their names are those of the answer chapter (``book/11_the_answer.ipynb``), with
``foreground`` for the chapter's ``digit`` (pass ``foreground="digit"`` to get its names exactly). The
foreground is every labelled pixel whose label is not the class ``background`` (0 by default: pass
the background class of your data):

- ``ECE``, ``NLL``, ``accuracy``, ``confidence``: over all pixels and over foreground pixels, and over
  boundary pixels (a pixel whose 3x3 neighbourhood holds another label; ignored pixels count as
  background);
- ``error AUROC``: how well the method's uncertainty score ranks wrong pixels above right ones, over all
  pixels and over the foreground region (true or predicted foreground, as in the chapter);
- per shifted set ``NAME``: ``ECE, NAME``, ``ECE, foreground pixels, NAME``, accuracy and confidence on
  the foreground, and the error AUROC;
- per OOD set ``NAME`` with label maps (OOD pixels marked ``ignore_index``): ``NAME AUROC``, OOD pixels
  against the in-distribution foreground pixels of the same images; without label maps (whole OOD
  images): ``NAME AUROC, images``, the image's mean score against the in-distribution images;
- with validation data, for the plain softmax (the method the thresholds are calibrated on): conformal
  risk control (Angelopoulos et al.) at level ``alpha`` on the validation images, applied to the data:
  ``mask FNR`` (share of foreground pixels the mask ``{p_background <= lambda}`` misses, per image),
  ``sets: pixels left out`` and ``sets: foreground pixels left out``;
- ``false-positive segment AUROC``: predicted foreground segments that touch no true segment of their
  class (MetaSeg's false positives, :mod:`utils.segments`) ranked by their mean score;
- image-level failure detection, per labelled set: ``image failure AUGRC, AGGREGATOR`` and
  ``image failure AURC, AGGREGATOR`` (:mod:`utils.failure`): each image's risk is 1 - Dice of the
  foreground of the method's label map, its score the method's pixel score aggregated into one number
  (``mean``, ``foreground mean``, ``interior mean``, ``patch max``, ``share above``; ``failure_aggregators``
  picks them), and for an ensemble also ``pairwise Dice`` between its members' label maps; lower is
  better (AUGRC: the average risk of the failures accepted, Traub et al. 2024).

``background=None`` says the data have no background class: every labelled pixel is foreground, so the
OOD pixels are ranked against all labelled pixels, and the rows that need a background (the foreground
and boundary rows, the mask FNR, the foreground pixels left out, the segment AUROC) are left out and
listed in ``skipped`` with the reason. A row that cannot be had for the data given (no predicted
segment, no false-positive segment, too few validation images for the guarantee) is listed there too.

Methods: ``max-softmax`` (the plain softmax of the model, or of the first ensemble member), ``temperature-
scaled`` (with validation data or a given temperature), ``MC dropout`` and ``ensemble`` (and, for an
ensemble, ``member i``: each member's own softmax, the spread over training seeds). The uncertainty score
is 1 - max-softmax for single passes; for several passes the total entropy ranks errors and the mutual
information ranks novelty (OOD), as in the chapter.

Memory stays flat, whatever the number of images: every measure is kept as sums per *unit*, where image
``i`` joins unit ``i mod max_units`` (the bootstrap resamples units; with no more images than
``max_units`` every unit is one image and the result equals the chapter's scene bootstrap exactly);
the conformal thresholds keep one mean loss curve; the temperature is fitted by Newton steps on sums
over batches (:func:`utils.calibration.fit_temperature_stream`), from validation logits kept up to
``val_cache_mb`` and otherwise by running the model over the validation images once per step. What
grows with the images is small: one row per predicted segment (the segment AUROC), one score per
image where there are OOD sets, and one risk and one score per image, method and aggregator (the
image-level failure rows).

The measures are small classes streamed one by one (:mod:`~utils.report.measures`,
:mod:`~utils.report.guarantees`, :mod:`~utils.report.segment_auroc`, :mod:`~utils.report.image_auroc`);
:func:`diagnose` composes them. Command line: ``python -m utils.report --help``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import calibration, shift, uncertainty
from ..config import IGNORE_INDEX
from ..models import _check_images
from .cli import main
from .diagnosis import SKIPPED_COLUMNS, Diagnosis
from .figures import FigureMaker, risk_coverage_from_counts
from .guarantees import GuaranteeMeasure
from .failure_detection import FailureMeasure
from .image_auroc import OODImageMeasure
from .inputs import Data, Fingerprint, batches, check_background, check_labels, check_models, check_shift_kind
from .inputs import check_unit_range, shift_name, shifted_batches
from .measures import (
    Batch,
    CalibrationMeasure,
    ErrorMeasure,
    Measure,
    OODPixelMeasure,
    Settings,
    UnitMeasure,
    boundary_pixels,
)
from .predict import methods as method_names, predict
from .segment_auroc import SegmentMeasure
from .units import METRICS, Units, metric_of
from .validation import Fitted, fit_on_validation

__all__ = [
    "METRICS",
    "Batch",
    "CalibrationMeasure",
    "Diagnosis",
    "ErrorMeasure",
    "FailureMeasure",
    "GuaranteeMeasure",
    "Measure",
    "OODImageMeasure",
    "OODPixelMeasure",
    "SegmentMeasure",
    "Settings",
    "UnitMeasure",
    "boundary_pixels",
    "diagnose",
    "main",
    "metric_of",
    "risk_coverage_from_counts",
]

_Units = Units  # the name of earlier versions


def diagnose(
    model: nn.Module | Sequence[nn.Module],
    data: Data,
    *,
    val: Data | None = None,
    shifted: dict[str, Data] | None = None,
    shift_kind: str | Callable[[torch.Tensor, int], Any] | None = None,
    severities: Sequence[int] = (3, 5),
    ood: dict[str, Data] | None = None,
    mc_dropout: int | None = None,
    temperature: float | None = None,
    alpha: float = 0.1,
    background: int | None = 0,
    foreground: str = "foreground",
    ignore_index: int = IGNORE_INDEX,
    batch_size: int = 64,
    max_units: int = 1000,
    n_boot: int = 1000,
    seed: int = 0,
    segments_for: Sequence[str] = ("data",),
    n_examples: int = 4,
    figures: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
    val_cache_mb: float = 256.0,
    failure_aggregators: Sequence[str] = ("mean", "foreground mean", "interior mean", "patch max", "share above"),
) -> Diagnosis:
    """Return the answer chapter's measures of ``model`` on ``data`` (and optional ``val``, ``shifted``, ``ood``) with bootstrap intervals.

    ``model``: a module returning ``(B, K, H, W)`` logits (or ``{"out": ...}``), or a list of them (an
    ensemble; ``max-softmax`` is then its first member). ``data``, ``val`` and the values of ``shifted``
    and ``ood``: ``(images, labels)`` tensors, a DataLoader of such pairs, or a dataset with ``.images``
    and ``.labels`` (images ``(N, C, H, W)`` float; labels ``(N, H, W)`` int in ``[0, K)`` or
    ``ignore_index``; an OOD set may be images only). ``background``: the background class of the
    labels (``None``: there is none; see the module docstring for what is left out). ``shift_kind``
    adds ``shifted`` sets made from ``data``: one of :data:`utils.shift.CORRUPTIONS` at each of
    ``severities`` (they corrupt images in [0, 1]: keep a normalisation inside the model, e.g.
    ``nn.Sequential(torchvision.transforms.Normalize(mean, std), model)``, and pass the images
    unnormalised; ``thickness`` only for :class:`utils.data.DigitScenes`), or a callable
    ``(images, severity) -> images or (images, labels)``. ``mc_dropout=S`` adds MC dropout with S
    samples (the model needs dropout layers). ``temperature`` fixes T instead of fitting it on ``val``;
    the fit keeps at most ``val_cache_mb`` of validation logits. ``failure_aggregators``: the aggregators of
    the image-level failure rows (:data:`utils.failure.AGGREGATORS`; ``()`` leaves the rows out). Compare two results on the same images
    with ``a.compare(b)``, two methods of one result with ``d.compare_methods(m1, m2)``.
    """
    models = check_models(model)
    settings = _settings(background, foreground, ignore_index, max_units, n_boot, seed)
    batch_size, n_examples = _int(batch_size, "batch_size", 1), _int(n_examples, "n_examples", 0)
    _check_options(models, mc_dropout, alpha, val_cache_mb)
    sets = _sets(data, shift_kind, severities, shifted, ood, background)
    unknown = [s for s in segments_for if s not in {name for name, *_ in sets}]
    if unknown:
        raise ValueError(f"segments_for names sets that are not diagnosed: {unknown}; known: {sorted(n for n, *_ in sets)}")
    dev = torch.device(device) if device is not None else uncertainty._model_device(models[0])
    T = None if temperature is None else calibration._check_temperature(temperature)
    fit = Fitted(T, {}, 0, 0)
    if val is not None:
        fit = fit_on_validation(models[0], val, temperature=T, alpha=alpha, background=background, ignore_index=ignore_index,
                                batch_size=batch_size, device=dev, progress=progress, cache_mb=val_cache_mb)  # fmt: skip
    measures: list[Measure] = [CalibrationMeasure(settings), ErrorMeasure(settings),
                               GuaranteeMeasure(settings, fit.thresholds, alpha, fit.guarantee_note),
                               OODPixelMeasure(settings), SegmentMeasure(settings, segments_for),
                               OODImageMeasure(settings, active=bool(ood)), FailureMeasure(settings, failure_aggregators)]  # fmt: skip
    maker = FigureMaker(settings, n_examples) if figures else None
    run = _Run(models, fit.temperature, mc_dropout, dev, settings, measures, maker, seed, progress)
    for set_name, role, arg, source in sets:
        run.set(set_name, role, arg, source, batch_size)
    if val is not None:
        run.images = {"val": fit.images, **run.images}
    return _assemble(run, measures, method_names(fit.temperature, mc_dropout, len(models)), [n for n, *_ in sets],
                     fit, maker)  # fmt: skip


class _Run:
    """The pass over every set: predictions per batch, handed to every measure; images counted and fingerprinted."""

    def __init__(self, models: list[nn.Module], temperature: float | None, mc_dropout: int | None, device: torch.device,
                 settings: Settings, measures: list[Measure], maker: FigureMaker | None, seed: int, progress: bool) -> None:  # fmt: skip
        self.models, self.temperature, self.mc_dropout, self.device = models, temperature, mc_dropout, device
        self.settings, self.measures, self.maker, self.seed, self.progress = settings, measures, maker, seed, progress
        self.classes: int | None = None
        self.images: dict[str, int] = {}
        self.fingerprints: dict[str, str] = {}

    def set(self, set_name: str, role: str, arg: str, source: Any, batch_size: int) -> None:
        """Stream one set through the models and the measures."""
        if isinstance(source, _ShiftOfData):
            parts, n_total = batches(source.data, "data", batch_size)
            parts = shifted_batches(parts, source.kind, source.severity, self.seed, self.settings.ignore_index)
        else:
            parts, n_total = batches(source, arg, batch_size)
        total = None if n_total is None else -(-n_total // batch_size)
        start, fingerprint = 0, Fingerprint()
        with ExitStack() as stack:
            if self.mc_dropout:
                stack.enter_context(uncertainty._restore_modes([self.models[0]]))
                stack.enter_context(uncertainty._forked_rng(self.seed, self.device))
            for x, y in tqdm(parts, total=total, desc=f"diagnose: {set_name}", disable=not self.progress, leave=False):
                self._batch(set_name, role, arg, x, y, start)
                fingerprint.update(x, y)
                start += x.shape[0]
        self.images[set_name] = start
        self.fingerprints[set_name] = fingerprint.hexdigest()

    def _batch(self, set_name: str, role: str, arg: str, x: torch.Tensor, y: torch.Tensor | None, start: int) -> None:
        _check_images(x, f"{arg} images")
        with torch.no_grad():
            preds = predict(self.models, x, self.temperature, self.mc_dropout, self.device)
        k = preds["max-softmax"].probs.shape[1]
        if self.classes is None:
            check_background(self.settings.background, k)
            self.classes = k
        elif k != self.classes:
            raise ValueError(f"the model predicts {k} classes on {arg}, {self.classes} elsewhere")
        if y is not None:
            y = check_labels(y, k, self.settings.ignore_index, arg).cpu()
        elif role != "ood":
            raise ValueError(f"{arg} must come with label maps (only OOD sets may be images alone)")
        if self.maker is not None and set_name == "data":
            self.maker.add_examples(x, y, preds["max-softmax"].probs)
        for method, p in preds.items():
            batch = Batch(set_name, role, method, p, y, start)
            for measure in self.measures:
                measure.update(batch)
            if self.maker is not None:
                self.maker.update(batch)


def _assemble(run: _Run, measures: list[Measure], methods: list[str], set_order: list[str], fit: Fitted,
              maker: FigureMaker | None) -> Diagnosis:  # fmt: skip
    """The table (rows by method, then per-unit/segment/image rows, set and measure), the rows left out, the figures."""
    rows, paired, skipped = [], {}, []
    for rank, measure in enumerate(measures):
        for i, row in enumerate(measure.rows()):
            row["_key"] = (methods.index(row["method"]), measure.group, set_order.index(row.pop("set")), rank, i)
            rows.append(row)
        paired |= measure.paired()
        skipped += measure.skipped()
    rows.sort(key=lambda r: r.pop("_key"))
    table = pd.DataFrame(rows, columns=["measure", "method", "value", "low", "high", "images"])
    s = run.settings
    return Diagnosis(table, maker.figures() if maker is not None else {}, fit.temperature, fit.thresholds, run.images,
                     pd.DataFrame(skipped, columns=SKIPPED_COLUMNS), run.fingerprints, paired, s.max_units, s.n_boot, s.seed,
                     maker.reliability() if maker is not None else {})  # fmt: skip


# --------------------------------------------------------------------------------------------------
# the arguments


def _int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _settings(background: Any, foreground: Any, ignore_index: Any, max_units: Any, n_boot: Any, seed: Any) -> Settings:
    if not isinstance(foreground, str) or not foreground:
        raise TypeError("foreground must be a non-empty str (the word for non-background pixels)")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    return Settings(check_background(background), foreground, ignore_index, _int(max_units, "max_units", 1),
                    _int(n_boot, "n_boot", 1), _int(seed, "seed", 0))  # fmt: skip


def _check_options(models: list[nn.Module], mc_dropout: Any, alpha: Any, val_cache_mb: Any) -> None:
    if mc_dropout is not None:
        _int(mc_dropout, "mc_dropout", 1)
        if not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in models[0].modules()):
            raise ValueError("mc_dropout needs a model with dropout layers (nn.Dropout, nn.Dropout2d, ...); this one has none")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if isinstance(val_cache_mb, bool) or not isinstance(val_cache_mb, (int, float)) or not val_cache_mb >= 0:
        raise ValueError(f"val_cache_mb must be a number >= 0 (megabytes of validation logits kept), got {val_cache_mb!r}")
    for m in models:
        if m.training:
            raise ValueError("model is in train mode: call model.eval() first (BatchNorm and dropout would change every "
                             "prediction; MC dropout is asked for with mc_dropout=S)")  # fmt: skip


@dataclass(frozen=True)
class _ShiftOfData:
    """A set made from the data's batches by a corruption at a severity."""

    data: Data
    kind: str | Callable
    severity: int


def _sets(data: Data, shift_kind: Any, severities: Sequence[int], shifted: Any, ood: Any,
          background: int | None) -> list[tuple[str, str, str, Any]]:  # fmt: skip
    """Return ``(set name, role, argument name, source)`` of every set, in the order they are run."""
    shifted, ood = dict(shifted or {}), dict(ood or {})
    for name, value in (("shifted", shifted), ("ood", ood)):
        if not all(isinstance(k, str) and k for k in value):
            raise TypeError(f"{name} must map non-empty names (str) to data")
    check_shift_kind(shift_kind, data, background)
    if isinstance(shift_kind, str) and hasattr(data, "images") and isinstance(data.images, torch.Tensor):
        check_unit_range(data.images, shift_kind)  # before any pass; a DataLoader is checked batch by batch
    elif isinstance(shift_kind, str) and isinstance(data, (tuple, list)) and data and isinstance(data[0], torch.Tensor):
        check_unit_range(data[0], shift_kind)
    out: list[tuple[str, str, str, Any]] = [("data", "data", "data", data)]
    if shift_kind is not None:
        out += [(shift_name(shift_kind, s), "shift", "data", _ShiftOfData(data, shift_kind, s)) for s in severities]
    out += [(name, "shift", f"shifted[{name!r}]", d) for name, d in shifted.items()]
    out += [(name, "ood", f"ood[{name!r}]", d) for name, d in ood.items()]
    return out
