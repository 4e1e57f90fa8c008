"""The experiment's names and sizes: strategies, pools, acquisition units, and the validated configuration."""

from __future__ import annotations

from dataclasses import dataclass

from ..data import SceneConfig

__all__ = ["POOLS", "STRATEGIES", "UNITS", "ALConfig", "arm_name", "arms", "parse_arm"]

#: The acquisition strategies, in the order the chapter reports them.
STRATEGIES: tuple[str, ...] = ("random", "least_confidence", "entropy", "bald", "var_ratios")
#: The unlabelled pools: clean scenes alone, or with trap scenes of one kind (:mod:`utils.active.pool`).
POOLS: tuple[str, ...] = ("clean", "overlaid", "ambiguous")
#: What one acquisition labels: whole scenes, or square areas of ``patch`` pixels (the rest of the scene unlabelled).
UNITS: tuple[str, ...] = ("scenes", "areas")


def _positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _names(name: str, value: object, allowed: tuple[str, ...], empty: bool = False) -> tuple[str, ...]:
    names = tuple(value) if isinstance(value, (tuple, list)) else None
    if names is None or (not names and not empty) or any(n not in allowed for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{name} must be distinct names from {allowed}, got {value!r}")
    return names


@dataclass(frozen=True)
class ALConfig:
    """The experiment's sizes and training recipe; every field is validated on construction."""

    scene_size: int = 32  # side of the scenes (digits 0.375-0.625 of it tall, 1-3 per scene)
    pool_size: int = 400  # clean training scenes; the labelled start is drawn from them
    n_traps: int = 60  # trap scenes of each kind; a trap pool holds the clean scenes and one kind
    n_test: int = 200  # clean test scenes that score every round
    initial: int = 100  # labelled start: clean scenes drawn at random, shared by every arm
    acquire: int = 50  # pixels labelled per round, in scenes' worth (acquire * scene_size**2 pixels)
    rounds: int = 2
    patch: int = 8  # side of one area of the "areas" unit
    steps: int = 1500  # optimiser steps of the start model (from scratch, on the labelled start)
    finetune_steps: int = 150  # optimiser steps of each round (fine-tuning the previous round's model)
    batch_size: int = 16
    lr: float = 1e-2
    finetune_lr: float = 1e-2
    width: int = 16
    depth: int = 2
    dropout: float = 0.2
    mc_samples: int = 8  # MC-dropout passes for BALD and variation ratios
    threads: int = 1
    pools: tuple[str, ...] = POOLS
    strategies: tuple[str, ...] = STRATEGIES  # run on whole scenes in every pool
    area_strategies: tuple[str, ...] = ("random", "least_confidence", "bald")  # also run on areas in every pool

    def __post_init__(self) -> None:
        for name in ("scene_size", "pool_size", "n_test", "initial", "acquire", "rounds", "patch", "steps",
                     "finetune_steps", "batch_size", "width", "depth", "mc_samples", "threads"):  # fmt: skip
            _positive_int(name, getattr(self, name))
        _positive_int("n_traps", self.n_traps, 0)
        if self.initial >= self.pool_size:
            raise ValueError(f"initial must be below pool_size, got initial={self.initial}, pool_size={self.pool_size}")
        if self.rounds * self.acquire > self.pool_size - self.initial:
            raise ValueError(f"rounds * acquire = {self.rounds * self.acquire} exceeds the unlabelled clean scenes "
                             f"(pool_size - initial = {self.pool_size - self.initial})")  # fmt: skip
        if not 0.0 < self.dropout < 1.0:
            raise ValueError(f"dropout must be in (0, 1) (BALD and variation ratios need MC dropout), got {self.dropout!r}")
        if self.scene_size < 16 or self.scene_size % 2**self.depth:
            raise ValueError(f"scene_size must be >= 16 and divisible by 2**depth, got {self.scene_size!r}")
        if self.scene_size % self.patch:
            raise ValueError(f"patch must divide scene_size {self.scene_size}, got {self.patch!r}")
        if not self.lr > 0 or not self.finetune_lr > 0:
            raise ValueError(f"lr and finetune_lr must be > 0, got {self.lr!r}, {self.finetune_lr!r}")
        object.__setattr__(self, "pools", _names("pools", self.pools, POOLS))
        object.__setattr__(self, "strategies", _names("strategies", self.strategies, STRATEGIES))
        object.__setattr__(self, "area_strategies", _names("area_strategies", self.area_strategies, STRATEGIES, empty=True))
        if self.n_traps == 0 and self.pools != ("clean",):
            raise ValueError(f"pools {self.pools} need trap scenes: n_traps must be >= 1, or pools=('clean',)")

    @property
    def scene_config(self) -> SceneConfig:
        """The :class:`utils.data.SceneConfig` of the pool, trap and test scenes."""
        return SceneConfig(size=self.scene_size, scale=(0.375 * self.scene_size, 0.625 * self.scene_size), max_digits=3)

    def patches_per_scene(self, unit: str) -> int:
        """Return how many acquisition units one scene holds: 1 for ``"scenes"``, ``(scene_size / patch)**2`` for ``"areas"``."""
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        return 1 if unit == "scenes" else (self.scene_size // self.patch) ** 2


def arm_name(pool: str, unit: str, strategy: str) -> str:
    """Return the key of one arm of the experiment, e.g. ``"overlaid/areas/least_confidence"``."""
    for name, value, allowed in (("pool", pool, POOLS), ("unit", unit, UNITS), ("strategy", strategy, STRATEGIES)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return f"{pool}/{unit}/{strategy}"


def parse_arm(name: str) -> tuple[str, str, str]:
    """Return ``(pool, unit, strategy)`` of an arm key made by :func:`arm_name`."""
    parts = name.split("/") if isinstance(name, str) else []
    if len(parts) != 3:
        raise ValueError(f"name must be an arm key 'pool/unit/strategy', got {name!r}")
    arm_name(*parts)
    return parts[0], parts[1], parts[2]


def arms(config: ALConfig) -> list[str]:
    """Return every arm of ``config``: each pool with its scene strategies, then its area strategies."""
    if not isinstance(config, ALConfig):
        raise TypeError(f"config must be an ALConfig, got {type(config).__name__}")
    return [arm_name(pool, unit, s) for pool in config.pools
            for unit, strategies in (("scenes", config.strategies), ("areas", config.area_strategies)) for s in strategies]  # fmt: skip
