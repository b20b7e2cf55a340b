"""The page in a real headless Chromium: load a case, click, see the overlay change, save.

Uses the system Chromium (``/usr/bin/chromium``, Debian package) through Playwright for Python,
with no browser download. Skipped with a reason when either is missing.
"""

from __future__ import annotations

import io
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from medseg.io import read_image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
READY = "body[data-ready='1']"
WAIT_MS = 120_000  # software WebGL on a loaded CPU can take seconds per redraw
pytestmark = pytest.mark.slow


@contextmanager
def serving(data: Path, output: Path) -> Iterator[str]:
    """A real uvicorn server for ``data`` on a free loopback port, in a thread (classical
    engine); yields its base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    from medseg.interactive.classical import RandomWalkerEngine
    from medseg.server import ServeConfig, create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ServeConfig(data=data, output=output, reference_start=False, precompute=False)
    app = create_app(config, engine=RandomWalkerEngine())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(dataset, tmp_path):
    """The nnU-Net test dataset served; yields the base URL and the output folder."""
    with serving(dataset, tmp_path / "corrected") as base:
        yield base, tmp_path / "corrected"


@contextmanager
def chromium_page(errors: list[str]):
    """A fresh page of the system Chromium (skips when Playwright or Chromium is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("pageerror", lambda err: errors.append(str(err)))
        try:
            yield page
        finally:
            browser.close()


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
        page.wait_for_selector(READY, timeout=WAIT_MS)
        assert page.inner_text("#status").startswith("case3: started from empty")
        # where the sphere's centre voxel is drawn on the axial tile (NIfTI order i, j, k)
        where = page.evaluate(
            """([i, j, k]) => {
                const nv = window.medsegViewer.nv;
                const frac = window.medsegViewer.vox2frac([i, j, k]);
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
        page.wait_for_selector("body[data-updates='1']", timeout=WAIT_MS)
        page.wait_for_timeout(300)
        after = _pixels(page.screenshot(clip=clip))
        page.screenshot(path=str(shots / "after.png"))
        overlay = page.evaluate(
            "Array.from(window.medsegViewer.nv.volumes[1].img).filter(v => v === 1).length"
        )
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-saved]", timeout=WAIT_MS)
        status = page.inner_text("#status")
        browser.close()
    assert not errors
    # the page drew the (bright) sphere where it says voxel ``centre`` is: the mapping from
    # canvas to the file's voxels holds on this oblique, LPS-stored image
    assert before.mean() > 80
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


CROSSHAIR_AT = """([i, j, k]) => {
    const nv = window.medsegViewer.nv;
    nv.scene.crosshairPos = window.medsegViewer.vox2frac([i, j, k]);
    nv.drawScene();
}"""
# The pixel of a tile (NiiVue slice type: 0 axial, 1 coronal, 2 sagittal) that the page maps, as
# it does for a click, to the voxel nearest NIfTI voxel (i, j, k); a null coordinate is ignored
# (any voxel of the displayed plane).
PIXEL_OF = """([i, j, k, sliceType]) => {
    const nv = window.medsegViewer.nv;
    const dpr = nv.uiData.dpr || 1;
    const tile = nv.screenSlices.find((s) => s.axCorSag === sliceType);
    const [left, top, width, height] = tile.leftTopWidthHeight;
    const x0 = Math.min(left, left + width);
    let best = null;
    for (let y = top + 0.5; y < top + height; y += 1) {
        for (let x = x0 + 0.5; x < x0 + Math.abs(width); x += 1) {
            const frac = nv.canvasPos2frac([x, y]);
            if (!frac || frac[0] < 0) continue;
            const v = window.medsegViewer.frac2vox(frac);
            const d = [i, j, k].reduce((s, c, a) => (c === null ? s : s + (v[a] - c) ** 2), 0);
            if (best === null || d < best.d) best = { d, x: x / dpr, y: y / dpr };
        }
    }
    return best;
}"""


class Page:
    """The viewer page with helpers in the image's array order (z, y, x)."""

    def __init__(self, page, base: str, shape: tuple[int, ...]) -> None:
        self.page = page
        self.base = base
        self.shape = shape
        self.updates = 0

    def focus(self, zyx) -> None:
        """Put the crosshair (every tile's slice) through voxel ``zyx``."""
        self.page.evaluate(CROSSHAIR_AT, [zyx[2], zyx[1], zyx[0]])

    def at(self, zyx, tile: str = "axial") -> tuple[float, float]:
        """Page position where ``tile`` shows voxel ``zyx`` (None: any along that axis)."""
        z, y, x = zyx
        kind = ("axial", "coronal", "sagittal").index(tile)
        hit = self.page.evaluate(PIXEL_OF, [x, y, z, kind])
        assert hit["d"] < 0.5, f"voxel {zyx} is not on the {tile} tile"
        canvas = self.page.locator("#gl").bounding_box()
        return canvas["x"] + hit["x"], canvas["y"] + hit["y"]

    def drag(self, points: list[tuple[float, float]]) -> None:
        self.page.mouse.move(*points[0])
        self.page.mouse.down()
        for point in points[1:]:
            self.page.mouse.move(*point, steps=4)
        self.page.mouse.up()

    def answered(self) -> None:
        """Wait for the page to paste the server's answer to the last interaction."""
        self.updates += 1
        try:
            self.page.wait_for_function(
                "n => Number(document.body.dataset.updates || 0) >= n",
                arg=self.updates,
                timeout=WAIT_MS,
            )
        except Exception as err:
            shown = self.page.get_attribute("body", "data-updates")
            raise AssertionError(f"{shown} answers, status {self.status()!r}") from err
        assert self.page.get_attribute("body", "data-status") == "ok", self.status()

    def overlay(self) -> np.ndarray:
        """The label volume NiiVue draws, in array order."""
        values = self.page.evaluate("Array.from(window.medsegViewer.nv.volumes[1].img)")
        return np.asarray(values, dtype=np.uint8).reshape(self.shape)

    def session_id(self) -> str:
        return self.page.evaluate("window.medsegViewer.state.session.session_id")

    def server_labels(self) -> np.ndarray:
        """The session's label map as the server holds it (rebuilt from ``/mask``)."""
        import httpx

        update = httpx.get(f"{self.base}/api/sessions/{self.session_id()}/mask").json()
        labels = np.zeros(self.shape, dtype=np.uint8)
        if update["box"]:
            box = tuple(slice(a, b) for a, b in update["box"])
            runs = np.asarray(update["rle"]).reshape(-1, 2)
            labels[box] = np.repeat(runs[:, 0], runs[:, 1]).reshape(labels[box].shape)
        return labels

    def in_sync(self) -> np.ndarray:
        """The overlay, checked voxel for voxel against the server's label map."""
        shown = self.overlay()
        np.testing.assert_array_equal(shown, self.server_labels())
        return shown

    def status(self) -> str:
        return self.page.inner_text("#status")


def _edits(out: Path) -> list[tuple[str, int | None, dict | None]]:
    import json
    import sqlite3

    with sqlite3.connect(out / "edits.sqlite") as db:
        rows = db.execute("SELECT action, label, prompt FROM edits ORDER BY id").fetchall()
    return [(a, label, None if p is None else json.loads(p)) for a, label, p in rows]


def test_every_tool_in_the_browser(server, dataset, blobs, tmp_path):
    """Each tool of the page, by its key or button, on the real page; after every step the
    drawn overlay equals the server's label map, and the edit log holds the prompt sent."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    base, out = server
    shots = tmp_path / "shots"
    shots.mkdir()
    sphere_centre, cube_centre = (6, 13, 9), (6, 20, 18)
    _, truth = blobs.arrays(3)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{base}/?case=case3")
        page.wait_for_selector(READY, timeout=WAIT_MS)
        # no 3D render tile: software WebGL redraws it on every step, seconds each on a loaded CPU
        page.evaluate(
            "window.medsegViewer.nv.opts.multiplanarShowRender = niivue.SHOW_RENDER.NEVER;"
            "window.medsegViewer.nv.drawScene()"
        )
        view = Page(page, base, blobs.shape)
        keys = page.keyboard

        # class names and colours from dataset.json; latency not shown before any interaction
        assert page.inner_text("#classes").split("\n") == ["1 sphere", "2 cube"]
        assert page.inner_text("#latency") == "last interaction: –"
        assert page.get_attribute("#undo", "disabled") is not None

        # + click (the default tool) on the sphere; the latency line fills in
        view.focus(sphere_centre)
        page.mouse.click(*view.at(sphere_centre))
        view.answered()
        clicked = view.in_sync()
        assert clicked[sphere_centre] == 1
        latency = page.inner_text("#latency")
        assert re.fullmatch(
            r"last interaction: \d+ ms round trip \(engine \d+ ms\), drawn in \d+ ms", latency
        ), latency
        assert page.get_attribute("#undo", "disabled") is None
        page.screenshot(path=str(shots / "click.png"))

        # - click (key 2) beside the sphere, twice in a row without waiting: the second waits
        # for the first answer instead of being dropped
        keys.press("2")
        assert "on" in page.get_attribute("[data-tool='neg']", "class")
        first, second = view.at((None, 4, 9)), view.at((None, 4, 12))
        page.mouse.click(*first)
        page.mouse.click(*second)
        view.answered()
        view.answered()
        negative = view.in_sync()

        # class selector: "]" picks the cube; box (B) dragged around the cube on the axial tile
        keys.press("]")
        assert page.evaluate("window.medsegViewer.state.label") == 2
        assert "on" in page.get_attribute("#classes button[data-label='2']", "class")
        keys.press("b")
        view.drag([view.at((None, 16, 14)), view.at((None, 24, 22))])
        view.answered()
        boxed = view.in_sync()
        cube = boxed == 2
        assert cube[cube_centre]
        assert (cube & (truth == 2)).sum() > 0.5 * cube.sum()
        np.testing.assert_array_equal(boxed[boxed != 2], negative[boxed != 2])
        page.screenshot(path=str(shots / "box.png"))

        # undo (Z) and redo (Y) swap exactly between the two label maps
        keys.press("z")
        view.answered()
        np.testing.assert_array_equal(view.in_sync(), negative)
        keys.press("y")
        view.answered()
        np.testing.assert_array_equal(view.in_sync(), boxed)

        # brush (S) on the sphere, class 1 again with "["; width from the slider
        keys.press("[")
        assert page.evaluate("window.medsegViewer.state.label") == 1
        page.locator("#width").fill("2")
        assert page.inner_text("#width-val") == "2"
        keys.press("s")
        view.drag([view.at((None, 13, 7)), view.at((None, 13, 11))])
        view.answered()
        assert view.in_sync()[sphere_centre] == 1

        # brush on the sagittal view, through the sphere's centre, along z
        view.focus(sphere_centre)
        view.drag([view.at((4, 13, None), "sagittal"), view.at((8, 13, None), "sagittal")])
        view.answered()
        brushed = view.in_sync()
        assert brushed[4:9, 13, 9].all()

        # eraser (E) across the sphere: the stroke's voxels leave the class
        keys.press("e")
        view.drag([view.at((None, 16, 5)), view.at((None, 16, 13))])
        view.answered()
        erased = view.in_sync()
        assert (erased == 1).sum() < (brushed == 1).sum()

        # view (V): a click only moves the crosshair, nothing is sent
        keys.press("v")
        page.mouse.click(*view.at(sphere_centre))
        page.wait_for_timeout(500)
        assert page.get_attribute("body", "data-updates") == str(view.updates)
        # letters typed into a text field are text, not shortcuts (s brush, n next case, z undo)
        page.locator("#text-phrase").press_sequentially("snz")
        assert page.evaluate("window.medsegViewer.state.tool") == "view"
        assert page.evaluate("document.body.dataset.case") == "case3"
        page.locator("#text-phrase").fill("")
        page.locator("#gl").focus()

        # clear class (button), then the undo button brings the class back
        page.click("#clear")
        view.answered()
        assert not (view.in_sync() == 1).any()
        page.click("#undo")
        view.answered()
        np.testing.assert_array_equal(view.in_sync(), erased)

        # display: opacity slider, O hides and shows the overlay, window/level presets
        page.locator("#opacity").fill("80")
        opacity = "window.medsegViewer.nv.volumes[1].opacity"
        assert page.evaluate(opacity) == pytest.approx(0.8)
        keys.press("o")
        assert page.evaluate(opacity) == 0
        keys.press("o")
        assert page.evaluate(opacity) == pytest.approx(0.8)
        window = (
            "[window.medsegViewer.nv.volumes[0].cal_min, window.medsegViewer.nv.volumes[0].cal_max]"
        )
        for name, expected in (
            ("bone", [-500, 1300]),
            ("lung", [-1350, 150]),
            ("soft tissue", [-160, 240]),
        ):
            page.click(f"#presets button:text-is('{name}')")
            assert page.evaluate(window) == expected
        page.click("#presets button:text-is('auto')")
        robust = page.evaluate(
            "[window.medsegViewer.nv.volumes[0].robust_min,"
            " window.medsegViewer.nv.volumes[0].robust_max]"
        )
        assert page.evaluate(window) == robust
        page.screenshot(path=str(shots / "tools.png"))

        # accept & save (Enter): the progress line counts it, the file holds what was drawn
        keys.press("Enter")
        page.wait_for_selector("body[data-saved]", timeout=WAIT_MS)
        assert page.inner_text("#progress") == "1 of 4 cases saved"
        assert page.inner_text("#case option[value='case3']").startswith("✓")

        # next case (N) opens an unsaved case in a new session
        first_session = view.session_id()
        keys.press("n")
        page.wait_for_function("document.body.dataset.case !== 'case3'", timeout=WAIT_MS)
        assert page.evaluate("document.body.dataset.case") in {"case0", "case1", "case2"}
        assert view.session_id() != first_session
        browser.close()
    assert not errors

    saved = read_image(out / "case3.nii.gz").array[0]
    np.testing.assert_array_equal(saved, erased)
    edits = _edits(out)
    actions = [action for action, _, _ in edits]
    assert actions[:13] == [
        "open", "click", "click", "click", "box", "undo", "redo", "scribble", "scribble",
        "scribble", "clear", "undo", "open",
    ]  # fmt: skip
    (_, _, pos), (_, _, neg), (_, _, neg2) = edits[1:4]
    assert pos["positive"]
    assert not neg["positive"]
    assert not neg2["positive"]
    assert np.abs(np.subtract(neg["point"][1:], (4, 9))).max() <= 1
    assert np.abs(np.subtract(neg2["point"][1:], (4, 12))).max() <= 1
    _, box_label, box = edits[4]
    assert np.abs(np.subtract(pos["point"], sphere_centre)).max() <= 1
    assert (box_label, box["axis"]) == (2, 0)
    assert abs(box["index"] - cube_centre[0]) <= 1
    (_, brush_label, brush), (_, _, sagittal), (_, _, eraser) = edits[7:10]
    assert (brush_label, brush["positive"], brush["width"]) == (1, True, 2)
    assert (sagittal["axis"], sagittal["index"]) == (2, sphere_centre[2])
    assert np.abs(np.subtract(sagittal["points"][0], (4, 13))).max() <= 1
    assert np.abs(np.subtract(sagittal["points"][-1], (8, 13))).max() <= 1
    assert (eraser["positive"], eraser["axis"]) == (False, 0)
    # the eraser's stroke is background for the class after the edit
    for y, x in np.rint(eraser["points"]).astype(int):
        assert erased[eraser["index"], y, x] != 1


def test_click_on_a_2d_image(tmp_path):
    """A PNG is shown as stored (x right, y down); a click on an off-centre disc lands on it
    (a flipped or transposed mapping would miss it) and the saved PNG holds what was drawn."""
    from PIL import Image as PILImage

    folder = tmp_path / "photos"
    folder.mkdir()
    yx = np.indices((64, 96))
    disc = (yx[0] - 20) ** 2 + (yx[1] - 70) ** 2 <= 8**2
    image = np.clip(40 + 160 * disc + np.random.default_rng(0).normal(0, 5, disc.shape), 0, 255)
    PILImage.fromarray(image.astype(np.uint8)).save(folder / "photo_01.png")
    errors: list[str] = []
    with serving(folder, tmp_path / "out") as base, chromium_page(errors) as page:
        page.goto(f"{base}/?case=photo_01")
        page.wait_for_selector(READY, timeout=WAIT_MS)
        view = Page(page, base, disc.shape)
        x, y = view.at((None, 20, 70))
        before = _pixels(page.screenshot(clip={"x": x - 3, "y": y - 3, "width": 6, "height": 6}))
        page.mouse.click(x, y)
        view.answered()
        labels = view.in_sync()
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-saved]", timeout=WAIT_MS)
    assert not errors
    assert before.mean() > 150  # the bright disc is drawn where the page maps voxel (20, 70)
    assert labels[20, 70] == 1
    dice = 2 * ((labels == 1) & disc).sum() / ((labels == 1).sum() + disc.sum())
    assert dice > 0.7
    saved = read_image(tmp_path / "out" / "photo_01.png")
    assert saved.spatial_shape == disc.shape
    np.testing.assert_array_equal(saved.array[0], labels)
