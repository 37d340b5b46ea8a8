"""Generate images for a range of frames, headless.

    blender -b scene.blend -P scripts/t2i_batch.py -- --frames 1-48 --out //t2i/sh010_####
    python scripts/t2i_batch.py scene.blend --frames 1-48 --out ...   (a Python with bpy)

Needs the blender_t2i extension installed in that Blender (enabled, or it is enabled for the run)
and a backend Python (the add-on's preference, T2I_BACKEND_PYTHON, or --backend-python).
Settings not given on the command line come from the scene's T2I settings. The depth range is
locked over all frames by default, so frames do not flicker from range changes alone.

With --clip the frames go to a video model (Wan VACE) as one clip, their depth as its control
video; the clip's frames are saved as the frames' results, as below.

Writes per frame <name>.png (result), <name>_depth.png (what the model saw), _depth16.png,
_depth.exr and <name>.json, plus manifest.json in the output folder, each file atomically.

On a render farm: one `--prepare` task writes shot.json (the depth range locked over the
whole shot, the seed plan, the settings' hash) into --out; then chunk tasks with the same
settings and `--shot --frames CHUNK` run on many workers at once into that folder. Empty
option values mean "not given" (the scene's), so job templates can pass every option.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

EXIT_USAGE = 2  # before the extension is found; the full table is t2i_core/farm_worker.py


def _given(kind: Callable[[str], Any] = str) -> Callable[[str], Any]:
    """An option type for which an empty value means 'not given' (a farm template's blank)."""
    def convert(text: str) -> Any:
        return None if text.strip() == "" else kind(text)
    convert.__name__ = getattr(kind, "__name__", "value")  # argparse's error names the type
    return convert


def build_parser(epilog: str = "") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="t2i_batch.py", description=__doc__, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if "bpy" not in sys.modules:  # plain Python: the .blend comes first
        parser.add_argument("blend", help="the .blend file to render from")
    parser.add_argument("--frames", help="frames to do: 1-48, 1,5,9-12 or 1-48x2 "
                                         "(default: the scene's frame range and step)")
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument("--prompt", type=_given(), help="the prompt (default: the scene's)")
    prompts.add_argument("--prompts", type=Path, metavar="FILE",
                         help="prompts by frame: JSON {\"1\": \"...\", \"24\": \"...\"} or lines "
                              "'FRAME: prompt'; each holds until the next listed frame")
    parser.add_argument("--negative", type=_given(),
                        help="the negative prompt (default: the scene's)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--preset", type=_given(),
                       help="a model preset name (default: the scene's)")
    model.add_argument("--model", metavar="JSON", type=_given(),
                       help="a model spec, e.g. '{\"family\": \"sd15_controlnet\", \"base\": "
                            "\"/models/sd15\", \"controlnet\": \"/models/depth\"}'")
    parser.add_argument("--base", metavar="FILE", type=_given(),
                        help="your own base model instead of the preset's: a .safetensors "
                             "checkpoint or diffusers folder, a file name the model library "
                             "finds, or a cached HF repo id (default: the scene's pick)")
    parser.add_argument("--controlnet", metavar="FILE", type=_given(),
                        help="your own ControlNet instead of the preset's (as --base)")
    parser.add_argument("--lora", action="append", metavar="FILE:WEIGHT",
                        help="a LoRA and its weight (default 1.0); repeat for several; "
                             "replaces the scene's LoRA stack")
    parser.add_argument("--scheduler", type=_given(),
                        help="default, euler, euler_a, ddim, dpmpp_2m, dpmpp_2m_karras or "
                             "unipc (SD families only)")
    parser.add_argument("--seed", type=_given(int), help="base seed (default: the scene's)")
    parser.add_argument("--seed-mode", choices=["fixed", "per-frame"], default="fixed",
                        help="fixed: the same seed every frame (steadier); per-frame: seed + "
                             "frame number")
    parser.add_argument("--steps", type=_given(int), help="sampling steps")
    parser.add_argument("--guidance", type=_given(float), help="prompt guidance (CFG)")
    parser.add_argument("--strength", type=_given(float), help="depth control strength")
    parser.add_argument("--size", metavar="WxH", type=_given(),
                        help="image size (default: the render resolution, snapped)")
    parser.add_argument("--depth-range", choices=["locked", "auto", "clip", "manual"],
                        default="locked",
                        help="locked: one range over all frames (default); auto: per frame; "
                             "clip: the camera's clip range; manual: --near/--far")
    parser.add_argument("--near", type=float, help="near distance for --depth-range manual")
    parser.add_argument("--far", type=float, help="far distance for --depth-range manual")
    parser.add_argument("--init", choices=["render"],
                        help="render: the frame's colour render as the init image (img2img)")
    parser.add_argument("--out", required=True,
                        help="output folder, or a path whose name holds '#' frame padding "
                             "(//sh010/frame_####); // is the .blend's folder")
    parser.add_argument("--clip", action="store_true",
                        help="send the frames' depth as one clip to a video model (the "
                             "wan_vace presets) and save its frames as the frames' results; "
                             "one seed and one prompt for the clip")
    parser.add_argument("--resume", action="store_true",
                        help="skip frames the manifest lists as done with intact files")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be done and exit")
    parser.add_argument("--backend-python", help="the backend's Python (default: the add-on's "
                                                 "preference or T2I_BACKEND_PYTHON)")
    parser.add_argument("--comfyui", metavar="URL", type=_given(),
                        help="send the jobs to this ComfyUI server instead of the local "
                             "backend (its token from T2I_COMFYUI_TOKEN; --base, --controlnet "
                             "and --lora then name the server's files)")
    parser.add_argument("--retries", type=int, default=1,
                        help="times a frame is retried after a backend failure (default 1)")
    parser.add_argument("--device", type=_given(),
                        help="this worker's device: auto, cpu, mps, cuda or cuda:N (N counts "
                             "the GPUs CUDA_VISIBLE_DEVICES leaves visible; default: the "
                             "preferences'). The model cache comes from HF_HOME/HF_HUB_CACHE "
                             "and T2I_MODEL_FOLDERS when set, else the preferences")
    farm = parser.add_mutually_exclusive_group()
    farm.add_argument("--prepare", action="store_true",
                      help="farm: prepare the shot (lock the depth range over all --frames, "
                           "the seed plan, the settings' hash) into --out/shot.json, and "
                           "generate nothing")
    farm.add_argument("--shot", action="store_true",
                      help="farm: this run is one chunk of the shot prepared in --out; refuse "
                           "to run without its shot.json or against other settings. (A run "
                           "into a folder with a shot.json always checks against it, and "
                           "skips frames already done by any worker)")
    parser.add_argument("--cameras", metavar="NAMES|orbit:N",
                        help="instead of frames, texture the scene's meshes from several "
                             "cameras (Cam.1,Cam.2, or orbit:N made round them): later views "
                             "inpaint what earlier ones did not see; the views are baked and "
                             "the scene saved to --out, a .blend path")
    return parser


def script_argv() -> list[str]:
    if "bpy" in sys.modules:  # inside Blender: our arguments follow '--'
        return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    return sys.argv[1:]


def fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"t2i_batch: error: {message}", file=sys.stderr, flush=True)
    return status


