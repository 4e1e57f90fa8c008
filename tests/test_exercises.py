"""utils.exercises.check: its expected answers agree with what each solution in the book computes.

For every checked exercise the test runs the solution's own code cells, taken from the chapter by
tools/student_notebooks.py (top-level asserts left out: nbval runs them with the chapter), in a
namespace holding the chapter variables the solution reads, computed as the chapter computes them;
then ``check(label, <the solution's answer>)`` must say right, and a 5 % change of it must say wrong.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import exercises

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_notebooks", ROOT / "tools" / "student_notebooks.py")
student_notebooks = sys.modules.setdefault("student_notebooks", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(student_notebooks)

#: The solution's answer, as an expression in the solution's own variable names.
ANSWER = {
    "ch1-ex-pixacc": "(bg_acc, bg_miou)",
    "ch1-ex-entropy": "(ent_right, ent_wrong)",
    "ch1-ex-width": "[bands[w]['errors'] for w in (1, 2, 3)]",
    "ch2-ex-limits": "[limits[T][0] for T in (0.01, 0.1, 1, 10, 100)]",
    "ch2-ex-noise": "noise_msp",
    "ch3-ex-gauss": "(gauss_digit.float().mean().item(), gauss_msp[gauss_digit].mean().item())",
    "ch5-ex-bins": "[bins[('all', n)]['ECE'] for n in (5, 15, 50, 200)]",
    "al-ex-rounds": "share['least_confidence'].mean(0)",
}


def _context(label: str) -> dict:
    """Return the chapter variables that the solution of ``label`` reads, computed as in its chapter."""
    from utils import active, metrics, models, ood
    from utils.config import CLASS_NAMES

    ns = {"torch": torch, "np": np, "metrics": metrics, "models": models, "ood": ood, "active": active,
          "CLASS_NAMES": CLASS_NAMES, "glue": lambda *args, **kwargs: None}
    chapter = label.split("-")[0]
    if chapter in ("ch1", "ch2", "ch3", "ch5"):
        test, logits = exercises._test(), exercises._test_logits()
        probs = logits.softmax(dim=1)
        pred = probs.argmax(dim=1)
        msp = probs.amax(dim=1)
        ns.update(model=exercises._model(), device=exercises._device(), test=test, logits=logits, probs=probs,
                  pred=pred, msp=msp, wrong=pred != test.labels, y=test.labels)
    if chapter == "ch2":
        row, col = divmod(int(ns["msp"][0].argmin()), ns["msp"].shape[-1])
        ns.update(softmax=lambda z, dim=-1: z.softmax(dim), pixel=logits[0, :, row, col])
    if chapter == "al":
        shipped = active.load_results()
        cfg = active.config_of(shipped)
        ns.update(shipped=shipped, cfg=cfg, pd=__import__("pandas"))
    return ns


def _chapter_of(label: str) -> dict:
    for path in student_notebooks.chapters():
        nb = json.loads(path.read_text(encoding="utf-8"))
        if label in student_notebooks.exercise_titles(nb):
            return nb
    raise AssertionError(f"no chapter has the exercise {label}")


def _without_asserts(source: str) -> str:
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not isinstance(node, ast.Assert)]
    return ast.unparse(tree)


def test_every_checked_exercise_is_in_a_chapter_and_tested():
    for label in exercises.LABELS:
        _chapter_of(label)
    assert sorted(ANSWER) == sorted(exercises.LABELS), "give every checked exercise its solution's answer in ANSWER"


@pytest.mark.parametrize("label", exercises.LABELS)
def test_check_accepts_the_solutions_own_answer(label, capsys):
    cells = student_notebooks.solutions(_chapter_of(label))[label]
    ns = _context(label)
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile(_without_asserts(student_notebooks._source(cell)), label, "exec"), ns)
    answer = eval(ANSWER[label], ns)
    assert exercises.check(label, answer), capsys.readouterr().out
    assert "Right" in capsys.readouterr().out
    # A 5 % change of the answer is reported as wrong, saying by how much.
    wrong = np.asarray(answer, dtype=float) * 1.05
    assert not exercises.check(label, wrong)
    out = capsys.readouterr().out
    assert "Not yet" in out and "5.0% too high" in out and "Hint:" in out


def test_a_function_answer_is_run_and_compared():
    def nats(probs):
        return -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)

    def bits(probs):
        return -(probs * probs.clamp_min(1e-12).log2()).sum(dim=1)

    assert exercises.check("ch1-ex-entropy", nats)
    assert not exercises.check("ch1-ex-entropy", bits)
    assert not exercises.check("ch1-ex-entropy", lambda probs: nats(probs).mean())  # one number, not a map
    assert not exercises.check("ch1-ex-entropy", lambda probs: 1 / 0)  # its error is reported, not raised


def test_percentages_and_wrong_lengths_are_named(capsys):
    acc, miou = exercises.expected("ch1-ex-pixacc")
    assert not exercises.check("ch1-ex-pixacc", (100 * acc, miou))
    assert "percentage" in capsys.readouterr().out
    assert not exercises.check("ch1-ex-pixacc", acc)
    assert "expected 2 number(s)" in capsys.readouterr().out
    assert exercises.check("ch1-ex-pixacc", torch.tensor([acc, miou]))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="label"):
        exercises.check("ch99-ex-none", 1.0)
    with pytest.raises(TypeError, match="label"):
        exercises.check(3, 1.0)
    with pytest.raises(TypeError, match="answer"):
        exercises.check("ch2-ex-noise", "0.9")
    with pytest.raises(TypeError, match="not a function"):
        exercises.check("ch2-ex-noise", lambda: 0.9)


def test_hint_names_the_call():
    for label in exercises.LABELS:
        assert f'check("{label}", ' in exercises.hint(label)
        assert all(line.startswith("# ") for line in exercises.hint(label).splitlines())
