"""Unit tests of utils.train: the recipe's validation, a tiny training run, evaluation and the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from utils import weights
from utils.data import DigitScenes
from utils.metrics import nll
from utils.models import UNet
from utils.train import TrainConfig, TrainResult, evaluate, main, train

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(width=4, train_size=64, batch_size=16, epochs=3, val_size=16, snapshots=(1,), lr=3e-2, seed=0)
HISTORY_KEYS = {"epoch", "step", "train_loss", "val_miou", "val_pixel_accuracy", "val_nll", "val_digit_accuracy", "val_ece", "val_digit_ece"}


@pytest.fixture(scope="module")
def tiny_run() -> TrainResult:
    return train(TrainConfig(**TINY), device="cpu", progress=False)


# --- TrainConfig --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"width": -1}, "width"),
        ({"depth": 0}, "depth"),
        ({"train_size": 0}, "train_size"),
        ({"epochs": 2.5}, "epochs"),
        ({"seed": -1}, "seed"),
        ({"val_size": -1}, "val_size"),
        ({"lr": 0.0}, "lr"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"max_steps": 0}, "max_steps"),
        ({"epochs": 3, "snapshots": (3,)}, "snapshots"),
        ({"epochs": 3, "snapshots": (0,)}, "snapshots"),
    ],
)
def test_train_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kwargs)


def test_train_config_defaults_and_snapshot_normalisation():
    d = TrainConfig()
    assert (d.epochs, d.width, d.train_size, d.val_size) == (12, 16, 8000, 1000)
    assert all(1 <= e < d.epochs for e in d.snapshots)
    assert TrainConfig(epochs=5, snapshots=[3, 1, 3]).snapshots == (1, 3)


def test_train_rejects_wrong_config_type():
    with pytest.raises(TypeError):
        train({"epochs": 1}, device="cpu", progress=False)


# --- a tiny training run ------------------------------------------------------------------------


def test_training_lowers_the_loss(tiny_run):
    losses = [h["train_loss"] for h in tiny_run.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses
    assert losses == sorted(losses, reverse=True), losses


def test_training_history_and_result(tiny_run):
    assert isinstance(tiny_run.model, UNet) and not tiny_run.model.training
    assert tiny_run.model.config["width"] == 4
    assert [h["epoch"] for h in tiny_run.history] == [1, 2, 3]
    assert [h["step"] for h in tiny_run.history] == [4, 8, 12]
    assert tiny_run.steps == 12
    assert tiny_run.wall_time_s > 0
    for h in tiny_run.history:
        assert set(h) == HISTORY_KEYS
        assert 0.0 <= h["val_miou"] <= 1.0
        assert 0.0 <= h["val_pixel_accuracy"] <= 1.0
        assert 0.0 <= h["val_digit_accuracy"] <= 1.0
        assert h["val_nll"] > 0 and math.isfinite(h["val_nll"])
        assert 0.0 <= h["val_ece"] <= 1.0 and 0.0 <= h["val_digit_ece"] <= 1.0


def test_snapshots_are_kept_for_requested_epochs(tiny_run):
    assert set(tiny_run.snapshots) == {1}
    snap, final = tiny_run.snapshots[1], tiny_run.model.state_dict()
    assert set(snap) == set(final)
    assert any(not torch.equal(snap[k], final[k]) for k in final)  # a copy taken at epoch 1, not a view
    model = UNet(width=4)
    model.load_state_dict(snap)


def test_training_is_deterministic(tiny_run):
    again = train(TrainConfig(**TINY), device="cpu", progress=False)
    a, b = tiny_run.model.state_dict(), again.model.state_dict()
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in tiny_run.history]
    for k, v in tiny_run.snapshots[1].items():
        assert torch.equal(v, again.snapshots[1][k]), k


def test_different_seed_gives_different_weights(tiny_run):
    other = train(TrainConfig(**{**TINY, "seed": 1, "epochs": 1, "snapshots": ()}), device="cpu", progress=False)
    a, b = tiny_run.model.state_dict(), other.model.state_dict()
    assert not torch.equal(a["head.weight"], b["head.weight"])


def test_max_steps_stops_early():
    cfg = TrainConfig(**{**TINY, "val_size": 0, "max_steps": 3, "snapshots": (1, 2)})
    result = train(cfg, device="cpu", progress=False)
    assert result.steps == 3  # 4 steps per epoch, stopped inside epoch 1
    assert len(result.history) == 1
    assert result.history[0]["step"] == 3
    assert "val_miou" not in result.history[0]  # val_size = 0: no validation
    assert set(result.snapshots) == {1}  # epoch 2 is never reached


# --- evaluate -----------------------------------------------------------------------------------


def test_evaluate_scores(tiny_run, small_val):
    model = tiny_run.model
    model.train()  # evaluate must score in eval mode and restore the mode
    scores = evaluate(model, small_val, batch_size=3)
    assert model.training
    model.eval()
    assert {"miou", "pixel_accuracy", "nll", "digit_accuracy", "iou_per_class", "confusion"} <= set(scores)
    for key in ("miou", "pixel_accuracy", "digit_accuracy"):
        assert 0.0 <= scores[key] <= 1.0, key
    assert scores["nll"] > 0 and math.isfinite(scores["nll"])
    assert len(scores["iou_per_class"]) == 11
    assert int(scores["confusion"].sum()) == small_val.labels.numel()
    with torch.no_grad():
        logits = model(small_val.images)
    expected_acc = float((logits.argmax(1) == small_val.labels).float().mean())
    assert scores["pixel_accuracy"] == pytest.approx(expected_acc, abs=1e-6)
    assert scores["nll"] == pytest.approx(nll(logits, small_val.labels), rel=1e-4)
    assert scores["nll"] == pytest.approx(float(F.cross_entropy(logits, small_val.labels)), rel=1e-4)


def test_trained_model_beats_untrained(tiny_run, small_val):
    torch.manual_seed(0)
    untrained = evaluate(UNet(width=4), small_val)
    trained = evaluate(tiny_run.model, small_val)
    assert trained["nll"] < untrained["nll"]


def test_evaluate_rejects_other_datasets(tiny_unet, small_val):
    with pytest.raises(TypeError, match="DigitScenes"):
        evaluate(tiny_unet, TensorDataset(small_val.images, small_val.labels))
    with pytest.raises(ValueError, match="empty"):
        evaluate(tiny_unet, DigitScenes("val", 0))


# --- command line -------------------------------------------------------------------------------

CLI_FLAGS = ["--epochs", "2", "--train-size", "32", "--val-size", "8", "--test-size", "8", "--width", "4",
             "--snapshots", "1", "--quiet", "--device", "cpu", "--seed", "3"]  # fmt: skip


def test_cli_trains_saves_and_writes_manifest(tmp_path, capsys):
    out = tmp_path / "w"
    argv = ["--out", str(out), *CLI_FLAGS]
    assert main(argv) == 0
    assert (out / "unet_seed3.pt").is_file()
    assert (out / "unet_seed3_epoch01.pt").is_file()
    data = json.loads((out / "manifest.json").read_text())
    entries = data["weights"]
    assert set(entries) == {"unet_seed3", "unet_seed3_epoch01"}
    for name, entry in entries.items():
        assert entry["file"] == f"{name}.pt"
        assert entry["sha256"] == weights.sha256_of(out / entry["file"])
        assert entry["command"].startswith("python -m utils.train")
        assert "--epochs 2" in entry["command"] and "--train-size 32" in entry["command"]
        assert entry["epochs"] == 2
        assert entry["config"]["width"] == 4 and entry["config"]["seed"] == 3
        assert entry["test_size"] == 8
        for key in ("test_miou", "test_pixel_accuracy", "test_digit_accuracy"):
            assert 0.0 <= entry[key] <= 1.0, key
        assert entry["test_nll"] > 0
        assert entry["wall_time_s"] >= 0 and entry["hardware"]
    assert entries["unet_seed3"]["epoch"] == 2 and entries["unet_seed3_epoch01"]["epoch"] == 1
    assert len(entries["unet_seed3"]["history"]) == 2 and len(entries["unet_seed3_epoch01"]["history"]) == 1
    model = weights.load("unet_seed3", directory=out)
    assert model.config["width"] == 4
    assert "saved" in capsys.readouterr().out


def test_cli_custom_name_without_test_split(tmp_path):
    out = tmp_path / "w"
    argv = ["--out", str(out), "--name", "demo", *CLI_FLAGS[:-2], "--snapshots", "", "--test-size", "0"]
    assert main(argv) == 0
    entries = weights.manifest(out)
    assert set(entries) == {"demo"}
    assert "test_miou" not in entries["demo"]
    assert not list(out.glob("demo_epoch*.pt"))


def test_cli_bad_values_return_2(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["--out", str(out), "--epochs", "0"]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["--out", str(out), "--epochs", "2", "--snapshots", "5"]) == 2
    assert not out.exists()  # nothing written on a rejected recipe


def test_cli_unparsable_flag_exits_2(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path), "--epochs", "two"])
    assert info.value.code == 2


def test_cli_help_as_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "utils.train", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "--out" in proc.stdout and "--epochs" in proc.stdout


# --- bad flags are refused up front, before any training ----------------------------------------


def test_cli_negative_test_size_returns_2(tmp_path):
    assert main(["--out", str(tmp_path / "w"), *CLI_FLAGS[:-2], "--test-size", "-1"]) == 2


@pytest.mark.parametrize("flag, value", [("--dropout", "1.5"), ("--depth", "7")])
def test_cli_invalid_model_flags_return_2(tmp_path, flag, value):
    assert main(["--out", str(tmp_path / "w"), *CLI_FLAGS, flag, value]) == 2


# --- the CLI as a reader runs it (issue 13) -----------------------------------------------------


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    # one intra-op thread, as conftest sets for the tests in this process: a tiny model gains nothing
    # from more, and on a loaded machine extra threads slow the run down several-fold
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "utils.train", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def test_cli_max_steps_as_subprocess(tmp_path):
    out = tmp_path / "w"
    proc = _run_cli("--out", str(out), "--max-steps", "3", "--epochs", "2", "--train-size", "16", "--batch-size", "4",
                    "--val-size", "0", "--test-size", "0", "--width", "4", "--snapshots", "", "--quiet",
                    "--device", "cpu")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    entry = weights.manifest(out)["unet_seed0"]
    assert entry["history"][-1]["step"] == 3  # stopped after 3 of the 8 steps (2 epochs of 4)
    assert "--max-steps 3" in entry["command"]
    assert weights.load("unet_seed0", directory=out).config["width"] == 4


def test_cli_default_snapshots_beyond_epochs_say_how_to_pass_none(tmp_path, capsys):
    """--epochs 3 keeps the default snapshots (2, 4, 6, 9): refused, with the flag that keeps none."""
    out = tmp_path / "never"
    assert main(["--out", str(out), "--epochs", "3", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "snapshots" in err and "--snapshots ''" in err, err
    assert not out.exists()


# --- other architectures and data: --arch lraspp, --data nuclei ---------------------------------


@pytest.mark.parametrize("kwargs, field", [({"arch": "resnet"}, "arch"), ({"data": "cells"}, "data")])
def test_train_config_rejects_unknown_arch_and_data(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kwargs)


def test_build_model_follows_arch_and_data():
    from torchvision.models.segmentation.lraspp import LRASPP

    from utils.train import build_model

    assert build_model(TrainConfig(width=4)).config["num_classes"] == 11
    nuc = build_model(TrainConfig(width=4, data="nuclei", dropout=0.2))
    assert isinstance(nuc, UNet) and nuc.config == dict(in_channels=1, num_classes=2, width=4, depth=3, dropout=0.2)
    lr = build_model(TrainConfig(arch="lraspp", data="nuclei"))
    assert isinstance(lr, LRASPP) and lr.config["num_classes"] == 2
    with pytest.raises(TypeError):
        build_model({"arch": "unet"})


def test_cli_trains_lraspp(tmp_path):
    from torchvision.models.segmentation.lraspp import LRASPP

    out = tmp_path / "w"
    argv = ["--out", str(out), "--arch", "lraspp", "--epochs", "1", "--train-size", "8", "--batch-size", "4",
            "--max-steps", "1", "--val-size", "2", "--test-size", "2", "--snapshots", "", "--quiet", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    entry = weights.manifest(out)["lraspp_seed0"]
    assert entry["config"]["arch"] == "lraspp" and "--arch lraspp" in entry["command"]
    assert entry["history"][-1]["step"] == 1 and "val_digit_accuracy" in entry["history"][-1]
    assert 0.0 <= entry["test_miou"] <= 1.0 and entry["test_size"] == 2
    model = weights.load("lraspp_seed0", directory=out)
    assert isinstance(model, LRASPP) and not model.training
    assert torch.load(out / "lraspp_seed0.pt", weights_only=True)["model_config"]["arch"] == "lraspp"


def test_cli_trains_on_nuclei(tmp_path):
    from utils.nuclei import NucleiTiles

    out = tmp_path / "w"
    argv = ["--out", str(out), "--data", "nuclei", "--width", "4", "--epochs", "2", "--train-size", "8",
            "--batch-size", "4", "--val-size", "3", "--snapshots", "1", "--quiet", "--device", "cpu", "--seed", "2"]  # fmt: skip
    assert main(argv) == 0
    entries = weights.manifest(out)
    assert set(entries) == {"nuclei_unet_seed2", "nuclei_unet_seed2_epoch01"}
    entry = entries["nuclei_unet_seed2"]
    assert entry["config"]["data"] == "nuclei" and entry["history"][-1]["step"] == 4
    assert {"val_miou", "val_foreground_iou", "val_foreground_ece", "val_nll"} <= set(entry["history"][-1])
    assert "val_digit_accuracy" not in entry["history"][-1]
    test = NucleiTiles("test")
    assert entry["test_size"] == len(test)  # the default test size is capped at the test region's tiles
    model = weights.load("nuclei_unet_seed2", directory=out)
    assert isinstance(model, UNet) and model.config["num_classes"] == 2 and model.config["width"] == 4
    scores = evaluate(model, test)  # the manifest's scores are those of the saved file
    for key in ("miou", "pixel_accuracy", "nll", "foreground_iou"):
        assert entry[f"test_{key}"] == round(float(scores[key]), 5), key


def test_nuclei_training_uses_fresh_seeded_crops_and_learns():
    cfg = TrainConfig(data="nuclei", width=4, epochs=4, train_size=32, batch_size=8, val_size=4, snapshots=(), lr=1e-2)
    run = train(cfg, device="cpu", progress=False)
    again = train(cfg, device="cpu", progress=False)
    assert [h["train_loss"] for h in run.history] == [h["train_loss"] for h in again.history]  # deterministic
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert set(run.history[0]) == {"epoch", "step", "train_loss", "val_miou", "val_pixel_accuracy", "val_nll",
                                   "val_foreground_iou", "val_ece", "val_foreground_ece"}  # fmt: skip


def test_evaluate_on_nuclei_tiles():
    from utils.nuclei import NucleiTiles

    torch.manual_seed(0)
    model = UNet(num_classes=2, width=4).eval()
    tiles = NucleiTiles("val", 4)
    scores = evaluate(model, tiles)
    with torch.no_grad():
        logits = model(tiles.images)
    pred = logits.argmax(1)
    inter = int(((pred == 1) & (tiles.labels == 1)).sum())
    union = int(((pred == 1) | (tiles.labels == 1)).sum())
    assert scores["foreground_iou"] == pytest.approx(inter / union, abs=1e-6)
    assert scores["pixel_accuracy"] == pytest.approx(float((pred == tiles.labels).float().mean()), abs=1e-6)
    assert scores["nll"] == pytest.approx(float(F.cross_entropy(logits, tiles.labels)), rel=1e-4)
    assert len(scores["iou_per_class"]) == 2 and "digit_accuracy" not in scores
    with pytest.raises(ValueError, match="classes"):
        evaluate(UNet(width=4).eval(), tiles)  # an 11-class model on 2-class data


def test_cli_rejects_unknown_arch_and_data(tmp_path):
    for flag in (["--arch", "vit"], ["--data", "cells"]):
        with pytest.raises(SystemExit) as info:
            main(["--out", str(tmp_path / "w"), *flag])
        assert info.value.code == 2
    assert not (tmp_path / "w").exists()


# --- --data annotators: one annotator drawn per scene and epoch ----------------------------------


def test_annotator_training_draws_one_annotator_per_scene_and_epoch():
    from utils.annotators import AnnotatorScenes
    from utils.train import _dataset

    cfg = TrainConfig(data="annotators", width=4, epochs=2, train_size=40, snapshots=())
    one, two = _dataset(cfg, "train", 40, start=0, epoch=1), _dataset(cfg, "train", 40, start=0, epoch=2)
    assert isinstance(one, AnnotatorScenes) and torch.equal(one.annotations, two.annotations)
    assert not torch.equal(one.picked, two.picked)  # same scenes (no recompose), other annotators
    for data in (one, two):
        assert torch.equal(data.labels, data.annotations[torch.arange(40), data.picked].long())
    val = _dataset(cfg, "val", 5)
    assert torch.equal(val.labels, val.reference)  # validation and test score the reference map


def test_cli_trains_on_annotators(tmp_path):
    out = tmp_path / "w"
    argv = ["--out", str(out), "--data", "annotators", "--width", "4", "--epochs", "1", "--train-size", "8",
            "--batch-size", "4", "--val-size", "2", "--test-size", "2", "--snapshots", "", "--quiet", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    entry = weights.manifest(out)["annot_unet_seed0"]
    assert entry["config"]["data"] == "annotators" and "--data annotators" in entry["command"]
    assert {"val_miou", "val_digit_accuracy"} <= set(entry["history"][-1]) and entry["test_size"] == 2
    model = weights.load("annot_unet_seed0", directory=out)
    assert isinstance(model, UNet) and model.config["num_classes"] == 11
