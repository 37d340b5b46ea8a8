"""Generate images for a range of frames, headless.

    blender -b scene.blend -P scripts/t2i_batch.py -- --frames 1-48 --out //t2i/sh010_####
    python scripts/t2i_batch.py scene.blend --frames 1-48 --out ...   (a Python with bpy)

Needs the blender_t2i extension installed in that Blender (enabled, or it is enabled for the run)
and a backend Python (the add-on's preference, T2I_BACKEND_PYTHON, or --backend-python).
Settings not given on the command line come from the scene's T2I settings. The depth range is
locked over all frames by default, so frames do not flicker from range changes alone.

Writes per frame <name>.png (result), <name>_depth.png (what the model saw), _depth16.png,
_depth.exr and <name>.json, plus manifest.json in the output folder, each file atomically.
Exit status: 0 when every frame is done, 1 when generation failed (or a file could not be
written), 2 for bad arguments or a scene/extension problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType

EXIT_FAILED, EXIT_USAGE = 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="t2i_batch.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if "bpy" not in sys.modules:  # plain Python: the .blend comes first
        parser.add_argument("blend", help="the .blend file to render from")
    parser.add_argument("--frames", help="frames to do: 1-48, 1,5,9-12 or 1-48x2 "
                                         "(default: the scene's frame range and step)")
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument("--prompt", help="the prompt (default: the scene's)")
    prompts.add_argument("--prompts", type=Path, metavar="FILE",
                         help="prompts by frame: JSON {\"1\": \"...\", \"24\": \"...\"} or lines "
                              "'FRAME: prompt'; each holds until the next listed frame")
    parser.add_argument("--negative", help="the negative prompt (default: the scene's)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--preset", help="a model preset name (default: the scene's)")
    model.add_argument("--model", metavar="JSON",
                       help="a model spec, e.g. '{\"family\": \"sd15_controlnet\", \"base\": "
                            "\"/models/sd15\", \"controlnet\": \"/models/depth\"}'")
    parser.add_argument("--base", metavar="FILE",
                        help="your own base model instead of the preset's: a .safetensors "
                             "checkpoint or diffusers folder, a file name the model library "
                             "finds, or a cached HF repo id (default: the scene's pick)")
    parser.add_argument("--controlnet", metavar="FILE",
                        help="your own ControlNet instead of the preset's (as --base)")
    parser.add_argument("--lora", action="append", metavar="FILE:WEIGHT",
                        help="a LoRA and its weight (default 1.0); repeat for several; "
                             "replaces the scene's LoRA stack")
    parser.add_argument("--scheduler", help="default, euler, euler_a, ddim, dpmpp_2m, "
                                            "dpmpp_2m_karras or unipc (SD families only)")
    parser.add_argument("--seed", type=int, help="base seed (default: the scene's)")
    parser.add_argument("--seed-mode", choices=["fixed", "per-frame"], default="fixed",
                        help="fixed: the same seed every frame (steadier); per-frame: seed + "
                             "frame number")
    parser.add_argument("--steps", type=int, help="sampling steps")
    parser.add_argument("--guidance", type=float, help="prompt guidance (CFG)")
    parser.add_argument("--strength", type=float, help="depth control strength")
    parser.add_argument("--size", metavar="WxH",
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
    parser.add_argument("--resume", action="store_true",
                        help="skip frames the manifest lists as done with intact files")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be done and exit")
    parser.add_argument("--backend-python", help="the backend's Python (default: the add-on's "
                                                 "preference or T2I_BACKEND_PYTHON)")
    parser.add_argument("--retries", type=int, default=1,
                        help="times a frame is retried after a backend failure (default 1)")
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


def main() -> int:
    args = build_parser().parse_args(script_argv())
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
                   "t2i_core.files",
                   "blender_t2i.batch.runner", "blender_t2i.generation.depth_control",
                   "blender_t2i.scene.preferences"):
        importlib.import_module(f"{addon.__name__}.{module}")
    core, pure = addon.blender_t2i, addon.t2i_core
    plan, batch = pure.batch_plan, core.batch.runner
    backend_failure = pure.backend_process.BackendFailure
    capture_error = core.generation.depth_control.CaptureError
    scene = bpy.context.scene
    try:
        options = _options(args, scene, plan, batch, core, bpy)
        count = batch.run(scene, options)
    except (plan.PlanError, KeyError, ValueError, capture_error) as exc:
        return fail(str(exc).strip("'\""))
    except (batch.BatchFailed, backend_failure) as exc:
        text = exc.report() if isinstance(exc, backend_failure) else str(exc)
        return fail(text, EXIT_FAILED)
    except OSError as exc:  # a full or read-only disk: the frames so far are intact
        return fail(pure.files.os_error_text(exc), EXIT_FAILED)
    finally:
        pure.job_queue.reset_job_queue(wait=True)  # the backend is gone when we exit
    if options.dry_run:
        print("t2i_batch: dry run, nothing generated", flush=True)
    else:
        print(f"t2i_batch: {count} frame(s) generated, all {len(options.frames)} done",
              flush=True)
    return 0


def _options(args: argparse.Namespace, scene, plan, batch, core, bpy):
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
    loras = [_lora(value, plan) for value in args.lora] if args.lora else None
    config = core.scene.preferences.backend_config(bpy.context)
    if args.backend_python:
        # only the interpreter changes: the HF cache and model folders stay
        config = dataclasses.replace(config, python=os.path.abspath(args.backend_python))
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
        base=args.base, controlnet=args.controlnet, loras=loras, scheduler=args.scheduler)


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
