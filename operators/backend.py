"""Backend operators: start/stop, install a backend environment, check one, open the logs.

Install and check run their commands in a worker thread (backend_install.CommandRun). In the UI
they are modal: a window timer drains the output into the preferences and the status bar, so
pip's progress shows while Blender stays responsive; Esc cancels an install. In background mode
they wait and report, like every other operator here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from ..blender_t2i.generation import queue_driver
from ..blender_t2i.scene.preferences import (
    addon_preferences,
    backend_config,
    managed_venv,
    resolve_backend_python,
    user_path,
)
from ..t2i_core import backend_install
from ..t2i_core.backend_install import CommandRun, SetupRuns
from ..t2i_core.backend_process import BackendFailure
from ..t2i_core.job_queue import Status, get_job_queue

TIMER_INTERVAL_S = 0.1
START_WAIT_S = 300.0


class T2I_OT_backend_start(bpy.types.Operator):
    """Start the backend now, so the first Generate does not wait for it"""

    bl_idname = "t2i.backend_start"
    bl_label = "Start Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        jobs = get_job_queue()
        try:
            jobs.start(backend_config(context))
        except BackendFailure as exc:
            self.report({"ERROR"}, exc.report())
            return {"CANCELLED"}
        if not bpy.app.background:
            queue_driver.ensure_app_timer()  # steps it to "ready" without blocking
            return {"FINISHED"}
        deadline = time.monotonic() + START_WAIT_S
        while jobs.status == Status.STARTING and time.monotonic() < deadline:
            queue_driver.tick(timeout=0.25)
        if jobs.status != Status.READY:
            self.report({"ERROR"}, jobs.message or f"the backend is {jobs.status}")
            return {"CANCELLED"}
        self.report({"INFO"}, "Backend ready")
        return {"FINISHED"}


class T2I_OT_backend_stop(bpy.types.Operator):
    """Cancel any jobs and stop the backend (frees its GPU memory)"""

    bl_idname = "t2i.backend_stop"
    bl_label = "Stop Backend"

    def execute(self, _context: bpy.types.Context) -> set[str]:
        get_job_queue().stop()
        queue_driver.tag_redraw()
        return {"FINISHED"}


class _RunOperator:
    """Shared by install and check: start a CommandRun, then wait (background) or follow it
    from a window timer (UI)."""

    _timer = None
    _run: CommandRun | None = None

    def start_run(self, context: bpy.types.Context) -> CommandRun | None:
        raise NotImplementedError

    def finish(self, run: CommandRun) -> set[str]:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        run = self.start_run(context)
        if run is None:
            return {"CANCELLED"}
        while not run.wait(0.1):
            run.poll()
        return self.finish(run)

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._run = self.start_run(context)
        if self._run is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        run = self._run
        if event.type == "ESC" and event.value == "PRESS":
            run.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER" or event.timer is not self._timer:
            return {"PASS_THROUGH"}
        if run.poll():
            context.workspace.status_text_set(f"T2I {run.title}: {run.tail[-1][:120]}")
            queue_driver.tag_redraw()
        if not run.done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        queue_driver.tag_redraw()
        return self.finish(run)


class T2I_OT_install_backend(_RunOperator, bpy.types.Operator):
    """Create a Python environment in the add-on's user folder and install the backend
    (torch, diffusers) into it. Needs internet unless a wheel folder is set"""

    bl_idname = "t2i.install_backend"
    bl_label = "Install Backend"

    flavour: EnumProperty(name="Torch", items=[("PREFERENCES", "From Preferences", ""),
                                               ("cpu", "CPU", ""), ("cuda", "CUDA", "")],
                          default="PREFERENCES")
    target: StringProperty(name="Environment", subtype="DIR_PATH",
                           description="Where to create it (empty: the add-on's user folder)",
                           options={"SKIP_SAVE"})
    base_python: StringProperty(name="Base Python", subtype="FILE_PATH",
                                description="The Python that creates the environment "
                                            "(empty: Blender's own)", options={"SKIP_SAVE"})

    def start_run(self, context: bpy.types.Context) -> CommandRun | None:
        prefs = addon_preferences(context)
        running = SetupRuns.install
        if running is not None and not running.done:
            self.report({"ERROR"}, "An install is already running")
            return None
        find_links = bpy.path.abspath(prefs.wheel_folder) if prefs.wheel_folder else ""
        if not find_links and not bpy.app.online_access:
            self.report({"ERROR"}, "Installing needs internet: allow Online Access in "
                                   "Preferences > System > Network, or set a wheel folder")
            return None
        if find_links and not os.path.isdir(find_links):
            self.report({"ERROR"}, f"The wheel folder '{find_links}' does not exist")
            return None
        base = bpy.path.abspath(self.base_python) if self.base_python else \
            backend_install.default_base_python()
        if not os.path.isfile(base):
            self.report({"ERROR"}, f"The base Python '{base}' does not exist: set one that "
                                   "can create environments (Python 3.10+)")
            return None
        flavour = prefs.torch_flavour if self.flavour == "PREFERENCES" else self.flavour
        target = Path(bpy.path.abspath(self.target)) if self.target else managed_venv()
        commands = backend_install.install_commands(base, target, flavour, find_links)
        SetupRuns.install = CommandRun(commands, user_path("logs") / "install.log",
                                       f"Install backend ({flavour})").start()
        return SetupRuns.install

    def finish(self, run: CommandRun) -> set[str]:
        ok, message = run.report()
        self.report({"INFO"} if ok else {"ERROR"}, message)
        return {"FINISHED"} if ok else {"CANCELLED"}


class T2I_OT_cancel_install(bpy.types.Operator):
    """Stop the running backend install"""

    bl_idname = "t2i.cancel_install"
    bl_label = "Cancel Install"

    def execute(self, _context: bpy.types.Context) -> set[str]:
        if SetupRuns.install is None or SetupRuns.install.done:
            return {"CANCELLED"}
        SetupRuns.install.cancel()
        return {"FINISHED"}


class T2I_OT_check_backend(_RunOperator, bpy.types.Operator):
    """Check that the backend Python runs and has everything the backend needs"""

    bl_idname = "t2i.check_backend"
    bl_label = "Check Backend"

    def start_run(self, context: bpy.types.Context) -> CommandRun | None:
        python, _source = resolve_backend_python(addon_preferences(context))
        if not python:
            self.report({"ERROR"}, "No backend Python is set: use Install Backend, or set an "
                                   "interpreter with torch in the add-on's preferences")
            return None
        if not os.path.isfile(python) or not os.access(python, os.X_OK):
            self.report({"ERROR"}, f"The backend Python '{python}' does not exist or is not "
                                   "executable: fix the path or use Install Backend")
            return None
        SetupRuns.check_report = None
        SetupRuns.check = CommandRun([backend_install.check_command(python)],
                                     user_path("logs") / "check.log", "Check backend").start()
        self._python = python
        return SetupRuns.check

    def finish(self, run: CommandRun) -> set[str]:
        run.poll(budget_s=0.5)
        report = backend_install.parse_check("\n".join(run.tail), run.returncode or 0,
                                             getattr(self, "_python", ""))
        SetupRuns.check_report = report
        if report.ok:  # ready, though an optional package may be missing (next_step says)
            self.report({"WARNING"} if report.next_step else {"INFO"},
                        f"{report.summary}. {report.next_step}" if report.next_step
                        else report.summary)
            return {"FINISHED"}
        self.report({"ERROR"}, f"{report.summary}. {report.next_step}")
        return {"CANCELLED"}


class T2I_OT_open_log(bpy.types.Operator):
    """Open a log file in the system's text viewer"""

    bl_idname = "t2i.open_log"
    bl_label = "Open Log"

    which: EnumProperty(items=[("backend", "Backend", ""), ("install", "Install", ""),
                               ("check", "Check", "")], default="backend")

    def execute(self, _context: bpy.types.Context) -> set[str]:
        path = user_path("logs") / f"{self.which}.log"
        if not path.exists():
            self.report({"WARNING"}, f"No {self.which} log yet ({path})")
            return {"CANCELLED"}
        if bpy.app.background:  # nothing to open it in
            self.report({"INFO"}, str(path))
            return {"FINISHED"}
        bpy.ops.wm.path_open(filepath=str(path))
        return {"FINISHED"}


class T2I_OT_model_folder_add(bpy.types.Operator):
    """Add a folder to search for models"""

    bl_idname = "t2i.model_folder_add"
    bl_label = "Add Model Folder"

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = addon_preferences(context)
        prefs.model_folders.add()
        prefs.model_folder_index = len(prefs.model_folders) - 1
        return {"FINISHED"}


class T2I_OT_model_folder_remove(bpy.types.Operator):
    """Stop searching the selected model folder"""

    bl_idname = "t2i.model_folder_remove"
    bl_label = "Remove Model Folder"

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = addon_preferences(context)
        if not len(prefs.model_folders):
            return {"CANCELLED"}
        prefs.model_folders.remove(min(prefs.model_folder_index, len(prefs.model_folders) - 1))
        prefs.model_folder_index = max(0, prefs.model_folder_index - 1)
        return {"FINISHED"}


CLASSES = (T2I_OT_backend_start, T2I_OT_backend_stop, T2I_OT_install_backend,
           T2I_OT_cancel_install, T2I_OT_check_backend, T2I_OT_open_log,
           T2I_OT_model_folder_add, T2I_OT_model_folder_remove)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
