"""The mapper's model in ONNX Runtime (``map --runtime onnx``): ~2x faster than torch on a 2-core CPU.

The folded encoder + head (what :class:`~damagemap.tile_predictor.ModelTilePredictor` runs) is
exported once per process with ``torch.onnx``'s tracing exporter (~2 s; dynamic batch, the
model's fixed input size) and
run by ONNX Runtime on the CPU with torch's thread count. The graph returns the probabilities and
the pooled deepest encoder map, so flips (TTA), pair models and the active-learning features work
as with torch. Probabilities agree with torch's to ~1e-6 (``benchmarks/onnx_runtime.py``), not
bit for bit, so the runtime is part of a map's resume fingerprint.

Needs the optional packages ``onnxruntime`` and ``onnx`` (``pip install 'damagemap[onnx]'``).
"""

from __future__ import annotations

import importlib.util
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from damagemap.errors import ConfigError

RUNTIMES = ("torch", "onnx")
PACKAGES = ("onnxruntime", "onnx")


def check_runtime(runtime: str) -> str:
    """``runtime`` if it is known and, for ``onnx``, its packages are installed."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    missing = [p for p in PACKAGES if runtime == "onnx" and importlib.util.find_spec(p) is None]
    if missing:
        raise ConfigError(
            f"--runtime onnx needs {', '.join(PACKAGES)} ({', '.join(missing)} not installed): "
            "pip install 'damagemap[onnx]'"
        )
    return runtime


class _Graph(nn.Module):
    """Model-sized images (post, then pre for pair models) → probabilities and pooled deepest map."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model, self.encoder, self.head = model, model.encoder, model.head

    def forward(self, *images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        per_image = [self.encoder(x) for x in images]
        maps = [level for levels in per_image for level in levels]
        probs = self.model.probabilities(self.head(maps, tuple(images[0].shape[-2:])).float())
        return probs, per_image[0][-1].float().mean(dim=(-2, -1))


class OnnxModel:
    """An exported model and its ONNX Runtime session; called like the torch model's forward."""

    def __init__(self, model: Any, n_images: int, channels: int, size: int) -> None:
        import onnxruntime as ort

        graph = _Graph(model).eval()
        example = tuple(torch.zeros(2, channels, size, size) for _ in range(n_images))
        names = [f"x{i}" for i in range(n_images)]
        axes = {n: {0: "batch"} for n in [*names, "probs", "pooled"]}
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode(), warnings.catch_warnings():
            # tracing turns the fixed input size's padding arithmetic into constants: what we want
            warnings.simplefilter("ignore")
            path = Path(tmp) / "model.onnx"
            torch.onnx.export(
                graph,
                example,
                str(path),
                input_names=names,
                output_names=["probs", "pooled"],
                dynamic_axes=axes,
                dynamo=False,  # the tracing exporter: ~2 s, where torch.export takes ~10 s and ~150 MB
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.log_severity_level = 3  # errors only
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = names

    def __call__(self, images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probabilities [B, K, S, S], pooled [B, D])`` of model-sized images."""
        feed = {n: np.ascontiguousarray(x.float().cpu().numpy()) for n, x in zip(self.names, images, strict=True)}
        probs, pooled = self.session.run(None, feed)
        return torch.from_numpy(probs), torch.from_numpy(pooled)
