"""The page in a real headless Chromium: load a case, click, see the overlay change, save.

Uses the system Chromium (``/usr/bin/chromium``, Debian package) through Playwright for Python,
with no browser download. Skipped with a reason when either is missing.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from medseg.io import read_image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture
def server(dataset, tmp_path):
    """A real uvicorn server on a free loopback port, in a thread (classical engine)."""
    uvicorn = pytest.importorskip("uvicorn")
    from medseg.interactive.classical import RandomWalkerEngine
    from medseg.server import ServeConfig, create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ServeConfig(
        data=dataset, output=tmp_path / "corrected", reference_start=False, precompute=False
    )
    app = create_app(config, engine=RandomWalkerEngine())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", tmp_path / "corrected"
    server.should_exit = True
    thread.join(timeout=10)


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image as PILImage

    return np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_click_changes_overlay_and_save_keeps_geometry(server, dataset, blobs, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    base, out = server
    shots = Path(tmp_path / "shots")
    shots.mkdir()
    centre = (6, 13, 9)  # the sphere of case3, array order (z, y, x)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{base}/?case=case3")
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        assert page.inner_text("#status").startswith("case3: started from empty")
        # where the sphere's centre voxel is drawn on the axial tile (NIfTI order i, j, k)
        where = page.evaluate(
            """([i, j, k]) => {
                const nv = window.medsegViewer.nv;
                const vol = nv.volumes[0];
                const frac = nv.mm2frac(vol.vox2mm([i, j, k], vol.matRAS));
                nv.scene.crosshairPos = frac;
                nv.drawScene();
                const hit = nv.frac2canvasPosWithTile(frac, 0);
                return {x: hit.pos[0] / nv.uiData.dpr, y: hit.pos[1] / nv.uiData.dpr};
            }""",
            [centre[2], centre[1], centre[0]],
        )
        canvas = page.locator("#gl").bounding_box()
        x, y = canvas["x"] + where["x"], canvas["y"] + where["y"]
        clip = {"x": x - 12, "y": y - 12, "width": 24, "height": 24}
        before = _pixels(page.screenshot(clip=clip))
        page.screenshot(path=str(shots / "before.png"))
        page.mouse.click(x, y)
        page.wait_for_selector("body[data-updates='1']", timeout=60_000)
        page.wait_for_timeout(300)
        after = _pixels(page.screenshot(clip=clip))
        page.screenshot(path=str(shots / "after.png"))
        overlay = page.evaluate(
            "Array.from(window.medsegViewer.nv.volumes[1].img).filter(v => v === 1).length"
        )
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-saved]", timeout=60_000)
        status = page.inner_text("#status")
        browser.close()
    assert not errors
    assert overlay > 20
    # label 1 is drawn in (230, 25, 75): the clicked region turned redder than it was grey
    red_shift = (after[..., 0] - after[..., 1]) - (before[..., 0] - before[..., 1])
    assert red_shift.mean() > 20
    assert "saved" in status
    saved = read_image(out / "case3.nii.gz")
    image = read_image(dataset / "imagesTs" / "case3_0000.nii.gz")
    assert saved.spatial_shape == image.spatial_shape
    np.testing.assert_allclose(saved.spacing, image.spacing, atol=1e-6)
    np.testing.assert_allclose(saved.origin, image.origin, atol=1e-6)
    np.testing.assert_allclose(saved.direction, image.direction, atol=1e-6)
    labels = saved.array[0]
    assert labels[centre] == 1
    assert int((labels == 1).sum()) == overlay
    sphere = blobs.arrays(3)[1] == 1
    dice = 2 * ((labels == 1) & sphere).sum() / ((labels == 1).sum() + sphere.sum())
    assert dice > 0.6
