"""One frame of an animation in temporal mode: the previous frame's result carried into this one.

Per frame there is one render (compositor/motion_capture.capture_motion): depth and motion
vectors, plus the colour render when Use Render is on. Its depth becomes the control image
(no second depth capture); unless the frame is a keyframe, the previous result is warped along
the vectors (t2i_core/motion.py), the occlusion mask marks what cannot be carried, and the job
takes the warped picture (t2i_core/temporal_frame.py says how each family takes it). The request
is built by scene_job.prepare_job like every other job's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import bpy

from ...compositor.capture import DepthCapture
from ...compositor.motion_capture import capture_motion
from ...t2i_core import job_request, png, temporal_frame
from ...t2i_core.job_request import JobSettings
from ...t2i_core.motion import (
    MotionFrame,
    flow_to_previous,
    load_motion,
    motion_path,
    occlusion_mask,
    save_motion,
    warp_previous,
)
from ...t2i_core.temporal_frame import INPAINT, TemporalOptions
from . import scene_job
from .depth_control import ControlImage, DepthOptions, check_capture, control_from_capture
from .render_hooks import own_renders


@dataclass(frozen=True)
class CarriedFrame:
    """What a finished frame hands to the next: its motion capture and its result."""

    motion: MotionFrame
    result: Path


def check_temporal(settings: JobSettings, options: TemporalOptions) -> str:
    """ValueError when the job's family or the options cannot run temporal mode; else how
    the family takes the carried frame (temporal_frame.INPAINT or REFERENCE)."""
    options.check()
    return temporal_frame.temporal_kind(job_request.family_info(settings))


def capture_frame(scene: bpy.types.Scene, frame: int, size: tuple[int, int], folder: Path,
                  colour: bool) -> MotionFrame:
    """The frame's one render (depth, vectors, the colour render when asked) at the
    generation size, saved as its .npz in `folder` (resume and the bench reuse it)."""
    scene.frame_set(frame)
    with own_renders():
        motion = capture_motion(scene, frame, size[0], size[1], folder, colour=colour)
    save_motion(motion, folder)
    return motion


def saved_motion(folder: Path, frame: int) -> MotionFrame | None:
    """The frame's capture saved in `folder`, or None when there is none (or it is broken)."""
    path = motion_path(folder, frame)
    if not path.is_file():
        return None
    try:
        return load_motion(path)
    except ValueError:
        return None


def control_from_motion(scene: bpy.types.Scene, motion: MotionFrame, folder: Path, stem: str,
                        options: DepthOptions) -> ControlImage:
    """The control image from the motion render's depth (refused like a depth capture's)."""
    camera = scene.camera
    depth = DepthCapture(z=motion.depth, background=motion.background,
                         clip_start=camera.data.clip_start, clip_end=camera.data.clip_end,
                         camera=camera.name, path="MOTION", engine="vector pass")
    check_capture(scene, depth)
    return control_from_capture(depth, folder, stem, options)


def prepare_frame(scene: bpy.types.Scene, folder: Path, settings: JobSettings, stem: str,
                  index: int, motion: MotionFrame, previous: CarriedFrame | None,
                  options: TemporalOptions,
                  depth_options: DepthOptions) -> scene_job.PreparedJob:
    """The job of the shot's `index`-th frame (0 = first): fresh on a keyframe or without a
    previous frame, else carrying `previous` into it. Its record's `temporal` says which."""
    kind = check_temporal(settings, options)
    control = control_from_motion(scene, motion, folder, stem, depth_options)
    colour = motion.colour if settings.use_render else None
    if previous is None or temporal_frame.is_keyframe(index, options.keyframe_every):
        job = scene_job.prepare_job(scene, folder, settings, stem, depth_options,
                                    control=control, init_image=colour)
        info: dict = {"keyframe": True, "carried_from": None}
    else:
        flow = flow_to_previous(motion, previous.motion)
        warped = warp_previous(png.read_png(previous.result), flow, settings.size)
        occluded = occlusion_mask(motion, previous.motion, options.threshold_px,
                                  options.mask_dilate, settings.size)
        fill = png.read_png(colour) if colour is not None else None
        init, mask = temporal_frame.init_and_mask(warped, occluded, options.carry, fill)
        carried = png.write_png(folder / f"{stem}_carried.png", init)
        if kind == INPAINT:
            mask_path = png.write_png(folder / f"{stem}_mask.png", mask)
            inpaint = settings.but(use_render=True, mask_image=str(mask_path),
                                   render_strength=1.0)  # the white part from noise
            job = scene_job.prepare_job(scene, folder, inpaint, stem, depth_options,
                                        control=control, init_image=carried)
        else:  # an edit family: the carried frame is its first picture
            references = [carried, *([colour] if colour is not None else []), control.path]
            job = scene_job.prepare_job(scene, folder, settings, stem, depth_options,
                                        control=control, init_image=colour,
                                        reference_images=references)
        info = {"keyframe": False, "carried_from": previous.motion.frame,
                "occluded": round(float(occluded.mean()), 6)}
    job.record = replace(job.record, temporal={"frame": motion.frame, **info,
                                                **options.to_dict()})
    return job


def job_files(job: scene_job.PreparedJob) -> list[Path]:
    """The files a temporal frame made besides the result, its depth and its record: the
    carried picture, the mask, the colour render and the motion capture."""
    request = job.request
    files = [Path(request[key]) for key in ("init_image", "mask_image") if key in request]
    files += [Path(p) for p in request.get("reference_images", ())]
    motion = motion_path(job.folder, int(job.record.temporal.get("frame", -1)))
    if motion.is_file():
        files.append(motion)
    unique: list[Path] = []
    for path in files:
        if path not in unique:
            unique.append(path)
    return unique
