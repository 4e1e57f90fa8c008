"""Every figure of utils.plots must be legible at the book's page width.

The rule, as measured here
--------------------------
The chapters show a figure through the matplotlib inline backend (matplotlib-inline >= 0.1.4, which
no longer overrides matplotlib's defaults): the figure is saved as a PNG at ``fig.dpi`` (matplotlib's
``figure.dpi``, 100) with ``bbox_inches="tight"`` (0.1 in padding), and the book's HTML theme shows
that PNG at its natural size, shrunk to the content column (:data:`CONTENT_PX` = 784 px) when wider.
A text of font size ``s`` points therefore measures, on the page,

    px = s * dpi / 72 * min(1, CONTENT_PX / png_width_px)

where the font size (the em height) is the measure of a text's height. Every drawn, non-empty text
(tick labels, axis labels, titles, legend texts and titles, annotations, colour-bar labels, suptitles)
must measure at least :data:`MIN_PX` = 9 px, the size of the body text's small print.

No two drawn texts of a figure may overlap (their bounding boxes in the saved PNG, axis-aligned, so a
rotated text counts with its whole box), no legend may cover a text it does not hold, and a
figure-level legend may not cover any axes.

Every public figure function of ``utils.plots`` is drawn here with inputs shaped like the chapters'
calls (:data:`CASES`); a new figure function must be added to :data:`CASES`, and only the names in
:data:`EXEMPT` (widgets and helpers that return no figure) may be left out.
"""

from __future__ import annotations

import importlib.util
import io
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402
from PIL import Image  # noqa: E402

from utils import metrics, plots, shift, uncertainty  # noqa: E402
from utils.config import CLASS_NAMES, NUM_CLASSES  # noqa: E402
from utils.data import DigitScenes  # noqa: E402

#: Width of the book's content column, in CSS pixels (sphinx-book-theme at a desktop window).
CONTENT_PX = 784
#: Smallest allowed text height on the page, in pixels: the body text's small print.
MIN_PX = 9.0
#: Two text boxes collide when they are closer than 2 px (overlap more than this many pixels) in both directions.
OVERLAP_TOL_PX = -2.0

