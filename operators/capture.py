"""`t2i.capture_depth`: capture the camera's depth and show the control image as "T2I Depth"."""

from __future__ import annotations

import bpy

from ..blender_t2i import jobs, results
from ..blender_t2i.depth_control import make_control_image
from ..compositor.capture import CaptureError
from .common import preset_and_size


class T2I_OT_capture_depth(bpy.types.Operator):
    """Capture the active camera's depth as the model will see it (image "T2I Depth")"""

    bl_idname = "t2i.capture_depth"
    bl_label = "Capture Depth"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        try:
            preset, size = preset_and_size(scene)
            stem = jobs.new_job_stem(preset, scene.t2i.seed)
            control = make_control_image(scene, size, results.output_folder(), stem)
        except (CaptureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        results.show_image(results.DEPTH_IMAGE, control.path)
        self.report({"INFO"}, f"Depth {size[0]}x{size[1]}, {control.depth_range.near:.3g}-"
                              f"{control.depth_range.far:.3g} m, {control.seconds:.2f} s")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(T2I_OT_capture_depth)


def unregister() -> None:
    bpy.utils.unregister_class(T2I_OT_capture_depth)
