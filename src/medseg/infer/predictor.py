"""The :class:`Predictor`: a trained model folder applied to images, with the input's geometry.

Pipeline per image (docs/predict.md): check channels -> preprocess exactly as in training
(:func:`medseg.preprocess.preprocess_image`) -> for a cascade stage, the previous stage's
prediction on the same image, resampled to this grid and one-hot encoded as extra channels
(docs/methods.md, "Cascade") -> Gaussian sliding window over every fold and
mirror combination (a planar configuration: over slices along its plane, with its neighbours
as channels, :mod:`medseg.train.planar`), averaging *probabilities* -> slab-wise resampling
back to the input grid and argmax (:func:`medseg.preprocess.restore_to_original`) ->
post-processing rules from ``postprocessing.json``. Optional outputs: class probabilities and
uncertainty maps.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg._typing import PathLikeStr
from medseg.data.case_table import CaseTable, read_case_table
from medseg.errors import ConfigError, DatasetError, ModelFormatError
from medseg.infer.classification import FoldHeads
from medseg.infer.export import restore_maps
from medseg.infer.files import PredictReport, predict_files
from medseg.infer.inputs import require_inputs
from medseg.infer.postprocessing import (
    PostprocessingRules,
    apply_postprocessing,
    load_postprocessing,
)
from medseg.infer.prediction import CaseProgressFn, Prediction, ProgressFn
from medseg.infer.sliding_window import WindowResult, WindowSettings, sliding_window_predict
from medseg.infer.uncertainty import member_entropy, mutual_information
from medseg.io import Image
from medseg.plan.plan import cascade_labels
from medseg.preprocess import CaseProperties, preprocess_image, restore_to_original
from medseg.preprocess.case import preprocess_label
from medseg.train.cascade import CascadeError, one_hot
from medseg.train.case_head import BottleneckTap
from medseg.train.model_folder import ModelFolder
from medseg.train.planar import from_plane, stack_neighbours, to_plane
from medseg.train.trainer import resolve_device

logger = logging.getLogger(__name__)


class Predictor:
    """Predict label maps with a trained model folder.

    Parameters
    ----------
    model_dir : path
        A model folder (see :class:`medseg.train.ModelFolder`).
    device : str
        ``"auto"`` (CUDA if available, else CPU, as in training), or a torch device string such
        as ``"cpu"`` or ``"mps"``.
    folds : sequence of int, optional
        Folds to average; all trained folds by default.
    tta : bool
        Mirroring test-time augmentation (default on).
    fast : bool
        Shorthand for ``tta=False``.
    mirror_axes : sequence of int, optional
        Network axes to mirror (0 = first spatial axis of the patch); the plan's
        ``TrainingConfig.mirror_axes`` by default.
    step : float
        Tile spacing as a fraction of the patch (0.5 = nnU-Net default).
    batch_size : int, optional
        Network inputs per forward pass (tiles x mirror combinations); by default as many as
        fit about 2 million input voxels, at least 1 and at most 16 (on a CPU, batches of
        small tiles run several times faster per tile than single tiles).
    use_bf16 : bool
        bfloat16 autocast (fast only on CPUs with native bf16, or GPUs); see docs/predict.md.
    channels_last : bool
        Channels-last memory format for 3D networks.
    postprocess : bool
        Apply ``postprocessing.json`` rules (default on).
    case_table : path or CaseTable, optional
        Per-case fields for a model trained with ``--classify`` and metadata
        (:mod:`medseg.infer.classification`); looked up by case id.

    Raises
    ------
    ModelFormatError
        Missing or invalid model folder, or a requested fold without weights.
    ConfigError
        ``step`` outside (0, 1], ``batch_size`` < 1, mirror axes the network does not have, or
        an unknown device.
    """

    def __init__(
        self,
        model_dir: PathLikeStr,
        *,
        device: str = "auto",
        folds: Sequence[int] | None = None,
        tta: bool = True,
        fast: bool = False,
        mirror_axes: Sequence[int] | None = None,
        step: float = 0.5,
        batch_size: int | None = None,
        use_bf16: bool = False,
        channels_last: bool = False,
        postprocess: bool = True,
        case_table: PathLikeStr | CaseTable | None = None,
    ) -> None:
        if not 0 < step <= 1:
            raise ConfigError(f"step must be in (0, 1] (a fraction of the patch), got {step}")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.model = ModelFolder.load(Path(model_dir))
        self.device = _device(device)
        self.folds = list(self.model.folds if folds is None else folds)
        for fold in self.folds:
            if fold not in self.model.folds:
                raise ModelFormatError(
                    f"{self.model.path}: fold {fold} has no weights "
                    f"(trained folds: {self.model.folds})"
                )
        config = self.model.config
        self._lift = len(config.patch_size) == 2  # 2D network on (C, S, A, B) slices
        patch = (1, *config.patch_size) if self._lift else tuple(config.patch_size)
        axes = config.training.mirror_axes if mirror_axes is None else tuple(mirror_axes)
        if any(not 0 <= a < len(config.patch_size) for a in axes):
            raise ConfigError(
                f"mirror axes {axes} do not exist for a {len(config.patch_size)}D network"
            )
        axes = tuple(a + 1 for a in axes) if self._lift else tuple(axes)
        if batch_size is None:
            batch_size = int(min(16, max(1, round(2**21 / math.prod(patch)))))
        self.settings = WindowSettings(
            patch_size=patch,
            step=step,
            mirror_axes=axes if (tta and not fast) else (),
            batch_size=batch_size,
            activation="sigmoid" if self.model.plan.regions else "softmax",
            use_bf16=use_bf16,
            channels_last=channels_last and not self._lift,
        )
        self.rules = load_postprocessing(self.model.path) if postprocess else PostprocessingRules()
        self._networks: dict[int, nn.Module] = {}
        self.previous = None
        if config.previous_stage is not None:
            self.previous = Predictor(
                _previous_stage_dir(self.model),
                device=device,
                tta=tta,
                fast=fast,
                step=step,
                use_bf16=use_bf16,
                channels_last=channels_last,
                postprocess=postprocess,
            )
        self.heads = FoldHeads.of(self.model, self.folds, self.device)
        self.case_table = (
            read_case_table(case_table)
            if case_table is not None and not isinstance(case_table, CaseTable)
            else case_table
        )
        self._taps: dict[int, BottleneckTap] = {}
        self._pooled: dict[int, list[torch.Tensor]] = {}
        logger.info(
            "model %s: folds %s on %s, mirror axes %s, step %s, batch %d",
            self.model.path,
            self.folds,
            self.device,
            self.settings.mirror_axes,
            step,
            batch_size,
        )

    @property
    def num_channels(self) -> int:
        """Input channels the model expects."""
        return len(self.model.plan.channel_names)

    def predict_image(
        self,
        image: Image,
        *,
        probabilities: bool = False,
        uncertainty: bool = False,
        case_id: str = "",
        on_progress: ProgressFn | None = None,
        metadata: Mapping[str, str | None] | None = None,
    ) -> Prediction:
        """Segment one image (and classify it, for a model trained with ``--classify``).

        Parameters
        ----------
        image : Image
            ``(C, Z, Y, X)`` or ``(C, Y, X)`` raw intensities, channels in the model's order.
        probabilities : bool
            Also return class probabilities on the input grid.
        uncertainty : bool
            Also return predictive entropy and mutual information (member disagreement).
        case_id : str
            Used in error messages.
        on_progress : callable(done, total), optional
            Tiles done over tiles x folds.
        metadata : mapping of str to str, optional
            The case's metadata fields for the classifier (raw values as in a case table);
            by default its row of ``case_table``.

        Returns
        -------
        Prediction
            On exactly the input's grid: same spatial shape, spacing, origin and direction.

        Raises
        ------
        DatasetError
            The image's channel count differs from the model's.
        """
        name = case_id or image.meta.get("source", "image")
        if image.num_channels != self.num_channels:
            raise DatasetError(
                f"{name}: image has {image.num_channels} channel(s) but the model expects "
                f"{self.num_channels} ({', '.join(self.model.plan.channel_names.values())}); "
                "pass one file per channel (case_0000, case_0001, ...)"
            )
        plan = self.model.plan
        values = (
            None if self.heads is None else self.heads.metadata(name, self.case_table, metadata)
        )
        array, props = preprocess_image(
            image, plan, self.model.configuration_name, case_id=str(name)
        )
        if self.previous is not None:
            array = self._with_previous_stage(image, array, props, str(name))
        config = self.model.config
        if self._lift:  # planar: slices along the plane, neighbours as channels
            array = stack_neighbours(to_plane(array, config.plane), config.neighbours)
        result = sliding_window_predict(
            self._iter_networks(),
            torch.from_numpy(np.ascontiguousarray(array)),
            self.settings,
            num_classes=plan.num_classes,
            device=self.device,
            track_entropy=uncertainty,
            num_networks=len(self.folds),
            on_progress=on_progress,
        )
        if self._lift and config.plane:
            entropy = result.mean_member_entropy
            result = WindowResult(
                from_plane(result.probabilities, config.plane).contiguous(),
                None
                if entropy is None
                else from_plane(entropy[None], config.plane)[0].contiguous(),
                result.members,
            )
        regions = tuple(plan.region_order) if plan.regions else None
        labels = restore_to_original(result.probabilities, props, region_order=regions)
        if not self.rules.is_empty:
            labels = labels.with_array(apply_postprocessing(labels.array[0], self.rules)[None])
        labels = _same_geometry(labels, image)
        probs = None
        if probabilities:
            fill = None if regions else [1.0] + [0.0] * (plan.num_classes - 1)
            probs = _same_geometry(restore_maps(result.probabilities, props, fill=fill), image)
        maps: dict[str, Image] = {}
        if uncertainty and result.mean_member_entropy is not None:
            activation = self.settings.activation
            entropy = member_entropy(result.probabilities, activation, dim=0)
            info = mutual_information(result.probabilities, result.mean_member_entropy, activation)
            for key, value in (("entropy", entropy), ("mutual_information", info)):
                restored = restore_maps(value[None], props, dtype=np.float32)
                maps[key] = _same_geometry(restored, image)
        classification = None
        if self.heads is not None and values is not None:
            classification = self.heads.classify(self._pooled, values)
            self._pooled = {}
        return Prediction(
            labels=labels,
            probabilities=probs,
            uncertainty=maps,
            members=result.members,
            classification=classification,
        )

    def predict_files(
        self,
        inputs: PathLikeStr | Sequence[PathLikeStr],
        out_dir: PathLikeStr,
        *,
        probabilities: bool = False,
        uncertainty: bool = False,
        volumes_json: bool = True,
        dicom_seg: bool = False,
        on_progress: ProgressFn | None = None,
        on_case_progress: CaseProgressFn | None = None,
    ) -> PredictReport:
        """Predict files and folders into ``out_dir``; see :mod:`medseg.infer.files`."""
        if self.heads is not None and self.heads.fields:
            ids = [case.case_id for case in require_inputs(inputs)]
            if self.case_table is None:
                self.heads.metadata(ids[0], None, None)  # raises: the metadata is needed
            else:
                self.case_table.require_cases(ids)
        return predict_files(
            self,
            inputs,
            out_dir,
            probabilities=probabilities,
            uncertainty=uncertainty,
            volumes_json=volumes_json,
            dicom_seg=dicom_seg,
            on_progress=on_progress,
            on_case_progress=on_case_progress,
        )

    def _with_previous_stage(
        self, image: Image, array: np.ndarray, props: CaseProperties, name: str
    ) -> np.ndarray:
        """``array`` ``(C, Z', Y', X')`` with the previous stage's one-hot labels appended."""
        assert self.previous is not None
        low = self.previous.predict_image(image, case_id=name).labels
        on_grid = preprocess_label(low.array[0], props)[0]
        channels = one_hot(on_grid, cascade_labels(self.model.plan))
        return np.concatenate([array, channels])

    def _iter_networks(self) -> Iterator[nn.Module]:
        """Each fold's network, built once and kept for later images.

        With classification heads, the pooled bottleneck features of the windows a network
        predicts are kept in ``self._pooled[fold]``.
        """
        for fold in self.folds:
            if fold not in self._networks:
                network = self.model.build_network(fold, self.device)
                if self.heads is not None:
                    self._taps[fold] = BottleneckTap(network)
                self._networks[fold] = _Lift2D(network) if self._lift else network
            if self.heads is None:
                yield self._networks[fold]
                continue
            with self._taps[fold].collect() as pooled:
                yield self._networks[fold]
            self._pooled[fold] = pooled


class _Lift2D(nn.Module):
    """Run a 2D network on ``(B, C, 1, A, B)`` tiles: slices along the first axis of a 3D array
    (the configuration's plane, moved first; 2.5D inputs carry the neighbours as channels)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x[:, :, 0]).unsqueeze(2)


def _previous_stage_dir(model: ModelFolder) -> Path:
    """The previous stage's model folder recorded by a cascade model (it must be trained)."""
    where = model.previous_stage
    if where is None or not (where / "model.json").is_file():
        previous = model.config.previous_stage
        raise CascadeError(
            f"{model.path}: this {model.configuration_name} model needs its trained {previous} "
            f"model at {where or 'a folder model.json does not name'}; train it (`medseg train "
            f"DATASET -o LOWRES --config {previous}`) and the cascade with --previous-stage LOWRES"
        )
    return where


def _device(device: str) -> torch.device:
    """The training stage's device policy, with an unknown device name as a ``ConfigError``."""
    try:
        return resolve_device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r} (use auto, cpu, cuda, mps)") from err


def _same_geometry(result: Image, image: Image) -> Image:
    """``result`` with exactly ``image``'s spacing, origin, direction (no float round trip)."""
    return Image(
        array=result.array,
        spacing=image.spacing,
        origin=image.origin,
        direction=image.direction.copy(),
        meta={**result.meta, "source": image.meta.get("source", "")},
    )
