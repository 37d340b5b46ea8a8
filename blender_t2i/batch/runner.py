"""Batch runs over frames (scripts/t2i_batch.py drives this inside Blender).

Every frame takes the one job path (scene_job.prepare_job, JobQueue.submit, JobHandle.wait).
Frame N+1's depth is captured while the backend generates frame N: the loop submits a frame's
job and only then waits for the previous one. Each finished frame is
added to the manifest at once; a crashed backend is restarted and its unfinished frames sent
again, each frame at most `retries` more times.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import bpy

from ...t2i_core import batch_plan, job_request
from ...t2i_core.backend_process import BackendConfig, BackendFailure
from ...t2i_core.batch_plan import Manifest, OutputPattern, PlanError
from ...t2i_core.job_queue import JobHandle, get_job_queue
from ...t2i_core.presets import get_preset
from ...t2i_core.protocol import ErrorCode
from ..generation import scene_job
from ..generation.depth_control import CaptureError, DepthOptions, lock_depth_range
from ..generation.render_hooks import own_renders

log = logging.getLogger("blender_t2i")


@dataclass
class BatchOptions:
    frames: list[int]
    out: OutputPattern
    backend: BackendConfig
    prompt: str | None = None
    negative: str | None = None
    prompts: dict[int, str] = field(default_factory=dict)
    preset: str | None = None
    model: dict[str, Any] | None = None  # a full model spec, overriding the preset's weights
    seed: int | None = None
    seed_mode: str = "fixed"
    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None
    size: tuple[int, int] | None = None
    depth_range: str = "locked"
    near_far: tuple[float, float] | None = None
    init: str | None = None
    resume: bool = False
    dry_run: bool = False
    retries: int = 1


class BatchFailed(Exception):
    """The run could not finish every frame; the message says which and why."""


def apply_options(scene: bpy.types.Scene, options: BatchOptions) -> None:
    """Put the command-line settings into scene.t2i (in memory: the .blend is never saved)."""
    settings = scene.t2i
    if options.preset is not None:
        get_preset(options.preset)  # KeyError names the known presets
        settings.model_preset = options.preset  # also sets the preset's recommended values
    for name, value in (("prompt", options.prompt), ("negative_prompt", options.negative),
                        ("seed", options.seed), ("steps", options.steps),
                        ("guidance", options.guidance),
                        ("control_strength", options.strength)):
        if value is not None:
            setattr(settings, name, value)
    if options.size is not None:
        settings.use_render_size = False
        settings.width, settings.height = options.size


def depth_options(scene: bpy.types.Scene, options: BatchOptions) -> DepthOptions:
    base = DepthOptions.from_scene(scene)
    return replace(base, range_policy=options.depth_range.upper(),
                   manual=options.near_far or base.manual)


def run_settings(scene: bpy.types.Scene, options: BatchOptions,
                 depth: DepthOptions) -> dict[str, Any]:
    """What the manifest records of the run. `--resume` compares all of it but what only says
    which run it was (batch_plan.RUN_ONLY_KEYS), so a setting added here counts at once."""
    settings = scene.t2i
    preset, size = scene_job.preset_and_size(scene)
    base = scene_job.job_settings(scene)  # the preferences' device and memory mode too
    return {
        "blend": bpy.data.filepath, "scene": scene.name, "frames": options.frames,
        "model": options.model or preset.model_spec(), "prompt": settings.prompt,
        "prompts": {str(k): v for k, v in sorted(options.prompts.items())},
        "negative_prompt": settings.negative_prompt, "steps": settings.steps,
        "guidance": round(settings.guidance, 6),
        "strength": round(settings.control_strength, 6), "size": list(size),
        "seed": settings.seed, "seed_mode": options.seed_mode,
        "depth_range": {"policy": depth.range_policy.lower(),
                        "range": list(depth.locked or depth.manual)
                        if depth.range_policy in ("LOCKED", "MANUAL") else None},
        "encoding": depth.encoding.lower(),
        "capture": f"{depth.capture_path.lower()}/{depth.capture_engine.lower()}",
        "init": options.init, "render_strength": round(settings.render_strength, 6),
        "memory_mode": base.memory_mode, "device": base.device,
    }


@dataclass
class _InFlight:
    frame: int
    job: scene_job.PreparedJob
    handle: JobHandle
    tries: int = 1


def run(scene: bpy.types.Scene, options: BatchOptions,
        say: Callable[[str], None] = lambda line: print(line, flush=True)) -> int:
    """Run the batch; returns the number of frames generated (raises BatchFailed/PlanError)."""
    if scene.camera is None:
        raise PlanError("the scene has no active camera: set one (Scene > Camera) and save")
    apply_options(scene, options)
    depth = depth_options(scene, options)
    preset, size = scene_job.preset_and_size(scene)
    advice = job_request.size_advice(size, preset) if scene.t2i.use_render_size else None
    if advice is not None:
        say(f"warning: the render size {advice.message}; pass --size "
            f"{advice.size[0]}x{advice.size[1]} for the size it was trained at")
    if depth.range_policy == "LOCKED" and not options.dry_run:
        started = time.perf_counter()
        locked = lock_depth_range(scene, size, options.frames, depth)
        depth = replace(depth, locked=(locked.near, locked.far))
        say(f"depth range locked over {len(options.frames)} frames: {locked.near:.4g}-"
            f"{locked.far:.4g} m ({time.perf_counter() - started:.1f} s)")
    settings = run_settings(scene, options, depth)
    folder = options.out.folder
    manifest = Manifest.resume(folder, settings) if options.resume else Manifest(folder, settings)
    todo = [f for f in options.frames if not (options.resume and manifest.is_done(f))]
    skipped = len(options.frames) - len(todo)
    say(f"{len(options.frames)} frames, {len(todo)} to generate"
        + (f" ({skipped} already done)" if skipped else "") + f", {preset.name} at "
        f"{size[0]}x{size[1]} -> {folder}")
    if options.dry_run:
        for frame in todo:
            say(f"  frame {frame}: {options.out.stem(frame)}.png seed "
                f"{batch_plan.frame_seed(scene.t2i.seed, frame, options.seed_mode)} prompt "
                f"{batch_plan.prompt_for(frame, options.prompts, scene.t2i.prompt)!r}")
        return 0
    if not todo:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    with own_renders():  # a batch never triggers "generate after render"
        return _generate_frames(scene, options, depth, manifest, todo, say)


def _generate_frames(scene: bpy.types.Scene, options: BatchOptions, depth: DepthOptions,
                     manifest: Manifest, todo: list[int], say: Callable[[str], None]) -> int:
    """Each frame through the one job path: prepare, submit, wait on its handle."""
    base = scene_job.job_settings(scene, model=options.model or {},
                                  use_render=options.init == "render")
    current = scene.frame_current
    jobs = get_job_queue()
    in_flight: list[_InFlight] = []
    done = 0
    started = time.perf_counter()

    def submit(frame: int) -> _InFlight:
        scene.frame_set(frame)
        settings = base.but(
            seed=batch_plan.frame_seed(base.seed, frame, options.seed_mode),
            prompt=batch_plan.prompt_for(frame, options.prompts, base.prompt))
        try:
            job = scene_job.prepare_job(scene, options.out.folder, settings,
                                        stem=options.out.stem(frame), depth_options=depth)
        except CaptureError as exc:  # a scene problem: say which frame has it
            raise CaptureError(f"frame {frame}: {exc}") from None
        except ValueError as exc:
            raise PlanError(f"frame {frame}: {exc}") from None
        return _InFlight(frame, job, jobs.submit(job.request, options.backend))

    def finish(item: _InFlight, result: dict[str, Any]) -> None:
        nonlocal done
        record = scene_job.record_result(item.job, result)
        control = item.job.control
        files = [Path(record.result), control.path, control.path16]
        if "init_image" in item.job.request:
            files.append(Path(item.job.request["init_image"]))
        if control.path_exr is not None:
            files.append(control.path_exr)
        files.append(item.job.folder / f"{item.job.stem}.json")
        manifest.add(item.frame, files, seed=record.seed, prompt=record.prompt,
                     depth_range=list(record.depth_range or ()), timings=record.timings)
        done += 1
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (len(todo) - done)
        say(f"frame {item.frame} done ({done}/{len(todo)}) in "
            f"{result.get('timings', {}).get('total', 0):.1f} s, ETA "
            f"{batch_plan.eta_text(eta)}")

    def wait_first() -> None:
        item = in_flight[0]
        try:
            result = item.handle.wait()
        except BackendFailure as exc:
            if exc.code not in (ErrorCode.BACKEND_CRASHED, ErrorCode.BACKEND_TIMEOUT):
                raise BatchFailed(f"frame {item.frame}: {exc.report()}") from None
            _retry(options, in_flight, exc)
            return
        in_flight.pop(0)
        finish(item, result)

    try:
        for frame in todo:
            in_flight.append(submit(frame))
            if len(in_flight) > 1:  # the previous frame generated while this one was captured
                wait_first()
        while in_flight:
            wait_first()
    finally:
        scene.frame_set(current)
    return done


def _retry(options: BatchOptions, in_flight: list[_InFlight], failure: BackendFailure) -> None:
    """The backend died: submit the unfinished frames again (each at most `retries` times
    more); the queue starts a fresh backend for them."""
    for item in in_flight:
        if item.tries > options.retries:
            raise BatchFailed(f"frame {item.frame}: {failure.report()} (after "
                              f"{item.tries} tries)")
    print(f"backend failed ({failure}); restarting it and retrying "
          f"{len(in_flight)} frame(s)", file=sys.stderr, flush=True)
    jobs = get_job_queue()
    for item in in_flight:
        item.tries += 1
        if item.handle.done:  # those the crash failed; any still queued keep their place
            item.handle = jobs.submit(item.job.request, options.backend)
