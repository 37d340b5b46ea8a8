"""An animation generated from the panel: the scene's frame range as an image sequence, one
frame after another (in temporal mode each carries the previous one's result), stepped by the
`t2i.generate_animation` operator without ever waiting on the backend.

`AnimationRun.step` does one bounded piece of work: if the current frame's job is done, it
takes its result and moves on; then, if no job is running, it captures and submits the next
frame (the capture is one render, as a Generate click's). Results go through
submit.apply_result like every panel job: an image datablock, the history, the sequence's
PNG files in their own folder of the output folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import bpy

from ...t2i_core.job_queue import JobHandle, JobState
from ...t2i_core.job_request import PREVIEW_DEFAULT, JobSettings
from ...t2i_core.motion import MotionFrame
from ...t2i_core.temporal_frame import TemporalOptions
from ..results import images
from . import scene_job, submit, temporal
from .depth_control import DepthOptions


@dataclass
class AnimationRun:
    scene_name: str
    frames: list[int]
    folder: Path  # the image sequence: frame_####.png and each frame's files
    settings: JobSettings
    depth: DepthOptions
    temporal: TemporalOptions | None  # None: every frame on its own
    return_frame: int
    index: int = 0
    handle: JobHandle | None = None
    motion: MotionFrame | None = None
    previous: temporal.CarriedFrame | None = None
    results: list[Path] = field(default_factory=list)
    failed: str = ""
    cancelled: bool = False

    @property
    def finished(self) -> bool:
        return self.failed != "" or self.cancelled or self.index >= len(self.frames)

    def step(self, context: bpy.types.Context) -> bool:
        """One step; True once the run is over (all frames done, failed or cancelled).
        Raises what a frame's preparation raises (CaptureError, ValueError): the run is
        then over too."""
        if self.handle is not None:
            if not self.handle.done:
                return False
            self._take(self.handle)
            self.handle = None
        if self.finished:
            self._end(context)
            return True
        try:
            self._submit_next(context)
        except Exception:
            self.failed = "stopped"
            self._end(context)
            raise
        return False

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None and not self.handle.done:
            self.handle.cancel()

    def _take(self, handle: JobHandle) -> None:
        if handle.state != JobState.DONE or handle.result is None:
            if handle.state == JobState.CANCELLED:
                self.cancelled = True
            else:
                self.failed = handle.error.report() if handle.error else "the job failed"
            return
        result = Path(handle.result["paths"][0])
        self.results.append(result)
        if self.motion is not None:
            self.previous = temporal.CarriedFrame(self.motion, result)
        self.index += 1

    def _submit_next(self, context: bpy.types.Context) -> None:
        scene = bpy.data.scenes[self.scene_name]
        frame = self.frames[self.index]
        stem = f"frame_{frame:04d}"
        scene.frame_set(frame)
        if self.temporal is not None:
            self.motion = temporal.capture_frame(scene, frame, self.settings.size, self.folder,
                                                 self.settings.use_render)
            job = temporal.prepare_frame(scene, self.folder, self.settings, stem, self.index,
                                         self.motion, self.previous, self.temporal,
                                         self.depth)
        else:
            job = scene_job.prepare_job(scene, self.folder, self.settings, stem, self.depth,
                                        context=context)
        targets = replace(submit.ResultTargets.from_context(context, job.size),
                          targets=frozenset())  # per-frame outputs would flash by
        self.handle = submit.submit(context, submit.BlenderJob(job, targets))

    def _end(self, context: bpy.types.Context) -> None:
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is not None and scene.frame_current != self.return_frame:
            scene.frame_set(self.return_frame)


def start(context: bpy.types.Context) -> AnimationRun:
    """An animation run over the scene's frame range with the panel's settings; ValueError
    says what to fix (no camera, a family temporal mode cannot run, a frame step)."""
    scene = context.scene
    if scene.camera is None:
        raise ValueError("the scene has no active camera: set one (Scene > Camera)")
    if scene.frame_end < scene.frame_start:
        raise ValueError("the scene's frame range is empty: set its Start and End")
    use_temporal = scene.t2i.temporal.enabled
    if use_temporal and scene.frame_step != 1:
        raise ValueError(f"temporal mode needs every frame (the motion vectors reach only "
                         f"the next one): set the scene's frame step {scene.frame_step} to 1, "
                         f"or turn Temporal off")
    settings = scene_job.job_settings(scene, context, preview=dict(PREVIEW_DEFAULT))
    options = scene.t2i.temporal.options() if use_temporal else None
    if options is not None:
        temporal.check_temporal(settings, options)
    folder = images.output_folder(scene) / time.strftime("anim-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    frames = list(range(scene.frame_start, scene.frame_end + 1, scene.frame_step))
    return AnimationRun(scene_name=scene.name, frames=frames, folder=folder, settings=settings,
                        depth=DepthOptions.from_scene(scene), temporal=options,
                        return_frame=scene.frame_current)
