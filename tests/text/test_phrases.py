"""Phrases with hand-written answers on the synthetic abdomen (layout in conftest.py).

Every phrase runs on four storage variants of the same patient (LPS, x flipped, RAS, all axes
flipped with y and x swapped), so left/right and the other directions are read from the
direction matrix, never from array indices. An answer is the objects whose voxels must be
selected exactly, ``""`` for an empty selection, ``!AMB`` for the ambiguity message, ``!NU``
for the not-understood message and ``!ERR`` for another query error.
"""

from __future__ import annotations

import numpy as np
from text_phantom import NAMES, canonical_object

from medseg.text import AmbiguousQuery, NotUnderstood, QueryError, build_scene, find

PHRASES: list[tuple[str, str]] = [
    # superlatives
    ("the largest lesion", "B"),
    ("largest lesion", "B"),
    ("the biggest lesion", "B"),
    ("the smallest lesion", "D"),
    ("the tiniest lesion", "D"),
    ("the two largest lesions", "B F"),
    ("the 3 largest lesions", "B F A"),
    ("the three smallest lesions", "D G C"),
    ("the largest 2 lesions", "B F"),
    ("the largest tumor", "B"),
    ("the smallest tumor", "C"),
    ("the largest metastasis", "E"),
    ("the smallest metastasis", "D"),
    ("the two largest metastases", "E G"),
    ("the longest lesion", "B"),
    ("the shortest lesion", "D"),
    ("the largest mass", "B"),
    # plurals and the singular check
    ("all tumors", "A B C F"),
    ("tumors", "A B C F"),
    ("all metastases", "D E G"),
    ("all lesions", "A B C D E F G"),
    ("lesions", "A B C D E F G"),
    ("every lesion", "A B C D E F G"),
    ("tumors and metastases", "A B C D E F G"),
    ("the lesion", "!AMB"),
    ("the tumor", "!AMB"),
    ("a metastasis", "!AMB"),
    ("the lesion in the liver", "!AMB"),
    ("the tumor in the liver", "!AMB"),
    ("the lesion on the left", "!AMB"),
    ("the tumor on the right", "!AMB"),
    ("two lesions in the liver", "!AMB"),
    ("three lesions in the liver", "A B D"),
    ("one lesion in the spleen", "C"),
    ("two metastases on the right", "D G"),
    ("the lesion in the right kidney", ""),
    # containing structure
    ("the lesion in the left kidney", "E"),
    ("the lesion in the spleen", "C"),
    ("lesions in the liver", "A B D"),
    ("tumors in the liver", "A B"),
    ("metastases in the liver", "D"),
    ("the metastasis in the liver", "D"),
    ("the largest lesion in the liver", "B"),
    ("the smallest lesion in the liver", "D"),
    ("the largest tumor in the liver", "B"),
    ("liver lesions", "A B D"),
    ("liver tumors", "A B"),
    ("liver metastases", "D"),
    ("hepatic lesions", "A B D"),
    ("hepatic metastases", "D"),
    ("splenic lesions", "C"),
    ("renal lesions", "E"),
    ("lesions in the kidneys", "E"),
    ("lesions in the right kidney", ""),
    ("lesions in the left kidney", "E"),
    ("the lesion in the kidney", "E"),
    ("lesions inside the liver", "A B D"),
    ("lesions within the spleen", "C"),
    ("lesions in the liver or spleen", "A B C D"),
    ("lesions in the liver and spleen", "A B C D"),
    ("lesions in the spleen or the left kidney", "C E"),
    ("the largest lesion in the left kidney or spleen", "E"),
    # sides (patient left/right from the direction matrix)
    ("lesions on the left", "C E F"),
    ("lesions on the right", "A B D G"),
    ("left lesions", "C E F"),
    ("right-sided lesions", "A B D G"),
    ("left-sided tumors", "C F"),
    ("right sided metastases", "D G"),
    ("the largest lesion on the left", "F"),
    ("the largest lesion on the right", "B"),
    ("the smallest lesion on the left", "C"),
    ("the largest lesion in the left hemisphere", "F"),
    ("lesions in the right half", "A B D G"),
    ("the smallest lesion in the right hemisphere", "D"),
    ("the two largest left lesions", "F E"),
    ("the metastasis on the left", "E"),
    ("the largest lesion, on the left", "F"),
    ("the biggest tumour on the left", "F"),
    ("the leftmost lesion", "F"),
    ("the rightmost lesion", "A"),
    # volume thresholds
    ("lesions over 1 ml", "B F"),
    ("lesions larger than 1 ml", "B F"),
    ("lesions above 0.5 ml", "A B F"),
    ("lesions bigger than 0.5 ml", "A B F"),
    ("lesions under 0.2 ml", "D G"),
    ("lesions smaller than 0.2 ml", "D G"),
    ("lesions below 0.15 ml", "D G"),
    ("lesions at least 0.7 ml", "A B F"),
    ("lesions at most 0.4 ml", "C D G"),
    ("lesions between 0.3 and 1 ml", "A C E"),
    ("lesions between 0.1 and 0.5 ml", "C E G"),
    ("tumors over 1 ml", "B F"),
    ("metastases over 0.1 ml", "E G"),
    ("lesions over 500 mm3", "A B F"),
    ("lesions over 1 cc", "B F"),
    ("lesions over 1000 mm³", "B F"),
    ("lesions over 1ml", "B F"),
    ("lesions > 1 ml", "B F"),
    ("lesions < 0.2 ml", "D G"),
    ("lesions measuring more than 1 ml", "B F"),
    ("lesions with volume over 1 ml", "B F"),
    ("lesions with a volume of more than 1 ml", "B F"),
    ("lesions over 100 ml", ""),
    ("organs over 10 ml", "liver spleen"),
    # lengths
    ("lesions longer than 20 mm", "B"),
    ("lesions longer than 15 mm", "B F A"),
    ("lesions longer than 1.5 cm", "B F A"),
    ("lesions shorter than 10 mm", "G D"),
    ("lesions with a diameter over 14 mm", "B F A"),
    ("lesions with a diameter under 13 mm", "C G D"),
    ("lesions with a long axis over 10.5 mm", "B F A"),
    ("lesions with a short axis over 9 mm", "B F A"),
    ("lesions with a short axis below 6 mm", "G D"),
    ("the lesion measuring 1.2 cm", "C"),
    # measured values (as the report writes them)
    ("the 2.59 ml lesion", "B"),
    ("the lesion of 0.43 ml", "E"),
    ("the 17 × 17 mm lesion", "B"),
    ("the 14 x 10 mm lesion", "F"),
    ("the lesion of 1.15 ml", "F"),
    # combinations
    ("lesions over 0.5 ml in the liver", "A B"),
    ("liver lesions over 0.5 ml", "A B"),
    ("lesions in the liver larger than 1 ml", "B"),
    ("lesions over 0.1 ml and under 0.5 ml", "C E G"),
    ("lesions larger than 0.2 ml and smaller than 1 ml", "A C E"),
    ("left lesions over 0.4 ml", "E F"),
    ("right lesions under 0.5 ml", "D G"),
    ("the largest lesion under 1 ml", "A"),
    ("the smallest lesion over 0.2 ml", "C"),
    ("lesions in the liver over 0.5 ml on the right", "A B"),
    ("all lesions on the left over 1 ml", "F"),
    ("the 2 largest lesions in the liver", "B A"),
    # directions relative to the image centre, and superlatives
    ("anterior lesions", "A B C D F"),
    ("posterior lesions", "E G"),
    ("superior lesions", "B D F"),
    ("inferior lesions", "A C E G"),
    ("upper lesions", "B D F"),
    ("lower lesions", "A C E G"),
    ("lesions in the upper half", "B D F"),
    ("lesions in the lower half", "A C E G"),
    ("posterior metastases", "E G"),
    ("anterior metastases", "D"),
    ("the most anterior lesion", "F"),
    ("the most posterior lesion", "G"),
    ("the most superior lesion", "F"),
    ("the most inferior lesion", "G"),
    ("the uppermost lesion", "F"),
    ("the lowest lesion", "G"),
    ("the most anterior tumor", "F"),
    ("the most posterior tumor", "B"),
    ("the two most posterior lesions", "G E"),
    # directions relative to a structure
    ("lesions posterior to the liver", "B C E G"),
    ("lesions anterior to the liver", "A D F"),
    ("lesions behind the liver", "B C E G"),
    ("lesions in front of the liver", "A D F"),
    ("lesions above the liver", "B D F"),
    ("lesions below the liver", "A C E G"),
    ("lesions superior to the liver", "B D F"),
    ("lesions inferior to the liver", "A C E G"),
    ("lesions to the left of the liver", "B C D E F G"),
    ("lesions to the right of the spleen", "A B C D E G"),
    # touching, near, closest
    ("lesions touching the liver", "A B D"),
    ("lesions touching the spleen", "C"),
    ("lesions abutting the left kidney", "E"),
    ("lesions adjacent to the liver", "A B D"),
    ("lesions near the right kidney", "G"),
    ("lesions close to the right kidney", "G"),
    ("lesions within 5 mm of the spleen", "C"),
    ("lesions within 12 mm of the spleen", "C E"),
    ("lesions within 15 mm of the liver", "A B D G"),
    ("lesions near the liver", "A B D"),
    ("the lesion closest to the right kidney", "G"),
    ("the lesion nearest to the spleen", "C"),
    ("the lesion closest to the vertebra", "G"),
    ("the tumor closest to the spleen", "C"),
    ("the metastasis closest to the spleen", "E"),
    ("the lesion farthest from the liver", "F"),
    ("the two lesions closest to the right kidney", "G B"),
    # ids
    ("lesion 1", "B"),
    ("lesion #5", "E"),
    ("lesion number 7", "D"),
    ("lesion 1 and lesion 4", "B C"),
    # structures
    ("the liver", "liver"),
    ("liver", "liver"),
    ("the hepar", "liver"),
    ("the spleen", "spleen"),
    ("the vertebra", "vertebra"),
    ("the left kidney", "kidney_left"),
    ("the kidney on the left", "kidney_left"),
    ("the right kidney", "kidney_right"),
    ("kidney left", "kidney_left"),
    ("Kidney_Right", "kidney_right"),
    ("the kidney", "!AMB"),
    ("the kidneys", "kidney_left kidney_right"),
    ("both kidneys", "kidney_left kidney_right"),
    ("KIDNEYS", "kidney_left kidney_right"),
    ("the left and right kidney", "kidney_left kidney_right"),
    ("the left vertebra", "vertebra@left"),
    ("the right vertebra", "vertebra@right"),
    ("the largest organ", "liver"),
    ("the smallest organ", "vertebra"),
    ("the two largest organs", "liver spleen"),
    ("organs on the left", "spleen kidney_left vertebra@left"),
    ("the liver and the spleen", "liver spleen"),
    ("liver and spleen", "liver spleen"),
    ("the liver, the spleen and the left kidney", "liver spleen kidney_left"),
    ("segment the spleen", "spleen"),
    # several clauses
    ("the largest lesion and the liver", "B liver"),
    ("the largest tumor and the smallest metastasis", "B D"),
    ("the liver and lesions in the spleen", "liver C"),
    ("tumors on the left and metastases on the right", "C F D G"),
    ("the largest tumor on the left and the smallest metastasis on the right", "F D"),
    # misspellings, synonyms, fillers
    ("the largest lesoin", "B"),
    ("the lver", "liver"),
    ("lesions in the livr", "A B D"),
    ("the spleeen", "spleen"),
    ("the largset lesion", "B"),
    ("tumours in the liver", "A B"),
    ("metastatic lesions", "D E G"),
    ("mets in the liver", "D"),
    ("show me the largest lesion please", "B"),
    ("find all tumors in the liver", "A B"),
    ("highlight the lesions on the left", "C E F"),
    ("the small lesion in the spleen", "C"),
    # not understood, or not possible here
    ("the pancreas", "!NU"),
    ("lesions in the pancreas", "!NU"),
    ("the largest nodule", "!NU"),
    ("the largest blorp", "!NU"),
    ("lesions over 5", "!NU"),
    ("the largest lesion near the pancreas", "!NU"),
    ("the largest lesion flibbertigibbet", "!NU"),
    ("lesions in the left lung", "!NU"),
    ("the largest new lesion", "!ERR"),
    ("lesions with a volume over 10 mm", "!NU"),
]


