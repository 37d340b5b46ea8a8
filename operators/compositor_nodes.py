"""`t2i.add_compositor_nodes`: the depth encoding and result overlay in the scene's compositor."""

from __future__ import annotations

import bpy

from ..blender_t2i.generation import scene_job as generation
from ..blender_t2i.generation.depth_control import DepthOptions, preview_range
from ..compositor.capture import CaptureError
from ..compositor.node_setup import DEPTH_NODE, add_t2i_nodes
from ..t2i_core.files import os_error_text


class T2I_OT_add_compositor_nodes(bpy.types.Operator):
    """Add the "T2I Depth" encoding (Render Layers depth -> the model's depth map) and the
    "T2I Result" overlay to the compositor; your own nodes and links are left as they are"""

    bl_idname = "t2i.add_compositor_nodes"
    bl_label = "Add T2I Compositor Nodes"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        options = DepthOptions.from_scene(scene)
        try:
            _preset, size = generation.preset_and_size(scene)
            # the range the model would get now, as the live preview shows it
            depth_range = preview_range(scene, size, options)
        except (CaptureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except OSError as exc:
            self.report({"ERROR"}, os_error_text(exc))
            return {"CANCELLED"}
        add_t2i_nodes(scene, context.view_layer, depth_range, options.encoding,
                      scene.t2i.overlay_opacity)
        self.report({"INFO"}, f"'{DEPTH_NODE}' encodes {depth_range.near:.3g}-"
                              f"{depth_range.far:.3g} m; the result overlay shows 'T2I Result'")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(T2I_OT_add_compositor_nodes)


def unregister() -> None:
    bpy.utils.unregister_class(T2I_OT_add_compositor_nodes)
