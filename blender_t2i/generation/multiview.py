"""Texture meshes from several cameras, one view after another (StableGen's sequential mode).

The first view is generated from its own depth as any job is. Every later view is generated from
its own depth too, with the scene as the earlier views left it as the init image and a mask
that is white only where no earlier view textured the surface (`t2i_core.projection.
inpaint_mask`): what was seen is kept, the rest is inpainted. After each result the views so far
are projected together, blended by view angle and visibility (results/projection.py); after the
last, the blend is baked into the meshes' UVs when the projection settings ask for it.

The run chains its jobs through the queue's callbacks, so the UI never waits on it: each result
callback (on the main thread) projects and submits the next view. Background mode waits on the
handles in turn.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ...compositor.capture import CaptureError
from ...compositor.scene_state import restoring
from ...t2i_core import exr, png
from ...t2i_core.backend_process import BackendFailure
from ...t2i_core.job_queue import JobHandle, JobState, Report, Update, UpdateKind
from ...t2i_core.job_request import family_info
from ...t2i_core.projection import CameraView, inpaint_mask, orbit
from ..results import images, projection
from . import scene_job, submit

log = logging.getLogger("blender_t2i")

ORBIT_COLLECTION = "T2I Orbit"


class ViewsError(Exception):
    """A multi-view run the user must fix something for."""


def selected_cameras(objects: list[bpy.types.Object]) -> list[bpy.types.Object]:
    return sorted((obj for obj in objects if obj.type == "CAMERA"), key=lambda obj: obj.name)


def orbit_cameras(scene: bpy.types.Scene, meshes: list[bpy.types.Object], count: int,
                  elevation_degrees: float = 20.0) -> list[bpy.types.Object]:
    """`count` cameras evenly round the meshes' bounds, far enough that each frames them all,
    in the collection "T2I Orbit" (made again each time). Lens and sensor follow the scene
    camera's when there is one."""
    if not meshes:
        raise ViewsError("select the meshes to texture")
    corners = np.array([tuple(obj.matrix_world @ Vector(corner))
                        for obj in meshes for corner in obj.bound_box])
    centre = (corners.min(axis=0) + corners.max(axis=0)) / 2
    radius = max(float(np.linalg.norm(corners - centre, axis=1).max()), 1e-3)
    collection = bpy.data.collections.get(ORBIT_COLLECTION)
    if collection is not None:
        for obj in list(collection.objects):
            data = obj.data
            bpy.data.objects.remove(obj)
            if data is not None and data.users == 0:
                bpy.data.cameras.remove(data)
    else:
        collection = bpy.data.collections.new(ORBIT_COLLECTION)
        scene.collection.children.link(collection)
    template = scene.camera.data if scene.camera is not None else None
    cameras = []
    for index in range(count):
        data = template.copy() if template is not None else bpy.data.cameras.new("T2I Orbit")
        data.name = f"T2I Orbit {index + 1}"
        data.type = "PERSP"
        data.shift_x = data.shift_y = 0.0
        fov = min(data.angle_x, data.angle_y)
        distance = radius / math.sin(fov / 2) * 1.05
        data.clip_start = min(data.clip_start, distance / 100)
        data.clip_end = max(data.clip_end, distance + 2 * radius)
        camera = bpy.data.objects.new(f"T2I Orbit {index + 1}", data)
        matrix = orbit(centre, distance, count, elevation_degrees)[index]
        camera.matrix_world = Matrix(matrix.tolist())
        collection.objects.link(camera)
        cameras.append(camera)
    return cameras


@dataclass
class ViewsRun:
    """One multi-view texturing run: which cameras, which meshes, what came back so far."""

    scene_name: str
    cameras: list[str]
    meshes: list[str]
    pictures: list[str] = field(default_factory=list)  # result images, one per view done
    handles: list[JobHandle] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    failed: str = ""

    @property
    def finished(self) -> bool:
        return bool(self.failed) or len(self.pictures) == len(self.cameras)

    @property
    def current(self) -> JobHandle | None:
        return self.handles[-1] if self.handles else None


def start(context: bpy.types.Context, cameras: list[bpy.types.Object],
          meshes: list[bpy.types.Object]) -> ViewsRun:
    """Check what can be checked, then submit the first view. ViewsError/ValueError/
    CaptureError say what to fix."""
    meshes = [obj for obj in meshes if obj.type == "MESH"]
    if not meshes:
        raise ViewsError("select the meshes to texture")
    if not cameras:
        raise ViewsError("select the cameras to generate from, or use an orbit")
    scene = context.scene
    check_model(context, len(cameras))
    for camera in cameras:
        projection.camera_params(camera)  # a panoramic camera is refused before any job
    run = ViewsRun(scene_name=scene.name, cameras=[c.name for c in cameras],
                   meshes=[m.name for m in meshes])
    _submit_view(context, run, 0)
    return run


