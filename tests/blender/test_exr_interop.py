"""Blender's own EXRs (float and half, ZIP, ZIPS or no compression) read back through
t2i_core.exr, the reader the backend uses for the capture's float depth."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from t2i_core import exr


@pytest.mark.parametrize("codec", ["ZIP", "ZIPS", "NONE"])
@pytest.mark.parametrize(("color_depth", "tolerance"), [("32", 0.0), ("16", 1e-3)],
                         ids=["float", "half"])
def test_blenders_exrs_read_back(scene, tmp_path, codec, color_depth, tolerance):
    height, width = 21, 37  # a last block of 5 lines; odd widths
    z = np.random.default_rng(0).uniform(0.5, 50.0, (height, width)).astype(np.float32)
    rgba = np.stack([z, z * 2, z * 3, np.ones_like(z)], axis=-1)
    image = bpy.data.images.new("depth", width, height, float_buffer=True, alpha=False)
    image.pixels.foreach_set(rgba[::-1].ravel())  # Blender's rows run bottom-up
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode = "OPEN_EXR", "RGB"
    settings.color_depth, settings.exr_codec = color_depth, codec
    path = tmp_path / "depth.exr"
    image.save_render(str(path), scene=scene)

    channels = exr.read_exr(path)

    assert sorted(channels) == ["B", "G", "R"]
    np.testing.assert_allclose(channels["R"], z, rtol=tolerance)
    np.testing.assert_allclose(channels["B"], z * 3, rtol=tolerance)
    np.testing.assert_array_equal(exr.read_grey_exr(path), channels["R"])
