"""`t2i.generate`: capture depth, run the job on the backend, show the result as "T2I Result".

This version waits for the backend (fine in background mode and batch scripts); the UI's
non-blocking modal variant builds on the same pieces.
"""

from __future__ import annotations

import bpy

from ..blender_t2i import generation, results
from ..blender_t2i.client import BackendFailure, get_client
from ..blender_t2i.preferences import backend_config
from ..compositor.capture import CaptureError


class T2I_OT_generate(bpy.types.Operator):
    """Generate an image from the camera's depth with the chosen model (image "T2I Result")"""

    bl_idname = "t2i.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            job = generation.prepare_job(context.scene, results.output_folder())
            results.show_image(results.DEPTH_IMAGE, job.control.path)
            client = get_client(backend_config(context))
            # the start-up cost belongs to the first job of a fresh backend only
            start_seconds = client.start_seconds if client.jobs_sent == 0 else 0.0
            client.send(job.request)
            result = client.wait_for(job.stem)
        except (CaptureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except BackendFailure as exc:
            self.report({"ERROR"}, exc.report())
            return {"CANCELLED"}
        image = results.show_image(results.RESULT_IMAGE, result["paths"][0])
        record = generation.record_result(job, result, start_seconds)
        width, height = job.size
        self.report({"INFO"}, f"Generated '{image.name}' {width}x{height} seed {record['seed']} "
                              f"in {record['timings'].get('total', 0):.1f} s")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(T2I_OT_generate)


def unregister() -> None:
    bpy.utils.unregister_class(T2I_OT_generate)
