"""Every realistic scene (devtools/scenes.py) captures and generates with the default settings:
the default depth range, capture path and engine, through the real operators and backend."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import numpy as np
import pytest

from devtools import scenes


@pytest.mark.parametrize("name", sorted(scenes.REALISTIC_SCENES))
def test_default_settings_capture_and_generate(addon, scene, backend, name):
    scenes.REALISTIC_SCENES[name](scene)
    settings = scene.t2i
    settings.model_preset = "tiny-sd15-depth"  # the only weights on a CI machine
    settings.prompt = "a photograph"
    settings.steps = 1
    settings.use_render_size = False  # the scene's geometry at a small size
    settings.width, settings.height = 64, 48
    assert settings.depth.range_policy == "AUTO" and settings.depth.capture_path == "AUTO"
    assert bpy.ops.t2i.capture_depth() == {"FINISHED"}
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    item = settings.history[0]
    record = json.loads(Path(bpy.path.abspath(item.record_path)).read_text())
    near, far = record["depth_range"]
    assert 0 < near < far
    depth = bpy.data.images["T2I Depth"]
    pixels = np.array(depth.pixels[:]).reshape(depth.size[1], depth.size[0], -1)[..., 0]
    assert pixels.max() > pixels.min()  # the map the model got shows the scene's depth
