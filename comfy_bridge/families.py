"""What a ComfyUI server can run, from its GET /object_info: the core nodes each family's graph
needs, the model files it lists per folder, and how a model spec's references (server names,
`tiny`, a preset's Hugging Face ids) become the file names the server's loaders take.

Pure functions over a ServerInfo: no I/O (the bridge fetches /object_info and builds one per
connection). docs/comfyui_graphs.md lists the nodes and folders per family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2i_core.presets import (
    FAMILY_INFO,
    PRESETS,
    REFERENCES,
    RENDER,
    TINY,
    TINY_COMFYUI_CHECKPOINT,
    TINY_COMFYUI_CONTROLNET,
    TINY_SD15_DEPTH,
)

TINY_CHECKPOINT, TINY_CONTROLNET = TINY_COMFYUI_CHECKPOINT, TINY_COMFYUI_CONTROLNET


@dataclass(frozen=True)
class Folder:
    """A server model folder and the loader input whose choices list its files."""

    name: str  # as ComfyUI names it under models/
    node: str
    input: str


CHECKPOINTS = Folder("checkpoints", "CheckpointLoaderSimple", "ckpt_name")
CONTROLNET = Folder("controlnet", "ControlNetLoader", "control_net_name")
LORAS = Folder("loras", "LoraLoader", "lora_name")
DIFFUSION_MODELS = Folder("diffusion_models", "UNETLoader", "unet_name")
TEXT_ENCODERS = Folder("text_encoders", "CLIPLoader", "clip_name")
VAE = Folder("vae", "VAELoader", "vae_name")
MODEL_PATCHES = Folder("model_patches", "ModelPatchLoader", "name")
FOLDERS = (CHECKPOINTS, CONTROLNET, LORAS, DIFFUSION_MODELS, TEXT_ENCODERS, VAE, MODEL_PATCHES)

# The protocol `models` entry's role for each folder.
_ENTRY_ROLE = {"checkpoints": "checkpoint", "controlnet": "controlnet", "loras": "lora",
               "diffusion_models": "diffusion_model", "text_encoders": "text_encoder",
               "vae": "vae", "model_patches": "controlnet"}


@dataclass(frozen=True)
class ServerInfo:
    """What one server offers: its node classes and the values each combo input allows."""

    nodes: frozenset[str]
    choices: dict[tuple[str, str], tuple[str, ...]]

    @classmethod
    def from_object_info(cls, info: dict[str, Any]) -> ServerInfo:
        choices: dict[tuple[str, str], tuple[str, ...]] = {}
        for node, schema in info.items():
            inputs = schema.get("input") if isinstance(schema, dict) else None
            for group in ("required", "optional"):
                specs = inputs.get(group) if isinstance(inputs, dict) else None
                for name, spec in (specs or {}).items():
                    values = combo_values(spec)
                    if values is not None:
                        choices[(node, name)] = values
        return cls(frozenset(info), choices)

    def files(self, folder: Folder) -> tuple[str, ...]:
        return self.choices.get((folder.node, folder.input), ())


def combo_values(spec: Any) -> tuple[str, ...] | None:
    """A combo input's allowed values, in either of /object_info's forms: `[[values], {...}]`
    (classic nodes) or `["COMBO", {"options": [values]}]` (nodes of ComfyUI's v3 schema)."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return tuple(str(v) for v in spec[0])
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return tuple(str(v) for v in spec[1].get("options", ()))
    return None


# --- families -----------------------------------------------------------------------------------

_SAMPLE = {"CLIPTextEncode", "KSampler", "VAEDecode", "SaveImage", "LoadImage", "ImageScale"}
_SPLIT = {"UNETLoader", "VAELoader"}
# Nodes each family's graph always has (graphs.py builds them).
_FAMILY_NODES: dict[str, set[str]] = {
    "sd15_controlnet": _SAMPLE | {"CheckpointLoaderSimple", "ControlNetLoader",
                                  "ControlNetApplyAdvanced", "EmptyLatentImage"},
    "sdxl_controlnet": _SAMPLE | {"CheckpointLoaderSimple", "ControlNetLoader",
                                  "ControlNetApplyAdvanced", "EmptyLatentImage"},
    "sdxl_controlnet_union": _SAMPLE | {"CheckpointLoaderSimple", "ControlNetLoader",
                                        "SetUnionControlNetType", "ControlNetApplyAdvanced",
                                        "EmptyLatentImage"},
    "flux_depth": _SAMPLE | _SPLIT | {"DualCLIPLoader", "InstructPixToPixConditioning",
                                      "FluxGuidance", "ConditioningZeroOut"},
    "flux_controlnet": _SAMPLE | _SPLIT | {"DualCLIPLoader", "ControlNetLoader",
                                           "ControlNetApplyAdvanced", "FluxGuidance",
                                           "ConditioningZeroOut", "EmptySD3LatentImage"},
    "flux_kontext": _SAMPLE | _SPLIT | {"DualCLIPLoader", "FluxKontextImageScale", "VAEEncode",
                                        "ReferenceLatent", "FluxGuidance", "ConditioningZeroOut",
                                        "EmptySD3LatentImage"},
    "qwen_image_controlnet": _SAMPLE | _SPLIT | {"CLIPLoader", "ModelSamplingAuraFlow",
                                                 "ModelPatchLoader",
                                                 "QwenImageDiffsynthControlnet",
                                                 "EmptySD3LatentImage"},
    "qwen_image_edit": (_SAMPLE - {"CLIPTextEncode"}) | _SPLIT | {
        "CLIPLoader", "TextEncodeQwenImageEditPlus", "ModelSamplingAuraFlow",
        "ImageScaleToTotalPixels", "EmptySD3LatentImage"},
    # Z-Image's Fun ControlNet and FLUX.2 came after ComfyUI 0.3.64: their nodes say so.
    "zimage_controlnet": _SAMPLE | _SPLIT | {"CLIPLoader", "ModelPatchLoader",
                                             "ZImageFunControlnet", "ModelSamplingAuraFlow",
                                             "ConditioningZeroOut", "EmptySD3LatentImage"},
    "flux2": (_SAMPLE - {"KSampler"}) | _SPLIT | {
        "CLIPLoader", "FluxGuidance", "ReferenceLatent", "VAEEncode", "ImageScaleToTotalPixels",
        "EmptyFlux2LatentImage", "Flux2Scheduler", "RandomNoise", "KSamplerSelect",
        "BasicGuider", "SamplerCustomAdvanced"},
}

# Families no core ComfyUI node runs, and why: not offered on this backend.
NOT_OFFERED = {
    "sd2_depth2img": ("SD 2 depth2img is not offered on ComfyUI: its core nodes have no way to "
                      "feed the float depth to the 5-channel depth UNet (512-depth-ema); use "
                      "the local backend, or an SD 1.5 / SDXL depth ControlNet"),
    # ComfyUI has WanVaceToVideo, but the bridge sends one picture per job: a clip's frames
    # and its video result are not mapped yet
    "wan_vace": ("Wan VACE clips are not offered through ComfyUI yet: the bridge sends still "
                 "pictures; run clips on the local backend"),
}

# Where each role's file lives on the server, per family (the Qwen-Image ControlNet is looked
# for in both: DiffSynth's model patches and InstantX's ControlNet Union).
_ROLE_FOLDERS: dict[str, dict[str, tuple[Folder, ...]]] = {
    "sd15_controlnet": {"base": (CHECKPOINTS,), "controlnet": (CONTROLNET,)},
    "sdxl_controlnet": {"base": (CHECKPOINTS,), "controlnet": (CONTROLNET,), "vae": (VAE,)},
    "sdxl_controlnet_union": {"base": (CHECKPOINTS,), "controlnet": (CONTROLNET,),
                              "vae": (VAE,)},
    "sd2_depth2img": {"base": (CHECKPOINTS,)},
}
_FLUX1_ROLES = {"base": (DIFFUSION_MODELS,), "text_encoder": (TEXT_ENCODERS,),
                "text_encoder_2": (TEXT_ENCODERS,), "vae": (VAE,)}
_ONE_ENCODER = {"base": (DIFFUSION_MODELS,), "text_encoder": (TEXT_ENCODERS,), "vae": (VAE,)}
_ROLE_FOLDERS |= {
    "flux_depth": _FLUX1_ROLES, "flux_kontext": _FLUX1_ROLES,
    "flux_controlnet": _FLUX1_ROLES | {"controlnet": (CONTROLNET,)},
    "qwen_image_controlnet": _ONE_ENCODER | {"controlnet": (MODEL_PATCHES, CONTROLNET)},
    "qwen_image_edit": _ONE_ENCODER,
    "zimage_controlnet": _ONE_ENCODER | {"controlnet": (MODEL_PATCHES,)},
    "flux2": _ONE_ENCODER,
}
for _roles in _ROLE_FOLDERS.values():
    _roles["lora"] = (LORAS,)


def required_nodes(family: str, request: Any = None) -> set[str]:
    """The node classes `family`'s graph uses; with a request, also those its options add
    (LoRAs, an init image, a mask). An unknown family needs nothing (the bridge refuses it)."""
    if family not in _FAMILY_NODES:
        return set()
    nodes = set(_FAMILY_NODES[family])
    if request is None:
        return nodes
    if request.loras:
        nodes.add("LoraLoader" if family in _CHECKPOINT_FAMILIES else "LoraLoaderModelOnly")
    if starts_from_init(family, request):
        nodes |= {"VAEEncode", "ImageScale"}
    if request.mask_image:
        nodes |= {"LoadImageMask", "SetLatentNoiseMask", "ImageCompositeMasked"}
    if family in _CHECKPOINT_FAMILIES and request.model.get("vae"):
        nodes.add("VAELoader")
    if family == "qwen_image_controlnet" and instantx(str(request.model.get("controlnet", ""))):
        nodes -= _QWEN_PATCH
        nodes |= {"ControlNetLoader", "ControlNetApplyAdvanced"}
    return nodes


_QWEN_PATCH = {"ModelPatchLoader", "QwenImageDiffsynthControlnet"}
_CHECKPOINT_FAMILIES = frozenset({"sd15_controlnet", "sdxl_controlnet", "sdxl_controlnet_union"})


def starts_from_init(family: str, request: Any) -> bool:
    """Whether the job's init image starts the latents (img2img, or inpainting with its
    mask): families that take the render as an init picture (not as a reference), and the
    inpainting ones when there is a mask."""
    info = FAMILY_INFO[family]
    if not request.init_image:
        return False
    return ((RENDER in info.inputs and REFERENCES not in info.inputs)
            or (info.inpaint and bool(request.mask_image)))


def instantx(reference: str) -> bool:
    """A Qwen-Image ControlNet reference that is InstantX's Union (a controlnet/ file, applied
    with ControlNetApplyAdvanced) rather than a DiffSynth model patch (model_patches/,
    QwenImageDiffsynthControlnet): the preset's repo id, the folder in front, or a name that
    says InstantX."""
    reference = reference.replace("\\", "/")
    return reference.startswith("controlnet/") or "instantx" in reference.lower()


def runnable(server: ServerInfo) -> tuple[list[str], dict[str, list[str]]]:
    """(families this server runs, family -> the node classes it lacks for the others). A
    family no core node runs (NOT_OFFERED) is in the second with an empty list:
    missing_message says why."""
    able, missing = [], {}
    for family in FAMILY_INFO:
        if family in NOT_OFFERED:
            missing[family] = []
            continue
        lacking = sorted(required_nodes(family) - server.nodes)
        if lacking:
            missing[family] = lacking
        else:
            able.append(family)
    return able, missing


def missing_message(family: str, missing: list[str]) -> str:
    if family in NOT_OFFERED:
        return NOT_OFFERED[family]
    return (f"this ComfyUI lacks {', '.join(missing)}: update it or install the node pack "
            "that provides it")


# --- models -------------------------------------------------------------------------------------


def model_entries(server: ServerInfo) -> list[dict[str, Any]]:
    """The server's model files as protocol `models` entries (the add-on's model browser);
    `reference` is the name the loaders take, `path` the folder and name on the server. The
    server gives names, not headers: the arch is what a conventional name says, else ""."""
    entries: list[dict[str, Any]] = []
    for folder in FOLDERS:
        for name in server.files(folder):
            entries.append({"path": f"{folder.name}/{name}", "reference": name,
                            "name": name.replace("\\", "/").rsplit("/", 1)[-1],
                            "source": "comfyui_server", "role": _ENTRY_ROLE[folder.name],
                            "arch": arch_from_name(folder.name, name),
                            "note": f"on the ComfyUI server, models/{folder.name}/"})
    return entries


# (the folders a rule is for, words the name holds) -> arch (t2i_core.model_library's
# ARCH_LABELS keys; "" = a kind it has no key for); the first that matches.
_MODELS = ("checkpoints", "diffusion_models", "controlnet", "model_patches")  # LoRAs: ""
_NAME_ARCHS: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("vae",), ("qwen",), "qwen_vae"), (("vae",), ("flux2",), ""),
    (("vae",), ("flux",), "flux_vae"), (("vae",), ("sd",), "sd_vae"),
    (("text_encoders",), ("clip",), "clip"),
    (("text_encoders",), ("t5xxl",), "t5"), (("text_encoders",), ("qwen",), "qwen_llm"),
    (("controlnet",), ("union", "sdxl"), "sdxl_union"), (_MODELS, ("zimage",), "zimage"),
    (_MODELS, ("qwen",), "qwen_image"), (_MODELS, ("flux2",), "flux2"),
    (("checkpoints", "diffusion_models"), ("flux1", "depth"), "flux1_depth"),
    (_MODELS, ("flux1",), "flux1"), (_MODELS, ("sdxl",), "sdxl"), (_MODELS, ("xl",), "sdxl"),
    (_MODELS, ("sd15",), "sd15"), (_MODELS, ("v15",), "sd15"),
)


