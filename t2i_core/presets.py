"""Model families and presets: what the panel lists and what each maps to. Stdlib only (the
add-on imports it).

`FAMILY_INFO` holds each family's recommended settings and which pictures it takes; the backend's
family modules read their defaults from here, so there is one source. A preset is a family plus
weights. `tiny-sd15-depth` is built locally by the backend on first use: random weights that
prove the plumbing, not image quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TINY_SD15_DEPTH = "tiny-sd15-depth"
TINY = "tiny"  # a weights value meaning "the backend's own tiny random model for this family"
# The tiny SD 1.5 files a ComfyUI server loads (backend/tiny/comfyui_files.py writes them; the
# ComfyUI bridge resolves `tiny` to them).
TINY_COMFYUI_CHECKPOINT = "tiny_sd15_comfy.safetensors"
TINY_COMFYUI_CONTROLNET = "tiny_sd15_depth_controlnet_comfy.safetensors"
TINY_COMFYUI_LORA = "tiny_sd15_lora_comfy.safetensors"

# What a family can take: the depth control image (always sent), the colour render (as init or
# input picture), the capture's float depth (its EXR, or a .npy) and extra reference pictures.
DEPTH, RENDER, DEPTH_FLOAT, REFERENCES = "depth", "render", "depth_float", "references"


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    label: str
    steps: int
    guidance: float
    control_strength: float
    size_multiple: int
    default_size: int
    inputs: tuple[str, ...]
    roles: tuple[str, ...]  # weights a model spec names: base, controlnet...
    uses_control_strength: bool = True
    uses_negative_prompt: bool = True
    # Takes a `mask_image` beside the init image and the depth (a diffusers inpaint pipeline
    # that keeps the depth control); the others refuse a mask. An inpainting family takes the
    # init image with its mask even where `inputs` has no RENDER (no img2img without one).
    inpaint: bool = False
    optional_roles: tuple[str, ...] = ()  # weights a spec may add (an SDXL `vae`)
    flow_match: bool = False  # True: only the model's own scheduler applies
    # A video family takes a clip (`control_frames`, one depth picture a frame) and makes one
    # frame per depth frame. Its model runs clips of clip_frame_step * k + 1 frames, each
    # clip_frame_step frames one latent frame (Wan's VAE: 4); 0 = stills only.
    clip_frame_step: int = 0

    @property
    def takes_scheduler(self) -> bool:
        return not self.flow_match

    @property
    def takes_clip(self) -> bool:
        return self.clip_frame_step > 0

    def model_frames(self, frames: int) -> int:
        """The frames the model runs for a clip of `frames`: the next step * k + 1 (the backend
        pads the clip with its last depth frame and drops the extra results)."""
        step = self.clip_frame_step
        return frames if step <= 0 else (max(frames, 1) - 1 + step - 1) // step * step + 1


# ComfyUI keeps the transformer families as separate files: the VAE and text encoders may be
# named beside the diffusion model (backend/families/common.py loads them).
SPLIT_ROLES = ("vae", "text_encoder", "text_encoder_2")

FAMILY_INFO: dict[str, FamilyInfo] = {info.name: info for info in (
    FamilyInfo("sd15_controlnet", "SD 1.5 + ControlNet", 25, 7.5, 1.0, 8, 512,
               (DEPTH, RENDER), ("base", "controlnet"), inpaint=True),
    FamilyInfo("sdxl_controlnet", "SDXL + ControlNet", 30, 6.0, 0.5, 8, 1024,
               (DEPTH, RENDER), ("base", "controlnet"), inpaint=True, optional_roles=("vae",)),
    FamilyInfo("sdxl_controlnet_union", "SDXL + ControlNet Union", 30, 6.0, 0.7, 8, 1024,
               (DEPTH, RENDER), ("base", "controlnet"), inpaint=True, optional_roles=("vae",)),
    FamilyInfo("sd2_depth2img", "SD 2 depth2img", 50, 7.5, 1.0, 8, 768,
               (DEPTH, RENDER, DEPTH_FLOAT), ("base",), uses_control_strength=False),
    FamilyInfo("flux_depth", "FLUX.1 Depth", 30, 10.0, 1.0, 16, 1024,
               (DEPTH,), ("base",), uses_control_strength=False, uses_negative_prompt=False,
               inpaint=True, flow_match=True,
               optional_roles=SPLIT_ROLES),
    FamilyInfo("flux_controlnet", "FLUX.1 + ControlNet", 28, 3.5, 0.5, 16, 1024,
               (DEPTH,), ("base", "controlnet"), uses_negative_prompt=False, inpaint=True,
               flow_match=True,
               optional_roles=SPLIT_ROLES),
    FamilyInfo("zimage_controlnet", "Z-Image Turbo + Fun ControlNet Union", 8, 0.0, 0.75, 16,
               1024, (DEPTH,), ("base", "controlnet"), inpaint=True,  # with ControlNet 2.x
               flow_match=True,
               optional_roles=SPLIT_ROLES),
    FamilyInfo("qwen_image_controlnet", "Qwen-Image + ControlNet Union", 30, 4.0, 1.0, 16, 1024,
               (DEPTH,), ("base", "controlnet"), flow_match=True,
               optional_roles=SPLIT_ROLES),
    FamilyInfo("qwen_image_edit", "Qwen-Image-Edit 2511", 40, 4.0, 1.0, 16, 1024,
               (DEPTH, RENDER, REFERENCES), ("base",), uses_control_strength=False,
               flow_match=True,
               optional_roles=SPLIT_ROLES),
    FamilyInfo("flux_kontext", "FLUX.1 Kontext", 28, 2.5, 1.0, 16, 1024,
               (DEPTH, RENDER, REFERENCES), ("base",), uses_control_strength=False,
               uses_negative_prompt=False, flow_match=True,
               optional_roles=SPLIT_ROLES),
    FamilyInfo("flux2", "FLUX.2 (dev / klein)", 50, 4.0, 1.0, 16, 1024,
               (DEPTH, RENDER, REFERENCES), ("base",), uses_control_strength=False,
               uses_negative_prompt=False, flow_match=True,
               optional_roles=SPLIT_ROLES),
    # Trained at 832 x 480, 81 frames; the default size is a square of about that area.
    FamilyInfo("wan_vace", "Wan 2.1 VACE (video)", 30, 5.0, 1.0, 16, 624,
               (DEPTH, REFERENCES), ("base",), flow_match=True,
               optional_roles=("vae", "text_encoder"), clip_frame_step=4),
)}


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    description: str
    family: str
    weights: dict[str, str]  # role -> HF repo id, local folder/file, or "tiny"
    steps: int
    guidance: float
    control_strength: float
    size_multiple: int
    default_size: int
    extra: dict[str, Any] = field(default_factory=dict)  # more model-spec fields

    def model_spec(self) -> dict[str, Any]:
        return {"preset": self.name, "family": self.family, **self.weights, **self.extra}


def _preset(name: str, label: str, description: str, family: str, weights: dict[str, str],
            **overrides: Any) -> Preset:
    """A preset with its family's recommended settings unless overridden."""
    info = FAMILY_INFO[family]
    settings: dict[str, Any] = {
        "steps": info.steps, "guidance": info.guidance,
        "control_strength": info.control_strength, "size_multiple": info.size_multiple,
        "default_size": info.default_size, "extra": {},
    }
    settings.update(overrides)
    return Preset(name=name, label=label, description=description, family=family,
                  weights=weights, **settings)


