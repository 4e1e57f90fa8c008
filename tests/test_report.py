"""utils.report: the one-call diagnosis reproduces the answer chapter, streams, and refuses bad input clearly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from utils import calibration, conformal, data, models, ood, report, segments, shift, spread, uncertainty, weights


class TinyNet(nn.Module):
    """A small fully convolutional net with dropout: any channel count, any K."""

    def __init__(self, c: int = 3, k: int = 3, dict_out: bool = False, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.2), nn.Conv2d(8, k, 3, padding=1))
        self.dict_out = dict_out

    def forward(self, x: torch.Tensor):
        z = self.body(x) * 3
        return {"out": z} if self.dict_out else z


class Softmaxed(TinyNet):
    def forward(self, x: torch.Tensor):
        return super().forward(x).softmax(1)


def _toy(n: int = 10, c: int = 3, k: int = 3, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, size, size, generator=g)
    y = torch.randint(0, k, (n, size, size), generator=g)
    y[:, :4] = 0  # some background
    return x, y


# --- the answer chapter, exactly ------------------------------------------------------------------


@pytest.fixture(scope="module")
def chapter():
    """The answer chapter's scenes and its own computation (book/11_the_answer.ipynb) for the shipped model."""
    torch.manual_seed(0)
    model = weights.load("unet_seed0")
    val = data.DigitScenes("val")
    val_logits = models.predict_logits(model, val.images)
    T = calibration.fit_temperature(val_logits, val.labels)
    test = data.DigitScenes("test", 260)

    def corrupted(severity):
        parts = [shift.shifted(test.images[100 + 40 * j:140 + 40 * j], test.labels[100 + 40 * j:140 + 40 * j], kind, severity)
                 for j, kind in enumerate(shift.CORRUPTIONS)]  # fmt: skip
        return torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])

    letters = ood.LetterScenes(200)
    sets = {"clean": (test.images[:100], test.labels[:100]), "severity 3": corrupted(3), "severity 5": corrupted(5),
            "letters": (letters.images, letters.labels)}  # fmt: skip
    scaled = calibration.TemperatureScaled(model, T)
    P = {s: {"max-softmax": uncertainty.single(model, x), "temperature-scaled": uncertainty.single(scaled, x)}
         for s, (x, _) in sets.items()}  # fmt: skip

    def measures(p, situation):  # the chapter's cell, for one-pass methods
        x, y = sets[situation]
        digit = y > 0
        cal = lambda mask=None: spread.calibration_sums(p.probs, y, mask=mask)  # noqa: E731
        score = 1 - p.max_softmax
        if situation == "clean":
            wrong = p.prediction != y
            region = digit | (p.prediction > 0)
            return {"ECE": cal(), "ECE, digit pixels": cal(digit), "NLL": cal(), "NLL, digit pixels": cal(digit),
                    "accuracy, digit pixels": cal(digit), "confidence, digit pixels": cal(digit),
                    "error AUROC": spread.detection_sums(score, wrong),
                    "error AUROC, digit pixels": spread.detection_sums(score, wrong, mask=region)}  # fmt: skip
        if situation.startswith("severity"):
            s = situation.split()[1]
            out = {f"ECE, severity {s}": cal(), f"ECE, digit pixels, severity {s}": cal(digit)}
            if s == "5":
                out |= {"accuracy, digit pixels, severity 5": cal(digit), "confidence, digit pixels, severity 5": cal(digit)}
            return out
        inlier = digit & ~letters.ood
        return {"letter AUROC": spread.detection_sums(score, letters.ood, mask=letters.ood | inlier)}

    table = {}
    for m in ("max-softmax", "temperature-scaled"):
        sums = {}
        for situation in sets:
            sums |= measures(P[situation][m], situation)
        table[m] = {r: spread.bootstrap(v, report.metric_of(r)) for r, v in sums.items()}
    # the guarantees section: thresholds from validation scenes 0-499
    grid = conformal.lambda_grid()
    cal_p = val_logits[:500].softmax(1)
    lam = {loss: conformal.crc_lambda(conformal.scene_losses(cal_p, val.labels[:500], grid, loss=loss), grid, 0.1)
           for loss in ("miscoverage", "fnr")}  # fmt: skip
    at = {k: torch.tensor([v], dtype=torch.float64) for k, v in lam.items()}
    guarantee = {}
    for s in ("clean", "severity 3", "severity 5"):
        p, ys = P[s]["max-softmax"].probs, sets[s][1]
        suffix = "" if s == "clean" else f", {s}"
        guarantee[f"mask FNR (α = 0.1){suffix}"] = conformal.scene_losses(p, ys, at["fnr"], loss="fnr")[:, 0].mean().item()
        guarantee[f"sets: pixels left out{suffix}"] = conformal.scene_losses(p, ys, at["miscoverage"]).mean().item()
        guarantee[f"sets: digit pixels left out{suffix}"] = conformal.scene_losses(
            p, ys, at["miscoverage"], pixels="digits").mean().item()
    # the segments section, clean scenes
    t = segments.segment_table(P["clean"]["max-softmax"].probs, sets["clean"][1])
    pos = t["false_positive"].to_numpy()
    boot = segments.bootstrap_auroc(t["scene"], pos, {"m": 1 - t["max_softmax_mean"]})["m"]
    seg = (roc_auc_score(pos, 1 - t["max_softmax_mean"]), *np.percentile(boot, [2.5, 97.5]))
    return {"model": model, "val": val, "T": T, "sets": sets, "table": table, "lam": lam, "guarantee": guarantee, "seg": seg}


