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
    return report.diagnose(chapter["model"], sets["clean"], val=(val.images[:500], val.labels[:500]),
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
    fitted = report.diagnose(chapter["model"], (val.images[:8], val.labels[:8]), val=val, figures=False, progress=False,
                             n_boot=10, segments_for=())  # fmt: skip
    assert fitted.temperature == pytest.approx(chapter["T"], rel=1e-6)


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
