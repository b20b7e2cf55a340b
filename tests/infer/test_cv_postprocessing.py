"""determine_postprocessing: each fold predicts its own validation cases."""

from __future__ import annotations

import numpy as np
import pytest

from medseg._config import write_json
from medseg.data.dataset import Case, Dataset, LabelSpec
from medseg.errors import DatasetError, ModelFormatError
from medseg.infer import Predictor, determine_postprocessing, load_postprocessing
from medseg.infer.postprocessing import select_postprocessing
from medseg.io import write_image


@pytest.fixture
def cv_setup(model_factory, make_image, tmp_path):
    cases = []
    for i in range(2):
        image = make_image(seed=i)
        label = (image.array > 60).astype(np.uint8)
        paths = (tmp_path / f"c{i}_0000.nii.gz", tmp_path / f"c{i}.nii.gz")
        write_image(image, paths[0])
        write_image(image.with_array(label), paths[1])
        cases.append(Case(case_id=f"c{i}", image_paths=(paths[0],), label_path=paths[1]))
    dataset = Dataset(
        root=tmp_path,
        name="Tiny",
        cases=tuple(cases),
        labels=LabelSpec(labels={"background": 0, "ball": 1, "shell": 2}),
        channel_names={0: "MR"},
    )
    model = model_factory(folds=(0, 1))
    splits = [{"train": ["c1"], "val": ["c0"]}, {"train": ["c0"], "val": ["c1"]}]
    return model, dataset, splits, cases


@pytest.mark.slow
def test_rules_follow_selection_on_each_folds_own_predictions(cv_setup):
    model, dataset, splits, cases = cv_setup
    write_json(splits, model / "splits_final.json")
    choice = determine_postprocessing(model, dataset, device="cpu", tta=False)
    assert load_postprocessing(model) == choice.rules
    # independent recomputation: fold k's network on fold k's validation case, no rules
    from medseg.plan.cases import read_case

    preds, refs = [], []
    for fold, case in enumerate(cases):
        image, reference = read_case(case)
        predictor = Predictor(model, device="cpu", folds=[fold], tta=False, postprocess=False)
        preds.append(predictor.predict_image(image).labels.array[0])
        refs.append(reference)
    expected, _ = select_postprocessing(preds, refs, [1, 2])
    assert choice.rules == expected
    assert len(choice.steps) == 1 + 3 * 2  # largest foreground, then 3 steps per label


def test_missing_splits_file(cv_setup):
    model, dataset, _, _ = cv_setup
    with pytest.raises(ModelFormatError, match=r"splits_final\.json"):
        determine_postprocessing(model, dataset, device="cpu")


def test_validation_case_missing_from_dataset(cv_setup):
    model, dataset, _, _ = cv_setup
    write_json(
        [{"train": [], "val": ["zz"]}, {"train": [], "val": ["c1"]}], model / "splits_final.json"
    )
    with pytest.raises(DatasetError, match="'zz'"):
        determine_postprocessing(model, dataset, device="cpu", tta=False)


def _specked(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference with four 3^3 'lesions' (label 1) and a block (2); the prediction adds specks."""
    rng = np.random.default_rng(seed)
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[12:18, 2:18, 2:18] = 2
    for z, y, x in ((2, 2, 2), (2, 10, 10), (7, 3, 14), (7, 13, 4)):
        ref[z : z + 3, y : y + 3, x : x + 3] = 1
    pred = ref.copy()
    background = np.argwhere(ref == 0)
    for z, y, x in background[rng.choice(len(background), 5, replace=False)]:
        pred[z, y, x] = 1
    return pred, ref


def test_choice_from_training_validation_labels(model_factory):
    from types import SimpleNamespace

    from medseg.infer import postprocessing_from_training
    from medseg.train.model_folder import fold_dir
    from medseg.train.validation import VALIDATION_LABELS, save_validation_labels

    model = model_factory(folds=(0, 1))
    assert postprocessing_from_training(model) is None  # no fold saved validation labels
    ensemble = model.parent / "ensemble"
    ensemble.mkdir()
    (ensemble / "ensemble.json").write_text("{}")
    assert postprocessing_from_training(ensemble) is None  # its prediction applies no rules
    assert not (model / "postprocessing.json").exists()
    pairs = {f"c{i}": _specked(i) for i in range(4)}
    # preprocessed voxels of 2 x 2 x 2 mm from 1 mm originals: 8 original voxels each
    props = SimpleNamespace(spacing=(1.0, 1.0, 1.0), spacing_after_resampling=(2.0, 2.0, 2.0))

    class Source:
        def load(self, case_id, mmap=True):
            return None, pairs[case_id][1][None], props

    for fold, ids in ((0, ["c0", "c1"]), (1, ["c2", "c3"])):
        path = save_validation_labels(
            fold_dir(model, fold), {c: pairs[c][0] for c in ids}, Source()
        )
        assert path.name == VALIDATION_LABELS
    choice = postprocessing_from_training(model)
    expected, steps = select_postprocessing(
        [p for p, _ in pairs.values()], [r for _, r in pairs.values()], [1, 2]
    )
    assert dict(expected.min_component_size) == {1: 2}  # specks of 1 voxel go, lesions stay
    assert dict(choice.rules.min_component_size) == {1: 16}  # stated in original voxels
    assert choice.rules.keep_largest == expected.keep_largest
    assert [s.step for s in choice.steps] == [s.step for s in steps]
    assert not choice.on_training_cases
    assert load_postprocessing(model) == choice.rules


def test_truncated_validation_labels_are_one_clear_error(model_factory):
    from medseg.infer import postprocessing_from_training
    from medseg.train.model_folder import fold_dir
    from medseg.train.validation import VALIDATION_LABELS

    model = model_factory(folds=(0,))
    (fold_dir(model, 0) / VALIDATION_LABELS).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFormatError, match="unreadable validation labels"):
        postprocessing_from_training(model)
