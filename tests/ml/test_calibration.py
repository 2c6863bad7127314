"""Confidence math of ml/calibration.py on hand-made inputs, the temperature fit, the ensemble
graph (ONNX output = mean of the members' softmax) and the report picture."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from scones.training.script import load_train_script

# ml/train.py imports its siblings by their plain names (as in SageMaker); take those modules
load_train_script()
cal = sys.modules["calibration"]
network = sys.modules["network"]
plots = sys.modules["plots"]
recipe = sys.modules["recipe"]


def test_risk_coverage_by_hand() -> None:
    probs = np.array([[0.99, 0.01], [0.2, 0.8], [0.95, 0.05], [0.4, 0.6], [0.05, 0.95]])
    labels = np.array([0, 1, 1, 0, 1])
    # confidences 0.99 (right), 0.95 twice (wrong, right), 0.8 (right), 0.6 (wrong)
    curve = cal.risk_coverage(probs, labels)
    assert curve["threshold"] == pytest.approx([0.99, 0.95, 0.8, 0.6])
    assert curve["coverage"] == pytest.approx([0.2, 0.6, 0.8, 1.0])
    assert curve["precision"] == pytest.approx([1.0, 2 / 3, 3 / 4, 3 / 5])
    # risk after each image, highest confidence first (the tie keeps input order): 0, 1/2,
    # 1/3, 1/4, 2/5
    assert curve["aurc"] == pytest.approx(np.mean([0, 1 / 2, 1 / 3, 1 / 4, 2 / 5]))
    found = cal.threshold_for_precision(probs, labels, target=0.99)
    assert found == {"target_precision": 0.99, "threshold": 0.99, "coverage": 0.2, "precision": 1.0}
    assert cal.threshold_for_precision(probs, labels, target=0.7)["threshold"] == 0.8
    assert cal.threshold_for_precision(probs[[3]], labels[[3]])["threshold"] is None


def test_reliability_bins_and_ece_by_hand() -> None:
    probs = np.array([[0.99, 0.01], [0.2, 0.8], [0.95, 0.05], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 0])
    bins = cal.reliability_bins(probs, labels, bins=5)  # (0.8, 1]: 0.99, 0.95; (0.6, 0.8]: 0.8
    assert [(b["count"], b["accuracy"]) for b in bins] == [(1, 0.0), (1, 1.0), (2, 0.5)]
    assert bins[2]["confidence"] == pytest.approx(0.97)
    expected = 1 / 4 * 0.6 + 1 / 4 * 0.2 + 2 / 4 * abs(0.5 - 0.97)
    assert cal.expected_calibration_error(probs, labels, bins=5) == pytest.approx(expected)
    perfect = np.array([[0.75, 0.25]] * 4)  # 75 % confident, 3 of 4 right
    assert cal.expected_calibration_error(perfect, np.array([0, 0, 0, 1])) == pytest.approx(0)


def test_temperature_fit_lowers_nll_of_an_overconfident_ensemble() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    margin = rng.normal(0.0, 2.0, n)  # the true log-odds of class 1
    labels = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(int)
    logits = np.zeros((3, n, 2))
    for k in range(3):  # three members, each 4x overconfident (true temperature 4)
        m = 4.0 * (margin + rng.normal(0, 0.1, n))
        logits[k, :, 1], logits[k, :, 0] = m / 2, -m / 2
    t = cal.fit_temperature(logits, labels)
    assert 3.0 < t < 5.0
    before = cal.nll(cal.ensemble_probs(logits), labels)
    after = cal.nll(cal.ensemble_probs(logits, t), labels)
    assert after < before - 0.1
    for other in (t * 0.8, t * 1.25):  # it is the minimum
        assert cal.nll(cal.ensemble_probs(logits, other), labels) > after
    # and the ranking (hence the risk-coverage curve) does not change for two classes
    p1, pt = cal.ensemble_probs(logits[:1]), cal.ensemble_probs(logits[:1], t)
    assert (np.argsort(-p1.max(1), kind="stable") == np.argsort(-pt.max(1), kind="stable")).all()


def test_ensemble_graph_averages_members(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    nets = [network.build_model(2, 4).eval() for _ in range(3)]
    for net in nets:  # non-trivial BatchNorm statistics, so members differ in eval mode
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(6, 3, 32, 32)).astype(np.float32))
    t = 1.7
    path = tmp_path / "ens.onnx"
    network.export_onnx(network.make_probability_model(nets, False, t), path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["probabilities"]
    got = sess.run(None, {"input": x.numpy()})[0]
    logits = recipe.predict_logits(nets, x, torch.device("cpu"))
    expected = np.mean([cal.softmax(z / t) for z in logits], axis=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got, cal.ensemble_probs(logits, t), atol=1e-5)
    single = cal.softmax(logits[0] / t)
    assert np.abs(got - single).max() > 1e-3  # really an average, not the first member


def test_holdout_split_is_stratified_and_seeded() -> None:
    labels = np.array([0] * 40 + [1] * 20)
    train, held = recipe.holdout_split(labels, 0.1, seed=3)
    assert sorted([*train, *held]) == list(range(60)) and len(set(train) & set(held)) == 0
    assert (labels[held] == 0).sum() == 4 and (labels[held] == 1).sum() == 2
    again = recipe.holdout_split(labels, 0.1, seed=3)[1]
    assert (again == held).all()
    assert not (recipe.holdout_split(labels, 0.1, seed=4)[1] == held).all()
    assert len(recipe.holdout_split(labels, 0.0, seed=3)[1]) == 0


def test_report_png(tmp_path: Path) -> None:
    from PIL import Image

    probs = np.array([[0.99, 0.01], [0.2, 0.8], [0.95, 0.05], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 0])
    path = plots.draw_report_png(
        tmp_path / "r.png",
        cal.reliability_bins(probs, labels),
        cal.risk_coverage(probs, labels),
        cal.expected_calibration_error(probs, labels),
        0.93,
    )
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 2 * img.size[1] * 0.8
        assert len(img.getcolors(100000) or []) > 3  # something was drawn


def test_cutmix_pastes_one_box_and_reports_the_share_kept() -> None:
    import torch

    batch = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 32, 32).clone()
    labels = torch.tensor([0, 1, 0, 1])
    for seed in range(20):
        mixed, other, lam = recipe.cutmix(batch, labels, torch.Generator().manual_seed(seed))
        assert mixed.shape == batch.shape and 0.0 <= lam <= 1.0
        checked = 0
        for i in range(4):
            own = (mixed[i] == i).float().mean().item()
            values = mixed[i].unique()
            foreign = values[values != i]
            assert len(foreign) <= 1  # one box, from one other image
            if len(foreign):  # the box's pixels and label come from that image
                source = int(foreign[0])
                assert own == pytest.approx(lam) and int(other[i]) == int(labels[source])
                checked += 1
        assert lam == 1.0 or checked or torch.equal(mixed, batch)


def test_jitter_scales_contrast_and_shifts_brightness_within_bounds() -> None:
    import torch

    batch = torch.randn(64, 3, 8, 8)
    out = recipe.color_jitter(batch, 0.2, torch.Generator().manual_seed(0))
    mean_in, mean_out = batch.mean(dim=(1, 2, 3)), out.mean(dim=(1, 2, 3))
    assert (mean_out - mean_in).abs().max() <= 0.2 + 1e-5
    ratio = (out - mean_out.view(-1, 1, 1, 1)).std(dim=(1, 2, 3)) / batch.std(dim=(1, 2, 3))
    assert ratio.min() >= 0.8 - 1e-4 and ratio.max() <= 1.2 + 1e-4 and ratio.std() > 0.01


def test_swa_is_the_equal_weight_average_of_the_snapshots() -> None:
    import torch

    nets = [network.build_model(2, 4) for _ in range(3)]
    swa = None
    for net in nets:
        swa = recipe._swa_update(swa, net)
    assert swa is not None and swa[0] == 3
    for key, value in swa[1].state_dict().items():
        values = [net.state_dict()[key] for net in nets]
        if value.is_floating_point():
            assert torch.allclose(value, torch.stack(values).mean(0), atol=1e-6)
        else:
            assert torch.equal(value, values[-1])


def test_scale_augment_zooms_shifts_and_flips_within_bounds() -> None:
    import torch

    # a horizontal ramp: flipping reverses its slope; zoom changes it; shift moves its mean
    ramp = torch.linspace(-1, 1, 32).view(1, 1, 1, 32).expand(256, 3, 32, 32).clone()
    out = recipe.scale_augment(ramp, 0.3, torch.Generator().manual_seed(0))
    assert out.shape == ramp.shape
    centre = out[:, 0, 16, 8:24]  # away from the reflected borders
    slope = (centre[:, -1] - centre[:, 0]) / (ramp[0, 0, 16, 23] - ramp[0, 0, 16, 8])
    flipped = slope < 0
    assert 0.35 < flipped.float().mean() < 0.65  # about half are mirrored
    zoom = 1 / slope.abs()  # content magnified m times has its ramp m times flatter
    assert zoom.min() >= 0.7 - 1e-3 and zoom.max() <= 1.3 + 1e-3 and zoom.std() > 0.05
    again = recipe.scale_augment(ramp, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the generator decides