#: Public names of utils.plots that draw no figure of their own (widgets, helpers).
EXEMPT = {
    "overlay",
    "explorer_choices",
    "heatmap_explorer",
    "softmax_explorer",
    "attack_explorer",
    "temperature_explorer",
    "members_explorer",
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class DrawnText:
    """One text as drawn in the saved PNG."""

    text: str
    points: float
    px: float
    box: Bbox
    artist: Text


@dataclass
class Rendering:
    """What the inline backend would show: the PNG's size, the page scale and every drawn text."""

    width_px: int
    height_px: int
    scale: float
    texts: list[DrawnText]
    legends: list[tuple[Legend, Bbox, bool]]  # (legend, box, is a figure legend)
    axes: list[tuple[plt.Axes, Bbox]]


def render(fig: Figure) -> Rendering:
    """Save ``fig`` as the inline backend does and record every text drawn into the final PNG."""
    drawn: list[tuple[Text, object, Bbox]] = []
    legends: list[tuple[Legend, object, Bbox]] = []
    axes: list[tuple[plt.Axes, object, Bbox]] = []
    text_draw, legend_draw = Text.draw, Legend.draw

    def spy_text(self, renderer):
        text_draw(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append((self, renderer, self.get_window_extent(renderer).frozen()))

    def spy_legend(self, renderer):
        legend_draw(self, renderer)
        if self.get_visible():
            legends.append((self, renderer, self.get_window_extent(renderer).frozen()))
            for ax in fig.axes:
                if ax.get_visible():
                    axes.append((ax, renderer, ax.get_window_extent(renderer).frozen()))

    buf = io.BytesIO()
    with mock.patch.object(Text, "draw", spy_text), mock.patch.object(Legend, "draw", spy_legend):
        fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight",
                    facecolor=fig.get_facecolor(), edgecolor=fig.get_edgecolor())  # fmt: skip
    width, height = Image.open(io.BytesIO(buf.getvalue())).size
    final = drawn[-1][1] if drawn else None  # the last draw is the one into the PNG
    scale = min(1.0, CONTENT_PX / width)
    to_px = fig.dpi / 72 * scale
    texts = [DrawnText(t.get_text(), t.get_fontsize(), t.get_fontsize() * to_px, box, t) for t, r, box in drawn if r is final]
    fig_legends = set(map(id, fig.legends))
    kept_legends = [(leg, box, id(leg) in fig_legends) for leg, r, box in legends if r is final]
    seen, kept_axes = set(), []
    for ax, r, box in axes:
        if r is final and id(ax) not in seen:
            seen.add(id(ax))
            kept_axes.append((ax, box))
    if not kept_axes:
        kept_axes = [(ax, ax.get_window_extent().frozen()) for ax in fig.axes if ax.get_visible()]
    return Rendering(width, height, scale, texts, kept_legends, kept_axes)


def _overlap(a: Bbox, b: Bbox, tol: float = OVERLAP_TOL_PX) -> bool:
    dx = min(a.x1, b.x1) - max(a.x0, b.x0)
    dy = min(a.y1, b.y1) - max(a.y0, b.y0)
    return dx > tol and dy > tol


def _legend_texts(legend: Legend) -> set[int]:
    return {id(t) for t in legend.get_texts()} | {id(legend.get_title())}


def overlapping_texts(r: Rendering) -> list[tuple[str, str]]:
    """Return the pairs of drawn texts whose boxes overlap."""
    out = []
    for i, a in enumerate(r.texts):
        for b in r.texts[i + 1 :]:
            if _overlap(a.box, b.box):
                out.append((a.text, b.text))
    return out


def legend_collisions(r: Rendering) -> list[str]:
    """Return what a legend covers: texts it does not hold, inset axes of its axes, and (figure legends) any axes."""
    out = []
    for legend, box, is_figure_legend in r.legends:
        own = _legend_texts(legend)
        out += [f"legend over text {t.text!r}" for t in r.texts if id(t.artist) not in own and _overlap(box, t.box)]
        insets = {id(a) for a in getattr(legend.axes, "child_axes", [])}
        for ax, ax_box in r.axes:
            if (is_figure_legend or id(ax) in insets) and _overlap(box, ax_box):
                out.append(f"legend over the axes titled {ax.get_title()!r}")
    return out


# --- the chapters' figures, with inputs shaped like the chapters' calls ---------------------------


_SCENES: dict[str, torch.Tensor] = {}


def _scenes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eight real scenes, their labels and plausible predicted probabilities (mostly right, a few errors)."""
    if not _SCENES:
        s = DigitScenes("val", 8)
        g = torch.Generator().manual_seed(0)
        y = s.labels.clamp(max=NUM_CLASSES - 1)
        logits = 6 * torch.nn.functional.one_hot(y, NUM_CLASSES).permute(0, 3, 1, 2).float()
        logits += 2.5 * torch.randn(logits.shape, generator=g)
        _SCENES.update(images=s.images, labels=s.labels, probs=logits.softmax(1))
    return _SCENES["images"], _SCENES["labels"], _SCENES["probs"]


def _members(samples: int, n: int = 1) -> torch.Tensor:
    """``(S, n, K, H, W)`` member probabilities that agree on the digits and disagree around them."""
    images, labels, probs = _scenes()
    g = torch.Generator().manual_seed(1)
    logits = probs[:n].log()[None] + 1.5 * torch.randn(samples, n, NUM_CLASSES, 64, 64, generator=g)
    return logits.softmax(2)


def _bins(temperature: float, seed: int = 0) -> metrics.ReliabilityBins:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, NUM_CLASSES, (4, 32, 32), generator=g)
    logits = 5 * torch.nn.functional.one_hot(target, NUM_CLASSES).permute(0, 3, 1, 2).float()
    logits += 3.0 * torch.randn(logits.shape, generator=g)
    return metrics.CalibrationMeter().update((logits / temperature).softmax(1), target).reliability()


def _roc_pair(seed: int, n: int = 4000, shift_by: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    positive = torch.rand(n, generator=g) < 0.2
    score = torch.randn(n, generator=g) + shift_by * positive
    return score, positive


def _risk_curve(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    score, wrong = _roc_pair(seed, 20000, 2.0)
    return metrics.risk_coverage(score, wrong & (torch.rand(20000) < 0.2))


def _show_scenes():
    images, labels, _ = _scenes()
    return plots.show_scenes(images, labels, n=8)


def _show_training():
    losses = [2.4 * np.exp(-i / 60) + 0.02 + 0.01 * np.sin(i) for i in range(600)]
    history = [{"step": 50 * e, "val_miou": 0.5 + 0.035 * e, "val_pixel_accuracy": 0.95 + 0.004 * e} for e in range(1, 13)]
    return plots.show_training(losses, history)


def _show_confusion():
    g = torch.Generator().manual_seed(0)
    conf = torch.randint(0, 30, (NUM_CLASSES, NUM_CLASSES), generator=g) + torch.diag(torch.full((NUM_CLASSES,), 50000))
    return plots.show_confusion(conf)


def _show_heatmaps():
    images, labels, probs = _scenes()
    return plots.show_heatmaps(images, labels, probs, indices=[0, 1, 5, 6])


def _show_class_probabilities():
    images, _, probs = _scenes()
    return plots.show_class_probabilities(images[0], probs[0])


def _confidence_histogram():
    _, _, probs = _scenes()
    msp = probs.amax(1)
    return plots.confidence_histogram({
        "digit pixels (clean)": msp[:2], "letter pixels": msp[2:4], "photo pixels": msp[4:6], "noise pixels": msp[6:],
    })  # fmt: skip


def _explorer_view():
    images, labels, probs = _scenes()
    return plots.explorer_view(images[0], labels[0], probs[0], "p(class = background)")


def _show_image_grid():
    images, _, _ = _scenes()
    kinds = shift.CORRUPTIONS
    grid = torch.stack([torch.cat([shift.corrupt(images[3:4], k, s) for s in range(1, 6)]) for k in kinds])
    return plots.show_image_grid(grid, list(kinds), [f"severity {s}" for s in range(1, 6)])


def _show_temperatures_four():
    return plots.show_temperatures([2.0, 1.0, 0.5, -1.0], temperatures=(0.5, 1, 2, 5))


def _show_temperatures_classes():
    pixel = [1.2, -3.0, -2.5, 0.8, 3.1, -1.0, 2.9, -4.0, 0.1, -0.5, -2.2]
    return plots.show_temperatures(pixel, temperatures=(1,), names=CLASS_NAMES)


def _show_scaling():
    alphas = torch.logspace(0, 5, 21).tolist()
    msp = [0.97 - 0.2 * np.exp(-((np.log10(a) - 1.5) ** 2)) + 0.029 * (a > 1e3) for a in alphas]
    norm = [20 * a**0.9 for a in alphas]
    return plots.show_scaling(alphas, msp, norm, mark=100)


def _show_roc_chapter6():
    names = ["single: 1 - max-softmax", "MC dropout: mutual information", "ensemble: mutual information",
             "ensemble: total entropy"]  # fmt: skip
    return plots.show_roc({name: _roc_pair(i, shift_by=1 + 0.4 * i) for i, name in enumerate(names)})


def _show_roc_chapter3():
    return plots.show_roc({
        "misclassified vs correct (clean digits)": _roc_pair(0, shift_by=2),
        "letter vs digit pixels (OOD)": _roc_pair(1),
    })  # fmt: skip


def _show_fooling():
    images, _, probs = _scenes()
    return plots.show_fooling(images[:5], probs[:5], [0, 1, 2, 3, 4])


def _show_predictions():
    images, _, probs = _scenes()
    images, probs = torch.cat([images, images[:1]])[:7], torch.cat([probs, probs[:1]])[:7]
    return plots.show_predictions(images, probs, titles=["photo"] * 5 + ["noise"] * 2)


def _show_attack_sweep():
    eps = [2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255, 64 / 255]
    rows = {
        "FGSM: mIoU": [0.8, 0.7, 0.55, 0.4, 0.3, 0.2],
        "PGD: mIoU": [0.7, 0.5, 0.3, 0.1, 0.05, 0.02],
        "FGSM: MSP of changed pixels": [0.6, 0.62, 0.66, 0.7, 0.75, 0.8],
        "PGD: MSP of changed pixels": [0.7, 0.8, 0.9, 0.95, 0.98, 0.99],
    }
    reference = {"clean: mIoU": 0.93, "clean: MSP of wrong pixels": 0.72, "Goodfellow et al., maxout, eps 0.25": 0.976}
    return plots.show_attack_sweep(eps, rows, reference)


def _attack_view():
    images, labels, probs = _scenes()
    g = torch.Generator().manual_seed(0)
    adv = (images[0] + 16 / 255 * torch.randn(images[0].shape, generator=g).sign()).clamp(0, 1)
    return plots.attack_view(images[0], adv, labels[0], probs[0], probs[1], title="PGD, eps = 16/255")


def _show_reliability_three():
    names = ["all pixels", "digit pixels", "boundary pixels"]
    diagrams = {n: _bins(1.0 + 0.5 * i, i) for i, n in enumerate(names)}
    return plots.show_reliability(diagrams, {n: 0.0123 * (i + 1) for i, n in enumerate(names)})


def _show_reliability_four():
    return plots.show_reliability({f"T = {t:.2f}": _bins(t) for t in (0.5, 1.0, 1.37, 3.0)})


def _show_reliability_scaled():
    names = [f"{n}, T = 1.37" for n in ("all pixels", "digit pixels", "boundary pixels")]
    return plots.show_reliability({n: _bins(1.37, i) for i, n in enumerate(names)}, {n: 0.0043 for n in names})


def _show_curves_drift():
    drift = {"pixel accuracy": [0.97, 0.98, 0.985, 0.987, 0.988], "NLL": [0.1, 0.07, 0.06, 0.05, 0.045],
             "ECE (digit pixels)": [0.02, 0.015, 0.014, 0.013, 0.016]}  # fmt: skip
    return plots.show_curves([2, 4, 6, 9, 12], {k: {k: v} for k, v in drift.items()}, "epoch", logy=["NLL"])


def _show_curves_shift():
    kinds = shift.CORRUPTIONS
    panels = {f"{score} (temperature-scaled)": {k: [0.1 * (j + 1) * (s + 1) for s in range(6)] for j, k in enumerate(kinds)}
              for score in ("accuracy", "ECE", "NLL")}  # fmt: skip
    return plots.show_curves([0, 1, 2, 3, 4, 5], panels, "severity", logy=[k for k in panels if "accuracy" not in k])


def _show_curves_samples():
    counts = [1, 2, 3, 4, 5, 10, 15, 20]
    nan = float("nan")
    settle = {
        "MI: letter AUROC": {"MC dropout": [0.5, 0.7, 0.75, 0.78, 0.8, 0.82, 0.83, 0.83],
                             "ensemble": [0.5, 0.8, 0.85, 0.88, 0.9, nan, nan, nan]},
        "NLL (digit pixels)": {"MC dropout": [0.3, 0.25, 0.23, 0.22, 0.21, 0.2, 0.2, 0.2],
                               "ensemble": [0.3, 0.2, 0.18, 0.17, 0.16, nan, nan, nan]},
    }  # fmt: skip
    return plots.show_curves(counts, settle, "number of samples S")


def _show_curves_methods():
    panels = {s: {m: [0.1 * (i + 1), 0.2 * (i + 1), 0.3 * (i + 1)] for i, m in enumerate(("single", "MC dropout", "ensemble"))}
              for s in ("NLL", "ECE")}  # fmt: skip
    return plots.show_curves([3, 4, 5], panels, "severity", logy=["NLL", "ECE"])


def _calibration_view():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, NUM_CLASSES, (8, 32, 32), generator=g)
    logits = 6 * torch.nn.functional.one_hot(target, NUM_CLASSES).permute(0, 3, 1, 2).float()
    logits += 3 * torch.randn(logits.shape, generator=g)
    return plots.calibration_view(logits, target, 1.37, fitted=1.37)


def _show_uncertainty_maps():
    images, _, _ = _scenes()
    p = _members(5, 3)
    mean = p.mean(0)
    total, aleatoric, epistemic = uncertainty.decompose(p)
    return plots.show_uncertainty_maps(
        images[:3],
        {"1 - max-softmax": 1 - mean.amax(1), "total entropy": total, "expected entropy": aleatoric,
         "mutual information": epistemic},
        row_titles=["clean", "letters", "noise, severity 4"],
        predictions=mean.argmax(1),
    )  # fmt: skip


def _members_view():
    images, _, _ = _scenes()
    return plots.members_view(images[0], _members(20)[:, 0], 20, "MC dropout, 20 samples")


def _show_risk_coverage():
    methods = ["max-softmax", "temperature-scaled", "MC dropout", "ensemble"]
    return plots.show_risk_coverage({m: _risk_curve(i) for i, m in enumerate(methods)})


def _show_toy_plane():
    from utils import toy

    points, labels = toy.make_clusters(n_per_class=40, classes=3)
    members = toy.train_ensemble(points, labels, members=3, steps=150)
    plane = toy.evaluate_plane(members, extent=12.0, n=41)
    ring = toy.ring_profile(members, [3, 5, 10, 20, 50, 100, 200, 500, 1000], n=36)
    return plots.show_toy_plane(points, labels, plane, ring, mark=10)


def _show_series():
    epochs = list(range(1, 13))
    panels = {
        "NLL": {"fresh scenes": (epochs, [0.3 / e for e in epochs]), "fixed scenes": (epochs[:8], [0.3, 0.2, 0.15, 0.16, 0.18, 0.2, 0.22, 0.25])},
        "pixel accuracy": {"fresh scenes": (epochs, [0.9 + 0.007 * e for e in epochs]), "fixed scenes": (epochs[:8], [0.9 + 0.008 * e for e in epochs[:8]])},
        "ECE (digit pixels)": {"fresh scenes": (epochs, [0.02 + 0.001 * e for e in epochs]), "fixed scenes": (epochs[:8], [0.02 + 0.003 * e for e in epochs[:8]])},
    }  # fmt: skip
    marks = {"NLL": {"fresh scenes": ([2, 4, 6, 9, 12], [0.15, 0.075, 0.05, 0.033, 0.025])}}
    return plots.show_series(panels, "epoch", logy=["NLL"], marks=marks)


#: Every public figure function -> the chapter-shaped calls drawn here (add a new figure here).
CASES: dict[str, dict[str, Callable[[], Figure]]] = {
    "show_scenes": {"ch1 eight scenes": _show_scenes},
    "show_training": {"ch1 training": _show_training},
    "show_confusion": {"ch1 confusion": _show_confusion},
    "show_heatmaps": {"ch1/ch3 four scenes": _show_heatmaps},
    "show_class_probabilities": {"ch1 eleven classes": _show_class_probabilities},
    "confidence_histogram": {"ch3 four groups": _confidence_histogram},
    "explorer_view": {"ch1 background map": _explorer_view},
    "show_image_grid": {"ch5 corruptions": _show_image_grid},
    "show_temperatures": {"ch2 four logits": _show_temperatures_four, "ch2 eleven classes": _show_temperatures_classes},
    "show_scaling": {"ch2 input scaling": _show_scaling},
    "show_roc": {"ch3 two curves": _show_roc_chapter3, "ch6 four curves": _show_roc_chapter6},
    "show_fooling": {"ch3 five fooling images": _show_fooling},
    "show_predictions": {"ch3 photos and noise": _show_predictions},
    "show_attack_sweep": {"ch4 sweep": _show_attack_sweep},
    "attack_view": {"ch4 attacked scene": _attack_view},
    "show_reliability": {
        "ch5 three groups": _show_reliability_three,
        "ch5 four temperatures": _show_reliability_four,
        "ch5 temperature-scaled": _show_reliability_scaled,
    },
    "show_curves": {
        "ch5 drift": _show_curves_drift,
        "ch5 shift": _show_curves_shift,
        "ch6 samples": _show_curves_samples,
        "ch6 methods": _show_curves_methods,
    },
    "calibration_view": {"ch5 explorer view": _calibration_view},
    "show_uncertainty_maps": {"ch6 three rows": _show_uncertainty_maps},
    "members_view": {"ch6 twenty samples": _members_view},
    "show_risk_coverage": {"ch7 four methods": _show_risk_coverage},
    "show_toy_plane": {"ch2 toy plane": _show_toy_plane},
    "show_series": {"three metrics, two runs": _show_series},
}


def _chapter_cases() -> None:
    """Add the cases of ``tests/legibility_cases_*.py`` (one file per chapter module, each a ``CASES`` dict)."""
    for path in sorted(Path(__file__).parent.glob("legibility_cases_*.py")):
        spec = importlib.util.spec_from_file_location(f"_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, cases in module.CASES.items():
            assert not set(cases) & set(CASES.get(name, {})), f"{path.name} repeats a case id of {name}"
            CASES.setdefault(name, {}).update(cases)


_chapter_cases()

_ALL_CASES = [pytest.param(f"{name}: {case}", id=f"{name}: {case}") for name, cases in CASES.items() for case in cases]

#: Known collisions in figures this file's authors do not maintain: case id -> what collides and where
#: to fix it. Strict: once fixed, the test passes unexpectedly and the entry must go.
KNOWN_OVERLAPS: dict[str, str] = {}
_OVERLAP_CASES = [
    pytest.param(p.values[0], id=p.id, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_OVERLAPS[p.id])])
    if p.id in KNOWN_OVERLAPS else p
    for p in _ALL_CASES
]  # fmt: skip
_RENDERED: dict[str, Rendering] = {}


def _rendered(case_id: str) -> Rendering:
    """Draw and render one case once per session (the three checks below share it)."""
    if case_id not in _RENDERED:
        name, case = case_id.split(": ", 1)
        fig = CASES[name][case]()
        assert isinstance(fig, Figure), f"{name} must return a matplotlib Figure"
        _RENDERED[case_id] = render(fig)
    return _RENDERED[case_id]


def _returns_figure(name: str) -> bool:
    func = getattr(plots, name)
    return callable(func) and typing.get_type_hints(func).get("return") is Figure


# --- the rule ------------------------------------------------------------------------------------


def test_every_public_figure_function_is_checked():
    public = set(plots.__all__)
    figures = {name for name in public if _returns_figure(name)}
    assert figures - set(CASES) == set(), "add a chapter-shaped call of each new figure function to CASES"
    assert public - set(CASES) - EXEMPT == set(), "a public name is neither checked (CASES) nor EXEMPT"
    assert not figures & EXEMPT, "a function returning a Figure cannot be exempt"
    assert set(CASES) <= public


@pytest.mark.parametrize("case", _ALL_CASES)
def test_smallest_text_is_legible_at_page_width(case):
    r = _rendered(case)
    assert r.texts, "the figure draws no text"
    small = sorted({(round(t.px, 2), t.points, t.text) for t in r.texts if t.px < MIN_PX})
    assert not small, (
        f"PNG {r.width_px} px wide, shown at {r.scale:.0%}: texts below {MIN_PX} px (px, pt, text): {small[:8]}"
    )


@pytest.mark.parametrize("case", _OVERLAP_CASES)
def test_no_text_overlaps_another(case):
    assert overlapping_texts(_rendered(case)) == []


@pytest.mark.parametrize("case", _ALL_CASES)
def test_no_legend_covers_text_or_panels(case):
    assert legend_collisions(_rendered(case)) == []


# --- the measuring itself ------------------------------------------------------------------------


def test_render_measures_the_page_size_of_a_text():
    fig = plt.figure(figsize=(4, 2), dpi=100)
    fig.text(0.5, 0.5, "wide", fontsize=10)
    r = render(fig)
    assert r.scale == 1.0 and r.width_px < CONTENT_PX
    assert r.texts[0].px == pytest.approx(10 * 100 / 72)
    wide = plt.figure(figsize=(20, 2), dpi=100)
    wide.text(0.1, 0.5, "x" * 10, fontsize=10)
    wide.text(0.9, 0.5, "y", fontsize=10)
    r = render(wide)
    # tight bbox: from the first text's left to the last one's right, plus 0.1 in (10 px) each side
    assert r.texts[0].box.x0 == pytest.approx(10, abs=1)
    assert r.width_px == pytest.approx(r.texts[1].box.x1 + 10, abs=2) and r.width_px > 1500
    assert r.texts[0].px == pytest.approx(10 * 100 / 72 * CONTENT_PX / r.width_px)


def test_overlaps_and_legend_collisions_are_detected():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, "one", transform=ax.transAxes)
    ax.text(0.5, 0.5, "two", transform=ax.transAxes)
    ax.plot([0, 1], label="a curve")
    fig.legend(loc="center")
    r = render(fig)
    assert ("one", "two") in overlapping_texts(r)
    collisions = legend_collisions(r)
    assert any("axes" in c for c in collisions) and any("'one'" in c for c in collisions)
