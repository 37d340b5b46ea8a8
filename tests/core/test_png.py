"""The add-on's PNG writer (Blender has no Pillow): Pillow must read back exactly what we wrote."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from t2i_src.blender_t2i import png


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
