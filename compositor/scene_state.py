"""Put the user's scene settings back exactly, also when a capture fails half-way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bpy

from ..blender_t2i import compat


@contextmanager
def preserved_render_settings(scene: bpy.types.Scene,
                              view_layer: bpy.types.ViewLayer) -> Iterator[None]:
    """Saves every setting a depth capture touches and restores it on exit."""
    render = scene.render
    saved: list[tuple[Any, str, Any]] = [
        (owner, attr, getattr(owner, attr))
        for owner, attrs in (
            (render, ("engine", "resolution_x", "resolution_y", "resolution_percentage",
                      "use_border", "use_compositing", "use_sequencer", "filepath")),
            (view_layer, ("use_pass_z",)),
            (scene.display, ("render_aa",)),
        )
        for attr in attrs
    ]
    compositor = compat.compositor_state(scene)
    try:
        yield
    finally:
        compat.restore_compositor(scene, compositor)
        # Engine first: some settings only exist while their engine is active.
        for owner, attr, value in saved:
            if getattr(owner, attr) != value:
                setattr(owner, attr, value)