PRESETS: tuple[Preset, ...] = (
    _preset(TINY_SD15_DEPTH, "Tiny SD1.5 Depth (offline test)",
            "Random weights built locally: checks the set-up, makes noise, not pictures",
            "sd15_controlnet", {"base": TINY, "controlnet": TINY}, steps=4),
    _preset("sd15-depth", "SD 1.5 + Depth ControlNet",
            "stable-diffusion-v1-5 with lllyasviel's v1.1 depth ControlNet, 512 px",
            "sd15_controlnet",
            {"base": "stable-diffusion-v1-5/stable-diffusion-v1-5",
             "controlnet": "lllyasviel/control_v11f1p_sd15_depth"}),
    _preset("sdxl-depth", "SDXL + Depth ControlNet",
            "SDXL base 1.0 with the diffusers depth ControlNet and the fp16-fix VAE, 1024 px",
            "sdxl_controlnet",
            {"base": "stabilityai/stable-diffusion-xl-base-1.0",
             "controlnet": "diffusers/controlnet-depth-sdxl-1.0",
             "vae": "madebyollin/sdxl-vae-fp16-fix"}),
    _preset("sdxl-union-depth", "SDXL + ControlNet Union (depth)",
            "SDXL base 1.0 with xinsir's ControlNet Union in depth mode, 1024 px",
            "sdxl_controlnet_union",
            {"base": "stabilityai/stable-diffusion-xl-base-1.0",
             "controlnet": "xinsir/controlnet-union-sdxl-1.0",
             "vae": "madebyollin/sdxl-vae-fp16-fix"}),
    _preset("sd2-depth", "SD 2 depth2img",
            "stable-diffusion-2-depth: takes the float depth directly (no ControlNet), 768 px",
            "sd2_depth2img", {"base": "stabilityai/stable-diffusion-2-depth"}),
    _preset("flux-depth", "FLUX.1 Depth [dev]",
            "FLUX.1-Depth-dev: depth concatenated with the latents, bf16, ~24 GB",
            "flux_depth", {"base": "black-forest-labs/FLUX.1-Depth-dev"}),
    _preset("flux-controlnet-depth", "FLUX.1 [dev] + Depth ControlNet",
            "FLUX.1-dev with Shakker-Labs' depth ControlNet",
            "flux_controlnet",
            {"base": "black-forest-labs/FLUX.1-dev",
             "controlnet": "Shakker-Labs/FLUX.1-dev-ControlNet-Depth"}),
    _preset("zimage-turbo-depth", "Z-Image Turbo + Fun ControlNet Union",
            "Z-Image Turbo, 8 steps, with alibaba-pai's Fun ControlNet Union (depth)",
            "zimage_controlnet",
            {"base": "Tongyi-MAI/Z-Image-Turbo",
             "controlnet": "alibaba-pai/Z-Image-Turbo-Fun-Controlnet-Union/"
                           "Z-Image-Turbo-Fun-Controlnet-Union.safetensors"}),
    _preset("qwen-image-depth", "Qwen-Image + ControlNet Union",
            "Qwen-Image with InstantX's ControlNet Union (depth), ~40 GB bf16",
            "qwen_image_controlnet",
            {"base": "Qwen/Qwen-Image", "controlnet": "InstantX/Qwen-Image-ControlNet-Union"}),
    _preset("qwen-image-edit", "Qwen-Image-Edit 2511",
            "Instruction editing with the render and depth as input pictures, ~57 GB bf16",
            "qwen_image_edit", {"base": "Qwen/Qwen-Image-Edit-2511"}),
    _preset("flux-kontext", "FLUX.1 Kontext [dev]",
            "Instruction editing with the render (or depth) as the reference picture",
            "flux_kontext", {"base": "black-forest-labs/FLUX.1-Kontext-dev"}),
    _preset("flux2-klein", "FLUX.2 [klein] 4B",
            "Distilled FLUX.2, 4 steps; the render/depth go in as reference pictures",
            "flux2", {"base": "black-forest-labs/FLUX.2-klein-4B"}, steps=4, guidance=1.0),
    _preset("flux2-dev", "FLUX.2 [dev]",
            "FLUX.2 dev with reference pictures; very large (Mistral text encoder)",
            "flux2", {"base": "black-forest-labs/FLUX.2-dev"}),
    _preset("tiny-wan-vace", "Tiny Wan VACE (offline test)",
            "Random weights built locally: checks a clip's set-up, makes noise, not video",
            "wan_vace", {"base": TINY}, steps=4),
    _preset("wan-vace-1.3b", "Wan 2.1 VACE 1.3B (video, depth)",
            "A clip from a frame range's depth (batch --clip), 832 x 480 as trained; ~14 GB "
            "in bf16, 11 of them the UMT5 text encoder",
            "wan_vace", {"base": "Wan-AI/Wan2.1-VACE-1.3B-diffusers"}),
)

_BY_NAME = {preset.name: preset for preset in PRESETS}


def get_preset(name: str) -> Preset:
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise KeyError(f"unknown preset '{name}' (known: {known})") from None


def snap_size(value: int, multiple: int, minimum: int | None = None) -> int:
    """Round to the nearest multiple the model accepts (never below one multiple)."""
    minimum = multiple if minimum is None else minimum
    return max(minimum, round(value / multiple) * multiple)
