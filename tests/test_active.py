"""Tests of utils.active: acquisition scores on hand-made inputs, trap scenes, the loop's determinism and results files."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from utils import active
from utils.uncertainty import Predictive

#: A configuration that runs in about a second: 16x16 scenes, a 4-channel U-Net, 2 optimiser steps.
TINY = active.ALConfig(scene_size=16, pool_size=8, n_traps=2, n_test=4, initial=2, acquire=2, rounds=2, steps=2,
                       finetune_steps=2, width=4, mc_samples=2)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_runs():
    return active.run(TINY, [0, 1], progress=False)


# ------------------------------------------------------------------ acquisition scores


def _probs(max_soft: list[float], k: int = 3, hw: int = 2) -> torch.Tensor:
    """Scenes whose every pixel has max-softmax ``m`` on class 0 and the rest spread evenly."""
    out = []
    for m in max_soft:
        p = torch.full((k, hw, hw), (1 - m) / (k - 1))
        p[0] = m
        out.append(p)
    return torch.stack(out)


def test_least_confidence_picks_the_scene_with_the_lowest_mean_max_softmax():
    probs = _probs([0.9, 0.5, 0.99, 0.7])
    scores = active.least_confidence(probs)
    torch.testing.assert_close(scores, torch.tensor([0.1, 0.5, 0.01, 0.3]))
    chosen = active.select(scores, 1, torch.ones(4, dtype=torch.bool))
    assert chosen.tolist() == [1]


def test_scene_score_is_the_mean_over_pixels_not_the_max():
    probs = _probs([0.9, 0.9])
    probs[0, :, 0, 0] = torch.tensor([0.34, 0.33, 0.33])  # one very uncertain pixel
    probs[1] = _probs([0.6])[0]  # every pixel moderately uncertain
    # scene 0: mean of (0.66, 0.1, 0.1, 0.1) = 0.24 < scene 1: 0.4
    torch.testing.assert_close(active.least_confidence(probs), torch.tensor([0.24, 0.4]))


def test_predictive_entropy_matches_the_formula():
    probs = torch.softmax(torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0)), 1)
    brute = torch.tensor([sum(-float(p) * math.log(float(p)) for p in probs[n, :, i, j]) for n in range(3)
                          for i in range(5) for j in range(5)]).reshape(3, 25).mean(1)  # fmt: skip
    torch.testing.assert_close(active.predictive_entropy(probs), brute)


def test_bald_is_log2_for_two_confident_members_that_disagree_and_zero_when_they_agree():
    a = torch.zeros(1, 2, 1, 1)
    a[0, 0] = 1.0
    b = torch.zeros(1, 2, 1, 1)
    b[0, 1] = 1.0
    disagree = torch.stack([a, b])  # (T=2, N=1, K=2, 1, 1)
    torch.testing.assert_close(active.bald(disagree), torch.tensor([math.log(2)]))
    agree = torch.stack([_probs([0.6], k=2, hw=1)] * 3)
    torch.testing.assert_close(active.bald(agree), torch.tensor([0.0]))


def test_pixel_uncertainty_of_a_predictive_matches_the_scene_scores():
    g = torch.Generator().manual_seed(1)
    members = torch.softmax(torch.randn(4, 3, 5, 6, 6, generator=g), 2)
    pred = Predictive(members.mean(0), (-torch.special.xlogy(members, members).sum(2)).mean(0), 4)
    torch.testing.assert_close(active.scene_scores(active.pixel_uncertainty(pred, "bald")), active.bald(members))
    torch.testing.assert_close(active.scene_scores(active.pixel_uncertainty(pred, "entropy")),
                               active.predictive_entropy(members.mean(0)))  # fmt: skip
    torch.testing.assert_close(active.scene_scores(active.pixel_uncertainty(pred, "least_confidence")),
                               active.least_confidence(members.mean(0)))  # fmt: skip


def test_select_skips_labelled_scenes_and_breaks_ties_by_index():
    scores = torch.tensor([0.5, 0.9, 0.5, 0.9, 0.1])
    available = torch.tensor([True, False, True, True, True])
    assert active.select(scores, 3, available).tolist() == [3, 0, 2]


def test_boundary_share_on_a_hand_made_scene():
    labels = torch.zeros(1, 6, 6, dtype=torch.long)
    labels[0, :, 3:] = 2  # one vertical edge between columns 2 and 3: boundary = columns 2 and 3 (width 1)
    u = torch.zeros(1, 6, 6)
    u[0, :, 2] = 1.0  # all mass on the boundary column
    u[0, 0, 0] = 1.0  # one off-boundary pixel of equal weight
    share, area = active.boundary_share(u, labels)
    assert share == pytest.approx(6 / 7)
    assert area == pytest.approx(12 / 36)


# ------------------------------------------------------------------ trap scenes and the pool


def test_trap_scenes_are_deterministic_and_labelled_with_one_digit_per_glyph():
    cfg = TINY.scene_config
    a, b = active.make_trap_scene(3, config=cfg), active.make_trap_scene(3, config=cfg)
    assert (a.image == b.image).all() and (a.label == b.label).all() and a.digits == b.digits
    c = active.make_trap_scene(4, config=cfg)
    assert not (a.image == c.image).all()
    for scene in (a, c):
        present = set(scene.label[scene.label > 0].tolist())
        assert present <= {d + 1 for d in scene.digits}


def test_trap_glyph_labels_are_a_coin_flip_between_two_classes():
    # over many trap glyphs, the labelled class is the first of two different digits: both orders occur
    scenes = [active.make_trap_scene(i, config=TINY.scene_config) for i in range(40)]
    labels = [d for s in scenes for d in s.digits]
    assert len(set(labels)) >= 8  # every class can be the label


def test_build_pool_appends_the_traps():
    pool = active.build_pool(5, 3, config=TINY.scene_config)
    assert pool.images.shape == (8, 1, 16, 16) and pool.labels.shape == (8, 16, 16)
    assert pool.is_trap.tolist() == [False] * 5 + [True] * 3
    again = active.build_pool(5, 3, config=TINY.scene_config)
    assert torch.equal(pool.images, again.images)


# ------------------------------------------------------------------ the loop


def test_run_is_deterministic_and_leaves_threads_and_rng_alone(tiny_runs):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = active.run(TINY, [0, 1], progress=False)
    assert torch.rand(1) == before  # the global RNG was not consumed
    assert torch.get_num_threads() == threads
    assert again == tiny_runs


def test_fewer_rounds_and_seeds_repeat_the_first_rounds_of_a_longer_run(tiny_runs):
    short = active.run(replace(TINY, rounds=1, strategies=("random", "bald")), [1], progress=False)
    for strategy in ("random", "bald"):
        assert short[strategy]["1"] == tiny_runs[strategy]["1"][:2]


def test_jobs_give_the_same_numbers(tiny_runs):
    assert active.run(TINY, [0, 1], progress=False, jobs=2) == tiny_runs


def test_fine_tuning_leaves_the_initial_model_unchanged():
    pool = active.build_pool(4, 0, config=TINY.scene_config)
    model = active.train_model(pool.images, pool.labels, TINY, 0)
    state = copy.deepcopy(model.state_dict())
    tuned = active.train_model(pool.images, pool.labels, TINY, 1, init=model)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not all(torch.equal(state[k], v) for k, v in tuned.state_dict().items())


def test_runs_record_what_they_acquired(tiny_runs):
    n_pool = TINY.pool_size + TINY.n_traps
    for strategy, per_seed in tiny_runs.items():
        for records in per_seed.values():
            chosen = [i for r in records for i in r["acquired"]]
            assert len(chosen) == len(set(chosen)) == TINY.initial + TINY.rounds * TINY.acquire
            assert all(0 <= i < n_pool for i in chosen)
            assert records[-1]["traps_labelled"] == sum(i >= TINY.pool_size for i in chosen)


# ------------------------------------------------------------------ results files


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("al") / "tiny.json"
    argv = ["--out", str(path), "--seeds", "0", "1", "--quiet", "--scene-size", "16", "--pool-size", "8",
            "--n-traps", "2", "--n-test", "4", "--initial", "2", "--acquire", "2", "--rounds", "2", "--steps", "2",
            "--finetune-steps", "2", "--width", "4", "--mc-samples", "2"]  # fmt: skip
    assert active.main(argv) == 0
    return path


def test_the_cli_writes_a_valid_results_file(tiny_file, tiny_runs):
    results = active.load_results(tiny_file)
    assert results["command"].startswith("python -m utils.active --out ")
    assert results["machine"]["threads"] == 1 and results["machine"]["torch"] == torch.__version__
    assert results["seeds"] == [0, 1] and results["wall_time_s"] > 0 and results["date"][:2] == "20"
    assert results["config"] == json.loads(json.dumps(asdict(TINY)))
    assert results["runs"] == json.loads(json.dumps(tiny_runs))
    assert active.curves(results)["bald"].shape == (2, TINY.rounds + 1)


@pytest.mark.parametrize("corrupt", ["drop_key", "traps", "labelled", "rounds", "share", "seed", "threads"])
def test_check_results_rejects_inconsistent_files(tiny_file, corrupt):
    results = json.loads(tiny_file.read_text())
    rec = results["runs"]["entropy"]["1"]
    if corrupt == "drop_key":
        del results["machine"]
    elif corrupt == "traps":
        rec[1]["traps_picked"] += 1
    elif corrupt == "labelled":
        rec[2]["labelled"] += 1
    elif corrupt == "rounds":
        rec.pop()
    elif corrupt == "share":
        rec[0]["boundary_share"] = 0.5
    elif corrupt == "seed":
        del results["runs"]["entropy"]["1"]
    else:
        results["machine"]["threads"] = 2
    with pytest.raises(ValueError):
        active.check_results(results)


def test_the_shipped_results_are_valid_and_complete():
    results = active.load_results()
    assert set(results["strategies"]) == set(active.STRATEGIES)
    assert len(results["seeds"]) >= 3
    assert results["command"].startswith("python -m utils.active --out ")
    assert results["machine"]["threads"] == results["config"]["threads"] == 1
    cfg = active.ALConfig(**{k: tuple(v) if k == "strategies" else v for k, v in results["config"].items()})
    for strategy in active.STRATEGIES:
        for seed in results["seeds"]:
            assert results["runs"][strategy][str(seed)][-1]["labelled"] == cfg.initial + cfg.rounds * cfg.acquire


def test_replay_table_of_a_run_against_itself_has_no_gaps(tiny_runs, tiny_file):
    results = active.load_results(tiny_file)
    table = active.replay_table(tiny_runs, results)
    assert len(table) == len(TINY.strategies) * 2 * (TINY.rounds + 1)
    assert (table["gap"] == 0).all() and (table["same_scenes"] == table["acquired"]).all()
    assert (table["traps"] == table["traps_shipped"]).all()


def test_replay_table_measures_gaps_and_overlap(tiny_runs, tiny_file):
    results = json.loads(tiny_file.read_text())
    rec = results["runs"]["entropy"]["1"][1]
    rec["miou"] += 0.01
    rec["digit_pixel_accuracy"] -= 0.03
    rec["acquired"] = [rec["acquired"][0]] + [-1] * (len(rec["acquired"]) - 1)  # one scene in common
    table = active.replay_table(tiny_runs, results).set_index(["strategy", "seed", "round"])
    row = table.loc[("entropy", 1, 1)]
    assert row["gap"] == pytest.approx(0.03) and row["same_scenes"] == 1
    assert (table.drop(index=("entropy", 1, 1))["gap"] == 0).all()
    with pytest.raises(ValueError, match="seed"):
        active.replay_table({"entropy": {"7": tiny_runs["entropy"]["1"]}}, results)
    with pytest.raises(TypeError):
        active.replay_table(tiny_runs, {"no": "runs"})


def test_the_replay_tolerance_exceeds_every_measured_kernel_set_gap():
    """The chapter's replay tolerance is at least 1.5 times the largest gap measured under other kernel sets."""
    measured = active.replay_kernels()
    assert len(measured["sets"]) >= 4 and "native" in measured["sets"]
    assert measured["results_date"] == active.load_results()["date"], "rerun tools/kernel_sets.py for the new results file"
    largest = max(max(m["miou_gap"], m["accuracy_gap"]) for m in measured["sets"].values())
    assert 1.5 * largest <= active.REPLAY_TOLERANCE
    assert len({m["kernels"] for m in measured["sets"].values()}) == len(measured["sets"])


