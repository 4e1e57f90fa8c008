"""Helpers for the book's pages: recording computed values for the prose (myst-nb ``glue``)."""

from __future__ import annotations

from typing import Any

__all__ = ["glue"]


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` under ``name`` for ``{glue:text}`` roles in the book.

    NumPy and torch scalars are stored as Python numbers, which ``{glue:text}`` roles can format. In
    the book build this is ``myst_nb.glue``; where myst-nb is not installed (Colab) it does
    nothing, since there is no page to paste the value into.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()  # a NumPy or torch scalar: myst-nb formats only Python numbers
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return
    _glue(name, value, display=display)
