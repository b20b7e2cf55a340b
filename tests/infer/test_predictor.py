"""Predictor end to end on tiny random-weight model folders: geometry, outputs, error paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medseg.errors import ConfigError, DatasetError, ModelFormatError
from medseg.infer import Predictor, find_inputs, label_volumes
from medseg.infer.postprocessing import PostprocessingRules, save_postprocessing
from medseg.io import Image, read_image, write_image


def _assert_same_grid(out: Image, ref: Image) -> None:
    assert out.spatial_shape == ref.spatial_shape
    np.testing.assert_allclose(out.spacing, ref.spacing, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out.origin, ref.origin, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out.direction, ref.direction, rtol=0, atol=1e-6)


def test_nifti_3d_output_has_input_geometry_anisotropic_oblique(
    model_factory, make_image, tmp_path
):
    model = model_factory(spacing=(4.0, 1.2, 1.2), mirror=(1, 2))
    source = tmp_path / "in" / "scan_0000.nii.gz"
    source.parent.mkdir()
    write_image(make_image(), source)
    report = Predictor(model, device="cpu").predict_files(source, tmp_path / "out")
    assert report.ok, report.failures
    (written,) = report.outputs
    assert written.labels_path.name == "scan.nii.gz"
    out, ref = read_image(written.labels_path), read_image(source)
    _assert_same_grid(out, ref)
    assert out.array.dtype == np.uint8
    assert set(np.unique(out.array)) <= {0, 1, 2}


def test_predict_image_keeps_exact_geometry_in_memory(model_factory, oblique_image):
    prediction = Predictor(model_factory(spacing=(4.0, 1.2, 1.2)), device="cpu").predict_image(
        oblique_image, probabilities=True, uncertainty=True
    )
    for image in (prediction.labels, prediction.probabilities, *prediction.uncertainty.values()):
        assert image.spatial_shape == oblique_image.spatial_shape
        assert image.spacing == oblique_image.spacing
        assert image.origin == oblique_image.origin
        np.testing.assert_array_equal(image.direction, oblique_image.direction)
    probs = prediction.probabilities.array.astype(np.float32)
    assert probs.shape[0] == 3
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=2e-2)
    assert set(prediction.uncertainty) == {"entropy", "mutual_information"}


def test_png_2d_model_writes_png_with_input_shape(model_factory, tmp_path):
    model = model_factory(ndim=2, spacing=(1.0, 1.0), mirror=(0, 1))
    rng = np.random.default_rng(0)
    array = (rng.random((1, 21, 30)) * 200).astype(np.uint8)
    source = tmp_path / "slice.png"
    write_image(Image.from_array(array), source)
    report = Predictor(model, device="cpu").predict_files(
        source, tmp_path / "out", probabilities=True
    )
    assert report.ok, report.failures
    (written,) = report.outputs
    assert written.labels_path.suffix == ".png"
    out, ref = read_image(written.labels_path), read_image(source)
    _assert_same_grid(out, ref)
    probs = read_image(written.extra["probabilities"])
    assert probs.array.shape == (3, 21, 30)
    assert "area_mm2" in written.volumes["ball"]


def test_probabilities_uncertainty_and_volumes_files(model_factory, tmp_path, oblique_image):
    source = tmp_path / "c1.nii.gz"
    write_image(oblique_image, source)
    predictor = Predictor(model_factory(folds=(0, 1)), device="cpu", fast=True)
    assert predictor.settings.mirror_axes == ()
    report = predictor.predict_files(
        [source], tmp_path / "out", probabilities=True, uncertainty=True
    )
    (written,) = report.outputs
    probs = read_image(written.extra["probabilities"])
    assert probs.array.dtype == np.uint8
    assert probs.num_channels == 3
    _assert_same_grid(probs, read_image(source))
    entropy = read_image(written.extra["entropy"]).array
    assert entropy.min() >= 0
    assert entropy.max() <= 1
    labels = read_image(written.labels_path)
    data = json.loads(written.extra["volumes"].read_text())
    voxel_ml = math.prod(labels.spacing) / 1000
    for name, value in (("ball", 1), ("shell", 2)):
        count = int((labels.array == value).sum())
        assert data["labels"][name]["voxels"] == count
        assert data["labels"][name]["volume_ml"] == pytest.approx(count * voxel_ml)


def test_label_volumes_in_ml():
    labels = Image.from_array(np.array([[[[0, 1], [1, 2]]]], np.uint8), spacing=(2.0, 5.0, 10.0))
    volumes = label_volumes(labels, {"background": 0, "a": 1, "b": 2})
    assert volumes == {"a": {"voxels": 2, "volume_ml": 0.2}, "b": {"voxels": 1, "volume_ml": 0.1}}


def test_fold_weights_are_averaged(model_factory, oblique_image):
    model = model_factory(folds=(0, 1))
    kwargs = {"device": "cpu", "tta": False}
    p0 = Predictor(model, folds=[0], **kwargs).predict_image(oblique_image, probabilities=True)
    p1 = Predictor(model, folds=[1], **kwargs).predict_image(oblique_image, probabilities=True)
    both = Predictor(model, **kwargs).predict_image(oblique_image, probabilities=True)
    assert both.members == 2
    mean = (p0.probabilities.array.astype(np.float32) + p1.probabilities.array) / 2
    np.testing.assert_allclose(both.probabilities.array, mean, atol=2e-3)


def test_postprocessing_rules_are_applied(model_factory, oblique_image):
    model = model_factory()
    raw = Predictor(model, device="cpu", tta=False).predict_image(oblique_image).labels.array[0]
    save_postprocessing(PostprocessingRules(keep_largest_foreground=True), model)
    done = Predictor(model, device="cpu", tta=False).predict_image(oblique_image).labels.array[0]
    import cc3d

    assert cc3d.connected_components(done > 0, connectivity=26).max() <= 1
    assert (done[done > 0] == raw[done > 0]).all()


def test_two_d_model_on_3d_volume_slices_along_axis_0(model_factory, make_image):
    model = model_factory(ndim=2, mirror=(0, 1))
    image = make_image((3, 12, 10))
    prediction = Predictor(model, device="cpu").predict_image(image)
    assert prediction.labels.spatial_shape == (3, 12, 10)


def test_multichannel_nnunet_naming(model_factory, make_image, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for channel in range(2):
        write_image(make_image(seed=channel), folder / f"case1_{channel:04d}.nii.gz")
    (folder / "notes.txt").write_text("not an image")
    (case,) = find_inputs(folder)
    assert case.case_id == "case1"
    assert len(case.paths) == 2
    report = Predictor(model_factory(channels=2), device="cpu").predict_files(
        folder, tmp_path / "o"
    )
    assert report.ok
    assert (tmp_path / "o" / "case1.nii.gz").is_file()


def test_dicom_series_folder_gives_nifti(model_factory, make_image, tmp_path, ct_series_writer):
    folder = tmp_path / "series"
    folder.mkdir()
    hu = np.round(make_image((4, 16, 12)).array[0] * 10)
    ct_series_writer(
        folder,
        hu,
        pixel_spacing=(0.7, 0.7),
        slice_spacing=2.5,
        origin_xyz=(0.0, 0.0, 0.0),
        row_cosine=np.array([1.0, 0.0, 0.0]),
        column_cosine=np.array([0.0, 1.0, 0.0]),
        rng=np.random.default_rng(0),
        slope=1.0,
        intercept=0.0,
    )
    report = Predictor(model_factory(), device="cpu").predict_files(folder, tmp_path / "out")
    assert report.ok, report.failures
    (written,) = report.outputs
    assert written.labels_path.name == "series.nii.gz"
    assert "DICOM" in written.note
    _assert_same_grid(read_image(written.labels_path), read_image(folder))


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelFormatError, match="not found"):
        Predictor(tmp_path / "nope")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"step": 0}, "step"), ({"batch_size": 0}, "batch_size"), ({"mirror_axes": (3,)}, "mirror")],
)
def test_bad_settings_are_config_errors(model_factory, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Predictor(model_factory(), device="cpu", **kwargs)


def test_unknown_fold(model_factory):
    with pytest.raises(ModelFormatError, match="fold 3"):
        Predictor(model_factory(), folds=[3])


def test_wrong_channel_count_names_case_and_counts(model_factory, oblique_image):
    predictor = Predictor(model_factory(channels=2), device="cpu")
    with pytest.raises(DatasetError, match=r"c7: image has 1 channel\(s\) but the model expects 2"):
        predictor.predict_image(oblique_image, case_id="c7")


def test_bad_input_among_good_ones_others_written(model_factory, tmp_path, oblique_image):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(oblique_image, folder / "a.nii.gz")
    (folder / "b.nii.gz").write_bytes(b"this is not a nifti file")
    write_image(oblique_image, folder / "c.nii.gz")
    report = Predictor(model_factory(), device="cpu").predict_files(folder, tmp_path / "out")
    assert [o.case_id for o in report.outputs] == ["a", "c"]
    assert [f.case_id for f in report.failures] == ["b"]
    assert not report.ok
    assert "b.nii.gz" in report.failures[0].message
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.endswith(".json")) == [
        "a.nii.gz",
        "c.nii.gz",
    ]


def test_duplicate_case_ids_are_rejected(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("x/a.nii.gz", "a.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(DatasetError, match="'a'"):
        find_inputs([tmp_path / "x" / "a.nii.gz", tmp_path / "a.nii.gz"])


def test_a_folder_without_images_is_refused_before_writing(model_factory, tmp_path):
    empty = tmp_path / "scans"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    with pytest.raises(DatasetError, match=r"scans: no image to predict"):
        Predictor(model_factory(), device="cpu").predict_files(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bf16_autocast_keeps_labels_close(model_factory, oblique_image):
    model = model_factory()
    fp32 = Predictor(model, device="cpu", tta=False).predict_image(oblique_image)
    bf16 = Predictor(model, device="cpu", tta=False, use_bf16=True).predict_image(oblique_image)
    agreement = (fp32.labels.array == bf16.labels.array).mean()
    assert agreement > 0.95


def test_region_model_paints_regions_in_order(model_factory, oblique_image):
    model = model_factory(regions={"whole": (1, 2), "core": (2,)})
    predictor = Predictor(model, device="cpu", tta=False)
    assert predictor.settings.activation == "sigmoid"
    prediction = predictor.predict_image(oblique_image, probabilities=True)
    probs = prediction.probabilities.array.astype(np.float32)
    labels = prediction.labels.array[0]
    expected = np.where(probs[1] > 0.5, 2, np.where(probs[0] > 0.5, 1, 0))
    # probabilities are resampled the same way as the labels; allow float16 rounding at 0.5
    assert (labels == expected).mean() > 0.99


def test_channel_gap_fails_that_case(model_factory, make_image, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(make_image(), folder / "a_0000.nii.gz")
    write_image(make_image(), folder / "a_0002.nii.gz")
    report = Predictor(model_factory(channels=2), device="cpu").predict_files(
        folder, tmp_path / "o"
    )
    (failure,) = report.failures
    assert "a_0001.nii.gz" in failure.message