@pytest.fixture(scope="module")
def diagnosis(chapter):
    sets = chapter["sets"]
    val = chapter["val"]
    return report.diagnose(chapter["model"], sets["clean"], val=(val.images[:500], val.labels[:500]), batch_size=16,
                           temperature=chapter["T"],
                           shifted={"severity 3": sets["severity 3"], "severity 5": sets["severity 5"]},
                           ood={"letter": sets["letters"]}, foreground="digit", figures=False, progress=False)  # fmt: skip


def test_report_reproduces_the_answer_chapter_table(chapter, diagnosis):
    got = diagnosis.table.set_index(["measure", "method"])
    checked = 0
    for method, rows in chapter["table"].items():
        for measure, expected in rows.items():
            row = got.loc[(measure, method)]
            assert (row["value"], row["low"], row["high"]) == pytest.approx(expected, abs=1e-12, rel=1e-12), (measure, method)
            checked += 1
    assert checked == 2 * 15


def test_report_reproduces_the_answer_chapter_guarantees_and_segments(chapter, diagnosis):
    got = diagnosis.table.set_index(["measure", "method"])
    assert diagnosis.thresholds == pytest.approx(chapter["lam"], abs=0)
    for measure, expected in chapter["guarantee"].items():
        assert got.loc[(measure, "max-softmax"), "value"] == pytest.approx(expected, abs=1e-12), measure
    row = got.loc[("false-positive segment AUROC", "max-softmax")]
    assert (row["value"], row["low"], row["high"]) == pytest.approx(chapter["seg"], abs=1e-12)


def test_report_fits_the_same_temperature_as_the_chapter(chapter):
    val = chapter["val"]
    fitted = report.diagnose(chapter["model"], (val.images[:8], val.labels[:8]), val=val, figures=False, progress=False, batch_size=16,
                             n_boot=10, segments_for=())  # fmt: skip
    # streamed Newton steps on sums over batches (batches of 16, as the chapter's predict_logits): measured bitwise equal;
    # asserted to float64 rounding
    assert fitted.temperature == pytest.approx(chapter["T"], rel=1e-12)


# --- streaming, any model, any data ---------------------------------------------------------------


def _frame(d: report.Diagnosis) -> pd.DataFrame:
    return d.table.set_index(["measure", "method"]).sort_index()


# random toy labels push the fitted temperature to its bound; fit_temperature rightly warns about that
TOY_T = pytest.mark.filterwarnings("ignore:fit_temperature:UserWarning")


@TOY_T
def test_a_dataloader_in_small_batches_gives_the_table_of_one_batch():
    x, y = _toy(12)
    model = TinyNet().eval()
    kw = dict(val=_toy(10, seed=1), ood={"noise": torch.rand(5, 3, 16, 16)}, mc_dropout=3, figures=False,
              progress=False, n_boot=50)  # fmt: skip
    one = report.diagnose(model, (x, y), batch_size=64, **kw)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=5)
    streamed = report.diagnose(model, loader, batch_size=5, **kw)
    a, b = _frame(one), _frame(streamed)
    assert list(a.index) == list(b.index)
    one_pass = [i for i in a.index if i[1] != "MC dropout"]  # MC dropout draws its masks batch by batch
    pd.testing.assert_frame_equal(a.loc[one_pass], b.loc[one_pass], rtol=1e-9, atol=1e-12)


