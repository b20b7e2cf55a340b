"""Predict with an ensemble folder: member models' probabilities averaged on the input grid.

Each member (a model folder, e.g. the 2.5D network of one plane) predicts the image with its
own preprocessing, folds and mirroring, and returns class probabilities on the input image's
grid (:meth:`Predictor.predict_image`). The ensemble averages them with equal weights and takes
the argmax (softmax models) or paints each region whose mean probability is > 0.5 in
``region_order`` (region models). Uncertainty maps follow from the same sums: predictive entropy
of the mean, and mutual information against the mean of every member's own (fold x mirror)
mean entropy. Members' post-processing rules are not applied: they were chosen for the member's
labels, not the ensemble's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg._typing import PathLikeStr
from medseg.errors import ModelFormatError
from medseg.infer.files import PredictReport, predict_files
from medseg.infer.prediction import (
    CaseProgressFn,
    ImagePredictor,
    Prediction,
    ProgressFn,
)
from medseg.infer.predictor import Predictor
from medseg.infer.uncertainty import member_entropy, mutual_information
from medseg.io import Image
from medseg.preprocess.case import outputs_to_labels
from medseg.train.ensemble_folder import ensemble_members, is_ensemble_folder
from medseg.train.model_folder import ModelFolder

MemberFactory = Callable[[Path], ImagePredictor]


def load_predictor(model_dir: PathLikeStr, **kwargs: Any) -> Predictor | EnsemblePredictor:
    """A :class:`Predictor` for a model folder, an :class:`EnsemblePredictor` for an ensemble
    folder (its members loaded the same way, so a member may be an ensemble itself: planes x
    normalisations); ``kwargs`` are :class:`Predictor`'s, passed to every member."""
    if is_ensemble_folder(model_dir):
        return EnsemblePredictor(model_dir, lambda folder: load_predictor(folder, **kwargs))
    return Predictor(model_dir, **kwargs)


class EnsemblePredictor:
    """Average the members of an ensemble folder (``medseg train --config multiplane``).

    Parameters
    ----------
    model_dir : path
        An ensemble folder (:mod:`medseg.train.ensemble_folder`).
    make_member : callable(path) -> predictor
        Builds the predictor of one member model folder, e.g.
        ``lambda p: Predictor(p, device="cpu", folds=[0])``.

    Raises
    ------
    ModelFormatError
        A malformed ``ensemble.json``, or members whose labels, regions or channels differ.
    """

    def __init__(self, model_dir: PathLikeStr, make_member: MemberFactory) -> None:
        self.path = Path(model_dir)
        self.members = [make_member(folder) for folder in ensemble_members(self.path)]
        first = self.members[0].model
        for member in self.members[1:]:
            plan, ref = member.model.plan, first.plan
            if (plan.labels, plan.regions, plan.channel_names) != (
                ref.labels,
                ref.regions,
                ref.channel_names,
            ):
                raise ModelFormatError(
                    f"{self.path}: member {member.model.path.name} has other labels, regions or "
                    f"channels than {first.path.name}; an ensemble needs the same ones"
                )
        self.model: ModelFolder = first

    @property
    def num_channels(self) -> int:
        """Input channels the members expect."""
        return len(self.model.plan.channel_names)

    def predict_image(
        self,
        image: Image,
        *,
        probabilities: bool = False,
        uncertainty: bool = False,
        case_id: str = "",
        on_progress: ProgressFn | None = None,
    ) -> Prediction:
        """Segment one image with every member and average (see the module docstring).

        Parameters are those of :meth:`medseg.infer.Predictor.predict_image`; ``on_progress``
        counts each member's tiles in turn.

        Returns
        -------
        Prediction
            On the input's grid; ``members`` is the sum of the members' members.
        """
        plan = self.model.plan
        activation = "sigmoid" if plan.regions else "softmax"
        total = None
        inner_entropy = None
        count = 0
        for index, member in enumerate(self.members):
            result = member.predict_image(
                image,
                probabilities=True,
                uncertainty=uncertainty,
                case_id=case_id,
                on_progress=_shifted(on_progress, index, len(self.members)),
            )
            probs = torch.from_numpy(result.probabilities.array.astype(np.float32))
            total = probs if total is None else total + probs
            count += result.members
            if uncertainty:
                maps = result.uncertainty
                own = maps["entropy"].array[0] - maps["mutual_information"].array[0]
                inner_entropy = own if inner_entropy is None else inner_entropy + own
        mean = total / len(self.members)
        regions = tuple(plan.region_order) if plan.regions else None
        labels = outputs_to_labels(mean[None], regions, threshold=0.5).numpy()
        labels_image = _on_grid(labels, image)
        probs_image = _on_grid(mean.numpy().astype(np.float16), image) if probabilities else None
        maps_out: dict[str, Image] = {}
        if uncertainty and inner_entropy is not None:
            inner = torch.from_numpy(inner_entropy / len(self.members))
            entropy = member_entropy(mean, activation, dim=0)
            info = mutual_information(mean, inner, activation)
            for key, value in (("entropy", entropy), ("mutual_information", info)):
                maps_out[key] = _on_grid(value.numpy().astype(np.float32)[None], image)
        return Prediction(
            labels=labels_image, probabilities=probs_image, uncertainty=maps_out, members=count
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


def _on_grid(array: np.ndarray, image: Image) -> Image:
    """``array`` (channel-first) with exactly ``image``'s spacing, origin and direction."""
    return Image(
        array=array,
        spacing=image.spacing,
        origin=image.origin,
        direction=image.direction.copy(),
        meta={"source": image.meta.get("source", "")},
    )


def _shifted(callback: ProgressFn | None, index: int, count: int) -> ProgressFn | None:
    """Progress of member ``index`` of ``count`` as progress over all of them."""
    if callback is None:
        return None
    return lambda done, total: callback(index * total + done, total * count)
