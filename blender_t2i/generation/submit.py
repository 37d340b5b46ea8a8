"""Generate jobs started in Blender (the panel's Generate, the operator in background mode, the
render handler): prepare one from the scene, submit it to the queue, and apply what comes back
(step previews, the result image, history, outputs) on the main thread, as the queue reports it.

The JobHandle `submit` returns is what callers follow: the modal operator through the queue
driver's timer, background mode with `handle.wait()`. Either way `apply_update` runs inside
`JobQueue.poll`, on Blender's main thread.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from ...t2i_core.job_queue import JobHandle, Report, Update, UpdateKind, get_job_queue
from ...t2i_core.job_request import PREVIEW_DEFAULT
from ...t2i_core.projection import CameraView
from ..results import images, outputs, projection
from ..scene import history
from ..scene.preferences import backend_config
from . import scene_job
from .scene_job import PreparedJob

log = logging.getLogger("blender_t2i")


@dataclass(frozen=True)
class ResultTargets:
    """Where a result goes once it is back, as the scene and selection were at the click."""

    scene_name: str
    targets: frozenset[str]
    objects: tuple[str, ...]  # the meshes selected when the job was started (projection)
    active_object: str
    opacity: float
    view: CameraView | None = None  # the camera's view the depth was captured from

    @classmethod
    def from_context(cls, context: bpy.types.Context,
                     size: tuple[int, int] | None = None) -> ResultTargets:
        settings = context.scene.t2i
        selected = getattr(context, "selected_objects", None) or []
        active = getattr(context, "active_object", None)
        view = None
        if size is not None and settings.depth.capture_path != "VIEWPORT":
            try:
                view = projection.camera_view(context.scene.camera, size)
            except projection.ProjectionError:  # no projection for this one, nothing else
                view = None
        return cls(scene_name=context.scene.name, targets=frozenset(settings.output_targets),
                   objects=tuple(obj.name for obj in selected if obj.type == "MESH"),
                   active_object=active.name if active is not None else "",
                   opacity=settings.overlay_opacity, view=view)


@dataclass(frozen=True)
class BlenderJob:
    """A handle's payload for jobs started in Blender."""

    prepared: PreparedJob
    targets: ResultTargets


def prepare(context: bpy.types.Context, **overrides: Any) -> BlenderJob:
    """Capture the depth (the scene as it is at the click) and build the job from the scene's
    settings and the preferences, with `overrides` (JobSettings fields) last. Raises
    CaptureError/ValueError: what the user must fix."""
    scene = context.scene
    if scene.t2i.use_random_seed:
        scene.t2i.seed = random.randrange(2**31)  # the panel shows the seed this job used
    settings = scene_job.job_settings(scene, context, preview=dict(PREVIEW_DEFAULT), **overrides)
    prepared = scene_job.prepare_job(scene, images.output_folder(scene), settings,
                                     context=context)
    images.show_image(images.DEPTH_IMAGE, prepared.control.path)
    return BlenderJob(prepared, ResultTargets.from_context(context, prepared.size))


def submit(context: bpy.types.Context, job: BlenderJob | None = None) -> JobHandle:
    """Queue a job (`prepare`d now unless given) with apply_update following it. Raises
    what `prepare` raises, or BackendFailure when no backend can be launched."""
    job = job or prepare(context)
    handle = get_job_queue().submit(job.prepared.request, backend_config(context), job)
    handle.on_update(apply_update)
    return handle


def apply_update(handle: JobHandle, update: Update) -> list[Report]:
    """What a job's update does in Blender; returns the lines to report."""
    if update.kind == UpdateKind.PROGRESS:
        _show_preview(handle.preview)
        return []
    if update.kind == UpdateKind.RESULT:
        return apply_result(bpy.context, handle)
    if update.kind == UpdateKind.FAILED:
        assert update.error is not None
        return [("ERROR", update.error.report())]
    if update.kind == UpdateKind.CANCELLED:
        return [("WARNING", f"Cancelled {handle.id}")]
    return []


def _show_preview(path: Path | None) -> None:
    if path is None:
        return
    try:
        images.show_preview(path)
    except (OSError, RuntimeError) as exc:  # a lost preview is not worth failing the job
        log.warning("step preview not shown: %s", exc)


def apply_result(context: bpy.types.Context, handle: JobHandle) -> list[Report]:
    """Record the result, make its image, add it to the history and send it to the outputs
    the job asked for. An output that cannot be made is a warning; the result is kept."""
    job: BlenderJob = handle.payload
    prepared, where = job.prepared, job.targets
    assert handle.result is not None
    scene = bpy.data.scenes.get(where.scene_name) or context.scene
    record = scene_job.record_result(prepared, handle.result, handle.start_seconds)
    path = Path(record.result)
    image = images.result_image(path, prepared.preset.name, record.seed, prepared.stem)
    if where.view is not None:  # projecting it later uses the view and depth it came from
        projection.remember_view(image, where.view, prepared.control.path_exr)
    images.show_image(images.RESULT_IMAGE, path)
    history.add_entry(scene.t2i, prepared.stem, record, image, image.filepath,
                      str(prepared.folder / f"{prepared.stem}.json"))
    reports: list[Report] = []
    for target in sorted(where.targets):
        try:
            outputs.send_to_output(context, scene, target, image, where.objects,
                                   where.active_object, where.opacity)
        except outputs.OutputError as exc:
            reports.append(("WARNING", f"{target.replace('_', ' ').title()}: {exc}"))
    width, height = prepared.size
    reports.insert(0, ("INFO", f"Generated '{image.name}' {width}x{height} seed "
                               f"{record.seed} in {record.timings.get('total', 0):.1f} s"))
    if where.targets and not bpy.app.background:
        bpy.ops.ed.undo_push(message="T2I result outputs")  # each result's outputs undo alone
    return reports
