"""The scanner of one segment of a phrase: words left to right into a partial clause.

See :mod:`medseg.text.parse` for the steps around it and docs/text.md for the grammar. Each word
class is tried in a fixed priority (numbers with units, comparators, quantities, counts,
superlatives, sides, directions, relations, new/old, nouns, fillers), so parsing is
deterministic.
"""

from __future__ import annotations

from typing import cast

from medseg.text import lexicon as lx
from medseg.text.pieces import Classes, Item, Partial
from medseg.text.query import (
    Direction,
    NotUnderstood,
    Order,
    OrderKey,
    Quantity,
    Relation,
    RelationKind,
    Side,
)
from medseg.text.reader import Reader
from medseg.text.vocabulary import VOCABULARY

NEAR_DEFAULT_MM = 10.0
"""Reach of "near STRUCTURE" without a stated distance."""


class Scanner(Reader):
    """Reads one segment's items into a :class:`Partial`, left to right."""

    def __init__(self, items: list[Item], classes: Classes) -> None:
        self.items = items
        self.classes = classes
        self.i = 0
        self.p = Partial(words=[it.text for it in items])
        self.unknown: list[str] = []
        self.missing: list[str] = []
        self.ignored: list[str] = []
        self.pending_quantity: Quantity | None = None

    # -- helpers --------------------------------------------------------------------------
    def set_target(self, labels: tuple[int, ...], plural: bool) -> None:
        if self.p.labels is None:
            self.p.labels, self.p.plural = labels, self.p.plural or plural
            return
        lesions = self.classes.lesion_values
        old_is_lesion = all(v in lesions for v in self.p.labels)
        new_is_lesion = all(v in lesions for v in labels)
        if set(labels) & set(self.p.labels):  # "metastatic lesions", "renal organ"
            self.p.labels = tuple(v for v in self.p.labels if v in labels)
            self.p.plural = self.p.plural or plural
        elif not old_is_lesion and new_is_lesion:  # "liver lesion": the organ says where
            self.p.relations.append(Relation(kind="in", labels=self.p.labels))
            self.p.labels, self.p.plural = labels, self.p.plural or plural
        elif old_is_lesion and not new_is_lesion:  # "lesion liver"
            self.p.relations.append(Relation(kind="in", labels=labels))
        else:
            names = [self.classes.names[v] for v in self.p.labels + labels]
            raise NotUnderstood(
                f"two targets without a relation between them ({', '.join(names)})",
                suggestion="join them with 'and', or relate them: 'lesions in the liver'",
            )

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> Partial:
        while self.i < len(self.items):
            self.step()
        return self.p

    def step(self) -> None:
        item = self.items[self.i]
        w = item.text
        if item.kind == "class":
            self.i += 1
            self.target_from_class(item)
            return
        self.p.ends_with_relation = False
        if self.number() is not None and self.measurement():
            return
        comparator = self.match(cast(dict[tuple[str, ...], str], lx.COMPARATORS))
        if w == "between" or (comparator and self.number(comparator[1]) is not None):
            self.threshold(comparator)
            return
        quantity = self.match(cast(dict[tuple[str, ...], str], lx.QUANTITY_WORDS))
        if quantity:
            self.pending_quantity = cast(Quantity, quantity[0])
            self.i += quantity[1]
            self.skip({"of", "is"})
            return
        if self.number() is not None:
            self.counted()
            return
        if w == "top" and self.number(1) is not None:  # "the top two lesions"
            self.i += 1
            self.set_order("volume_ml", None)
            return
        if w in lx.SUPERLATIVES:
            key, descending = lx.SUPERLATIVES[w]
            self.i += 1
            self.set_order(cast(OrderKey, key), self.p.count, descending=descending)
            return
        if w in ("most", "least") and self.word(1) in {*lx.DIRECTIONS, "left", "right"}:
            direction = lx.DIRECTIONS.get(self.word(1), self.word(1))
            key = direction if w == "most" else lx.OPPOSITE.get(direction, direction)
            self.i += 2
            self.set_order(cast(OrderKey, key), self.p.count)
            return
        if w in lx.CLOSEST_WORDS | lx.FARTHEST_WORDS:
            self.i += 1
            self.skip({"to", "from", "the"})
            labels = self.object(w)
            if labels is not None:
                key: OrderKey = "distance_mm"
                far = w in lx.FARTHEST_WORDS
                self.set_order(key, self.p.count, descending=far, reference=labels)
            return
        if (w in lx.SIDES or w in lx.DIRECTIONS) and self._class_run_ahead():
            self.noun_phrase()  # "left upper lobe": side and direction words of class names
            return
        if w in lx.SIDES:
            self.side_word(cast(Side, lx.SIDES[w]))
            return
        if w in lx.DIRECTIONS:
            self.direction_word(cast(Direction, lx.DIRECTIONS[w]))
            return
        if w in lx.DIRECTION_PREPOSITIONS:
            self.i += 1
            self.relation(cast(RelationKind, lx.DIRECTION_PREPOSITIONS[w]), w)
            return
        if w == "in" and self.word(1) == "front" and self.word(2) == "of":
            self.i += 3
            self.relation("anterior", "in front of")
            return
        if w in ("within",) and self.number(1) is not None:
            self.near_within()
            return
        if self._preposition_is_filler(w):
            self.i += 1
            return
        if w in lx.IN_WORDS:
            self.i += 1
            self.relation("in", w)
            return
        if w in lx.TOUCH_WORDS:
            self.i += 1
            self.skip({"to", "with", "the"})
            self.relation("touching", w)
            return
        if w in lx.NEAR_WORDS:
            self.i += 1
            self.skip({"to", "the"})
            self.relation("near", w, distance=NEAR_DEFAULT_MM)
            return
        if w in lx.NEW_WORDS or w in lx.OLD_WORDS:
            self.p.new = w in lx.NEW_WORDS
            self.i += 1
            return
        if w in lx.LESION_NOUNS or w in lx.ORGAN_NOUNS or w in self.classes.known_words():
            self.noun_phrase()
            return
        self.i += 1
        if w in lx.PLURAL_WORDS:
            self.p.plural = True
            return
        if w in lx.FILLERS or w in ("and", "or", "plus"):
            return
        if w in lx.DESCRIPTIVE:
            self.ignored.append(w)
        elif w in VOCABULARY:
            self.missing.append(w)
        else:
            self.unknown.append(w)

    # -- pieces ---------------------------------------------------------------------------
    def set_order(
        self,
        key: OrderKey,
        n: int | None,
        *,
        descending: bool = True,
        reference: tuple[int, ...] = (),
    ) -> None:
        if self.number() is not None and self.word(1) not in lx.UNITS:  # "largest 3 lesions"
            n = int(self.number() or 1)
            self.i += 1
        self.p.order = Order(key=key, n=max(n or 1, 1), descending=descending, reference=reference)
        self.p.count = None

    def counted(self) -> None:
        """A number before a noun ("two lesions") or a superlative ("the two largest")."""
        value = int(self.number() or 0)
        self.i += 1
        self.p.count = value

    def near_within(self) -> None:
        """``within N mm of STRUCTURE``."""
        value = float(self.number(1) or 0.0)
        unit = self.word(2)
        if unit not in lx.UNITS or lx.UNITS[unit][0] != "length":
            raise NotUnderstood("'within N' needs mm or cm", suggestion="within 10 mm of the liver")
        self.i += 3
        self.skip({"of", "from", "the"})
        self.relation("near", "within", distance=value * lx.UNITS[unit][1], skip_fillers=False)

    def side_word(self, side: Side) -> None:
        self.i += 1
        if self.word() in ("of", "to") and side != "midline":
            self.i += 1
            self.relation(cast(RelationKind, side), f"{side} of")
            return
        if self.word() in lx.REGION_WORDS and not self._region_is_class():
            self.i += 1
        self.p.side = side

    def direction_word(self, direction: Direction) -> None:
        self.i += 1
        if self.word() in ("to", "of", "than"):
            self.i += 1
            self.relation(cast(RelationKind, direction), f"{direction} to")
            return
        if self.word() in lx.REGION_WORDS and not self._region_is_class():
            self.i += 1
        self.p.directions.append(direction)

    def relation(
        self,
        kind: RelationKind,
        word: str,
        *,
        distance: float | None = None,
        skip_fillers: bool = True,
    ) -> None:
        if skip_fillers:
            self.skip({"the", "a", "an", "of", "with", "to"})
        labels = self.object(word)
        if labels is not None:
            self.p.relations.append(Relation(kind=kind, labels=labels, distance_mm=distance))
            self.p.ends_with_relation = True

    def object(self, word: str) -> tuple[int, ...] | None:
        """The structure after a relation word, or a side ("in the left hemisphere")."""
        self.skip({"the", "a", "an"})
        item = self.peek()
        if item is None:
            self.unknown.append(word)
            return None
        if item.kind == "word" and self._class_run_ahead():  # "in the left upper lobe"
            return self.classes.containing(self._anatomy_run())
        if item.kind == "class":
            self.i += 1
            if self.word() in lx.REGION_WORDS:  # "the right hepatic lobe": a part of the liver
                self.i += 1
            return item.labels
        if item.text in lx.SIDES:
            self.side_word(cast(Side, lx.SIDES[item.text]))
            if self.peek() is not None and self.peek().kind == "class":  # "in the left lung"
                return self.object(word)
            return None
        if item.text in lx.DIRECTIONS:
            self.direction_word(cast(Direction, lx.DIRECTIONS[item.text]))
            return None
        words = self._anatomy_run()
        if words:
            labels = self.classes.containing(words)
            if labels:
                return labels
            self.missing.append(" ".join(words))
            return ()
        self.unknown.append(word)
        return None

    def target_from_class(self, item: Item) -> None:
        self.set_target(item.labels, item.plural)
        self.lesion_id()

    def noun_phrase(self) -> None:
        """Words naming a target that did not spell a whole class name."""
        item = self.items[self.i]
        w = item.text
        if w in lx.ORGAN_NOUNS:
            self.i += 1
            self.set_target(self.classes.structure_values, item.plural)
            return
        words = self._anatomy_run()
        plural = any(it.plural for it in self.items[self.i - len(words) : self.i])
        labels = self._labels_for(words)
        if labels:
            self.set_target(labels, plural)
            if not plural and self._is_group(labels):
                self.p.group = " ".join(words)
            self.lesion_id()
            return
        for k in range(len(words) - 1, 0, -1):  # "kidney lesion": a structure, then a target
            head, tail = self._labels_for(words[:k]), self._labels_for(words[k:])
            if head and tail:
                self.set_target(head, plural)
                self.set_target(tail, plural)
                self.lesion_id()
                return
        self.missing.append(" ".join(words))

    def _is_group(self, labels: tuple[int, ...]) -> bool:
        """Several structures that differ by more than a side word make one instance: "the left
        lung" is its lobes together, while "the kidney" (left or right?) stays ambiguous."""
        if len(labels) < 2 or any(v in self.classes.lesion_values for v in labels):
            return False
        unsided = {tuple(w for w in self.classes.words[v] if w not in lx.SIDES) for v in labels}
        return len(unsided) > 1

    def _class_run_ahead(self) -> bool:
        """Whether the words from here on spell part of a class name beyond side/direction words."""
        known = self.classes.known_words()
        run = []
        k = 0
        while self.peek(k) is not None and self.peek(k).kind == "word" and self.word(k) in known:
            run.append(self.word(k))
            k += 1
        adjectives = set(lx.SIDES) | set(lx.DIRECTIONS)
        return any(w not in adjectives for w in run) and bool(self.classes.containing(run))

    def _labels_for(self, words: list[str]) -> tuple[int, ...]:
        """Classes named by ``words``; a generic lesion noun means the lesion classes whose
        names contain the other words ("liver lesion" -> liver_tumor), or all of them."""
        labels = self.classes.containing(words)
        structures = tuple(v for v in labels if v not in self.classes.lesion_values)
        if structures and not lx.LESION_NOUNS & set(words):  # "the lungs", not lung nodules
            labels = structures
        if not labels and words[-1] in lx.GENERIC_LESION_NOUNS:
            rest = words[:-1]
            labels = tuple(
                v
                for v in sorted(self.classes.lesion_values)
                if not rest or v in self.classes.containing(rest)
            )
        return labels

    def lesion_id(self) -> None:
        """``lesion 3``, ``lesion #3``, ``lesion number 3`` after a lesion target."""
        if self.p.labels is None or not all(v in self.classes.lesion_values for v in self.p.labels):
            return
        k = 1 if self.word() in lx.ID_WORDS else 0
        item = self.peek(k)
        if item is not None and item.kind == "num" and item.text.isdigit():
            if self.word(k + 1) in lx.UNITS or self.word(k + 1) == "×":
                return
            self.p.lesion_ids.append(int(item.text))
            self.i += k + 1

    def _preposition_is_filler(self, w: str) -> bool:
        """ "of"/"in"/"by" that introduce no structure: "largest of the lesions", "lesions of
        more than 1 ml", "2 cm in diameter", "in contact with", "by volume"."""
        after = self.word(1)
        if w == "of":
            nxt = self.peek(2) if after in ("the", "a", "all") else self.peek(1)
            names_structure = nxt is not None and (
                nxt.kind == "class" or nxt.text in self.classes.known_words()
            )
            return self.p.labels is None or not names_structure
        if w in ("in", "by"):
            return after in ("diameter", "volume", "size", "length") or after in lx.TOUCH_WORDS
        return False

    def _anatomy_run(self) -> list[str]:
        known = self.classes.known_words() | lx.LESION_NOUNS
        words = []
        while self.peek() is not None and self.peek().kind == "word" and self.word() in known:
            words.append(self.word())
            self.i += 1
        return words

    def _region_is_class(self) -> bool:
        return self.word() in self.classes.known_words()
