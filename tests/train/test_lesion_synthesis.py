"""Lesion synthesis: pasted voxels are labelled lesion, lie in host tissue, follow the training
lesions' intensities, are reproducible, and bad settings give one clear error."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage, stats

from medseg.errors import ConfigError, DatasetError
from medseg.plan import LesionSynthesisConfig, apply_overrides
from medseg.train.augment import augment_batch, build_augmentation, training_transform
from medseg.train.lesion_synthesis import (
    RandLesionSynthesisd,
    collect_lesion_statistics,
    lesion_synthesis_transform,
    paste_lesions,
    resolve_lesion_label,
)
from medseg.train.sampling import Batch

HOST, OTHER, LESION = 1, 2, 3
LESION_RANGE = (0.3, 0.5)


def _case(rng: np.random.Generator, shape=(24, 24, 24)) -> tuple[np.ndarray, np.ndarray]:
    """Air (0) around a host block (label 1, ~1.0) with a slab of other tissue (label 2, ~2.0)
    and one spherical lesion (label 3, uniform in LESION_RANGE) inside the host."""
    label = np.zeros(shape, np.int16)
    label[2:-2, 2:-2, 2:-2] = HOST
    label[2:-2, 2:-2, 2:6] = OTHER
    grid = np.indices(shape)
    centre = np.array(shape) // 2 + rng.integers(-2, 3, size=3)
    label[((grid - centre.reshape(3, 1, 1, 1)) ** 2).sum(0) <= 9] = LESION
    image = np.zeros(shape, np.float32)
    image[label == HOST] = 1.0
    image[label == OTHER] = 2.0
    image += rng.normal(0, 0.03, shape).astype(np.float32)
    image[label == LESION] = rng.uniform(*LESION_RANGE, (label == LESION).sum())
    return image[None], label[None]


@pytest.fixture
def lesion_source(array_source):
    rng = np.random.default_rng(0)
    return array_source({f"c{i}": _case(rng) for i in range(3)})


def _stats(source, **kwargs):
    kwargs = {"lesion_label": LESION, "spacing": (1.0, 1.0, 1.0), **kwargs}
    return collect_lesion_statistics(source, list(source.case_ids), **kwargs)


def test_statistics_learn_host_size_and_intensity(lesion_source) -> None:
    found = _stats(lesion_source)
    assert found.host_labels == (HOST,)
    assert found.cases == 3
    assert found.quantiles.shape == (3, 1, 21)
    values = np.concatenate([img[lab == LESION] for img, lab in lesion_source.cases.values()])
    assert found.quantiles[:, 0, 0].min() == pytest.approx(values.min())
    assert found.quantiles[:, 0, -1].max() == pytest.approx(values.max())
    assert 0.85 < found.host_window[0, 0] < 1.0 < found.host_window[0, 1] < 1.15
    radius = (3 * 123 / (4 * np.pi)) ** (1 / 3)  # 123 voxels in a ball of radius 3
    assert found.radius_mm == pytest.approx((0.8 * radius, 1.2 * radius))


def test_pasted_voxels_are_lesion_inside_host_with_training_intensities(lesion_source) -> None:
    found = _stats(lesion_source)
    image, label = lesion_source.cases["c0"]
    rng = np.random.default_rng(4)
    new_image, new_label, pasted = paste_lesions(
        image, label, found, rng, spacing=(1.0, 1.0, 1.0), max_lesions=3
    )
    changed = (new_label != label)[0]
    assert pasted >= 1
    assert changed.sum() > 20
    assert set(np.unique(new_label[0][changed])) == {LESION}
    assert set(np.unique(label[0][changed])) == {HOST}
    core = ndimage.binary_erosion(changed)
    low, high = LESION_RANGE
    assert core.any()
    assert new_image[0][core].min() >= low - 1e-5
    assert new_image[0][core].max() <= high + 1e-5
    near = ndimage.binary_dilation(changed, iterations=4)
    np.testing.assert_array_equal(new_image[0][~near], image[0][~near])
    np.testing.assert_array_equal(new_label[0][~changed], label[0][~changed])
    assert not np.shares_memory(image, new_image)


def test_pasted_intensities_follow_the_training_histogram(lesion_source) -> None:
    found = _stats(lesion_source)
    image, label = lesion_source.cases["c1"]
    cores = []
    for seed in range(6):
        out_image, out_label, _ = paste_lesions(
            image, label, found, np.random.default_rng(seed), spacing=(1, 1, 1), max_lesions=2
        )
        core = ndimage.binary_erosion((out_label != label)[0])
        cores.append(out_image[0][core])
    pasted = np.concatenate(cores)
    reference = np.random.default_rng(9).uniform(*LESION_RANGE, 2000)
    assert pasted.size > 100
    assert stats.ks_2samp(pasted, reference).pvalue > 0.01
    assert stats.ks_2samp(pasted, reference + 0.05).pvalue < 0.01  # the test can fail


def test_same_seed_same_result(lesion_source) -> None:
    found = _stats(lesion_source)
    image, label = lesion_source.cases["c2"]

    def run(seed: int):
        rng = np.random.default_rng(seed)
        return paste_lesions(image, label, found, rng, spacing=(1, 1, 1), max_lesions=3)

    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_explicit_host_labels_are_respected(lesion_source) -> None:
    found = _stats(lesion_source, host_labels=(OTHER,))
    assert found.host_labels == (OTHER,)
    image, label = lesion_source.cases["c0"]
    _, new_label, _ = paste_lesions(
        image, label, found, np.random.default_rng(1), spacing=(1, 1, 1), max_lesions=3
    )
    changed = (new_label != label)[0]
    assert changed.any()
    assert set(np.unique(label[0][changed])) == {OTHER}


def test_errors_without_lesions_or_host(lesion_source, array_source, plan) -> None:
    no_lesions = array_source(
        {
            k: (img, np.where(lab == LESION, HOST, lab))
            for k, (img, lab) in lesion_source.cases.items()
        }
    )
    with pytest.raises(DatasetError, match="lesion label 3"):
        _stats(no_lesions)
    with pytest.raises(DatasetError, match="host labels"):
        _stats(lesion_source, host_labels=(7,))
    training = plan.configuration().training
    with pytest.raises(ConfigError, match="lesion_label"):
        resolve_lesion_label(plan, training)  # the tiny plan has no rare class
    assert resolve_lesion_label(plan, replace(training, oversample_labels=(2,))) == 2
    chosen = replace(training, lesion_synthesis=LesionSynthesisConfig(lesion_label=9))
    with pytest.raises(ConfigError, match="not a foreground label"):
        resolve_lesion_label(plan, chosen)


def test_plan_field_round_trips_and_is_validated(plan) -> None:
    key = "training.lesion_synthesis.probability"
    on = apply_overrides(plan, {key: 0.5, "training.lesion_synthesis.host_labels": [1]})
    settings = on.configuration().training.lesion_synthesis
    assert settings.probability == 0.5
    assert settings.host_labels == (1,)
    assert plan.configuration().training.lesion_synthesis.probability == 0.0  # off by default
    with pytest.raises(ConfigError, match="probability in"):
        apply_overrides(plan, {key: 1.5})
    # CPU time-budget plans train without augmentation; synthesis then runs on its own
    raw = apply_overrides(plan, {key: 0.5, "training.augment": False})
    assert raw.configuration().training.lesion_synthesis.probability == 0.5


def test_transform_runs_first_in_the_augmentation(lesion_source, plan) -> None:
    assert lesion_synthesis_transform(lesion_source, ["c0"], plan, plan.configuration()) is None
    found = _stats(lesion_source)
    synthesis = RandLesionSynthesisd(found, (1.0, 1.0, 1.0), prob=1.0, max_lesions=3)
    transform = build_augmentation(3, lesion_synthesis=synthesis)
    assert transform.transforms[0] is synthesis
    image, label = lesion_source.cases["c0"]
    host_only = np.where(label == LESION, HOST, label).astype(np.int16)
    batch = Batch(image=image[None], label=host_only[None], forced=np.array([False]))
    _, out_label = augment_batch(batch, transform, seed=0)
    assert (out_label == LESION).sum() > 20
    _, again = augment_batch(batch, transform, seed=0)
    assert torch.equal(out_label, again)
    never = RandLesionSynthesisd(found, (1.0, 1.0, 1.0), prob=0.0, max_lesions=3)
    _, untouched = augment_batch(batch, build_augmentation(3, lesion_synthesis=never), seed=0)
    assert not (untouched == LESION).any()


def test_synthesis_runs_without_the_other_augmentations(lesion_source) -> None:
    found = _stats(lesion_source)
    synthesis = RandLesionSynthesisd(found, (1.0, 1.0, 1.0), prob=1.0, max_lesions=1)
    alone = training_transform(3, augment=False, mirror_axes=(0,), lesion_synthesis=synthesis)
    assert list(alone.transforms) == [synthesis]
    assert training_transform(3, augment=False, mirror_axes=(0,)) is None
    full = training_transform(3, augment=True, lesion_synthesis=synthesis)
    assert full.transforms[0] is synthesis
    assert len(full.transforms) > 1


@pytest.mark.slow
def test_train_fold_learns_statistics_from_the_training_cases_only(
    lesion_source, tiny_plan, tmp_path, caplog
) -> None:
    from medseg.train.model_folder import save_model_folder
    from medseg.train.trainer import train_fold

    plan = tiny_plan(epochs=1, iterations=2)
    config = plan.configuration()
    settings = LesionSynthesisConfig(probability=1.0, lesion_label=LESION)
    training = replace(config.training, lesion_synthesis=settings)
    plan = replace(
        plan.with_configuration(replace(config, training=training)),
        labels={"background": 0, "host": HOST, "other": OTHER, "lesion": LESION},
        num_classes=4,
    )
    save_model_folder(tmp_path, plan, configuration="3d")
    with caplog.at_level("INFO", logger="medseg.train.lesion_synthesis"):
        result = train_fold(
            lesion_source, plan, "3d", tmp_path, 0, train_ids=["c0", "c1"], val_ids=["c2"],
            device="cpu", seed=0, final_validation=False,
        )  # fmt: skip
    assert (result.path / "model.safetensors").is_file()
    assert "2 training lesions (label 3) in 2 cases; host labels [1]" in caplog.text


def test_planar_statistics_and_2d_patches(lesion_source) -> None:
    found = _stats(lesion_source, spacing=(1.0, 1.0))
    radius = np.sqrt(29 / np.pi)  # the largest cross-section of a radius-3 ball: 29 voxels
    assert found.radius_mm == pytest.approx((0.8 * radius, 1.2 * radius))
    image, label = lesion_source.cases["c0"]
    z = 12
    new_image, new_label, pasted = paste_lesions(
        image[:, z], label[:, z], found, np.random.default_rng(2), spacing=(1, 1), max_lesions=2
    )
    changed = (new_label != label[:, z])[0]
    assert pasted >= 1
    assert changed.any()
    assert set(np.unique(label[0, z][changed])) == {HOST}
    assert new_image.shape == image[:, z].shape


def test_batches_match_with_and_without_worker_processes(lesion_source) -> None:
    import itertools

    from medseg.train.loader import BatchStream, batch_iterator
    from medseg.train.sampling import PatchSampler

    synthesis = RandLesionSynthesisd(_stats(lesion_source), (1.0,) * 3, prob=1.0, max_lesions=2)
    ids = list(lesion_source.case_ids)

    def stream() -> BatchStream:
        sampler = PatchSampler(lesion_source, ids, (16,) * 3, 2, 0.0, foreground_labels=(1, 2, 3))
        return BatchStream(sampler, build_augmentation(3, lesion_synthesis=synthesis), seed=2)

    main = list(itertools.islice(batch_iterator(stream(), 0), 3))
    workers = list(itertools.islice(batch_iterator(stream(), 2), 3))
    for (a_img, a_lab), (b_img, b_lab) in zip(main, workers, strict=True):
        assert torch.equal(a_img, b_img)
        assert torch.equal(a_lab, b_lab)
    assert any((lab == LESION).any() for _, lab in main)
