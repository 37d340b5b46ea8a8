"""The .blend's generation history: the last results with the settings that made them.

Entries live in `scene.t2i.history` (saved with the .blend); each points at its image datablock,
whose file sits under //t2i/ (or is packed), so nothing is lost when Blender restarts.
"""

from __future__ import annotations

import json
import time
from typing import Any

import bpy
from bpy.props import FloatProperty, IntProperty, PointerProperty, StringProperty

from ...t2i_core.job_record import JobRecord
from ...t2i_core.presets import PRESETS, get_preset

MAX_ENTRIES = 50


class T2IHistoryItem(bpy.types.PropertyGroup):
    # `name` (from PropertyGroup) is the job's stem
    image: PointerProperty(name="Image", type=bpy.types.Image)
    result_path: StringProperty(name="Result File")  # as the image has it (may be "//...")
    record_path: StringProperty(name="Settings File")
    created: StringProperty(name="Created")
    model_preset: StringProperty(name="Model")
    prompt: StringProperty(name="Prompt")
    negative_prompt: StringProperty(name="Negative Prompt")
    seed: IntProperty(name="Seed", min=0)
    steps: IntProperty(name="Steps")
    guidance: FloatProperty(name="Guidance")
    control_strength: FloatProperty(name="Depth Strength")
    width: IntProperty(name="Width")
    height: IntProperty(name="Height")
    # the user's own models (empty: the preset's)
    base_model: StringProperty(name="Base Model")
    controlnet_model: StringProperty(name="ControlNet")
    vae_model: StringProperty(name="VAE")
    loras_json: StringProperty(name="LoRAs")  # [[path, weight], ...]
    scheduler: StringProperty(name="Scheduler", default="default")


def add_entry(settings: Any, stem: str, record: JobRecord, image: bpy.types.Image | None,
              result_path: str, record_path: str) -> T2IHistoryItem:
    """Put a finished job at the top of the history, dropping the oldest beyond MAX_ENTRIES
    (their files stay on disk)."""
    item = settings.history.add()
    item.name = stem
    item.image = image
    item.result_path = result_path
    item.record_path = record_path
    item.created = time.strftime("%Y-%m-%d %H:%M:%S")
    for name, value in record.settings().items():  # the record's SETTINGS, nothing else
        if name == "model":
            item.model_preset = value
        elif name == "size":
            item.width, item.height = value
        else:
            setattr(item, name, value)
    _keep_own_models(item, record)
    settings.history.move(len(settings.history) - 1, 0)
    while len(settings.history) > MAX_ENTRIES:
        settings.history.remove(len(settings.history) - 1)
    settings.history_index = 0
    return settings.history[0]


def _keep_own_models(item: T2IHistoryItem, record: JobRecord) -> None:
    """The picks (weights that differ from the preset's), LoRAs and scheduler of the job."""
    known = {preset.name for preset in PRESETS}
    preset_weights = get_preset(record.model).weights if record.model in known else {}
    for role in ("base", "controlnet", "vae"):
        value = record.model_spec.get(role)
        if isinstance(value, str) and value != preset_weights.get(role):
            setattr(item, f"{role}_model", value)
    item.loras_json = json.dumps([list(lora) for lora in record.loras])
    item.scheduler = record.scheduler


def entry(settings: Any, index: int = -1) -> T2IHistoryItem:
    """History entry `index` (-1: the selected one); LookupError says what to do."""
    if not len(settings.history):
        raise LookupError("there are no results yet: generate one first")
    index = settings.history_index if index < 0 else index
    if not 0 <= index < len(settings.history):
        raise LookupError(f"there is no history entry {index}: pick a result in the history")
    return settings.history[index]


def reuse_settings(settings: Any, item: T2IHistoryItem) -> None:
    """Put an entry's settings back in the panel (model first: it resets steps/guidance),
    with its own models, LoRAs and scheduler."""
    if item.model_preset in {preset.name for preset in PRESETS}:
        settings.model_preset = item.model_preset
    settings.prompt = item.prompt
    settings.negative_prompt = item.negative_prompt
    settings.seed = item.seed
    settings.steps = item.steps
    settings.guidance = item.guidance
    settings.control_strength = item.control_strength
    settings.use_render_size = False
    settings.width, settings.height = item.width, item.height
    for role in ("base", "controlnet", "vae"):
        setattr(settings, f"{role}_model", getattr(item, f"{role}_model"))
    settings.loras.clear()
    for path, weight in json.loads(item.loras_json or "[]"):
        lora = settings.loras.add()
        lora.path, lora.weight, lora.enabled = path, weight, True
    settings.scheduler = item.scheduler or "default"


def register() -> None:
    bpy.utils.register_class(T2IHistoryItem)


def unregister() -> None:
    bpy.utils.unregister_class(T2IHistoryItem)
