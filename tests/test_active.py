"""Tests of utils.active: scores and units on hand-made inputs, trap scenes, the loop's pairing and determinism, results files, paired analysis."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from scipy import stats

from utils import active
from utils.active import ambiguous, cli
from utils.active.loop import _random_keys
from utils.uncertainty import Predictive

#: A configuration that runs in seconds: 16x16 scenes, a 4-channel U-Net, 2 optimiser steps, two pools.
TINY = active.ALConfig(scene_size=16, pool_size=10, n_traps=3, n_test=4, initial=2, acquire=2, rounds=2, patch=8, steps=2,
                       finetune_steps=2, width=4, mc_samples=2, pools=("clean", "overlaid"),
                       strategies=("random", "least_confidence", "bald", "var_ratios"),
                       area_strategies=("random", "least_confidence"))  # fmt: skip
TINY_ARGS = ["--scene-size", "16", "--pool-size", "10", "--n-traps", "3", "--n-test", "4", "--initial", "2", "--acquire", "2",
             "--rounds", "2", "--steps", "2", "--finetune-steps", "2", "--width", "4", "--mc-samples", "2",
             "--pools", "clean", "overlaid", "--strategies", "random", "least_confidence", "bald", "var_ratios",
             "--area-strategies", "random", "least_confidence"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_runs():
    return active.run(TINY, [0, 1], progress=False)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("al") / "tiny.json"
    assert cli.main(["--out", str(path), "--seeds", "0", "1", "--quiet", *TINY_ARGS]) == 0
    return path


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
    scores = active.least_confidence(_probs([0.9, 0.5, 0.99, 0.7]))
    torch.testing.assert_close(scores, torch.tensor([0.1, 0.5, 0.01, 0.3]))
    assert active.select(scores, 1, torch.ones(4, dtype=torch.bool)).tolist() == [1]


def test_scene_score_is_the_mean_over_pixels_not_the_max():
    probs = _probs([0.9, 0.9])
    probs[0, :, 0, 0] = torch.tensor([0.34, 0.33, 0.33])  # one very uncertain pixel
    probs[1] = _probs([0.6])[0]  # every pixel moderately uncertain
    torch.testing.assert_close(active.least_confidence(probs), torch.tensor([0.24, 0.4]))


def test_predictive_entropy_matches_the_formula():
    probs = torch.softmax(torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0)), 1)
    brute = torch.tensor([sum(-float(p) * math.log(float(p)) for p in probs[n, :, i, j]) for n in range(3)
                          for i in range(5) for j in range(5)]).reshape(3, 25).mean(1)  # fmt: skip
    torch.testing.assert_close(active.predictive_entropy(probs), brute)


def test_bald_is_log2_for_two_confident_members_that_disagree_and_zero_when_they_agree():
    a, b = torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1)
    a[0, 0], b[0, 1] = 1.0, 1.0
    torch.testing.assert_close(active.bald(torch.stack([a, b])), torch.tensor([math.log(2)]))
    torch.testing.assert_close(active.bald(torch.stack([_probs([0.6], k=2, hw=1)] * 3)), torch.tensor([0.0]))


def test_variation_ratio_is_one_minus_the_modes_share_of_the_samples_labels():
    # 4 samples of one pixel, 3 classes: argmax 0, 0, 1, 2 -> mode 0 twice -> 1 - 2/4
    onehot = torch.eye(3)[[0, 0, 1, 2]] * 0.8 + 0.2 / 3
    members = onehot[:, None, :, None, None]  # (T=4, N=1, K=3, 1, 1)
    torch.testing.assert_close(active.variation_ratio_map(members), torch.tensor([[[0.5]]]))
    torch.testing.assert_close(active.var_ratios(members), torch.tensor([0.5]))
    agree = torch.eye(3)[[1, 1, 1, 1]][:, None, :, None, None] * 0.9 + 0.1 / 3
    torch.testing.assert_close(active.var_ratios(agree), torch.tensor([0.0]))


def test_pixel_uncertainty_of_a_predictive_matches_the_scene_scores():
    members = torch.softmax(torch.randn(4, 3, 5, 6, 6, generator=torch.Generator().manual_seed(1)), 2)
    pred = Predictive(members.mean(0), (-torch.special.xlogy(members, members).sum(2)).mean(0), 4, members)
    for strategy, direct in (("bald", active.bald(members)), ("var_ratios", active.var_ratios(members)),
                             ("entropy", active.predictive_entropy(members.mean(0))),
                             ("least_confidence", active.least_confidence(members.mean(0)))):  # fmt: skip
        torch.testing.assert_close(active.scene_scores(active.pixel_uncertainty(pred, strategy)), direct)


def test_area_scores_average_each_patch_row_by_row():
    pixel_map = torch.arange(16.0).reshape(1, 4, 4)
    torch.testing.assert_close(active.area_scores(pixel_map, 2), torch.tensor([[2.5, 4.5, 10.5, 12.5]]))
    torch.testing.assert_close(active.area_scores(pixel_map, 4), active.scene_scores(pixel_map)[:, None])


def test_select_skips_unavailable_units_and_breaks_ties_by_the_tiebreak_then_the_index():
    scores = torch.tensor([0.5, 0.9, 0.5, 0.9, 0.1])
    available = torch.tensor([True, False, True, True, True])
    assert active.select(scores, 3, available).tolist() == [3, 0, 2]
    assert active.select(scores, 3, available, tiebreak=torch.tensor([0.1, 0.0, 0.9, 0.0, 0.0])).tolist() == [3, 2, 0]


def test_label_units_marks_the_patches_of_their_ids():
    mask = active.label_units(torch.tensor([1, 6]), (2, 4, 4), 2)  # scene 0 top-right, scene 1 bottom-left
    expected = torch.zeros(2, 4, 4, dtype=torch.bool)
    expected[0, :2, 2:] = True
    expected[1, 2:, :2] = True
    assert torch.equal(mask, expected)


def test_ring_mask_is_the_background_next_to_digits():
    labels = torch.zeros(1, 5, 5, dtype=torch.long)
    labels[0, 2, 2] = 3
    ring = active.ring_mask(labels)
    assert int(ring.sum()) == 8 and not ring[0, 2, 2] and ring[0, 1, 1] and not ring[0, 0, 0]


def test_acquisition_stats_on_a_hand_made_pool():
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[1, 1, 1] = 5  # scene 1 (a trap) holds one digit pixel
    pool = active.Pool(torch.zeros(2, 1, 4, 4), labels, torch.tensor([0, 1]))
    chosen = torch.zeros(2, 4, 4, dtype=torch.bool)
    chosen[1, :2, :2] = True  # 4 pixels of the trap: the digit pixel and 3 ring pixels
    available = torch.ones(2, 4, 4, dtype=torch.bool)
    pixel_map = torch.zeros(2, 4, 4)
    pixel_map[1, 1, 1], pixel_map[1, 0, 0] = 3.0, 1.0
    got = active.acquisition_stats(chosen, available, pixel_map, pool)
    assert got == {"trap_share": 1.0, "pool_trap_share": 0.5, "digit_share": 0.25, "mass_digit": 0.75, "mass_ring": 0.25,
                   "area_ring": 0.75}  # fmt: skip
    assert active.acquisition_stats(chosen, available, torch.zeros(2, 4, 4), pool)["mass_digit"] is None


def test_boundary_share_on_a_hand_made_scene():
    labels = torch.zeros(1, 6, 6, dtype=torch.long)
    labels[0, :, 3:] = 2  # one vertical edge: boundary = columns 2 and 3 (width 1)
    u = torch.zeros(1, 6, 6)
    u[0, :, 2] = 1.0
    u[0, 0, 0] = 1.0
    share, area = active.boundary_share(u, labels)
    assert share == pytest.approx(6 / 7) and area == pytest.approx(12 / 36)


# ------------------------------------------------------------------ trap scenes and the pool


@pytest.mark.parametrize("kind", active.TRAP_KINDS)
def test_trap_scenes_are_deterministic_and_labelled_with_one_digit_per_glyph(kind):
    cfg = TINY.scene_config
    a, b = active.make_trap_scene(3, config=cfg, kind=kind), active.make_trap_scene(3, config=cfg, kind=kind)
    assert (a.image == b.image).all() and (a.label == b.label).all() and a.digits == b.digits
    c = active.make_trap_scene(4, config=cfg, kind=kind)
    assert not (a.image == c.image).all()
    for scene in (a, c):
        assert set(scene.label[scene.label > 0].tolist()) <= {d + 1 for d in scene.digits}


def test_overlaid_trap_labels_are_a_coin_flip_between_two_classes():
    labels = [d for i in range(40) for d in active.make_trap_scene(i, config=TINY.scene_config).digits]
    assert len(set(labels)) >= 8  # every class can be the label


def test_ambiguous_traps_are_listed_digits_labelled_with_either_of_their_two_classes():
    listed = active.ambiguous_digits()
    assert listed.shape == (20, 3) and (listed[:, 1] != listed[:, 2]).all()
    scenes = [active.make_trap_scene(i, config=TINY.scene_config, kind="ambiguous") for i in range(60)]
    labels = [d for s in scenes for d in s.digits]
    assert set(labels) <= set(listed[:, 1:].flatten().tolist()) and len(set(labels)) >= 4


def test_most_ambiguous_orders_by_the_second_probability():
    probs = torch.tensor([[0.9, 0.1] + [0.0] * 8, [0.5, 0.5] + [0.0] * 8, [0.0, 0.3, 0.7] + [0.0] * 7])
    rows = ambiguous.most_ambiguous(probs, 2)
    assert [r["index"] for r in rows] == [1, 2] and rows[1]["classes"] == [2, 1] and rows[0]["probs"] == [0.5, 0.5]
    with pytest.raises(ValueError, match="count"):
        ambiguous.most_ambiguous(probs, 4)


def test_build_pool_lays_out_clean_then_each_trap_kind():
    pool = active.build_pool(5, 3, config=TINY.scene_config)
    assert pool.images.shape == (11, 1, 16, 16) and pool.labels.shape == (11, 16, 16)
    assert pool.kind.tolist() == [0] * 5 + [1] * 3 + [2] * 3
    assert pool.blocks() == [(0, 0, 5), (1, 5, 8), (2, 8, 11)]
    assert pool.members("overlaid").tolist() == [True] * 8 + [False] * 3
    assert pool.members("clean").sum() == 5 and pool.is_trap.sum() == 6
    assert torch.equal(pool.images, active.build_pool(5, 3, config=TINY.scene_config).images)


# ------------------------------------------------------------------ the loop


def test_run_is_deterministic_and_leaves_threads_and_rng_alone(tiny_runs):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = active.run(TINY, [0, 1], progress=False)
    assert torch.rand(1) == before
    assert torch.get_num_threads() == threads
    assert again["runs"] == tiny_runs["runs"] and again["control"] == tiny_runs["control"]


def test_fewer_rounds_seeds_and_arms_repeat_the_records_of_a_longer_run(tiny_runs):
    short = active.run(replace(TINY, rounds=1, pools=("overlaid",), strategies=("random", "least_confidence"),
                               area_strategies=()), [1], progress=False)  # fmt: skip
    assert sorted(short["runs"]) == ["overlaid/scenes/least_confidence", "overlaid/scenes/random"]
    for arm, per_seed in short["runs"].items():
        assert per_seed["1"] == tiny_runs["runs"][arm]["1"][:2]


def test_jobs_give_the_same_numbers(tiny_runs):
    assert active.run(TINY, [0, 1], progress=False, jobs=2)["runs"] == tiny_runs["runs"]


def test_arms_share_the_start_and_label_the_same_number_of_pixels(tiny_runs):
    for seed in ("0", "1"):
        starts = {json.dumps(per_seed[seed][0], sort_keys=True) for per_seed in tiny_runs["runs"].values()}
        assert len(starts) == 1
        assert {per_seed[seed][-1]["labelled_pixels"] for per_seed in tiny_runs["runs"].values()} == {(2 + 2 * 2) * 256}
        assert tiny_runs["control"][seed][0]["miou"] == tiny_runs["runs"]["clean/scenes/random"][seed][0]["miou"]
    areas = tiny_runs["runs"]["clean/areas/least_confidence"]["0"][1]
    assert len(areas["acquired"]) == 2 * 4 and areas["labelled_scenes"] >= 3


def test_clean_arms_never_label_traps_and_random_areas_are_the_same_draw_in_every_pool(tiny_runs):
    kinds = active.build_pool(TINY.pool_size, TINY.n_traps, config=TINY.scene_config).kind
    for arm, per_seed in tiny_runs["runs"].items():
        if arm.startswith("clean/"):
            assert all(rec["trap_share"] == 0.0 for records in per_seed.values() for rec in records[1:])
    for seed in ("0", "1"):
        clean = tiny_runs["runs"]["clean/areas/random"][seed][1]["acquired"]
        overlaid = [u for u in tiny_runs["runs"]["overlaid/areas/random"][seed][1]["acquired"] if kinds[u // 4] == 0]
        assert set(overlaid) <= set(clean)  # traps displace clean areas; the clean areas drawn are the same


def test_random_acquisition_takes_traps_at_the_pools_share_on_average():
    """Random keys over 200 seeds draw trap scenes in round 1 as often as the unlabelled pool holds them."""
    cfg = active.ALConfig()
    kinds = torch.from_numpy(np.repeat([0, 1, 2], [cfg.pool_size, cfg.n_traps, cfg.n_traps]))
    pool = active.Pool(torch.zeros(len(kinds), 1, 1, 1), torch.zeros(len(kinds), 1, 1, dtype=torch.long), kinds)
    counts = []
    for seed in range(200):
        available = pool.members("overlaid")
        available[active.start_scenes(cfg, seed)] = False
        keys = _random_keys(pool, seed * 1000 + 1, 1)
        counts.append(int((kinds[active.select(keys, cfg.acquire, available, tiebreak=keys)] == 1).sum()))
    expected = cfg.acquire * cfg.n_traps / (cfg.pool_size - cfg.initial + cfg.n_traps)
    assert abs(np.mean(counts) - expected) < 3 * np.std(counts) / np.sqrt(len(counts))


def test_fine_tuning_leaves_the_initial_model_unchanged_and_unlabelled_scenes_are_refused():
    pool = active.build_pool(4, 0, config=TINY.scene_config)
    model = active.train_model(pool.images, pool.labels, TINY, 0)
    state = copy.deepcopy(model.state_dict())
    tuned = active.train_model(pool.images, pool.labels, TINY, 1, init=model)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not all(torch.equal(state[k], v) for k, v in tuned.state_dict().items())
    with pytest.raises(ValueError, match="labelled pixel"):
        active.train_model(pool.images, torch.full_like(pool.labels, 255), TINY, 0)


def test_a_saved_start_model_replays_the_first_round_exactly(tiny_runs, tiny_file, tmp_path):
    results = active.load_results(tiny_file)
    model = active.train_start(TINY, 1)
    active.save_start(model, tmp_path / "start.pt", TINY, 1, results["date"])
    loaded, seed = active.load_start(results, tmp_path / "start.pt")
    assert seed == 1 and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    config = active.replay_config(results)
    replay = active.run(config, [1], progress=False, start_models={1: loaded})
    assert sorted(replay["runs"]) == sorted(active.REPLAY_ARMS)
    for arm in active.REPLAY_ARMS:
        assert replay["runs"][arm]["1"] == tiny_runs["runs"][arm]["1"][:2]
    with pytest.raises(ValueError, match="another results file"):
        active.load_start(results | {"date": "1999-01-01"}, tmp_path / "start.pt")
    with pytest.raises(ValueError, match="start_models"):
        active.run(config, [0], progress=False, start_models={1: loaded})


# ------------------------------------------------------------------ results files


def test_the_cli_writes_a_valid_results_file(tiny_file, tiny_runs):
    results = active.load_results(tiny_file)
    assert results["command"].startswith("python -m utils.active --out ")
    assert results["machine"]["threads"] == 1 and results["machine"]["kernels"].startswith("ATen ")
    assert results["seeds"] == [0, 1] and results["wall_time_s"] > 0 and results["date"][:2] == "20"
    assert results["config"] == json.loads(json.dumps(asdict(TINY)))
    assert results["runs"] == json.loads(json.dumps(tiny_runs["runs"]))
    assert active.config_of(results) == TINY and results["arms"] == active.arms(TINY)
    assert active.curves(results)["overlaid/scenes/bald"].shape == (2, TINY.rounds + 1)
    assert active.control_curves(results).shape == (2, TINY.rounds + 1)
    assert '"acquired": [' in tiny_file.read_text()  # lists of numbers on one line


def test_the_cli_resumes_from_the_seeds_already_done(tiny_file, tmp_path):
    partial = tmp_path / "r.partial.json"
    one = active.load_results(tiny_file)
    keep = {k: {"0": v["0"]} for k, v in one["runs"].items()}
    partial.write_text(json.dumps(one | {"runs": keep, "control": {"0": one["control"]["0"]}, "seconds": {"0": 1234.0},
                                         "start_auroc": {"0": one["start_auroc"]["0"]}, "seeds": [0]}))  # fmt: skip
    assert cli.main(["--out", str(tmp_path / "r.json"), "--seeds", "0", "1", "--quiet", "--resume", *TINY_ARGS]) == 0
    resumed = active.load_results(tmp_path / "r.json")
    assert resumed["seconds"]["0"] == 1234.0 and resumed["runs"] == one["runs"] and not partial.exists()


@pytest.mark.parametrize("corrupt", ["drop_key", "trap_share", "pixels", "rounds", "unit", "seed", "threads", "start"])
def test_check_results_rejects_inconsistent_files(tiny_file, corrupt):
    results = json.loads(tiny_file.read_text())
    rec = results["runs"]["overlaid/scenes/bald"]["1"]
    if corrupt == "drop_key":
        del results["machine"]
    elif corrupt == "trap_share":
        rec[1]["trap_share"] = 0.25 if rec[1]["trap_share"] != 0.25 else 0.75
    elif corrupt == "pixels":
        rec[2]["labelled_pixels"] += 1
    elif corrupt == "rounds":
        rec.pop()
    elif corrupt == "unit":
        rec[2]["acquired"][0] = rec[1]["acquired"][0]  # labelled twice
    elif corrupt == "seed":
        del results["runs"]["overlaid/scenes/bald"]["1"]
    elif corrupt == "threads":
        results["machine"]["threads"] = 2
    else:
        rec[0]["miou"] += 0.01
    with pytest.raises(ValueError):
        active.check_results(results)


def test_a_clean_arm_cannot_have_acquired_a_trap(tiny_file):
    results = json.loads(tiny_file.read_text())
    rec = results["runs"]["clean/scenes/random"]["0"][1]
    rec["acquired"][0] = TINY.pool_size  # the first trap scene
    with pytest.raises(ValueError, match="pool"):
        active.check_results(results)


def test_the_shipped_results_are_valid_and_complete():
    results = active.load_results()
    cfg = active.config_of(results)
    assert cfg.pools == active.POOLS and cfg.strategies == active.STRATEGIES and "least_confidence" in cfg.area_strategies
    assert len(results["seeds"]) >= 10
    assert results["command"].startswith("python -m utils.active --out ")
    assert results["machine"]["threads"] == cfg.threads == 1


def test_replay_table_of_a_run_against_itself_has_no_gaps(tiny_runs, tiny_file):
    table = active.replay_table(tiny_runs, active.load_results(tiny_file))
    assert len(table) == len(active.arms(TINY)) * 2 * (TINY.rounds + 1)
    assert (table["gap"] == 0).all() and (table["same_units"] == table["acquired"]).all()


def test_replay_table_measures_gaps_and_overlap(tiny_runs, tiny_file):
    results = json.loads(tiny_file.read_text())
    rec = results["runs"]["overlaid/scenes/bald"]["1"][1]
    rec["miou"] += 0.01
    rec["digit_pixel_accuracy"] -= 0.03
    rec["acquired"] = [rec["acquired"][0]] + [-1] * (len(rec["acquired"]) - 1)
    table = active.replay_table(tiny_runs, results).set_index(["arm", "seed", "round"])
    row = table.loc[("overlaid/scenes/bald", 1, 1)]
    assert row["gap"] == pytest.approx(0.03) and row["same_units"] == 1
    assert (table.drop(index=("overlaid/scenes/bald", 1, 1))["gap"] == 0).all()
    with pytest.raises(ValueError, match="seed"):
        active.replay_table({"runs": {"overlaid/scenes/bald": {"7": tiny_runs["runs"]["overlaid/scenes/bald"]["1"]}}}, results)
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


# ------------------------------------------------------------------ paired analysis


def test_bootstrap_mean_of_hand_made_differences():
    mean, low, high = active.bootstrap_mean([0.02] * 8)
    assert mean == pytest.approx(0.02) and low == pytest.approx(0.02) and high == pytest.approx(0.02)
    mean, low, high = active.bootstrap_mean([-1.0, 1.0] * 10)
    assert mean == 0.0 and low < 0 < high and high == pytest.approx(-low, abs=0.05)
    assert active.bootstrap_mean([1.0, 2.0, 3.0], seed=4) == active.bootstrap_mean([1.0, 2.0, 3.0], seed=4)


def test_sign_counts_and_minimum_detectable_effect():
    assert active.sign_counts([0.1, -0.2, 0.0, 0.3]) == (2, 1, 1)
    expected = (stats.t.ppf(0.975, 15) + stats.t.ppf(0.8, 15)) * 0.02 / 4
    assert active.minimum_detectable_effect(0.02, 16) == pytest.approx(expected)
    assert active.minimum_detectable_effect(0.02, 100) == pytest.approx(2.8 * 0.002, rel=0.02)  # the normal rule of thumb
    n = active.seeds_needed(0.02, 0.015)
    assert active.minimum_detectable_effect(0.02, n) <= 0.015 < active.minimum_detectable_effect(0.02, n - 1)


def test_paired_differences_and_the_table_verdicts(tiny_file):
    results = json.loads(tiny_file.read_text())
    base = "clean/scenes/random"
    for i, seed in enumerate(("0", "1")):  # bald 0.05 above random in both seeds, least confidence below in both
        results["runs"]["clean/scenes/bald"][seed][-1]["miou"] = results["runs"][base][seed][-1]["miou"] + 0.05
        results["runs"]["clean/scenes/least_confidence"][seed][-1]["miou"] = results["runs"][base][seed][-1]["miou"] - 0.03 - 0.02 * i
        results["runs"]["clean/scenes/var_ratios"][seed][-1]["miou"] = results["runs"][base][seed][-1]["miou"] + 0.04 * (2 * i - 1)
    diff = active.paired(results, "clean/scenes/bald", base)
    np.testing.assert_allclose(diff, [0.05, 0.05])
    table = active.paired_table(results)
    assert table.loc["clean/scenes: bald - random", "verdict"] == "higher"
    assert table.loc["clean/scenes: least_confidence - random", "verdict"] == "lower"
    assert table.loc["clean/scenes: least_confidence - random", "below"] == 2
    assert table.loc["clean/scenes: var_ratios - random", "verdict"] == "inconclusive"
    assert table.loc["clean/scenes: var_ratios - random", ["above", "below"]].tolist() == [1, 1]
    assert "overlaid/least_confidence: areas - scenes" in table.index
    assert "scenes/bald - random: overlaid - clean" in table.index
    twice = active.paired(results, ["clean/scenes/bald", "overlaid/scenes/random"], [base, "overlaid/scenes/bald"])
    np.testing.assert_allclose(twice, diff - active.paired(results, "overlaid/scenes/bald", "overlaid/scenes/random"))


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"n_traps": -1}, {"rounds": 100}, {"dropout": 0.0}, {"lr": 0.0}, {"strategies": ("greedy",)},
     {"strategies": ("bald", "bald")}, {"scene_size": 18}, {"width": True}, {"patch": 5}, {"initial": 400},
     {"pools": ("dirty",)}, {"n_traps": 0}, {"strategies": ()}],
)  # fmt: skip
def test_bad_configurations_raise(kwargs):
    with pytest.raises(ValueError):
        active.ALConfig(**kwargs)


def test_bad_arguments_raise():
    probs = _probs([0.9, 0.5])
    with pytest.raises(ValueError, match="probs"):
        active.least_confidence(probs * 2)
    with pytest.raises(TypeError, match="probs"):
        active.least_confidence(probs.numpy())
    with pytest.raises(ValueError, match="T >= 2"):
        active.bald(probs[None])
    with pytest.raises(ValueError, match="k must"):
        active.select(torch.rand(3), 3, torch.tensor([True, True, False]))
    with pytest.raises(ValueError, match="tiebreak"):
        active.select(torch.rand(3), 1, torch.ones(3, dtype=torch.bool), tiebreak=torch.rand(2))
    with pytest.raises(ValueError, match="strategy"):
        active.pixel_uncertainty(Predictive(probs, torch.zeros(2, 2, 2), 1), "random")
    with pytest.raises(ValueError, match="var_ratios needs"):
        active.pixel_uncertainty(Predictive(probs, torch.zeros(2, 2, 2), 2), "var_ratios")
    with pytest.raises(ValueError, match="patch"):
        active.area_scores(torch.rand(1, 4, 4), 3)
    with pytest.raises(ValueError, match="kind"):
        active.make_trap_scene(0, kind="blurred")
    with pytest.raises(ValueError, match="pool"):
        active.build_pool(3, 1).members("dirty")
    with pytest.raises(ValueError, match="arm key"):
        active.parse_arm("clean/scenes")
    with pytest.raises(ValueError, match="unit"):
        active.arm_name("clean", "pixels", "random")
    with pytest.raises(ValueError, match="seeds"):
        active.run(TINY, [0, 0], progress=False)
    with pytest.raises(ValueError, match="jobs"):
        active.run(TINY, [0], progress=False, jobs=0)
    with pytest.raises(TypeError, match="config"):
        active.run({"rounds": 1}, [0], progress=False)
    with pytest.raises(ValueError, match="key"):
        active.curves({"runs": {}, "seeds": []}, "acquired")
    with pytest.raises(ValueError, match="values"):
        active.bootstrap_mean([1.0])
    with pytest.raises(ValueError, match="sd"):
        active.minimum_detectable_effect(-1.0, 5)
    with pytest.raises(ValueError, match="arm"):
        active.paired({"runs": {}, "seeds": [0]}, "clean/scenes/bald", "clean/scenes/random")
    with pytest.raises(FileNotFoundError):
        active.load_results("/nonexistent/al.json")


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path / "x.json"), "--initial", "0"]) == 2
    assert "initial" in capsys.readouterr().err
    assert cli.main(["--out", str(tmp_path / "x.json"), "--seeds", "1", "1"]) == 2
    assert not (tmp_path / "x.json").exists()


def test_paired_t_p_matches_scipy_and_handles_constant_differences():
    from scipy import stats as st

    from utils.active import analysis

    d = np.array([0.01, 0.03, -0.005, 0.02, 0.012, 0.0, 0.025])
    assert analysis.paired_t_p(d) == pytest.approx(st.ttest_1samp(d, 0).pvalue, rel=1e-12)
    assert analysis.paired_t_p(np.zeros(4)) == 1.0 and analysis.paired_t_p(np.full(4, 0.1)) == 0.0
    with pytest.raises(ValueError, match="values"):
        analysis.paired_t_p([0.1])
