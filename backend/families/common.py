"""What every family shares: the job's inputs, loaders, the family check, latent helpers.

Kept to plain functions so a family module reads top to bottom and calls them by name.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from t2i_core import presets
from t2i_core.protocol import ErrorCode, GenerateRequest

from ..errors import BackendError, WrongModelFamily
from ..weights import Source, checkpoint_type, folder_class_name

log = logging.getLogger("blender_t2i.backend")

StepCallback = Callable[[Any, int, Any, dict], dict]
# `variant(PipelineClass)`: the loaded pipeline's components as another pipeline class (e.g. its
# img2img twin), built once with `from_pipe` and cached by the runner.
Variants = Callable[[type], Any]


@dataclass
class Job:
    """One generate request with its pictures read and sized, ready for a family's `run`."""

    request: GenerateRequest
    depth: Image.Image  # control image, RGB, near = white, already at width x height
    render: Image.Image | None = None  # the colour render (init image), at width x height
    depth_float: np.ndarray | None = None  # (H, W) float32, larger = nearer
    references: list[Image.Image] = field(default_factory=list)  # explicit reference pictures
    control_mode: int | None = None  # union ControlNets: which condition (depth by default)
    # inpainting: grey ("L"), white = regenerate, black = keep the render; at width x height
    mask: Image.Image | None = None
    # a video family's clip: the depth frames (RGB, near = white), each at width x height
    clip: list[Image.Image] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.request.width

    @property
    def height(self) -> int:
        return self.request.height

    def generator(self) -> torch.Generator:
        # A CPU generator: the same seed gives the same noise on every device.
        return torch.Generator("cpu").manual_seed(self.request.seed)

    def img2img_strength(self) -> float:
        """The denoise strength for img2img (default 0.75) or inpainting (default 1.0: the
        white part from noise alone); it must leave at least one of the steps to run
        (diffusers runs int(steps * strength) of them and fails obscurely on zero)."""
        default = 1.0 if self.mask is not None else 0.75
        strength = self.request.strength if self.request.strength is not None else default
        if int(self.request.steps * strength) < 1:
            needed = math.ceil(1 / strength)
            raise BackendError(ErrorCode.BAD_REQUEST,
                               f"with the render as init image at strength {strength:g}, "
                               f"{self.request.steps} step(s) leave nothing to do",
                               hint=f"use at least {needed} steps or a higher render strength")
        return strength


# --- optional packages --------------------------------------------------------------------------
# Packages a part of the backend needs and the rest runs without. transformers and diffusers
# decide whether one is there by finding it, not importing it, so a broken install (a torchvision
# built for another torch fails registering its ops; a half-upgraded peft) reads as present and
# then fails every family: diffusers imports peft and accelerate at its own import, transformers
# imports torchvision inside every image processor. So each is imported once, before they are
# (the runner imports this module first), and one that fails is marked absent for the whole
# process: None in sys.modules, which both find_spec and import honour. The libraries then take
# their no-<package> paths, and only what needs the package fails, naming it and the fix
# (missing_package_error, require_package).


@dataclass(frozen=True)
class OptionalPackage:
    pip_name: str
    needed_for: str  # what needs it (and so is lost without it)
    fix: str


_REINSTALL = "Reinstall the backend from the add-on's preferences (Install Backend), or "
# In probing order: peft imports accelerate and transformers, which must see torchvision's state.
OPTIONAL_PACKAGES: dict[str, OptionalPackage] = {  # import name -> package
    "torchvision": OptionalPackage(
        "torchvision",
        "transformers' torchvision image processors: the faster preparation of Qwen-Image-Edit's "
        "and FLUX.2 dev's input pictures, and their full processors (video input, prompt "
        "upsampling); without it both models use the PIL image processors",
        _REINSTALL + "pip-install the torchvision release built for this torch."),
    "accelerate": OptionalPackage(
        "accelerate", "the model_offload memory mode and low-memory loading",
        _REINSTALL + "pip-install accelerate into the backend's Python."),
    "peft": OptionalPackage(
        "peft", "LoRAs", _REINSTALL + "pip-install peft into the backend's Python."),
}


