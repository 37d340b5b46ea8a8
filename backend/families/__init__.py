"""Model families: one module each, behind the same small interface.

A family module defines:
  NAME, INFO               the `family` value in a model spec; its presets.FamilyInfo (recommended
                           settings, size multiple, which pictures it takes, weight roles)
  OPTIONAL_ROLES           extra weights a spec may name (e.g. an SDXL `vae`); may be absent
  CONFIGS                  role -> config repo a single-file checkpoint is loaded with
  ACCELERATOR_DTYPE        fp16 or bf16 on GPUs (CPU always runs fp32)
  FLOW_MATCH               True: only the model's own scheduler applies
  PREVIEW_TAESD            optional: a TAESD repo used for previews when in the local HF cache
  load(weights, configs, dtype) -> pipeline       weights: role -> weights.Source
  run(pipe, job, callback, variant) -> PIL.Image  how depth / render / references go in (a
                           video family: a list, one picture per frame of the job's clip)
  latent_grid(pipe, latents, job) -> (B, C, h, w) the step latents laid out for a preview
  decode_grid(pipe, grid) -> (B, 3, H, W)         the VAE decode of such a grid, in [-1, 1]
Adding a family is one new module, one FamilyInfo in presets.py and one name below. Modules are
imported on first use, so the process answers `hello` before diffusers is imported.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILIES: tuple[str, ...] = (
    "sd15_controlnet",
    "sdxl_controlnet",
    "sdxl_controlnet_union",
    "sd2_depth2img",
    "flux_depth",
    "flux_controlnet",
    "zimage_controlnet",
    "qwen_image_controlnet",
    "qwen_image_edit",
    "flux_kontext",
    "flux2",
    "wan_vace",
)


def get(name: str) -> ModuleType | None:
    if name not in FAMILIES:
        return None
    return importlib.import_module(f"{__name__}.{name}")
