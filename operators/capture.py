"""`t2i.capture_depth`: capture the camera's depth and show the control image as "T2I Depth".
`t2i.lock_depth_range`: one depth range for a whole animation, stored on the scene."""

from __future__ import annotations

import bpy

from ..blender_t2i.generation.depth_control import (
    DepthOptions,
    lock_depth_range,
    make_control_image,
)
from ..blender_t2i.generation.scene_job import preset_and_size
from ..blender_t2i.results import images as results
from ..compositor import preview
from ..compositor.capture import CaptureError
from ..t2i_core import job_request as jobs
from ..t2i_core.files import os_error_text


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
            control = make_control_image(scene, size, results.output_folder(scene), stem,
                                         context=context)
        except (CaptureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except OSError as exc:
            self.report({"ERROR"}, os_error_text(exc))
            return {"CANCELLED"}
        results.show_image(results.DEPTH_IMAGE, control.path)
        self.report({"INFO"}, f"Depth {size[0]}x{size[1]}, {control.depth_range.near:.3g}-"
                              f"{control.depth_range.far:.3g} m, {control.seconds:.2f} s")
        return {"FINISHED"}


class T2I_OT_lock_depth_range(bpy.types.Operator):
    """Compute one depth range over the frame range and use it for every frame, so an
    animation's depth maps do not flicker"""

    bl_idname = "t2i.lock_depth_range"
    bl_label = "Lock Depth Range"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        depth = scene.t2i.depth
        frames = depth.lock_frames(scene)
        try:
            _preset, size = preset_and_size(scene)
            locked = lock_depth_range(scene, size, frames, DepthOptions.from_scene(scene))
        except (CaptureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except OSError as exc:
            self.report({"ERROR"}, os_error_text(exc))
            return {"CANCELLED"}
        depth.locked_near, depth.locked_far = locked.near, locked.far
        depth.range_policy = "LOCKED"
        if preview.is_on(scene):
            preview.update_range(scene, locked, depth.encoding)
        self.report({"INFO"}, f"Depth range locked to {locked.near:.4g}-{locked.far:.4g} m "
                              f"over frames {frames.start}-{frames[-1]}")
        return {"FINISHED"}


CLASSES = (T2I_OT_capture_depth, T2I_OT_lock_depth_range)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
