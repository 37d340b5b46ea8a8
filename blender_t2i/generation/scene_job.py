"""One generate job from the scene's point of view: settings, prepare (capture + request),
record the result.

The UI operator, the batch runner and the render handler all go through here, so a job's
settings, files, request and record are the same whichever way it was started:

    settings = job_settings(scene, ...overrides)   # scene + preferences + overrides
    job = prepare_job(scene, folder, settings)     # capture, then build_request (validates)
    handle = get_job_queue().submit(job.request, backend_config(context), payload=...)
    record_result(job, handle.wait())              # sidecar JSON; history and PNG text agree
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from ...t2i_core import job_request
from ...t2i_core.files import write_bytes_atomic
from ...t2i_core.job_record import JobRecord, addon_png_text
from ...t2i_core.job_request import JobSettings
from ...t2i_core.presets import Preset, get_preset
from ...t2i_core.protocol import parse_generate, size_error
from ..scene import model_picks
from ..scene.preferences import addon_preferences, uses_comfyui
from .colour_render import render_colour
from .depth_control import ControlImage, DepthOptions, make_control_image


@dataclass
class PreparedJob:
    stem: str  # also the job id and the result's file stem
    settings: JobSettings
    control: ControlImage
    request: dict[str, Any]
    record: JobRecord  # the settings as sent; `record_result` adds the outcome
    folder: Path

    @property
    def preset(self) -> Preset:
        return self.settings.preset

    @property
    def size(self) -> tuple[int, int]:
        return self.settings.size


def preset_and_size(scene: bpy.types.Scene) -> tuple[Preset, tuple[int, int]]:
    """The chosen preset and the generation size; ValueError says what to fix."""
    settings = scene.t2i
    preset = get_preset(settings.model_preset)
    render = scene.render
    size = job_request.job_size(render.resolution_x, render.resolution_y,
                                render.resolution_percentage, settings.use_render_size,
                                settings.width, settings.height, preset)
    return preset, size


def job_settings(scene: bpy.types.Scene, context: bpy.types.Context | None = None,
                 **overrides: Any) -> JobSettings:
    """The scene's T2I settings and the preferences' device and memory mode, with
    `overrides` (any JobSettings field: a batch's seed or prompt, a model of the user's
    own) applied last. Nothing is validated yet: build_request does that once, at the end."""
    settings = scene.t2i
    preset, size = preset_and_size(scene)
    prefs = addon_preferences(context)
    base = JobSettings(
        preset=preset, prompt=settings.prompt, negative_prompt=settings.negative_prompt,
        seed=settings.seed, steps=settings.steps, guidance=settings.guidance,
        control_strength=settings.control_strength, size=size,
        memory_mode=prefs.memory_mode, device=prefs.device, use_render=settings.use_render,
        render_strength=settings.render_strength, picks=model_picks.picks(settings),
        loras=model_picks.active_loras(settings), scheduler=settings.scheduler,
        server_models=uses_comfyui(context))
    return base.but(**overrides)


def prepare_job(scene: bpy.types.Scene, folder: Path, settings: JobSettings,
                stem: str | None = None, depth_options: DepthOptions | None = None,
                context: bpy.types.Context | None = None) -> PreparedJob:
    """Capture the depth (and the colour render when the settings ask for it), then build
    and validate the request. `depth_options` defaults to the scene's depth settings."""
    stem = stem or job_request.new_job_stem(settings.preset, settings.seed)
    job_request.check_settings(settings)  # before spending a capture on it
    too_big = size_error(*settings.size, addon_preferences(context).max_megapixels)
    if too_big is not None:
        raise ValueError(f"{too_big}: lower the size or raise the limit")
    control = make_control_image(scene, settings.size, folder, stem, depth_options, context)
    init_image = None
    if settings.use_render:
        init_image = str(render_colour(scene, settings.size, folder / f"{stem}_render.png"))
    depth_range = (control.depth_range.near, control.depth_range.far)
    depth_float = None  # SD 2 depth2img reads the float map the capture wrote
    if job_request.takes_float_depth(settings) and control.path_exr is not None:
        depth_float = str(control.path_exr)
    request = job_request.build_request(
        stem, settings, str(control.path), str(folder), init_image=init_image,
        depth_float=depth_float, metadata=addon_png_text(settings.preset.name, depth_range))
    record = JobRecord.from_request(parse_generate(request), settings.preset.name, depth_range)
    return PreparedJob(stem=stem, settings=settings, control=control, request=request,
                       record=record, folder=folder)


def record_result(job: PreparedJob, result: dict[str, Any],
                  backend_start_seconds: float = 0.0) -> JobRecord:
    """The job's record with its outcome, written as `<stem>.json` beside the result."""
    record = job.record.finished(result, capture=job.control.seconds,
                                 backend_start=backend_start_seconds)
    write_bytes_atomic(job.folder / f"{job.stem}.json", record.to_json().encode())
    return record
