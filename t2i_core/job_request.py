"""What a generate job is, independent of Blender: its settings, size rules, ids, and the one
function that builds and validates the `generate` message.

Every way of starting a job (panel, background operator, batch script, render handler) first
gathers a JobSettings with everything applied (scene settings, preferences, batch options, a
model of the user's own), then calls `build_request`, which validates last, so nothing can
change a request after it was checked.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

from . import model_library, protocol
from .presets import DEPTH_FLOAT, FAMILY_INFO, RENDER, TINY, FamilyInfo, Preset, snap_size

PREVIEW_DEFAULT = {"every": 1, "max_size": 256}
_stem_counter = itertools.count()


@dataclass(frozen=True)
class JobSettings:
    """Every setting one job is made from, after all of them have been applied."""

    preset: Preset
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    control_strength: float
    size: tuple[int, int]
    model: dict[str, Any] = field(default_factory=dict)  # {} = the preset's own model spec
    memory_mode: str = "auto"
    device: str = "auto"  # "auto" leaves the choice to the backend
    use_render: bool = False  # send the colour render: img2img init or edit input picture
    render_strength: float = 0.75
    # Inpainting: a grey PNG (white = regenerate, black = keep the init image), sent with the
    # init image as `mask_image`; with one, render_strength is the white part's denoise
    # strength (1.0 = from noise alone).
    mask_image: str | None = None
    # step previews: {"every", "max_size"}, False for none, None for the backend's default
    preview: dict[str, int] | bool | None = None
    # the user's own weights over the spec's, by role ("base", "controlnet", "vae"): files or
    # folders the model library found, or HF repo ids
    picks: dict[str, str] = field(default_factory=dict)
    loras: tuple[tuple[str, float], ...] = ()  # (file or repo id, weight), in order
    scheduler: str = "default"
    # the picks and LoRAs name a ComfyUI server's files, not this machine's: the server checks
    # them (the bridge answers MODEL_NOT_FOUND naming the server folder)
    server_models: bool = False

    def model_spec(self) -> dict[str, Any]:
        """The model spec sent: the user's own or the preset's, with the picks and the
        device choice."""
        spec = dict(self.model or self.preset.model_spec())
        spec.update({role: reference for role, reference in self.picks.items() if reference})
        if self.device != "auto":
            spec["device"] = self.device
        return spec

    def but(self, **changes: Any) -> JobSettings:
        return replace(self, **changes)


def job_size(render_width: int, render_height: int, percentage: int, use_render_size: bool,
             width: int, height: int, preset: Preset) -> tuple[int, int]:
    """The generation size: the camera's render resolution (with its percentage) or the
    user's own, snapped to the model's size multiple."""
    if use_render_size:
        width = render_width * percentage // 100
        height = render_height * percentage // 100
    if width <= 0 or height <= 0:
        raise ValueError(f"the image size {width}x{height} is empty: set a width and height")
    multiple = preset.size_multiple
    return snap_size(width, multiple), snap_size(height, multiple)


# Within this factor of the area a model was trained at (smaller or larger), it composes as
# trained; far beyond it, SD-class models repeat subjects (larger) or lose them (smaller).
TRAINED_AREA_FACTOR = 2.0


@dataclass(frozen=True)
class SizeAdvice:
    """A size the model was not trained for, and the nearest one it was (same aspect)."""

    message: str
    size: tuple[int, int]


def size_advice(size: tuple[int, int], preset: Preset) -> SizeAdvice | None:
    """None when `size` suits the preset's model; else why not and the size to use instead:
    the model's trained area at the same aspect ratio, snapped to its multiple."""
    if preset.weights.get("base") == TINY:  # random weights: trained at no size
        return None
    width, height = size
    trained = preset.default_size
    ratio = width * height / trained ** 2
    if 1 / TRAINED_AREA_FACTOR <= ratio <= TRAINED_AREA_FACTOR:
        return None
    aspect = width / height
    multiple = preset.size_multiple
    suggested = (snap_size(round(trained * aspect ** 0.5), multiple),
                 snap_size(round(trained / aspect ** 0.5), multiple))
    effect = "repeated, broken subjects" if ratio > 1 else "blurred, broken pictures"
    return SizeAdvice(f"{width} x {height} is {ratio:.1f}x the {trained} x {trained} pixels "
                      f"{preset.label} was trained at: expect {effect}", suggested)


def new_job_stem(preset: Preset, seed: int) -> str:
    """A file-name-safe, sortable stem shared by a job's depth and result files, unique in
    this process (a counter) and across processes writing one folder (the process id)."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    unique = f"{int(now * 1000) % 1000:03d}{os.getpid() % 1000:03d}{next(_stem_counter):04d}"
    return f"{stamp}-{unique}_{preset.name}_s{seed}"


def family_info(settings: JobSettings) -> FamilyInfo:
    """The model family the job runs; ValueError names the known ones."""
    name = str(settings.model_spec().get("family"))
    if name not in FAMILY_INFO:
        raise ValueError(f"unknown model family '{name}' (known: {', '.join(FAMILY_INFO)})")
    return FAMILY_INFO[name]


def takes_float_depth(settings: JobSettings) -> bool:
    """The family reads the capture's float depth beside the 8-bit map (SD 2 depth2img)."""
    return DEPTH_FLOAT in family_info(settings).inputs


