"""A Blender camera's frame as plain numbers (`t2i_core.projection.CameraParams`), for the
maths that projects from it or reprojects between frames."""

from __future__ import annotations

import bpy

from ..t2i_core.projection import CameraParams


def is_panoramic(camera: bpy.types.Object) -> bool:
    return camera.data.type not in ("PERSP", "ORTHO")


def camera_params(camera: bpy.types.Object) -> CameraParams:
    """The camera's lens, sensor, shift and clipping (perspective or orthographic; callers
    refuse panoramic cameras first, with their own reason)."""
    data = camera.data
    return CameraParams(ortho=data.type == "ORTHO", lens=data.lens,
                        sensor_width=data.sensor_width, sensor_height=data.sensor_height,
                        sensor_fit=data.sensor_fit, shift_x=data.shift_x, shift_y=data.shift_y,
                        ortho_scale=data.ortho_scale, clip_start=data.clip_start,
                        clip_end=data.clip_end)
