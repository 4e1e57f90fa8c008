"""Retrain seed 0's start model of the shipped results file and save it for chapter 10's replay.

Usage (from the repository root, on the machine that made the results file)::

    python -m utils.active.save_start --out utils/results/active_start_seed0.pt

trains seed 0's start model exactly as :func:`utils.active.run` did (same configuration, one thread)
and saves its float32 weights with the configuration and the results file's date
(:func:`utils.active.save_start`); it refuses to save a model whose test mIoU differs from the file's
round 0, which happens on another machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..data import DigitScenes
from .loop import _test_scores
from .results import RESULTS_FILE, config_of, load_results
from .start import save_start, train_start

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: retrain seed 0's start model of the shipped results and save it."""
    p = argparse.ArgumentParser(prog="python -m utils.active.save_start", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--results", type=Path, default=RESULTS_FILE)
    args = p.parse_args(argv)
    results = load_results(args.results)
    cfg, seed = config_of(results), 0
    torch.set_num_threads(cfg.threads)
    model = train_start(cfg, seed)
    score = _test_scores(model, DigitScenes("test", cfg.n_test, config=cfg.scene_config))
    shipped = results["runs"][results["arms"][0]][str(seed)][0]
    if score["miou"] != shipped["miou"]:
        print(f"error: the retrained start scores mIoU {score['miou']}, the results file {shipped['miou']}: "
              "run this on the machine that made the file", file=sys.stderr)  # fmt: skip
        return 1
    save_start(model, args.out, cfg, seed, results["date"])
    print(f"wrote {args.out}: seed {seed}'s start model, test mIoU {score['miou']} as in the file ({cfg.steps} steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
