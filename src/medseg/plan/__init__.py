"""Planning: a dataset fingerprint and the rules that turn it into an editable ``plan.json``."""

from medseg.plan.budget import PlanBudget
from medseg.plan.fingerprint import Fingerprint, extract_fingerprint, load_or_extract_fingerprint
from medseg.plan.overrides import apply_overrides, parse_assignment
from medseg.plan.plan import (
    ChannelNormalization,
    ClassificationConfig,
    Configuration,
    LesionSynthesisConfig,
    NetworkConfig,
    Plan,
    TrainingConfig,
    save_plan,
)
from medseg.plan.planner import make_plan
from medseg.plan.validate import load_plan, validate_plan

__all__ = [
    "ChannelNormalization",
    "ClassificationConfig",
    "Configuration",
    "Fingerprint",
    "LesionSynthesisConfig",
    "NetworkConfig",
    "Plan",
    "PlanBudget",
    "TrainingConfig",
    "apply_overrides",
    "extract_fingerprint",
    "load_or_extract_fingerprint",
    "load_plan",
    "make_plan",
    "parse_assignment",
    "save_plan",
    "validate_plan",
]
