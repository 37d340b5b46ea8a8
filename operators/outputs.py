"""Send a result from the history to an output: camera background, compositor overlay,
projection from the camera onto the selected meshes (and its bake into their UVs), texture in
the active material.

All are undoable (REGISTER, UNDO): the changes are ordinary data edits that Blender's undo
restores: the projection's nodes in the user's materials, a bake's UV map and image included.
"""

from __future__ import annotations

import bpy
from bpy.props import IntProperty

from ..blender_t2i.results import projection
from ..blender_t2i.results.outputs import OutputError, send_to_output
from ..blender_t2i.scene import history
from ..compositor import overlay


def history_image(context: bpy.types.Context, index: int) -> bpy.types.Image:
    """The image of history entry `index` (-1: the selected entry)."""
    try:
        item = history.entry(context.scene.t2i, index)
    except LookupError as exc:
        raise OutputError(str(exc).strip("'\"")) from None
    if item.image is None:
        raise OutputError(f"the image of '{item.name}' was removed")
    return item.image


class _ApplyResult:
    bl_options = {"REGISTER", "UNDO"}
    target = ""

    index: IntProperty(name="History Entry", default=-1, min=-1,
                       description="Which result (-1: the selected history entry)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "t2i")

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        try:
            image = history_image(context, self.index)
            selected = getattr(context, "selected_objects", None) or []
            active = getattr(context, "active_object", None)
            message = send_to_output(
                context, scene, self.target, image, tuple(obj.name for obj in selected),
                active.name if active is not None else "", scene.t2i.overlay_opacity)
        except OutputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class T2I_OT_result_to_camera_background(_ApplyResult, bpy.types.Operator):
    """Show the result as the active camera's background image, lined up with the camera view"""

    bl_idname = "t2i.result_to_camera_background"
    bl_label = "Result as Camera Background"
    target = "CAMERA_BACKGROUND"


class T2I_OT_result_to_compositor(_ApplyResult, bpy.types.Operator):
    """Mix the result over the render in the compositor (your nodes are kept)"""

    bl_idname = "t2i.result_to_compositor"
    bl_label = "Result as Compositor Overlay"
    target = "COMPOSITOR"


class T2I_OT_project_result(_ApplyResult, bpy.types.Operator):
    """Project the result from the camera it was generated from onto the selected meshes,
    per pixel and mixed over their own materials (only where the camera saw them)"""

    bl_idname = "t2i.project_result"
    bl_label = "Project Result from Camera"
    target = "PROJECTION"


class T2I_OT_result_to_material(_ApplyResult, bpy.types.Operator):
    """Use the result as an image texture in the active object's material"""

    bl_idname = "t2i.result_to_material"
    bl_label = "Use Result as Texture"
    target = "MATERIAL"


def _selected(context: bpy.types.Context) -> list[bpy.types.Object]:
    return list(getattr(context, "selected_objects", None) or [])


class T2I_OT_bake_projection(bpy.types.Operator):
    """Bake the projection on the selected meshes into their UVs (a new UV map and image for
    meshes without UVs), so the texture travels with the mesh"""

    bl_idname = "t2i.bake_projection"
    bl_label = "Bake Projection"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            baked = projection.bake(context.scene, _selected(context))
        except projection.ProjectionError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Baked {', '.join(image.name for image in baked)}")
        return {"FINISHED"}


class T2I_OT_remove_projection(bpy.types.Operator):
    """Take the T2I projection (or its bake) out of the selected meshes' materials and
    reconnect their own shaders"""

    bl_idname = "t2i.remove_projection"
    bl_label = "Remove Projection"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            changed = projection.remove_projection(_selected(context))
        except projection.ProjectionError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not changed:
            self.report({"INFO"}, "The selected meshes have no T2I projection")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Removed the projection from {', '.join(changed)}")
        return {"FINISHED"}


class T2I_OT_remove_compositor_overlay(bpy.types.Operator):
    """Take the T2I overlay out of the compositor and reconnect what it covered"""

    bl_idname = "t2i.remove_compositor_overlay"
    bl_label = "Remove Compositor Overlay"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not overlay.remove_compositor_overlay(context.scene):
            self.report({"INFO"}, "There is no T2I overlay in the compositor")
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (T2I_OT_result_to_camera_background, T2I_OT_result_to_compositor,
           T2I_OT_project_result, T2I_OT_bake_projection, T2I_OT_remove_projection,
           T2I_OT_result_to_material, T2I_OT_remove_compositor_overlay)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
