"""Checks of exercise answers: ``check("ch1-ex-pixacc", answer)`` says right, wrong or how far off, with a hint.

Every checked exercise computes its expected answer with the same ``utils`` calls its solution in the
book makes (the shipped model, the same scenes, the same seeds), the first time it is checked in a
session; nothing is typed in. ``tests/test_exercises.py`` runs each solution's own code from the
chapter and checks that :func:`check` accepts what it computes.

Exercises whose answer is a comparison, a figure or an explanation, or whose computation takes more
than a few seconds on a CPU (attacks, ensembles, training, conformal calibration over 200 splits), are
not checked; :data:`LABELS` lists those that are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

__all__ = ["LABELS", "check", "expected", "hint"]


@dataclass(frozen=True)
class _Exercise:
    """One checked exercise: what to pass, how to compute the expected answer, and what to look at when wrong."""

    label: str
    answer: str  # what the answer is, in words
    call: str  # the argument in the skeleton's example call
    parts: tuple[str, ...]  # the name of each number of the answer
    reference: Callable[[], Any]  # computes the expected numbers
    hint: str
    rtol: float = 1e-3
    atol: float = 1e-4
    function: Callable[..., torch.Tensor] | None = None  # a function the answer may be instead
    function_inputs: Callable[[], tuple] | None = field(default=None)


# --- what the chapters compute before their exercises (cached: each is computed once per session) ---


@lru_cache(maxsize=None)
def _device() -> torch.device:
    from utils.config import get_device

    return get_device()


@lru_cache(maxsize=None)
def _model() -> torch.nn.Module:
    from utils import weights

    return weights.load("unet_seed0", device=_device())


@lru_cache(maxsize=None)
def _test() -> Any:
    from utils import data

    return data.DigitScenes("test")


@lru_cache(maxsize=None)
def _test_logits() -> torch.Tensor:
    from utils import models

    return models.predict_logits(_model(), _test().images, device=_device()).cpu()


def _errors() -> tuple[torch.Tensor, torch.Tensor]:
    """Return the test probabilities and the mask of misclassified pixels (chapter 1's ``probs``, ``wrong``)."""
    probs = _test_logits().softmax(dim=1)
    return probs, probs.argmax(dim=1) != _test().labels


# --- expected answers ---


def _ch1_pixacc() -> tuple[float, float]:
    from utils import metrics

    labels = _test().labels
    conf = metrics.confusion_matrix(torch.zeros_like(labels), labels)
    return metrics.pixel_accuracy(conf), metrics.mean_iou(conf)


def _ch1_entropy() -> tuple[float, float]:
    from utils import uncertainty

    probs, wrong = _errors()
    ent = uncertainty.entropy(probs)
    return ent[~wrong].mean().item(), ent[wrong].mean().item()


def _random_probs() -> tuple[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(3, 11, 8, 8, generator=g).mul(3).softmax(dim=1),)


def _ch1_width() -> list[float]:
    from utils import metrics

    _, wrong = _errors()
    return [metrics.boundary_mask(_test().labels, width=w)[wrong].float().mean().item() for w in (1, 2, 3)]


_TEMPERATURES = (0.01, 0.1, 1, 10, 100)


def _ch2_limits() -> list[float]:
    from utils import metrics, models

    logits = models.predict_logits(_model(), _test().images[:1], device=_device()).cpu()[0]
    row, col = divmod(int(metrics.max_softmax(logits[None])[0].argmin()), logits.shape[-1])
    pixel = logits[:, row, col]
    return [(pixel / t).softmax(0).max().item() for t in _TEMPERATURES]


def _ch2_noise() -> float:
    from utils import metrics, models

    noise = torch.rand(20, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    return metrics.max_softmax(models.predict_logits(_model(), 1e4 * noise, device=_device())).mean().item()


def _ch3_gauss() -> tuple[float, float]:
    from utils import metrics, models, ood

    out = models.predict_logits(_model(), ood.noise_images(100, "gaussian"), device=_device())
    digit = out.argmax(1) > 0
    return digit.float().mean().item(), metrics.max_softmax(out)[digit].mean().item()


_BINS = (5, 15, 50, 200)


def _ch5_bins() -> list[float]:
    from utils import metrics

    probs, labels = _test_logits()[:300].softmax(dim=1), _test().labels[:300]
    # classwise=False: the same top-label ECE, without the class-wise sums the ECE does not use
    return [metrics.CalibrationMeter(n_bins=n, classwise=False).update(probs, labels).ece() for n in _BINS]


def _al_rounds() -> list[float]:
    from utils import active

    shipped = active.load_results()
    picked = active.curves(shipped, "trap_share")["overlaid/scenes/least_confidence"]  # (seeds, rounds + 1)
    return picked[:, 1:].mean(axis=0).tolist()


_EXERCISES = (
    _Exercise(
        "ch1-ex-pixacc", "(pixel accuracy, mIoU) of a model that predicts background everywhere",
        "(pixel_accuracy, miou)", ("pixel accuracy", "mIoU"), _ch1_pixacc,
        "predict class 0 for every pixel of test.labels (torch.zeros_like), then score that label map "
        "with metrics.confusion_matrix(prediction, labels); the mIoU averages over all 11 classes.",
        rtol=1e-5),
    _Exercise(
        "ch1-ex-entropy", "(mean entropy on correct pixels, mean entropy on misclassified pixels), in nats, "
        "or your entropy function of probs (B, K, H, W)",
        "(entropy_correct, entropy_wrong)", ("mean entropy, correct pixels", "mean entropy, misclassified pixels"),
        _ch1_entropy,
        "the entropy is -sum_k p_k log p_k over the class dimension (dim=1), in nats (natural log); "
        "clamp p before the log so that 0 log 0 counts as 0.",
        function=lambda probs: _entropy(probs), function_inputs=_random_probs),
    _Exercise(
        "ch1-ex-width", "the share of misclassified pixels inside the band, for w = 1, 2, 3",
        "[share_w1, share_w2, share_w3]", ("w = 1", "w = 2", "w = 3"), _ch1_width,
        "take metrics.boundary_mask(test.labels, width=w) as the band and count the errors "
        "(pred != test.labels) that fall inside it, as a fraction of all errors."),
    _Exercise(
        "ch2-ex-limits", "the max-softmax of pixel / T for T = 0.01, 0.1, 1, 10, 100",
        "[msp_T001, msp_T01, msp_T1, msp_T10, msp_T100]", tuple(f"T = {t}" for t in _TEMPERATURES), _ch2_limits,
        "divide the studied pixel's logits (a vector of 11) by T before the softmax, and take the largest "
        "probability."),
    _Exercise(
        "ch2-ex-noise", "the mean max-softmax over all pixels of the 20 noise images scaled by 10^4",
        "msp_at_1e4", ("mean max-softmax at 10^4",), _ch2_noise,
        "draw the noise with torch.Generator().manual_seed(0) so it is the same 20 images, multiply them by "
        "1e4 before models.predict_logits, and average metrics.max_softmax over every pixel."),
    _Exercise(
        "ch3-ex-gauss", "(share of pixels labelled a digit, their mean max-softmax) for Gaussian noise",
        "(share_digit, msp_digit)", ("share labelled a digit", "mean max-softmax of those"), _ch3_gauss,
        "use ood.noise_images(100, \"gaussian\"); a pixel is labelled a digit when its argmax class is above 0 "
        "(as a fraction, not a percentage); average the max-softmax over those pixels only."),
    _Exercise(
        "ch5-ex-bins", "the ECE on all pixels of the first 300 test scenes with 5, 15, 50 and 200 bins",
        "[ece_5, ece_15, ece_50, ece_200]", tuple(f"{n} bins" for n in _BINS), _ch5_bins,
        "use metrics.CalibrationMeter(n_bins=n).update(probs[:300], y[:300]).ece(), with no mask for all "
        "pixels."),
    _Exercise(
        "al-ex-rounds", "least confidence's share of trap pixels among the pixels it labelled, per round, acquiring whole "
        "scenes from the pool with overlaid traps (mean over seeds)",
        "share_per_round", (), _al_rounds,
        "active.curves(shipped, \"trap_share\")[\"overlaid/scenes/least_confidence\"] has one column per round, the "
        "first being the start (no share); drop it and average over the seeds (axis 0)."),
)

_BY_LABEL = {e.label: e for e in _EXERCISES}
#: The labels of the exercises that :func:`check` can check.
LABELS: tuple[str, ...] = tuple(_BY_LABEL)


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    from utils import uncertainty

    return uncertainty.entropy(probs, dim=1)


def _get(label: object) -> _Exercise:
    if not isinstance(label, str):
        raise TypeError(f"label must be an exercise label (str), got {type(label).__name__}")
    if label not in _BY_LABEL:
        raise ValueError(f"label must be one of the checked exercises {list(LABELS)}, got {label!r}")
    return _BY_LABEL[label]


@lru_cache(maxsize=None)
def _expected(label: str) -> np.ndarray:
    return np.atleast_1d(np.asarray(_get(label).reference(), dtype=np.float64))


def expected(label: str) -> np.ndarray:
    """Return the expected answer of exercise ``label`` as a 1-D float array (computed once per session)."""
    _get(label)
    return _expected(label).copy()


def hint(label: str) -> str:
    """Return the two comment lines that tell a student how to check exercise ``label``."""
    ex = _get(label)
    return (f"# Check your answer, {ex.answer}:\n"
            f"# from utils.exercises import check; check(\"{label}\", {ex.call})")


def _as_numbers(answer: object) -> np.ndarray:
    if isinstance(answer, torch.Tensor):
        answer = answer.detach().cpu().double().numpy()
    if isinstance(answer, (str, bytes, dict)) or answer is None:
        raise TypeError(f"answer must be a number or a sequence of numbers, got {type(answer).__name__}")
    if isinstance(answer, Sequence):
        answer = [a.detach().cpu().item() if isinstance(a, torch.Tensor) else a for a in answer]
    try:
        return np.atleast_1d(np.asarray(answer, dtype=np.float64)).ravel()
    except (TypeError, ValueError) as err:
        raise TypeError(f"answer must be a number or a sequence of numbers, got {answer!r}") from err


def _how_far(yours: float, want: float) -> str:
    if not math.isfinite(yours):
        return f"is {yours}"
    if want == 0:
        return f"is off by {yours:+.3g}"
    ratio = yours / want
    if ratio < 0:
        return "has the wrong sign"
    if abs(ratio - 100) < 1:
        return "is 100 times too large: a percentage instead of a fraction?"
    if abs(ratio - 0.01) < 1e-4:
        return "is 100 times too small: a fraction where a percentage was asked?"
    return f"is {abs(ratio - 1):.1%} too {'high' if ratio > 1 else 'low'}"


def _check_function(ex: _Exercise, fn: Callable) -> tuple[bool, str]:
    inputs = ex.function_inputs()
    want = ex.function(*inputs)
    try:
        got = fn(*[x.clone() for x in inputs])
    except Exception as err:  # the student's code: report, do not crash
        return False, f"your function raised {type(err).__name__}: {err}"
    if not isinstance(got, torch.Tensor):
        return False, f"your function returned a {type(got).__name__}, not a tensor"
    if tuple(got.shape) != tuple(want.shape):
        return False, (f"your function returns shape {tuple(got.shape)} for probs of shape "
                       f"{tuple(inputs[0].shape)}; expected {tuple(want.shape)} (one value per pixel)")
    gap = (got.detach().double().cpu() - want.double()).abs().max().item()
    if gap <= ex.atol + ex.rtol * want.abs().max().item():
        return True, "your function gives the expected values"
    return False, f"your function's values are off by up to {gap:.3g}"


def check(label: str, answer: object) -> bool:
    """Print whether ``answer`` to exercise ``label`` is right (or how far off, with a hint); return True if right."""
    ex = _get(label)
    if callable(answer) and not isinstance(answer, torch.Tensor):
        if ex.function is None:
            raise TypeError(f"answer to {label} must be {ex.answer}, not a function")
        ok, why = _check_function(ex, answer)
    else:
        yours, want = _as_numbers(answer), _expected(label)
        if yours.size != want.size:
            ok, why = False, f"expected {want.size} number(s), {ex.answer}; got {yours.size}"
        else:
            close = np.isclose(yours, want, rtol=ex.rtol, atol=ex.atol)
            ok = bool(close.all())
            names = ex.parts if len(ex.parts) == want.size else [f"number {i + 1}" for i in range(want.size)]
            if ok:
                why = "all " + str(want.size) + " numbers match" if want.size > 1 else "it matches"
            else:
                why = "; ".join(f"{n} {_how_far(y, w)}" for n, y, w, c in zip(names, yours, want, close) if not c)
    if ok:
        print(f"Right: {label}, {why}.")
    else:
        print(f"Not yet: {label}: {why}.\nHint: {ex.hint}")
    return ok
