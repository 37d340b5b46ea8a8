"""`t2i.generate_views`: texture the selected meshes from several cameras (the selected
cameras, or an orbit the operator makes round the meshes), one view after another, each
inpainting what the earlier ones did not see (blender_t2i/generation/multiview.py).

In the UI the run goes on through the queue's callbacks (the app timer steps the queue; the
panel shows progress). In background mode `execute` waits for every view.
"""

from __future__ import annotations

import bpy

from ..blender_t2i.generation import multiview, queue_driver
from ..blender_t2i.results.projection import ProjectionError
from ..compositor.capture import CaptureError
from ..t2i_core.backend_process import BackendFailure
from ..t2i_core.files import os_error_text


class T2I_OT_generate_views(bpy.types.Operator):
    """Generate from several cameras and blend their projections into one texture on the
    selected meshes (later views inpaint only what earlier ones did not see)"""

    bl_idname = "t2i.generate_views"
    bl_label = "Generate from Cameras"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.t2i.projection
        selected = list(getattr(context, "selected_objects", None) or [])
        meshes = [obj for obj in selected if obj.type == "MESH"]
        try:
            if settings.views_source == "ORBIT":
                multiview.check_model(context, settings.orbit_count)  # before making cameras
                cameras = multiview.orbit_cameras(context.scene, meshes, settings.orbit_count,
                                                  settings.orbit_elevation)
            else:
                cameras = multiview.selected_cameras(selected)
            run = multiview.start(context, cameras, meshes)
        except (multiview.ViewsError, ProjectionError, CaptureError, ValueError,
                KeyError) as exc:
            self.report({"ERROR"}, str(exc).strip("'\""))
            return {"CANCELLED"}
        except OSError as exc:
            self.report({"ERROR"}, os_error_text(exc))
            return {"CANCELLED"}
        except BackendFailure as exc:
            self.report({"ERROR"}, exc.report())
            return {"CANCELLED"}
        if not bpy.app.background and context.window is not None:
            queue_driver.ensure_app_timer()
            self.report({"INFO"}, f"Generating {len(cameras)} views for "
                                  f"{', '.join(run.meshes)}")
            return {"FINISHED"}
        multiview.wait(run)
        for handle in run.handles:
            for level, message in handle.reports:
                self.report({level}, message)
        if run.failed:
            self.report({"ERROR"}, run.failed)
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (T2I_OT_generate_views,)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
