"""Training: the real script on tiny synthetic data, the package layout, the report."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from scones.training import cli as train_cli
from scones.training.local import train_local
from scones.training.script import load_train_script

train = load_train_script()

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--width", "4", "--members", "2", "--batch-size", "8", "--threads", "1"]


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", *argv])
    return int(args.func(args))


def test_model_tar_layout(tiny_model_tar: Path) -> None:
    with tarfile.open(tiny_model_tar) as tar:
        names = sorted(tar.getnames())
        assert names == sorted(
            [
                "model.onnx",
                "classes.json",
                "metrics.json",
                "code/inference.py",
                "code/requirements.txt",
            ]
        )
        meta = json.load(tar.extractfile("classes.json"))  # type: ignore[arg-type]
        for name in ("inference.py", "requirements.txt"):  # code/ is ml/serving/, byte for byte
            shipped = tar.extractfile(f"code/{name}")
            assert shipped is not None
            assert shipped.read() == (ROOT / "ml" / "serving" / name).read_bytes()
    assert meta["classes"] == ["bicycle", "motorcycle"] and meta["image_size"] == 32
    assert len(meta["mean"]) == len(meta["std"]) == 3 and all(s > 0 for s in meta["std"])


def test_onnx_graph_contract(tiny_model_dir: Path) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(
        str(tiny_model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert inp.name == "input" and inp.shape[1:] == [3, 32, 32] and inp.type == "tensor(float)"
    assert out.name == "probabilities" and out.shape[1] == 2
    x = np.random.default_rng(0).normal(size=(7, 3, 32, 32)).astype(np.float32)
    probs = sess.run(None, {"input": x})[0]
    assert probs.shape == (7, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    mirrored = sess.run(None, {"input": x[..., ::-1].copy()})[0]
    assert np.abs(mirrored - probs).max() > 1e-6  # no mirror averaging by default


def test_mirror_averaging_is_one_graph(tiny_data: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    report = train_local(
        tiny_data, tmp_path, epochs=1, seed=0, extra=[*FAST, "--tta", "1"], progress=False
    )
    assert report["hyperparameters"]["tta"] == 1 and "without_tta" in report
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        tar.extractall(tmp_path / "m", filter="data")
    sess = ort.InferenceSession(
        str(tmp_path / "m" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(1).normal(size=(5, 3, 32, 32)).astype(np.float32)
    probs = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(sess.run(None, {"input": x[..., ::-1].copy()})[0], probs, atol=1e-5)


def test_report_is_complete_and_the_tiny_model_learned(tiny_model_dir: Path) -> None:
    report = json.loads((tiny_model_dir / "metrics.json").read_text())
    for key in (
        "accuracy",
        "coverage",
        "precision_covered",
        "ece",
        "train_seconds",
        "train_cpu_seconds",
        "model_bytes",
        "parameters",
        "latency_single_ms",
        "throughput_batch64_img_s",
        "onnx_max_abs_diff",
    ):
        assert report[key] is not None, key
    assert report["model_bytes"] == (tiny_model_dir / "model.onnx").stat().st_size
    assert report["onnx_max_abs_diff"] < 1e-4
    # 2 of each class's 24 training images held out for the temperature
    assert report["n_train"] == 44 and report["n_holdout"] == 4 and report["n_test"] == 12
    assert report["hyperparameters"]["members"] == 2 and len(report["members"]) == 2
    assert report["temperature"] > 0 and report["validation"]["n_test"] == 4
    assert report["expected_review_rate"] == pytest.approx(1 - report["validation"]["coverage"])
    curve = report["risk_coverage"]
    assert curve["coverage"][-1] == 1.0 and curve["precision"][-1] == report["accuracy"]
    assert sum(b["count"] for b in report["reliability"]) == 12
    assert report["suggested_threshold"]["target_precision"] == 0.99
    assert report["accuracy"] >= 0.9  # the synthetic classes are easy
    assert report["with_tta"]["n_test"] == 12  # the other test-time setting, for comparison


def test_classification_report_by_hand() -> None:
    probs = np.array([[0.99, 0.01], [0.2, 0.8], [0.95, 0.05], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 0])
    r = train.classification_report(probs, labels)
    assert r["accuracy"] == 0.5
    assert r["coverage"] == 0.5  # 0.99 and 0.95
    assert r["precision_covered"] == 0.5
    # 15 bins: 0.99 (right) and 0.95 (wrong) share (0.933, 1]; 0.8 (right), 0.6 (wrong) alone
    expected = 2 / 4 * abs(0.5 - 0.97) + 1 / 4 * abs(1 - 0.8) + 1 / 4 * abs(0 - 0.6)
    assert r["ece"] == pytest.approx(expected)
    assert (
        train.classification_report(np.array([[0.6, 0.4]]), np.array([0]))["precision_covered"]
        is None
    )


def test_training_is_deterministic(tiny_data: Path, tmp_path: Path) -> None:
    reports = []
    for run in ("a", "b"):
        reports.append(
            train_local(tiny_data, tmp_path / run, epochs=2, seed=3, extra=FAST, progress=False)
        )
    for key in ("accuracy", "ece", "nll", "final_train_loss"):
        assert reports[0][key] == reports[1][key], key
    other = train_local(tiny_data, tmp_path / "c", epochs=2, seed=4, extra=FAST, progress=False)
    assert other["nll"] != reports[0]["nll"]


def test_script_mode_with_sagemaker_environment(tiny_data: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        {
            "SM_MODEL_DIR": str(tmp_path / "model"),
            "SM_CHANNEL_TRAIN": str(tiny_data),
            "SM_CHANNEL_TEST": str(tiny_data),
            "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        }
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "ml" / "train.py"),
            "--epochs",
            "1",
            "--width",
            "4",
            "--batch_size",
            "8",
            "--progress",
            "0",
            "--unknown-hp",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ignoring unknown arguments: --unknown-hp 1" in proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["n_train"] + report["n_holdout"] == 32 and report["n_test"] == 8
    assert len(report["members"]) == 3  # the default recipe
    names = sorted(
        p.relative_to(tmp_path / "model").as_posix()
        for p in (tmp_path / "model").rglob("*")
        if p.is_file()
    )
    assert names == [
        "classes.json",
        "code/inference.py",
        "code/requirements.txt",
        "metrics.json",
        "model.onnx",
    ]
    assert (tmp_path / "output" / "metrics.json").is_file()
    assert (tmp_path / "output" / "reliability.png").is_file()  # output.tar.gz, not the model
    history = json.loads((tmp_path / "output" / "history.json").read_text())
    assert [h["member"] for h in history] == [0, 1, 2]  # 1 epoch per member


def test_script_mode_missing_channel(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "ml" / "train.py"),
            "--train",
            str(tmp_path),
            "--test",
            str(tmp_path),
            "--model-dir",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "TrainingDataError" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_prints_table_and_writes_outputs(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    assert (
        cli(
            "--data",
            str(tiny_data),
            "--model-dir",
            str(out),
            "--epochs",
            "1",
            "--width",
            "4",
            "--members",
            "2",
            "--threads",
            "1",
            "--quiet",
        )
        == 0
    )
    text = capsys.readouterr().out
    assert (
        "threshold suggestion: " in text
        and "ConfidenceThreshold" in text
        or ("no threshold reaches 99 % precision" in text)
    )
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for label in (
        "test accuracy",
        "coverage (top prob >= 0.93)",
        "precision among covered",
        "calibration error (ECE)",
        "expected review rate (held-out)",
        "temperature (fitted on held-out)",
        "training time",
        "model size (ONNX)",
        "latency, 1 image (onnxruntime)",
        "throughput, batch 64",
    ):
        assert label in text
    assert (out / "model.tar.gz").is_file() and (out / "metrics.json").is_file()
    assert [
        p.name for p in out.iterdir() if p.name.startswith("scones-train-")
    ] == []  # temp removed


def test_cli_without_etl_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--data", str(tmp_path), "--model-dir", str(tmp_path / "m")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"scones train: {tmp_path} has no train.lst/test.lst; run `scones etl")
    assert err.count("\n") == 1


def test_bad_manifest_is_named(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    import shutil

    shutil.copytree(tiny_data, data)
    (data / "train.lst").write_text("0\t0\ttrain/missing.png\n")
    assert cli("--data", str(data), "--model-dir", str(tmp_path / "m"), "--quiet") == 2
    assert capsys.readouterr().err.startswith("scones train: TrainingDataError: ")
    (data / "train.lst").write_text("just one column\n")
    with pytest.raises(train.TrainingDataError, match="index<TAB>label<TAB>path"):
        train.load_split(data, "train")


def test_cli_outside_the_project_is_one_line(
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from scones.training import script

    monkeypatch.delitem(sys.modules, script.TRAIN_MODULE)  # as in a fresh process
    monkeypatch.setattr(script, "find_project_root", lambda: tmp_path)  # no ml/ there
    assert cli("--data", str(tiny_data), "--model-dir", str(tmp_path / "m")) == 2
    err = capsys.readouterr().err
    assert err.startswith("scones train: ") and "ml/train.py not found" in err
    assert "Traceback" not in err and script.TRAIN_MODULE not in sys.modules


def test_single_member_without_holdout_and_the_other_recipe_options(
    tiny_data: Path, tmp_path: Path
) -> None:
    """--members 1 --holdout 0: no temperature (T = 1), no validation, no review rate to expect;
    --ema, --label-smoothing, --jitter and --swa (measured in docs/ml.md, off by default) and
    --cutmix 1 still train."""
    report = train_local(
        tiny_data,
        tmp_path,
        epochs=2,
        seed=0,
        extra=[
            *FAST,
            "--members",
            "1",
            "--holdout",
            "0",
            "--ema",
            "0.9",
            "--label-smoothing",
            "0.1",
            "--cutmix",
            "1",
            "--jitter",
            "0.2",
            "--swa",
            "0.5",
        ],
        progress=False,
    )
    assert report["temperature"] == 1.0 and report["n_holdout"] == 0 and report["n_train"] == 32
    assert report["validation"] is None and report["expected_review_rate"] is None
    assert report["accuracy"] == report["uncalibrated"]["accuracy"] and len(report["members"]) == 1
    hp = report["hyperparameters"]
    assert (hp["ema"], hp["cutmix"], hp["jitter"], hp["swa"]) == (0.9, 1.0, 0.2, 0.5)
    assert report["onnx_max_abs_diff"] < 1e-4


def test_scale_out_of_range_is_named(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(train.TrainingDataError, match="--scale must be in"):
        train_local(tiny_data, tmp_path, epochs=1, extra=[*FAST, "--scale", "1"], progress=False)


def test_holdout_out_of_range_is_named(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(train.TrainingDataError, match="--holdout must be in"):
        train_local(tiny_data, tmp_path, epochs=1, extra=[*FAST, "--holdout", "1"], progress=False)


@pytest.mark.parametrize("flag", [("--cutmix", "1.5"), ("--swa", "-0.1"), ("--jitter", "-1")])
def test_recipe_option_out_of_range_is_named(
    tiny_data: Path, tmp_path: Path, flag: tuple[str, str]
) -> None:
    with pytest.raises(train.TrainingDataError, match="--cutmix and --swa must be in"):
        train_local(tiny_data, tmp_path, epochs=1, extra=[*FAST, *flag], progress=False)
