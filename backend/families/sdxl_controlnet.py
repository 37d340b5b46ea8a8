"""SDXL + depth ControlNet (`StableDiffusionXLControlNetPipeline`).

As SD 1.5: depth as `image=` (PIL RGB, [0,1]); the colour render, when sent, is the init image of
`StableDiffusionXLControlNetImg2ImgPipeline`, with a mask as well that of
`StableDiffusionXLControlNetInpaintPipeline` (depth still the control image). An optional `vae`
role swaps in a VAE (the fp16-fix VAE keeps fp16 decodes from overflowing to black).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    StableDiffusionXLControlNetImg2ImgPipeline,
    StableDiffusionXLControlNetInpaintPipeline,
    StableDiffusionXLControlNetPipeline,
)
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common

NAME = "sdxl_controlnet"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.float16
FLOW_MATCH = False
OPTIONAL_ROLES = ("vae",)
CONFIGS = {"base": "stabilityai/stable-diffusion-xl-base-1.0",
           "controlnet": "diffusers/controlnet-depth-sdxl-1.0"}
BASE_CLASSES = ("StableDiffusionXLPipeline", "StableDiffusionXLControlNetPipeline",
                "StableDiffusionXLImg2ImgPipeline")
CHECKPOINT_TYPES = ("xl_base", "playground-v2-5")
PREVIEW_TAESD = "madebyollin/taesdxl"


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES, CHECKPOINT_TYPES)
    common.check_family(weights["controlnet"], NAME, "controlnet", ("ControlNetModel",))
    controlnet = common.load_model(ControlNetModel, weights["controlnet"], dtype,
                                   configs.get("controlnet"))
    extra: dict[str, Any] = {}
    if "vae" in weights:
        extra["vae"] = common.load_model(AutoencoderKL, weights["vae"], dtype, configs.get("vae"))
    pipe = common.load_pipeline(StableDiffusionXLControlNetPipeline, weights["base"], dtype,
                                configs.get("base"), controlnet=controlnet, **extra)
    common.check_controlnet_fits(pipe, NAME, weights["controlnet"].reference)
    return pipe


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    return common.controlnet_run(pipe, job, callback, variant,
                                 StableDiffusionXLControlNetImg2ImgPipeline,
                                 StableDiffusionXLControlNetInpaintPipeline)


latent_grid = common.unet_latent_grid
decode_grid = common.sd_decode