def test_memory_is_bounded_by_max_units_and_point_values_do_not_depend_on_it():
    x, y = _toy(20)
    model = TinyNet().eval()
    full = report.diagnose(model, (x, y), figures=False, progress=False, n_boot=50, segments_for=())
    capped = report.diagnose(model, (x, y), figures=False, progress=False, n_boot=50, max_units=4, segments_for=())
    a, b = _frame(full), _frame(capped)
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-9, atol=1e-12)
    assert (b["images"] == 20).all()
    units = report._Units(4)
    for start in range(0, 20, 3):
        units.add({"s": torch.ones(min(3, 20 - start), 7)}, start)
    assert units.result()["s"].shape == (4, 7) and units.result()["s"].sum() == 20 * 7


@TOY_T
@pytest.mark.parametrize("c,k", [(1, 2), (3, 5), (4, 3)])
def test_any_channel_count_and_number_of_classes(c, k):
    x, y = _toy(6, c=c, k=k)
    d = report.diagnose(TinyNet(c, k).eval(), (x, y), val=_toy(10, c=c, k=k, seed=2), shift_kind=lambda im, s: (im * 0.5),
                        severities=(1,), figures=True, progress=False, n_boot=20)  # fmt: skip
    measures = set(d.table["measure"])
    assert {"ECE", "error AUROC", "ECE, foreground pixels", "ECE, <lambda> 1", "mask FNR (α = 0.1)"} <= measures
    assert d.table[["value"]].notna().all().all() or d.table["measure"].str.contains("segment").any()
    assert {"reliability", "reliability, foreground pixels", "risk-coverage", "heat maps"} == set(d.figures)
    for fig in d.figures.values():
        fig.clf()


def test_dict_outputs_and_ensembles():
    x, y = _toy(6)
    members = [TinyNet(dict_out=True, seed=s).eval() for s in range(3)]
    d = report.diagnose(members, (x, y), figures=False, progress=False, n_boot=20)
    assert {"max-softmax", "ensemble", "member 0", "member 1", "member 2"} == set(d.table["method"])
    got = _frame(d)
    # member 0 is the max-softmax model itself
    np.testing.assert_allclose(got.xs("member 0", level="method")["value"],
                               got.xs("max-softmax", level="method")["value"].loc[got.xs("member 0", level="method").index])


def test_image_level_ood_auroc_is_the_auroc_of_mean_scores():
    x, y = _toy(8)
    noise = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    model = TinyNet().eval()
    d = report.diagnose(model, (x, y), ood={"noise": noise}, figures=False, progress=False, n_boot=20, segments_for=())
    value = _frame(d).loc[("noise AUROC, images", "max-softmax"), "value"]
    s = lambda im: 1 - uncertainty.single(model, im).max_softmax.flatten(1).mean(1)  # noqa: E731
    expected = roc_auc_score(np.r_[np.zeros(8), np.ones(6)], torch.cat([s(x), s(noise)]).numpy())
    assert value == pytest.approx(expected, abs=1e-9)


def test_boundary_pixels():
    y = torch.zeros(1, 5, 5, dtype=torch.long)
    y[0, 1:4, 1:4] = 2
    edge = report.boundary_pixels(y)
    inner = torch.zeros(5, 5, dtype=torch.bool)
    inner[2, 2] = True
    assert edge[0, 2, 2].item() is False and edge[0, 0, 0].item() is True
    assert int(edge.sum()) == 25 - 1  # every pixel but the centre touches the other label


def test_risk_coverage_from_counts():
    cov, risk = report.risk_coverage_from_counts(np.array([0, 1, 0, 2]), np.array([3, 1, 0, 0]))
    np.testing.assert_allclose(cov, [3 / 7, 5 / 7, 1])
    np.testing.assert_allclose(risk, [0, 1 / 5, 3 / 7])


# --- clear errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"labels_offset": 3}, ValueError, r"labels must lie in \[0, 3\)"),
        ({"model": "train"}, ValueError, "train mode"),
        ({"model": "softmax"}, ValueError, "probabilities"),
        ({"shift_kind": "blur"}, ValueError, "shift_kind must be one of"),
        ({"mc_dropout": 0}, ValueError, "mc_dropout must be an int >= 1"),
        ({"segments_for": ("nothing",)}, ValueError, "segments_for"),
        ({"float_labels": True}, TypeError, "labels must be an integer tensor"),
        ({"bad_shape": True}, ValueError, r"labels must have shape"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"model": "not a model"}, TypeError, "model must be a torch.nn.Module"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(kwargs, error, match):
    x, y = _toy(4)
    model = TinyNet().eval()
    kw = dict(figures=False, progress=False, n_boot=5)
    if kwargs.pop("labels_offset", 0):
        y = y + 3
    if kwargs.pop("float_labels", False):
        y = y.float()
    if kwargs.pop("bad_shape", False):
        y = y[:, :8]
    which = kwargs.pop("model", None)
    if which == "train":
        model.train()
    elif which == "softmax":
        model = Softmaxed().eval()
    elif which is not None:
        model = which
    with pytest.raises(error, match=match):
        report.diagnose(model, (x, y), **(kw | kwargs))


