"""Tests of utils.segments: hand-made scenes whose segments and IoUs are known, features against numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from utils import segments
from utils.config import IGNORE_INDEX


def one_hot(pred: np.ndarray, k: int, conf: float = 0.8) -> np.ndarray:
    """(1, K, H, W) probabilities: ``conf`` on the predicted class, the rest spread evenly."""
    p = np.full((k, *pred.shape), (1 - conf) / (k - 1))
    for c in range(k):
        p[c][pred == c] = conf
    return p[None]




def test_hand_made_adjusted_iou() -> None:
    y = np.zeros((6, 10), dtype=np.int64)
    y[0:2, 0:5] = 1  # one class-1 object, 10 px
    y[4:6, 6:8] = 2  # one class-2 object, 4 px
    pred = np.zeros_like(y)
    pred[0:2, 0:2] = 1  # segment A: 4 object px
    pred[2, 0:2] = 1  # A: 2 px below the object
    pred[0:2, 3:5] = 1  # segment B: 4 object px; column 2 (2 px) of the object is missed
    pred[4:6, 3:5] = 2  # segment C: class 2, touches no class-2 object -> IoU 0
    pred[5, 9] = 1  # segment D: class 1 on background -> IoU 0
    t = segments.segment_table(one_hot(pred, 3), y[None])
    t = t.sort_values(["cls", "size"]).reset_index(drop=True)
    by = {(r.cls, r.size): r for r in t.itertuples()}
    a, b, c, d = by[1, 6], by[1, 4], by[2, 4], by[1, 1]
    assert len(t) == 4
    # A by hand: |A & G| = 4; G without B's pixels = 10 - 4 = 6 px; union = |A| + 6 - 4 = 8.
    assert a.iou == pytest.approx(4 / 8)
    # Unadjusted: union = 6 + 10 - 4 = 12.
    assert a.iou_unadjusted == pytest.approx(4 / 12)
    # B by hand: |B & G| = 4; G without A's 4 px = 6; union = 4 + 6 - 4 = 6.
    assert b.iou == pytest.approx(4 / 6)
    assert b.iou_unadjusted == pytest.approx(4 / 10)
    assert c.iou == 0 and c.false_positive
    assert d.iou == 0 and d.false_positive
    assert not a.false_positive and not b.false_positive
    assert t["ignore_fraction"].eq(0).all()


def test_perfect_prediction_has_iou_one_and_background_optional() -> None:
    y = np.zeros((8, 8), dtype=np.int64)
    y[1:4, 1:4] = 2
    y[5:7, 5:8] = 1
    t = segments.segment_table(one_hot(y, 3), y[None])
    assert sorted(t["cls"]) == [1, 2] and np.allclose(t["iou"], 1.0)
    everything = segments.segment_table(one_hot(y, 3), y[None], classes=range(3))
    assert sorted(everything["cls"]) == [0, 1, 2] and np.allclose(everything["iou"], 1.0)


def test_ignore_pixels_are_left_out_of_the_iou() -> None:
    y = np.zeros((5, 5), dtype=np.int64)
    y[0:2, 0:2] = 1
    y[0:2, 2] = IGNORE_INDEX  # the segment spills onto 2 ignore pixels
    pred = np.zeros_like(y)
    pred[0:2, 0:3] = 1
    pred[4, 4] = 1  # lies on background
    y[4, 0] = IGNORE_INDEX
    pred[4, 0] = 2  # lies wholly on an ignore pixel: IoU undefined
    t = segments.segment_table(one_hot(pred, 3), y[None]).sort_values(["cls", "size"]).reset_index(drop=True)
    big = t[(t.cls == 1) & (t["size"] == 6)].iloc[0]
    assert big.iou == pytest.approx(1.0) and big.ignore_fraction == pytest.approx(2 / 6)
    lone = t[t.cls == 2].iloc[0]
    assert np.isnan(lone.iou) and lone.ignore_fraction == 1 and not lone.false_positive


def test_connectivity_choice() -> None:
    pred = np.zeros((4, 4), dtype=np.int64)
    pred[0, 0] = pred[1, 1] = 1  # touch at a corner only
    _, cls8 = segments.label_segments(pred, 2)
    _, cls4 = segments.label_segments(pred, 2, connectivity=1)
    assert len(cls8) == 1 and len(cls4) == 2
    with pytest.raises(ValueError, match="connectivity"):
        segments.label_segments(pred, 2, connectivity=3)


def test_features_against_numpy() -> None:
    rng = np.random.default_rng(0)
    k, h, w = 4, 7, 9
    logits = rng.normal(size=(2, k, h, w)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mi = rng.uniform(size=(2, h, w))
    t = segments.segment_table(torch.tensor(p), extra={"mi": torch.tensor(mi)}, classes=range(k))
    pred = p.argmax(1)
    ps = np.sort(p, axis=1)
    ms, margin = ps[:, -1], ps[:, -1] - ps[:, -2]
    ent = -(p * np.log(p)).sum(1)
    assert t["size"].sum() == 2 * h * w  # with every class, the segments tile both scenes
    for r in t.itertuples():
        ids, _ = segments.label_segments(pred[r.scene], k, range(k))
        seg = ids == r.segment
        # boundary by brute force: some 8-neighbour outside the segment or the image
        bd = np.zeros_like(seg)
        for i, j in zip(*np.nonzero(seg)):
            nb = [(i + a, j + b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b]
            bd[i, j] = any(not (0 <= u < h and 0 <= v < w) or not seg[u, v] for u, v in nb)
        inner = seg & ~bd
        assert r.cls == pred[r.scene][seg][0]
        assert r.size == seg.sum() and r.size_bd == bd.sum() and r.size_in == inner.sum()
        assert r.bd_ratio == pytest.approx(bd.sum() / seg.sum())
        assert r.max_softmax_mean == pytest.approx(ms[r.scene][seg].mean())
        assert r.max_softmax_std == pytest.approx(ms[r.scene][seg].std(), abs=1e-7)
        assert r.max_softmax_min == pytest.approx(ms[r.scene][seg].min())
        assert r.entropy_bd_mean == pytest.approx(ent[r.scene][bd].mean())
        assert r.margin_mean == pytest.approx(margin[r.scene][seg].mean())
        assert r.mi_mean == pytest.approx(mi[r.scene][seg].mean())
        if inner.any():
            assert r.margin_in_mean == pytest.approx(margin[r.scene][inner].mean())
            assert r.entropy_in_std == pytest.approx(ent[r.scene][inner].std(), abs=1e-7)
        else:
            assert r.margin_in_mean == 0 and r.entropy_in_std == 0


@pytest.mark.parametrize("k,h,w", [(2, 5, 3), (7, 16, 11)])
def test_any_k_and_size_and_streaming(k: int, h: int, w: int) -> None:
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, size=(5, h, w))
    p = one_hot(y[0], k)
    probs = np.concatenate([one_hot(y[i], k) for i in range(5)])
    whole = segments.segment_table(probs, y)
    streamed = segments.stream_segments([(probs[:2], y[:2]), (probs[2:], y[2:])])
    pd.testing.assert_frame_equal(whole, streamed)
    assert np.allclose(whole["iou"], 1.0) and p.shape == (1, k, h, w)


def test_digit_table() -> None:
    y = np.zeros((6, 6), dtype=np.int64)
    y[0:2, 0:2] = 1
    y[4:6, 4:6] = 2
    pred = y.copy()
    pred[4:6, 4:6] = 1  # the class-2 object is wholly given class 1
    t = segments.digit_table(one_hot(pred, 3, conf=0.9), y[None])
    assert list(t["cls"]) == [1, 2] and list(t["wrong"]) == [False, True]
    assert list(t["pred_cls"]) == [1, 1] and t["max_softmax_mean"].tolist() == pytest.approx([0.9, 0.9])
    assert t["correct_fraction"].tolist() == [1.0, 0.0]


def test_cross_validation_and_bootstrap() -> None:
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=n)
    table = pd.DataFrame({"scene": np.arange(n) // 4, "a": x, "b": rng.normal(size=n)})
    table["fp"] = x + 0.3 * rng.normal(size=n) > 0
    table["iou"] = 0.5 + 0.1 * x
    out, folds = segments.cross_validated(table, ["a", "b"], "fp")
    assert len(out) == n and len(folds) == 5 and min(folds) > 0.8
    _, r2 = segments.cross_validated(table, ["a"], "iou", kind="regress")
    assert min(r2) > 0.999
    vals = segments.scene_bootstrap(table["scene"], lambda rows: float(table["a"].iloc[rows].mean()), 200)
    assert vals.shape == (200,) and vals.std() > 0
    model = segments.fit_meta(table, ["a", "b"], "fp")
    assert model.predict_proba(table[["a", "b"]])[:, 1].shape == (n,)
    # the logistic LASSO (MetaSeg's meta-classifier) sets some of ten pure-noise features to exactly 0; L2 none
    noise = [f"n{i}" for i in range(10)]
    wide = table.assign(**{c: rng.normal(size=n) for c in noise})
    l1_coef = segments.fit_meta(wide, ["a", *noise], "fp", penalty="l1")[-1].coef_[0]
    l2_coef = segments.fit_meta(wide, ["a", *noise], "fp")[-1].coef_[0]
    assert (l1_coef[1:] == 0).any() and not (l2_coef == 0).any() and abs(l1_coef[0]) > 1
    out1, folds1 = segments.cross_validated(table, ["a", "b"], "fp", penalty="l1")
    assert len(out1) == n and min(folds1) > 0.8


def test_bad_arguments() -> None:
    y = np.zeros((1, 4, 4), dtype=np.int64)
    p = one_hot(y[0], 3)
    with pytest.raises(ValueError, match="probs must have shape"):
        segments.segment_table(p[0], y)
    with pytest.raises(ValueError, match="labels must have shape"):
        segments.segment_table(p, y[:, :3])
    with pytest.raises(TypeError, match="labels must be an integer"):
        segments.segment_table(p, y.astype(float))
    bad = y.copy()
    bad[0, 0, 0] = 3
    with pytest.raises(ValueError, match="labels must hold classes"):
        segments.segment_table(p, bad)
    bad[0, 0, 0] = 254
    with pytest.raises(ValueError, match="ignore_index=255"):
        segments.segment_table(p, bad)
    with pytest.raises(ValueError, match="sum to 1"):
        segments.segment_table(p * 0.5, y)
    with pytest.raises(ValueError, match="softmax"):
        segments.segment_table(np.log(p), y)
    with pytest.raises(TypeError, match="probs must be floating"):
        segments.segment_table(p.astype(np.int64), y)
    with pytest.raises(ValueError, match="classes must hold"):
        segments.segment_table(p, y, classes=[3])
    with pytest.raises(ValueError, match=r"extra\['mi'\]"):
        segments.segment_table(p, y, extra={"mi": np.zeros((1, 3, 3))})
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        segments.segment_table(p.tolist(), y)
    with pytest.raises(TypeError, match="each batch"):
        segments.stream_segments([p])
    with pytest.raises(ValueError, match="at least one batch"):
        segments.stream_segments([])
    with pytest.raises(ValueError, match="prediction must hold classes"):
        segments.label_segments(np.full((2, 2), 5), 3)
    with pytest.raises(ValueError, match="kind"):
        segments.fit_meta(pd.DataFrame({"scene": [0, 1], "a": [0.0, 1.0], "t": [0, 1]}), ["a"], "t", kind="tree")
    with pytest.raises(ValueError, match="penalty must be"):
        segments.fit_meta(pd.DataFrame({"scene": [0, 1], "a": [0.0, 1.0], "t": [0, 1]}), ["a"], "t", penalty="l0")
    with pytest.raises(ValueError, match="classify' only"):
        segments.fit_meta(pd.DataFrame({"scene": [0, 1], "a": [0.0, 1.0], "t": [0.0, 1.0]}), ["a"], "t", kind="regress", penalty="l1")
    with pytest.raises(ValueError, match="NaN"):
        segments.cross_validated(pd.DataFrame({"scene": [0, 1], "a": [0.0, 1.0], "t": [0, np.nan]}), ["a"], "t")
    with pytest.raises(ValueError, match="lacks the columns"):
        segments.cross_validated(pd.DataFrame({"scene": [0, 1]}), ["a"], "t")


def test_bootstrap_auroc_matches_sklearn_and_resamples_scenes() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    scenes = np.repeat(np.arange(30), 5)
    pos = rng.uniform(size=150) < 0.3
    a = np.round(rng.normal(size=150) + pos, 1)  # rounded: ties
    b = rng.normal(size=150)
    boot = segments.bootstrap_auroc(scenes, pos, {"a": a, "b": b}, n_boot=50)
    assert boot.shape == (50, 2) and boot["a"].std() > 0
    # one resample by hand: the drawn scenes' segments, repeated as drawn
    from utils.spread import scene_draws

    rows = np.concatenate([np.flatnonzero(scenes == j) for j in scene_draws(30, 50, 0)[7].numpy()])
    assert boot["a"][7] == pytest.approx(roc_auc_score(pos[rows], a[rows]))
    with pytest.raises(ValueError, match="both positive and negative"):
        segments.bootstrap_auroc(scenes, np.zeros(150, bool), {"a": a})
    with pytest.raises(ValueError, match="one finite value"):
        segments.bootstrap_auroc(scenes, pos, {"a": a[:10]})


def test_bootstrap_auroc_over_all_scenes_pairs_tables_of_the_same_scenes() -> None:
    from sklearn.metrics import roc_auc_score

    from utils.spread import scene_draws

    rng = np.random.default_rng(2)
    scenes = np.repeat(np.arange(30), 5)
    pos = rng.uniform(size=150) < 0.3
    a = rng.normal(size=150) + pos
    every = segments.bootstrap_auroc(scenes, pos, {"a": a}, n_boot=50, n_scenes=30)
    pd.testing.assert_frame_equal(every, segments.bootstrap_auroc(scenes, pos, {"a": a}, n_boot=50))
    keep = scenes >= 10  # another model's table: no segment in scenes 0-9
    part = segments.bootstrap_auroc(scenes[keep], pos[keep], {"a": a[keep]}, n_boot=50, n_scenes=30)
    draw = scene_draws(30, 50, 0)[7].numpy()  # resample 7 of both tables: the same scenes
    rows = np.concatenate([np.flatnonzero((scenes == j) & keep) for j in draw])
    assert part["a"][7] == pytest.approx(roc_auc_score(pos[rows], a[rows]))
    with pytest.raises(ValueError, match="n_scenes"):
        segments.bootstrap_auroc(scenes, pos, {"a": a}, n_scenes=20)


def _relabel(probs: np.ndarray, labels: np.ndarray, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same scenes with class ``c`` renamed ``perm[c]`` (ignored pixels stay ignored)."""
    p = np.empty_like(probs)
    p[:, perm] = probs
    y = np.where(labels == IGNORE_INDEX, IGNORE_INDEX, perm[np.where(labels == IGNORE_INDEX, 0, labels)])
    return p, y


