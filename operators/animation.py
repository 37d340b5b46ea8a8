"""`t2i.generate_animation`: the scene's frame range as an image sequence (temporal mode when
the panel's Temporal is on). Modal in the UI: a window timer steps the queue and the run
(blender_t2i/generation/animation.py), so Blender stays responsive; Esc or
`t2i.cancel_generate` stops it after the current frame's step. In background mode `execute`
runs the frames one after another and returns when they are done."""

from __future__ import annotations

import contextlib

import bpy

from ..blender_t2i.generation import animation, queue_driver
from ..compositor.capture import CaptureError
from ..t2i_core.backend_process import BackendFailure
from ..t2i_core.files import os_error_text
from ..t2i_core.job_queue import get_job_queue

TIMER_INTERVAL_S = 0.05


def _step(operator: bpy.types.Operator, run: animation.AnimationRun,
          context: bpy.types.Context) -> bool:
    """One step of the run; True when it is over (a problem is reported, not raised)."""
    try:
        return run.step(context)
    except (CaptureError, ValueError, KeyError) as exc:
        operator.report({"ERROR"}, f"frame {run.frames[run.index]}: {str(exc).strip(chr(39))}")
    except OSError as exc:
        operator.report({"ERROR"}, os_error_text(exc))
    except BackendFailure as exc:
        operator.report({"ERROR"}, exc.report())
    return True


def _finish(operator: bpy.types.Operator, run: animation.AnimationRun) -> set[str]:
    if run.failed and run.failed != "stopped":
        operator.report({"ERROR"}, f"Animation stopped at frame {run.frames[run.index]}: "
                                   f"{run.failed}")
    elif run.cancelled:
        operator.report({"WARNING"}, f"Animation cancelled after {len(run.results)} of "
                                     f"{len(run.frames)} frames ({run.folder})")
    if run.index >= len(run.frames):
        operator.report({"INFO"}, f"Generated {len(run.results)} frames into {run.folder}")
        return {"FINISHED"}
    return {"CANCELLED"}


class T2I_OT_generate_animation(bpy.types.Operator):
    """Generate every frame of the scene's frame range as an image sequence in the output
    folder; with Temporal on, each frame carries the previous one along the motion vectors"""

    bl_idname = "t2i.generate_animation"
    bl_label = "Generate Animation"
    bl_options = {"REGISTER"}

    _timer = None
    _run: animation.AnimationRun | None = None

    def _start(self, context: bpy.types.Context) -> animation.AnimationRun | None:
        if get_job_queue().busy:
            self.report({"ERROR"}, "A job is running: wait for it or cancel it first")
            return None
        try:
            return animation.start(context)
        except (ValueError, KeyError) as exc:
            self.report({"ERROR"}, str(exc).strip("'\""))
        except OSError as exc:
            self.report({"ERROR"}, os_error_text(exc))
        return None

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Blocking: background mode and scripts wait on each frame's job."""
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        while not _step(self, run, context):
            if run.handle is not None:
                with contextlib.suppress(BackendFailure):  # the handle keeps the failure
                    run.handle.wait()
        return _finish(self, run)

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        self._run = run
        if _step(self, run, context):
            return _finish(self, run)
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        run = self._run
        assert run is not None
        if event.type == "ESC" and event.value == "PRESS":
            run.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER" or event.timer is not self._timer:
            return {"PASS_THROUGH"}
        for level, message in queue_driver.tick(from_modal=True):
            if level != "INFO":  # each frame's "Generated ..." would flood the status bar
                self.report({level}, message)
        if not _step(self, run, context):
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        queue_driver.tag_redraw()
        return _finish(self, run)


CLASSES = (T2I_OT_generate_animation,)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