@TOY_T
def test_a_validation_set_too_small_for_the_guarantee_is_said_and_skipped():
    x, y = _toy(4)
    with pytest.warns(UserWarning, match="needs at least 9"):
        d = report.diagnose(TinyNet().eval(), (x, y), val=_toy(5, seed=1), progress=False, figures=False, n_boot=5)
    assert not d.table["measure"].str.startswith("mask FNR").any() and d.temperature is not None


def test_mc_dropout_needs_dropout_layers():
    x, y = _toy(4)
    plain = nn.Conv2d(3, 3, 1).eval()
    with pytest.raises(ValueError, match="dropout layers"):
        report.diagnose(plain, (x, y), mc_dropout=4, progress=False, figures=False)


# --- issue 19: zero segments, the background class, empty data, flat memory, assumptions ----------


def _blank_model(k: int = 3, background: int = 0) -> nn.Module:
    """An untrained net that paints every pixel as background (as on blank images): no foreground segment."""
    net = TinyNet(k=k).eval()
    with torch.no_grad():
        net.body[-1].bias[background] += 30.0
    return net


class Oracle(nn.Module):
    """Logits 5 * images: with one-hot images of the labels, every pixel and every segment is right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 5 * x


class Relabelled(nn.Module):
    """``model`` with its classes renamed: class ``c`` becomes ``perm[c]``."""

    def __init__(self, model: nn.Module, perm: torch.Tensor) -> None:
        super().__init__()
        self.model, self.perm = model, perm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        out = torch.empty_like(z)
        out[:, self.perm] = z
        return out


def _relabel(y: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    ignored = y == 255
    return torch.where(ignored, y, perm[torch.where(ignored, 0, y)])


def _calibrated_toy(model: nn.Module, n: int, temperature: float = 1.5, size: int = 16, seed: int = 0):
    """Images and labels drawn from ``softmax(model(x) / temperature)``: the fitted T lies near ``temperature``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    with torch.no_grad():
        p = (model(x) / temperature).softmax(1)
    y = torch.multinomial(p.movedim(1, -1).reshape(-1, p.shape[1]), 1, generator=g).reshape(n, size, size)
    return x, y


def test_a_batch_without_predicted_foreground_segments_is_said_not_a_crash():
    x, y = _toy(6)
    d = report.diagnose(_blank_model(), (x, y), figures=False, progress=False, n_boot=10)
    assert "false-positive segment AUROC" not in set(d.table["measure"])
    skipped = d.skipped.set_index(["measure", "method"])
    assert "no predicted foreground segment" in skipped.loc[("false-positive segment AUROC", "max-softmax"), "reason"]
    assert d.table["value"].notna().any() and list(d.skipped.columns) == ["measure", "method", "reason"]
    # segments that all touch a true segment: no false positive to rank, said too
    onehot = nn.functional.one_hot(y, 3).movedim(-1, 1).float()
    right = report.diagnose(Oracle().eval(), (onehot, y), figures=False, progress=False, n_boot=10)
    reason = right.skipped.set_index(["measure", "method"]).loc[("false-positive segment AUROC", "max-softmax"), "reason"]
    assert "no false-positive segment" in reason