def _probe_optional_packages() -> dict[str, str]:
    """import name -> why it cannot be used ("is not installed", "fails to import: ..."), for
    each optional package that is missing or broken; a broken one is hidden (see above)."""
    unavailable: dict[str, str] = {}
    for name in OPTIONAL_PACKAGES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # missing, or installed but broken: any error an import raises
            missing = isinstance(exc, ModuleNotFoundError) and exc.name == name
            unavailable[name] = ("is not installed" if missing
                                 else f"fails to import: {type(exc).__name__}: {exc}")
            if not missing:
                log.warning("%s %s; the backend runs without it", name, unavailable[name])
                _hide(name)
    return unavailable


def _hide(name: str) -> None:
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]  # what the failed import left half-done
    sys.modules[name] = None  # type: ignore[assignment]


UNAVAILABLE_PACKAGES: dict[str, str] = _probe_optional_packages()


def package_usable(name: str) -> bool:
    """Whether optional package `name` (an OPTIONAL_PACKAGES key) imports in this process."""
    return name not in UNAVAILABLE_PACKAGES


def unavailable_packages() -> list[dict[str, str]]:
    """The optional packages this backend runs without, why, and what that costs (for the
    `capabilities` reply)."""
    return [{"package": OPTIONAL_PACKAGES[name].pip_name, "problem": why,
             "needed_for": OPTIONAL_PACKAGES[name].needed_for,
             "fix": OPTIONAL_PACKAGES[name].fix}
            for name, why in UNAVAILABLE_PACKAGES.items()]


def _package_error(name: str, what: str) -> BackendError:
    package = OPTIONAL_PACKAGES[name]
    why = UNAVAILABLE_PACKAGES.get(name, "is not usable here")
    return BackendError(ErrorCode.MODEL_LOAD_FAILED,
                        f"{what} needs the optional package {package.pip_name}, which {why}",
                        hint=package.fix)


def require_package(name: str, what: str) -> None:
    """Refuse `what` up front when optional package `name` cannot be used (where the library
    would fail with an error that does not name it)."""
    if not package_usable(name):
        raise _package_error(name, what)


def missing_package_error(exc: BaseException, what: str) -> BackendError | None:
    """MODEL_LOAD_FAILED naming the optional package an import error is about and the fix, or
    None when it is about none of them. Python names the module (`ModuleNotFoundError.name`,
    also for a hidden package); the libraries name it in words ("requires the Torchvision
    library", "requires `accelerate v0.17.0`")."""
    if not isinstance(exc, ImportError):
        return None
    module = exc.name or ""
    text = str(exc).lower()
    for name, package in OPTIONAL_PACKAGES.items():
        if module == name or module.startswith(name + ".") or \
                f"the {package.pip_name} library" in text or f"`{package.pip_name}" in text:
            return _package_error(name, what)
    return None


# --- loading ------------------------------------------------------------------------------------


def load_model(cls: Any, source: Source, dtype: torch.dtype, config: str | None = None,
               subfolder: str | None = None) -> Any:
    """A model (UNet, ControlNet, transformer...) from a diffusers folder or a single file.
    A single file needs its diffusers config (`config`: a folder or cached repo id) because
    nothing may be fetched."""
    if source.is_file:
        kwargs: dict[str, Any] = {"config": config} if config else {}
        if config and subfolder:
            kwargs["subfolder"] = subfolder
        return cls.from_single_file(str(source.path), dtype=dtype, local_files_only=True,
                                    **kwargs)
    folder = source.path
    if subfolder and (folder / subfolder).is_dir():
        folder = folder / subfolder
    return cls.from_pretrained(folder, dtype=dtype, use_safetensors=True)


