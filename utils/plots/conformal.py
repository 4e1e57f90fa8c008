"""Figures of the conformal chapter."""

from __future__ import annotations

__all__: list[str] = []
