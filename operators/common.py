"""What the capture and generate operators share: reading the scene's job settings."""

from __future__ import annotations

import bpy

from ..backend.presets import Preset, get_preset
from ..blender_t2i import jobs


def preset_and_size(scene: bpy.types.Scene) -> tuple[Preset, tuple[int, int]]:
    """The chosen preset and the generation size; ValueError says what to fix."""
    settings = scene.t2i
    preset = get_preset(settings.model_preset)
    render = scene.render
    size = jobs.job_size(render.resolution_x, render.resolution_y, render.resolution_percentage,
                         settings.use_render_size, settings.width, settings.height, preset)
    return preset, size
