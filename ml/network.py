"""The network of ``train.py``: a ResNet-9-style CNN, its probability wrapper, ONNX export and
onnxruntime latency. A sibling of ``train.py`` in the SageMaker source directory (SageMaker puts
that directory on ``sys.path``); imports nothing from scones.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np


def build_model(num_classes: int, width: int = 16) -> Any:
    """A ResNet-9-style network (about 0.47 M parameters at width 16)."""
    from torch import nn

    def block(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2))
        return nn.Sequential(*layers)

    class Residual(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.body = nn.Sequential(block(channels, channels), block(channels, channels))

        def forward(self, x: Any) -> Any:
            return x + self.body(x)

    w = width
    return nn.Sequential(
        block(3, w),
        block(w, 2 * w, pool=True),
        Residual(2 * w),
        block(2 * w, 4 * w, pool=True),
        block(4 * w, 8 * w, pool=True),
        Residual(8 * w),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * w, num_classes),
    )


def make_probability_model(nets: Any, tta: bool = False, temperature: float = 1.0) -> Any:
    """One module for one network or an ensemble: the mean over ``nets`` of
    ``softmax(net(x) / temperature)`` (each also averaged with the mirror image when ``tta``).
    Exported as one ONNX graph, so serving needs nothing new."""
    import torch
    from torch import nn

    members = list(nets) if isinstance(nets, list | tuple) else [nets]

    class Probabilities(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)
            self.inv_temperature = float(1.0 / temperature)

        def one(self, net: Any, x: Any) -> Any:
            probs = torch.softmax(net(x) * self.inv_temperature, dim=1)
            if tta:
                mirrored = net(torch.flip(x, dims=[3])) * self.inv_temperature
                probs = 0.5 * (probs + torch.softmax(mirrored, dim=1))
            return probs

        def forward(self, x: Any) -> Any:
            total = self.one(self.members[0], x)
            for net in self.members[1:]:
                total = total + self.one(net, x)
            return total if len(self.members) == 1 else total / len(self.members)

    return Probabilities()


def export_onnx(model: Any, path: Path) -> None:
    """Export the probability model to ONNX (batch dimension dynamic)."""
    import torch

    model.eval().cpu()
    example = torch.zeros(1, 3, 32, 32)
    kwargs: dict[str, Any] = {
        "input_names": ["input"],
        "output_names": ["probabilities"],
        "dynamic_axes": {"input": {0: "batch"}, "probabilities": {0: "batch"}},
        "opset_version": 17,
    }
    import inspect
    import warnings

    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: no onnxscript needed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), **kwargs)


def onnx_benchmark(model_path: Path, x: np.ndarray, threads: int = 1) -> dict[str, float]:
    """Latency of the ONNX model with onnxruntime: median single image, batch-64 throughput."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    single = x[:1]
    batch = np.resize(x, (64, *x.shape[1:])).astype(np.float32)
    for _ in range(20):
        sess.run(None, {"input": single})
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        sess.run(None, {"input": single})
        times.append(time.perf_counter() - t0)
    sess.run(None, {"input": batch})
    btimes = []
    for _ in range(20):
        t0 = time.perf_counter()
        sess.run(None, {"input": batch})
        btimes.append(time.perf_counter() - t0)
    return {
        "onnx_threads": threads,
        "latency_single_ms": float(np.median(times) * 1e3),
        "latency_batch64_ms": float(np.median(btimes) * 1e3),
        "throughput_batch64_img_s": float(64 / np.median(btimes)),
    }
