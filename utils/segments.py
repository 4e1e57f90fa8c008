"""From pixels to segments: connected components of a predicted label map, their softmax features and their IoU.

This follows MetaSeg (Rottmann et al. 2020): a *segment* is a connected component of the predicted
label map of one class; its features are computed from the softmax alone (size, and the mean and
spread of max-softmax, entropy and margin over the segment, its boundary and its interior); its target
is the *adjusted IoU* with the ground truth, and a segment with IoU = 0 is a false positive.

Conventions (one choice each, used everywhere in this module):

- **Connectivity.** ``connectivity=2`` (the default) joins pixels that touch at an edge or a corner
  (8-neighbourhood), so a thin diagonal stroke stays one segment; ``connectivity=1`` joins edge
  neighbours only (4-neighbourhood). Ground-truth components use the same connectivity.
- **Boundary.** A segment pixel is on the boundary when one of its 8 neighbours is not in the segment;
  pixels on the image edge count as boundary (outside the image is outside the segment). The interior
  is the rest. Interior features of a segment without interior are 0 (``size_in`` = 0 says so).
- **Classes.** ``classes=None`` takes every class except the background class ``background`` (0, the
  default: for DigitScenes the digits are the objects); ``background=None`` or ``classes=range(K)``
  treats all classes, as MetaSeg does.
- **Adjusted IoU.** For a segment ``S`` of class ``c``, ``G`` is the union of the ground-truth
  components of class ``c`` that meet ``S``; pixels of ``G`` that belong to *other* predicted segments
  of class ``c`` are left out of the union, so two segments that split one object are not punished
  twice: ``IoU = |S & G| / |S | (G minus other segments of c)|``. ``iou_unadjusted`` keeps them.
- **Ignore label.** Pixels labelled ``ignore_index`` are left out of ``S`` for the IoU (they are never
  in ``G``); ``ignore_fraction`` is the share of the segment's pixels that carry it. A segment lying
  wholly on ignore pixels has IoU NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from .config import IGNORE_INDEX
from .metrics._checks import _check_background

__all__ = [
    "SOFTMAX_FEATURES",
    "bootstrap_auroc",
    "boundary_mask",
    "cross_validated",
    "digit_table",
    "fit_meta",
    "label_segments",
    "pixel_measures",
    "scene_bootstrap",
    "segment_table",
    "stream_segments",
]

#: Pixel measures computed from the softmax alone (MetaSeg's dispersion measures, in this course's form).
MEASURES: tuple[str, ...] = ("max_softmax", "entropy", "margin")
#: The regions of a segment over which every measure is summarised.
REGIONS: tuple[str, ...] = ("", "_bd", "_in")
#: Columns of :func:`segment_table` that are features computed from the softmax alone.
SOFTMAX_FEATURES: tuple[str, ...] = (
    ("size", "size_bd", "size_in", "bd_ratio", "max_softmax_min")
    + tuple(f"{m}{r}_{s}" for m in MEASURES for r in REGIONS for s in ("mean", "std"))
)


def _to_numpy(a: object, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    if isinstance(a, np.ndarray):
        return a
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")


def _check_int_map(a: np.ndarray, name: str) -> None:
    if not (np.issubdtype(a.dtype, np.integer)) or a.dtype == np.bool_:
        raise TypeError(f"{name} must be an integer label map, got dtype {a.dtype}")


def _check_connectivity(connectivity: int) -> int:
    if connectivity not in (1, 2) or isinstance(connectivity, bool):
        raise ValueError(f"connectivity must be 1 (edge neighbours) or 2 (edge and corner), got {connectivity!r}")
    return connectivity


def _check_classes(classes: Iterable[int] | None, num_classes: int, background: int | None = 0) -> list[int]:
    background = _check_background(background, num_classes, allow_none=True)
    if classes is None:
        return [c for c in range(num_classes) if c != background]
    out = []
    for c in classes:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= c < num_classes:
            raise ValueError(f"classes must hold ints in [0, {num_classes}), got {c!r}")
        out.append(int(c))
    if len(set(out)) != len(out):
        raise ValueError(f"classes must not repeat a class, got {out}")
    return out


def label_segments(
    prediction: torch.Tensor | np.ndarray,
    num_classes: int,
    classes: Iterable[int] | None = None,
    connectivity: int = 2,
    background: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ids (H, W) int64, seg_class (n,) int64)``: connected components of ``prediction`` per class, ids 1..n (0 = none)."""
    pred = _to_numpy(prediction, "prediction")
    _check_int_map(pred, "prediction")
    if pred.ndim != 2:
        raise ValueError(f"prediction must have shape (H, W), got {pred.shape}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"prediction must hold classes in [0, {num_classes}), got {pred.min()}..{pred.max()}")
    structure = ndimage.generate_binary_structure(2, _check_connectivity(connectivity))
    ids = np.zeros(pred.shape, dtype=np.int64)
    seg_class: list[int] = []
    for c in _check_classes(classes, num_classes, background):
        comp, n = ndimage.label(pred == c, structure=structure)
        if n:
            ids[comp > 0] = comp[comp > 0] + len(seg_class)
            seg_class.extend([c] * n)
    return ids, np.asarray(seg_class, dtype=np.int64)


def boundary_mask(ids: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return a bool ``(H, W)`` map: segment pixels (id > 0) with an 8-neighbour outside their segment or the image."""
    a = _to_numpy(ids, "ids")
    _check_int_map(a, "ids")
    if a.ndim != 2:
        raise ValueError(f"ids must have shape (H, W), got {a.shape}")
    padded = np.pad(a, 1, constant_values=-1)
    h, w = a.shape
    edge = np.zeros(a.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                edge |= padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] != a
    return edge & (a > 0)


def pixel_measures(probs: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Return max-softmax, entropy (nats) and margin (top-1 minus top-2 probability) maps ``(..., H, W)`` of ``probs`` ``(..., K, H, W)``."""
    p = _to_numpy(probs, "probs").astype(np.float64, copy=False)
    top2 = -np.partition(-p, 1, axis=-3)[..., :2, :, :] if p.shape[-3] > 1 else np.concatenate([p, 0 * p], -3)
    ent = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-3)
    return {"max_softmax": top2[..., 0, :, :], "entropy": ent, "margin": top2[..., 0, :, :] - top2[..., 1, :, :]}


def _region_stats(ids: np.ndarray, mask: np.ndarray, n: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per segment over the pixels in ``mask``: count, mean and (population) std of ``values``; 0 where empty."""
    idx = ids[mask]
    v = values[mask]
    cnt = np.bincount(idx, minlength=n + 1)[1:].astype(np.float64)
    s1 = np.bincount(idx, weights=v, minlength=n + 1)[1:]
    s2 = np.bincount(idx, weights=v * v, minlength=n + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), 0.0)
        var = np.where(cnt > 0, s2 / np.maximum(cnt, 1) - mean**2, 0.0)
    return cnt, mean, np.sqrt(np.clip(var, 0.0, None))


def _adjusted_iou(
    ids: np.ndarray, seg_class: np.ndarray, labels: np.ndarray, ignore_index: int, connectivity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per segment: (adjusted IoU, unadjusted IoU) with the ground truth ``labels``."""
    n = len(seg_class)
    valid = labels != ignore_index
    s_valid = np.bincount(ids[valid], minlength=n + 1)[1:].astype(np.float64)
    adj = np.zeros(n)
    plain = np.zeros(n)
    structure = ndimage.generate_binary_structure(2, connectivity)
    for c in np.unique(seg_class):
        segs = np.flatnonzero(seg_class == c) + 1  # ids of class c
        gt, m = ndimage.label(labels == c, structure=structure)
        if m == 0:
            continue
        local = np.zeros(n + 1, dtype=np.int64)
        local[segs] = np.arange(1, len(segs) + 1)
        p = local[ids]  # 0 outside class-c segments
        both = (p > 0) & (gt > 0)
        inter = np.zeros((len(segs) + 1, m + 1))
        np.add.at(inter, (p[both], gt[both]), 1.0)
        inter = inter[1:, 1:]
        g_size = np.bincount(gt.ravel(), minlength=m + 1)[1:].astype(np.float64)
        col = inter.sum(0)  # pixels of each GT component inside any class-c segment
        meets = inter > 0
        i_sum = inter.sum(1)
        g_union = (meets * g_size).sum(1)
        g_adj = (meets * (g_size - col + inter)).sum(1)
        s = s_valid[segs - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            adj[segs - 1] = i_sum / (s + g_adj - i_sum)
            plain[segs - 1] = i_sum / (s + g_union - i_sum)
    empty = s_valid == 0
    adj[empty] = np.nan
    plain[empty] = np.nan
    return adj, plain


def _check_scene(
    probs: np.ndarray, labels: np.ndarray | None, extra: dict[str, np.ndarray], ignore_index: int
) -> None:
    if probs.ndim != 4:
        raise ValueError(f"probs must have shape (N, K, H, W), got {probs.shape}")
    if not np.issubdtype(probs.dtype, np.floating):
        raise TypeError(f"probs must be floating-point probabilities, got dtype {probs.dtype}")
    if probs.size and (probs.min() < -1e-6 or probs.max() > 1 + 1e-6 or np.isnan(probs).any()):
        raise ValueError("probs must hold probabilities in [0, 1] (pass softmax(logits), not logits)")
    if probs.size and np.abs(probs.sum(1) - 1).max() > 1e-3:
        raise ValueError("probs must sum to 1 over the class dimension (dim 1): pass softmax(logits)")
    n, k, h, w = probs.shape
    if labels is not None:
        _check_int_map(labels, "labels")
        if labels.shape != (n, h, w):
            raise ValueError(f"labels must have shape {(n, h, w)} to match probs, got {labels.shape}")
        bad = (labels != ignore_index) & ((labels < 0) | (labels >= k))
        if bad.any():
            raise ValueError(
                f"labels must hold classes in [0, {k}) or ignore_index={ignore_index}, got {np.unique(labels[bad])[:5]}"
            )
    for name, v in extra.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"extra keys must be non-empty strings, got {name!r}")
        if v.shape != (n, h, w):
            raise ValueError(f"extra[{name!r}] must have shape {(n, h, w)}, got {v.shape}")


def segment_table(
    probs: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | None = None,
    extra: dict[str, torch.Tensor | np.ndarray] | None = None,
    classes: Iterable[int] | None = None,
    connectivity: int = 2,
    ignore_index: int = IGNORE_INDEX,
    scene_offset: int = 0,
    background: int | None = 0,
) -> pd.DataFrame:
    """Return one row per predicted segment of ``probs`` ``(N, K, H, W)``: scene, class, softmax features and, with ``labels``, the IoU.

    ``extra`` maps a name to further pixel maps ``(N, H, W)`` (e.g. ``{"mi": mutual_information}``),
    summarised by their mean over the segment, boundary and interior (columns ``mi_mean``,
    ``mi_bd_mean``, ``mi_in_mean``). Scenes are numbered from ``scene_offset``. With ``labels``, the
    columns ``iou`` (adjusted), ``iou_unadjusted``, ``false_positive`` (IoU = 0) and ``ignore_fraction``
    are added. Scenes without segments give no row; a table without any row still has every column,
    with its dtype. ``classes=None`` takes every class but ``background`` (``None``: every class).
    """
    p = _to_numpy(probs, "probs")
    y = None if labels is None else _to_numpy(labels, "labels")
    ex = {k: _to_numpy(v, f"extra[{k!r}]") for k, v in (extra or {}).items()}
    _check_scene(p, y, ex, ignore_index)
    connectivity = _check_connectivity(connectivity)
    k = p.shape[1]
    cls = _check_classes(classes, k, background)
    if isinstance(scene_offset, bool) or not isinstance(scene_offset, int) or scene_offset < 0:
        raise ValueError(f"scene_offset must be an int >= 0, got {scene_offset!r}")
    measures = pixel_measures(p)
    pred = p.argmax(1)
    rows = []
    for i in range(p.shape[0]):
        ids, seg_class = label_segments(pred[i], k, cls, connectivity)
        n = len(seg_class)
        if n == 0:
            continue
        bd = boundary_mask(ids)
        seg = ids > 0
        masks = {"": seg, "_bd": bd, "_in": seg & ~bd}
        out: dict[str, np.ndarray] = {
            "scene": np.full(n, scene_offset + i),
            "segment": np.arange(1, n + 1),
            "cls": seg_class,
        }
        for r, mask in masks.items():
            for name, values in list(measures.items()) + [(name, v) for name, v in ex.items()]:
                vals = values[i]
                _, mean, std = _region_stats(ids, mask, n, vals)
                out[f"{name}{r}_mean"] = mean
                if name in measures:
                    out[f"{name}{r}_std"] = std
            out[f"size{r}"] = np.bincount(ids[mask], minlength=n + 1)[1:]
        out["bd_ratio"] = out["size_bd"] / out["size"]
        ms_min = np.full(n + 1, np.inf)
        np.minimum.at(ms_min, ids[seg], measures["max_softmax"][i][seg])
        out["max_softmax_min"] = ms_min[1:]
        if y is not None:
            adj, plain = _adjusted_iou(ids, seg_class, y[i], ignore_index, connectivity)
            out["iou"] = adj
            out["iou_unadjusted"] = plain
            out["false_positive"] = adj == 0
            ign = np.bincount(ids[seg & (y[i] == ignore_index)], minlength=n + 1)[1:]
            out["ignore_fraction"] = ign / out["size"]
        rows.append(pd.DataFrame(out))
    if not rows:
        return _empty_table(list(measures), list(ex), with_labels=y is not None)
    return pd.concat(rows, ignore_index=True)


def _empty_table(measures: list[str], extra: list[str], with_labels: bool) -> pd.DataFrame:
    """The table of no segment: the columns of :func:`segment_table`, in its order, with its dtypes."""
    columns: dict[str, type] = {"scene": np.int64, "segment": np.int64, "cls": np.int64}
    for r in REGIONS:
        for name in measures + extra:
            columns[f"{name}{r}_mean"] = np.float64
            if name in measures:
                columns[f"{name}{r}_std"] = np.float64
        columns[f"size{r}"] = np.int64
    columns |= {"bd_ratio": np.float64, "max_softmax_min": np.float64}
    if with_labels:
        columns |= {"iou": np.float64, "iou_unadjusted": np.float64, "false_positive": np.bool_, "ignore_fraction": np.float64}
    return pd.DataFrame({name: np.zeros(0, dtype=dtype) for name, dtype in columns.items()})


def stream_segments(
    batches: Iterable[tuple],
    classes: Iterable[int] | None = None,
    connectivity: int = 2,
    ignore_index: int = IGNORE_INDEX,
    background: int | None = 0,
) -> pd.DataFrame:
    """Return :func:`segment_table` over an iterable of ``(probs, labels)`` or ``(probs, labels, extra)`` batches, scenes numbered on."""
    cls = None if classes is None else list(classes)
    tables, offset = [], 0
    for b in batches:
        if not isinstance(b, tuple) or len(b) not in (2, 3):
            raise TypeError("each batch must be a tuple (probs, labels) or (probs, labels, extra)")
        probs, labels = b[0], b[1]
        extra = b[2] if len(b) == 3 else None
        tables.append(segment_table(probs, labels, extra, cls, connectivity, ignore_index, offset, background))
        offset += int(probs.shape[0])
    if not tables:
        raise ValueError("batches must hold at least one batch")
    return pd.concat(tables, ignore_index=True)


def digit_table(
    probs: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    classes: Iterable[int] | None = None,
    connectivity: int = 2,
    ignore_index: int = IGNORE_INDEX,
    background: int | None = 0,
) -> pd.DataFrame:
    """Return one row per ground-truth object (component of one class in ``labels``): its mean max-softmax and its majority prediction.

    Columns: ``scene``, ``cls``, ``size``, ``max_softmax_mean`` (over the object's pixels),
    ``pred_cls`` (the class predicted on most of its pixels), ``correct_fraction`` and ``wrong``
    (``pred_cls`` is another class). Touching objects of one class form one component.
    """
    p = _to_numpy(probs, "probs")
    y = _to_numpy(labels, "labels")
    _check_scene(p, y, {}, ignore_index)
    k = p.shape[1]
    cls = _check_classes(classes, k, background)
    structure = ndimage.generate_binary_structure(2, _check_connectivity(connectivity))
    pred = p.argmax(1)
    ms = p.max(1)
    rows = []
    for i in range(p.shape[0]):
        for c in cls:
            comp, m = ndimage.label(y[i] == c, structure=structure)
            for j in range(1, m + 1):
                px = comp == j
                votes = np.bincount(pred[i][px], minlength=k)
                rows.append((i, c, int(px.sum()), float(ms[i][px].mean()), int(votes.argmax()),
                             float(votes[c] / px.sum())))
    df = pd.DataFrame(rows, columns=["scene", "cls", "size", "max_softmax_mean", "pred_cls", "correct_fraction"])
    df["wrong"] = df["pred_cls"] != df["cls"]
    return df


def _check_table(table: pd.DataFrame, features: Sequence[str], target: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in [*features, target, "scene"] if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing}")
    if table[target].isna().any():
        raise ValueError(f"table[{target!r}] holds NaN (drop segments without IoU first)")


def _model(kind: str, penalty: str = "l2"):
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if penalty not in ("l2", "l1"):
        raise ValueError(f"penalty must be 'l2' or 'l1', got {penalty!r}")
    if kind == "classify":
        if penalty == "l1":  # MetaSeg's logistic LASSO, at scikit-learn's default strength C = 1
            return make_pipeline(StandardScaler(), _logistic_lasso())
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if kind == "regress":
        if penalty != "l2":
            raise ValueError("penalty='l1' is for kind='classify' only; the regression is unpenalised")
        return make_pipeline(StandardScaler(), LinearRegression())
    raise ValueError(f"kind must be 'classify' or 'regress', got {kind!r}")


def _logistic_lasso():
    """An L1-penalised logistic regression, spelt as the installed scikit-learn wants it (1.8 deprecated ``penalty``)."""
    import re

    import sklearn
    from sklearn.linear_model import LogisticRegression

    version = tuple(int(v) for v in re.findall(r"\d+", sklearn.__version__)[:2])
    if version >= (1, 8):
        return LogisticRegression(l1_ratio=1.0, solver="liblinear", max_iter=2000)
    return LogisticRegression(penalty="l1", solver="liblinear", max_iter=2000)


def fit_meta(table: pd.DataFrame, features: Sequence[str], target: str, kind: str = "classify", penalty: str = "l2"):
    """Fit a standardised logistic (``kind="classify"``) or linear (``"regress"``) meta-model of ``target`` on ``features``.

    The logistic model is L2-penalised (scikit-learn's default, C = 1); ``penalty="l1"`` makes it a
    logistic LASSO, the meta-classifier of MetaSeg. The linear regression is unpenalised.
    """
    _check_table(table, features, target)
    model = _model(kind, penalty)
    model.fit(table[list(features)].astype(float), table[target].to_numpy())
    return model


def cross_validated(
    table: pd.DataFrame, features: Sequence[str], target: str, kind: str = "classify", n_splits: int = 5,
    penalty: str = "l2",
) -> tuple[np.ndarray, list[float]]:
    """Return out-of-fold meta-model outputs and per-fold scores, folds grouped by scene (GroupKFold).

    For ``kind="classify"`` the output is the probability that ``target`` is true and the fold score
    its AUROC; for ``"regress"`` the prediction of ``target`` and the fold score its R². No model
    sees a segment of the scenes it is scored on. ``penalty``: as in :func:`fit_meta`.
    """
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import GroupKFold

    _check_table(table, features, target)
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 2:
        raise ValueError(f"n_splits must be an int >= 2, got {n_splits!r}")
    x = table[list(features)].to_numpy(float)
    t = table[target].to_numpy()
    groups = table["scene"].to_numpy()
    out = np.zeros(len(table))
    scores = []
    for train, test in GroupKFold(n_splits=n_splits).split(x, t, groups):
        model = _model(kind, penalty).fit(x[train], t[train])
        if kind == "classify":
            out[test] = model.predict_proba(x[test])[:, 1]
            scores.append(float(roc_auc_score(t[test], out[test])))
        else:
            out[test] = model.predict(x[test])
            scores.append(float(r2_score(t[test], out[test])))
    return out, scores


def scene_bootstrap(
    scenes: np.ndarray | pd.Series,
    statistic: Callable[[np.ndarray], float],
    n_boot: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Return ``statistic(rows)`` for ``n_boot`` resamples of whole scenes: ``rows`` indexes the segments of the drawn scenes."""
    from .spread import scene_draws

    s = np.asarray(scenes)
    uniq, inv = np.unique(s, return_inverse=True)
    members = [np.flatnonzero(inv == j) for j in range(len(uniq))]
    draws = scene_draws(len(uniq), n_boot, seed).numpy()
    return np.array([statistic(np.concatenate([members[j] for j in d])) for d in draws])


def bootstrap_auroc(
    scenes: np.ndarray | pd.Series,
    positive: np.ndarray | pd.Series,
    scores: dict[str, np.ndarray | pd.Series],
    n_boot: int = 1000,
    seed: int = 0,
    n_scenes: int | None = None,
) -> pd.DataFrame:
    """Return the AUROC of each score (columns) for ``n_boot`` resamples of whole scenes (rows), the same resamples for all.

    Each segment counts as often as its scene is drawn (weights from :func:`utils.spread.scene_weights`);
    ties count one half. Differences of two columns give a paired bootstrap of an AUROC gap. By default
    the scenes drawn are those that hold a segment; with ``n_scenes``, ``scenes`` are indices in
    ``[0, n_scenes)`` and all ``n_scenes`` are drawn, so that two tables of the same scenes (two models'
    segments) share their resamples: a paired bootstrap across models. A draw without a positive or a
    negative segment has AUROC NaN.
    """
    from .spread import scene_weights

    s = np.asarray(scenes)
    pos = np.asarray(positive)
    if pos.dtype != np.bool_ or pos.shape != s.shape or s.ndim != 1:
        raise ValueError("positive must be a bool array with one entry per segment, like scenes")
    if not pos.any() or pos.all():
        raise ValueError("positive must hold both positive and negative segments")
    if n_scenes is None:
        uniq, inv = np.unique(s, return_inverse=True)
        w = scene_weights(len(uniq), n_boot, seed).numpy()[:, inv]  # (R, n) weight of each segment
    else:
        if isinstance(n_scenes, bool) or not isinstance(n_scenes, (int, np.integer)) or n_scenes < 1:
            raise ValueError(f"n_scenes must be an int >= 1, got {n_scenes!r}")
        if not np.issubdtype(s.dtype, np.integer) or s.min() < 0 or s.max() >= n_scenes:
            raise ValueError(f"with n_scenes, scenes must be integer indices in [0, {n_scenes})")
        w = scene_weights(int(n_scenes), n_boot, seed).numpy()[:, s]
    out = {}
    for name, score in scores.items():
        v = np.asarray(score, dtype=float)
        if v.shape != s.shape or np.isnan(v).any():
            raise ValueError(f"scores[{name!r}] must hold one finite value per segment")
        order = np.argsort(v, kind="mergesort")
        start = np.flatnonzero(np.r_[True, np.diff(v[order]) != 0])  # first index of each tie group
        po = pos[order]
        # resamples in blocks of 100 rows: the same numbers, a tenth of the temporary memory
        out[name] = np.concatenate([_weighted_auroc(w[r : r + 100, order], po, start) for r in range(0, w.shape[0], 100)])
    return pd.DataFrame(out)


def _weighted_auroc(wo: np.ndarray, po: np.ndarray, start: np.ndarray) -> np.ndarray:
    """AUROC per row of segment weights ``wo`` (sorted by score), positives ``po``, tie groups starting at ``start``."""
    neg = np.add.reduceat(wo * ~po, start, axis=1)
    pw = np.add.reduceat(wo * po, start, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pw * (below + neg / 2)).sum(1) / (pw.sum(1) * neg.sum(1))
