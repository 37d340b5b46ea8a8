"""`t2i.generate`: capture depth, queue the job, and show the result (image "T2I Result" plus a
datablock per result, history and the chosen outputs).

In the UI it is modal: the depth capture happens when the user clicks (it is the scene at that
moment), then a window timer steps the job queue, which never waits on the backend. Esc or
`t2i.cancel_generate` stops the job after its current step. Clicking Generate while a job runs
queues another. In background mode (batch scripts, tests) there is no event loop, so `execute`
waits for the job and returns when it is done, as before.
"""

from __future__ import annotations

import contextlib
import random

import bpy

from ..blender_t2i.generation import queue_driver, scene_job, submit
from ..compositor.capture import CaptureError
from ..t2i_core import job_request
from ..t2i_core.backend_process import BackendFailure
from ..t2i_core.files import os_error_text
from ..t2i_core.job_queue import JobHandle, JobState, get_job_queue

TIMER_INTERVAL_S = 0.05


def _submit(operator: bpy.types.Operator, context: bpy.types.Context) -> JobHandle | None:
    """Prepare and queue a job; None (after reporting why) if it cannot be."""
    try:
        return submit.submit(context)
    except (CaptureError, ValueError, KeyError) as exc:
        operator.report({"ERROR"}, str(exc).strip("'\""))
    except OSError as exc:
        operator.report({"ERROR"}, os_error_text(exc))
    except BackendFailure as exc:
        operator.report({"ERROR"}, exc.report())
    return None


class T2I_OT_generate(bpy.types.Operator):
    """Generate an image from the camera's depth with the chosen model (image "T2I Result").
    While a job runs, this queues another"""

    bl_idname = "t2i.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    _timer = None

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Blocking: background mode and scripts wait on the job's handle."""
        handle = _submit(self, context)
        if handle is None:
            return {"CANCELLED"}
        with contextlib.suppress(BackendFailure):  # its report is among the handle's reports
            handle.wait()
        for level, message in handle.reports:
            self.report({level}, message)
        return {"FINISHED"} if handle.state == JobState.DONE else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        jobs = get_job_queue()
        already_running = jobs.busy and queue_driver.modal_is_driving()
        if _submit(self, context) is None:
            return {"CANCELLED"}
        if already_running:
            self.report({"INFO"}, f"Queued ({len(jobs.pending)} waiting)")
            return {"FINISHED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        wm.modal_handler_add(self)
        queue_driver.tick(from_modal=True)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        jobs = get_job_queue()
        if event.type == "ESC" and event.value == "PRESS" and jobs.busy:
            jobs.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER" or event.timer is not self._timer:
            return {"PASS_THROUGH"}
        failed = False
        for level, message in queue_driver.tick(from_modal=True):
            self.report({level}, message)
            failed = failed or level == "ERROR"
        if jobs.active:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        queue_driver.tag_redraw()
        return {"CANCELLED"} if failed else {"FINISHED"}


class T2I_OT_cancel_generate(bpy.types.Operator):
    """Stop the running job after its current step and drop the waiting ones"""

    bl_idname = "t2i.cancel_generate"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    def execute(self, _context: bpy.types.Context) -> set[str]:
        jobs = get_job_queue()
        if not jobs.busy:
            self.report({"INFO"}, "Nothing to cancel")
            return {"CANCELLED"}
        jobs.cancel()
        queue_driver.ensure_app_timer()  # collects the cancellation if no modal runs
        return {"FINISHED"}


class T2I_OT_randomize_seed(bpy.types.Operator):
    """Pick a new random seed"""

    bl_idname = "t2i.randomize_seed"
    bl_label = "Randomize Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.t2i.seed = random.randrange(2**31)
        return {"FINISHED"}


class T2I_OT_use_trained_size(bpy.types.Operator):
    """Generate at the size the model was trained at, with the render's aspect ratio, instead of
    the render size"""

    bl_idname = "t2i.use_trained_size"
    bl_label = "Use the Model's Size"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            preset, size = scene_job.preset_and_size(context.scene)
        except (KeyError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        advice = job_request.size_advice(size, preset)
        if advice is None:
            self.report({"INFO"}, f"{size[0]} x {size[1]} already suits {preset.label}")
            return {"CANCELLED"}
        settings = context.scene.t2i
        settings.use_render_size = False
        settings.width, settings.height = advice.size
        self.report({"INFO"}, f"Generating at {advice.size[0]} x {advice.size[1]}")
        return {"FINISHED"}


CLASSES = (T2I_OT_generate, T2I_OT_cancel_generate, T2I_OT_randomize_seed,
           T2I_OT_use_trained_size)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
