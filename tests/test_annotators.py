"""Unit tests of utils.annotators: multi-annotator DigitScenes (determinism, constructed proportions, errors) and the measures."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from utils.annotators import (
    KINDS,
    AnnotatorConfig,
    AnnotatorScenes,
    annotator_entropy,
    correlation,
    correlation_difference,
    correlation_sums,
    disagreement_kind,
    energy_distance,
    iou_distance,
    label_distribution,
    log_ratio_difference,
    make_annotator_scene,
    masked_mean,
    mean_ratio,
    pixel_correlation,
    scene_energy_distances,
)
from utils.data import SceneConfig

ONLY = {kind: AnnotatorConfig(kinds=tuple(float(k == kind) for k in KINDS)) for kind in KINDS}


def _same(a, b) -> bool:
    return (np.array_equal(a.image, b.image) and np.array_equal(a.annotations, b.annotations)
            and np.array_equal(a.reference, b.reference) and a.glyphs == b.glyphs)


# --- data: determinism and shapes ---------------------------------------------------------------


def test_same_arguments_give_the_same_scene_and_other_seeds_differ():
    for index in (0, 5, 77):
        assert _same(make_annotator_scene("test", index, seed=2), make_annotator_scene("test", index, seed=2))
    assert not _same(make_annotator_scene("test", 5, seed=0), make_annotator_scene("test", 5, seed=1))
    assert not _same(make_annotator_scene("test", 5), make_annotator_scene("test", 6))


def test_shapes_and_dtypes():
    scene = make_annotator_scene("val", 3, annotators=AnnotatorConfig(annotators=3))
    assert scene.image.shape == (64, 64) and scene.image.dtype == np.float32
    assert scene.annotations.shape == (3, 64, 64) and scene.annotations.dtype == np.uint8
    assert scene.reference.shape == scene.instances.shape == (64, 64)
    data = AnnotatorScenes("val", 6)
    assert data.images.shape == (6, 1, 64, 64) and data.annotations.shape == (6, 4, 64, 64)
    assert data.labels.shape == (6, 64, 64) and data.labels.dtype == torch.int64
    assert data.distribution().shape == (6, 11, 64, 64) and data.disagreement().shape == (6, 64, 64)
    assert data.kind().shape == (6, 64, 64) and len(data.glyphs) == len(data.digits) == 6
    image, label = data[2]
    assert image.shape == (1, 64, 64) and torch.equal(label, data.reference[2])


def test_dataset_matches_the_scene_function():
    data = AnnotatorScenes("test", 3, seed=4, start=10)
    for i in range(3):
        scene = make_annotator_scene("test", 10 + i, seed=4)
        assert np.array_equal(data.annotations[i].numpy(), scene.annotations)
        assert np.array_equal(data.images[i, 0].numpy(), scene.image)


# --- data: the disagreement is what was constructed ---------------------------------------------


def test_agreed_glyphs_all_annotators_draw_the_reference():
    data = AnnotatorScenes("test", 20, annotators=ONLY["agreed"])
    for j in range(4):
        assert torch.equal(data.annotations[:, j].long(), data.reference)
    assert float(data.disagreement().abs().max()) == 0.0 and int(data.kind().max()) == 0


def test_ambiguous_glyphs_are_split_in_the_constructed_proportion():
    cfg = ONLY["ambiguous"]
    seen = Counter()
    for index in range(40):
        scene = make_annotator_scene("test", index, annotators=cfg)
        dist = label_distribution(torch.from_numpy(scene.annotations)[None])[0]
        for j, g in enumerate(scene.glyphs):
            a, b = g.digits
            assert a != b and g.kind == "ambiguous"
            assert g.share[0] == cfg.votes_for_a(g.weight) / 4 and g.share[0] + g.share[1] == 1
            pixels = torch.from_numpy(scene.instances == j + 1)  # its stroke where no later glyph covers it
            assert pixels.any()
            assert torch.all(dist[a + 1][pixels] == g.share[0]) and torch.all(dist[b + 1][pixels] == g.share[1])
            seen[g.weight] += 1
    assert set(seen) == set(cfg.blend_weights)  # every weight occurs
    # all annotators draw the same stroke: never a boundary disagreement
    data = AnnotatorScenes("test", 20, annotators=cfg)
    assert int((data.kind() == 2).sum()) == 0 and int((data.kind() == 1).sum()) > 0


def test_votes_for_a_is_the_rounded_weight_kept_inside_one_to_a_minus_one():
    cfg = AnnotatorConfig()
    assert [cfg.votes_for_a(w) for w in (0.25, 0.5, 0.75)] == [1, 2, 3]
    assert cfg.votes_for_a(0.01) == 1 and cfg.votes_for_a(0.99) == 3


def test_boundary_annotators_draw_nested_strokes_thickest_first():
    data = AnnotatorScenes("test", 20, annotators=ONLY["boundary"])
    fg = data.annotations > 0
    for j in range(3):
        assert torch.all(fg[:, j] >= fg[:, j + 1])  # annotator j's strokes contain annotator j + 1's
    # class disagreement arises only where a later glyph's fringe, drawn thicker by some, covers an earlier glyph
    n_class, n_boundary = int((data.kind() == 1).sum()), int((data.kind() == 2).sum())
    assert n_boundary > 0 and n_class < 0.01 * n_boundary
    # with 4 thresholds 0.2, 0.4, 0.6, 0.8 the ink-0.5 reference lies between annotators 1 and 2
    ref = data.reference > 0
    assert torch.all(fg[:, 1] >= ref) and torch.all(ref >= fg[:, 2])
    assert np.allclose(AnnotatorConfig().annotator_thresholds(), [0.2, 0.4, 0.6, 0.8])


def test_glyph_kinds_follow_their_probabilities():
    counts = Counter(g.kind for gl in AnnotatorScenes("train", 300).glyphs for g in gl)
    n = sum(counts.values())
    for kind, p in zip(KINDS, AnnotatorConfig().kinds):
        assert abs(counts[kind] / n - p) < 4 * math.sqrt(p * (1 - p) / n), (kind, counts)


def test_random_label_draws_one_annotator_per_scene_repeatably():
    a = AnnotatorScenes("train", 30, label="random", draw_seed=1)
    b = AnnotatorScenes("train", 30, label="random", draw_seed=1)
    c = AnnotatorScenes("train", 30, label="random", draw_seed=2)
    assert torch.equal(a.picked, b.picked) and not torch.equal(a.picked, c.picked)
    assert set(a.picked.tolist()) == {0, 1, 2, 3}
    for i in range(30):
        assert torch.equal(a.labels[i], a.annotations[i, a.picked[i]].long())
    fixed = AnnotatorScenes("train", 5, label=3)
    assert torch.equal(fixed.labels, fixed.annotations[:, 3].long())


# --- disagreement per pixel on hand-made maps ------------------------------------------------------


def test_distribution_entropy_and_kind_by_hand():
    # 4 annotators, 1 x 4 pixels: all 0 | 2-2 split of classes 1, 2 | 1-3 split digit/background | 3 of 1, 1 of 2
    ann = torch.tensor([[[0, 1, 0, 1]], [[0, 1, 0, 1]], [[0, 2, 0, 1]], [[0, 2, 5, 2]]])
    dist = label_distribution(ann, num_classes=6)
    assert dist.shape == (6, 1, 4)
    assert dist[:, 0, 1].tolist() == [0, 0.5, 0.5, 0, 0, 0] and dist[:, 0, 2].tolist() == [0.75, 0, 0, 0, 0, 0.25]
    h = annotator_entropy(ann, num_classes=6)[0]
    h_quarter = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert h.tolist() == pytest.approx([0.0, math.log(2), h_quarter, h_quarter])
    assert disagreement_kind(ann)[0].tolist() == [0, 1, 2, 1]


# --- measures on hand-made cases ---------------------------------------------------------------


def test_iou_distance_by_hand():
    a = torch.tensor([[1, 1, 0], [0, 0, 0]])
    b = torch.tensor([[0, 1, 1], [0, 0, 0]])
    assert float(iou_distance(a, b)) == pytest.approx(1 - 1 / 3)  # foreground: intersection 1, union 3
    empty = torch.zeros(2, 3, dtype=torch.long)
    assert float(iou_distance(empty, empty)) == 0.0 and float(iou_distance(a, empty)) == 1.0
    # classes: class 1 IoU 1/2, class 2 IoU 1/2, class 3 present only in c: IoU 0 -> mean 1/3, d = 2/3
    c = torch.tensor([[1, 1, 0], [2, 0, 3]])
    d = torch.tensor([[1, 0, 0], [2, 2, 0]])
    assert float(iou_distance(c, d, mode="classes")) == pytest.approx(1 - (0.5 + 0.5 + 0) / 3)
    assert float(iou_distance(c, d)) == pytest.approx(1 - 2 / 5)  # foreground: 2 shared of 5 pixels
    assert iou_distance(torch.stack([a, b]), a).tolist() == pytest.approx([0.0, 2 / 3])  # broadcasts


def test_energy_distance_by_hand():
    m1 = torch.tensor([[1, 1, 0], [0, 0, 0]])
    m2 = torch.tensor([[0, 1, 1], [0, 0, 0]])  # d(m1, m2) = 2/3
    delta = 2 / 3
    same = torch.stack([m1, m2])
    assert energy_distance(same, same) == pytest.approx(0.0)
    # S = {m1}, Y = {m1, m2}: 2 * (0 + delta) / 2 - 0 - (0 + delta + delta + 0) / 4 = delta / 2
    assert energy_distance(m1[None], same) == pytest.approx(delta / 2)
    # S = {m1, m1}, Y = {m2}: 2 delta - 0 - 0
    assert energy_distance(torch.stack([m1, m1]), m2[None]) == pytest.approx(2 * delta)
    twice_m1 = torch.stack([m1, m1])
    per_scene = scene_energy_distances(torch.stack([same, same], 1), torch.stack([twice_m1, same]))
    assert per_scene.tolist() == pytest.approx([energy_distance(same, twice_m1), 0.0])
    # S = {m1, m2}, Y = {m1, m1}: 2 * (0 + delta) / 2 - (2 delta / 4) - 0 = delta / 2
    assert per_scene[0] == pytest.approx(delta / 2)


def test_pearson_and_spearman_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert float(correlation({k: v.sum(0) for k, v in correlation_sums(x, 2 * x + 1).items()})) == pytest.approx(1.0)
    assert float(correlation({k: v.sum(0) for k, v in correlation_sums(x, -x).items()})) == pytest.approx(-1.0)
    # x = (0, 0, 1, 1), y = (0, 1, 0, 1): covariance 0
    r, *_ = pixel_correlation(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[0.0, 1, 0, 1]]), n_boot=10)
    assert r == pytest.approx(0.0, abs=1e-12)
    # y = x^2: Pearson below 1, Spearman exactly 1
    y = x**2
    xs, ys = [1, 2, 3, 4], [1, 4, 9, 16]
    mx, my = 2.5, 7.5
    cov = sum((a - mx) * (b - my) for a, b in zip(xs, ys))
    expected = cov / math.sqrt(sum((a - mx) ** 2 for a in xs) * sum((b - my) ** 2 for b in ys))
    assert pixel_correlation(x, y, n_boot=10)[0] == pytest.approx(expected)
    assert pixel_correlation(x, y, method="spearman", n_boot=10)[0] == pytest.approx(1.0)


def test_spearman_uses_mid_ranks_for_ties():
    x = torch.tensor([[0.0, 0.0, 1.0]])  # mid-ranks 1.5, 1.5, 3
    y = torch.tensor([[1.0, 2.0, 3.0]])  # ranks 1, 2, 3
    rx, ry = [1.5, 1.5, 3.0], [1.0, 2.0, 3.0]
    mx, my = sum(rx) / 3, sum(ry) / 3
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    expected = cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    assert pixel_correlation(x, y, method="spearman", n_boot=10)[0] == pytest.approx(expected)


def test_correlation_pools_scenes_and_respects_the_mask():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 4, 4, generator=g)
    y = x + 0.3 * torch.rand(5, 4, 4, generator=g)
    mask = torch.rand(5, 4, 4, generator=g) > 0.3
    expected = np.corrcoef(x[mask].numpy(), y[mask].numpy())[0, 1]
    r, low, high = pixel_correlation(x, y, mask, n_boot=200)
    assert r == pytest.approx(expected) and low <= r <= high
    assert correlation_difference(x, x, -x, n_boot=50)[0] == pytest.approx(2.0)
    constant = correlation({k: v.sum(0) for k, v in correlation_sums(x, torch.ones_like(x)).items()})
    assert torch.isnan(constant)


def test_masked_mean_by_hand():
    values = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[[True, True], [False, False]], [[True, False], [False, False]]])
    mean, low, high = masked_mean(values, mask, n_boot=200)
    assert mean == pytest.approx((1 + 2 + 10) / 3) and low <= mean <= high
    assert low >= 1.5 and high <= 10.0  # a replicate's mean lies between scene 0's 1.5 and scene 1's 10


# --- errors name their argument -----------------------------------------------------------------


@pytest.mark.parametrize("kwargs, word", [
    ({"annotators": 1}, "annotators"), ({"kinds": (0.5, 0.5, 0.5)}, "kinds"), ({"kinds": (1.0, 0.0)}, "kinds"),
    ({"blend_weights": (0.5, 1.0)}, "blend_weights"), ({"blend_weights": ()}, "blend_weights"),
    ({"thresholds": (0.8, 0.2)}, "thresholds"), ({"thresholds": (0.2,)}, "thresholds"),
])
def test_config_errors_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        AnnotatorConfig(**kwargs)


def test_scene_and_dataset_errors_name_the_argument():
    with pytest.raises(ValueError, match="split"):
        make_annotator_scene("dev", 0)
    with pytest.raises(ValueError, match="index"):
        make_annotator_scene("test", -1)
    with pytest.raises(ValueError, match="seed"):
        make_annotator_scene("test", 0, seed=-2)
    with pytest.raises(TypeError, match="annotators"):
        make_annotator_scene("test", 0, annotators=SceneConfig())
    with pytest.raises(ValueError, match="label"):
        AnnotatorScenes("test", 2, label="majority")
    with pytest.raises(ValueError, match="label"):
        AnnotatorScenes("test", 2, label=4)
    with pytest.raises(ValueError, match="size"):
        AnnotatorScenes("test", -1)
    with pytest.raises(ValueError, match="draw_seed"):
        AnnotatorScenes("test", 2, draw_seed=-1)


def test_measure_errors_name_the_argument():
    a = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="mode"):
        iou_distance(a, a, mode="dice")
    with pytest.raises(TypeError, match="a must"):
        iou_distance(a.float(), a)
    with pytest.raises(ValueError, match="samples"):
        energy_distance(a, a[None])
    with pytest.raises(ValueError, match="same H, W"):
        energy_distance(a[None], torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="method"):
        pixel_correlation(torch.rand(2, 3, 3), torch.rand(2, 3, 3), method="kendall")
    with pytest.raises(ValueError, match="y must have shape"):
        pixel_correlation(torch.rand(2, 3, 3), torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="mask"):
        masked_mean(torch.rand(2, 3, 3), torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="annotations must hold labels"):
        label_distribution(torch.full((2, 3, 3), 11))
    with pytest.raises(TypeError, match="annotations"):
        annotator_entropy(torch.rand(2, 3, 3))


def test_energy_distance_agrees_with_its_definition_on_random_maps():
    """The vectorised distances equal the mean of iou_distance over every pair, in both modes."""
    g = torch.Generator().manual_seed(1)
    samples = torch.randint(0, 4, (3, 2, 5, 5), generator=g) * (torch.rand(3, 2, 5, 5, generator=g) > 0.5)
    ann = torch.randint(0, 4, (2, 4, 5, 5), generator=g) * (torch.rand(2, 4, 5, 5, generator=g) > 0.5)
    for mode in ("foreground", "classes"):
        got = scene_energy_distances(samples, ann, mode=mode, num_classes=4)
        for n in range(2):
            s, y = samples[:, n], ann[n]
            d_sy = iou_distance(s[:, None], y[None], mode, 4).mean()
            d_ss = iou_distance(s[:, None], s[None], mode, 4).mean()
            d_yy = iou_distance(y[:, None], y[None], mode, 4).mean()
            assert float(got[n]) == pytest.approx(float(2 * d_sy - d_ss - d_yy)), (mode, n)


def test_mean_ratio_and_log_ratio_difference_by_hand():
    # scene 0: probe pixels 2, 4 (mean 3), base pixel 1; scene 1: probe 6, base 3, 5 -> pooled probe 12/3 = 4, base 9/3 = 3
    values = torch.tensor([[[2.0, 4.0, 1.0, 0.0]], [[6.0, 3.0, 5.0, 0.0]]])
    probe = torch.tensor([[[True, True, False, False]], [[True, False, False, False]]])
    base = torch.tensor([[[False, False, True, False]], [[False, True, True, False]]])
    ratio, low, high = mean_ratio(values, probe, base, n_boot=200)
    assert ratio == pytest.approx(4 / 3) and low <= ratio <= high
    # a replicate holds scene 0 twice (ratio 3 / 1 = 3), scene 1 twice (6 / 4 = 1.5) or each once (4 / 3)
    assert low >= 4 / 3 - 1e-12 and high <= 3 + 1e-12
    # base_values: the base mean is taken of another map on the base pixels
    assert mean_ratio(values, probe, base, base_values=2 * values, n_boot=10)[0] == pytest.approx(2 / 3)
    # a = 2 * values has the same ratio as values: log difference 0; a = values on probe only doubles ratio_a
    assert log_ratio_difference(2 * values, values, probe, base, n_boot=10)[0] == pytest.approx(0.0, abs=1e-12)
    doubled = torch.where(probe, 2 * values, values)
    assert log_ratio_difference(doubled, values, probe, base, n_boot=10)[0] == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="probe"):
        mean_ratio(values, probe.float(), base)


def test_energy_distance_terms_add_up_and_read_as_distance_and_spreads():
    from utils.annotators import energy_distance_terms, scene_energy_distances

    a = torch.zeros(2, 1, 4, 4, dtype=torch.long)           # two annotators: a 2x2 and a 2x4 digit
    a[0, 0, :2, :2] = 1
    a[1, 0, :2, :] = 1
    same = a[:, 0][:, None]                                  # the annotators' own maps as samples (M=2, N=1)
    speck = torch.zeros(2, 1, 4, 4, dtype=torch.long)       # two disjoint single-pixel "samples"
    speck[0, 0, 3, 0] = 1
    speck[1, 0, 3, 3] = 1
    d_sy, d_ss, d_yy = energy_distance_terms(same, a.transpose(0, 1))
    assert torch.allclose(d_yy, torch.tensor([0.25], dtype=torch.float64))    # IoU 4/8 between the two, twice of four pairs
    assert torch.allclose(d_sy, d_yy) and torch.allclose(d_ss, d_yy)
    assert torch.allclose(scene_energy_distances(same, a.transpose(0, 1)), torch.zeros(1, dtype=torch.float64))
    s_y, s_s, _ = energy_distance_terms(speck, a.transpose(0, 1))
    assert torch.allclose(s_y, torch.ones(1, dtype=torch.float64))            # no overlap with any annotator
    assert torch.allclose(s_s, torch.tensor([0.5], dtype=torch.float64))       # disjoint from each other, not from themselves
    assert torch.allclose(2 * s_y - s_s - d_yy, scene_energy_distances(speck, a.transpose(0, 1)))


def test_glyph_boxes_hold_each_kind_and_exclude_the_others():
    data = AnnotatorScenes("test", 20)
    boxes = {k: data.glyph_boxes(k) for k in KINDS}
    # no pixel is in the boxes of two kinds, and every reference digit pixel of a glyph lies in its own box
    assert not (boxes["agreed"] & boxes["ambiguous"]).any() and not (boxes["agreed"] & boxes["boundary"]).any()
    for n, scene in enumerate(data.glyphs):
        for j, g in enumerate(scene):
            top, left, h, w = g.box
            own = data.instances[n] == j + 1
            box = torch.zeros_like(own)
            box[top:top + h, left:left + w] = True
            assert not (own & ~box).any()
            alone = all(o is g or not _overlap(o.box, g.box) for o in scene if o.kind != g.kind)
            if alone:  # a box that no glyph of another kind overlaps is wholly in its kind's mask
                assert boxes[g.kind][n][box].all()
    # class disagreement lies only in the boxes of ambiguous glyphs, overlaps with other kinds included
    assert not ((data.kind() == 1) & ~_all_boxes(data, "ambiguous")).any()
    with pytest.raises(ValueError, match="kind"):
        data.glyph_boxes("thick")


def _overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _all_boxes(data, kind):
    """Pixels in the box of any glyph of ``kind``, overlaps with other kinds included."""
    s = data.config.size
    m = torch.zeros(len(data.glyphs), s, s, dtype=torch.bool)
    for n, scene in enumerate(data.glyphs):
        for g in scene:
            if g.kind == kind:
                top, left, h, w = g.box
                m[n, top:top + h, left:left + w] = True
    return m


def test_energy_distance_terms_refuse_mismatched_label_maps():
    from utils.annotators import energy_distance_terms
    samples, annotations = torch.zeros(2, 3, 8, 8, dtype=torch.long), torch.zeros(3, 4, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="H, W"):
        energy_distance_terms(samples, annotations[..., :6])
    with pytest.raises(ValueError, match="same N"):
        energy_distance_terms(samples, annotations[:2])
    with pytest.raises(ValueError, match="integer tensor"):
        energy_distance_terms(samples.float(), annotations)