def arch_from_name(folder: str, name: str) -> str:
    """The arch a conventional ComfyUI file name (or its subfolder) says: `flux1-depth-dev`,
    `sd_xl_base_1.0`, `sd15/dreamshaper_8`, `control_v11f1p_sd15_depth`, `qwen_image_vae`;
    else ""."""
    path = name.replace("\\", "/").lower().removesuffix(".safetensors")
    if folder == "vae" and path.rsplit("/", 1)[-1] == "ae":
        return "flux_vae"  # FLUX.1's autoencoder, as its repo names it (Z-Image uses it too)
    # one spelling for the names' variants: sd_xl, flux.1, flux-2, z-image, v1-5
    glued = "".join(c for c in path if c.isalnum())
    for folders, words, arch in _NAME_ARCHS:
        if folder in folders and all(word in glued for word in words):
            return arch
    return ""


# Conventional ComfyUI file names of each preset's weights (as the ComfyUI examples and the
# Comfy-Org repackaged repos name them), best first.
_T5 = ("t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors",
       "t5xxl_fp8_e4m3fn_scaled.safetensors")
_FLUX1_PARTS = {"text_encoder": ("clip_l.safetensors",), "text_encoder_2": _T5,
                "vae": ("ae.safetensors",)}
_QWEN_PARTS = {"text_encoder": ("qwen_2.5_vl_7b_fp8_scaled.safetensors",
                                "qwen_2.5_vl_7b.safetensors"),
               "vae": ("qwen_image_vae.safetensors",)}
