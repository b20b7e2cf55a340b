"""PNG, JPEG and TIFF: channel layout, alpha, exact label round trips, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from medseg.errors import ImageReadError, ImageWriteError
from medseg.io import Image, read_image, write_image


@pytest.fixture
def labels_2d(rng: np.random.Generator) -> Image:
    """(1, 9, 11) uint8 label map with values 0..4."""
    return Image.from_array(rng.integers(0, 5, size=(1, 9, 11)).astype(np.uint8))


def _unit_geometry(image: Image) -> None:
    assert image.spacing == (1.0, 1.0)
    assert image.origin == (0.0, 0.0)
    np.testing.assert_array_equal(image.direction, np.eye(2))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_label_map_round_trips_exactly(tmp_path: Path, labels_2d: Image, suffix):
    write_image(labels_2d, tmp_path / f"lab{suffix}")
    back = read_image(tmp_path / f"lab{suffix}")
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels_2d.array)
    _unit_geometry(back)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_uint16_round_trip(tmp_path: Path, rng: np.random.Generator, suffix):
    image = Image.from_array(rng.integers(0, 2**16, size=(1, 5, 6)).astype(np.uint16))
    write_image(image, tmp_path / f"img{suffix}")
    back = read_image(tmp_path / f"img{suffix}")
    assert back.array.dtype == np.uint16
    np.testing.assert_array_equal(back.array, image.array)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_rgb_is_three_channels_in_rgb_order(tmp_path: Path, suffix):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    PILImage.fromarray(rgb).save(tmp_path / f"rgb{suffix}")
    image = read_image(tmp_path / f"rgb{suffix}")
    assert image.array.shape == (3, 4, 5)
    assert [int(image.array[c, 0, 0]) for c in range(3)] == [200, 100, 50]
    write_image(image, tmp_path / f"again{suffix}")
    np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / f"again{suffix}")), rgb)


@pytest.mark.parametrize(("suffix", "mode", "channels"), [(".png", "RGBA", 3), (".png", "LA", 1)])
def test_alpha_is_dropped(tmp_path: Path, suffix, mode, channels):
    bands = len(mode)
    data = np.arange(4 * 5 * bands, dtype=np.uint8).reshape(4, 5, bands)
    PILImage.fromarray(data, mode=mode).save(tmp_path / f"a{suffix}")
    image = read_image(tmp_path / f"a{suffix}")
    assert image.array.shape == (channels, 4, 5)
    assert image.meta["alpha_dropped"] is True
    np.testing.assert_array_equal(np.moveaxis(image.array, 0, -1), data[..., :channels])


def test_rgba_tiff_alpha_is_dropped(tmp_path: Path):
    tifffile = pytest.importorskip("tifffile")
    data = np.arange(4 * 5 * 4, dtype=np.uint8).reshape(4, 5, 4)
    tifffile.imwrite(tmp_path / "a.tif", data, photometric="rgb")
    image = read_image(tmp_path / "a.tif")
    assert image.meta["alpha_dropped"] is True
    np.testing.assert_array_equal(np.moveaxis(image.array, 0, -1), data[..., :3])


def test_palette_png_keeps_indices(tmp_path: Path, labels_2d: Image):
    pil = PILImage.fromarray(labels_2d.array[0], mode="L").convert("P")
    pil.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0])
    pil.save(tmp_path / "pal.png")
    assert PILImage.open(tmp_path / "pal.png").mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png").array, labels_2d.array)


def test_jpeg_reads_what_pillow_decodes(tmp_path: Path, rng: np.random.Generator):
    rgb = rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / "photo.jpg", quality=95)
    image = read_image(tmp_path / "photo.jpg")
    np.testing.assert_array_equal(
        image.array, np.moveaxis(np.asarray(PILImage.open(tmp_path / "photo.jpg")), -1, 0)
    )
    _unit_geometry(image)
    with pytest.raises(ImageWriteError, match="JPEG is lossy"):
        write_image(image, tmp_path / "out.jpg")


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.float64])
def test_tiff_keeps_any_dtype_and_channels(tmp_path: Path, rng: np.random.Generator, dtype):
    image = Image.from_array((rng.normal(size=(4, 6, 7)) * 100).astype(dtype))
    write_image(image, tmp_path / "multi.tif")
    back = read_image(tmp_path / "multi.tif")
    assert back.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, image.array)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((1, 4, 5), np.float32),
        np.zeros((2, 4, 5), np.uint8),
        np.zeros((3, 4, 5), np.uint16),
    ],
    ids=["float32", "two-channel", "rgb16"],
)
def test_png_refuses_what_it_cannot_hold(tmp_path: Path, array):
    with pytest.raises(ImageWriteError, match=r"write \.tif or \.nii\.gz"):
        write_image(Image.from_array(array), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_bool_png_is_uint8(tmp_path: Path):
    mask = np.zeros((1, 4, 5), bool)
    mask[0, 1:3, 2:4] = True
    write_image(Image.from_array(mask), tmp_path / "mask.png")
    np.testing.assert_array_equal(read_image(tmp_path / "mask.png").array, mask.astype(np.uint8))


ROTATED = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])


@pytest.mark.parametrize(
    ("suffix", "channels", "dtype"),
    [(".png", 1, np.uint8), (".png", 3, np.uint8), (".png", 1, np.uint16),
     (".tif", 1, np.float32), (".tif", 3, np.uint8), (".tiff", 4, np.int16)],
)  # fmt: skip
def test_geometry_survives_png_and_tiff(tmp_path: Path, rng, suffix, channels, dtype):
    array = rng.integers(0, 200, size=(channels, 9, 11)).astype(dtype)
    image = Image(array, spacing=(0.25, 0.5), origin=(-12.5, 30.0), direction=ROTATED)
    path = tmp_path / f"slice{suffix}"
    write_image(image, path)
    back = read_image(path)
    np.testing.assert_array_equal(back.array, array)
    assert back.same_geometry(image, atol=1e-9)
    # the pixel size in the formats' own fields, as other programs read it (x, y order)
    if suffix == ".png":
        with PILImage.open(path) as pil:
            assert pil.info["dpi"] == pytest.approx((25.4 / 0.5, 25.4 / 0.25), rel=1e-3)
    else:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            assert tags["XResolution"].value[0] / tags["XResolution"].value[1] == pytest.approx(20)
            assert tags["YResolution"].value[0] / tags["YResolution"].value[1] == pytest.approx(40)


def test_default_geometry_writes_no_geometry_entry(tmp_path: Path, labels_2d: Image):
    write_image(labels_2d, tmp_path / "lab.png")
    with PILImage.open(tmp_path / "lab.png") as pil:
        assert "medseg-geometry" not in pil.info
    _unit_geometry(read_image(tmp_path / "lab.png"))


def test_corrupt_geometry_entry_names_the_file(tmp_path: Path, labels_2d: Image):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("medseg-geometry", '{"spacing": [0, 1], "origin": [0, 0]}')
    PILImage.fromarray(labels_2d.array[0]).save(tmp_path / "bad.png", pnginfo=info)
    with pytest.raises(ImageReadError, match=r"bad\.png: the medseg-geometry entry .* corrupt"):
        read_image(tmp_path / "bad.png")


def test_tiff_stack_is_refused(tmp_path: Path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(
        tmp_path / "stack.tif", np.zeros((5, 4, 6), np.uint8), photometric="minisblack"
    )
    with pytest.raises(ImageReadError, match=r"store volumes and stacks as \.nii\.gz"):
        read_image(tmp_path / "stack.tif")


def test_truncated_png(tmp_path: Path, labels_2d: Image):
    big = Image.from_array(np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64))
    write_image(big, tmp_path / "big.png")
    data = (tmp_path / "big.png").read_bytes()
    (tmp_path / "big.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"big\.png: not a readable PNG"):
        read_image(tmp_path / "big.png")
