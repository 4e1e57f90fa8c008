"""Active learning on DigitScenes: which scenes, or which areas of them, to label next, chosen by five acquisition scores.

Usage (from the repository root)::

    python -m utils.active --out utils/results/active_learning.json --seeds 0 1 2

runs the pool-based experiment of chapter 10 and writes a JSON results file that records the
command, seeds, configuration, machine, wall time and date beside every round's numbers.

The experiment (:func:`run`) crosses three things, each called an *arm* ``pool/unit/strategy``:

* the **pool** of unlabelled scenes (:mod:`utils.active.pool`): clean DigitScenes training scenes
  alone (``"clean"``), or with trap scenes whose labels are a coin flip between two classes, either
  two digits overlaid into one glyph (``"overlaid"``: ambiguous and novel) or one ordinary digit that
  the course's ensemble finds ambiguous (``"ambiguous"``);
* the **unit** of labelling: whole ``"scenes"``, or square ``"areas"`` of ``patch`` pixels, the rest
  of their scene left unlabelled (ignored by the loss), at the same number of labelled pixels;
* the **strategy** (:mod:`utils.active.scores`), the mean over the unit of a pixel map: ``"random"``
  (seeded random numbers), ``"least_confidence"`` (``1 - max softmax``, the practitioner's low-softmax
  areas), ``"entropy"`` (predictive entropy), ``"bald"`` (mutual information of MC dropout; Houlsby
  et al. 2011, Gal, Islam & Ghahramani 2017) and ``"var_ratios"`` (variation ratio ``1 - f_mode / T``
  of the MC-dropout samples' labels; Gal et al. 2017).

Per seed, every arm starts from the same labelled start (clean scenes drawn at random) and the same
start model, trained from scratch on it; then each round it scores its pool with its previous model,
labels its top units, and fine-tunes the previous model on everything it has labelled. Every arm
gets the same optimiser steps, random numbers and dropout masks in a round, so the arms of one seed
differ only in what they labelled (a paired design: :mod:`utils.active.analysis`).

Everything runs on the CPU with ``threads`` torch threads (1 by default, restored afterwards), so on
one machine the numbers are the same on any number of cores: a run with fewer rounds, seeds or arms
repeats the records it shares with a longer one exactly. Across machines they are not: the CPU's
kernel set (:func:`utils.config.kernel_set`) changes the last bits of every step, and training grows
them into a different model. :func:`replay_table` compares a live run with a results file made
elsewhere, within :data:`REPLAY_TOLERANCE`.
"""

from __future__ import annotations

from .analysis import (
    bootstrap_mean,
    comparisons,
    minimum_detectable_effect,
    paired,
    paired_table,
    seeds_needed,
    sign_counts,
)
from .config import POOLS, STRATEGIES, UNITS, ALConfig, arm_name, arms, parse_arm
from .loop import acquisition_stats, boundary_share, label_units, ring_mask, run, start_auroc, train_model
from .pool import AMBIGUOUS_FILE, TRAP_KINDS, Pool, ambiguous_digits, build_pool, make_trap_scene
from .results import (
    REPLAY_ARMS,
    REPLAY_KERNELS_FILE,
    REPLAY_TOLERANCE,
    RESULTS_FILE,
    check_results,
    config_of,
    control_curves,
    curves,
    final,
    load_results,
    replay_config,
    replay_kernels,
    replay_table,
    start_aurocs,
)
from .start import START_FILE, load_start, save_start, start_scenes, train_start
from .scores import (
    area_scores,
    bald,
    least_confidence,
    pixel_uncertainty,
    predictive_entropy,
    scene_scores,
    select,
    var_ratios,
    variation_ratio_map,
)

__all__ = [
    "AMBIGUOUS_FILE",
    "POOLS",
    "REPLAY_ARMS",
    "REPLAY_KERNELS_FILE",
    "REPLAY_TOLERANCE",
    "RESULTS_FILE",
    "START_FILE",
    "STRATEGIES",
    "TRAP_KINDS",
    "UNITS",
    "ALConfig",
    "Pool",
    "acquisition_stats",
    "ambiguous_digits",
    "area_scores",
    "arm_name",
    "arms",
    "bald",
    "bootstrap_mean",
    "boundary_share",
    "build_pool",
    "check_results",
    "comparisons",
    "config_of",
    "control_curves",
    "curves",
    "final",
    "label_units",
    "least_confidence",
    "load_start",
    "load_results",
    "make_trap_scene",
    "minimum_detectable_effect",
    "paired",
    "paired_table",
    "parse_arm",
    "pixel_uncertainty",
    "predictive_entropy",
    "replay_config",
    "replay_kernels",
    "replay_table",
    "ring_mask",
    "run",
    "save_start",
    "scene_scores",
    "seeds_needed",
    "select",
    "sign_counts",
    "start_auroc",
    "start_aurocs",
    "start_scenes",
    "train_model",
    "train_start",
    "var_ratios",
    "variation_ratio_map",
]
