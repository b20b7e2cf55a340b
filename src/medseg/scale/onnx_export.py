"""Export one fold of a model folder to ONNX, with what a consumer needs in the metadata.

The graph maps ``image`` ``(N, C, *spatial)`` float32 (preprocessed: resampled and normalised
as in training, spatial axes in the plan's transposed order) to ``logits`` ``(N, K, *spatial)``
float32. The batch and every spatial axis are dynamic; the network needs each spatial size to
be a multiple of the product of its strides (the patch size always is). Softmax (or sigmoid for
region models, see ``medseg.activation``) turns logits into probabilities.

Metadata (``metadata_props``, every value a string, JSON where structured):

``medseg.format``
    ``"1"``: version of this layout.
``medseg.version``, ``medseg.fold``, ``medseg.configuration``
    The exporting medseg, the fold (``-1`` = trained on all cases), ``"2d"`` or ``"3d"``.
``medseg.labels``, ``medseg.channel_names``, ``medseg.regions``, ``medseg.region_order``
    Label name -> value; channel index -> name; region definitions (sigmoid models).
``medseg.activation``
    ``"softmax"`` or ``"sigmoid"``.
``medseg.preprocessing``
    ``{"spacing", "patch_size", "transpose", "crop_to_nonzero", "normalization"}``: target
    spacing (mm) and patch (voxels) in network axis order, the axis transpose applied to
    ``(z, y, x)`` images, and one normalisation record per channel (scheme, clip, mean, std).
``medseg.plan``, ``medseg.postprocessing``
    The full ``plan.json`` and the ``postprocessing.json`` rules (``{}`` if none).
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

from medseg import __version__
from medseg._atomic import atomic_path
from medseg._config import to_jsonable
from medseg._typing import PathLikeStr
from medseg.errors import ConfigError, ModelFormatError
from medseg.train.model_folder import ModelFolder

logger = logging.getLogger(__name__)

ONNX_FORMAT = 1
"""Version of the metadata layout written by :func:`export_onnx`."""
OPSET = 18
"""ONNX opset of exported graphs (onnxruntime >= 1.14 runs it)."""


def export_onnx(
    model_dir: PathLikeStr | ModelFolder, output: PathLikeStr, *, fold: int | None = None
) -> Path:
    """Write one fold of a model folder as an ONNX file.

    Parameters
    ----------
    model_dir : path or ModelFolder
        A trained model folder.
    output : path
        The ``.onnx`` file to write (atomically); its folder is created.
    fold : int, optional
        Which fold; the first trained fold by default (export each fold for an ensemble).

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    ModelFormatError
        Invalid model folder or a fold without weights.
    ConfigError
        The ``onnx`` extra (onnx, onnxscript) is not installed, or the model is a cascade
        stage (its input includes the previous stage's prediction, which ONNX runs lack).
    """
    model = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.load(model_dir)
    if model.config.previous_stage is not None:
        raise ConfigError(
            f"{model.path}: a {model.configuration_name} model takes the prediction of its "
            f"{model.config.previous_stage} stage as input channels; ONNX export covers "
            "single-stage models (predict it with medseg predict)"
        )
    chosen = model.folds[0] if fold is None else fold
    if fold is None and len(model.folds) > 1:
        logger.info("exporting fold %d of %s (pass fold= for another)", chosen, model.folds)
    data = onnx_bytes(model, chosen)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def onnx_bytes(model: ModelFolder, fold: int) -> bytes:
    """The serialised ONNX model of ``fold`` (see the module docstring), built in memory."""
    onnx = require("onnx", "onnx")
    require("onnxscript", "onnx")
    import torch
    from torch.export import Dim

    if fold not in model.folds:
        raise ModelFormatError(
            f"{model.path}: fold {fold} has no weights (trained folds: {model.folds})"
        )
    network = model.build_network(fold, "cpu")
    patch = tuple(model.config.patch_size)
    example = torch.zeros(
        (2, model.plan.input_channels(model.configuration_name), *patch), dtype=torch.float32
    )
    dynamic = {0: Dim.DYNAMIC, **{axis + 2: Dim.DYNAMIC for axis in range(len(patch))}}
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            network,
            (example,),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=(dynamic,),
            opset_version=OPSET,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata(model, fold))
    buffer = io.BytesIO()
    onnx.save_model(proto, buffer)
    return buffer.getvalue()


def metadata(model: ModelFolder, fold: int) -> dict[str, str]:
    """The ``medseg.*`` metadata entries of an exported fold (strings; JSON where structured)."""
    plan, config = model.plan, model.config
    preprocessing = {
        "spacing": list(config.spacing),
        "patch_size": list(config.patch_size),
        "transpose": list(plan.transpose),
        "crop_to_nonzero": plan.crop_to_nonzero,
        "normalization": to_jsonable(plan.normalization),
    }
    entries: dict[str, Any] = {
        "format": str(ONNX_FORMAT),
        "version": __version__,
        "fold": str(fold),
        "configuration": model.configuration_name,
        "labels": plan.labels,
        "channel_names": plan.channel_names,
        "regions": plan.regions,
        "region_order": list(plan.region_order),
        "activation": "sigmoid" if plan.regions else "softmax",
        "preprocessing": preprocessing,
        "plan": to_jsonable(plan),
        "postprocessing": model.postprocessing,
    }
    return {
        f"medseg.{key}": value if isinstance(value, str) else json.dumps(to_jsonable(value))
        for key, value in entries.items()
    }


def read_metadata(path: PathLikeStr) -> dict[str, Any]:
    """The ``medseg.*`` metadata of an exported file, JSON values parsed, prefix dropped.

    Raises
    ------
    ModelFormatError
        The file is not an ONNX model or has no medseg metadata.
    """
    onnx = require("onnx", "onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # OSError, protobuf's DecodeError (no stable import path)...
        raise ModelFormatError(f"{path}: not a readable ONNX file ({err})") from err
    props = {p.key: p.value for p in proto.metadata_props if p.key.startswith("medseg.")}
    if not props:
        raise ModelFormatError(f"{path}: no medseg metadata (not exported by medseg export)")
    result: dict[str, Any] = {}
    for key, value in props.items():
        name = key.removeprefix("medseg.")
        result[name] = value if name in {"format", "version", "configuration"} else _parse(value)
    return result


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or raise a :class:`ConfigError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(
            f"{module} is not installed; install it with: pip install 'medseg[{extra}]'"
        ) from err


def _parse(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
