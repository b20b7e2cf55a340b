"""Beyond one process: ONNX export and onnxruntime inference, Ray batch prediction, DDP training.

The package import is light; the public names load their module on first use (Ray, onnx and
onnxruntime are optional extras: ``pip install 'medseg[ray]'``, ``'medseg[onnx]'``)::

    from medseg.scale import export_onnx, make_predictor

See ``docs/scale.md``.
"""

from __future__ import annotations

from medseg._lazy import lazy_getattr

_EXPORTS = {
    "export_onnx": "medseg.scale.onnx_export",
    "read_metadata": "medseg.scale.onnx_export",
    "OnnxPredictor": "medseg.scale.onnx_runtime",
    "make_predictor": "medseg.scale.onnx_runtime",
    "predict_with_ray": "medseg.scale.ray_predict",
    "BatchReport": "medseg.scale.ray_predict",
    "train_model_ddp": "medseg.scale.ddp",
    "init_distributed": "medseg.scale.ddp",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
