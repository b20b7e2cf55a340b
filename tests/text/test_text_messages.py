"""Clear messages for phrases that are ambiguous or only partly understood, and the JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from text_phantom import NAMES, VARIANTS, canonical_labels

from medseg.io import Image
from medseg.report import PriorScan
from medseg.text import (
    AmbiguousQuery,
    Classes,
    NotUnderstood,
    QueryError,
    build_scene,
    find,
    parse,
)


@pytest.fixture(scope="module")
def scene():  # type: ignore[no-untyped-def]
    store, direction, spacing, origin = VARIANTS["ras"]
    image = Image(store(canonical_labels())[None], spacing, origin, direction)
    return build_scene(image, names=NAMES)


def test_ambiguous_lists_candidates_and_a_suggestion(scene) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AmbiguousQuery) as info:
        find(scene, "the lesion in the liver")
    err = info.value
    assert "asks for 1 but 3 match" in str(err)
    assert len(err.candidates) == 3
    assert all("in liver" in c for c in err.candidates)
    assert "largest" in err.suggestion
    assert err.to_dict()["kind"] == "AmbiguousQuery"


def test_ambiguous_structure_names_both_classes(scene) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AmbiguousQuery) as info:
        find(scene, "the kidney")
    assert {c.split(" (")[0] for c in info.value.candidates} == {"kidney_left", "kidney_right"}


def test_unknown_words_are_named_with_suggestions(scene) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotUnderstood) as info:
        find(scene, "the largest lesion shimmering quux")
    err = info.value
    assert err.not_understood == ("shimmering", "quux")
    assert "partly understood" in str(err)
    assert err.suggestion


def test_missing_class_names_the_model_classes(scene) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotUnderstood) as info:
        find(scene, "lesions in the pancreas")
    assert "no class 'pancreas'" in str(info.value)
    assert info.value.candidates  # the classes it could have meant


def test_number_without_unit_says_which_units(scene) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotUnderstood, match="needs a unit"):
        find(scene, "lesions over 5")


def test_new_without_prior_asks_for_one(scene) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QueryError, match="prior"):
        find(scene, "new lesions")


def test_diameter_of_a_structure_is_refused(scene) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QueryError, match="lesions only"):
        find(scene, "the liver longer than 10 mm")


def test_spelling_corrections_are_reported(scene) -> None:  # type: ignore[no-untyped-def]
    selection = find(scene, "the largset lesoin in the lver")
    assert set(selection.query.corrections) == {
        ("largset", "largest"),
        ("lesoin", "lesion"),
        ("lver", "liver"),
    }


def test_short_words_are_not_corrected() -> None:
    classes = Classes({1: "gray_matter", 2: "white_matter"}, frozenset())
    query = parse("the WM", classes)
    assert query.clauses[0].labels == (2,)
    assert not query.corrections
    with pytest.raises(NotUnderstood):
        parse("the xm", classes)


def test_explanation_json_has_measurements(scene) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(find(scene, "the largest lesion in the liver").to_dict()))
    (clause,) = data["clauses"]
    assert clause["classes"] == ["tumor", "metastasis"]
    assert clause["candidates"] == 7
    (lesion,) = clause["selected"]
    assert lesion["structure"] == "liver"
    assert lesion["side"] == "right"
    assert lesion["volume_ml"] == pytest.approx(216 * 0.012)
    assert data["voxels"] == 216
    assert "in liver" in clause["reading"]
    assert "largest 1" in clause["reading"]


def test_new_lesions_against_a_prior() -> None:
    labels = canonical_labels()
    prior = labels.copy()
    prior[(prior == 5) | (prior == 6)] = 0
    prior[6:10, 6:10, 6:10] = 5  # lesion A existed; every other lesion is new
    image = Image.from_array(labels[None])
    scene = build_scene(image, names=NAMES, prior=PriorScan(image, Image.from_array(prior[None])))
    new = find(scene, "new lesions")
    assert int(new.mask.sum()) == int(((labels == 5) | (labels == 6)).sum()) - 64
    old = find(scene, "persistent lesions")
    assert int(old.mask.sum()) == 64
    assert bool(old.mask[7, 7, 7])
    largest_new = find(scene, "the largest new lesion").mask
    expected = np.zeros_like(largest_new)
    expected[12:18, 14:20, 12:18] = True  # lesion B
    assert np.array_equal(largest_new, expected)


def test_random_word_salad_gives_a_query_error_or_a_selection(scene) -> None:  # type: ignore[no-untyped-def]
    """Bad input gets one clear error, never another exception (2000 random phrases)."""
    import random

    from medseg.text import lexicon

    words = [*sorted(lexicon.grammar_words()), "liver", "spleen", "kidney", "tumor", "lesion"]
    words += ["5", "0.5", "12.3", "ml", "mm", "×", ",", ";", "(", ")", "#", "3", "2"]
    rng = random.Random(0)
    outcomes = {"selection": 0, "error": 0}
    for _ in range(2000):
        phrase = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        try:
            selection = find(scene, phrase)
        except QueryError as err:
            outcomes["error"] += bool(str(err))
        else:
            outcomes["selection"] += selection.mask.shape == scene.labels.shape
    assert sum(outcomes.values()) == 2000
    assert outcomes["selection"] > 0
