"""Figures of the segments chapter."""

from __future__ import annotations

__all__: list[str] = []
