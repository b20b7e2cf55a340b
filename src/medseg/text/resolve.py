"""A :class:`~medseg.text.query.Query` against a :class:`~medseg.text.scene.Scene`: the voxels.

Each clause takes the instances of its classes (lesions from the lesion table, or whole
structures), keeps those that pass every filter (ids, new/old, side, direction, measurements,
relations), then orders them if asked ("the two largest") and checks the number asked for: a
singular noun without an ordering wants exactly one instance, a stated count that many. A
mismatch raises :class:`~medseg.text.query.AmbiguousQuery` listing the candidates. The clauses'
voxels are united into one mask on the segmentation's grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.text.query import AmbiguousQuery, Clause, Measure, Query, QueryError, Relation
from medseg.text.scene import Instance, Scene, new_lesion_ids

_AXIS = {"left": (0, 1.0), "right": (0, -1.0), "posterior": (1, 1.0), "anterior": (1, -1.0)}
_AXIS |= {"superior": (2, 1.0), "inferior": (2, -1.0)}
"""Direction -> (LPS component, sign): "anterior" means a smaller LPS y."""


@dataclass(frozen=True)
class ClauseResult:
    """What one clause selected: its instances, how many were candidates, notes."""

    clause: Clause
    candidates: int
    instances: tuple[Instance, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """The voxels a query selects and why.

    ``mask`` is ``(Z, Y, X)`` bool on the segmentation's grid (union of the selected clauses).
    """

    query: Query
    mask: npt.NDArray[np.bool_]
    results: tuple[ClauseResult, ...]
    scene: Scene

    @property
    def instances(self) -> tuple[Instance, ...]:
        return tuple(i for r in self.results if not r.clause.context for i in r.instances)

    def to_dict(self) -> dict[str, Any]:
        """The explanation: query, corrections, each clause's reading and measured instances."""
        voxels = int(np.count_nonzero(self.mask))
        return {
            "query": self.query.text,
            "corrections": [{"written": a, "read_as": b} for a, b in self.query.corrections],
            "ignored_words": list(self.query.ignored),
            "notes": list(self.query.notes),
            "voxels": voxels,
            "volume_ml": voxels * float(np.prod(self.scene.geometry.spacing)) / 1000.0,
            "clauses": [self._clause_dict(r) for r in self.results],
        }

    def _clause_dict(self, result: ClauseResult) -> dict[str, Any]:
        scene = self.scene
        return {
            "reading": describe(result.clause, scene),
            "classes": [scene.classes.names[v] for v in result.clause.labels],
            "context_only": result.clause.context,
            "candidates": result.candidates,
            "selected": [describe_instance(i, scene) for i in result.instances],
            "notes": list(result.notes),
        }


def resolve(query: Query, scene: Scene) -> Selection:
    """Select the voxels a query names.

    Returns
    -------
    Selection

    Raises
    ------
    AmbiguousQuery
        A clause asks for one (or N) instances and more or fewer match.
    QueryError
        "new" without a prior scan; diameters asked of a structure.
    """
    results = tuple(_clause(c, scene) for c in query.clauses)
    mask = np.zeros(scene.labels.shape, dtype=bool)
    for result in results:
        if result.clause.context:
            continue
        for inst in result.instances:
            box, inner = scene.mask(inst)
            mask[box] |= inner
    return Selection(query=query, mask=mask, results=results, scene=scene)


