"""The panel's picks of the user's own models: base, ControlNet and VAE fields with a search
over the model library, the LoRA stack, the scheduler. Read into a job by
generation/scene_job.job_settings; checked by t2i_core.job_request.check_settings."""

from __future__ import annotations

import os
from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from ...t2i_core import model_library as lib
from ...t2i_core.presets import get_preset
from . import library
from .preferences import uses_comfyui

PICK_ROLES = ("base", "controlnet", "vae")
SCHEDULER_ITEMS = [
    ("default", "Default", "The model's own scheduler"),
    ("euler", "Euler", "EulerDiscreteScheduler"),
    ("euler_a", "Euler Ancestral", "EulerAncestralDiscreteScheduler: more varied, never "
                                   "converges to one picture"),
    ("ddim", "DDIM", "DDIMScheduler"),
    ("dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler"),
    ("dpmpp_2m_karras", "DPM++ 2M Karras", "DPMSolverMultistepScheduler with Karras sigmas"),
    ("unipc", "UniPC", "UniPCMultistepScheduler: good pictures in few steps"),
]


def _family(context: bpy.types.Context) -> str:
    scene = getattr(context, "scene", None)
    return get_preset(scene.t2i.model_preset).family if scene is not None else ""


def _searcher(pick: str):
    def search(_self: Any, context: bpy.types.Context, edit_text: str) -> list[tuple[str, str]]:
        return library.search(pick, _family(context), edit_text)
    return search


def pick_property(pick: str, label: str, description: str) -> Any:
    return StringProperty(name=label, description=description, subtype="FILE_PATH",
                          search=_searcher(pick), search_options={"SUGGESTION", "SORT"})


class T2ILoraItem(bpy.types.PropertyGroup):
    path: pick_property("lora", "LoRA", "A LoRA the model library found (.safetensors, "
                                        "kohya or diffusers format), or any file or repo id")
    weight: FloatProperty(name="Weight", default=1.0, soft_min=-1.0, soft_max=2.0,
                          min=-10.0, max=10.0, description="How strongly the LoRA applies "
                                                           "(0: not at all)")
    enabled: BoolProperty(name="On", default=True, description="Use this LoRA in the job")


def picks(settings: Any) -> dict[str, str]:
    """role -> the picked weights, as the job sends them (empty picks left out)."""
    return {role: library.path_of(getattr(settings, f"{role}_model"))
            for role in PICK_ROLES if getattr(settings, f"{role}_model").strip()}


def active_loras(settings: Any) -> tuple[tuple[str, float], ...]:
    # rounded: a float property holds 0.7 as 0.699999988
    return tuple((library.path_of(item.path), round(item.weight, 6)) for item in settings.loras
                 if item.enabled and item.path.strip())


def find_model(reference: str) -> str:
    """A pick given by hand (the batch's --base, --lora): an existing file or folder as an
    absolute path, else a file name or library path the model library knows, else as given
    (an HF repo id; a missing file is refused by check_settings with its name)."""
    if uses_comfyui():  # the server's names: nothing here to look at
        found = library.current().find(reference)
        return found.reference if found is not None else reference
    path = os.path.abspath(os.path.expanduser(reference))
    if os.path.exists(path):
        return path  # no scan needed
    found = library.current().find(reference)
    if found is not None:
        return found.reference
    return path if lib.looks_like_path(reference) else reference


def apply(settings: Any, base: str | None = None, controlnet: str | None = None,
          loras: list[tuple[str, float]] | None = None, scheduler: str | None = None) -> None:
    """Put picks given by hand into scene.t2i (None leaves the scene's)."""
    if base is not None:
        settings.base_model = find_model(base) if base else ""
    if controlnet is not None:
        settings.controlnet_model = find_model(controlnet) if controlnet else ""
    if loras is not None:
        settings.loras.clear()
        for path, weight in loras:
            item = settings.loras.add()
            item.path, item.weight, item.enabled = find_model(path), weight, True
    if scheduler is not None:
        if scheduler not in {value for value, _label, _tip in SCHEDULER_ITEMS}:
            known = ", ".join(value for value, _label, _tip in SCHEDULER_ITEMS)
            raise ValueError(f"unknown scheduler '{scheduler}' (known: {known})")
        settings.scheduler = scheduler


def register() -> None:
    bpy.utils.register_class(T2ILoraItem)


def unregister() -> None:
    bpy.utils.unregister_class(T2ILoraItem)