def check_model(context: bpy.types.Context, count: int) -> None:
    """Views after the first inpaint: refuse a model family that cannot, before anything."""
    family = family_info(scene_job.job_settings(context.scene, context))
    if count > 1 and not family.inpaint:
        raise ViewsError(f"{family.label} cannot inpaint, which views after the first need: "
                         "pick a model family that can (see docs/models.md), or one view")


def wait(run: ViewsRun) -> ViewsRun:
    """Background mode: step the queue until every view is back (or one failed)."""
    while not run.finished and run.current is not None:
        handle = run.current
        try:
            handle.wait()
        except Exception as exc:  # the handle's failure is recorded by the callback too
            run.failed = run.failed or str(exc)
        if handle is run.current and handle.state != JobState.DONE:
            run.failed = run.failed or f"view {len(run.handles)} did not finish"
    return run


def _submit_view(context: bpy.types.Context, run: ViewsRun, index: int) -> None:
    scene = bpy.data.scenes[run.scene_name]
    camera = bpy.data.objects[run.cameras[index]]
    with restoring() as restorer:
        restorer.set(scene, "camera", camera)
        overrides = {}
        if index > 0:
            if scene.render.engine == "BLENDER_WORKBENCH":  # it would not show the views
                restorer.set(scene.render, "engine", "CYCLES")
            _preset, size = scene_job.preset_and_size(scene)
            mask = _mask(scene, run, camera, size, index)
            # the init image is the scene as earlier views textured it; the mask regenerates
            # only what they did not reach, from noise (strength 1)
            overrides = {"use_render": True, "render_strength": 1.0, "mask_image": str(mask)}
        job = submit.prepare(context, **overrides)
    job = replace(job, targets=replace(job.targets, targets=frozenset()))  # views project here
    handle = submit.submit(context, job)
    run.handles.append(handle)
    handle.on_update(lambda h, u: _follow(context, run, index, h, u))


def _mask(scene: bpy.types.Scene, run: ViewsRun, camera: bpy.types.Object,
          size: tuple[int, int], index: int):
    folder = images.output_folder(scene)
    view, path = projection.capture_view(scene, camera, size,
                                         folder / f"views_{index + 1}_depth.exr")
    depth = exr.read_grey_exr(path)
    earlier = []
    for name in run.pictures:
        image = bpy.data.images[name]
        earlier.append((CameraView.from_list(list(image[projection.VIEW_PROP])),
                        exr.read_grey_exr(image[projection.DEPTH_PROP])))
    options = projection.ProjectionOptions.from_scene(scene)
    mask = inpaint_mask(view, depth, earlier, options.occlusion_tolerance,
                        math.degrees(options.fade_start), math.degrees(options.fade_end))
    return png.write_png(folder / f"views_{index + 1}_mask.png", mask)


def _follow(context: bpy.types.Context, run: ViewsRun, index: int, handle: JobHandle,
            update: Update) -> list[Report]:
    """After view `index`'s result (history and image made by submit's own callback): project
    the views so far, then submit the next or bake."""
    if update.kind in (UpdateKind.FAILED, UpdateKind.CANCELLED):
        run.failed = f"view {index + 1} ({run.cameras[index]}) did not finish"
        return [("ERROR", f"Texturing from cameras stopped: {run.failed}")]
    if update.kind != UpdateKind.RESULT:
        return []
    scene = bpy.data.scenes[run.scene_name]
    stem = handle.payload.prepared.stem
    item = next(item for item in scene.t2i.history if item.name == stem)
    run.pictures.append(item.image.name)
    meshes = [bpy.data.objects[name] for name in run.meshes if name in bpy.data.objects]
    pictures = [bpy.data.images[name] for name in run.pictures]
    last = index + 1 == len(run.cameras)
    options = projection.ProjectionOptions.from_scene(scene)
    try:
        projection.project_views(scene, pictures, meshes,
                                 replace(options, use_bake=options.use_bake and last))
        if not last:
            _submit_view(context, run, index + 1)
    except (projection.ProjectionError, CaptureError, ValueError, OSError,
            BackendFailure) as exc:
        run.failed = str(exc)
        return [("ERROR", f"Texturing from cameras stopped after view {index + 1}: {exc}")]
    if not bpy.app.background:
        bpy.ops.ed.undo_push(message=f"T2I view {index + 1}")  # each view undoes alone
    if last:
        return [("INFO", f"Textured {', '.join(run.meshes)} from {len(run.cameras)} views")]
    return [("INFO", f"View {index + 1} of {len(run.cameras)} projected")]
