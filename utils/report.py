"""Diagnose your own segmentation model: the answer chapter's measures in one call, streamed.

:func:`diagnose` runs a model (a list of models: a deep ensemble; ``mc_dropout=S``: MC dropout) over
in-distribution data and optional held-out validation data, shifted data and out-of-distribution (OOD)
data, batch by batch, and returns a :class:`Diagnosis`: one tidy :class:`pandas.DataFrame` (one row per
measure and method, with a 95 % bootstrap interval over images) and the standard figures.

The measures and their names are those of the answer chapter (``book/11_the_answer.ipynb``), with
``foreground`` for the chapter's ``digit`` (pass ``foreground="digit"`` to get its names exactly):

- ``ECE``, ``NLL``, ``accuracy``, ``confidence``: over all pixels and over foreground pixels (label other
  than ``background``), and over boundary pixels (a pixel whose 3x3 neighbourhood holds another label);
- ``error AUROC``: how well the method's uncertainty score ranks wrong pixels above right ones, over all
  pixels and over the foreground region (true or predicted foreground, as in the chapter);
- per shifted set ``NAME``: ``ECE, NAME``, ``ECE, foreground pixels, NAME``, accuracy and confidence on
  the foreground, and the error AUROC;
- per OOD set ``NAME`` with label maps (OOD pixels marked ``ignore_index``): ``NAME AUROC``, OOD pixels
  against the in-distribution foreground pixels of the same images; without label maps (whole OOD
  images): ``NAME AUROC, images``, the image's mean score against the in-distribution images;
- with validation data, for the plain softmax (the method the thresholds are calibrated on): conformal
  risk control (Angelopoulos et al.) at level ``alpha`` on the validation images, applied to the data: ``mask FNR`` (share of foreground pixels the mask ``{p_background <= lambda}`` misses, per
  image), ``sets: pixels left out`` and ``sets: foreground pixels left out``;
- ``false-positive segment AUROC``: predicted foreground segments that touch no true segment of their
  class (MetaSeg's false positives, :mod:`utils.segments`) ranked by their mean score.

Methods: ``max-softmax`` (the plain softmax of the model, or of the first ensemble member), ``temperature-
scaled`` (with validation data or a given temperature), ``MC dropout`` and ``ensemble`` (and, for an
ensemble, ``member i``: each member's own softmax, the spread over training seeds). The uncertainty score
is 1 - max-softmax for single passes; for several passes the total entropy ranks errors and the mutual
information ranks novelty (OOD), as in the chapter.

Memory does not grow with the number of images: the metrics are kept as sums per *unit*, where image
``i`` joins unit ``i mod max_units``; the bootstrap resamples units. With no more images than
``max_units`` every unit is one image and the result equals the chapter's scene bootstrap exactly.
(Segment tables, one row per segment, and the conformal validation losses, one row per validation
image, are the exceptions; both are small.)

Command line: ``python -m utils.report --help``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from . import calibration, conformal, segments, shift, spread, uncertainty
from .config import IGNORE_INDEX
from .metrics import CalibrationMeter, DetectionMeter, ReliabilityBins
from .models import _check_images, forward_logits, mc_dropout_mode

__all__ = ["Diagnosis", "METRICS", "boundary_pixels", "diagnose", "main", "metric_of", "risk_coverage_from_counts"]

#: Metric of each measure family (the first words of a measure's name), read off the summed sums.
METRICS: dict[str, Callable[[dict[str, torch.Tensor]], torch.Tensor]] = {
    "ECE": spread.ece,
    "NLL": spread.nll,
    "accuracy": spread.accuracy,
    "confidence": spread.confidence,
}
_DETECTION = "AUROC"

Data = Any  # a DataLoader of (images, labels), a pair of tensors, or an object with .images and .labels


def metric_of(measure: str) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """Return the function that reads ``measure`` (a row name of the report) off its summed sums."""
    if not isinstance(measure, str):
        raise TypeError(f"measure must be a str, got {type(measure).__name__}")
    if _DETECTION in measure:
        return spread.auroc
    for key, fn in METRICS.items():
        if measure.startswith(key):
            return fn
    raise ValueError(f"unknown measure {measure!r}: names start with {sorted(METRICS)} or contain 'AUROC'")


def boundary_pixels(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Return a bool map ``(N, H, W)``: labelled pixels whose 3x3 neighbourhood holds another label (ignored pixels count as background)."""
    if not isinstance(labels, torch.Tensor) or labels.ndim != 3 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError("labels must be an integer tensor (N, H, W)")
    y = labels.long()
    valid = y != ignore_index
    yv = torch.where(valid, y, torch.zeros_like(y)).double()[:, None]
    pad = F.pad(yv, (1, 1, 1, 1), mode="replicate")
    high = F.max_pool2d(pad, 3, stride=1)[:, 0]
    low = -F.max_pool2d(-pad, 3, stride=1)[:, 0]
    return ((high != yv[:, 0]) | (low != yv[:, 0])) & valid