def _clause(clause: Clause, scene: Scene) -> ClauseResult:
    notes: list[str] = []
    group = clause.group if clause.order is None else None  # "the largest lobe": each lobe
    pool = scene.instances(clause.labels, group=group)
    candidates = len(pool)
    if clause.lesion_ids:
        pool = [i for i in pool if i.lesion and i.lesion.lesion_id in clause.lesion_ids]
    if clause.new is not None:
        new = new_lesion_ids(scene)
        pool = [i for i in pool if i.lesion and (i.lesion.lesion_id in new) == clause.new]
    if clause.side is not None:
        pool = _by_side(pool, clause.side, scene, notes)
    centre = scene.centre_lps
    for direction in clause.directions:
        axis, sign = _AXIS[direction]
        pool = [i for i in pool if sign * (scene.centroid_lps(i)[axis] - centre[axis]) > 0]
    for measure in clause.measures:
        pool = [i for i in pool if measure.holds(_measured(i, measure, scene))]
    for relation in clause.relations:
        pool = [i for i in pool if _related(i, relation, scene)]
    if clause.total is not None:
        total = sum(scene.volume_ml(i) for i in pool)
        if not clause.total.holds(total):
            notes.append(
                f"the phrase states {clause.total.value:g} ml in total; {total:.2f} ml match"
            )
    if clause.order is not None:
        pool = _ordered(pool, clause, scene)[: clause.order.n]
    _check_count(clause, pool, scene, notes)
    if clause.count == 0:  # "no lesion in the spleen" states an absence: nothing is selected
        pool = []
    return ClauseResult(clause, candidates, tuple(pool), tuple(notes))


def _by_side(pool: list[Instance], side: str, scene: Scene, notes: list[str]) -> list[Instance]:
    kept = []
    for inst in pool:
        own = scene.side(inst)
        if own == side:
            kept.append(inst)
        elif inst.lesion is None and own == "midline" and side != "midline":
            kept.append(Instance(inst.label, inst.name, clip=side, group=inst.group))  # type: ignore[arg-type]
            notes.append(f"{inst.name} spans the midline: its {side} part is selected")
    return kept


def _measured(inst: Instance, measure: Measure, scene: Scene) -> float:
    if measure.quantity == "volume_ml":
        return scene.volume_ml(inst)
    if inst.lesion is None:
        raise QueryError(
            f"{measure.quantity.replace('_', ' ')} is measured for lesions only, not {inst.name}",
            suggestion="give a volume (e.g. 'over 100 ml') for a structure",
        )
    return float(getattr(inst.lesion, measure.quantity))


def _related(inst: Instance, relation: Relation, scene: Scene) -> bool:
    names = {scene.classes.names[v] for v in relation.labels}
    if relation.kind in ("in", "touching") and inst.lesion is not None:
        if relation.kind == "in":
            return inst.lesion.structure in names
        return bool(names & set(scene.structure_names(inst)))
    if relation.kind in ("in", "touching"):
        return scene.distance_mm(inst, relation.labels) <= scene.touch_mm
    if relation.kind == "near":
        return scene.distance_mm(inst, relation.labels) <= (relation.distance_mm or 0.0)
    axis, sign = _AXIS[relation.kind]
    reference = scene.reference_centroid(relation.labels)
    return bool(sign * (scene.centroid_lps(inst)[axis] - reference[axis]) > 0)


def _ordered(pool: list[Instance], clause: Clause, scene: Scene) -> list[Instance]:
    order = clause.order
    assert order is not None
    if order.key == "volume_ml":
        values = [scene.volume_ml(i) for i in pool]
    elif order.key == "longest_diameter_mm":
        values = [_measured(i, Measure(quantity=order.key, op=">", value=0), scene) for i in pool]
    elif order.key == "distance_mm":
        values = [scene.distance_mm(i, order.reference) for i in pool]
    else:
        axis, sign = _AXIS[order.key]
        values = [sign * scene.centroid_lps(i)[axis] for i in pool]
        return [pool[k] for k in sorted(range(len(pool)), key=lambda k: -values[k])]
    sign = -1.0 if order.descending else 1.0
    return [pool[k] for k in sorted(range(len(pool)), key=lambda k: sign * values[k])]