def load_pipeline(cls: Any, source: Source, dtype: torch.dtype, config: str | None = None,
                  **components: Any) -> Any:
    """A pipeline from a diffusers folder, or from an A1111/ComfyUI single-file checkpoint plus
    the family's config (scheduler, tokenizer and component configs)."""
    if source.is_file:
        return cls.from_single_file(str(source.path), config=config, dtype=dtype,
                                    local_files_only=True, **components)
    return cls.from_pretrained(source.path, dtype=dtype, use_safetensors=True, **components)


# Parts of a transformer pipeline a spec may name as files of their own, as ComfyUI keeps them
# (models/vae, models/text_encoders); each is configured from the base's config folder.
SPLIT_ROLES = presets.SPLIT_ROLES


def load_transformer_pipeline(cls: Any, transformer_cls: Any, source: Source, dtype: torch.dtype,
                              config: str | None = None, parts: dict[str, Source] | None = None,
                              **components: Any) -> Any:
    """Transformer families (FLUX, Z-Image, Qwen): a single file holds only the transformer, as
    ComfyUI keeps it. The VAE and text encoders come from `parts` (files of their own) where
    given, else with the tokenizers and scheduler from the config folder/repo, which then needs
    only the configs of the parts given as files."""
    root = Path(config) if source.is_file and config else source.path
    for role, part in (parts or {}).items():
        if role in SPLIT_ROLES:
            components[role] = load_part(root, role, part, dtype)
    if not source.is_file:
        return cls.from_pretrained(source.path, dtype=dtype, use_safetensors=True, **components)
    components["transformer"] = load_model(transformer_cls, source, dtype, config,
                                           subfolder="transformer")
    return cls.from_pretrained(config, dtype=dtype, use_safetensors=True, **components)


def load_part(root: Path, role: str, source: Source, dtype: torch.dtype) -> Any:
    """A pipeline part (`vae`, `text_encoder`...) from its own file or folder, with the class
    and config the pipeline folder `root` names for it. diffusers parts go through
    from_single_file (original layouts are converted); transformers parts are built from the
    config and the file's tensors, which transformers maps to its own names."""
    try:
        library, class_name = json.loads((root / "model_index.json").read_text())[role]
    except (OSError, ValueError, KeyError, TypeError):
        raise BackendError(ErrorCode.MODEL_NOT_FOUND,
                           f"{role} '{source.reference}' needs the pipeline's config folder to "
                           f"say what it is, and {root} names no {role}") from None
    if library == "diffusers":
        import diffusers
        from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

        part_cls = getattr(diffusers, class_name)
        if not source.is_file:
            return part_cls.from_pretrained(source.path, dtype=dtype, use_safetensors=True)
        if class_name not in SINGLE_FILE_LOADABLE_CLASSES:
            raise BackendError(ErrorCode.MODEL_LOAD_FAILED,
                               f"{role} '{source.reference}': diffusers cannot load a "
                               f"{class_name} from a single file",
                               hint=f"Leave '{role}' out: the {role} then comes from the "
                                    "model's config folder with its weights.")
        return part_cls.from_single_file(str(source.path), config=str(root), subfolder=role,
                                         dtype=dtype, local_files_only=True)
    import transformers

    part_cls = getattr(transformers, class_name)
    if not source.is_file:
        return part_cls.from_pretrained(source.path, dtype=dtype, use_safetensors=True)
    from safetensors.torch import load_file

    state = load_file(str(source.path))
    if any(key.endswith(("scale_weight", "scaled_fp8")) for key in state):
        raise BackendError(ErrorCode.MODEL_LOAD_FAILED,
                           f"{role} '{source.reference}' is a ComfyUI 'fp8_scaled' file, whose "
                           "weights only ComfyUI can unscale",
                           hint="Use the fp16/bf16 version of the same text encoder.")
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    part_config = part_cls.config_class.from_pretrained(root / role)
    return part_cls.from_pretrained(None, config=part_config, state_dict=state, dtype=dtype)


