"""Segments: the false-positive segment AUROC, from one row per predicted foreground segment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import segments
from .measures import NO_BACKGROUND, Batch, Measure, Settings, uncertainty_score
from .paired import SegmentScores

__all__ = ["SegmentMeasure"]


class SegmentMeasure(Measure):
    """False-positive segment AUROC: predicted foreground segments that touch no true segment of their class, ranked by mean score.

    MetaSeg's false positives (:mod:`utils.segments`); one row per segment is kept. The score of a
    segment is 1 - its mean max-softmax for one pass, its mean total entropy for several.
    """

    group = 1

    def __init__(self, settings: Settings, sets: Sequence[str]) -> None:
        super().__init__(settings)
        self.sets = set(sets)
        self.tables: dict[tuple[str, str], list[pd.DataFrame]] = {}
        self.images: dict[str, int] = {}

    def update(self, b: Batch) -> None:
        """Add the batch's segments (sets named in ``sets``, label maps needed; not the ensemble's members)."""
        if b.set_name not in self.sets or b.method.startswith("member"):
            return
        name = f"false-positive segment AUROC{b.suffix}"
        if b.labels is None:
            self.skip(name, b.method, f"needs label maps; {b.set_name} holds images only")
            return
        if self.settings.background is None:
            self.skip(name, b.method, NO_BACKGROUND)
            return
        s = self.settings
        table = segments.segment_table(b.pred.probs, b.labels, extra={"score": uncertainty_score(b.pred)},
                                       ignore_index=s.ignore_index, scene_offset=b.start, background=s.background)  # fmt: skip
        if b.pred.samples == 1:  # the chapter's score: 1 - the segment's mean max-softmax
            table["score_mean"] = 1 - table["max_softmax_mean"]
        self.tables.setdefault((b.set_name, b.method), []).append(table[["scene", "false_positive", "score_mean"]])
        self.images[b.set_name] = max(self.images.get(b.set_name, 0), b.start + b.size)

    def _segments(self) -> dict[tuple[str, str], SegmentScores]:
        """Every set and method's segments, or the reason why their AUROC cannot be had."""
        out = {}
        for (set_name, method), parts in self.tables.items():
            t = pd.concat(parts, ignore_index=True)
            pos = t["false_positive"].to_numpy(bool)
            name = f"false-positive segment AUROC{'' if set_name == 'data' else f', {set_name}'}"
            if not len(t):
                self.skip(name, method, f"no predicted {self.settings.foreground} segment in {set_name}: the model paints "
                                        "every pixel as background, so there is no segment to rank")  # fmt: skip
            elif not pos.any():
                self.skip(name, method, f"no false-positive segment in {set_name}: every predicted segment touches a true "
                                        "one, so there is nothing to rank")  # fmt: skip
            elif pos.all():
                self.skip(name, method, f"every predicted segment in {set_name} is a false positive: there is no right "
                                        "segment to rank them against")  # fmt: skip
            else:
                n_units = min(self.images[set_name], self.settings.max_units)
                unit = t["scene"].to_numpy() % self.settings.max_units
                out[(name, method)] = SegmentScores(unit, pos, t["score_mean"].to_numpy(float), n_units)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Return the AUROC of every set and method, with the percentile interval over the units that hold a segment."""
        out = []
        for (name, method), seg in self._segments().items():
            boot = segments.bootstrap_auroc(seg.unit, seg.positive, {"s": seg.score}, n_boot=self.settings.n_boot,
                                            seed=self.settings.seed)["s"]  # fmt: skip
            low, high = np.nanpercentile(boot, [2.5, 97.5])  # a draw without any false positive has no AUROC
            set_name = "data" if name.endswith("AUROC") else name.split(", ", 1)[1]
            out.append({"measure": name, "method": method, "value": seg.auroc(), "low": float(low), "high": float(high),
                        "images": self.images[set_name], "set": set_name})  # fmt: skip
        return out

    def paired(self) -> dict[tuple[str, str], SegmentScores]:
        """Return every row's segments: unit, false positive, score."""
        return self._segments()