def test_results_record_the_kernel_set(tiny_file):
    assert active.load_results(tiny_file)["machine"]["kernels"].startswith("ATen ")


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"n_traps": -1}, {"rounds": 100}, {"dropout": 0.0}, {"lr": 0.0}, {"strategies": ("greedy",)},
     {"strategies": ("bald", "bald")}, {"scene_size": 18}, {"width": True}],
)  # fmt: skip
def test_bad_configurations_raise(kwargs):
    with pytest.raises(ValueError):
        active.ALConfig(**kwargs)


def test_bad_arguments_raise():
    probs = _probs([0.9, 0.5])
    with pytest.raises(ValueError, match="probs"):
        active.least_confidence(probs * 2)  # not probabilities
    with pytest.raises(ValueError, match="probs"):
        active.predictive_entropy(probs[0])
    with pytest.raises(TypeError, match="probs"):
        active.least_confidence(probs.numpy())
    with pytest.raises(ValueError, match="T >= 2"):
        active.bald(probs[None])
    with pytest.raises(ValueError, match="k must"):
        active.select(torch.rand(3), 3, torch.tensor([True, True, False]))
    with pytest.raises(ValueError, match="available"):
        active.select(torch.rand(3), 1, torch.ones(3))
    with pytest.raises(ValueError, match="strategy"):
        active.pixel_uncertainty(Predictive(probs, torch.zeros(2, 2, 2), 1), "random")
    with pytest.raises(ValueError, match="bald needs"):
        active.pixel_uncertainty(Predictive(probs, torch.zeros(2, 2, 2), 1), "bald")
    with pytest.raises(ValueError, match="index"):
        active.make_trap_scene(-1)
    with pytest.raises(ValueError, match="seeds"):
        active.run(TINY, [0, 0], progress=False)
    with pytest.raises(ValueError, match="jobs"):
        active.run(TINY, [0], progress=False, jobs=0)
    with pytest.raises(TypeError, match="config"):
        active.run({"rounds": 1}, [0], progress=False)
    with pytest.raises(ValueError, match="key"):
        active.curves({"runs": {}, "seeds": []}, "acquired")
    with pytest.raises(FileNotFoundError):
        active.load_results("/nonexistent/al.json")


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert active.main(["--out", str(tmp_path / "x.json"), "--initial", "0"]) == 2
    assert "initial" in capsys.readouterr().err
    assert active.main(["--out", str(tmp_path / "x.json"), "--seeds", "1", "1"]) == 2
    assert not (tmp_path / "x.json").exists()


def test_summaries_of_a_results_file(tiny_file):
    results = active.load_results(tiny_file)
    assert active.config_of(results) == TINY
    table = active.summarise(results)
    assert list(table.index) == list(TINY.strategies)
    miou = active.curves(results, "miou")["bald"][:, -1]
    assert table.loc["bald", "miou"] == pytest.approx(miou.mean())
    assert table.loc["bald", "miou_min"] == pytest.approx(miou.min())
    traps = active.curves(results, "traps_labelled")["entropy"]
    assert table.loc["entropy", "traps"] == pytest.approx((traps[:, -1] - traps[:, 0]).mean())
    reach = active.labels_to_reach(results, -1.0)  # every seed reaches it at the start
    assert all((v == TINY.initial).all() for v in reach.values())
    never = active.labels_to_reach(results, 2.0)  # no mIoU reaches 2
    assert all(np.isnan(v).all() for v in never.values())
