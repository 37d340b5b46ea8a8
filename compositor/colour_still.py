"""The scene's own render (its engine, samples and look) at a given size, saved as an 8-bit
PNG: the colour picture img2img and the edit models take, and the temporal capture's colour.

Every render setting it touches is restored. Callers in the add-on wrap it in
`generation.render_hooks.own_renders()` so it never triggers "generate after render".
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy

from ..t2i_core.files import give_user_mode
from .scene_state import remove_new_render_result_on_restore, restoring


def render_png(scene: bpy.types.Scene, size: tuple[int, int], path: Path) -> Path:
    """Render the scene's current frame at `size` (w, h) to `path`, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        with restoring() as restorer:
            remove_new_render_result_on_restore(restorer)
            render = scene.render
            restorer.set_many(render, resolution_x=size[0], resolution_y=size[1],
                              resolution_percentage=100, use_border=False, filepath=tmp)
            settings = render.image_settings
            restorer.set_if_present(settings, media_type="IMAGE")  # 5.x: before file_format
            restorer.set_many(settings, file_format="PNG", color_mode="RGB", color_depth="8")
            bpy.ops.render.render(write_still=True, scene=scene.name)
        give_user_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