_SDXL_BASE = ("sd_xl_base_1.0.safetensors", "sd_xl_base_1.0_0.9vae.safetensors")
_SDXL_VAE = ("sdxl_vae_fp16_fix.safetensors", "sdxl-vae-fp16-fix.safetensors",
             "sdxl_vae.safetensors")
_PRESET_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    TINY_SD15_DEPTH: {"base": (TINY_CHECKPOINT,), "controlnet": (TINY_CONTROLNET,)},
    "sd15-depth": {"base": ("v1-5-pruned-emaonly.safetensors",
                            "v1-5-pruned-emaonly-fp16.safetensors"),
                   "controlnet": ("control_v11f1p_sd15_depth.safetensors",
                                  "control_v11f1p_sd15_depth_fp16.safetensors")},
    "sdxl-depth": {"base": _SDXL_BASE,
                   "controlnet": ("controlnet-depth-sdxl-1.0.safetensors",
                                  "diffusers_xl_depth_full.safetensors"),
                   "vae": _SDXL_VAE},
    "sdxl-union-depth": {"base": _SDXL_BASE,
                         "controlnet": ("controlnet-union-sdxl-1.0-promax.safetensors",
                                        "controlnet-union-sdxl-1.0.safetensors",
                                        "xinsir-controlnet-union-sdxl-1.0-promax.safetensors"),
                         "vae": _SDXL_VAE},
    "sd2-depth": {"base": ("512-depth-ema.safetensors",)},
    "flux-depth": {"base": ("flux1-depth-dev.safetensors",), **_FLUX1_PARTS},
    "flux-controlnet-depth": {"base": ("flux1-dev.safetensors", "flux1-dev-fp8.safetensors"),
                              "controlnet": ("flux.1-dev-controlnet-depth.safetensors",
                                             "FLUX.1-dev-ControlNet-Depth.safetensors",
                                             "shakker-labs-flux.1-dev-controlnet-depth"
                                             ".safetensors"),
                              **_FLUX1_PARTS},
    "zimage-turbo-depth": {"base": ("z_image_turbo_bf16.safetensors",),
                           "controlnet": ("Z-Image-Turbo-Fun-Controlnet-Union.safetensors",),
                           "text_encoder": ("qwen_3_4b.safetensors",),
                           "vae": ("ae.safetensors",)},
    "qwen-image-depth": {"base": ("qwen_image_fp8_e4m3fn.safetensors",
                                  "qwen_image_bf16.safetensors"),
                         "controlnet": ("Qwen-Image-InstantX-ControlNet-Union.safetensors",),
                         **_QWEN_PARTS},
    "qwen-image-edit": {"base": ("qwen_image_edit_2511_bf16.safetensors",
                                 "qwen_image_edit_2511_fp8mixed.safetensors",
                                 "qwen_image_edit_2509_fp8_e4m3fn.safetensors"),
                        **_QWEN_PARTS},
    "flux-kontext": {"base": ("flux1-dev-kontext_fp8_scaled.safetensors",
                              "flux1-kontext-dev.safetensors"), **_FLUX1_PARTS},
    "flux2-klein": {"base": ("flux-2-klein-4b.safetensors", "flux-2-klein-4b-fp8.safetensors"),
                    "text_encoder": ("qwen_3_4b.safetensors",),
                    "vae": ("flux2-vae.safetensors",)},
    "flux2-dev": {"base": ("flux2_dev_fp8mixed.safetensors", "flux2-dev.safetensors"),
                  "text_encoder": ("mistral_3_small_flux2_bf16.safetensors",
                                   "mistral_3_small_flux2_fp8.safetensors"),
                  "vae": ("flux2-vae.safetensors",)},
}
# The files a split family takes when the spec names none (the family's usual parts).
_DEFAULT_PARTS: dict[str, str] = {
    "flux_depth": "flux-depth", "flux_controlnet": "flux-controlnet-depth",
    "flux_kontext": "flux-kontext", "qwen_image_controlnet": "qwen-image-depth",
    "qwen_image_edit": "qwen-image-edit", "zimage_controlnet": "zimage-turbo-depth",
    "flux2": "flux2-klein",
}


