"""Every bad request gets a 4xx with a clear message; the server keeps answering afterwards."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def client(make_client, dataset):
    return make_client(dataset)


@pytest.fixture
def sid(client) -> str:
    return client.post("/api/sessions", json={"case_id": "case3"}).json()["session_id"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"kind": "click", "label": 1, "point": [50, 5, 5]}, 422, "outside the image"),
        ({"kind": "click", "label": 1, "point": [-1, 5, 5]}, 422, "outside the image"),
        ({"kind": "click", "label": 1, "point": [5, 5], "axis": 3, "index": 2}, 422, "axis"),
        ({"kind": "click", "label": 1, "point": [5, 5], "axis": 0}, 422, "both axis and index"),
        ({"kind": "click", "label": 1, "point": [5, 5], "axis": 0, "index": 40}, 422, "outside"),
        ({"kind": "click", "label": 1, "point": [5, 5]}, 422, "outside the image"),
        ({"kind": "click", "label": 1, "point": [1, 2, 3, 4]}, 422, "at most 3"),
        ({"kind": "click", "label": 1, "point": [1e300, 2, 3]}, 422, "less than or equal"),
        ({"kind": "click", "label": 0, "point": [1, 2, 3]}, 422, "greater than or equal to 1"),
        ({"kind": "click", "label": 256, "point": [1, 2, 3]}, 422, "less than or equal to 255"),
        ({"kind": "click", "label": 1, "point": [1, 2, 3], "colour": 1}, 422, "Extra inputs"),
        ({"kind": "lasso", "label": 1, "point": [1, 2, 3]}, 422, "click"),
        ({"label": 1, "point": [1, 2, 3]}, 422, "kind"),
        ({"kind": "box", "label": 1, "lo": [5, 9, 9], "hi": [5, 2, 2]}, 422, "lo <= hi"),
        ({"kind": "box", "label": 1, "lo": [50, 50, 50], "hi": [60, 60, 60]}, 422, "outside"),
        ({"kind": "scribble", "label": 1, "points": []}, 422, "at least 1"),
        ({"kind": "scribble", "label": 1, "points": [[99, 99, 99]]}, 422, "outside"),
        ({"kind": "scribble", "label": 1, "points": [[1, 1, 1]], "width": 0}, 422, "width"),
        ({"kind": "scribble", "label": 1, "points": [[1, 1, 1], [1, 2]]}, 422, "same number"),
        (
            {"kind": "scribble", "label": 1, "points": [[1, 1]], "axis": 0, "index": 99},
            422,
            "outside",
        ),
        ({"kind": "box", "label": 1, "lo": [5, 9], "hi": [5, 2, 2]}, 422, "lo <= hi"),
        ({"kind": "click", "label": "one", "point": [1, 2, 3]}, 422, "integer"),
        ([1, 2, 3], 422, "dict"),
    ],
)
def test_malformed_prompts_get_422(client, sid, body, status, message):
    response = client.post(f"/api/sessions/{sid}/prompts", json=body)
    assert response.status_code == status, response.text
    assert message in response.text
    # the session still works, and the refused prompt left nothing behind
    state = client.get(f"/api/sessions/{sid}").json()
    assert state["prompts"] == 0
    assert not state["can_undo"]


@pytest.mark.parametrize("raw", ['{"kind": "click", "label": 1, "point": [NaN, 2, 3]}', "{oops"])
def test_nan_and_broken_json(client, sid, raw):
    response = client.post(
        f"/api/sessions/{sid}/prompts", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert client.get(f"/api/sessions/{sid}").status_code == 200


@pytest.mark.parametrize(
    "case_id", ["nope", "../imagesTr/case0_0000", "case0_0000", "/etc/passwd", "a" * 300]
)
def test_unknown_or_traversing_case_ids(client, case_id):
    response = client.post("/api/sessions", json={"case_id": case_id})
    assert response.status_code in (404, 422)
    from urllib.parse import quote

    got = client.get(f"/api/cases/{quote(case_id, safe='')}/image.nii")
    assert got.status_code == 404
    assert b"passwd" not in got.content[:0] + got.content.replace(b"/etc/passwd", b"")


def test_unknown_session_and_after(client):
    for method, path in [
        ("get", "/api/sessions/abc"),
        ("post", "/api/sessions/abc/undo"),
        ("post", "/api/sessions/abc/save"),
        ("get", "/api/sessions/abc/mask"),
        ("get", "/api/sessions/abc/labels.nii"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 404
        assert "unknown or expired session" in response.json()["detail"]
    assert client.get("/api/cases/next", params={"after": "zzz"}).status_code == 404
    assert client.get("/api/cases/next", params={"order": "best"}).status_code == 422


def test_start_without_model_or_reference(client):
    response = client.post("/api/sessions", json={"case_id": "case3", "start": "model"})
    assert response.status_code == 422
    assert "no model mask" in response.json()["detail"]
    response = client.post("/api/sessions", json={"case_id": "case3", "start": "reference"})
    assert response.status_code == 422
    sid = client.post("/api/sessions", json={"case_id": "case3"}).json()["session_id"]
    response = client.post(f"/api/sessions/{sid}/restore", json={"label": 1})
    assert response.status_code == 422
    assert "no model prediction" in response.json()["detail"]
    assert client.post(f"/api/sessions/{sid}/clear", json={"label": 0}).status_code == 422


def test_body_size_limit(make_client, dataset):
    client = make_client(dataset, max_body_bytes=2000)
    sid = client.post("/api/sessions", json={"case_id": "case3"}).json()["session_id"]
    points = [[6, 5 + i % 10, 5] for i in range(400)]
    response = client.post(
        f"/api/sessions/{sid}/prompts", json={"kind": "scribble", "label": 1, "points": points}
    )
    assert response.status_code == 413
    assert "2000 bytes" in response.json()["detail"]


def test_token_checked_on_every_request(make_client, dataset, blobs):
    token = blobs.token
    client = make_client(dataset, token=token)
    assert client.get("/api/info").status_code == 401
    assert client.get("/").status_code == 401
    assert (
        client.get("/api/info", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    )
    assert client.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/info", params={"token": token}).status_code == 200
    assert client.get("/", params={"token": token}).status_code == 200


def test_session_cap_and_idle_eviction(make_client, dataset):
    client = make_client(dataset, max_sessions=2, idle_seconds=0.3)
    first = client.post("/api/sessions", json={"case_id": "case0"}).json()["session_id"]
    client.post("/api/sessions", json={"case_id": "case1"})
    refused = client.post("/api/sessions", json={"case_id": "case2"})
    assert refused.status_code == 429
    assert "sessions are open" in refused.json()["detail"]
    time.sleep(0.4)
    assert client.post("/api/sessions", json={"case_id": "case2"}).status_code == 201
    assert client.get(f"/api/sessions/{first}").status_code == 404


def test_prompt_limit_per_session(make_client, dataset):
    client = make_client(dataset, max_prompts=2)
    sid = client.post("/api/sessions", json={"case_id": "case3"}).json()["session_id"]
    url = f"/api/sessions/{sid}/prompts"
    for point in ([6, 13, 9], [6, 14, 9]):
        assert (
            client.post(url, json={"kind": "click", "label": 1, "point": point}).status_code == 200
        )
    refused = client.post(url, json={"kind": "click", "label": 1, "point": [6, 12, 9]})
    assert refused.status_code == 422
    assert "the most allowed" in refused.json()["detail"]
    client.post(f"/api/sessions/{sid}/undo")
    assert (
        client.post(url, json={"kind": "click", "label": 1, "point": [6, 12, 9]}).status_code == 200
    )
