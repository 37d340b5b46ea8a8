"""`t2i.generate`: capture depth, run the job on the backend, show the result as "T2I Result".

This version waits for the backend (fine in background mode and batch scripts); the UI's
non-blocking modal variant builds on the same pieces.
"""

from __future__ import annotations

import json

import bpy

from ..blender_t2i import jobs, results
from ..blender_t2i.client import BackendFailure, get_client
from ..blender_t2i.depth_control import make_control_image
from ..blender_t2i.png import write_bytes_atomic
from ..blender_t2i.preferences import backend_config
from ..compositor.capture import CaptureError
from .common import preset_and_size


class T2I_OT_generate(bpy.types.Operator):
    """Generate an image from the camera's depth with the chosen model (image "T2I Result")"""

    bl_idname = "t2i.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        settings = scene.t2i
        try:
            preset, size = preset_and_size(scene)
            folder = results.output_folder()
            stem = jobs.new_job_stem(preset, settings.seed)
            control = make_control_image(scene, size, folder, stem)
            results.show_image(results.DEPTH_IMAGE, control.path)
            request = jobs.generate_request(
                stem, preset, settings.prompt, settings.negative_prompt, settings.seed,
                settings.steps, settings.guidance, settings.control_strength, size,
                str(control.path), str(folder))
            client = get_client(backend_config(context))
            # the start-up cost belongs to the first job of a fresh backend only
            start_seconds = client.start_seconds if client.jobs_sent == 0 else 0.0
            client.send(request)
            result = client.wait_for(stem)
        except (CaptureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except BackendFailure as exc:
            self.report({"ERROR"}, exc.report())
            return {"CANCELLED"}
        image = results.show_image(results.RESULT_IMAGE, result["paths"][0])
        timings = {"capture": round(control.seconds, 4), "backend_start": round(start_seconds, 4),
                   **result.get("timings", {})}
        record = {"model": preset.name, "model_spec": preset.model_spec(), "seed": result["seed"],
                  "prompt": settings.prompt, "negative_prompt": settings.negative_prompt,
                  "steps": settings.steps, "guidance": settings.guidance,
                  "control_strength": settings.control_strength, "size": list(size),
                  "depth_range": [control.depth_range.near, control.depth_range.far],
                  "depth": str(control.path), "result": result["paths"][0],
                  "timings": timings}
        write_bytes_atomic(folder / f"{stem}.json", json.dumps(record, indent=2).encode())
        self.report({"INFO"}, f"Generated '{image.name}' {size[0]}x{size[1]} seed "
                              f"{result['seed']} in {timings.get('total', 0):.1f} s")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(T2I_OT_generate)


def unregister() -> None:
    bpy.utils.unregister_class(T2I_OT_generate)