def preset_files(preset_name: str) -> dict[str, tuple[str, ...]]:
    """role -> the server file names that would do for the preset's weights, best first."""
    return dict(_PRESET_FILES.get(preset_name, {}))


def role_folders(family: str, role: str, reference: str = "") -> tuple[Folder, ...]:
    """The server folder(s) a family's `role` file is looked up in."""
    if family == "qwen_image_controlnet" and role == "controlnet":
        return (CONTROLNET,) if instantx(reference) else (MODEL_PATCHES,)
    try:
        return _ROLE_FOLDERS[family][role]
    except KeyError:
        raise ValueError(f"{FAMILY_INFO[family].label if family in FAMILY_INFO else family} "
                         f"takes no '{role}' model on ComfyUI") from None


def default_reference(family: str, role: str, base: str = "") -> str:
    """What a spec that names no `role` file means: the usual file of the preset whose base
    it is (FLUX.2 dev and klein have different text encoders; a name with "dev" and not
    "klein" is dev), else of the family's first preset. A `preset:<name>` reference, resolved
    against the server's list like a preset's HF id."""
    preset = _preset_with(family, "base", base) or _DEFAULT_PARTS.get(family)
    lower = base.lower()
    if family == "flux2" and "dev" in lower and "klein" not in lower:
        preset = "flux2-dev"
    if preset is None:
        raise ValueError(f"the model spec names no '{role}' model")
    return f"preset:{preset}"


