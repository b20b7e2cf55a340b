"""onnxruntime as the predictor's network engine (``medseg predict --runtime onnx``).

:class:`OnnxPredictor` is a :class:`~medseg.infer.Predictor` whose fold networks are
onnxruntime sessions: everything else (preprocessing, sliding window, mirroring, fold averaging,
resampling back, post-processing) is the same code, so labels agree with the PyTorch engine up
to float rounding in the network (tested: at least 99.9 % of voxels identical). Each fold is
exported in memory when the predictor is built (one export per process, a few seconds), so the
model folder stays the single source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from medseg._typing import PathLikeStr
from medseg.errors import ConfigError
from medseg.infer import EnsemblePredictor, Predictor
from medseg.scale.onnx_export import onnx_bytes, require
from medseg.train.ensemble_folder import is_ensemble_folder

logger = logging.getLogger(__name__)

Runtime = Literal["torch", "onnx"]
RUNTIMES: tuple[str, ...] = ("torch", "onnx")


class OnnxNetwork(nn.Module):
    """An onnxruntime session behind the ``nn.Module`` call the sliding window makes.

    Parameters
    ----------
    model_bytes : bytes
        A model exported by :func:`medseg.scale.onnx_export.onnx_bytes`.
    device : torch.device
        ``cuda`` uses onnxruntime's CUDA provider when it is installed; anything else the CPU.
    threads : int, optional
        Intra-op threads; torch's thread count by default (the two engines compare fairly).
    lift_2d : bool
        The graph is a 2D network and inputs are ``(B, C, 1, Y, X)`` slices (as in the predictor).
    """

    def __init__(
        self,
        model_bytes: bytes,
        *,
        device: torch.device,
        threads: int | None = None,
        lift_2d: bool = False,
    ) -> None:
        super().__init__()
        ort = require("onnxruntime", "onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(model_bytes, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.lift_2d = lift_2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *patch)`` float tensor -> ``(B, K, *patch)`` float32 logits, on x's device."""
        inputs = x[:, :, 0] if self.lift_2d else x
        array = np.ascontiguousarray(inputs.detach().float().cpu().numpy())
        (logits,) = self.session.run(None, {self.input_name: array})
        result = torch.from_numpy(logits)
        return (result.unsqueeze(2) if self.lift_2d else result).to(x.device)


class OnnxPredictor(Predictor):
    """A :class:`~medseg.infer.Predictor` running its fold networks in onnxruntime.

    Takes the predictor's arguments plus ``threads`` (onnxruntime intra-op threads, torch's
    count by default) and ``onnx_models``: fold -> serialised ONNX model already exported by
    :func:`~medseg.scale.onnx_export.onnx_bytes` (folds missing from it are exported here; a
    batch job exports once and hands the bytes to every worker). ``use_bf16`` does not apply
    (the graph runs in float32).

    Raises
    ------
    ConfigError
        The ``onnx`` extra is not installed.
    """

    def __init__(
        self,
        model_dir: PathLikeStr,
        *,
        threads: int | None = None,
        onnx_models: Mapping[int, bytes] | None = None,
        **kwargs: Any,
    ) -> None:
        require("onnxruntime", "onnx")
        super().__init__(model_dir, **kwargs)
        if self.heads is not None:
            logger.warning("the onnx runtime segments only: use the torch runtime to classify")
            self.heads = None
        given = dict(onnx_models or {})
        self._sessions = {
            fold: OnnxNetwork(
                given[fold] if fold in given else onnx_bytes(self.model, fold),
                device=self.device,
                threads=threads,
                lift_2d=self._lift,
            )
            for fold in self.folds
        }
        logger.info("onnxruntime engine for folds %s", self.folds)

    def _iter_networks(self) -> Iterator[nn.Module]:
        for fold in self.folds:
            yield self._sessions[fold]


def make_predictor(
    model_dir: PathLikeStr,
    *,
    runtime: str = "torch",
    folds: Sequence[int] | None = None,
    **kwargs: Any,
) -> Predictor | EnsemblePredictor:
    """A predictor on the chosen engine: ``"torch"`` (default) or ``"onnx"`` (onnxruntime).

    ``kwargs`` are :class:`~medseg.infer.Predictor`'s keyword arguments. An ensemble folder
    (``medseg train --config multiplane``) gives an :class:`~medseg.infer.EnsemblePredictor`
    whose members use the engine.

    Raises
    ------
    ConfigError
        An unknown runtime, or ``onnx`` without the ``onnx`` extra installed.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r} (use {' or '.join(RUNTIMES)})")
    engine = OnnxPredictor if runtime == "onnx" else Predictor

    def load(folder: PathLikeStr) -> Predictor | EnsemblePredictor:
        if is_ensemble_folder(folder):
            return EnsemblePredictor(folder, load)
        return engine(folder, folds=folds, **kwargs)

    return load(model_dir)
