"""SD 1.5 + depth ControlNet (`StableDiffusionControlNetPipeline`).

Depth goes in as `image=` (PIL RGB, near = white), scaled to [0,1] by the pipeline. With a colour
render the job runs img2img (`StableDiffusionControlNetImg2ImgPipeline`, built from the loaded
pipeline's components): the render is the init image, the depth still the control image. With a
mask as well it inpaints (`StableDiffusionControlNetInpaintPipeline`, the same components): the
white part is regenerated under the depth control, the black part kept.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    ControlNetModel,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
)
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common

NAME = "sd15_controlnet"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.float16
FLOW_MATCH = False
# Where a single-file checkpoint's configs come from (HF cache) unless the spec names one.
CONFIGS = {"base": "stable-diffusion-v1-5/stable-diffusion-v1-5",
           "controlnet": "lllyasviel/control_v11f1p_sd15_depth"}
BASE_CLASSES = ("StableDiffusionPipeline", "StableDiffusionControlNetPipeline",
                "StableDiffusionImg2ImgPipeline")
CHECKPOINT_TYPES = ("v1",)
PREVIEW_TAESD = "madebyollin/taesd"


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES, CHECKPOINT_TYPES)
    common.check_family(weights["controlnet"], NAME, "controlnet", ("ControlNetModel",))
    controlnet = common.load_model(ControlNetModel, weights["controlnet"], dtype,
                                   configs.get("controlnet"))
    pipe = common.load_pipeline(
        StableDiffusionControlNetPipeline, weights["base"], dtype, configs.get("base"),
        controlnet=controlnet, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    common.check_controlnet_fits(pipe, NAME, weights["controlnet"].reference)
    return pipe


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    return common.controlnet_run(pipe, job, callback, variant,
                                 StableDiffusionControlNetImg2ImgPipeline,
                                 StableDiffusionControlNetInpaintPipeline)


latent_grid = common.unet_latent_grid
decode_grid = common.sd_decode
