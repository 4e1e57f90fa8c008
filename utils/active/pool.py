"""The pool of the experiment: clean DigitScenes training scenes and two kinds of trap scenes.

A trap scene's labels cannot be learned: each of its glyphs is labelled with one of two classes by a
coin flip, so more labels of it do not remove the uncertainty (aleatoric). The two kinds differ in
whether the glyph looks like anything the model has seen:

* ``"overlaid"``: two training digits of different classes drawn over each other into one glyph, a
  shape no clean scene holds (ambiguous *and* novel);
* ``"ambiguous"``: one ordinary training digit, drawn as in a clean scene, from the digits that the
  course's five-network ensemble finds ambiguous between two classes (:data:`AMBIGUOUS_FILE`), labelled
  with one of those two classes (ambiguous without looking novel).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..config import SPLITS
from ..data import DigitScenes, Scene, SceneConfig, _add_noise, _draw_glyph, _paste_glyph, _pool

__all__ = ["AMBIGUOUS_FILE", "TRAP_KINDS", "Pool", "ambiguous_digits", "build_pool", "make_trap_scene"]

#: The trap kinds, in the order their scenes follow the clean ones in a :class:`Pool` (kind codes 1, 2).
TRAP_KINDS: tuple[str, ...] = ("overlaid", "ambiguous")
#: The training digits the course's ensemble finds ambiguous, with their two classes (``python -m utils.active.ambiguous``).
AMBIGUOUS_FILE: Path = Path(__file__).resolve().parents[1] / "results" / "ambiguous_digits.json"
_TRAP_STREAM = {"overlaid": 97, "ambiguous": 98}  # enter each trap scene's seed: trap scenes share no numbers with a split


@dataclass
class Pool:
    """Scenes ``(N, 1, H, W)``, labels ``(N, H, W)`` and kinds ``(N,)``: 0 clean, 1 overlaid trap, 2 ambiguous trap."""

    images: torch.Tensor
    labels: torch.Tensor
    kind: torch.Tensor

    @property
    def is_trap(self) -> torch.Tensor:
        """Which scenes are traps ``(N,)`` (bool)."""
        return self.kind > 0

    def members(self, pool: str) -> torch.Tensor:
        """Return which scenes belong to ``pool`` ``(N,)``: the clean ones, plus the traps of its kind."""
        if pool == "clean":
            return self.kind == 0
        if pool not in TRAP_KINDS:
            raise ValueError(f"pool must be 'clean' or one of {TRAP_KINDS}, got {pool!r}")
        return (self.kind == 0) | (self.kind == 1 + TRAP_KINDS.index(pool))

    def blocks(self) -> list[tuple[int, int, int]]:
        """Return ``(kind, start, stop)`` of each contiguous run of one kind (clean first)."""
        kinds = self.kind.tolist()
        out, start = [], 0
        for i in range(1, len(kinds) + 1):
            if i == len(kinds) or kinds[i] != kinds[start]:
                out.append((kinds[start], start, i))
                start = i
        return out


@lru_cache(maxsize=1)
def ambiguous_digits() -> np.ndarray:
    """Return the shipped ambiguous digits ``(M, 3)``: training-pool index and the two classes the ensemble gives them."""
    if not AMBIGUOUS_FILE.is_file():
        raise FileNotFoundError(f"no list at {AMBIGUOUS_FILE}; run `python -m utils.active.ambiguous --out {AMBIGUOUS_FILE}`")
    rows = json.loads(AMBIGUOUS_FILE.read_text())["digits"]
    if not rows:
        raise ValueError(f"{AMBIGUOUS_FILE} lists no digits")
    return np.array([[r["index"], r["classes"][0], r["classes"][1]] for r in rows], dtype=np.int64)


def _check_index(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def _overlaid_glyph(rng: np.random.Generator, cfg: SceneConfig) -> tuple[np.ndarray, int]:
    """Two training digits of different classes overlaid; labelled as the first, which a fair draw decides."""
    pool_x, pool_y, _ = _pool("train")
    a = int(rng.integers(len(pool_x)))
    b = int(rng.integers(len(pool_x)))
    while pool_y[b] == pool_y[a]:
        b = int(rng.integers(len(pool_x)))
    return _draw_glyph(rng, np.maximum(pool_x[a], pool_x[b]), cfg), int(pool_y[a])


def _ambiguous_glyph(rng: np.random.Generator, cfg: SceneConfig) -> tuple[np.ndarray, int]:
    """One ambiguous training digit drawn as usual, labelled with one of its two classes by a coin flip."""
    pool_x, _, _ = _pool("train")
    index, first, second = ambiguous_digits()[int(rng.integers(len(ambiguous_digits())))]
    glyph = _draw_glyph(rng, pool_x[index], cfg)
    return glyph, int(first if rng.random() < 0.5 else second)


def make_trap_scene(index: int, seed: int = 0, config: SceneConfig | None = None, kind: str = "overlaid") -> Scene:
    """Render trap scene ``index`` of ``kind``: 1-2 glyphs whose labels are a coin flip between two classes.

    The same arguments always give the same arrays; ``Scene.digits`` holds the labelled class of each glyph.
    """
    index, seed = _check_index("index", index), _check_index("seed", seed)
    if config is not None and not isinstance(config, SceneConfig):
        raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
    if kind not in TRAP_KINDS:
        raise ValueError(f"kind must be one of {TRAP_KINDS}, got {kind!r}")
    cfg = config or SceneConfig()
    rng = np.random.default_rng([seed, _TRAP_STREAM[kind], SPLITS["train"], index])
    size = cfg.size
    scene = Scene(np.zeros((size, size), np.float32), np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8))
    draw = _overlaid_glyph if kind == "overlaid" else _ambiguous_glyph
    for _ in range(int(rng.integers(1, 3))):
        glyph, label = draw(rng, cfg)
        _paste_glyph(scene, glyph, label, rng, cfg)
    return _add_noise(scene, rng, cfg)


def build_pool(
    pool_size: int, n_traps: int, seed: int = 0, config: SceneConfig | None = None, kinds: tuple[str, ...] = TRAP_KINDS
) -> Pool:
    """Return ``pool_size`` clean scenes (``DigitScenes("train", seed=seed)``), then ``n_traps`` trap scenes of each of ``kinds``."""
    for name, value in (("pool_size", pool_size), ("n_traps", n_traps), ("seed", seed)):
        _check_index(name, value)
    if not isinstance(kinds, tuple) or any(k not in TRAP_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be a tuple of distinct names from {TRAP_KINDS}, got {kinds!r}")
    clean = DigitScenes("train", pool_size, seed=seed, config=config)
    images, labels = [clean.images], [clean.labels]
    kind = [torch.zeros(pool_size, dtype=torch.long)]
    for name in (k for k in TRAP_KINDS if k in kinds):
        traps = [make_trap_scene(i, seed, config, name) for i in range(n_traps)]
        images += [torch.from_numpy(t.image)[None, None] for t in traps]
        labels += [torch.from_numpy(t.label.astype(np.int64))[None] for t in traps]
        kind.append(torch.full((n_traps,), 1 + TRAP_KINDS.index(name), dtype=torch.long))
    return Pool(torch.cat(images), torch.cat(labels), torch.cat(kind))
