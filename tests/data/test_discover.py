"""Layout detection, paired folders and CSV manifests (including unsafe paths)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from medseg.data import LabelSpec, load_dataset, load_manifest, load_paired_folders
from medseg.errors import DatasetError


@pytest.fixture
def paired(tmp_path: Path, write_array, spheres: np.ndarray) -> Path:
    root = tmp_path / "paired"
    for name in ("a", "b", "c"):
        write_array(root / "images" / f"{name}.nii.gz", np.ones(spheres.shape, np.float32))
    labels = spheres.copy()
    labels[labels == 2] = 5
    write_array(root / "masks" / "a.nii.gz", labels)
    write_array(root / "masks" / "b.nrrd", spheres)
    write_array(root / "masks" / "d.nii.gz", spheres)
    return root


def test_paired_folders_pair_by_name_and_infer_labels(paired: Path) -> None:
    dataset = load_paired_folders(paired / "images", paired / "masks")
    cases = {c.case_id: c for c in dataset.cases}
    assert set(cases) == {"a", "b", "c", "d"}
    assert cases["b"].label_path == paired / "masks" / "b.nrrd"
    assert cases["c"].label_path is None
    assert cases["d"].image_paths == ()
    assert dataset.labels.labels == {"background": 0, "label_1": 1, "label_2": 2, "label_5": 5}
    assert dataset.channel_names == {0: "image"}
    assert dataset.file_ending == ".nii.gz"


def test_paired_folders_with_given_labels(paired: Path) -> None:
    dataset = load_paired_folders(
        paired / "images", paired / "masks", labels={"background": 0, "x": 1, "y": 2}
    )
    assert dataset.labels == LabelSpec(labels={"background": 0, "x": 1, "y": 2})
    with pytest.raises(DatasetError, match="consecutive"):
        load_paired_folders(paired / "images", paired / "masks", labels={"background": 0, "x": 5})


def test_paired_folders_errors(tmp_path: Path, write_array, spheres: np.ndarray) -> None:
    with pytest.raises(DatasetError, match="folder not found"):
        load_paired_folders(tmp_path / "nope", tmp_path / "masks")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        load_paired_folders(tmp_path / "images", tmp_path / "masks")
    write_array(tmp_path / "images" / "a.nii.gz", spheres)
    write_array(tmp_path / "images" / "a.nrrd", spheres)
    with pytest.raises(DatasetError, match="both name case 'a'"):
        load_paired_folders(tmp_path / "images", tmp_path / "masks")


def test_load_dataset_detects_all_layouts(tmp_path: Path, paired: Path, make_nnunet) -> None:
    nnunet = make_nnunet(tmp_path / "Dataset001_X", cases=2)
    assert load_dataset(nnunet).declared_num_training == 2
    assert {c.case_id for c in load_dataset(paired).cases} == {"a", "b", "c", "d"}
    manifest = paired / "cases.csv"
    manifest.write_text("case_id,image,label\na,images/a.nii.gz,masks/a.nii.gz\n")
    assert [c.case_id for c in load_dataset(manifest).cases] == ["a"]
    with pytest.raises(DatasetError, match="not a recognised dataset"):
        load_dataset(tmp_path / "paired" / "images")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing")


def test_manifest_resolves_paths_and_channels(tmp_path: Path, make_nnunet) -> None:
    root = make_nnunet(tmp_path / "D", cases=2, channels=2)
    inside_absolute = (root / "labelsTr" / "case_001.nii.gz").resolve()
    (root / "list.csv").write_text(
        "case_id,image_0000,image_0001,label\n"
        "p0,imagesTr/case_000_0000.nii.gz,imagesTr/case_000_0001.nii.gz,labelsTr/case_000.nii.gz\n"
        f"p1,imagesTr/case_001_0000.nii.gz,imagesTr/case_001_0001.nii.gz,{inside_absolute}\n"
        "t0,imagesTr/case_001_0000.nii.gz,imagesTr/case_001_0001.nii.gz,\n"
    )
    dataset = load_manifest(root / "list.csv")
    assert dataset.root == root
    assert [c.case_id for c in dataset.cases] == ["p0", "p1"]
    assert dataset.cases[0].image_paths == (
        root / "imagesTr" / "case_000_0000.nii.gz",
        root / "imagesTr" / "case_000_0001.nii.gz",
    )
    assert dataset.cases[1].label_path == inside_absolute
    assert [c.case_id for c in dataset.test_cases] == ["t0"]
    assert dataset.channel_names == {0: "image_0000", 1: "image_0001"}
    assert dataset.labels.values == (0, 1, 2)


@pytest.fixture
def manifest_root(tmp_path: Path, write_array, spheres: np.ndarray) -> Path:
    root = tmp_path / "dataset"
    write_array(root / "img.nii.gz", spheres)
    write_array(tmp_path / "secret.nii.gz", spheres)
    return root


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_manifest_refuses_unsafe_paths(manifest_root: Path, kind: str) -> None:
    outside = manifest_root.parent / "secret.nii.gz"
    if kind == "absolute":
        cell = str(outside)
    elif kind == "dotdot":
        cell = "sub/../../secret.nii.gz"
    else:
        os.symlink(outside, manifest_root / "link.nii.gz")
        cell = "link.nii.gz"
    (manifest_root / "m.csv").write_text(f"case_id,image,label\nc,img.nii.gz,{cell}\n")
    with pytest.raises(DatasetError, match="unsafe path"):
        load_manifest(manifest_root / "m.csv")


def test_manifest_allows_symlink_inside_root(manifest_root: Path) -> None:
    os.symlink(manifest_root / "img.nii.gz", manifest_root / "alias.nii.gz")
    (manifest_root / "m.csv").write_text("case_id,image,label\nc,img.nii.gz,alias.nii.gz\n")
    assert load_manifest(manifest_root / "m.csv").cases[0].label_path.name == "alias.nii.gz"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("id,image\nc,img.nii.gz\n", "case_id"),
        ("case_id,label\nc,img.nii.gz\n", "'image' column"),
        ("case_id,image,image_0000\nc,a,b\n", "not both"),
        ("case_id,image_0000,image_0002\nc,a,b\n", "image_0001"),
        ("case_id,image\nc,img.nii.gz\nc,img.nii.gz\n", "duplicate case_id 'c'"),
        ("case_id,image\n,img.nii.gz\n", "line 2: empty case_id"),
        ("case_id,image\nc,\n", "empty 'image'"),
        ("case_id,image\n", "no rows"),
    ],
)
def test_manifest_errors(manifest_root: Path, text: str, match: str) -> None:
    (manifest_root / "m.csv").write_text(text)
    with pytest.raises(DatasetError, match=match):
        load_manifest(manifest_root / "m.csv")
