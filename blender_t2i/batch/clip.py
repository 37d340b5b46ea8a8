"""`--clip`: a frame range sent to a video family as one clip (runner.run calls `run_clip`).

Every frame's depth is captured as a batch frame's is (the same files, the locked range), then
one job carries all of them (`control_frames`); the backend answers with one picture a frame,
which become the frames' results (<stem>.png, renamed into place: atomic) with a record each
and the manifest's entries, as a per-frame batch leaves them. A clip is one generation with one
seed and one prompt: `--resume` skips it only when every frame is done, else it is made again
whole (a part of a clip made alone would not match the rest).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import bpy

from ...t2i_core import job_request
from ...t2i_core.batch_plan import PlanError
from ...t2i_core.files import write_bytes_atomic
from ...t2i_core.job_queue import get_job_queue
from ...t2i_core.job_record import JobRecord, addon_png_text
from ...t2i_core.job_request import JobSettings
from ...t2i_core.protocol import parse_generate, size_error
from ..generation.depth_control import (
    CaptureError,
    ControlImage,
    DepthOptions,
    make_control_image,
)
from ..scene.preferences import addon_preferences

Say = Callable[[str], None]
Record = Callable[[int, list[Path], dict[str, Any]], None]


def check_clip(settings: JobSettings, frames: list[int]) -> None:
    """Refuse, before any capture, a family that makes stills and a clip over the size limit
    (PlanError says which family to pick, or how many frames fit)."""
    family = job_request.family_info(settings)
    if not family.takes_clip:
        from ...t2i_core.presets import FAMILY_INFO, PRESETS

        video = [p.name for p in PRESETS if FAMILY_INFO[p.family].takes_clip]
        raise PlanError(f"--clip sends the frames as one clip to a video model, and "
                        f"{family.label} makes still pictures: pick a video preset "
                        f"({', '.join(video)}) or drop --clip")
    too_big = size_error(*settings.size, addon_preferences().max_megapixels, len(frames),
                         family.clip_frame_step)
    if too_big is not None:
        raise PlanError(f"--clip: {too_big} (--frames for a shorter range, --size for a "
                        "smaller one, or raise Largest Image in the preferences)")


def run_clip(scene: bpy.types.Scene, base: JobSettings, folder: Path, frames: list[int],
             stem_of: Callable[[int], str], depth: DepthOptions, seed: int, prompt: str,
             backend: Any, record: Record, say: Say) -> int:
    """Capture every frame's depth, generate the clip in one job, keep each frame's result;
    returns the number of frames made."""
    settings = base.but(seed=seed, prompt=prompt)
    check_clip(settings, frames)
    controls: list[ControlImage] = []
    current = scene.frame_current
    try:
        for frame in frames:
            scene.frame_set(frame)
            try:
                controls.append(make_control_image(scene, settings.size, folder,
                                                   stem_of(frame), depth))
            except CaptureError as exc:
                raise CaptureError(f"frame {frame}: {exc}") from None
    finally:
        scene.frame_set(current)
    first = controls[0]
    stem = f"{stem_of(frames[0])}_clip"
    try:
        request = job_request.build_request(
            stem, settings, str(first.path), str(folder),
            metadata=addon_png_text(settings.preset.name, (first.depth_range.near,
                                                           first.depth_range.far)),
            control_frames=[str(c.path) for c in controls])
    except ValueError as exc:
        raise PlanError(f"--clip: {exc}") from None
    say(f"clip of {len(frames)} frames captured "
        f"({sum(c.seconds for c in controls):.1f} s), generating")
    result = get_job_queue().submit(request, backend).wait()
    sent = JobRecord.from_request(parse_generate(request), settings.preset.name)
    for frame, control, made in zip(frames, controls, result["paths"], strict=True):
        path = folder / f"{stem_of(frame)}.png"
        os.replace(made, path)  # same folder: atomic, the frame's name as a batch frame's
        job = replace(sent, depth=str(control.path),
                      depth_range=(control.depth_range.near, control.depth_range.far))
        job = job.finished({**result, "paths": [str(path)]}, capture=control.seconds)
        sidecar = folder / f"{stem_of(frame)}.json"
        write_bytes_atomic(sidecar, job.to_json().encode())
        files = [path, control.path, control.path16]
        if control.path_exr is not None:
            files.append(control.path_exr)
        record(frame, [*files, sidecar], {"seed": job.seed, "prompt": job.prompt,
                                          "depth_range": list(job.depth_range or ()),
                                          "timings": job.timings, "clip": stem})
    say(f"clip done: {len(frames)} frames in "
        f"{result.get('timings', {}).get('total', 0):.1f} s")
    return len(frames)