def find_addon() -> ModuleType | None:
    """The enabled blender_t2i extension's module, enabling an installed one if needed."""
    import addon_utils
    import bpy

    def enabled() -> str | None:
        return next((addon.module for addon in bpy.context.preferences.addons
                     if addon.module.rpartition(".")[2] == "blender_t2i"), None)

    name = enabled()
    if name is None and not bpy.context.preferences.addons.keys():
        bpy.ops.wm.read_userpref()  # the bpy module starts without the user's preferences
        name = enabled()
    if name is None:
        installed = [m.__name__ for m in addon_utils.modules()
                     if m.__name__.rpartition(".")[2] == "blender_t2i"]
        if installed:
            addon_utils.enable(installed[0], default_set=True)
            name = enabled()
    return sys.modules.get(name) if name else None


def _exit_table(argv: list[str]) -> str:
    """For --help: the exit table from the extension's source beside this script (in a
    checkout and in the installed extension), so it shows before any extension is found."""
    if not {"-h", "--help"} & set(argv):
        return ""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from t2i_core.farm_worker import exit_table_text
    except ImportError:
        return ""
    finally:
        sys.path.pop(0)
    return exit_table_text()


def main() -> int:
    argv = script_argv()
    args = build_parser(_exit_table(argv)).parse_args(argv)
    import bpy

    if getattr(args, "blend", None):
        blend = Path(args.blend)
        if not blend.is_file():
            return fail(f"{blend} does not exist")
        try:
            bpy.ops.wm.open_mainfile(filepath=str(blend.resolve()))
        except RuntimeError as exc:
            return fail(f"cannot open {blend}: {exc}")
    addon = find_addon()
    if addon is None:
        return fail("the blender_t2i extension is not installed in this Blender: install its "
                    "zip (Preferences > Get Extensions > Install from Disk)")
    for module in ("t2i_core.batch_plan", "t2i_core.backend_process", "t2i_core.job_queue",
                   "t2i_core.files", "t2i_core.farm_worker", "t2i_core.shot_plan",
                   "blender_t2i.batch.runner", "blender_t2i.generation.depth_control",
                   "blender_t2i.scene.preferences"):
        importlib.import_module(f"{addon.__name__}.{module}")
    if args.comfyui:
        if args.backend_python:
            return fail("--comfyui and --backend-python exclude each other: the server "
                        "runs the models")
        # in memory only, like every setting here: the preferences are never saved
        prefs = bpy.context.preferences.addons[addon.__name__].preferences
        prefs.backend_kind = addon.t2i_core.backend_kinds.COMFYUI
        prefs.comfyui_url = args.comfyui
    if args.cameras:
        return texture_from_cameras(args, addon, bpy)
    core, pure = addon.blender_t2i, addon.t2i_core
    plan, batch, worker = pure.batch_plan, core.batch.runner, pure.farm_worker
    backend_failure = pure.backend_process.BackendFailure
    capture_error = core.generation.depth_control.CaptureError
    scene = bpy.context.scene
    try:
        options = _options(args, scene, pure, batch, core, bpy)
        count = batch.run(scene, options)
    except pure.shot_plan.ShotMismatch as exc:
        return fail(str(exc), worker.EXIT_SHOT)
    except worker.WorkerUnfit as exc:
        return fail(str(exc), worker.EXIT_WORKER)
    except (plan.PlanError, KeyError, ValueError, capture_error) as exc:
        return fail(str(exc).strip("'\""), worker.EXIT_USAGE)
    except batch.BatchFailed as exc:
        return fail(str(exc), worker.exit_status_for(exc.code))
    except backend_failure as exc:
        return fail(exc.report(), worker.exit_status_for(exc.code))
    except OSError as exc:  # a full or read-only disk: the frames so far are intact
        return fail(pure.files.os_error_text(exc), worker.EXIT_WORKER)
    finally:
        pure.job_queue.reset_job_queue(wait=True)  # the backend is gone when we exit
    if options.dry_run:
        print("t2i_batch: dry run, nothing generated", flush=True)
    elif options.prepare:
        print("t2i_batch: shot prepared", flush=True)
    else:
        print(f"t2i_batch: {count} frame(s) generated, all {len(options.frames)} done",
              flush=True)
    return worker.EXIT_DONE


