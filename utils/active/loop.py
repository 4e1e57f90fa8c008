"""The pool-based loop: a start model, then rounds of scoring, labelling and fine-tuning, for every arm and seed."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..config import IGNORE_INDEX
from ..data import DigitScenes
from ..foreground import pixel_masks
from ..metrics import auroc
from ..models import UNet, forward_logits
from ..train import evaluate
from ..uncertainty import mc_dropout, single
from .config import ALConfig, arms, parse_arm
from .pool import TRAP_KINDS, Pool, build_pool
from .start import start_scenes
from .scores import MC_STRATEGIES, area_scores, pixel_uncertainty, scene_scores, select

__all__ = ["acquisition_stats", "boundary_share", "label_units", "ring_mask", "run", "start_auroc", "train_model"]

_SCORE_BATCH = 64  # fixed batch size of every prediction (MC-dropout masks depend on it)
_MAX_ROUNDS = 499  # seeds of a round are seed * 1000 + round (+ 500 for the areas' random numbers)


def train_model(
    images: torch.Tensor, labels: torch.Tensor, config: ALConfig, seed: int, init: UNet | None = None
) -> UNet:
    """Train on ``(images, labels)`` (255 = unlabelled) with AdamW and a one-cycle LR; seeded by ``seed`` alone; return it in eval mode.

    With ``init=None`` a fresh ``UNet(width, depth, dropout)`` trains for ``config.steps`` steps at
    ``config.lr``; otherwise a copy of ``init`` is fine-tuned for ``config.finetune_steps`` steps at
    ``config.finetune_lr`` (``init`` itself is not changed). The global RNG is left untouched.
    """
    if not isinstance(config, ALConfig):
        raise TypeError(f"config must be an ALConfig, got {type(config).__name__}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, 1, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(f"labels must have shape {tuple(images.shape[:1] + images.shape[2:])}")
    if ((labels != IGNORE_INDEX).flatten(1).sum(1) == 0).any():
        raise ValueError("labels: every scene must hold at least one labelled pixel")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if init is not None and not isinstance(init, UNet):
        raise TypeError(f"init must be None or a utils.models.UNet, got {type(init).__name__}")
    steps, lr = (config.steps, config.lr) if init is None else (config.finetune_steps, config.finetune_lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet(width=config.width, depth=config.depth, dropout=config.dropout) if init is None else copy.deepcopy(init)
        gen = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.15)
        order = torch.empty(0, dtype=torch.long)
        model.train()
        for _step in range(steps):
            while len(order) < config.batch_size:
                order = torch.cat([order, torch.randperm(len(images), generator=gen)])
            idx, order = order[: config.batch_size], order[config.batch_size :]
            loss = F.cross_entropy(forward_logits(model, images[idx]), labels[idx], ignore_index=IGNORE_INDEX)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    return model.eval()


def _test_scores(model: nn.Module, test: DigitScenes) -> dict[str, float]:
    scores = evaluate(model, test, batch_size=_SCORE_BATCH, device="cpu")
    conf = scores["confusion"]
    digit_pixel = float(conf[1:, 1:].diagonal().sum() / conf[1:].sum().clamp_min(1))
    return {"miou": round(float(scores["miou"]), 6), "digit_pixel_accuracy": round(digit_pixel, 6)}


# --------------------------------------------------------------------------------------------------
# pixel maps, random numbers and the labelling of units


def _pixel_maps(model: nn.Module, pool: Pool, strategies: set[str], scenes: torch.Tensor, config: ALConfig,
                seed: int) -> dict[str, torch.Tensor]:  # fmt: skip
    """Return ``{strategy: (N, H, W)}`` on the ``scenes`` (bool ``(N,)``; NaN elsewhere), predicted block by block of one kind."""
    size = pool.labels.shape[1:]
    maps = {s: torch.full((len(pool.kind), *size), float("nan")) for s in strategies}
    for kind, start, stop in pool.blocks():
        index = start + torch.nonzero(scenes[start:stop]).flatten()
        if len(index) == 0:
            continue
        images = pool.images[index]
        if strategies - set(MC_STRATEGIES):
            one = single(model, images, batch_size=_SCORE_BATCH, device="cpu")
            for s in strategies - set(MC_STRATEGIES):
                maps[s][index] = pixel_uncertainty(one, s)
        if strategies & set(MC_STRATEGIES):
            mc = mc_dropout(model, images, samples=config.mc_samples, batch_size=_SCORE_BATCH, device="cpu",
                            seed=seed * 10 + kind, keep_members="var_ratios" in strategies)  # fmt: skip
            for s in strategies & set(MC_STRATEGIES):
                maps[s][index] = pixel_uncertainty(mc, s)
    return maps


def _random_keys(pool: Pool, seed: int, per_scene: int) -> torch.Tensor:
    """Return seeded uniform numbers, one per unit ``(N * per_scene,)``, drawn block by block (the same for every arm)."""
    parts = [np.random.default_rng([seed, kind, per_scene]).random((stop - start) * per_scene)
             for kind, start, stop in pool.blocks()]  # fmt: skip
    return torch.from_numpy(np.concatenate(parts))


def label_units(units: torch.Tensor, shape: tuple[int, int, int], patch: int) -> torch.Tensor:
    """Return the pixel mask ``shape`` = ``(N, H, W)`` of the units ``units`` (ids ``scene * P + row * (W / patch) + col``)."""
    n, h, w = shape
    if h % patch or w % patch:
        raise ValueError(f"patch must divide the scene {h}x{w}, got {patch!r}")
    grid = torch.zeros(n * (h // patch) * (w // patch), dtype=torch.bool)
    grid[units] = True
    grid = grid.reshape(n, h // patch, w // patch)
    return grid.repeat_interleave(patch, 1).repeat_interleave(patch, 2)


def ring_mask(labels: torch.Tensor) -> torch.Tensor:
    """Return the background pixels next to a digit pixel (8-neighbourhood) ``(N, H, W)``, from labels ``(N, H, W)``."""
    digit = ((labels > 0) & (labels != IGNORE_INDEX)).float()
    near = F.max_pool2d(digit[:, None], 3, stride=1, padding=1)[:, 0] > 0
    return near & (labels == 0)


def boundary_share(pixel_map: torch.Tensor, labels: torch.Tensor, width: int = 1) -> tuple[float, float]:
    """Return ``(share of the map's mass on boundary pixels, share of pixels that are boundary)`` over scenes ``(N, H, W)``."""
    if not isinstance(pixel_map, torch.Tensor) or pixel_map.ndim != 3:
        raise ValueError(f"pixel_map must be a (N, H, W) tensor, got {getattr(pixel_map, 'shape', type(pixel_map))}")
    if not isinstance(labels, torch.Tensor) or labels.shape != pixel_map.shape:
        raise ValueError(f"labels must have the shape of pixel_map {tuple(pixel_map.shape)}")
    masks = pixel_masks(labels, ("all", "boundary"), width=width, ignore_index=IGNORE_INDEX)
    edge, counted = masks["boundary"], masks["all"]
    total = float((pixel_map * counted).sum())
    share = float((pixel_map * edge).sum()) / total if total > 0 else float("nan")
    return share, float(edge.sum()) / max(int(counted.sum()), 1)


def acquisition_stats(chosen: torch.Tensor, available: torch.Tensor, pixel_map: torch.Tensor, pool: Pool) -> dict[str, float | None]:
    """Return where the newly labelled pixels ``chosen`` ``(N, H, W)`` lie, and where the map that chose them puts its mass.

    ``trap_share``: share of the chosen pixels on trap scenes; ``pool_trap_share``: the same share
    among the ``available`` pixels before the choice (what a random choice takes on average);
    ``digit_share``: share of the chosen pixels that are digit pixels; ``mass_digit`` and
    ``mass_ring``: shares of ``pixel_map``'s mass over the chosen pixels on digit pixels and on the
    background ring next to them (:func:`ring_mask`; None where the map's mass there is zero), ``area_ring``
    the ring's share of the chosen pixels.
    """
    trap = pool.is_trap[:, None, None].expand_as(chosen)
    digit = (pool.labels > 0) & (pool.labels != IGNORE_INDEX)
    ring = ring_mask(pool.labels)
    n = int(chosen.sum())
    mass = float(pixel_map[chosen].double().sum())

    def share(mask: torch.Tensor) -> float | None:
        return round(float(pixel_map[chosen & mask].double().sum()) / mass, 6) if mass > 0 else None

    return {"trap_share": round(float((chosen & trap).sum()) / n, 6),
            "pool_trap_share": round(float((available & trap).sum()) / max(int(available.sum()), 1), 6),
            "digit_share": round(float((chosen & digit).sum()) / n, 6),
            "mass_digit": share(digit), "mass_ring": share(ring),
            "area_ring": round(float((chosen & ring).sum()) / n, 6)}  # fmt: skip


def start_auroc(maps: dict[str, torch.Tensor], pool: Pool, scored: torch.Tensor) -> dict[str, dict[str, float]]:
    """Return ``{trap kind: {strategy: AUROC}}``: how well each map's scene mean ranks that kind's trap scenes above the clean ones, among the ``scored`` scenes."""
    out = {}
    for code, kind in enumerate(TRAP_KINDS, start=1):
        keep = scored & ((pool.kind == 0) | (pool.kind == code))
        if bool((pool.kind[keep] == code).any()):
            out[kind] = {s: round(auroc(scene_scores(m[keep]), pool.kind[keep] == code), 6) for s, m in sorted(maps.items())}
    return out


# --------------------------------------------------------------------------------------------------
# one seed


def _training_set(pool: Pool, labelled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the scenes with any labelled pixel and their labels, 255 where not labelled."""
    scenes = labelled.flatten(1).any(1)
    labels = torch.where(labelled[scenes], pool.labels[scenes], torch.full_like(pool.labels[scenes], IGNORE_INDEX))
    return pool.images[scenes], labels


def _arm_rounds(arm: str, config: ALConfig, seed: int, pool: Pool, test: DigitScenes, model0: UNet,
                labelled0: torch.Tensor, first: dict[str, Any], maps0: dict[str, torch.Tensor],
                bar: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Run the rounds of one arm from the shared start; return its records (round 0 = the start)."""
    pool_name, unit, strategy = parse_arm(arm)
    per_scene = config.patches_per_scene(unit)
    patch = config.scene_size if unit == "scenes" else config.patch
    member = pool.members(pool_name)
    map_strategy = "least_confidence" if strategy == "random" else strategy
    labelled, model, records = labelled0.clone(), model0, [dict(first)]
    for rnd in range(1, config.rounds + 1):
        round_seed = seed * 1000 + rnd
        unlabelled = member & ~labelled.flatten(1).all(1)  # the pool's scenes with a unit left to label
        maps = maps0 if rnd == 1 else _pixel_maps(model, pool, {map_strategy}, unlabelled, config, round_seed)
        keys = _random_keys(pool, round_seed, per_scene)
        scores = keys if strategy == "random" else area_scores(torch.nan_to_num(maps[map_strategy]), patch).flatten().double()
        done = area_scores(labelled.double(), patch).flatten() > 0
        available_units = member.repeat_interleave(per_scene) & ~done
        chosen_units = select(scores, config.acquire * per_scene, available_units, tiebreak=keys)
        chosen = label_units(chosen_units, tuple(pool.labels.shape), patch)
        available = member[:, None, None] & ~labelled
        stats = acquisition_stats(chosen, available, torch.nan_to_num(maps[map_strategy]), pool)
        labelled |= chosen
        model = train_model(*_training_set(pool, labelled), config, round_seed, model)
        records.append({"round": rnd, "labelled_pixels": int(labelled.sum()),
                        "labelled_scenes": int(labelled.flatten(1).any(1).sum()), **_test_scores(model, test),
                        "acquired": sorted(chosen_units.tolist()), **stats})  # fmt: skip
        if bar is not None:
            bar.update()
    return records


def _control(config: ALConfig, seed: int, pool: Pool, test: DigitScenes, model0: UNet, labelled0: torch.Tensor,
             first: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Fine-tune the start model round after round on the start alone (no new labels): the steps' share of the curves."""
    model, records = model0, [{k: first[k] for k in ("round", "miou", "digit_pixel_accuracy")}]
    for rnd in range(1, config.rounds + 1):
        model = train_model(*_training_set(pool, labelled0), config, seed * 1000 + rnd, model)
        records.append({"round": rnd, **_test_scores(model, test)})
    return records


def _run_seed(config: ALConfig, seed: int, bar: Any = None, model0: UNet | None = None) -> dict[str, Any]:
    """Run every arm of ``config`` for one seed (from ``model0`` if given, else a start model trained here); return its results."""
    clock = time.perf_counter()
    pool = build_pool(config.pool_size, config.n_traps, seed, config.scene_config)  # every kind, whichever pools run
    test = DigitScenes("test", config.n_test, config=config.scene_config)
    start = start_scenes(config, seed)
    labelled0 = torch.zeros(pool.labels.shape, dtype=torch.bool)
    labelled0[start] = True
    if model0 is None:
        model0 = train_model(*_training_set(pool, labelled0), config, seed * 1000)  # as start.train_start
    first = {"round": 0, "labelled_pixels": int(labelled0.sum()), "labelled_scenes": config.initial,
             **_test_scores(model0, test), "acquired": start.tolist()}  # fmt: skip
    every = arms(config)
    needed = {"least_confidence" if parse_arm(a)[2] == "random" else parse_arm(a)[2] for a in every}
    in_pools = torch.stack([pool.members(p) for p in config.pools]).any(0) & ~labelled0.flatten(1).all(1)
    maps0 = _pixel_maps(model0, pool, needed, in_pools, config, seed * 1000 + 1)
    runs = {arm: _arm_rounds(arm, config, seed, pool, test, model0, labelled0, first, maps0, bar) for arm in every}
    control = _control(config, seed, pool, test, model0, labelled0, first)
    return {"runs": runs, "control": control, "start_auroc": start_auroc(maps0, pool, in_pools),
            "seconds": round(time.perf_counter() - clock, 1)}


def _seed_job(args: tuple[ALConfig, int]) -> dict[str, Any]:
    config, seed = args
    torch.set_num_threads(config.threads)
    return _run_seed(config, seed)


def run(
    config: ALConfig | None = None,
    seeds: tuple[int, ...] | list[int] = (0,),
    progress: bool = True,
    jobs: int = 1,
    on_seed: Callable[[int, dict[str, Any]], None] | None = None,
    start_models: dict[int, UNet] | None = None,
) -> dict[str, Any]:
    """Run every arm of ``config`` for every seed; return ``{"runs": {arm: {seed: records}}, "control", "start_auroc", "seconds": {seed: ...}}``.

    An arm (:func:`utils.active.config.arms`) is a pool, a unit and a strategy. Per seed, every arm
    starts from the same labelled start and the same start model, and in every round gets the same
    optimiser steps, random numbers and dropout masks, so the arms differ only in what they labelled.
    A record per round (round 0 = the start) holds the labelled pixels and scenes, the test mIoU and
    digit-pixel accuracy, the units acquired, and :func:`acquisition_stats`. ``control`` fine-tunes
    the start model on the start alone; ``start_auroc`` (:func:`start_auroc`) says how well the start
    model's scores find each kind of trap scene. Uses ``config.threads`` torch threads (restored afterwards);
    ``jobs > 1`` runs the seeds in that many processes (same numbers). ``on_seed(seed, result)`` is
    called as each seed finishes. ``start_models`` gives the start model of some seeds (e.g.
    :func:`utils.active.load_start`) instead of training it.
    """
    cfg = config or ALConfig()
    if not isinstance(cfg, ALConfig):
        raise TypeError(f"config must be an ALConfig, got {type(cfg).__name__}")
    if cfg.rounds > _MAX_ROUNDS:
        raise ValueError(f"config.rounds must be <= {_MAX_ROUNDS}, got {cfg.rounds}")
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative ints, got {seeds!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    start_models = {} if start_models is None else dict(start_models)
    if any(s not in seeds or not isinstance(m, UNet) for s, m in start_models.items()):
        raise ValueError("start_models must map seeds of the run to utils.models.UNet start models")
    out: dict[str, Any] = {"runs": {arm: {} for arm in arms(cfg)}, "control": {}, "start_auroc": {}, "seconds": {}}

    def collect(seed: int, result: dict[str, Any]) -> None:
        for arm, records in result["runs"].items():
            out["runs"][arm][str(seed)] = records
        for key in ("control", "start_auroc", "seconds"):
            out[key][str(seed)] = result[key]
        if on_seed is not None:
            on_seed(seed, result)

    if jobs > 1 and len(seeds) > 1 and not start_models:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(min(jobs, len(seeds))) as workers:
            done = workers.imap(_seed_job, [(cfg, s) for s in seeds])
            for seed, result in zip(seeds, tqdm(done, total=len(seeds), desc="seeds", disable=not progress)):
                collect(seed, result)
        return out
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with tqdm(total=len(seeds) * len(arms(cfg)) * cfg.rounds, desc="rounds", disable=not progress, mininterval=1.0) as bar:
            for seed in seeds:
                collect(seed, _run_seed(cfg, seed, bar, start_models.get(seed)))
    finally:
        torch.set_num_threads(threads)
    return out
