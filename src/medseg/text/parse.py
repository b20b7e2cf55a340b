"""Words to a :class:`~medseg.text.query.Query`: a small deterministic grammar (docs/text.md).

Parsing runs in fixed steps, so the same phrase and classes always give the same query:

1. ``;`` splits the phrase into parts; a part that names no target refers back to the class of
   the part before ("three lesions ...; the largest ..."), and the part before becomes context.
2. Words are tokenized, plurals folded, misspellings corrected, synonyms replaced
   (:mod:`medseg.text.vocabulary`), and runs of words that spell a class name (in any order)
   become that class.
3. "and", "or", "," and "plus" split a part into segments; each is scanned left to right
   (:mod:`medseg.text.scanner`) into a partial clause.
4. Segments are merged: one without a target adds its conditions to the clause before it
   ("lesions over 5 ml and under 20 ml"), a bare structure after a relation widens that
   relation ("in the liver or kidney"), a lone side word is distributed over the next segment
   ("left and right kidney").
"""

from __future__ import annotations

import re
from dataclasses import replace

from medseg.text import lexicon as lx
from medseg.text.pieces import Classes, Item, Partial
from medseg.text.query import Clause, NotUnderstood, Query, Relation
from medseg.text.scanner import Scanner
from medseg.text.vocabulary import normalise_words, suggestions, tokenize

__all__ = ["Classes", "parse"]

_CONJUNCTIONS = {"and", "or", ",", "plus", "&"}


def parse(text: str, classes: Classes) -> Query:
    """Parse a phrase against a model's classes.

    Parameters
    ----------
    text : str
        The phrase, e.g. ``"the two largest lesions in the left hemisphere"``.
    classes : Classes
        Class names by label value and which values are lesion classes.

    Returns
    -------
    Query

    Raises
    ------
    NotUnderstood
        Words that are neither grammar nor class names (with suggestions), a class name the
        model does not have, or no target at all.
    """
    text = re.sub(r"\bas well as\b", " and ", text, flags=re.IGNORECASE)
    known = lx.grammar_words() | classes.known_words()
    corrections: list[tuple[str, str]] = []
    unknown: list[str] = []
    missing: list[str] = []
    ignored: list[str] = []
    notes: list[str] = []
    clauses: list[Clause] = []
    for part in (p for p in text.split(";") if p.strip()):
        words, fixed = normalise_words(tokenize(part), known)
        corrections += fixed
        partials = []
        for segment in _distribute_sides(_segments(words)):
            scanner = Scanner(_class_items(segment, classes), classes)
            partials.append(scanner.run())
            unknown += scanner.unknown
            missing += scanner.missing
            ignored += scanner.ignored
        if partials and partials[0].labels is None and clauses:
            partials[0].labels = clauses[-1].labels
            partials[0].plural = False
            clauses = [replace(c, context=True) for c in clauses]
            notes.append("a part without a class refers to the class of the part before it")
        clauses += [p.clause() for p in _merge(partials, classes, notes)]
    if unknown or missing:
        _raise_not_understood(text, unknown, missing, classes, known)
    if not clauses:
        raise NotUnderstood(f"{text!r} names nothing to select", suggestion=_example(classes))
    return Query(
        text=text,
        clauses=tuple(clauses),
        corrections=tuple(corrections),
        ignored=tuple(ignored),
        notes=tuple(dict.fromkeys(notes)),
    )


def _class_items(words: list[tuple[str, bool]], classes: Classes) -> list[Item]:
    """Items with every run of words that spells a whole class name (any order) merged."""
    by_words: dict[tuple[str, ...], list[int]] = {}
    for value, cw in classes.words.items():
        by_words.setdefault(tuple(sorted(cw)), []).append(value)
    longest = max((len(k) for k in by_words), default=0)
    items: list[Item] = []
    i = 0
    while i < len(words):
        for size in range(min(longest, len(words) - i), 0, -1):
            window = words[i : i + size]
            key = tuple(sorted(w for w, _ in window))
            if key in by_words:
                items.append(
                    Item(
                        "class",
                        " ".join(w for w, _ in window),
                        plural=any(p for _, p in window),
                        labels=tuple(by_words[key]),
                    )
                )
                i += size
                break
        else:
            word, plural = words[i]
            kind = "num" if _is_number(word) else "word"
            items.append(Item(kind, word, plural=plural))
            i += 1
    return items


