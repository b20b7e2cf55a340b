"""The grammar's fixed words: numbers, units, comparators, superlatives, sides, relations.

All entries are canonical singular forms (after :func:`medseg.text.vocabulary.normalise_words`).
docs/text.md lists them as the grammar's terminals.
"""

from __future__ import annotations

NUMBER_WORDS = {
    "no": 0,
    "none": 0,
    "zero": 0,
    "one": 1,
    "single": 1,
    "two": 2,
    "both": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
UNITS = {
    "ml": ("volume", 1.0),
    "cc": ("volume", 1.0),
    "cm3": ("volume", 1.0),
    "milliliter": ("volume", 1.0),
    "millilitre": ("volume", 1.0),
    "mm3": ("volume", 0.001),
    "l": ("volume", 1000.0),
    "liter": ("volume", 1000.0),
    "litre": ("volume", 1000.0),
    "mm": ("length", 1.0),
    "millimeter": ("length", 1.0),
    "millimetre": ("length", 1.0),
    "cm": ("length", 10.0),
    "centimeter": ("length", 10.0),
    "centimetre": ("length", 10.0),
}
"""Unit -> (kind, factor to ml or mm)."""

COMPARATORS: dict[tuple[str, ...], str] = {
    ("at", "least"): ">=",
    ("no", "less", "than"): ">=",
    ("no", "smaller", "than"): ">=",
    ("not", "smaller", "than"): ">=",
    ("≥",): ">=",
    ("more", "than"): ">",
    ("greater", "than"): ">",
    ("larger", "than"): ">",
    ("bigger", "than"): ">",
    ("longer", "than"): ">",
    ("wider", "than"): ">",
    ("exceeding",): ">",
    ("over",): ">",
    ("above",): ">",
    (">",): ">",
    ("at", "most"): "<=",
    ("up", "to"): "<=",
    ("no", "more", "than"): "<=",
    ("no", "larger", "than"): "<=",
    ("not", "exceeding"): "<=",
    ("≤",): "<=",
    ("less", "than"): "<",
    ("smaller", "than"): "<",
    ("shorter", "than"): "<",
    ("under",): "<",
    ("below",): "<",
    ("<",): "<",
}
"""Words before a number: the operator. "over"/"under"/"above"/"below" only before a number."""
LENGTH_COMPARATIVES = {"longer", "shorter", "wider"}

QUANTITY_WORDS: dict[tuple[str, ...], str] = {
    ("short", "axis"): "short_axis_mm",
    ("long", "axis"): "long_axis_mm",
    ("longest", "diameter"): "longest_diameter_mm",
    ("diameter",): "longest_diameter_mm",
    ("length",): "longest_diameter_mm",
    ("volume",): "volume_ml",
}

SUPERLATIVES: dict[str, tuple[str, bool]] = {
    "largest": ("volume_ml", True),
    "biggest": ("volume_ml", True),
    "greatest": ("volume_ml", True),
    "smallest": ("volume_ml", False),
    "tiniest": ("volume_ml", False),
    "longest": ("longest_diameter_mm", True),
    "shortest": ("longest_diameter_mm", False),
    "leftmost": ("left", True),
    "rightmost": ("right", True),
    "uppermost": ("superior", True),
    "topmost": ("superior", True),
    "highest": ("superior", True),
    "lowermost": ("inferior", True),
    "lowest": ("inferior", True),
    "bottommost": ("inferior", True),
    "frontmost": ("anterior", True),
    "foremost": ("anterior", True),
    "hindmost": ("posterior", True),
}
"""Word -> (order key, largest value first). "closest to X" is parsed with its structure."""

SIDES = {"left": "left", "right": "right", "midline": "midline", "central": "midline"}
REGION_WORDS = {"hemisphere", "half", "side", "hemithorax", "hemibody", "part", "portion", "lobe"}
"""After a side or direction word, a part of the body rather than a class ("left hemisphere")."""

DIRECTIONS = {
    "anterior": "anterior",
    "front": "anterior",
    "ventral": "anterior",
    "posterior": "posterior",
    "back": "posterior",
    "dorsal": "posterior",
    "superior": "superior",
    "upper": "superior",
    "cranial": "superior",
    "top": "superior",
    "inferior": "inferior",
    "lower": "inferior",
    "caudal": "inferior",
    "bottom": "inferior",
    "anteriorly": "anterior",
    "posteriorly": "posterior",
    "superiorly": "superior",
    "inferiorly": "inferior",
    "cranially": "superior",
    "caudally": "inferior",
}
OPPOSITE = {
    "anterior": "posterior",
    "posterior": "anterior",
    "superior": "inferior",
    "inferior": "superior",
    "left": "right",
    "right": "left",
}
DIRECTION_PREPOSITIONS = {
    "behind": "posterior",
    "above": "superior",
    "over": "superior",
    "below": "inferior",
    "under": "inferior",
    "beneath": "inferior",
    "underneath": "inferior",
}
"""Prepositions that are a direction relation when a structure (not a number) follows."""

IN_WORDS = {"in", "inside", "within", "into", "of", "at"}
TOUCH_WORDS = {"touching", "abutting", "adjacent", "contacting", "bordering", "contact", "touch"}
NEAR_WORDS = {"near", "close", "next", "beside", "around", "nearby", "proximity", "by"}
CLOSEST_WORDS = {"closest", "nearest"}
FARTHEST_WORDS = {"farthest", "furthest"}
NEW_WORDS = {"new", "newly", "appeared", "appearing", "emerging", "incident"}
OLD_WORDS = {"persistent", "existing", "known", "old", "preexisting", "stable", "residual"}
ID_WORDS = {"#", "number", "no", "id", "nr"}

LESION_NOUNS = {
    "lesion",
    "tumor",
    "mass",
    "growth",
    "metastasis",
    "nodule",
    "cyst",
    "carcinoma",
    "edema",
    "necrosis",
    "abscess",
}
GENERIC_LESION_NOUNS = {"lesion", "tumor", "mass", "growth"}
"""Nouns that mean every lesion class when no class name contains them."""
ORGAN_NOUNS = {"organ", "structure", "anatomy", "tissue"}

FILLERS = {
    "the",
    "a",
    "an",
    "all",
    "every",
    "each",
    "any",
    "show",
    "me",
    "find",
    "select",
    "segment",
    "segmented",
    "highlight",
    "mark",
    "give",
    "please",
    "which",
    "that",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "lies",
    "lie",
    "lying",
    "located",
    "situated",
    "seen",
    "there",
    "visible",
    "with",
    "having",
    "measuring",
    "measure",
    "size",
    "sized",
    "what",
    "where",
    "those",
    "these",
    "this",
    "its",
    "their",
    "it",
    "found",
    "identified",
    "detected",
    "present",
    "noted",
    "only",
    "to",
    "than",
    "from",
    "on",
    "most",
    "one",
    "(",
    ")",
    "%",
    "whose",
    "has",
    "have",
    "total",
    "mean",
    "ones",
    "region",
    "area",
    "image",
    "scan",
    "compared",
    "prior",
    "previous",
    "count",
    "overall",
    "patient",
    "body",
}
"""Words that carry no condition here (some also act inside a longer pattern)."""

DESCRIPTIVE = {
    "small",
    "large",
    "big",
    "tiny",
    "hypodense",
    "hyperdense",
    "hypoattenuating",
    "hyperattenuating",
    "isodense",
    "solid",
    "irregular",
    "round",
    "oval",
    "suspicious",
    "likely",
    "possible",
    "bilateral",
    "focal",
    "solitary",
    "dominant",
    "index",
    "target",
    "normal",
    "unremarkable",
    "enlarged",
    "measurable",
    "additional",
    "further",
    "other",
    "second",
    "third",
    "smaller",
    "larger",
    "bigger",
}
"""Descriptive words read and ignored; the explanation lists them."""

PLURAL_WORDS = {"all", "every", "each", "any", "both", "multiple", "several", "numerous", "few"}


def grammar_words() -> set[str]:
    """Every word the grammar itself knows (for spelling correction)."""
    words: set[str] = set()
    words.update(NUMBER_WORDS, UNITS, SUPERLATIVES, SIDES, REGION_WORDS, DIRECTIONS)
    words.update(DIRECTION_PREPOSITIONS, IN_WORDS, TOUCH_WORDS, NEAR_WORDS, CLOSEST_WORDS)
    words.update(FARTHEST_WORDS, NEW_WORDS, OLD_WORDS, ID_WORDS, LESION_NOUNS, ORGAN_NOUNS)
    words.update(
        FILLERS, DESCRIPTIVE, PLURAL_WORDS, {"and", "or", "plus", "between", "least", "than"}
    )
    for table in (COMPARATORS, QUANTITY_WORDS):
        for key in table:
            words.update(key)
    return {w for w in words if w.isalpha()}