def texture_from_cameras(args: argparse.Namespace, addon: ModuleType, bpy) -> int:
    """--cameras: one multi-view texturing run (blender_t2i/generation/multiview.py) at the
    scene's current frame, baked, saved as a new .blend."""
    views = importlib.import_module(f"{addon.__name__}.blender_t2i.generation.multiview")
    pure = addon.t2i_core
    out = Path(bpy.path.abspath(args.out))
    if out.suffix != ".blend":
        return fail("--cameras saves the textured scene: --out must be a .blend path")
    scene, context = bpy.context.scene, bpy.context
    settings = scene.t2i
    if args.preset:
        settings.model_preset = args.preset  # first: it sets steps and guidance
    for name, value in (("prompt", args.prompt), ("negative_prompt", args.negative),
                        ("seed", args.seed), ("steps", args.steps), ("guidance", args.guidance),
                        ("control_strength", args.strength)):
        if value is not None:
            setattr(settings, name, value)
    if args.backend_python:
        prefs = context.preferences.addons[addon.__name__].preferences
        prefs.backend_python = os.path.abspath(args.backend_python)
    try:
        if args.size:
            settings.use_render_size = False
            settings.width, settings.height = pure.batch_plan.parse_size(args.size)
        meshes = [obj for obj in scene.objects if obj.type == "MESH" and not obj.hide_render]
        if args.cameras.startswith("orbit:"):
            count = int(args.cameras.partition(":")[2])
            views.check_model(context, count)
            cameras = views.orbit_cameras(scene, meshes, count,
                                          settings.projection.orbit_elevation)
        else:
            names = [name.strip() for name in args.cameras.split(",") if name.strip()]
            missing = [n for n in names if getattr(bpy.data.objects.get(n), "type", "") != "CAMERA"]
            if missing:
                return fail(f"--cameras: no camera named {', '.join(missing)} in this scene")
            cameras = [bpy.data.objects[name] for name in names]
        settings.projection.use_bake = True
        run = views.wait(views.start(context, cameras, meshes))
    except (ValueError, KeyError, pure.batch_plan.PlanError, views.ViewsError,
            addon.blender_t2i.results.projection.ProjectionError,
            addon.compositor.capture.CaptureError) as exc:
        return fail(str(exc).strip("'\""))
    except pure.backend_process.BackendFailure as exc:
        return fail(exc.report(), pure.farm_worker.EXIT_RETRY)
    except OSError as exc:
        return fail(pure.files.os_error_text(exc), pure.farm_worker.EXIT_WORKER)
    finally:
        pure.job_queue.reset_job_queue(wait=True)
    if run.failed:
        return fail(run.failed, pure.farm_worker.EXIT_RETRY)
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    print(f"t2i_batch: textured {', '.join(run.meshes)} from {len(cameras)} view(s), saved "
          f"{out}", flush=True)
    return 0