def check_family(source: Source, family: str, role: str, classes: Iterable[str],
                 checkpoint_types: Iterable[str] = ()) -> None:
    """Refuse weights that say they are something else, before a loader fails obscurely.
    Folders name their class in model_index.json / config.json; single files are sniffed
    by their tensor names. Unknown means allowed: the loader has the last word."""
    if source.is_file:
        kinds = tuple(checkpoint_types)
        found = checkpoint_type(source.path) if kinds else None
        if found is not None and found not in kinds:
            raise WrongModelFamily(f"{role} '{source.reference}' looks like a '{found}' "
                                   f"checkpoint, not one for {family}")
        return
    found = folder_class_name(source.path)
    allowed = tuple(classes)
    if found is not None and allowed and found not in allowed:
        raise WrongModelFamily(f"{role} '{source.reference}' is a {found}, "
                               f"not one of {', '.join(allowed)} ({family})")


def check_controlnet_fits(pipe: Any, family: str, reference: str) -> None:
    """A ControlNet is a copy of its base's UNet encoder: one made for another base (an SDXL
    ControlNet beside SD 1.5: the same class) fails only inside the first step. Compare what
    they must share once both are loaded, before any generating."""
    unet, controlnets = pipe.unet.config, getattr(pipe.controlnet, "nets", [pipe.controlnet])
    for controlnet in controlnets:
        for key in ("cross_attention_dim", "addition_embed_type"):
            theirs, ours = controlnet.config.get(key), unet.get(key)
            if theirs != ours:
                raise WrongModelFamily(
                    f"controlnet '{reference}' does not fit this {family} base: its "
                    f"{key} is {theirs}, the base's {ours} (it was made for another family)")


def pipeline_folder(source: Source, config: str | None) -> Path | None:
    """The diffusers folder a pipeline's parts load from: the weights' own folder, or for a
    single-file checkpoint its config folder (None when it has none)."""
    if source.is_file:
        return Path(config) if config else None
    return source.path


def component_folder(source: Source, config: str | None, component: str,
                     classes: Iterable[str]) -> Path | None:
    """The folder of pipeline part `component` when model_index.json lists it as one of
    `classes` (e.g. Qwen-Image-Edit's `processor` as a Qwen2VLProcessor), else None."""
    folder = pipeline_folder(source, config)
    if folder is None or not (folder / component).is_dir():
        return None
    try:
        entry = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))[component]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    found = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
    return folder / component if found in tuple(classes) else None


def config_folder(config: str | None) -> str | None:
    return str(Path(config)) if config else None


# --- latents for previews -----------------------------------------------------------------------
# A preview works on a "latent grid" (batch, channels, h, w). For UNet families that is the latent
# itself; for the transformer families it is the packed 2x2 patch tokens laid back on their grid,
# which skips unpacking on every step (the preview map is fitted in the same space).


def unet_latent_grid(pipe: Any, latents: torch.Tensor, job: Job) -> torch.Tensor:
    """UNet families (and Z-Image): the latents already are (B, C, h, w)."""
    return latents


def packed_latent_grid(pipe: Any, latents: torch.Tensor, job: Job) -> torch.Tensor:
    """FLUX and Qwen-Image: packed 2x2 patch tokens laid back on their grid."""
    return tokens_to_grid(latents, job.height, job.width, pipe.vae_scale_factor * 2)


def decode_device(pipe: Any) -> torch.device:
    """Where the VAE will run: with model or group offload its weights sit on the CPU until
    the decode moves them, so the latents must go to the pipeline's execution device."""
    return pipe._execution_device


def sd_decode(pipe: Any, grid: torch.Tensor) -> torch.Tensor:
    vae = pipe.vae
    latents = grid.to(decode_device(pipe), vae.dtype) / vae.config.scaling_factor
    return vae.decode(latents, return_dict=False)[0]


