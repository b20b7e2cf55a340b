"""The model's classes as the grammar sees them, and the pieces a segment is scanned into.

:class:`Classes` holds each class name as canonical words (:func:`canonical_words`);
:class:`Item` is one word, number or whole class name of a phrase; :class:`Partial` collects a
segment's conditions until the segments are merged into :class:`~medseg.text.query.Clause`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medseg.text.query import Clause, Direction, Measure, Order, Relation, Side
from medseg.text.vocabulary import canonical_words


@dataclass(frozen=True)
class Classes:
    """The model's classes as the grammar sees them: value -> name and canonical words."""

    names: dict[int, str]
    lesion_values: frozenset[int]
    words: dict[int, tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "words", {v: canonical_words(n) for v, n in sorted(self.names.items())}
        )

    @property
    def structure_values(self) -> tuple[int, ...]:
        return tuple(v for v in self.words if v not in self.lesion_values)

    def known_words(self) -> set[str]:
        return {w for words in self.words.values() for w in words}

    def containing(self, words: list[str]) -> tuple[int, ...]:
        """Classes whose name contains every one of ``words``."""
        return tuple(v for v, cw in self.words.items() if all(w in cw for w in words))


@dataclass(frozen=True)
class Item:
    kind: str  # "word", "num", "class"
    text: str
    plural: bool = False
    labels: tuple[int, ...] = ()


@dataclass
class Partial:
    words: list[str] = field(default_factory=list)
    labels: tuple[int, ...] | None = None
    plural: bool = False
    count: int | None = None
    lesion_ids: list[int] = field(default_factory=list)
    side: Side | None = None
    directions: list[Direction] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    order: Order | None = None
    new: bool | None = None
    total: Measure | None = None
    group: str | None = None
    ends_with_relation: bool = False

    def conditions(self) -> bool:
        return bool(
            self.count is not None
            or self.lesion_ids
            or self.side
            or self.directions
            or self.measures
            or self.relations
            or self.order
            or self.new is not None
            or self.total
        )

    def merge(self, other: Partial) -> None:
        """Add ``other``'s conditions (a segment without a target) to this clause."""
        self.words += other.words
        self.count = other.count if other.count is not None else self.count
        self.lesion_ids += other.lesion_ids
        self.side = other.side or self.side
        self.directions += other.directions
        self.measures += other.measures
        self.relations += other.relations
        self.order = other.order or self.order
        self.new = other.new if other.new is not None else self.new
        self.total = other.total or self.total
        self.ends_with_relation = other.ends_with_relation

    def clause(self, context: bool = False) -> Clause:
        plural = (
            self.plural or (self.count is not None and self.count > 1) or len(self.lesion_ids) > 1
        )
        return Clause(
            words=" ".join(self.words),
            labels=self.labels or (),
            plural=plural,
            count=self.count,
            lesion_ids=tuple(self.lesion_ids),
            side=self.side,
            directions=tuple(dict.fromkeys(self.directions)),
            measures=tuple(self.measures),
            relations=tuple(self.relations),
            order=self.order,
            new=self.new,
            total=self.total,
            context=context,
            group=self.group,
        )
