"""Batch runs over frames (scripts/t2i_batch.py drives this inside Blender).

Every frame takes the one job path (scene_job.prepare_job, JobQueue.submit, JobHandle.wait).
Frame N+1's depth is captured while the backend generates frame N: the loop submits a frame's
job and only then waits for the previous one. Each finished frame is
added to the manifest at once; a crashed backend is restarted and its unfinished frames sent
again, each frame at most `retries` more times.

On a farm the shot is prepared once (`prepare_shot`: the depth range locked over every frame,
the seed plan and the settings' hash, in shot.json) and each chunk (`run` with a shot in its
folder) checks itself against it, claims its frames and records each one
(t2i_core/shot_folder.py), so chunks can run at once into one shared folder.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import bpy

from ...t2i_core import batch_plan, job_request
from ...t2i_core.backend_process import BackendConfig, BackendFailure
from ...t2i_core.batch_plan import Manifest, OutputPattern, PlanError
from ...t2i_core.farm_worker import WorkerUnfit, device_problem, model_cache_text
from ...t2i_core.job_queue import JobHandle, JobQueue, get_job_queue
from ...t2i_core.presets import get_preset
from ...t2i_core.protocol import ErrorCode
from ...t2i_core.shot_folder import ShotFolder, Worker
from ...t2i_core.shot_plan import ShotMismatch, ShotPlan
from ..generation import scene_job
from ..generation.depth_control import CaptureError, DepthOptions, lock_depth_range
from ..generation.render_hooks import own_renders
from ..scene import model_picks
from . import clip

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
    device: str | None = None  # this worker's GPU ("cuda:1"); None: the preferences'
    prepare: bool = False  # compute and write the shot (shot.json), generate nothing
    shot: bool = False  # a chunk of a prepared shot: refuse to run without its shot.json
    # the user's own models (issue #13): None = the scene's
    base: str | None = None
    controlnet: str | None = None
    loras: list[tuple[str, float]] | None = None  # replaces the scene's LoRA stack
    scheduler: str | None = None
    clip: bool = False  # the frames as one clip to a video family (clip.py)


class BatchFailed(Exception):
    """The run could not finish every frame; the message says which and why."""

    def __init__(self, message: str, code: str = ErrorCode.GENERATION_FAILED):
        super().__init__(message)
        self.code = code  # the backend error code behind it: the exit status follows it


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
    model_picks.apply(settings, base=options.base, controlnet=options.controlnet,
                      loras=options.loras, scheduler=options.scheduler)


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
    base = _job_settings(scene, options)  # the preferences' device and memory mode too
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
        "picks": base.picks, "loras": [list(lora) for lora in base.loras],
        "scheduler": base.scheduler,
        **({"clip": True} if options.clip else {}),
    }


@dataclass
class _InFlight:
    frame: int
    job: scene_job.PreparedJob
    handle: JobHandle
    tries: int = 1


def _job_settings(scene: bpy.types.Scene, options: BatchOptions, **overrides: Any):
    if options.device is not None:
        overrides["device"] = options.device
    return scene_job.job_settings(scene, **overrides)


Say = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def run(scene: bpy.types.Scene, options: BatchOptions, say: Say = _print) -> int:
    """Run the batch; returns the number of frames generated (raises BatchFailed/PlanError,
    ShotMismatch for a chunk that does not match its prepared shot, WorkerUnfit)."""
    if scene.camera is None:
        raise PlanError("the scene has no active camera: set one (Scene > Camera) and save")
    apply_options(scene, options)
    # picks, LoRAs and scheduler are refused (ValueError) before the range lock renders
    chosen = scene_job.job_settings(scene, model=options.model or {})
    job_request.check_settings(chosen)
    for warning in job_request.lora_warnings(chosen):
        say(f"warning: {warning}")
    depth = depth_options(scene, options)
    shot = ShotPlan.read(options.out.folder)
    if options.clip:
        if options.prepare or options.shot or shot is not None:
            raise PlanError("--clip makes the range in one job on one machine: it does not "
                            "run as a farm shot (--prepare/--shot, or a shot.json in --out)")
        clip.check_clip(_job_settings(scene, options, model=options.model or {}),
                        options.frames)
    if options.prepare:
        prepare_shot(scene, options, depth, shot, say)
        return 0
    if shot is None and options.shot:
        raise ShotMismatch(f"no prepared shot in {options.out.folder} (no shot.json there): "
                           "run the prepare step (--prepare) with the same settings first")
    if shot is not None:
        return _run_shot_chunk(scene, options, depth, shot, say)
    preset, size = scene_job.preset_and_size(scene)
    advice = job_request.size_advice(size, preset) if scene.t2i.use_render_size else None
    if advice is not None:
        say(f"warning: the render size {advice.message}; pass --size "
            f"{advice.size[0]}x{advice.size[1]} for the size it was trained at")
    if depth.range_policy == "LOCKED" and not options.dry_run:
        depth = _lock(scene, size, options.frames, depth, say)
    settings = run_settings(scene, options, depth)
    folder = options.out.folder
    manifest = Manifest.resume(folder, settings) if options.resume else Manifest(folder, settings)
    todo = [f for f in options.frames if not (options.resume and manifest.is_done(f))]
    if options.clip and todo:
        todo = list(options.frames)  # a clip is made whole (clip.py)
    skipped = len(options.frames) - len(todo)
    say(f"{len(options.frames)} frames, {len(todo)} to generate"
        + (f" ({skipped} already done)" if skipped else "") + f", {preset.name} at "
        f"{size[0]}x{size[1]} -> {folder}")

    def plan_of(frame: int) -> tuple[int, str]:
        return (batch_plan.frame_seed(scene.t2i.seed, frame, options.seed_mode),
                batch_plan.prompt_for(frame, options.prompts, scene.t2i.prompt))

    if options.dry_run:
        if options.clip and todo:
            say(f"  one clip of {len(todo)} frames, seed {plan_of(todo[0])[0]}:")
        _say_plan(todo, options, plan_of, say)
        return 0
    if not todo:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    if options.clip:
        seed, prompt = plan_of(todo[0])
        if len({plan_of(frame) for frame in todo}) > 1:
            say(f"warning: a clip has one seed and one prompt: frame {todo[0]}'s for all "
                f"{len(todo)} frames")
        with own_renders():
            return clip.run_clip(scene, _job_settings(scene, options, model=options.model or {}),
                                 folder, todo, options.out.stem, depth, seed, prompt,
                                 options.backend,
                                 lambda frame, files, info: manifest.add(frame, files, **info),
                                 say)
    with own_renders():  # a batch never triggers "generate after render"
        return _generate_frames(scene, options, depth, todo, len(todo), plan_of,
                                lambda frame, files, info: manifest.add(frame, files, **info),
                                say)


def _lock(scene: bpy.types.Scene, size: tuple[int, int], frames: list[int],
          depth: DepthOptions, say: Say) -> DepthOptions:
    started = time.perf_counter()
    locked = lock_depth_range(scene, size, frames, depth)
    say(f"depth range locked over {len(frames)} frames: {locked.near:.4g}-"
        f"{locked.far:.4g} m ({time.perf_counter() - started:.1f} s)")
    return replace(depth, locked=(locked.near, locked.far))


def _say_plan(frames: list[int], options: BatchOptions,
              plan_of: Callable[[int], tuple[int, str]], say: Say) -> None:
    for frame in frames:
        seed, prompt = plan_of(frame)
        say(f"  frame {frame}: {options.out.stem(frame)}.png seed {seed} prompt {prompt!r}")


def prepare_shot(scene: bpy.types.Scene, options: BatchOptions, depth: DepthOptions,
                 existing: ShotPlan | None, say: Say) -> ShotPlan:
    """Work out once what every chunk of the shot must agree on and write it to shot.json
    in the output folder (atomically). A shot already prepared there with the same settings
    is kept (a retried prepare task costs nothing); one with other settings is refused."""
    started = time.perf_counter()
    _preset, size = scene_job.preset_and_size(scene)
    folder = options.out.folder
    asked = run_settings(scene, options, depth)  # the locked range not computed yet
    if existing is not None:
        changed = existing.same_request(asked)
        if changed:
            raise ShotMismatch(f"{folder} holds a shot prepared with other {', '.join(changed)}"
                               f": use another --out, or delete its shot.json (and the frames "
                               "made with it) to prepare it again")
        say(f"shot {existing.hash[:12]} already prepared in {folder}: kept")
        return existing
    if options.dry_run:
        say(f"would prepare {len(options.frames)} frames into {folder}"
            + (" (locking the depth range over all of them)"
               if depth.range_policy == "LOCKED" else ""))
        return ShotPlan.plan(asked, scene.t2i.seed, options.seed_mode, options.prompts,
                             scene.t2i.prompt)
    if depth.range_policy == "LOCKED":
        with own_renders():
            depth = _lock(scene, size, options.frames, depth, say)
    shot = ShotPlan.plan(run_settings(scene, options, depth), scene.t2i.seed,
                         options.seed_mode, options.prompts, scene.t2i.prompt,
                         prepare_seconds=time.perf_counter() - started)
    shot.write(folder)
    say(f"shot {shot.hash[:12]} prepared: {len(shot.frames)} frames "
        f"({batch_plan.frames_text(shot.frames)}) -> {folder / 'shot.json'} "
        f"({shot.prepare_seconds:.1f} s)")
    return shot


def _run_shot_chunk(scene: bpy.types.Scene, options: BatchOptions, depth: DepthOptions,
                    shot: ShotPlan, say: Say) -> int:
    """One chunk of a prepared shot: its frames not yet done, claimed one at a time so a
    frame another worker holds is not made twice; then waits until every frame of the
    chunk is done, making any whose worker gave up or died."""
    if depth.range_policy == "LOCKED":
        depth = replace(depth, locked=shot.depth_range)
    folder = options.out.folder
    shot.check_chunk(run_settings(scene, options, depth), options.frames, folder)
    chunk = batch_plan.frames_text(options.frames)
    worker = Worker.this(chunk, _job_settings(scene, options).device)
    workers = ShotFolder(folder, shot, worker)
    todo = [f for f in options.frames if not workers.is_done(f)]
    skipped = len(options.frames) - len(todo)
    preset, size = scene_job.preset_and_size(scene)
    say(f"shot {shot.hash[:12]}, chunk {chunk} on {worker.host} ({worker.device}): "
        f"{len(options.frames)} frames, {len(todo)} to generate"
        + (f" ({skipped} already done)" if skipped else "") + f", {preset.name} at "
        f"{size[0]}x{size[1]} -> {folder}")
    say(f"models from {model_cache_text(options.backend, os.environ)}")

    def plan_of(frame: int) -> tuple[int, str]:
        return shot.seeds[frame], shot.prompts[frame]

    if options.dry_run:
        _say_plan(todo, options, plan_of, say)
        return 0

    def record(frame: int, files: list[Path], info: dict[str, Any]) -> None:
        workers.record(frame, files, **info)

    def claimed(frames: list[int], others: list[int]):
        for frame in frames:
            if workers.claim(frame):
                yield frame
            elif not workers.is_done(frame):
                others.append(frame)

    done = 0
    with own_renders(), workers.claims_kept_fresh():
        waiting: list[int] = []
        done += _generate_frames(scene, options, depth, claimed(todo, waiting), len(todo),
                                 plan_of, record, say)
        said = 0.0
        while waiting:  # frames other workers hold: wait for them, or take them over
            still_held: list[int] = []
            freed = list(claimed(waiting, still_held))  # their worker gave up or died
            if freed:
                done += _generate_frames(scene, options, depth, freed, len(freed),
                                         plan_of, record, say)
            waiting = still_held
            if waiting and time.monotonic() - said > 30:
                holders = {f: workers.holder(f) or {} for f in waiting}
                say("waiting for frames " + ", ".join(
                    f"{f} ({h.get('host', '?')}:{h.get('pid', '?')})"
                    for f, h in holders.items()) + " held by other workers")
                said = time.monotonic()
            if waiting:
                time.sleep(1.0)
    return done


def _generate_frames(scene: bpy.types.Scene, options: BatchOptions, depth: DepthOptions,
                     frames: Iterable[int], total: int,
                     plan_of: Callable[[int], tuple[int, str]],
                     record: Callable[[int, list[Path], dict[str, Any]], None],
                     say: Say) -> int:
    """Each frame through the one job path: prepare, submit, wait on its handle; `record`
    keeps each finished frame (the manifest, or the shot's records)."""
    base = _job_settings(scene, options, model=options.model or {},
                         use_render=options.init == "render")
    current = scene.frame_current
    jobs = get_job_queue()
    in_flight: list[_InFlight] = []
    done = 0
    started = time.perf_counter()

    def submit(frame: int) -> _InFlight:
        scene.frame_set(frame)
        seed, prompt = plan_of(frame)
        settings = base.but(seed=seed, prompt=prompt)
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
        job_record = scene_job.record_result(item.job, result)
        control = item.job.control
        files = [Path(job_record.result), control.path, control.path16]
        if "init_image" in item.job.request:
            files.append(Path(item.job.request["init_image"]))
        if control.path_exr is not None:
            files.append(control.path_exr)
        files.append(item.job.folder / f"{item.job.stem}.json")
        record(item.frame, files, {"seed": job_record.seed, "prompt": job_record.prompt,
                                   "depth_range": list(job_record.depth_range or ()),
                                   "timings": job_record.timings})
        done += 1
        elapsed = time.perf_counter() - started
        eta = elapsed / done * max(total - done, 0)
        say(f"frame {item.frame} done ({done}/{total}) in "
            f"{result.get('timings', {}).get('total', 0):.1f} s, ETA "
            f"{batch_plan.eta_text(eta)}")

    def wait_first() -> None:
        item = in_flight[0]
        try:
            result = item.handle.wait()
        except BackendFailure as exc:
            _check_device(options, jobs)  # a GPU this worker lacks says so, not how it failed
            if exc.code not in (ErrorCode.BACKEND_CRASHED, ErrorCode.BACKEND_TIMEOUT):
                raise BatchFailed(f"frame {item.frame}: {exc.report()}", exc.code) from None
            _retry(options, in_flight, exc)
            return
        in_flight.pop(0)
        finish(item, result)

    try:
        for frame in frames:
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
                              f"{item.tries} tries)", failure.code)
    print(f"backend failed ({failure}); restarting it and retrying "
          f"{len(in_flight)} frame(s)", file=sys.stderr, flush=True)
    jobs = get_job_queue()
    for item in in_flight:
        item.tries += 1
        if item.handle.done:  # those the crash failed; any still queued keep their place
            item.handle = jobs.submit(item.job.request, options.backend)


def _check_device(options: BatchOptions, jobs: JobQueue) -> None:
    """Raise WorkerUnfit when --device names a device the backend does not have."""
    devices = jobs.backend_ready.get("devices")
    if options.device and devices is not None:
        problem = device_problem(options.device, list(devices), os.environ)
        if problem:
            raise WorkerUnfit(problem)
