"""Built-in brain examples from the nilearn MNI template: determinism, labels, geometry, check."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.data import check_dataset, load_dataset
from medseg.data.example import (
    TEMPLATE_FILES,
    load_brain_template,
    make_brain2d_example,
    make_brain_example,
    synthesize_brain_case,
    template_dir,
)
from medseg.errors import DatasetError
from medseg.io import read_image

COARSE_MM = 6.0


@pytest.fixture(scope="module")
def coarse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("example") / "Dataset001_BrainExample"
    return make_brain_example(out, cases=2, seed=0, spacing_mm=COARSE_MM, test_cases=1)


def _arrays(root: Path) -> list[np.ndarray]:
    files = sorted((root / "imagesTr").iterdir()) + sorted((root / "labelsTr").iterdir())
    return [read_image(f).array for f in files]


def test_layout_and_check(coarse: Path) -> None:
    dataset = load_dataset(coarse)
    assert [c.case_id for c in dataset.cases] == ["BrainExample_000", "BrainExample_001"]
    assert [c.case_id for c in dataset.test_cases] == ["BrainExample_002"]
    assert dataset.channel_names == {0: "T1"}
    assert dataset.labels.labels == {
        "background": 0,
        "grey_matter": 1,
        "white_matter": 2,
        "lesion": 3,
    }
    report = check_dataset(dataset)
    assert report.ok, report.problems


def test_same_seed_same_arrays_other_seed_differs(coarse: Path, tmp_path: Path) -> None:
    again = make_brain_example(tmp_path / "again", cases=2, seed=0, spacing_mm=COARSE_MM)
    other = make_brain_example(tmp_path / "other", cases=2, seed=1, spacing_mm=COARSE_MM)
    first, second, third = _arrays(coarse), _arrays(again), _arrays(other)
    for a, b in zip(first, second, strict=True):
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()
    assert any(a.tobytes() != c.tobytes() for a, c in zip(first, third, strict=True))


def test_labels_and_intensities(coarse: Path) -> None:
    labels = [read_image(p).array for p in sorted((coarse / "labelsTr").iterdir())]
    images = [read_image(p).array for p in sorted((coarse / "imagesTr").iterdir())]
    assert set(np.unique(np.concatenate([lab.ravel() for lab in labels]))) == {0, 1, 2, 3}
    for image, label in zip(images, labels, strict=True):
        assert image.dtype == np.int16
        assert np.all(image[label == 0] >= 0)
        wm, gm = np.median(image[label == 2]), np.median(image[label == 1])
        assert wm > gm  # T1 contrast kept
        if (label == 3).any():
            assert np.median(image[label == 3]) < wm  # T1 lesions are hypointense


def test_geometry_matches_the_template_affine(coarse: Path) -> None:
    image = read_image(coarse / "imagesTr" / "BrainExample_000_0000.nii.gz")
    assert image.spacing == (COARSE_MM,) * 3
    template = nib.load(template_dir() / TEMPLATE_FILES["t1"])
    shape_xyz = np.asarray(template.shape)
    centre_ras = template.affine @ np.append((shape_xyz - 1) / 2, 1.0)
    centre_lps_zyx = (centre_ras[:3] * [-1, -1, 1])[::-1]
    index = (np.asarray(image.spatial_shape) - 1) / 2
    centre = np.asarray(image.origin) + image.direction @ (np.asarray(image.spacing) * index)
    np.testing.assert_allclose(centre, centre_lps_zyx, atol=1e-6)
    assert image.spatial_shape == tuple(int(np.ceil(n / COARSE_MM)) for n in shape_xyz[::-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lesions_lie_in_the_deformed_white_matter(seed: int) -> None:
    template = load_brain_template(COARSE_MM)
    case = synthesize_brain_case(
        template.t1, template.tissue, template.spacing, np.random.default_rng(seed)
    )
    lesion = case.labels == 3
    assert not lesion[~case.white_matter].any()
    assert np.array_equal(case.labels == 2, case.white_matter & ~lesion)
    assert case.num_lesions >= int(lesion.any())
    deformed_brain = case.labels > 0
    assert not np.array_equal(deformed_brain, np.isin(template.tissue, (1, 2)))


def test_brain2d_example(tmp_path: Path) -> None:
    out = make_brain2d_example(tmp_path / "D2", cases=2, seed=0, spacing_mm=COARSE_MM)
    dataset = load_dataset(out)
    image = read_image(dataset.cases[0].image_paths[0])
    assert image.ndim == 2
    assert image.spacing == (COARSE_MM, COARSE_MM)
    assert check_dataset(dataset).ok
    labels = read_image(dataset.cases[1].label_path).array
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert {1, 2} <= set(np.unique(labels))


def test_refuses_non_empty_folder_and_bad_counts(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="not an empty folder"):
        make_brain_example(tmp_path / "full", cases=1, spacing_mm=COARSE_MM)
    with pytest.raises(DatasetError, match="at least 1 training case"):
        make_brain_example(tmp_path / "new", cases=0, spacing_mm=COARSE_MM)
    with pytest.raises(DatasetError, match="seed"):
        make_brain_example(tmp_path / "new", cases=1, seed=-1, spacing_mm=COARSE_MM)
    with pytest.raises(DatasetError, match=r"at least 0\.5 mm"):
        make_brain_example(tmp_path / "new", cases=1, spacing_mm=0.1)


def test_cli_example_brain(tmp_path: Path) -> None:
    out = tmp_path / "Dataset003_Cli"
    args = ["example", "brain", "-o", str(out), "--cases", "1", "--seed", "3", "--spacing", "6"]
    result = CliRunner().invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert (out / "labelsTr" / "BrainExample_000.nii.gz").is_file()
    result = CliRunner().invoke(
        app_typer,
        ["example", "brain2d", "-o", str(tmp_path / "d2"), "--cases", "1", "--spacing", "6"],
    )
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_default_spacing_example(tmp_path: Path) -> None:
    calls: list[int] = []
    out = make_brain_example(
        tmp_path / "D", cases=2, on_progress=lambda done, _: calls.append(done)
    )
    assert calls == [1, 2]
    image = read_image(out / "imagesTr" / "BrainExample_000_0000.nii.gz")
    assert image.spatial_shape == (95, 117, 99)
    assert check_dataset(load_dataset(out)).ok


def test_lesion_counts_bound_the_painted_lesions() -> None:
    template = load_brain_template(COARSE_MM)
    fields = (template.t1, template.tissue, template.spacing)
    for seed in range(6):
        none = synthesize_brain_case(*fields, np.random.default_rng(seed), lesion_counts=(0, 0))
        assert none.num_lesions <= 1  # 15 % of cases draw 0-1 lesions whatever the range
        assert not (none.labels == 3).any() or none.num_lesions == 1
        many = synthesize_brain_case(*fields, np.random.default_rng(seed), lesion_counts=(3, 3))
        assert many.num_lesions in (0, 1, 3)
