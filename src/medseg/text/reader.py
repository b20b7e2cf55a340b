"""Reading numbers: a cursor over a segment's items, measured values and thresholds.

:class:`Reader` is the base of the segment scanner (:mod:`medseg.text.scanner`): it looks ahead
over the items and turns ``N UNIT``, ``N × M mm``, ``over N UNIT`` and ``between A and B UNIT``
into :class:`~medseg.text.query.Measure` conditions on the partial clause.
"""

from __future__ import annotations

from typing import cast

from medseg.text import lexicon as lx
from medseg.text.pieces import Item, Partial
from medseg.text.query import Measure, NotUnderstood, Operator, Quantity


class Reader:
    """A cursor over ``items``; rules that read numbers write into the partial clause ``p``."""

    items: list[Item]
    i: int
    p: Partial
    unknown: list[str]
    pending_quantity: Quantity | None

    def peek(self, k: int = 0) -> Item | None:
        j = self.i + k
        return self.items[j] if j < len(self.items) else None

    def word(self, k: int = 0) -> str:
        item = self.peek(k)
        return item.text if item is not None and item.kind != "class" else ""

    def match(self, table: dict[tuple[str, ...], str]) -> tuple[str, int] | None:
        for key in sorted(table, key=len, reverse=True):
            if all(self.word(k) == w for k, w in enumerate(key)):
                return table[key], len(key)
        return None

    def number(self, k: int = 0) -> float | None:
        item = self.peek(k)
        if item is None or item.kind == "class":
            return None
        if item.kind == "num":
            return float(item.text)
        value = lx.NUMBER_WORDS.get(item.text)
        return None if value is None else float(value)

    def skip(self, words: set[str]) -> None:
        while self.word() in words:
            self.i += 1

    def measurement(self) -> bool:
        """``N UNIT`` (a measured value), ``N × M mm`` (RECIST axes), optional ``in total``."""
        value = self.number()
        decimals = self._decimals(self.peek())
        if self.word(1) == "×" and self.number(2) is not None and self.word(3) in lx.UNITS:
            kind, factor = lx.UNITS[self.word(3)]
            if kind != "length":
                return False
            second = float(self.number(2) or 0.0)
            tolerance = 0.5 * 10.0 ** -max(decimals, self._decimals(self.peek(2))) * factor
            self.p.measures.append(
                Measure(
                    quantity="long_axis_mm",
                    op="~",
                    value=float(value or 0.0) * factor,
                    tolerance=tolerance,
                )
            )
            self.p.measures.append(
                Measure(
                    quantity="short_axis_mm", op="~", value=second * factor, tolerance=tolerance
                )
            )
            self.i += 4
            return True
        if self.word(1) not in lx.UNITS:
            return False
        kind, factor = lx.UNITS[self.word(1)]
        quantity = self._quantity(kind)
        measure = Measure(
            quantity=quantity,
            op="~",
            value=float(value or 0.0) * factor,
            tolerance=0.5 * 10.0**-decimals * factor,
        )
        self.i += 2
        if self.word() == "in" and self.word(1) == "total":
            self.i += 2
            if quantity == "volume_ml":
                self.p.total = measure
                return True
        self.p.measures.append(measure)
        return True

    def threshold(self, comparator: tuple[str, int] | None) -> None:
        first = self.word()
        if first == "between":
            self.i += 1
            low = self.number()
            if low is None or self.word(1) != "and" or self.number(2) is None:
                self.unknown.append("between")
                return
            high, unit = self.number(2), self.word(3)
            if unit not in lx.UNITS:
                raise NotUnderstood(
                    "'between' needs a unit after the second number",
                    suggestion="between 2 and 5 ml",
                )
            kind, factor = lx.UNITS[unit]
            quantity = self._quantity(kind)
            self.p.measures.append(Measure(quantity=quantity, op=">=", value=low * factor))
            self.p.measures.append(Measure(quantity=quantity, op="<=", value=(high or 0) * factor))
            self.i += 4
            return
        assert comparator is not None
        op, size = comparator
        self.i += size
        value = float(self.number() or 0.0)
        unit = self.word(1)
        if unit not in lx.UNITS:
            raise NotUnderstood(
                f"'{' '.join(self.p.words)}': a number needs a unit (ml, cc, mm3, mm or cm)",
                suggestion=f"{first} {value:g} ml",
            )
        kind, factor = lx.UNITS[unit]
        quantity = self._quantity(kind, length_word=first in lx.LENGTH_COMPARATIVES)
        self.p.measures.append(
            Measure(quantity=quantity, op=cast(Operator, op), value=value * factor)
        )
        self.i += 2

    def _quantity(self, kind: str, *, length_word: bool = False) -> Quantity:
        pending, self.pending_quantity = self.pending_quantity, None
        if kind == "volume":
            if length_word:
                raise NotUnderstood("'longer'/'shorter than' needs a length", suggestion="10 mm")
            if pending not in (None, "volume_ml"):
                raise NotUnderstood("a length (diameter, axis) was given in ml", suggestion="10 mm")
            return "volume_ml"
        if pending == "volume_ml":
            raise NotUnderstood("a volume was given in mm", suggestion="volume over 5 ml")
        return pending or "longest_diameter_mm"

    @staticmethod
    def _decimals(item: Item | None) -> int:
        if item is None or item.kind != "num" or "." not in item.text:
            return 0
        return len(item.text.split(".", 1)[1])
