"""The frame's colour render, for models that take it (img2img init, edit models' input picture).

Rendered with the scene's own engine and look at the job's size, saved as an 8-bit PNG
(`compositor.colour_still.render_png`: every render setting it touches is restored); as one of
the add-on's own renders it never triggers "generate after render".
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ...compositor.colour_still import render_png
from .render_hooks import own_renders


def render_colour(scene: bpy.types.Scene, size: tuple[int, int], path: Path) -> Path:
    with own_renders():
        return render_png(scene, size, path)
