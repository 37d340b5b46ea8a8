"""`t2i.depth_preview`: toggle live depth, encoded as the model gets it, in a 3D View."""

from __future__ import annotations

import bpy

from ..blender_t2i.generation.depth_control import DepthOptions, preview_range
from ..blender_t2i.generation.scene_job import preset_and_size
from ..compositor import preview
from ..compositor.capture import CaptureError
from ..t2i_core.files import os_error_text


def _view3d_area(context: bpy.types.Context) -> tuple[bpy.types.Screen, bpy.types.Area] | None:
    """The active 3D View, or the first one on the window's screen (context overrides and
    background mode have no active area)."""
    area = context.area if context.area and context.area.type == "VIEW_3D" else None
    screen = context.screen or (context.window.screen if context.window else None)
    if area is None and screen is not None:
        area = next((a for a in screen.areas if a.type == "VIEW_3D"), None)
    if area is None:
        return None
    for candidate in bpy.data.screens:  # the screen that really holds the area
        if any(a.as_pointer() == area.as_pointer() for a in candidate.areas):
            return candidate, area
    return None


class T2I_OT_depth_preview(bpy.types.Operator):
    """Show the depth map the model will get, live in the 3D View (toggle)"""

    bl_idname = "t2i.depth_preview"
    bl_label = "Depth Preview"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        if preview.is_on(scene):
            preview.disable(scene)
            self.report({"INFO"}, "Depth preview off: the scene is as it was")
            return {"FINISHED"}
        found = _view3d_area(context)
        if found is None:
            self.report({"ERROR"}, "the depth preview needs a 3D View: open one")
            return {"CANCELLED"}
        options = DepthOptions.from_scene(scene)
        try:
            _preset, size = preset_and_size(scene)
            depth_range = preview_range(scene, size, options)
        except (CaptureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except OSError as exc:
            self.report({"ERROR"}, os_error_text(exc))
            return {"CANCELLED"}
        mode = preview.enable(scene, context.view_layer, *found, depth_range, options.encoding)
        how = "viewport compositor" if mode == preview.COMPOSITOR else "depth material"
        self.report({"INFO"}, f"Depth preview on ({how}), {depth_range.near:.3g}-"
                              f"{depth_range.far:.3g} m")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(T2I_OT_depth_preview)


def unregister() -> None:
    bpy.utils.unregister_class(T2I_OT_depth_preview)
