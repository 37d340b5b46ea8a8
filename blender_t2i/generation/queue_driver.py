"""Who steps the job queue in Blender's UI: the modal generate operator's timer, else an app
timer (a backend started from the panel, or a modal that a file load ended). Each step polls
without waiting and does a bounded amount of work; the updates' reports come back to the
caller (the modal operator reports them; the app timer logs them and the panel shows them).
"""

from __future__ import annotations

import logging
import time

import bpy
from bpy.app.handlers import persistent

from ...t2i_core.job_queue import Report, get_job_queue

log = logging.getLogger("blender_t2i")

MODAL_HEARTBEAT_S = 1.0  # a modal operator that ticked this recently is driving the queue


class _Driver:
    modal_tick = 0.0
    reports: list[Report] = []  # the app timer's reports, shown in the panel


def tick(timeout: float = 0.0, from_modal: bool = False) -> list[Report]:
    """One UI step: poll the queue (waiting at most `timeout`) and return what its updates
    reported."""
    if from_modal:
        _Driver.modal_tick = time.monotonic()
    updates = get_job_queue().poll(timeout=timeout)
    if updates:
        tag_redraw()
    return [report for update in updates for report in update.reports]


def tag_redraw() -> None:
    """Redraw what shows the queue: the sidebar, Image Editors (previews), the status bar."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR", "STATUSBAR", "PREFERENCES"}:
                area.tag_redraw()


def modal_is_driving() -> bool:
    return time.monotonic() - _Driver.modal_tick < MODAL_HEARTBEAT_S


def _app_timer() -> float | None:
    """Steps the queue when no modal operator does; unregisters itself once it is idle."""
    if not modal_is_driving():
        try:
            reports = tick()
        except Exception:  # a timer that raises is unregistered: keep draining
            log.exception("a step of the job queue failed")
            reports = [("ERROR", "A step of the T2I job queue failed: see the system console")]
        for level, message in reports:
            log.info("%s: %s", level, message)
            _Driver.reports = [*_Driver.reports, (level, message)][-5:]
    return 0.1 if get_job_queue().active else None


def ensure_app_timer() -> None:
    if not bpy.app.background and not bpy.app.timers.is_registered(_app_timer):
        bpy.app.timers.register(_app_timer, first_interval=0.1)


def recent_reports() -> list[Report]:
    return list(_Driver.reports)


@persistent
def _cancel_on_load(_file: str) -> None:
    """Jobs belong to the file they were started in: loading another cancels them."""
    get_job_queue().cancel()


def register() -> None:
    bpy.app.handlers.load_pre.append(_cancel_on_load)


def unregister() -> None:
    if _cancel_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_on_load)
    if bpy.app.timers.is_registered(_app_timer):
        bpy.app.timers.unregister(_app_timer)
