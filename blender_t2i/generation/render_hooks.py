""""Generate after render": a render_complete handler that runs a generate after F12.

Off by default (scene.t2i.generate_after_render). The add-on's own renders (depth captures,
colour renders for init images, everything a batch run does) are wrapped in `own_renders()` and
never trigger it, or a capture would start a generate that captures again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import bpy
from bpy.app.handlers import persistent

log = logging.getLogger("blender_t2i")

_own_renders = 0


@contextmanager
def own_renders() -> Iterator[None]:
    global _own_renders
    _own_renders += 1
    try:
        yield
    finally:
        _own_renders -= 1


def rendering_for_ourselves() -> bool:
    return _own_renders > 0


@persistent
def _on_render_complete(scene: bpy.types.Scene, _depsgraph: object = None) -> None:
    settings = getattr(scene, "t2i", None)
    if rendering_for_ourselves() or settings is None or not settings.generate_after_render:
        return
    if bpy.app.background:
        # no event loop to defer to (blender -b ... -f N): generate now, blocking
        _generate(scene.name)
    else:
        # leave the render's callback first; the modal generate needs a window
        bpy.app.timers.register(lambda: _generate(scene.name), first_interval=0.0)


def _generate(scene_name: str) -> None:
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return None
    window = next(iter(bpy.context.window_manager.windows), None)
    override = {"scene": scene}
    if window is not None:
        override["window"] = window
    try:
        with bpy.context.temp_override(**override):
            if bpy.app.background:
                bpy.ops.t2i.generate()
            else:
                bpy.ops.t2i.generate("INVOKE_DEFAULT")
    except RuntimeError as exc:  # the operator already reported it; keep the log complete
        log.error("generate after render failed: %s", exc)
    return None  # a one-shot timer


def register() -> None:
    bpy.app.handlers.render_complete.append(_on_render_complete)


def unregister() -> None:
    if _on_render_complete in bpy.app.handlers.render_complete:
        bpy.app.handlers.render_complete.remove(_on_render_complete)