Words = list[tuple[str, bool]]


def _segments(words: Words) -> list[Words]:
    """Split at conjunctions, except the "and" of "between 2 and 5"."""
    out: list[Words] = [[]]
    for k, (word, plural) in enumerate(words):
        between = k >= 2 and words[k - 2][0] == "between" and _is_number(words[k - 1][0])
        if word in _CONJUNCTIONS and not between:
            out.append([])
        else:
            out[-1].append((word, plural))
    return [s for s in out if s]


def _is_number(word: str) -> bool:
    return re.fullmatch(r"\d+(\.\d+)?", word) is not None


def _distribute_sides(segments: list[Words]) -> list[Words]:
    """A lone side word is distributed: "left and right kidney" -> "left kidney", "right kidney"."""
    adjectives = set(lx.SIDES) | set(lx.DIRECTIONS)
    out: list[Words] = []
    for k, segment in enumerate(segments):
        content = [it for it in segment if it[0] not in lx.FILLERS]
        lone = len(content) == 1 and content[0][0] in adjectives
        if lone and k + 1 < len(segments):
            nxt = segments[k + 1]
            first = next((j for j, it in enumerate(nxt) if it[0] not in lx.FILLERS), None)
            if first is not None and nxt[first][0] in adjectives:
                out.append([*nxt[:first], content[0], *nxt[first + 1 :]])
            else:
                out.append([content[0], *nxt])
            continue
        out.append(segment)
    return out


def _merge(partials: list[Partial], classes: Classes, notes: list[str]) -> list[Partial]:
    merged: list[Partial] = []
    for p in partials:
        bare = p.labels is not None and not p.conditions()
        if p.labels is None and merged:
            merged[-1].merge(p)
            continue
        if bare and merged and merged[-1].ends_with_relation:
            last = merged[-1].relations[-1]
            merged[-1].relations[-1] = Relation(
                kind=last.kind,
                labels=tuple(dict.fromkeys(last.labels + (p.labels or ()))),
                distance_mm=last.distance_mm,
            )
            merged[-1].words += p.words
            continue
        if p.labels is None:
            if not p.conditions():
                continue
            if not classes.lesion_values:
                raise NotUnderstood(
                    f"{' '.join(p.words)!r} does not name a class",
                    candidates=tuple(classes.names.values()),
                    suggestion=_example(classes),
                )
            p.labels = tuple(sorted(classes.lesion_values))
            p.plural = p.plural or p.order is None
            notes.append("no class named: the lesion classes are used")
        merged.append(p)
    return merged


def _raise_not_understood(
    text: str, unknown: list[str], missing: list[str], classes: Classes, known: set[str]
) -> None:
    names = list(classes.names.values())
    if missing:
        near = [s for m in missing for s in suggestions(m, names)]
        raise NotUnderstood(
            f"{text!r}: this model has no class {' or '.join(repr(m) for m in missing)}",
            not_understood=tuple(unknown),
            candidates=tuple(dict.fromkeys(near)) or tuple(names),
            suggestion=_example(classes),
        )
    near = [s for w in unknown for s in suggestions(w, sorted(known), limit=2)]
    raise NotUnderstood(
        f"{text!r} is only partly understood",
        not_understood=tuple(unknown),
        candidates=tuple(dict.fromkeys(near)),
        suggestion=_example(classes),
    )


def _example(classes: Classes) -> str:
    if classes.lesion_values:
        return "'the largest lesion on the left', 'lesions over 5 ml in the liver'"
    first = next(iter(classes.names.values()), "liver")
    return f"'the {first.replace('_', ' ')}', 'the largest structure'"