def risk_coverage_from_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(coverage, risk)`` of keeping pixels by increasing score from binned counts of wrong (``pos``) and right pixels."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if pos.shape != neg.shape or pos.ndim != 1:
        raise ValueError("pos and neg must be 1-D arrays of the same length")
    n = pos + neg
    keep = n > 0
    cum_n, cum_err = np.cumsum(n[keep]), np.cumsum(pos[keep])
    if cum_n.size == 0:
        raise ValueError("pos and neg hold no pixels")
    return cum_n / cum_n[-1], cum_err / cum_n


# --------------------------------------------------------------------------------------------------
# inputs


def _pair(item: Any, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    if isinstance(item, torch.Tensor):
        return item, None
    raise TypeError(f"{name} must yield (images, labels) pairs, got {type(item).__name__}")


def _batches(data: Data, name: str, batch_size: int) -> tuple[Iterable, int | None]:
    """Return an iterable of (images, labels-or-None) batches and the number of images when known."""
    if data is None:
        raise TypeError(f"{name} must not be None")
    if hasattr(data, "images") and hasattr(data, "labels") and not isinstance(data, torch.utils.data.DataLoader):
        data = (data.images, data.labels)
    if isinstance(data, torch.Tensor):
        data = (data, None)
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise TypeError(f"{name} must be (images, labels) tensors, a DataLoader or a dataset with .images and .labels")
        x, y = data
        _check_images(x, f"{name} images")
        if y is not None:
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"{name} labels must be a torch.Tensor, got {type(y).__name__}")
            if y.shape != x.shape[:1] + x.shape[2:]:
                raise ValueError(f"{name} labels must have shape {tuple(x.shape[:1] + x.shape[2:])} (N, H, W), got {tuple(y.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} holds no images")
        batches = [(x[i:i + batch_size], None if y is None else y[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return batches, x.shape[0]
    if isinstance(data, torch.utils.data.DataLoader):
        try:
            n = len(data.dataset)  # type: ignore[arg-type]
        except TypeError:
            n = None
        return (_pair(b, name) for b in data), n
    raise TypeError(f"{name} must be (images, labels) tensors, a DataLoader or a dataset with .images and .labels, got {type(data).__name__}")


def _check_labels(y: torch.Tensor, k: int, ignore_index: int, name: str) -> torch.Tensor:
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{name} labels must be an integer tensor, got {y.dtype}")
    y = y.long()
    valid = y[y != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= k):
        raise ValueError(f"{name} labels must lie in [0, {k}) or equal ignore_index={ignore_index}; "
                         f"found {int(valid.min())}..{int(valid.max())} (does the model predict {k} classes?)")
    return y


def _check_logits_not_probs(logits: torch.Tensor) -> None:
    """Refuse model outputs that look like probabilities: every pixel's outputs non-negative and summing to 1."""
    if logits.numel() and bool((logits >= 0).all()) and torch.allclose(logits.sum(1), torch.ones_like(logits[:, 0]), atol=1e-4):
        raise ValueError("the model returns probabilities (non-negative, summing to 1 over classes), "
                         "but diagnose expects logits: remove the final softmax from the model's forward")


# --------------------------------------------------------------------------------------------------
# accumulation


class _Units:
    """Per-unit sums of one measure: image ``i`` adds its sums to unit ``i mod max_units``."""

    def __init__(self, max_units: int) -> None:
        self.max_units = max_units
        self.sums: dict[str, torch.Tensor] = {}
        self.seen = 0

    def add(self, sums: dict[str, torch.Tensor], start: int) -> None:
        n = next(iter(sums.values())).shape[0]
        unit = torch.arange(start, start + n) % self.max_units
        rows = min(start + n, self.max_units)  # storage grows with the images seen, up to max_units rows
        for k, v in sums.items():
            have = self.sums.get(k)
            if have is None or have.shape[0] < rows:
                grown = torch.zeros((min(self.max_units, max(rows, 2 * (0 if have is None else have.shape[0]))), *v.shape[1:]),
                                    dtype=torch.float64)  # fmt: skip
                if have is not None:
                    grown[: have.shape[0]] = have
                self.sums[k] = have = grown
            have.index_add_(0, unit, v.double())
        self.seen = max(self.seen, start + n)

    def result(self) -> dict[str, torch.Tensor]:
        m = min(self.seen, self.max_units)
        return {k: v[:m] for k, v in self.sums.items()}


@dataclass
class Diagnosis:
    """What :func:`diagnose` returns: the tidy table, the standard figures, and what was fitted."""

    table: pd.DataFrame
    figures: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)

    def wide(self, digits: int = 3) -> pd.DataFrame:
        """Return the table as measure x method (values only), like the answer chapter's table."""
        return self.table.pivot(index="measure", columns="method", values="value").round(digits)


def _score(p: uncertainty.Predictive, novelty: bool = False) -> torch.Tensor:
    if p.samples == 1:
        return 1 - p.max_softmax
    return p.mutual_information if novelty else p.total_entropy


# --------------------------------------------------------------------------------------------------
# the entry point


def diagnose(
    model: nn.Module | Sequence[nn.Module],
    data: Data,
    *,
    val: Data | None = None,
    shifted: dict[str, Data] | None = None,
    shift_kind: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    severities: Sequence[int] = (3, 5),
    ood: dict[str, Data] | None = None,
    mc_dropout: int | None = None,
    temperature: float | None = None,
    alpha: float = 0.1,
    background: int = 0,
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
) -> Diagnosis:
    """Return the answer chapter's measures of ``model`` on ``data`` (and optional ``val``, ``shifted``, ``ood``) with bootstrap intervals.

    ``model``: a module returning ``(B, K, H, W)`` logits (or ``{"out": ...}``), or a list of them (an
    ensemble; ``max-softmax`` is then its first member). ``data``, ``val`` and the values of ``shifted``
    and ``ood``: ``(images, labels)`` tensors, a DataLoader of such pairs, or a dataset with ``.images``
    and ``.labels`` (images ``(N, C, H, W)`` float; labels ``(N, H, W)`` int in ``[0, K)`` or
    ``ignore_index``; an OOD set may be images only). ``shift_kind`` adds ``shifted`` sets made from
    ``data``: one of :data:`utils.shift.CORRUPTIONS` at each of ``severities``, or a callable on images.
    ``mc_dropout=S`` adds MC dropout with S samples (the model needs dropout layers). ``temperature``
    fixes T instead of fitting it on ``val``. See the module docstring for the measures.
    """
    models = _check_models(model)
    first = models[0]
    batch_size = _positive_int(batch_size, "batch_size")
    max_units = _positive_int(max_units, "max_units")
    n_boot = _positive_int(n_boot, "n_boot")
    n_examples = _nonneg_int(n_examples, "n_examples")
    if mc_dropout is not None:
        mc_dropout = _positive_int(mc_dropout, "mc_dropout")
        if not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in first.modules()):
            raise ValueError("mc_dropout needs a model with dropout layers (nn.Dropout, nn.Dropout2d, ...); this one has none")
    if not isinstance(foreground, str) or not foreground:
        raise TypeError("foreground must be a non-empty str (the word for non-background pixels)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    shifted = dict(shifted or {})
    ood = dict(ood or {})
    for name, value in (("shifted", shifted), ("ood", ood)):
        if not all(isinstance(k, str) and k for k in value):
            raise TypeError(f"{name} must map non-empty names (str) to data")
    if isinstance(shift_kind, str) and shift_kind not in shift.CORRUPTIONS:
        raise ValueError(f"shift_kind must be one of {shift.CORRUPTIONS} or a callable, got {shift_kind!r}")
    if shift_kind is not None and not isinstance(shift_kind, str) and not callable(shift_kind):
        raise TypeError(f"shift_kind must be a str or a callable, got {type(shift_kind).__name__}")
    segments_for = list(segments_for)
    known = {"data", *shifted, *ood}
    if shift_kind is not None:
        known |= {_shift_name(shift_kind, s) for s in severities}
    unknown_seg = [s for s in segments_for if s not in known]
    if unknown_seg:
        raise ValueError(f"segments_for names sets that are not diagnosed: {unknown_seg}; known: {sorted(known)}")
    for m in models:
        if m.training:
            raise ValueError("model is in train mode: call model.eval() first (BatchNorm and dropout would change every "
                             "prediction; MC dropout is asked for with mc_dropout=S)")
    dev = torch.device(device) if device is not None else uncertainty._model_device(first)
    fg = f"{foreground} pixels"

    # --- calibration on validation data: temperature and conformal thresholds -----------------------
    thresholds: dict[str, float] = {}
    images_count: dict[str, int] = {}
    T = None if temperature is None else float(calibration._check_temperature(temperature))
    k_classes: int | None = None
    if val is not None:
        logits_val, labels_val = [], []
        grid = conformal.lambda_grid()
        val_losses: dict[str, list[torch.Tensor]] = {"miscoverage": [], "fnr": []}
        batches, _ = _batches(val, "val", batch_size)
        with torch.no_grad():
            for x, y in tqdm(batches, desc="validation", disable=not progress, leave=False):
                if y is None:
                    raise ValueError("val must come with label maps (it calibrates the temperature and the thresholds)")
                z = _logits(first, x, dev)
                k_classes = z.shape[1]
                y = _check_labels(y, k_classes, ignore_index, "val")
                if T is None:
                    logits_val.append(z.cpu())
                    labels_val.append(y.cpu())
                p = z.softmax(1).cpu()
                for loss in val_losses:
                    val_losses[loss].append(conformal.scene_losses(p, y.cpu(), grid, loss=loss, ignore_index=ignore_index))
        if T is None:
            T = calibration.fit_temperature(torch.cat(logits_val), torch.cat(labels_val), ignore_index=ignore_index)
            del logits_val, labels_val
        images_count["val"] = n_val = sum(int(v.shape[0]) for v in val_losses["fnr"])
        if 1 / (n_val + 1) > alpha:
            warnings.warn(f"val holds {n_val} images; conformal risk control at alpha={alpha:g} needs at least "
                          f"{math.ceil(1 / alpha - 1 - 1e-9)}, so the report leaves the guarantee rows out", stacklevel=2)  # fmt: skip
        else:
            for loss, parts in val_losses.items():
                thresholds[loss] = conformal.crc_lambda(torch.cat(parts), grid, alpha)

    methods = ["max-softmax"]
    if T is not None:
        methods.append("temperature-scaled")
    if mc_dropout:
        methods.append("MC dropout")
    if len(models) > 1:
        methods.append("ensemble")
        methods += [f"member {i}" for i in range(len(models))]

    # --- the sets ----------------------------------------------------------------------------------
    sets: list[tuple[str, str, Data]] = [("data", "data", data)]
    if shift_kind is not None:
        for s in severities:
            sets.append((_shift_name(shift_kind, s), "shift", ("shift-of-data", shift_kind, s)))
    sets += [(name, "shift", d) for name, d in shifted.items()]
    sets += [(name, "ood", d) for name, d in ood.items()]

    units: dict[tuple[str, str], _Units] = {}
    seg_tables: dict[str, list[pd.DataFrame]] = {}
    image_scores: dict[str, dict[str, list[torch.Tensor]]] = {}
    meters: dict[str, dict[str, Any]] = {}
    losses: dict[str, list[torch.Tensor]] = {}
    examples: dict[str, Any] = {}
    at = {k: torch.tensor([v], dtype=torch.float64) for k, v in thresholds.items()}

    def add(measure: str, method: str, sums: dict[str, torch.Tensor], start: int) -> None:
        units.setdefault((measure, method), _Units(max_units)).add(sums, start)

    for set_name, role, source in sets:
        start = 0
        if isinstance(source, tuple) and len(source) == 3 and source[0] == "shift-of-data":
            batches, n_total = _batches(data, "data", batch_size)
            batches = (_apply_shift(source[1], source[2], x, y, seed) for x, y in batches)
        else:
            batches, n_total = _batches(source, set_name if set_name != "data" else "data", batch_size)
        total = None if n_total is None else -(-n_total // batch_size)
        with ExitStack() as stack:
            if mc_dropout:
                stack.enter_context(uncertainty._restore_modes([first]))
                stack.enter_context(uncertainty._forked_rng(seed, dev))
            for x, y in tqdm(batches, total=total, desc=f"diagnose: {set_name}", disable=not progress, leave=False):
                _check_images(x, f"{set_name} images")
                with torch.no_grad():
                    preds = _predict(models, x, T, mc_dropout, dev, first)
                k = preds["max-softmax"].probs.shape[1]
                if k_classes is None:
                    k_classes = k
                elif k != k_classes:
                    raise ValueError(f"the model predicts {k} classes on {set_name}, {k_classes} elsewhere")
                if y is not None:
                    y = _check_labels(y, k, ignore_index, set_name).cpu()
                elif role != "ood":
                    raise ValueError(f"{set_name} must come with label maps (only OOD sets may be images alone)")
                if set_name == "data" and len(examples.get("images", [])) < n_examples:
                    take = n_examples - len(examples.get("images", []))
                    examples.setdefault("images", []).extend(x[:take].cpu())
                    examples.setdefault("labels", []).extend(y[:take])
                    examples.setdefault("probs", []).extend(preds["max-softmax"].probs[:take])
                for method, p in preds.items():
                    if role == "ood":
                        _ood_sums(add, set_name, method, p, y, start, image_scores, fg, background, ignore_index)
                        continue
                    if set_name == "data" and ood:
                        image_scores.setdefault("data", {}).setdefault(method, []).append(
                            _score(p, novelty=True).flatten(1).mean(1).cpu())
                    suffix = "" if set_name == "data" else f", {set_name}"
                    fgm = (y != background) & (y != ignore_index)
                    cal = lambda mask=None: spread.calibration_sums(p.probs, y, mask=mask, ignore_index=ignore_index)  # noqa: E731
                    wrong = (p.prediction != y) & (y != ignore_index)
                    region = (fgm | (p.prediction != background)) & (y != ignore_index)
                    s = _score(p)
                    all_sums, fg_sums = cal(), cal(fgm)
                    labelled = y != ignore_index
                    if set_name == "data":
                        edge = boundary_pixels(y, ignore_index)
                        for fam in ("ECE", "NLL", "accuracy", "confidence"):
                            add(fam, method, all_sums, start)
                            add(f"{fam}, {fg}", method, fg_sums, start)
                        bd = cal(edge)
                        for fam in ("ECE", "accuracy", "confidence"):
                            add(f"{fam}, boundary pixels", method, bd, start)
                        add("error AUROC", method, spread.detection_sums(s, wrong, mask=labelled), start)
                        add(f"error AUROC, {fg}", method, spread.detection_sums(s, wrong, mask=region), start)
                        add("error AUROC, boundary pixels", method, spread.detection_sums(s, wrong, mask=edge), start)
                        if method not in meters:
                            meters[method] = {"reliability": CalibrationMeter(num_classes=k, classwise=False),
                                              f"reliability, {fg}": CalibrationMeter(num_classes=k, classwise=False),
                                              "risk": DetectionMeter(bins=4096)}  # fmt: skip
                        meters[method]["reliability"].update(p.probs, y, mask=labelled)
                        meters[method][f"reliability, {fg}"].update(p.probs, y, mask=fgm)
                        meters[method]["risk"].update(s, wrong, mask=labelled)
                    else:
                        add(f"ECE{suffix}", method, all_sums, start)
                        for fam in ("ECE", "accuracy", "confidence"):
                            add(f"{fam}, {fg}{suffix}", method, fg_sums, start)
                        add(f"error AUROC{suffix}", method, spread.detection_sums(s, wrong, mask=labelled), start)
                    if thresholds and method == "max-softmax":  # the thresholds were calibrated on this method
                        fnr = conformal.scene_losses(p.probs, y, at["fnr"], loss="fnr", ignore_index=ignore_index)[:, 0]
                        mis = conformal.scene_losses(p.probs, y, at["miscoverage"], ignore_index=ignore_index)[:, 0]
                        mis_fg = conformal.scene_losses(p.probs, y, at["miscoverage"], pixels="digits", ignore_index=ignore_index)[:, 0]
                        for key, v in ((f"mask FNR (α = {alpha:g}){suffix}", fnr), (f"sets: pixels left out{suffix}", mis),
                                       (f"sets: {fg} left out{suffix}", mis_fg)):
                            add(key, method, {"loss": v.double(), "n": torch.ones_like(v, dtype=torch.float64)}, start)
                    if set_name in segments_for and not method.startswith("member"):
                        table = segments.segment_table(p.probs, y, extra={"score": s}, ignore_index=ignore_index,
                                                       scene_offset=start, classes=[c for c in range(k) if c != background])  # fmt: skip
                        if p.samples == 1:  # the chapter's score: 1 - the segment's mean max-softmax
                            table["score_mean"] = 1 - table["max_softmax_mean"]
                        seg_tables.setdefault(f"{set_name}\0{method}", []).append(
                            table[["scene", "false_positive", "score_mean"]])
                start += x.shape[0]
        images_count[set_name] = start

    # --- the table ---------------------------------------------------------------------------------
    rows = []
    for (measure, method), u in units.items():
        sums = u.result()
        if "loss" in sums:  # per-image losses: mean over images
            fn = lambda s: s["loss"] / s["n"]  # noqa: E731
        else:
            fn = metric_of(measure)
        value, low, high = spread.bootstrap(sums, fn, n_boot=n_boot, seed=seed)
        rows.append({"measure": measure, "method": method, "value": value, "low": low, "high": high, "images": u.seen})
    for key, parts in seg_tables.items():
        set_name, method = key.split("\0")
        t = pd.concat(parts, ignore_index=True)
        pos = t["false_positive"].to_numpy(bool)
        if pos.any() and not pos.all():
            unit = (t["scene"].to_numpy() % max_units)
            boot = segments.bootstrap_auroc(unit, pos, {"s": t["score_mean"].to_numpy()}, n_boot=n_boot, seed=seed)["s"]
            value = float(roc_auc_score(pos, t["score_mean"].to_numpy()))
            low, high = np.nanpercentile(boot, [2.5, 97.5])  # a draw without any false positive has no AUROC
            suffix = "" if set_name == "data" else f", {set_name}"
            rows.append({"measure": f"false-positive segment AUROC{suffix}", "method": method, "value": value,
                         "low": float(low), "high": float(high), "images": images_count[set_name]})  # fmt: skip
    if ood:
        rows += list(_image_rows(image_scores, n_boot, seed))
    frame = pd.DataFrame(rows, columns=["measure", "method", "value", "low", "high", "images"])
    order = {m: i for i, m in enumerate(methods)}
    frame["_m"] = frame["method"].map(order)
    frame = frame.sort_values(["_m"], kind="stable").drop(columns="_m").reset_index(drop=True)

    figs = _figures(meters, fg, examples, k_classes or 2) if figures else {}
    return Diagnosis(frame, figs, T, thresholds, images_count)


# --------------------------------------------------------------------------------------------------
# helpers of diagnose


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _nonneg_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _check_models(model: Any) -> list[nn.Module]:
    if isinstance(model, nn.Module):
        return [model]
    if isinstance(model, (list, tuple)) and model and all(isinstance(m, nn.Module) for m in model):
        return list(model)
    raise TypeError("model must be a torch.nn.Module or a non-empty list of them (an ensemble)")


def _shift_name(kind: str | Callable, severity: int) -> str:
    label = kind if isinstance(kind, str) else getattr(kind, "__name__", "shift")
    return f"{label} {severity}"


def _apply_shift(kind: str | Callable, severity: int, x: torch.Tensor, y: torch.Tensor | None, seed: int):
    if isinstance(kind, str):
        if kind not in shift.CORRUPTIONS:
            raise ValueError(f"shift_kind must be one of {shift.CORRUPTIONS} or a callable, got {kind!r}")
        if y is None:
            return shift.corrupt(x, kind, severity, seed), None
        return shift.shifted(x, y, kind, severity, seed=seed)
    if not callable(kind):
        raise TypeError(f"shift_kind must be a str or a callable, got {type(kind).__name__}")
    out = kind(x, severity)
    if isinstance(out, tuple):
        return out
    return out, y


def _logits(model: nn.Module, x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    z = forward_logits(model, x.to(dev)).float()
    _check_logits_not_probs(z)
    return z


def _predict(models: list[nn.Module], x: torch.Tensor, T: float | None, mc: int | None, dev: torch.device,
             first: nn.Module) -> dict[str, uncertainty.Predictive]:  # fmt: skip
    """Every method's predictive distribution on one batch (the code paths of utils.uncertainty, one batch each)."""
    n = x.shape[0]
    out: dict[str, uncertainty.Predictive] = {}
    first.eval()
    z = forward_logits(first, x.to(dev)).float()  # one forward pass serves the plain and the scaled softmax
    _check_logits_not_probs(z)
    out["max-softmax"] = _one_pass(z)
    if T is not None:
        out["temperature-scaled"] = _one_pass(z / T)  # what calibration.TemperatureScaled returns
    if mc:
        mc_dropout_mode(first)
        out["MC dropout"] = uncertainty._stream([lambda b: forward_logits(first, b.to(dev))] * mc, x, n, keep_members=False)
        first.eval()
    if len(models) > 1:
        ens = uncertainty.ensemble(models, x, batch_size=n, device=dev, keep_members=True)
        for i in range(len(models)):
            m = ens.members[i]
            out[f"member {i}"] = uncertainty.Predictive(m, uncertainty.entropy(m), 1)
        ens.members = None
        out["ensemble"] = ens
    return out


def _one_pass(z: torch.Tensor) -> uncertainty.Predictive:
    """The one-member predictive distribution of logits ``z``, computed as ``uncertainty.single`` computes it."""
    p = torch.softmax(z.float(), dim=1)
    return uncertainty.Predictive(p.cpu(), uncertainty.entropy(p, dim=1).cpu(), 1)


def _ood_sums(add, set_name: str, method: str, p: uncertainty.Predictive, y: torch.Tensor | None, start: int,
              image_scores: dict, fg: str, background: int, ignore_index: int) -> None:  # fmt: skip
    s = _score(p, novelty=True)
    if y is not None:
        ood_px = y == ignore_index
        inlier = (y != background) & ~ood_px
        add(f"{set_name} AUROC", method, spread.detection_sums(s, ood_px, mask=ood_px | inlier), start)
    image_scores.setdefault(set_name, {}).setdefault(method, []).append(s.flatten(1).mean(1).cpu())


def _image_rows(image_scores: dict, n_boot: int, seed: int) -> Iterator[dict[str, Any]]:
    """Image-level OOD AUROC of every OOD set: mean novelty score of its images against the data's images.

    One score per image, kept (a few bytes per image); the interval resamples images of both sets.
    """
    clean = image_scores.get("data", {})
    for set_name, by_method in image_scores.items():
        if set_name == "data":
            continue
        for method, parts in by_method.items():
            neg, pos = torch.cat(clean[method]), torch.cat(parts)
            score = torch.cat([neg, pos]).double().numpy()
            flag = np.arange(score.shape[0]) >= neg.shape[0]
            value = float(roc_auc_score(flag, score))  # exact: one score per image, no bins
            boot = segments.bootstrap_auroc(np.arange(score.shape[0]), flag, {"s": score}, n_boot=n_boot, seed=seed)["s"]
            low, high = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
            yield {"measure": f"{set_name} AUROC, images", "method": method, "value": value, "low": low, "high": high,
                   "images": int(pos.shape[0])}  # fmt: skip


def _figures(meters: dict, fg: str, examples: dict, k: int) -> dict[str, Any]:
    from .plots import show_reliability, show_report_heatmaps, show_risk_coverage

    figs: dict[str, Any] = {}
    for which in ("reliability", f"reliability, {fg}"):
        diagrams = {m: v[which].reliability() for m, v in meters.items() if not m.startswith("member") and v[which].count}
        if diagrams:
            figs[which] = show_reliability(diagrams, {m: meters[m][which].ece() for m in diagrams})
    curves = {}
    for m, v in meters.items():
        if m.startswith("member") or not v["risk"].count:
            continue
        curves[m] = risk_coverage_from_counts(v["risk"]._pos, v["risk"]._neg)
    if curves:
        figs["risk-coverage"] = show_risk_coverage(curves)
    if examples.get("images"):
        figs["heat maps"] = show_report_heatmaps(torch.stack(examples["images"]), torch.stack(examples["probs"]),
                                                 torch.stack(examples["labels"]))  # fmt: skip
    import matplotlib.pyplot as plt

    for fig in figs.values():  # returned, not shown: a notebook displays only the figures it asks for
        plt.close(fig)
    return figs


# --------------------------------------------------------------------------------------------------
# command line


def _load_data(spec: str, name: str) -> Any:
    """Data named on the command line: ``digitscenes:SPLIT[:N]``, ``letters[:N]``, ``nuclei:SPLIT`` or a ``.pt``/``.npz`` file."""
    from . import data as data_mod, ood as ood_mod

    parts = spec.split(":")
    try:
        if parts[0] == "digitscenes" and len(parts) in (2, 3):
            return data_mod.DigitScenes(parts[1], *(int(p) for p in parts[2:]))
        if parts[0] == "letters" and len(parts) in (1, 2):
            return ood_mod.LetterScenes(*(int(p) for p in parts[1:]))
        if parts[0] == "nuclei" and len(parts) == 2:
            from . import nuclei

            return nuclei.NucleiTiles(parts[1])
    except (TypeError, ValueError) as err:
        raise SystemExit(f"error: --{name} {spec!r}: {err}") from err
    path = Path(spec)
    if path.suffix not in (".pt", ".npz") or not path.is_file():
        raise SystemExit(f"error: --{name} must be digitscenes:SPLIT[:N], letters[:N], nuclei:SPLIT or an existing "
                         f".pt/.npz file with 'images' (N, C, H, W) and 'labels' (N, H, W); got {spec!r}")  # fmt: skip
    if path.suffix == ".npz":
        blob = dict(np.load(path))
    else:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    if "images" not in blob:
        raise SystemExit(f"error: --{name} file {path} holds no 'images' entry (keys: {sorted(blob)})")
    images = torch.as_tensor(blob["images"]).float()
    labels = torch.as_tensor(blob["labels"]).long() if "labels" in blob else None
    return images if labels is None else (images, labels)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m utils.report", description=__doc__.split("\n")[0])
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--weights", nargs="+", help="shipped weights name(s); several make an ensemble (e.g. unet_seed0 unet_seed1)")
    who.add_argument("--model", nargs="+", type=Path, help="TorchScript file(s) of your model (torch.jit.save); several make an ensemble")
    p.add_argument("--data", required=True, help="digitscenes:test:100, nuclei:test, or a .pt/.npz file with images and labels")
    p.add_argument("--val", help="validation data (same forms): fits the temperature and the conformal thresholds")
    p.add_argument("--shift", help=f"one of {', '.join(shift.CORRUPTIONS)}: applied to --data at each --severity")
    p.add_argument("--severity", type=int, nargs="+", default=[3, 5])
    p.add_argument("--ood", nargs="+", default=[], metavar="NAME=DATA", help="OOD sets, e.g. letter=letters:200 noise=noise.pt")
    p.add_argument("--mc-dropout", type=int, default=None, metavar="S", help="add MC dropout with S samples")
    p.add_argument("--foreground", default="foreground", help="the word for non-background pixels in the measure names")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.csv and the figures (PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: diagnose, then write ``report.csv`` and one PNG per figure into ``--out``."""
    from .config import get_device

    args = _parse(argv)
    device = get_device(args.device)
    if args.weights:
        from . import weights as weights_mod

        try:
            models = [weights_mod.load(w, device=device) for w in args.weights]
        except (ValueError, TypeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        missing = [str(m) for m in args.model if not m.is_file()]
        if missing:
            print(f"error: --model file(s) not found: {missing}", file=sys.stderr)
            return 2
        models = [torch.jit.load(str(m), map_location=device).eval() for m in args.model]
    ood_sets = {}
    for item in args.ood:
        if "=" not in item:
            print(f"error: --ood entries are NAME=DATA, got {item!r}", file=sys.stderr)
            return 2
        name, spec = item.split("=", 1)
        ood_sets[name] = _load_data(spec, "ood")
    try:
        result = diagnose(models if len(models) > 1 else models[0], _load_data(args.data, "data"),
                          val=_load_data(args.val, "val") if args.val else None, shift_kind=args.shift,
                          severities=tuple(args.severity), ood=ood_sets, mc_dropout=args.mc_dropout,
                          foreground=args.foreground, batch_size=args.batch_size, device=device,
                          progress=not args.quiet)  # fmt: skip
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(args.out / "report.csv", index=False)
    for name, fig in result.figures.items():
        fig.savefig(args.out / f"{name.replace(', ', '_').replace(' ', '_')}.png", dpi=100, bbox_inches="tight")
    print(result.wide().to_string())
    print(f"wrote {args.out / 'report.csv'} ({len(result.table)} rows) and {len(result.figures)} figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