@TOY_T
def test_the_background_class_is_taken_from_the_argument():
    x, y = _toy(12)
    val = _toy(20, seed=1)
    yo = y.clone()
    yo[:, 12:] = 255  # OOD pixels
    model = TinyNet().eval()
    perm = torch.tensor([2, 0, 1])  # background 0 becomes class 2
    kw = dict(shift_kind="contrast", severities=(2,), mc_dropout=2, figures=False, progress=False, n_boot=50)
    want = report.diagnose(model, (x, y), val=val, ood={"px": (x, yo)}, **kw)
    moved = Relabelled(model, perm).eval()
    val2 = (val[0], _relabel(val[1], perm))
    got = report.diagnose(moved, (x, _relabel(y, perm)), val=val2, ood={"px": (x, _relabel(yo, perm))}, background=2, **kw)
    # equal up to float32 rounding (softmax sums over the classes in another order), which may move a pixel across
    # a histogram bin of the binned AUROCs; an interval's end is one bootstrap replicate, and a near-tie between two
    # segments' scores that the rounding flips moves it by about one segment's weight (3e-4 measured under
    # ONEDNN_MAX_CPU_ISA=AVX ATEN_CPU_CAPABILITY=default, 0 natively), so the ends get a looser tolerance
    g, w, ends = _frame(got), _frame(want), ["low", "high"]
    pd.testing.assert_frame_equal(g.drop(columns=ends), w.drop(columns=ends), rtol=1e-5, atol=1e-5)
    pd.testing.assert_frame_equal(g[ends], w[ends], rtol=0, atol=2e-3)
    assert got.thresholds == want.thresholds and got.temperature == pytest.approx(want.temperature, rel=1e-12)
    assert {"mask FNR (α = 0.1)", "false-positive segment AUROC", "ECE, boundary pixels"} <= set(got.table["measure"])
    # the old rule, class 0 as the background, gives another threshold and another miss rate
    with torch.no_grad():
        pv, p = moved(val2[0]).softmax(1), moved(x).softmax(1)
    grid = conformal.lambda_grid()
    old = conformal.crc_lambda(conformal.scene_losses(pv, val2[1], grid, loss="fnr"), grid, 0.1)
    assert old != got.thresholds["fnr"]
    at = torch.tensor([got.thresholds["fnr"]], dtype=torch.float64)
    old_fnr = conformal.scene_losses(p, _relabel(y, perm), at, loss="fnr")[:, 0].mean().item()
    assert old_fnr != pytest.approx(_frame(got).loc[("mask FNR (α = 0.1)", "max-softmax"), "value"], abs=1e-3)


@TOY_T
def test_without_a_background_class_the_rows_that_need_one_are_left_out_with_the_reason():
    x, y = _toy(8)
    yo = y.clone()
    yo[:, 12:] = 255
    model = TinyNet().eval()
    d = report.diagnose(model, (x, y), val=_toy(20, seed=1), ood={"px": (x, yo)}, background=None,
                        figures=True, progress=False, n_boot=20)  # fmt: skip
    measures = set(d.table["measure"])
    assert {"ECE", "NLL", "accuracy", "error AUROC", "sets: pixels left out", "px AUROC"} <= measures
    assert not any(w in m for m in measures for w in ("foreground", "boundary", "mask FNR", "segment"))
    skipped = d.skipped.set_index(["measure", "method"])
    for measure in ("ECE, foreground pixels", "error AUROC, boundary pixels", "mask FNR (α = 0.1)",
                    "sets: foreground pixels left out", "false-positive segment AUROC"):  # fmt: skip
        assert "background=None" in skipped.loc[(measure, "max-softmax"), "reason"], measure
    assert "fnr" not in d.thresholds and "miscoverage" in d.thresholds
    assert "reliability, foreground pixels" not in d.figures and "reliability" in d.figures
    # OOD pixels are ranked against every labelled in-distribution pixel
    s = 1 - uncertainty.single(model, x).max_softmax
    ood_px = yo == 255
    total = {k: v.sum(0) for k, v in spread.detection_sums(s, ood_px).items()}
    assert _frame(d).loc[("px AUROC", "max-softmax"), "value"] == pytest.approx(float(spread.auroc(total)), abs=1e-12)


@pytest.mark.parametrize("where,match", [("data", r"data holds no images"), ("val", r"val holds no images"),
                                         ("shifted", r"shifted\['blank'\] holds no images"),
                                         ("ood", r"ood\['blank'\] holds no images"),
                                         ("stream", r"data holds no images")])  # fmt: skip
def test_an_empty_dataloader_is_refused_naming_the_argument(where, match):
    x, y = _toy(4)
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:0], y[:0]), batch_size=2)

    class Nothing(torch.utils.data.IterableDataset):  # no length to ask
        def __iter__(self):
            return iter(())

    kw = dict(figures=False, progress=False, n_boot=5)
    data = (x, y)
    if where == "data":
        data = empty
    elif where == "stream":
        data = torch.utils.data.DataLoader(Nothing(), batch_size=None)
    elif where == "val":
        kw["val"] = empty
    else:
        kw[where] = {"blank": empty}
    with pytest.raises(ValueError, match=match):
        report.diagnose(TinyNet().eval(), data, **kw)