def resolve_reference(family: str, role: str, reference: str, server: ServerInfo) -> str:
    """A model spec's `role` reference as a file name the server lists (what its loader
    takes): a server name as it is (also with `/` for the server's `\\`, or prefixed with its
    folder, `checkpoints/x.safetensors`), `tiny` (the project's tiny SD 1.5 files), a preset's
    HF id (its conventional file names), or a local path whose file name the server has.
    ValueError names the file and the server folder to put it in."""
    folders = role_folders(family, role, reference)
    listed = [(folder, name) for folder in folders for name in server.files(folder)]
    wanted = _candidates(family, role, reference)
    for candidate in wanted:
        for folder, name in listed:
            if _same(candidate, name, folder):
                return name
    where = " or ".join(f"{folder.name}/" for folder in folders)
    if reference == TINY or reference.startswith("preset:") or _preset_with(family, role,
                                                                            reference):
        names = ", ".join(wanted[:3])
        raise ValueError(f"the {role} model '{_shown(reference, family)}' is not on this ComfyUI "
                         f"server: put {names} into its models/{where} folder, or pick a file "
                         "the server lists")
    raise ValueError(f"the {role} model '{reference}' is not on this ComfyUI server: put the "
                     f"file into its models/{where} folder, or pick one the server lists")


