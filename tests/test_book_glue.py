"""Unit tests of utils.book.glue: values reach myst-nb as numbers its {glue:text} roles can format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import myst_nb
from utils.book import glue


@pytest.fixture
def stored(monkeypatch):
    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: seen.__setitem__(name, value))
    return seen


@pytest.mark.parametrize("value", [np.float64(0.25), np.int64(3), torch.tensor(0.5), np.array(1.5)])
def test_numpy_and_torch_scalars_become_python_numbers(stored, value):
    glue("x", value)
    assert type(stored["x"]) in (float, int) and stored["x"] == float(value)
    assert format(stored["x"], ".3f") == f"{float(value):.3f}"


def test_other_values_pass_unchanged(stored):
    arr, text = np.arange(3), "0, 1, 2"
    glue("a", arr)
    glue("t", text)
    assert stored["a"] is arr and stored["t"] is text


def test_name_must_be_a_non_empty_string():
    with pytest.raises(ValueError, match="name"):
        glue("", 1.0)
