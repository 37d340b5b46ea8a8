"""Qwen-Image-Edit 2511 (`QwenImageEditPlusPipeline`): instruction editing of input pictures.

The pictures are the job's `reference_images` when sent, else the colour render and the depth
(in that order, "Picture 1" and "Picture 2" to the prompt), else the depth alone. The prompt is an
instruction ("Picture 1 is a clay render, Picture 2 its depth: make it a photo of..."). The output
is requested at the job's size (multiples of 16). True CFG as Qwen-Image: a negative prompt of
" " when none is given.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import QwenImageEditPlusPipeline, QwenImageTransformer2DModel
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common, qwen_image_controlnet

NAME = "qwen_image_edit"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.bfloat16
FLOW_MATCH = True
OPTIONAL_ROLES = SPLIT_ROLES = common.SPLIT_ROLES
CONFIGS = {"base": "Qwen/Qwen-Image-Edit-2511"}
BASE_CLASSES = ("QwenImageEditPlusPipeline",)


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES)
    common.require_torchvision_for_processors(weights["base"], configs.get("base"),
                                              "Qwen-Image-Edit")
    return common.load_transformer_pipeline(QwenImageEditPlusPipeline,
                                            QwenImageTransformer2DModel, weights["base"], dtype,
                                            configs.get("base"), parts=weights)


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    return pipe(image=common.input_pictures(job), width=job.width, height=job.height,
                true_cfg_scale=job.request.guidance,
                negative_prompt=job.request.negative_prompt or " ",
                **common.pipeline_kwargs(job, callback)).images[0]


latent_grid = common.packed_latent_grid


decode_grid = qwen_image_controlnet.decode_grid
