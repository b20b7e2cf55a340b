"""Interactive segmentation: prompts, sessions, classical and learned engines, evaluation.

Quick start::

    from medseg.interactive import Session, load_engine
    session = Session(image)          # the shipped universal model; or Session(image, engine)
    session.add_box((10, 20, 30), (18, 60, 70))
    session.add_click((14, 40, 50), positive=False)
    prediction = session.predict()                       # .mask, .probabilities, .roi

See ``docs/interactive.md``. Heavy parts (torch, the protocol) load on first use.
"""

from __future__ import annotations

from medseg._lazy import lazy_getattr

_EXPORTS = {
    "Box": "medseg.interactive.prompts",
    "Click": "medseg.interactive.prompts",
    "Scribble": "medseg.interactive.prompts",
    "Prompt": "medseg.interactive.prompts",
    "render_prompts": "medseg.interactive.prompts",
    "Session": "medseg.interactive.session",
    "MultiSession": "medseg.interactive.multi",
    "LabelUpdate": "medseg.interactive.multi",
    "Prediction": "medseg.interactive.session",
    "region_of_interest": "medseg.interactive.session",
    "Engine": "medseg.interactive.engine",
    "load_engine": "medseg.interactive.engine",
    "default_engine": "medseg.interactive.engine",
    "universal_model_dir": "medseg.interactive.engine",
    "UniversalTrainConfig": "medseg.interactive.universal",
    "train_universal": "medseg.interactive.universal",
    "RandomWalkerEngine": "medseg.interactive.classical",
    "LearnedEngine": "medseg.interactive.learned",
    "InteractiveModelConfig": "medseg.interactive.network",
    "InteractiveTrainConfig": "medseg.interactive.training",
    "train_interactive": "medseg.interactive.training",
    "evaluate_interactive": "medseg.interactive.protocol",
    "simulate_case": "medseg.interactive.protocol",
    "InteractiveEvaluation": "medseg.interactive.protocol",
    "error_click": "medseg.interactive.simulate",
    "ritm_click": "medseg.interactive.simulate",
    "simulate_box": "medseg.interactive.simulate",
    "simulate_scribble": "medseg.interactive.simulate",
    "interaction_auc": "medseg.interactive.metrics",
    "number_of_clicks": "medseg.interactive.metrics",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
