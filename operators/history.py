"""History operators: put a result's settings back, show its image, reveal its files."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import IntProperty

from ..blender_t2i.results import images as results
from ..blender_t2i.scene import history


def _entry(operator: bpy.types.Operator, context: bpy.types.Context):
    try:
        return history.entry(context.scene.t2i, operator.index)
    except LookupError as exc:
        operator.report({"ERROR"}, str(exc).strip("'\""))
        return None


class _HistoryOperator:
    index: IntProperty(name="History Entry", default=-1, min=-1,
                       description="Which result (-1: the selected history entry)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "t2i")


class T2I_OT_reuse_settings(_HistoryOperator, bpy.types.Operator):
    """Put this result's model (with your own base, ControlNet, VAE and LoRAs), scheduler,
    prompts, seed, steps, guidance, strength and size back in the panel"""

    bl_idname = "t2i.reuse_settings"
    bl_label = "Reuse Settings"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        item = _entry(self, context)
        if item is None:
            return {"CANCELLED"}
        history.reuse_settings(context.scene.t2i, item)
        self.report({"INFO"}, f"Settings of {item.name}")
        return {"FINISHED"}


class T2I_OT_show_result(_HistoryOperator, bpy.types.Operator):
    """Show this result in the Image Editors"""

    bl_idname = "t2i.show_result"
    bl_label = "Show Result"

    def execute(self, context: bpy.types.Context) -> set[str]:
        item = _entry(self, context)
        if item is None or item.image is None:
            if item is not None:
                self.report({"ERROR"}, f"The image of {item.name} was removed")
            return {"CANCELLED"}
        shown = 0
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "IMAGE_EDITOR":
                    area.spaces.active.image = item.image
                    shown += 1
        if not shown:
            self.report({"INFO"}, f"Open an Image Editor to see '{item.image.name}'")
        return {"FINISHED"}


class T2I_OT_reveal_results(_HistoryOperator, bpy.types.Operator):
    """Open the folder holding this result's files (image, depth map, settings)"""

    bl_idname = "t2i.reveal_results"
    bl_label = "Reveal Files"

    def execute(self, context: bpy.types.Context) -> set[str]:
        item = _entry(self, context)
        folder = Path(bpy.path.abspath(item.result_path)).parent if item is not None \
            else results.output_folder(context.scene)
        if item is not None and not folder.is_dir():
            self.report({"ERROR"}, f"{folder} no longer exists (the image is still packed or "
                                   "loaded in this file)")
            return {"CANCELLED"}
        if bpy.app.background:  # no file browser to open
            self.report({"INFO"}, str(folder))
            return {"FINISHED"}
        bpy.ops.wm.path_open(filepath=str(folder))
        return {"FINISHED"}


CLASSES = (T2I_OT_reuse_settings, T2I_OT_show_result, T2I_OT_reveal_results)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
