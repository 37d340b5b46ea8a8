"""Per-scene settings (`scene.t2i`), shown in the panel and read by the operators."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ...compositor.compat import BLEND_RELATIVE_PATH
from ...t2i_core.presets import FAMILY_INFO, PRESETS, REFERENCES, RENDER, get_preset
from . import depth_settings, model_picks, projection_settings
from .history import T2IHistoryItem
from .model_picks import SCHEDULER_ITEMS, T2ILoraItem, pick_property

_PRESET_ITEMS = [(p.name, p.label, p.description) for p in PRESETS]


def _apply_preset_defaults(settings: T2ISceneSettings, _context: bpy.types.Context) -> None:
    preset = get_preset(settings.model_preset)
    settings.steps = preset.steps
    settings.guidance = preset.guidance
    settings.control_strength = preset.control_strength
    # Edit models restyle a picture: the render is their main input. ControlNet families
    # start from noise and take the render only when asked (img2img); the video family takes
    # reference pictures but no render.
    family = FAMILY_INFO.get(preset.family)
    settings.use_render = family is not None and {REFERENCES, RENDER} <= set(family.inputs)


class T2ISceneSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="What the image should show")
    negative_prompt: StringProperty(name="Negative Prompt",
                                    description="What the image should not show")
    seed: IntProperty(name="Seed", default=0, min=0,
                      description="Same seed, settings and depth give the same image")
    steps: IntProperty(name="Steps", default=25, min=1, max=1000)
    guidance: FloatProperty(name="Guidance", default=7.5, min=0.0, max=50.0,
                            description="How strongly the prompt steers the image (CFG)")
    control_strength: FloatProperty(name="Depth Strength", default=1.0, min=0.0, max=2.0,
                                    description="How strongly the depth map shapes the image")
    model_preset: EnumProperty(name="Model", items=_PRESET_ITEMS, default="sd15-depth",
                               update=_apply_preset_defaults)
    use_render_size: BoolProperty(
        name="Use Render Size", default=True,
        description="Generate at the render resolution (snapped to the model's size multiple)")
    width: IntProperty(name="Width", default=512, min=0, max=8192, subtype="PIXEL")
    height: IntProperty(name="Height", default=512, min=0, max=8192, subtype="PIXEL")
    depth: PointerProperty(type=depth_settings.T2IDepthSettings)
    projection: PointerProperty(type=projection_settings.T2IProjectionSettings)
    # --- the panel's workflow (issue #5) ---
    use_random_seed: BoolProperty(
        name="Random Seed", default=False,
        description="Pick a new seed for every job (the history keeps the one used)")
    output_targets: EnumProperty(
        name="Outputs", options={"ENUM_FLAG"}, default=set(),
        description="Where each result goes besides its own image datablock",
        items=[("CAMERA_BACKGROUND", "Camera Background", "Show the result as the active "
                "camera's background image (lines up with the camera view)", "CAMERA_DATA", 1),
               ("COMPOSITOR", "Compositor Overlay", "An Image node mixed over the render in "
                "the compositor (the user's nodes are kept)", "NODE_COMPOSITING", 2),
               ("PROJECTION", "Project on Selected", "Project the result from the camera onto "
                "the selected meshes, mixed over their own materials (see Projection)",
                "MOD_UVPROJECT", 4),
               ("MATERIAL", "Active Material", "Use the result as an image texture in the "
                "active object's material", "MATERIAL", 8)])
    output_dir: StringProperty(
        name="Output Folder", default="//t2i/", subtype="DIR_PATH", options=BLEND_RELATIVE_PATH,
        description="Where results and depth maps are saved ('//' = beside the .blend; an "
                    "unsaved file uses a temp folder and packs its images)")
    overlay_opacity: FloatProperty(
        name="Overlay Opacity", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
        description="Opacity of the camera background and compositor overlays")
    use_render: BoolProperty(
        name="Use Render", default=False,
        description="Also send the scene's colour render: the init image for SD families "
                    "(img2img), the input picture for edit models (Kontext, FLUX.2, Qwen Edit)")
    render_strength: FloatProperty(
        name="Render Strength", default=0.75, min=0.01, max=1.0, subtype="FACTOR",
        description="Img2img: how much the render may change (1 = ignore its colours)")
    generate_after_render: BoolProperty(
        name="Generate After Render", default=False,
        description="After each render (F12) finishes, generate with these settings and update "
                    "the T2I Result image (never during the add-on's own renders or batch runs)")
    history: CollectionProperty(type=T2IHistoryItem)
    history_index: IntProperty(name="History", default=0, min=0)
    # --- your own models (issue #13): empty = the preset's weights ---
    base_model: pick_property(
        "base", "Base Model", "A checkpoint or diffusion model of the preset's family, "
        "instead of the preset's (empty: the preset's own)")
    controlnet_model: pick_property(
        "controlnet", "ControlNet", "A depth ControlNet of the preset's family, instead of "
        "the preset's (empty: the preset's own)")
    vae_model: pick_property(
        "vae", "VAE", "A VAE for SDXL families (empty: the preset's or the checkpoint's own)")
    loras: CollectionProperty(type=T2ILoraItem)
    lora_index: IntProperty(name="LoRA", default=0, min=0)
    scheduler: EnumProperty(
        name="Scheduler", items=SCHEDULER_ITEMS, default="default",
        description="The sampler of SD 1.5, SD 2 and SDXL families; FLUX, Z-Image and Qwen "
                    "run their own")


def register() -> None:
    depth_settings.register()  # before T2ISceneSettings, which points at them
    projection_settings.register()
    model_picks.register()
    bpy.utils.register_class(T2ISceneSettings)
    bpy.types.Scene.t2i = bpy.props.PointerProperty(type=T2ISceneSettings)


def unregister() -> None:
    del bpy.types.Scene.t2i
    bpy.utils.unregister_class(T2ISceneSettings)
    model_picks.unregister()
    projection_settings.unregister()
    depth_settings.unregister()
