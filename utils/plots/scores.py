"""Figures of the scores chapter."""

from __future__ import annotations

__all__: list[str] = []
