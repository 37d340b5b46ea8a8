"""Model library operators: rescan, and the LoRA stack's add and remove."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty

from ..blender_t2i.generation import queue_driver
from ..blender_t2i.scene import library
from ..blender_t2i.scene.preferences import uses_comfyui
from ..t2i_core.backend_process import BackendFailure
from ..t2i_core.files import os_error_text


class T2I_OT_rescan_models(bpy.types.Operator):
    """Look again for checkpoints, ControlNets, LoRAs and VAEs in the Hugging Face cache, the
    model folders and the A1111 / ComfyUI installs set in the preferences (only new or
    changed files are read)"""

    bl_idname = "t2i.rescan_models"
    bl_label = "Rescan Models"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if uses_comfyui(context):
            try:
                library.rescan(context)
            except BackendFailure as exc:
                self.report({"ERROR"}, exc.report())
                return {"CANCELLED"}
            if not bpy.app.background:
                queue_driver.ensure_app_timer()  # the answer is read without blocking
            self.report({"INFO"}, "Asked the ComfyUI server for its models")
            return {"FINISHED"}
        try:
            found = library.rescan(context)
        except OSError as exc:
            self.report({"ERROR"}, os_error_text(exc))
            return {"CANCELLED"}
        for path, why in found.skipped[:5]:
            self.report({"WARNING"}, f"Skipped {path}: {why}")
        more = f" ({len(found.skipped)} skipped, see the panel)" if found.skipped else ""
        self.report({"INFO"}, f"{len(found.entries)} models found{more}")
        return {"FINISHED"}


class _LoraOperator:
    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "t2i")


class T2I_OT_lora_add(_LoraOperator, bpy.types.Operator):
    """Add a LoRA to the stack (pick its file in the new row)"""

    bl_idname = "t2i.lora_add"
    bl_label = "Add LoRA"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.t2i
        settings.loras.add()
        settings.lora_index = len(settings.loras) - 1
        return {"FINISHED"}


class T2I_OT_lora_remove(_LoraOperator, bpy.types.Operator):
    """Remove the LoRA from the stack"""

    bl_idname = "t2i.lora_remove"
    bl_label = "Remove LoRA"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(default=-1, min=-1, description="Which LoRA (-1: the selected one)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.t2i
        index = settings.lora_index if self.index < 0 else self.index
        if not 0 <= index < len(settings.loras):
            self.report({"ERROR"}, "There is no LoRA to remove: add one first")
            return {"CANCELLED"}
        settings.loras.remove(index)
        settings.lora_index = max(0, min(index, len(settings.loras) - 1))
        return {"FINISHED"}


CLASSES = (T2I_OT_rescan_models, T2I_OT_lora_add, T2I_OT_lora_remove)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