def _options(args: argparse.Namespace, scene, pure, batch, core, bpy):
    plan = pure.batch_plan
    if args.frames:
        frames = plan.parse_frames(args.frames)
    else:
        frames = list(range(scene.frame_start, scene.frame_end + 1, scene.frame_step))
    if args.depth_range == "manual":
        if args.near is None or args.far is None or not 0 < args.near < args.far:
            raise plan.PlanError("--depth-range manual needs 0 < --near < --far")
    elif args.near is not None or args.far is not None:
        raise plan.PlanError("--near/--far are only used with --depth-range manual")
    if args.steps is not None and args.steps < 1:
        raise plan.PlanError("--steps must be at least 1")
    if args.retries < 0:
        raise plan.PlanError("--retries must be 0 or more")
    model = None
    if args.model:
        try:
            model = json.loads(args.model)
        except ValueError:
            raise plan.PlanError("--model must be a JSON object (a model spec)") from None
        if not isinstance(model, dict) or not isinstance(model.get("family"), str):
            raise plan.PlanError("--model needs at least a \"family\"")
    worker = pure.farm_worker
    device = worker.parse_device(args.device) if args.device else None
    # the farm's environment (model cache, model folders) wins over saved preferences
    config = worker.worker_backend_config(core.scene.preferences.backend_config(bpy.context),
                                          os.environ)
    loras = [_lora(value, plan) for value in args.lora] if args.lora else None
    if args.backend_python:
        # only the interpreter changes: the HF cache and model folders stay
        config = replace(config, python=os.path.abspath(args.backend_python))
    return batch.BatchOptions(
        frames=frames, out=plan.OutputPattern.parse(bpy.path.abspath(args.out)),
        backend=config, prompt=args.prompt, negative=args.negative,
        prompts=plan.load_prompts(args.prompts) if args.prompts else {},
        preset=args.preset, model=model, seed=args.seed, seed_mode=args.seed_mode,
        steps=args.steps, guidance=args.guidance, strength=args.strength,
        size=plan.parse_size(args.size) if args.size else None,
        depth_range=args.depth_range,
        near_far=(args.near, args.far) if args.depth_range == "manual" else None,
        init=args.init, resume=args.resume, dry_run=args.dry_run, retries=args.retries,
        device=device, prepare=args.prepare, shot=args.shot,
        base=args.base, controlnet=args.controlnet, loras=loras, scheduler=args.scheduler,
        clip=args.clip)


def _lora(value: str, plan) -> tuple[str, float]:
    """FILE:WEIGHT (the weight is optional; a Windows drive's colon is not a weight)."""
    path, colon, weight = value.rpartition(":")
    if not colon or not path or "/" in weight or "\\" in weight:
        return value, 1.0
    try:
        return path, float(weight)
    except ValueError:
        raise plan.PlanError(f"--lora {value}: the weight after ':' must be a number") \
            from None


if __name__ == "__main__":
    sys.exit(main())