def expected_mask(answer: str, store) -> np.ndarray:  # type: ignore[no-untyped-def]
    mask = np.zeros_like(canonical_object("A"))
    for name in answer.split():
        mask |= canonical_object(name)
    return store(mask)


def test_at_least_200_phrases() -> None:
    assert len(PHRASES) >= 200
    assert len({p for p, _ in PHRASES}) == len(PHRASES)


def test_phrases_select_the_expected_voxels(stored) -> None:  # type: ignore[no-untyped-def]
    image, store = stored
    scene = build_scene(image, names=NAMES)
    failures = []
    for phrase, answer in PHRASES:
        errors = {"!AMB": AmbiguousQuery, "!NU": NotUnderstood, "!ERR": QueryError}
        if answer in errors:
            try:
                find(scene, phrase)
            except errors[answer]:
                continue
            except QueryError as err:
                failures.append(f"{phrase!r}: wrong error {type(err).__name__}: {err}")
                continue
            failures.append(f"{phrase!r}: expected {answer}, got a selection")
            continue
        try:
            got = find(scene, phrase).mask
        except QueryError as err:
            failures.append(f"{phrase!r}: {type(err).__name__}: {err}")
            continue
        want = expected_mask(answer, store)
        if not np.array_equal(got, want):
            failures.append(
                f"{phrase!r}: expected {answer or 'nothing'} ({int(want.sum())} voxels), "
                f"got {int(got.sum())} voxels ({int((got & want).sum())} of them expected)"
            )
    assert not failures, "\n".join(failures)
