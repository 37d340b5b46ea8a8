"""The add-on's PNG writer (Blender has no Pillow): Pillow must read back exactly what we wrote."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from t2i_src.t2i_core import png


@pytest.mark.parametrize(("shape", "dtype", "mode"), [
    ((5, 7), np.uint8, "L"),
    ((5, 7), np.uint16, "I;16"),
    ((4, 3, 3), np.uint8, "RGB"),
    ((4, 3, 4), np.uint8, "RGBA"),
])
def test_round_trips_through_pillow(tmp_path, shape, dtype, mode):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)
    path = png.write_png(tmp_path / "a.png", pixels, {"t2i:prompt": "cube, ünïcode"})
    with Image.open(path) as image:
        assert image.mode == mode
        assert image.info["t2i:prompt"] == "cube, ünïcode"
        np.testing.assert_array_equal(np.array(image), pixels)


def test_rejects_float_pixels(tmp_path):
    with pytest.raises(TypeError, match="uint8 or uint16"):
        png.write_png(tmp_path / "a.png", np.zeros((2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_no_temp_file_and_replaces(tmp_path):
    target = tmp_path / "out.png"
    png.write_png(target, np.zeros((2, 2), np.uint8))
    png.write_png(target, np.full((2, 2), 9, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    with Image.open(target) as image:
        assert np.array(image).max() == 9


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_large_images_deflated_on_several_threads_are_one_valid_stream(monkeypatch, dtype):
    """Slices compressed apart (each primed with the bytes before it) must join into one zlib
    stream whose checksum holds, smooth areas and noise alike."""
    monkeypatch.setattr(png, "_SLICE", 4096)
    monkeypatch.setattr(png.os, "cpu_count", lambda: 8)
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, np.iinfo(dtype).max, 96 * 80).reshape(96, 80)
    pixels = np.stack([ramp, ramp.T.reshape(96, 80), ramp[::-1]], axis=-1).astype(dtype)
    pixels[40:70] = rng.integers(0, np.iinfo(dtype).max, size=(30, 80, 3), dtype=dtype)
    data = png.encode_png(pixels, level=1)
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    raw = zlib.decompress(idat)  # raises on a broken stream or a wrong Adler-32
    assert len(raw) == 96 * (1 + 80 * 3 * pixels.itemsize)
    with Image.open(io.BytesIO(data)) as image:
        decoded = np.array(image)
    if dtype == np.uint16:  # Pillow reads 16-bit RGB as 8 bits per channel; check the bytes
        expected = pixels.astype(">u2").view(np.uint8)[..., ::2].reshape(96, 80, 3)
        np.testing.assert_array_equal(decoded, expected)
    else:
        np.testing.assert_array_equal(decoded, pixels)


def test_files_are_written_with_the_users_umask(tmp_path):
    """mkstemp makes 0600 files; a result must be as readable as any file the user saves."""
    import os

    from t2i_src.t2i_core import files

    previous = os.umask(0o022)
    try:
        mask = files._read_umask()
        files._UMASK = mask
        path = files.write_bytes_atomic(tmp_path / "frame.png", b"data")
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(previous)


def test_replace_text_swaps_another_encoders_text_chunks_and_keeps_the_pixels():
    """ComfyUI's SaveImage writes its graph as tEXt chunks: the bridge puts ours instead."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, size=(6, 5, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    info = PngInfo()
    info.add_text("prompt", '{"1": {}}')
    info.add_text("workflow", "{}")
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info)
    replaced = png.replace_text(buffer.getvalue(), {"t2i:prompt": "a cube", "parameters": "x"})
    with Image.open(io.BytesIO(replaced)) as image:
        assert image.info.get("t2i:prompt") == "a cube" and image.info.get("parameters") == "x"
        assert "prompt" not in image.info and "workflow" not in image.info
        np.testing.assert_array_equal(np.array(image), pixels)
    with pytest.raises(ValueError):
        png.replace_text(b"GIF89a", {})
    with pytest.raises(ValueError):
        png.replace_text(buffer.getvalue()[:40], {})
