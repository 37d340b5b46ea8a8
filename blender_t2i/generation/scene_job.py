"""One generate job from the scene's point of view: prepare (capture + request), then record.

The operator (UI), the batch script and the render handler all go through here, so a job's
files, request and record are the same whichever way it was started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from ..core import job_request as jobs
from ..core.png import write_bytes_atomic
from ..core.presets import FAMILY_INFO, RENDER, Preset, get_preset
from .colour_render import render_colour
from .depth_control import ControlImage, DepthOptions, make_control_image


@dataclass
class PreparedJob:
    stem: str  # also the job id and the result's file stem
    preset: Preset
    size: tuple[int, int]
    control: ControlImage
    request: dict[str, Any]
    folder: Path


def preset_and_size(scene: bpy.types.Scene) -> tuple[Preset, tuple[int, int]]:
    """The chosen preset and the generation size; ValueError says what to fix."""
    settings = scene.t2i
    preset = get_preset(settings.model_preset)
    render = scene.render
    size = jobs.job_size(render.resolution_x, render.resolution_y, render.resolution_percentage,
                         settings.use_render_size, settings.width, settings.height, preset)
    return preset, size


def prepare_job(scene: bpy.types.Scene, folder: Path, stem: str | None = None,
                seed: int | None = None, prompt: str | None = None,
                depth_options: DepthOptions | None = None,
                use_render: bool | None = None) -> PreparedJob:
    """Capture the depth and build the request from the scene's settings (with overrides;
    `depth_options` defaults to the scene's depth settings, `use_render` to scene.t2i.use_render:
    send the colour render too, as img2img init or as an edit model's input picture)."""
    settings = scene.t2i
    seed = settings.seed if seed is None else seed
    preset, size = preset_and_size(scene)
    stem = stem or jobs.new_job_stem(preset, seed)
    use_render = settings.use_render if use_render is None else use_render
    family = FAMILY_INFO.get(preset.family)
    if use_render and family is not None and RENDER not in family.inputs:
        raise ValueError(f"{family.label} takes no colour render: turn off Use Render")
    control = make_control_image(scene, size, folder, stem, depth_options)
    request = jobs.generate_request(
        stem, preset, settings.prompt if prompt is None else prompt, settings.negative_prompt,
        seed, settings.steps, settings.guidance, settings.control_strength, size,
        str(control.path), str(folder))
    if use_render:
        request["init_image"] = str(render_colour(scene, size, folder / f"{stem}_render.png"))
        request["strength"] = settings.render_strength
    return PreparedJob(stem=stem, preset=preset, size=size, control=control, request=request,
                       folder=folder)


def record_result(job: PreparedJob, result: dict[str, Any],
                  backend_start_seconds: float = 0.0) -> dict[str, Any]:
    """Write `<stem>.json` beside the result: settings, files and timings of the job."""
    request = job.request
    timings = {"capture": round(job.control.seconds, 4),
               "backend_start": round(backend_start_seconds, 4), **result.get("timings", {})}
    record = {
        "model": job.preset.name, "model_spec": request["model"], "seed": result["seed"],
        "prompt": request["prompt"], "negative_prompt": request["negative_prompt"],
        "steps": request["steps"], "guidance": request["guidance"],
        "control_strength": request["control_strength"], "size": list(job.size),
        "depth_range": [job.control.depth_range.near, job.control.depth_range.far],
        "depth": str(job.control.path), "result": result["paths"][0], "timings": timings,
        "peak_memory": result.get("peak_memory"),  # bytes on the GPU (CUDA), for sizing farms
    }
    write_bytes_atomic(job.folder / f"{job.stem}.json", json.dumps(record, indent=2).encode())
    return record
