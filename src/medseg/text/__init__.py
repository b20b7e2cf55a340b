"""Text prompts: segment what a phrase names, resolved against a model's classes and lesions.

No language model is involved: a small deterministic grammar (:func:`parse`, docs/text.md)
reads the phrase against the class names (with a shipped synonym table and spelling
correction), and :func:`resolve` selects the voxels from the clinical report's lesion table
and the structures' positions in patient space. Start with :func:`build_scene` (measure a
segmentation once) and :func:`find` (one phrase), or :func:`ground` (a report's sentences).
"""

from medseg.text.api import (
    GroundedSentence,
    find,
    find_files,
    ground,
    ground_files,
    load_scene,
    split_sentences,
)
from medseg.text.parse import Classes, parse
from medseg.text.query import (
    AmbiguousQuery,
    Clause,
    Measure,
    NotUnderstood,
    Order,
    Query,
    QueryError,
    Relation,
)
from medseg.text.resolve import Selection, resolve
from medseg.text.scene import Instance, Scene, build_scene

__all__ = [
    "AmbiguousQuery",
    "Classes",
    "Clause",
    "GroundedSentence",
    "Instance",
    "Measure",
    "NotUnderstood",
    "Order",
    "Query",
    "QueryError",
    "Relation",
    "Scene",
    "Selection",
    "build_scene",
    "find",
    "find_files",
    "ground",
    "ground_files",
    "load_scene",
    "parse",
    "resolve",
    "split_sentences",
]
