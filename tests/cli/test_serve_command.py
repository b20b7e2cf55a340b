"""``medseg serve``: options reach the app, a non-local host gets a token, errors are one line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer


@pytest.fixture
def captured(monkeypatch):
    """Replace uvicorn.run: record the app and address instead of serving."""
    import uvicorn

    calls = {}

    def fake_run(app, *, host, port, log_level):
        calls.update(app=app, host=host, port=port)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return calls


def _folder(tmp_path):
    import numpy as np

    from medseg.io import Image, write_image

    folder = tmp_path / "scans"
    folder.mkdir()
    write_image(Image.from_array(np.zeros((1, 4, 5, 6), np.float32)), folder / "a.nii.gz")
    return folder


def test_local_serve_has_no_token(tmp_path, captured):
    result = CliRunner().invoke(
        app_typer, ["serve", str(_folder(tmp_path)), "--engine", "classical", "--port", "8123"]
    )
    assert result.exit_code == 0, result.output
    assert "open http://127.0.0.1:8123/" in result.output
    assert "token=" not in result.output
    assert captured["host"] == "127.0.0.1"
    assert captured["port"] == 8123


def test_public_host_generates_a_token(tmp_path, captured):
    from fastapi.testclient import TestClient

    result = CliRunner().invoke(
        app_typer, ["serve", str(_folder(tmp_path)), "--engine", "classical", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.split("token=")[1].split()[0]
    assert len(token) >= 24
    with TestClient(captured["app"]) as client:
        assert client.get("/api/cases").status_code == 401
        response = client.get("/api/cases", headers={"Authorization": f"Bearer {token}"})
        assert [c["case_id"] for c in response.json()] == ["a"]


def test_given_token_and_bad_options(tmp_path, captured):
    folder = str(_folder(tmp_path))
    result = CliRunner().invoke(
        app_typer, ["serve", folder, "--host", "0.0.0.0", "--token", "my-secret-token"]
    )
    assert "token=my-secret-token" in result.output
    short = CliRunner().invoke(app_typer, ["serve", folder, "--token", "short"])
    assert short.exit_code != 0
    assert "at least 8 characters" in str(short.exception)
    missing = CliRunner().invoke(app_typer, ["serve"])
    assert "--example" in str(missing.exception)
    order = CliRunner().invoke(app_typer, ["serve", folder, "--next", "best"])
    assert "uncertainty, first or random" in str(order.exception)


@pytest.mark.slow
def test_real_process_prints_url_and_stops_cleanly_on_ctrl_c(tmp_path):
    """The command as a user runs it: the printed address answers, SIGINT ends it with 0."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "medseg", "serve", str(_folder(tmp_path)), "--engine",
               "classical", "--port", str(port), "--threads", "1"]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        url = process.stdout.readline().strip()
        assert url == f"open http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            try:
                response = httpx.get(url.removeprefix("open ") + "api/info", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["engine"] == "classical"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in process.stderr.read()
