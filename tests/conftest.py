"""Shared fixtures of the unit tests of ``utils`` (run from the repository root: ``pytest tests``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.data import DigitScenes  # noqa: E402
from utils.models import UNet  # noqa: E402

# The unit tests use tiny models, which gain nothing from intra-op threads; with other work on the
# machine (a notebook, a training run) extra threads only oversubscribe the cores and slow tests ~10x.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_val() -> DigitScenes:
    """Eight validation scenes (cheap, built once)."""
    return DigitScenes("val", 8)


@pytest.fixture
def tiny_unet() -> UNet:
    """A freshly initialised, seeded, tiny U-Net (about 30k parameters) in eval mode."""
    torch.manual_seed(0)
    return UNet(width=4).eval()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of the browser tests (tests/test_browser.py), which run by default."""
    config.addinivalue_line("markers", "browser: drives headless Chromium over the built book in _build/html "
                                       "(deselect with -m 'not browser')")