def _check_count(clause: Clause, pool: list[Instance], scene: Scene, notes: list[str]) -> None:
    if clause.order is not None or clause.lesion_ids:
        return
    wanted = clause.count if clause.count is not None else (None if clause.plural else 1)
    if wanted is None or len(pool) == wanted or (wanted == 1 and not pool):
        return
    listed = tuple(_short(i, scene) for i in pool[:8])
    message = (
        f"{clause.words!r} asks for {wanted} but {len(pool)} match"
        if wanted
        else f"{clause.words!r} says there is none, but {len(pool)} match"
    )
    if clause.context or wanted == 0:
        notes.append(message)
        return
    kinds = {i.label for i in pool}
    noun = scene.classes.names[pool[0].label].replace("_", " ") if len(kinds) == 1 else "lesion"
    raise AmbiguousQuery(
        message,
        candidates=listed,
        suggestion=f"'the largest {noun}', '{noun} on the left', 'lesion {_first_id(pool)}' "
        f"or 'all {noun}s ...'",
    )


def _first_id(pool: list[Instance]) -> int:
    return next((i.lesion.lesion_id for i in pool if i.lesion), 1)


def _short(inst: Instance, scene: Scene) -> str:
    if inst.lesion is None:
        return f"{inst.name} ({scene.volume_ml(inst):.1f} ml, {scene.side(inst)})"
    lesion = inst.lesion
    where = f" in {lesion.structure}" if lesion.structure else ""
    return (
        f"lesion {lesion.lesion_id}: {lesion.label_name}, {lesion.volume_ml:.2f} ml, "
        f"{lesion.longest_diameter_mm:.0f} mm, {lesion.side}{where}"
    )


def describe_instance(inst: Instance, scene: Scene) -> dict[str, Any]:
    """Measurements of a selected instance (lesion-table fields for lesions), JSON-ready."""
    centroid = [round(float(c), 3) for c in scene.centroid_lps(inst)]
    if inst.lesion is None:
        return {
            "kind": "structure",
            "label": inst.label,
            "class": inst.name,
            "part": inst.clip or "whole",
            "volume_ml": scene.volume_ml(inst),
            "side": scene.side(inst),
            "centroid_lps_mm": centroid,
        }
    lesion = inst.lesion
    return {
        "kind": "lesion",
        "lesion_id": lesion.lesion_id,
        "label": lesion.label,
        "class": lesion.label_name,
        "volume_ml": lesion.volume_ml,
        "longest_diameter_mm": lesion.longest_diameter_mm,
        "long_axis_mm": lesion.long_axis_mm,
        "short_axis_mm": lesion.short_axis_mm,
        "side": lesion.side,
        "structure": lesion.structure,
        "structures": list(lesion.structures),
        "centroid_lps_mm": centroid,
    }


def describe(clause: Clause, scene: Scene) -> str:
    """The clause in canonical words, e.g. ``"largest 1 of lesion; side left; in liver"``."""
    names = scene.classes.names
    parts = [" or ".join(names[v] for v in clause.labels) or "nothing"]
    if clause.order is not None:
        o = clause.order
        ref = f" to {' or '.join(names[v] for v in o.reference)}" if o.reference else ""
        way = (
            "most"
            if o.key not in ("volume_ml", "longest_diameter_mm", "distance_mm")
            else ("largest" if o.descending else "smallest")
        )
        parts.insert(0, f"{way} {o.n} by {o.key}{ref} of")
    if clause.count is not None:
        parts.append(f"count {clause.count}")
    if clause.lesion_ids:
        parts.append(f"ids {', '.join(map(str, clause.lesion_ids))}")
    if clause.new is not None:
        parts.append("new" if clause.new else "seen before")
    if clause.side:
        parts.append(f"side {clause.side}")
    parts += [f"{d} of the image centre" for d in clause.directions]
    parts += [m.describe() for m in clause.measures]
    for r in clause.relations:
        reach = f" (within {r.distance_mm:g} mm)" if r.distance_mm else ""
        parts.append(f"{r.kind} {' or '.join(names[v] for v in r.labels)}{reach}")
    return "; ".join(parts)
