"""What a parsed phrase asks for: :class:`Query` of :class:`Clause` objects, and the errors.

A clause names a target (one or more classes), then narrows its instances (lesions, or whole
structures) with filters and at most one ordering. Clauses joined by "and"/"or"/"," are united.
Every field is plain data, so a query round-trips through JSON (:meth:`Query.to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from medseg.errors import MedsegError

Quantity = Literal["volume_ml", "longest_diameter_mm", "long_axis_mm", "short_axis_mm"]
Operator = Literal[">=", "<=", ">", "<", "~"]
Side = Literal["left", "right", "midline"]
Direction = Literal["anterior", "posterior", "superior", "inferior", "left", "right"]
RelationKind = Literal[
    "in", "touching", "near", "anterior", "posterior", "superior", "inferior", "left", "right"
]
OrderKey = Literal[
    "volume_ml",
    "longest_diameter_mm",
    "distance_mm",
    "anterior",
    "posterior",
    "superior",
    "inferior",
    "left",
    "right",
]


@dataclass(frozen=True, kw_only=True)
class Measure:
    """A numeric condition on one measurement; ``~`` means equal within ``tolerance``."""

    quantity: Quantity
    op: Operator
    value: float
    tolerance: float = 0.0

    def holds(self, measured: float) -> bool:
        if self.op == "~":
            return abs(measured - self.value) <= self.tolerance + 1e-9
        return {
            ">=": measured >= self.value,
            "<=": measured <= self.value,
            ">": measured > self.value,
            "<": measured < self.value,
        }[self.op]

    def describe(self) -> str:
        unit = "ml" if self.quantity == "volume_ml" else "mm"
        name = self.quantity.rsplit("_", 1)[0].replace("_", " ")
        if self.op == "~":
            return f"{name} {self.value:g} ± {self.tolerance:g} {unit}"
        return f"{name} {self.op} {self.value:g} {unit}"


@dataclass(frozen=True, kw_only=True)
class Relation:
    """A relation to other structures (any of ``labels``): in, touching, near, or a direction.

    ``distance_mm`` is the reach of ``near``. Directions compare centroids in patient space.
    """

    kind: RelationKind
    labels: tuple[int, ...]
    distance_mm: float | None = None


@dataclass(frozen=True, kw_only=True)
class Order:
    """Keep the ``n`` first instances when sorted by ``key``.

    Volumes, diameters and distances (to the classes in ``reference``) are sorted largest first
    when ``descending``; a direction key ("anterior") puts the most anterior first.
    """

    key: OrderKey
    n: int = 1
    descending: bool = True
    reference: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Clause:
    """One target and its filters.

    ``labels`` are the candidate class values; ``plural`` says whether the words asked for
    several instances; ``count`` is a stated number ("two lesions", "one", "no"); ``lesion_ids``
    pick lesions by their report id. ``side`` and ``directions`` are relative to the patient's
    midline and the centre of the image; ``new`` is ``True`` for lesions absent from a prior
    scan, ``False`` for lesions seen before. ``total`` is a stated total volume, checked only.
    ``context`` marks a clause that a later one (after ";") refers back to: it is checked and
    explained but not selected. ``group`` (a name) makes the structures of ``labels`` one
    instance ("left lung" over the classes of its lobes).
    """

    words: str
    labels: tuple[int, ...]
    plural: bool = False
    count: int | None = None
    lesion_ids: tuple[int, ...] = ()
    side: Side | None = None
    directions: tuple[Direction, ...] = ()
    measures: tuple[Measure, ...] = ()
    relations: tuple[Relation, ...] = ()
    order: Order | None = None
    new: bool | None = None
    total: Measure | None = None
    context: bool = False
    group: str | None = None


@dataclass(frozen=True, kw_only=True)
class Query:
    """A parsed phrase: its clauses, the spelling corrections made and the words ignored."""

    text: str
    clauses: tuple[Clause, ...]
    corrections: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class QueryError(MedsegError):
    """A phrase that cannot be resolved to one selection.

    ``not_understood`` lists the words the grammar did not read, ``candidates`` what the
    phrase could mean, ``suggestion`` a phrase that would work.
    """

    def __init__(
        self,
        message: str,
        *,
        not_understood: tuple[str, ...] = (),
        candidates: tuple[str, ...] = (),
        suggestion: str = "",
    ) -> None:
        parts = [message]
        if not_understood:
            parts.append(f"words not understood: {', '.join(repr(w) for w in not_understood)}")
        if candidates:
            parts.append(f"candidates: {'; '.join(candidates)}")
        if suggestion:
            parts.append(f"try: {suggestion}")
        super().__init__(". ".join(parts))
        self.reason = message
        self.not_understood = not_understood
        self.candidates = candidates
        self.suggestion = suggestion

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": type(self).__name__,
            "message": self.reason,
            "not_understood": list(self.not_understood),
            "candidates": list(self.candidates),
            "suggestion": self.suggestion,
        }


class NotUnderstood(QueryError):
    """Some words of the phrase are not part of the grammar or the model's classes."""


class AmbiguousQuery(QueryError):
    """The phrase asks for one (or N) instances but more or fewer match."""