def check_settings(settings: JobSettings) -> None:
    """What can be checked before any capture: ValueError says which setting to fix.
    build_request checks it again, with everything else, on the finished request."""
    family = family_info(settings)
    if settings.mask_image is not None:
        if not family.inpaint:
            raise ValueError(f"{family.label} cannot inpaint: pick a family that can "
                             f"({', '.join(inpaint_families())})")
        if not settings.use_render:
            raise ValueError("inpainting needs an init image: turn on Use Render")
    elif settings.use_render and RENDER not in family.inputs:
        raise ValueError(f"{family.label} takes no colour render: turn off Use Render")
    check_picks(settings, family)


def check_picks(settings: JobSettings, family: FamilyInfo) -> None:
    """The picked weights exist and are of the job's family (their headers say so), the
    LoRAs exist, and the scheduler is one the family runs."""
    roles = family.roles + family.optional_roles
    for role, reference in settings.picks.items():
        if not reference:
            continue
        if role not in roles:
            raise ValueError(f"{family.label} takes no {role} model: clear the {role} pick")
        if settings.server_models or not model_library.looks_like_path(reference):
            continue  # an HF repo id: the backend looks it up in its cache
        problem = model_library.pick_problem(model_library.inspect(reference), reference,
                                             family.name, role, family.label)
        if problem:
            raise ValueError(problem)
    for path, weight in settings.loras:
        if not math.isfinite(weight):
            raise ValueError(f"the LoRA '{path}' has no finite weight")
        if not settings.server_models and model_library.looks_like_path(path):
            entry = model_library.inspect(path)
            if entry is None:
                raise ValueError(f"the LoRA '{path}' is not on this machine any more: remove "
                                 "it from the LoRA list, or rescan the library")
            if entry.role and entry.role != model_library.LORA:
                raise ValueError(f"'{entry.name}' in the LoRA list is a "
                                 f"{model_library.ROLE_LABELS[entry.role]}, not a LoRA")
    if settings.scheduler not in protocol.SCHEDULERS:
        raise ValueError(f"unknown scheduler '{settings.scheduler}' (known: "
                         f"{', '.join(protocol.SCHEDULERS)})")
    if settings.scheduler != "default" and not family.takes_scheduler:
        raise ValueError(f"{family.label} runs its own flow-matching scheduler only: set the "
                         "scheduler to Default")


def lora_warnings(settings: JobSettings) -> list[str]:
    """LoRAs whose headers say they were trained for another base than the job's: a warning,
    not a refusal (the header may not tell, and some cross-family LoRAs load)."""
    family = family_info(settings)
    if settings.server_models:
        return []  # their headers are on the server
    base = settings.model_spec().get("base")
    entry = model_library.inspect(base) if isinstance(base, str) and \
        model_library.looks_like_path(base) else None
    arch = entry.arch if entry is not None and entry.arch else \
        model_library.family_base_arch(family.name)
    warnings = []
    for path, _weight in settings.loras:
        lora = model_library.inspect(path) if model_library.looks_like_path(path) else None
        if lora is not None and model_library.lora_fits(lora, arch) is False:
            fits = ", ".join(model_library.ARCH_LABELS.get(a, a) for a in lora.lora_bases[:1])
            warnings.append(f"the LoRA '{lora.name}' was made for {fits}, not "
                            f"{model_library.ARCH_LABELS.get(arch, arch)}")
    return warnings


def inpaint_families() -> list[str]:
    """The labels of the families that take a mask (what the panel may offer)."""
    return [info.label for info in FAMILY_INFO.values() if info.inpaint]


def build_request(job_id: str, settings: JobSettings, control_image: str, output_dir: str, *,
                  init_image: str | None = None, depth_float: str | None = None,
                  metadata: dict[str, str] | None = None,
                  control_frames: list[str] | None = None) -> dict[str, Any]:
    """The `generate` message for a job, validated: a ProtocolError or ValueError names the
    setting to fix, here rather than in the backend. `control_frames`: a video family's clip,
    one depth picture a frame, led by `control_image`."""
    check_settings(settings)
    if (init_image is not None) != settings.use_render:
        raise ValueError("Use Render needs the colour render as init image, and only then")
    model = settings.model_spec()
    width, height = settings.size
    message: dict[str, Any] = {
        "type": protocol.GENERATE, "id": job_id, "model": model,
        "prompt": settings.prompt, "negative_prompt": settings.negative_prompt,
        "seed": settings.seed, "steps": settings.steps, "guidance": settings.guidance,
        "control_strength": settings.control_strength, "width": width, "height": height,
        "control_image": control_image, "output_dir": output_dir,
        "memory_mode": settings.memory_mode,
    }
    if settings.preview is not None:
        message["preview"] = settings.preview
    if settings.loras:
        message["loras"] = [{"path": path, "weight": weight} for path, weight in settings.loras]
    if settings.scheduler != "default":
        message["scheduler"] = settings.scheduler
    if init_image is not None:
        message["init_image"] = init_image
        message["strength"] = settings.render_strength
    if settings.mask_image is not None:
        message["mask_image"] = settings.mask_image
    if depth_float is not None:
        message["depth_float"] = depth_float
    if metadata:
        message["metadata"] = dict(metadata)
    if control_frames:
        message["control_frames"] = list(control_frames)
    protocol.parse_generate(message)  # fail here, with the field's name, not in the backend
    return message