def tokens_to_grid(latents: torch.Tensor, height: int, width: int, pixels_per_token: int
                   ) -> torch.Tensor:
    """(B, h*w, C) packed tokens -> (B, C, h, w)."""
    batch, count, channels = latents.shape
    rows, cols = height // pixels_per_token, width // pixels_per_token
    if rows * cols != count:  # odd sizes the pipeline rounded differently: best effort
        cols = max(1, count // max(1, rows))
        rows = count // cols
        latents = latents[:, : rows * cols]
    return latents.transpose(1, 2).reshape(batch, channels, rows, cols)


def grid_to_tokens(grid: torch.Tensor) -> torch.Tensor:
    batch, channels, rows, cols = grid.shape
    return grid.reshape(batch, channels, rows * cols).transpose(1, 2)


def flux_decode(pipe: Any, grid: torch.Tensor) -> torch.Tensor:
    """FLUX.1 packed-token grid -> pixels, as the pipeline's own final decode does it."""
    vae = pipe.vae
    factor = pipe.vae_scale_factor
    _, _, rows, cols = grid.shape
    latents = pipe._unpack_latents(grid_to_tokens(grid), rows * 2 * factor, cols * 2 * factor,
                                   factor)
    latents = latents.to(decode_device(pipe), vae.dtype) / vae.config.scaling_factor \
        + vae.config.shift_factor
    return vae.decode(latents, return_dict=False)[0]


def control_scale(job: Job) -> float:
    return job.request.control_strength


def controlnet_run(pipe: Any, job: Job, callback: StepCallback, variant: Variants,
                   img2img_class: type, inpaint_class: type) -> Image.Image:
    """SD 1.5 / SDXL + ControlNet: the depth is the control image; with a colour render the job
    runs the pipeline's img2img twin, the render as its init image; with a mask as well, its
    inpaint twin (the depth stays the control image)."""
    kwargs = pipeline_kwargs(job, callback)
    kwargs.update(negative_prompt=job.request.negative_prompt or None,
                  width=job.width, height=job.height, guidance_scale=job.request.guidance,
                  controlnet_conditioning_scale=job.request.control_strength)
    if job.mask is not None:
        return variant(inpaint_class)(image=job.render, mask_image=job.mask,
                                      control_image=job.depth, strength=job.img2img_strength(),
                                      **kwargs).images[0]
    if job.render is not None:
        return variant(img2img_class)(image=job.render, control_image=job.depth,
                                      strength=job.img2img_strength(), **kwargs).images[0]
    return pipe(image=job.depth, **kwargs).images[0]


def keep_unmasked(job: Job, image: Image.Image) -> Image.Image:
    """The init image pasted back where the mask is black, blended by its grey: the VAE round
    trip changes even the latents the pipeline kept, and a kept part must stay the picture it
    was (earlier views' texture, the previous frame)."""
    if job.mask is None or job.render is None:
        return image
    weight = np.asarray(job.mask, dtype=np.float32)[..., None] / 255.0
    kept = np.asarray(job.render.convert("RGB"), dtype=np.float32)
    made = np.asarray(image.convert("RGB"), dtype=np.float32)
    return Image.fromarray(np.rint(kept + (made - kept) * weight).astype(np.uint8))


def input_pictures(job: Job) -> list[Image.Image]:
    """Edit models' input pictures: the job's reference images when sent, else the colour
    render then the depth, else the depth alone."""
    if job.references:
        return list(job.references)
    return [job.render, job.depth] if job.render is not None else [job.depth]


def pipeline_kwargs(job: Job, callback: StepCallback) -> dict[str, Any]:
    """The arguments every family passes the same way."""
    return {
        "prompt": job.request.prompt,
        "num_inference_steps": job.request.steps,
        "generator": job.generator(),
        "callback_on_step_end": callback,
        "callback_on_step_end_tensor_inputs": ["latents"],
    }
