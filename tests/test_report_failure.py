"""utils.report's image-level failure-detection rows equal utils.failure's numbers on small hand-made cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils import failure, report, uncertainty
from utils.config import IGNORE_INDEX


class TinyNet(nn.Module):
    """A small fully convolutional net with dropout, three classes."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.2), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * 3


def _toy(n: int = 12, size: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    y = torch.randint(0, 3, (n, size, size), generator=g)
    y[:, :5] = 0
    return x, y


def _row(d: report.Diagnosis, measure: str, method: str = "max-softmax") -> object:
    return d.table.set_index(["measure", "method"]).loc[(measure, method)]


def test_rows_equal_utils_failure_for_one_network_and_an_ensemble():
    x, y = _toy()
    nets = [TinyNet(s).eval() for s in range(3)]
    d = report.diagnose(nets, (x, y), batch_size=5, figures=False, progress=False, segments_for=(), n_boot=200)
    with torch.no_grad():
        single = uncertainty.single(nets[0], x)
        ens = uncertainty.ensemble(nets, x, keep_members=True)
    risk = failure.image_risk(single.prediction, y)
    for how in failure.AGGREGATORS:
        score = failure.aggregate(1 - single.max_softmax, how, pred=single.prediction)
        row = _row(d, f"image failure AUGRC, {how}")
        assert row["value"] == pytest.approx(failure.augrc(score, risk), abs=1e-6)
        assert _row(d, f"image failure AURC, {how}")["value"] == pytest.approx(failure.aurc(score, risk), abs=1e-6)
        assert row["low"] <= row["value"] <= row["high"] and row["images"] == len(x)
    # the interval is that of utils.failure's bootstrap with the diagnosis's seed and draws
    score = failure.aggregate(1 - single.max_softmax, "mean")
    draws = failure.bootstrap_selective({"s": score}, risk, n_boot=200, seed=0)["s"]["augrc"]
    low, high = torch.quantile(draws, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    row = _row(d, "image failure AUGRC, mean")
    assert (row["low"], row["high"]) == pytest.approx((low, high), abs=1e-6)
    # the ensemble: its own label map's risk, its total entropy, and the members' pairwise Dice
    members = [ens.members[i].argmax(1) for i in range(3)]
    ens_risk = failure.image_risk(ens.prediction, y)
    dice = failure.pairwise_dice(members)
    assert _row(d, "image failure AUGRC, pairwise Dice", "ensemble")["value"] == pytest.approx(failure.augrc(dice, ens_risk), abs=1e-6)
    fg = failure.mean_foreground(ens.total_entropy, ens.prediction)
    assert _row(d, "image failure AURC, foreground mean", "ensemble")["value"] == pytest.approx(failure.aurc(fg, ens_risk), abs=1e-5)
    # the members get no image-level rows
    rows = d.table[d.table["measure"].str.startswith("image failure")]
    assert not rows["method"].str.startswith("member").any()


def test_ood_sets_count_ignored_pixels_as_background_and_compare_pairs_rows():
    x, y = _toy()
    y_ood = y.clone()
    y_ood[:, 6:, 6:] = IGNORE_INDEX
    net = TinyNet().eval()
    d = report.diagnose(net, (x, y), ood={"odd": (x, y_ood)}, figures=False, progress=False, segments_for=(), n_boot=100,
                        failure_aggregators=("mean",))  # fmt: skip
    with torch.no_grad():
        p = uncertainty.single(net, x)
    truth = torch.where(y_ood == IGNORE_INDEX, 0, y_ood)
    expected = failure.augrc(failure.mean_all(1 - p.max_softmax), failure.image_risk(p.prediction, truth))
    assert _row(d, "image failure AUGRC, mean, odd")["value"] == pytest.approx(expected, abs=1e-6)
    assert not d.table["measure"].str.contains("foreground mean").any()  # only the aggregators asked for
    same = d.compare(d, measures=["image failure AUGRC, mean"])
    assert same["difference"].abs().max() == 0 and not same["separated"].any()


def test_bad_input_and_missing_labels():
    x, y = _toy()
    net = TinyNet().eval()
    with pytest.raises(ValueError, match="failure_aggregators"):
        report.diagnose(net, (x, y), failure_aggregators=("median",), figures=False, progress=False)
    with pytest.raises(ValueError, match="failure_aggregators"):
        report.diagnose(net, (x, y), failure_aggregators="mean", figures=False, progress=False)
    d = report.diagnose(net, (x, y), ood={"pics": x}, figures=False, progress=False, segments_for=(), n_boot=50)
    skipped = d.skipped.set_index(["measure", "method"])
    assert "label maps" in skipped.loc[("image failure AUGRC, mean, pics", "max-softmax"), "reason"]
    none = report.diagnose(net, (x, y), background=None, figures=False, progress=False, segments_for=(), n_boot=50)
    assert not none.table["measure"].str.startswith("image failure").any()
    assert none.skipped["measure"].str.startswith("image failure").any()
    empty = report.diagnose(net, (x, y), failure_aggregators=(), figures=False, progress=False, segments_for=(), n_boot=50)
    assert not empty.table["measure"].str.startswith("image failure").any()