class _LargestTensor(torch.utils._python_dispatch.TorchDispatchMode):
    """Record the largest tensor any torch operation returns (bytes; a view counts its own elements)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def test_memory_does_not_grow_with_the_validation_images_and_the_streamed_temperature_is_exact():
    model = TinyNet().eval()
    data = _calibrated_toy(model, 8, size=32, seed=0)
    largest, fitted = {}, {}
    for n in (16, 128):
        val = _calibrated_toy(model, n, size=32, seed=1)
        kw = dict(val=val, batch_size=8, figures=False, progress=False, n_boot=10, segments_for=())
        with _LargestTensor() as probe:
            streamed = report.diagnose(model, data, val_cache_mb=0, **kw)
        largest[n] = probe.largest
        cached = report.diagnose(model, data, **kw)
        with torch.no_grad():
            exact = calibration.fit_temperature(model(val[0]), val[1])
        fitted[n] = (streamed.temperature, cached.temperature, exact)
        assert 1.2 < exact < 1.8
        # the same Newton steps on sums added batch by batch: equal up to float64 rounding
        assert streamed.temperature == pytest.approx(exact, rel=1e-12) and cached.temperature == pytest.approx(exact, rel=1e-12)
        pd.testing.assert_frame_equal(_frame(streamed), _frame(cached), rtol=1e-12, atol=1e-12)
    assert largest[128] == largest[16], largest


def test_the_corruptions_need_images_in_0_1_and_the_error_says_how_to_normalise_in_the_model():
    x, y = _toy(4)
    kw = dict(figures=False, progress=False, n_boot=5, segments_for=(), severities=(1,))
    calls = []
    model = TinyNet().eval()
    model.register_forward_hook(lambda *_: calls.append(1))
    with pytest.raises(ValueError, match=r"data images must lie in \[0, 1\].*found \[-1, 1\].*nn\.Sequential\(.*Normalize"):
        report.diagnose(model, (2 * x - 1, y), shift_kind="gaussian_noise", **kw)
    assert not calls  # refused before any pass over the data
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(2 * x - 1, y), batch_size=2)
    with pytest.raises(ValueError, match=r"data images.*nn\.Sequential\("):
        report.diagnose(TinyNet().eval(), loader, shift_kind="contrast", **kw)
    # a corruption of your own is yours to define on your images' range
    d = report.diagnose(TinyNet().eval(), (2 * x - 1, y), shift_kind=lambda im, s: im * 0.5, **kw)
    assert "ECE, <lambda> 1" in set(d.table["measure"])
    assert "nn.Sequential(" in report.diagnose.__doc__ and "[0, 1]" in report.diagnose.__doc__


def test_thickness_is_offered_for_digitscenes_only():
    kw = dict(figures=False, progress=False, n_boot=5, segments_for=(), shift_kind="thickness", severities=(1,))
    x, y = _toy(4, c=1)
    with pytest.raises(ValueError, match=r"thickness.*DigitScenes"):
        report.diagnose(TinyNet(c=1).eval(), (x, y), **kw)
    scenes = data.DigitScenes("test", 4)
    d = report.diagnose(TinyNet(c=1, k=11).eval(), scenes, **kw)
    assert "ECE, thickness 1" in set(d.table["measure"])
    loader = torch.utils.data.DataLoader(scenes, batch_size=2)
    assert "ECE, thickness 1" in set(report.diagnose(TinyNet(c=1, k=11).eval(), loader, **kw).table["measure"])
    with pytest.raises(ValueError, match=r"thickness.*background"):
        report.diagnose(TinyNet(c=1, k=11).eval(), scenes, background=3, **kw)


# --- paired comparisons ---------------------------------------------------------------------------


@TOY_T
def test_compare_gives_paired_bootstrap_differences_on_the_same_images():
    x, y = _toy(12)
    noise = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    a_model, b_model = TinyNet(seed=0).eval(), TinyNet(seed=1).eval()
    kw = dict(val=_toy(20, seed=1), shift_kind="contrast", severities=(2,), ood={"noise": noise},
              figures=False, progress=False, n_boot=200)  # fmt: skip
    a, b = report.diagnose(a_model, (x, y), **kw), report.diagnose(b_model, (x, y), **kw)
    diff = a.compare(b)
    assert list(diff.columns) == ["measure", "method", "difference", "low", "high", "separated"]
    both = _frame(a).index.intersection(_frame(b).index)
    assert set(zip(diff["measure"], diff["method"])) == set(both)
    got = diff.set_index(["measure", "method"])
    np.testing.assert_allclose(got.loc[both, "difference"], _frame(a).loc[both, "value"] - _frame(b).loc[both, "value"],
                               atol=1e-12)  # fmt: skip
    assert (got["separated"] == ((got["low"] > 0) | (got["high"] < 0))).all()
    assert (got["low"] <= got["difference"] + 1e-12).all() and (got["difference"] <= got["high"] + 1e-12).all()
    # by hand: utils.spread's paired bootstrap of the digit-pixel ECE over the same images
    pa, pb = uncertainty.single(a_model, x), uncertainty.single(b_model, x)
    fg = y != 0
    sums = [spread.calibration_sums(p.probs, y, mask=fg) for p in (pa, pb)]
    want = spread.bootstrap(sums, lambda s, t: spread.ece(s) - spread.ece(t), n_boot=200)
    row = got.loc[("ECE, foreground pixels", "max-softmax")]
    assert (row["difference"], row["low"], row["high"]) == pytest.approx(want, abs=1e-12)
    assert {"false-positive segment AUROC", "noise AUROC, images", "mask FNR (α = 0.1), contrast 2"} <= set(diff["measure"])
    # a result compared with itself: every difference is 0, and nothing is separated
    same = a.compare(a)
    assert (same[["difference", "low", "high"]].abs().to_numpy() < 1e-12).all() and not same["separated"].any()


def test_compare_methods_is_the_paired_bootstrap_of_two_methods_on_the_same_images():
    x, y = _toy(12)
    noise = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    model = TinyNet().eval()
    kw = dict(ood={"noise": noise}, figures=False, progress=False, n_boot=200)
    d = report.diagnose(model, (x, y), temperature=1.7, mc_dropout=3, **kw)
    diff = d.compare_methods("temperature-scaled", "max-softmax")
    assert list(diff.columns) == ["measure", "difference", "low", "high", "separated"]
    t = _frame(d)
    both = [m for m in dict.fromkeys(d.table["measure"]) if (m, "temperature-scaled") in t.index and (m, "max-softmax") in t.index]
    assert list(diff["measure"]) == both and {"ECE, foreground pixels", "noise AUROC, images", "false-positive segment AUROC"} <= set(both)
    got = diff.set_index("measure")
    np.testing.assert_allclose(got.loc[both, "difference"],
                               t.xs("temperature-scaled", level="method").loc[both, "value"]
                               - t.xs("max-softmax", level="method").loc[both, "value"], atol=1e-12)  # fmt: skip
    assert (got["separated"] == ((got["low"] > 0) | (got["high"] < 0))).all()
    # by hand: utils.spread's paired bootstrap of the foreground ECE over the same images
    scaled = calibration.TemperatureScaled(model, 1.7).eval()
    fg = y != 0
    sums = [spread.calibration_sums(uncertainty.single(m, x).probs, y, mask=fg) for m in (scaled, model)]
    want = spread.bootstrap(sums, lambda s, u: spread.ece(s) - spread.ece(u), n_boot=200)
    row = got.loc["ECE, foreground pixels"]
    assert (row["difference"], row["low"], row["high"]) == pytest.approx(want, abs=1e-12)
    # the same numbers as comparing two results: the temperature-scaled model's report against the plain one's
    two = report.diagnose(scaled, (x, y), **kw).compare(report.diagnose(model, (x, y), **kw))
    two = two[two["method"] == "max-softmax"].set_index("measure")
    np.testing.assert_allclose(got.loc[two.index, ["difference", "low", "high"]], two[["difference", "low", "high"]], atol=1e-12)
    # MC dropout against the plain softmax, and a method against itself (all zero, nothing separated)
    assert "noise AUROC, images" in set(d.compare_methods("MC dropout", "max-softmax")["measure"])
    same = d.compare_methods("max-softmax", "max-softmax")
    assert (same[["difference", "low", "high"]].abs().to_numpy() < 1e-12).all() and not same["separated"].any()
    # measures= computes only the rows asked for, with the same numbers
    some = d.compare_methods("temperature-scaled", "max-softmax", measures=["noise AUROC, images", "ECE"])
    assert list(some["measure"]) == ["ECE", "noise AUROC, images"]
    pd.testing.assert_frame_equal(some.set_index("measure"), got.loc[["ECE", "noise AUROC, images"]])
    picked = report.diagnose(scaled, (x, y), **kw).compare(report.diagnose(model, (x, y), **kw), measures=["ECE"])
    assert list(picked["measure"]) == ["ECE"] and picked["difference"].iloc[0] == pytest.approx(got.loc["ECE", "difference"], abs=1e-12)
    with pytest.raises(ValueError, match="measures names rows"):
        d.compare_methods("temperature-scaled", "max-softmax", measures=["ECE, nowhere"])
    with pytest.raises(TypeError, match="measures must be a list"):
        d.compare(d, measures="ECE")
    with pytest.raises(ValueError, match="a must be one of this result's methods"):
        d.compare_methods("ensemble", "max-softmax")
    with pytest.raises(ValueError, match="b must be one of"):
        d.compare_methods("max-softmax", 3)


def test_the_reliability_bins_are_those_of_the_figures_and_of_the_ece_rows():
    x, y = _toy(8)
    d = report.diagnose(TinyNet().eval(), (x, y), temperature=1.5, progress=False, n_boot=10, segments_for=())
    assert set(d.reliability) == {"reliability", "reliability, foreground pixels"} == set(d.figures) & set(d.reliability)
    t = _frame(d)
    for which, measure, mask in [("reliability", "ECE", y >= 0), ("reliability, foreground pixels", "ECE, foreground pixels", y != 0)]:
        assert set(d.reliability[which]) == {"max-softmax", "temperature-scaled"}
        for method, bins in d.reliability[which].items():
            assert bins.count.sum() == int(mask.sum())
            filled = bins.count > 0
            ece = float((bins.count[filled] * np.abs(bins.gap[filled])).sum() / bins.count.sum())
            assert ece == pytest.approx(t.loc[(measure, method), "value"], abs=1e-9)
    for fig in d.figures.values():
        fig.clf()
    assert report.diagnose(TinyNet().eval(), (x, y), progress=False, n_boot=10, segments_for=(), figures=False).reliability == {}


def test_compare_refuses_results_on_other_images():
    x, y = _toy(12)
    kw = dict(figures=False, progress=False, n_boot=20, segments_for=())
    a = report.diagnose(TinyNet().eval(), (x, y), **kw)
    with pytest.raises(ValueError, match="data.*12 images.*10"):
        a.compare(report.diagnose(TinyNet(seed=1).eval(), (x[:10], y[:10]), **kw))
    other = x.clone()
    other[3] = other[3].flip(-1)
    with pytest.raises(ValueError, match="data.*not the same images"):
        a.compare(report.diagnose(TinyNet(seed=1).eval(), (other, y), **kw))
    with pytest.raises(TypeError, match="other must be a Diagnosis"):
        a.compare(a.table)


# --- the measures, one by one ---------------------------------------------------------------------


def test_a_measure_streams_on_its_own():
    x, y = _toy(6)
    p = uncertainty.single(TinyNet().eval(), x)
    settings = report.Settings(background=0, foreground="foreground", n_boot=20)
    measure = report.CalibrationMeasure(settings)
    for start in range(0, 6, 4):  # two batches
        part = uncertainty.Predictive(p.probs[start:start + 4], p.expected_entropy[start:start + 4], 1)
        measure.update(report.Batch("data", "data", "max-softmax", part, y[start:start + 4], start))
    rows = {r["measure"]: r for r in measure.rows()}
    want = spread.bootstrap(spread.calibration_sums(p.probs, y, mask=y != 0), spread.ece, n_boot=20)
    assert (rows["ECE, foreground pixels"]["value"], rows["ECE, foreground pixels"]["low"],
            rows["ECE, foreground pixels"]["high"]) == pytest.approx(want, abs=1e-12)  # fmt: skip
    assert rows["ECE"]["images"] == 6


# --- command line ---------------------------------------------------------------------------------


def test_command_line_writes_the_table_and_figures(tmp_path, capsys):
    x, y = _toy(6, c=1, k=11, size=32)
    torch.save({"images": x, "labels": y}, tmp_path / "mine.pt")
    out = tmp_path / "out"
    code = report.main(["--weights", "unet_seed0", "--data", str(tmp_path / "mine.pt"), "--val", "digitscenes:val:10",
                        "--ood", "letter=letters:4", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    table = pd.read_csv(out / "report.csv")
    assert {"measure", "method", "value", "low", "high", "images"} == set(table.columns)
    assert (out / "heat_maps.png").is_file() and (out / "risk-coverage.png").is_file()
    assert "wrote" in capsys.readouterr().out
    assert report.main(["--weights", "no_such_weights", "--data", "digitscenes:test:4", "--out", str(out)]) == 2
    with pytest.raises(SystemExit, match="--data must be"):
        report.main(["--weights", "unet_seed0", "--data", "missing.pt", "--out", str(out)])
