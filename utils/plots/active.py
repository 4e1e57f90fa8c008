"""Figures of the active chapter."""

from __future__ import annotations

__all__: list[str] = []
