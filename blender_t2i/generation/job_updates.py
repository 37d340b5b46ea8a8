"""Generate jobs on Blender's side: build one from the scene, and apply what the queue reports
(step previews, results, outputs, history) on the main thread.

`tick()` is the UI's step: the modal operator calls it on its timer (and a `bpy.app.timers`
poller when no modal runs). It never waits on the backend and does a bounded amount of work.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from bpy.app.handlers import persistent

from ..core.job_queue import JobQueue, Update, UpdateKind, get_job_queue, preview_file
from ..results import images as results
from ..results import outputs
from ..scene import history
from ..scene.preferences import apply_device_preferences
from . import scene_job as generation
from .scene_job import PreparedJob

log = logging.getLogger("blender_t2i")

Report = tuple[str, str]  # (level, message) for Operator.report
PREVIEW = {"every": 1, "max_size": 256}
MODAL_HEARTBEAT_S = 1.0  # a modal operator that ticked this recently is driving the queue


@dataclass
class QueuedJob:
    """A prepared job plus what its result should do once it is back."""

    prepared: PreparedJob
    scene_name: str
    targets: frozenset[str]
    objects: tuple[str, ...]  # the meshes selected when the job was started (projection)
    active_object: str
    opacity: float

    @property
    def stem(self) -> str:
        return self.prepared.stem

    @property
    def request(self) -> dict[str, Any]:
        return self.prepared.request


def prepare(context: bpy.types.Context) -> QueuedJob:
    """Capture the depth and build the job from the scene's settings and the preferences.
    Raises CaptureError/ValueError (what the user must fix)."""
    scene = context.scene
    settings = scene.t2i
    if settings.use_random_seed:
        settings.seed = random.randrange(2**31)  # the panel shows the seed this job used
    prepared = generation.prepare_job(scene, results.output_folder(scene))
    results.show_image(results.DEPTH_IMAGE, prepared.control.path)
    apply_device_preferences(prepared.request, context)
    prepared.request["preview"] = dict(PREVIEW)
    selected = getattr(context, "selected_objects", None) or []
    active = getattr(context, "active_object", None)
    return QueuedJob(prepared=prepared, scene_name=scene.name,
                     targets=frozenset(settings.output_targets),
                     objects=tuple(obj.name for obj in selected if obj.type == "MESH"),
                     active_object=active.name if active is not None else "",
                     opacity=settings.overlay_opacity)


class _Driver:
    """Who is stepping the queue: the modal operator's heartbeat, else the app timer."""

    modal_tick = 0.0
    reports: list[Report] = []  # the app timer's reports, shown in the panel


def tick(context: bpy.types.Context | None = None, timeout: float = 0.0,
         from_modal: bool = False) -> list[Report]:
    """One UI step: poll the queue without waiting (unless `timeout`) and apply its updates."""
    if from_modal:
        _Driver.modal_tick = time.monotonic()
    updates = get_job_queue().poll(timeout=timeout)
    reports = apply_updates(context or bpy.context, updates)
    if updates:
        tag_redraw()
    return reports


def apply_updates(context: bpy.types.Context, updates: list[Update]) -> list[Report]:
    reports: list[Report] = []
    last_progress = None
    for update in updates:
        if update.kind == UpdateKind.PROGRESS:
            last_progress = update
        elif update.kind == UpdateKind.RESULT:
            reports += apply_result(context, update)
        elif update.kind == UpdateKind.FAILED:
            reports.append(("ERROR", update.error.report()))
        elif update.kind == UpdateKind.CANCELLED:
            reports.append(("WARNING", f"Cancelled {update.job.stem}"))
    if last_progress is not None:
        _show_preview(last_progress)
    return reports


def _show_preview(update: Update) -> None:
    try:
        path = preview_file(update.event or {}, results.output_folder())
        if path is not None:
            results.show_preview(path)
    except (OSError, RuntimeError) as exc:  # a lost preview is not worth failing the job
        log.warning("step preview not shown: %s", exc)


def apply_result(context: bpy.types.Context, update: Update) -> list[Report]:
    """Record the result, make its image, add it to the history and send it to the outputs
    the job asked for. An output that cannot be made is a warning; the result is kept."""
    job: QueuedJob = update.job
    event = update.event or {}
    scene = bpy.data.scenes.get(job.scene_name) or context.scene
    path = Path(event["paths"][0])
    record = generation.record_result(job.prepared, event, update.start_seconds)
    image = results.result_image(path, job.prepared.preset.name, record["seed"], job.stem)
    results.show_image(results.RESULT_IMAGE, path)
    history.add_entry(scene.t2i, job.stem, record, image, image.filepath,
                      str(job.prepared.folder / f"{job.stem}.json"))
    reports: list[Report] = []
    for target in sorted(job.targets):
        try:
            send_to_output(context, scene, target, image, job.objects, job.active_object,
                           job.opacity)
        except outputs.OutputError as exc:
            reports.append(("WARNING", f"{target.replace('_', ' ').title()}: {exc}"))
    width, height = job.prepared.size
    reports.insert(0, ("INFO", f"Generated '{image.name}' {width}x{height} seed "
                               f"{record['seed']} in {record['timings'].get('total', 0):.1f} s"))
    if job.targets and not bpy.app.background:
        bpy.ops.ed.undo_push(message="T2I result outputs")  # each result's outputs undo alone
    return reports


def send_to_output(context: bpy.types.Context, scene: bpy.types.Scene, target: str,
                   image: bpy.types.Image, object_names: tuple[str, ...], active_name: str,
                   opacity: float) -> str:
    """Apply one output target; returns a line for the report."""
    if target == "CAMERA_BACKGROUND":
        outputs.set_camera_background(scene.camera, image, opacity)
        return f"'{image.name}' is the camera background"
    if target == "COMPOSITOR":
        outputs.add_compositor_overlay(scene, image, opacity)
        return f"'{image.name}' is overlaid in the compositor"
    if target == "PROJECTION":
        objects = [bpy.data.objects[name] for name in object_names if name in bpy.data.objects]
        changed = outputs.project_from_camera(scene, scene.camera, objects, image,
                                              context.evaluated_depsgraph_get())
        return f"'{image.name}' projected onto {', '.join(changed)}"
    if target == "MATERIAL":
        material = outputs.use_as_texture(bpy.data.objects.get(active_name), image)
        return f"'{image.name}' is a texture in '{material.name}'"
    raise ValueError(f"unknown output target {target}")


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
    """Steps the queue when no modal operator does (a backend started from the panel, or a
    modal that a file load ended). Unregisters itself once the queue is idle."""
    jobs: JobQueue = get_job_queue()
    if not modal_is_driving():
        for level, message in tick():
            log.info("%s: %s", level, message)
            _Driver.reports = ([*_Driver.reports, (level, message)])[-5:]
    return 0.1 if jobs.active else None


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
