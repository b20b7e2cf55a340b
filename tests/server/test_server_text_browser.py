"""The viewer's text box in a real headless Chromium: type a phrase, see the selection.

Uses the system Chromium through Playwright for Python (no browser download); skipped with a
reason when either is missing.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture
def text_server(dataset, tmp_path):
    """A uvicorn server in a thread; sessions start from the dataset's reference labels."""
    uvicorn = pytest.importorskip("uvicorn")
    from medseg.interactive.classical import RandomWalkerEngine
    from medseg.server import ServeConfig, create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ServeConfig(data=dataset, output=tmp_path / "corrected", precompute=False)
    app = create_app(config, engine=RandomWalkerEngine())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_typed_phrase_selects_and_explains(text_server, blobs, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{text_server}/?case=case1")
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        assert "started from reference" in page.inner_text("#status")
        page.fill("#text-phrase", "the spher")  # misspelt on purpose
        page.press("#text-phrase", "Enter")
        page.wait_for_selector("body[data-text='1']", timeout=60_000)
        explanation = page.inner_text("#text-explain")
        overlay = np.array(page.evaluate("Array.from(window.medsegViewer.nv.volumes[1].img)"))
        session = page.evaluate("window.medsegViewer.state.session.session_id")
        undo_enabled = not page.is_disabled("#undo")
        page.screenshot(path=str(tmp_path / "text.png"))
        page.fill("#text-phrase", "the pancreas")
        page.press("#text-phrase", "Enter")
        page.wait_for_selector("body[data-status='error']", timeout=60_000)
        message = page.inner_text("#text-explain")
        browser.close()
    assert not errors
    assert explanation.startswith("sphere")
    assert "read 'spher' as 'sphere'" in explanation
    assert undo_enabled
    assert "no class 'pancreas'" in message
    assert session
    # the overlay holds the refined sphere (NIfTI order: x fastest), close to the true sphere
    z, y, x = blobs.shape
    drawn = overlay.reshape(z, y, x) == 1
    truth = blobs.arrays(1)[1] == 1
    dice = 2 * (drawn & truth).sum() / (drawn.sum() + truth.sum())
    assert dice > 0.8