def test_a_table_without_segments_has_every_column_and_dtype_of_one_with_segments() -> None:
    y = np.zeros((2, 6, 6), dtype=np.int64)
    y[0, 1:3, 1:3] = 1  # scene 0 holds a segment, scene 1 none
    probs = np.concatenate([one_hot(y[0], 3), one_hot(y[1], 3)])
    score = np.random.default_rng(0).random((2, 6, 6))
    for labels in (y, None):
        full = segments.segment_table(probs, None if labels is None else y, extra={"score": score})
        empty = segments.segment_table(probs[1:], None if labels is None else y[1:], extra={"score": score[1:]})
        assert len(full) == 1 and len(empty) == 0
        assert list(empty.columns) == list(full.columns)
        assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    none = segments.segment_table(probs[1:], y[1:])
    assert {"iou", "false_positive", "ignore_fraction"} <= set(none.columns) and none["false_positive"].dtype == bool
    streamed = segments.stream_segments([(probs[1:], y[1:]), (probs[:1], y[:1])])
    assert len(streamed) == 1 and streamed["scene"].tolist() == [1] and streamed["false_positive"].dtype == bool


def test_the_background_class_is_an_argument() -> None:
    rng = np.random.default_rng(3)
    y = np.zeros((3, 12, 12), dtype=np.int64)
    y[:, 2:6, 2:6], y[:, 7:10, 6:11] = 1, 2
    pred = y.copy()
    pred[:, 0, :3] = 2  # a false positive on the background
    probs = np.concatenate([one_hot(pred[i], 3, conf=0.5 + 0.4 * rng.random()) for i in range(3)])
    perm = np.array([2, 0, 1])  # background 0 becomes class 2
    p2, y2 = _relabel(probs, y, perm)
    want = segments.segment_table(probs, y)
    got = segments.segment_table(p2, y2, background=2)
    assert sorted(got["cls"]) == sorted(perm[want["cls"]])
    cols = ["scene", "size", "iou", "false_positive", "max_softmax_mean"]
    key = lambda t: t[cols].sort_values(cols[:2]).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(key(got), key(want))
    assert 2 not in set(segments.segment_table(p2, y2, background=2)["cls"])
    assert 2 in set(segments.segment_table(p2, y2)["cls"])  # class 0 as background: the real background is a segment
    assert set(segments.segment_table(p2, y2, background=None)["cls"]) == {0, 1, 2}  # no background: every class
    dt = segments.digit_table(p2, y2, background=2)
    pd.testing.assert_frame_equal(dt.drop(columns=["cls", "pred_cls"]),
                                  segments.digit_table(probs, y).drop(columns=["cls", "pred_cls"]))
    with pytest.raises(ValueError, match="background must be"):
        segments.segment_table(p2, y2, background=3)
