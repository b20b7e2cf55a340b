"""``POST /api/sessions/{id}/text``: a phrase selects a region, the engine refines it."""

from __future__ import annotations

import numpy as np


def _labels(client, sid: str) -> np.ndarray:
    data = client.get(f"/api/sessions/{sid}/mask").json()
    labels = np.zeros([b for _, b in data["box"]], dtype=np.uint8)
    runs = data["rle"]
    flat = np.concatenate([np.full(n, v) for v, n in zip(runs[0::2], runs[1::2], strict=True)])
    labels[...] = flat.reshape(labels.shape)
    return labels


def test_text_prompt_refines_the_named_structure(make_client, dataset, blobs):
    client = make_client(dataset)
    sid = client.post("/api/sessions", json={"case_id": "case1", "start": "reference"}).json()
    sid = sid["session_id"]
    before = _labels(client, sid)
    response = client.post(f"/api/sessions/{sid}/text", json={"phrase": "the sphere"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["label"] == 1
    assert data["can_undo"] is True
    assert data["explanation"]["clauses"][0]["classes"] == ["sphere"]
    after = _labels(client, sid)
    truth = blobs.arrays(1)[1] == 1
    dice = 2 * ((after == 1) & truth).sum() / ((after == 1).sum() + truth.sum())
    assert dice > 0.8  # refined by the engine from the reference's sphere and its box
    assert np.array_equal(after == 2, before == 2)  # the cube is untouched
    assert client.post(f"/api/sessions/{sid}/undo").status_code == 200
    assert np.array_equal(_labels(client, sid), before)


def test_text_prompt_messages_are_400_with_details(make_client, dataset):
    client = make_client(dataset)
    sid = client.post("/api/sessions", json={"case_id": "case1", "start": "reference"}).json()
    sid = sid["session_id"]
    response = client.post(f"/api/sessions/{sid}/text", json={"phrase": "the pancreas"})
    assert response.status_code == 400
    assert "no class 'pancreas'" in response.json()["detail"]
    response = client.post(f"/api/sessions/{sid}/text", json={"phrase": "x" * 501})
    assert response.status_code == 422
    empty = client.post("/api/sessions", json={"case_id": "case3", "start": "empty"}).json()
    response = client.post(
        f"/api/sessions/{empty['session_id']}/text", json={"phrase": "the sphere"}
    )
    assert response.status_code == 400
    assert "selects nothing" in response.json()["detail"]