def _shown(reference: str, family: str) -> str:
    if reference.startswith("preset:"):
        return f"the usual {FAMILY_INFO[family].label} file"
    return reference


def _candidates(family: str, role: str, reference: str) -> list[str]:
    if reference == TINY:
        if family != "sd15_controlnet" or role not in ("base", "controlnet"):
            raise ValueError(f"there is no tiny ComfyUI model for {FAMILY_INFO[family].label}"
                             f" ({role}): only SD 1.5 has one")
        return [TINY_CHECKPOINT if role == "base" else TINY_CONTROLNET]
    if reference.startswith("preset:"):
        return list(_PRESET_FILES.get(reference[len("preset:"):], {}).get(role, ()))
    preset = _preset_with(family, role, reference)
    if preset is not None:
        return list(_PRESET_FILES.get(preset, {}).get(role, ()))
    return [reference]


def _preset_with(family: str, role: str, reference: str) -> str | None:
    """The preset of `family` whose `role` weights are the HF id `reference`."""
    for preset in PRESETS:
        if preset.family == family and preset.weights.get(role) == reference:
            return preset.name
    return None


def _same(reference: str, name: str, folder: Folder) -> bool:
    """A reference names a server file: exactly, with either slash, with the folder in front,
    or (a local path, e.g. picked in the add-on's own library) by its file name."""
    ref, listed = reference.replace("\\", "/"), name.replace("\\", "/")
    if ref in (listed, f"{folder.name}/{listed}"):
        return True
    if ref.startswith(("/", "~")) or (len(ref) > 2 and ref[1] == ":"):  # a local path
        return ref.rsplit("/", 1)[-1] == listed.rsplit("/", 1)[-1]
    return False
