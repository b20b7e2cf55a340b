"""Every endpoint of the API through TestClient, with independent checks of masks and files."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.io import Image, read_image, write_image


def apply_update(labels: np.ndarray, update: dict) -> None:
    """Paste a compact update into ``labels`` (independent RLE decoder)."""
    if not update["box"]:
        return
    box = tuple(slice(a, b) for a, b in update["box"])
    runs = update["rle"]
    flat = np.concatenate([np.full(n, v) for v, n in zip(runs[0::2], runs[1::2], strict=True)])
    labels[box] = flat.reshape(labels[box].shape)


def full_labels(client, sid: str) -> np.ndarray:
    data = client.get(f"/api/sessions/{sid}/mask").json()
    labels = np.zeros([b for _, b in data["box"]], dtype=np.uint8)
    apply_update(labels, data)
    return labels


def open_case(client, case_id: str, **kwargs) -> dict:
    response = client.post("/api/sessions", json={"case_id": case_id, **kwargs})
    assert response.status_code == 201, response.text
    return response.json()


def nifti_from(content: bytes, tmp_path: Path) -> Image:
    path = tmp_path / f"download-{time.monotonic_ns()}.nii"
    path.write_bytes(content)
    return read_image(path)


def test_info_and_case_listing(make_client, dataset):
    client = make_client(dataset)
    info = client.get("/api/info").json()
    assert info["dataset"] == "Dataset002_Blobs"
    assert [(x["value"], x["name"]) for x in info["labels"]] == [(1, "sphere"), (2, "cube")]
    assert info["engine"] == "classical"
    assert info["model"] is None
    cases = client.get("/api/cases").json()
    assert [c["case_id"] for c in cases] == ["case0", "case1", "case2", "case3"]
    assert not any(c["saved"] for c in cases)
    assert client.get("/docs").status_code == 200
    assert "/api/sessions/{session_id}/prompts" in client.get("/openapi.json").json()["paths"]


def test_page_and_vendored_viewer_are_served(make_client, dataset):
    client = make_client(dataset)
    page = client.get("/")
    assert page.status_code == 200
    assert "niivue" in page.text
    assert client.get("/static/vendor/niivue.umd.js").status_code == 200
    assert "BSD" in client.get("/static/vendor/LICENSE-niivue.txt").text


def test_image_and_labels_keep_geometry(make_client, dataset, tmp_path, blobs):
    client = make_client(dataset)
    image = nifti_from(client.get("/api/cases/case0/image.nii").content, tmp_path)
    original = read_image(dataset / "imagesTr" / "case0_0000.nii.gz")
    assert image.same_geometry(original, atol=1e-5)
    np.testing.assert_allclose(image.array, original.array, atol=1e-4)
    # nibabel (independent reader) sees the same voxel size
    nii = nib.load(tmp_path / next(p.name for p in tmp_path.glob("download-*.nii")))
    np.testing.assert_allclose(sorted(nii.header.get_zooms()), sorted(blobs.spacing), atol=1e-5)
    session = open_case(client, "case0")
    assert session["start"] == "reference"
    assert session["shape"] == list(blobs.shape)
    assert session["labels_present"] == [1, 2]
    sid = session["session_id"]
    labels = nifti_from(client.get(f"/api/sessions/{sid}/labels.nii").content, tmp_path)
    assert labels.same_geometry(original, atol=1e-5)
    np.testing.assert_array_equal(labels.array[0], blobs.arrays(0)[1])
    np.testing.assert_array_equal(full_labels(client, sid), blobs.arrays(0)[1])


def test_click_box_scribble_undo_redo_clear(make_client, dataset, blobs):
    client = make_client(dataset)
    sid = open_case(client, "case3")["session_id"]
    labels = np.zeros(blobs.shape, dtype=np.uint8)
    sphere = blobs.arrays(3)[1] == 1
    url = f"/api/sessions/{sid}/prompts"
    update = client.post(url, json={"kind": "click", "label": 1, "point": [6, 13, 9]}).json()
    apply_update(labels, update)
    assert labels[6, 13, 9] == 1
    dice = 2 * ((labels == 1) & sphere).sum() / ((labels == 1).sum() + sphere.sum())
    assert dice > 0.6
    np.testing.assert_array_equal(labels, full_labels(client, sid))
    # a click on a coronal slice (axis 1, index 20) in in-plane (z, x) coordinates
    update = client.post(
        url,
        json={"kind": "click", "label": 2, "point": [6, 18], "axis": 1, "index": 20},
    ).json()
    apply_update(labels, update)
    assert labels[6, 20, 18] == 2
    before_box = labels.copy()
    update = client.post(
        url, json={"kind": "box", "label": 2, "lo": [6, 16, 14], "hi": [6, 24, 22]}
    ).json()
    apply_update(labels, update)
    assert update["can_undo"]
    assert not update["can_redo"]
    np.testing.assert_array_equal(labels, full_labels(client, sid))
    after_box = labels.copy()
    update = client.post(f"/api/sessions/{sid}/undo").json()
    apply_update(labels, update)
    np.testing.assert_array_equal(labels, before_box)
    assert update["can_redo"]
    update = client.post(f"/api/sessions/{sid}/redo").json()
    apply_update(labels, update)
    np.testing.assert_array_equal(labels, after_box)
    scribble = {
        "kind": "scribble",
        "label": 1,
        "points": [[13, 9], [13, 12]],
        "axis": 0,
        "index": 6,
        "positive": False,
        "width": 3,
    }
    update = client.post(url, json=scribble).json()
    apply_update(labels, update)
    assert labels[6, 13, 10] == 0
    update = client.post(f"/api/sessions/{sid}/clear", json={"label": 2}).json()
    apply_update(labels, update)
    assert not (labels == 2).any()
    np.testing.assert_array_equal(labels, full_labels(client, sid))
    state = client.get(f"/api/sessions/{sid}").json()
    assert state["prompts"] == 4
    assert state["labels_present"] == ([1] if (labels == 1).any() else [])
    nothing = client.post(f"/api/sessions/{sid}/redo").json()
    assert nothing["box"] == []
    assert nothing["label"] is None


def test_save_writes_geometry_and_log_and_survives_restart(make_client, dataset, tmp_path, blobs):
    out = tmp_path / "corrected"
    client = make_client(dataset, output=out)
    sid = open_case(client, "case1")["session_id"]
    client.post(
        f"/api/sessions/{sid}/prompts",
        json={"kind": "click", "label": 1, "point": [6, 5, 20], "positive": True},
    )
    expected = full_labels(client, sid)
    saved = client.post(f"/api/sessions/{sid}/save").json()
    assert Path(saved["path"]) == out / "case1.nii.gz"
    written = read_image(out / "case1.nii.gz")
    original = read_image(dataset / "imagesTr" / "case1_0000.nii.gz")
    assert written.spatial_shape == original.spatial_shape
    np.testing.assert_allclose(written.spacing, blobs.spacing, atol=1e-6)
    np.testing.assert_allclose(written.origin, blobs.origin, atol=1e-6)
    np.testing.assert_allclose(written.direction, blobs.direction, atol=1e-6)
    np.testing.assert_array_equal(written.array[0], expected)
    assert not list(out.glob(".tmp-*"))
    with sqlite3.connect(out / "edits.sqlite") as db:
        actions = [r[0] for r in db.execute("SELECT action FROM edits WHERE case_id='case1'")]
        saves = db.execute("SELECT case_id, prompts, dice_model FROM saves").fetchall()
    assert actions == ["open", "click"]
    assert saves == [("case1", 1, None)]
    progress = client.get("/api/progress").json()
    assert progress["saved"] == 1
    assert progress["cases"] == 4
    assert client.get("/api/cases/next", params={"order": "first"}).json()["case_id"] == "case0"
    after = client.get("/api/cases/next", params={"order": "first", "after": "case0"}).json()
    assert after["case_id"] == "case2"
    # a new server on the same output folder starts from the saved mask
    again = make_client(dataset, output=out)
    reopened = open_case(again, "case1")
    assert reopened["start"] == "saved"
    np.testing.assert_array_equal(full_labels(again, reopened["session_id"]), expected)
    assert again.get("/api/progress").json()["saved"] == 1


def test_model_start_dice_and_uncertainty_order(make_client, dataset, model_dir):
    from medseg.infer import Predictor

    predictor = Predictor(model_dir, device="cpu", tta=False)
    client = make_client(dataset, model=model_dir)
    client.app.state.medseg.predictions.predictor = predictor
    session = open_case(client, "case2", start="model")
    assert session["start"] == "model"
    sid = session["session_id"]
    model_labels = predictor.predict_image(
        read_image(dataset / "imagesTr" / "case2_0000.nii.gz")
    ).labels.array[0]
    np.testing.assert_array_equal(full_labels(client, sid), model_labels)
    client.post(
        f"/api/sessions/{sid}/prompts",
        json={"kind": "box", "label": 1, "lo": [6, 7, 4], "hi": [6, 17, 14]},
    )
    edited = full_labels(client, sid)
    restored = client.post(f"/api/sessions/{sid}/restore", json={"label": 1}).json()
    assert restored["can_undo"]
    np.testing.assert_array_equal(full_labels(client, sid) == 1, model_labels == 1)
    client.post(f"/api/sessions/{sid}/undo")
    np.testing.assert_array_equal(full_labels(client, sid), edited)
    saved = client.post(f"/api/sessions/{sid}/save").json()
    for value, dice in saved["dice_per_label"].items():
        a, b = model_labels == int(value), edited == int(value)
        assert dice == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
    state = client.app.state.medseg
    for case_id in ("case0", "case1", "case3"):
        state.predictions.labels(case_id)
    known = state.log.uncertainties()
    assert set(known) == {"case0", "case1", "case2", "case3"}
    unsaved = {c: known[c] for c in ("case0", "case1", "case3")}
    best = client.get("/api/cases/next", params={"order": "uncertainty"}).json()["case_id"]
    assert best == max(unsaved, key=unsaved.get)
    random_pick = client.get("/api/cases/next", params={"order": "random"}).json()["case_id"]
    assert random_pick in unsaved


def test_two_dimensional_images(make_client, tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :50]
    disk = (yy - 20) ** 2 + (xx - 24) ** 2 <= 64
    image = (120 * disk + rng.normal(0, 5, disk.shape)).clip(0, 255).astype(np.float32)
    write_image(Image.from_array(image[None], spacing=(0.5, 0.7)), folder / "slice.nii.gz")
    client = make_client(folder)
    assert [x["name"] for x in client.get("/api/info").json()["labels"]] == ["object"]
    sid = open_case(client, "slice")["session_id"]
    update = client.post(
        f"/api/sessions/{sid}/prompts", json={"kind": "click", "label": 1, "point": [20, 24]}
    ).json()
    labels = np.zeros((40, 50), dtype=np.uint8)
    apply_update(labels, update)
    assert 2 * (labels.astype(bool) & disk).sum() / (labels.sum() + disk.sum()) > 0.8
    bad = client.post(
        f"/api/sessions/{sid}/prompts",
        json={"kind": "click", "label": 1, "point": [20, 24], "axis": 0, "index": 3},
    )
    assert bad.status_code == 422
    path = Path(client.post(f"/api/sessions/{sid}/save").json()["path"])
    written = read_image(path)
    np.testing.assert_allclose(written.spacing, (0.5, 0.7))
    np.testing.assert_array_equal(written.array[0], labels)


def test_close_session(make_client, dataset):
    client = make_client(dataset)
    sid = open_case(client, "case0")["session_id"]
    assert len(sid) >= 32
    assert client.delete(f"/api/sessions/{sid}").status_code == 204
    assert client.get(f"/api/sessions/{sid}").status_code == 404
    assert client.delete(f"/api/sessions/{sid}").status_code == 404
