"""SD 2 depth2img (`StableDiffusionDepth2ImgPipeline`): the UNet takes depth as a fifth latent
channel, no ControlNet.

Depth goes in as `depth_map`, a float tensor (1, H, W), larger = nearer, any scale (the pipeline
min-max normalises it): the job's float depth when sent (the capture's EXR as inverse depth, read
by the runner, or a `.npy`), else the 8-bit control image.
`image` is always required: the colour render when sent (img2img at `strength`), else the depth
picture itself at strength 1.0, which replaces it with pure noise (pure depth-conditioned).
The pipeline's own depth estimator is never loaded (`depth_estimator=None`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionDepth2ImgPipeline, StableDiffusionPipeline
from PIL import Image

from t2i_core.presets import FAMILY_INFO
from t2i_core.protocol import ErrorCode

from ..errors import BackendError
from ..weights import Source
from . import common

NAME = "sd2_depth2img"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.float16
FLOW_MATCH = False
CONFIGS = {"base": "stabilityai/stable-diffusion-2-depth"}
BASE_CLASSES = ("StableDiffusionDepth2ImgPipeline",)
CHECKPOINT_TYPES = ("v2",)
PREVIEW_TAESD = "madebyollin/taesd"


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    base = weights["base"]
    common.check_family(base, NAME, "base", BASE_CLASSES, CHECKPOINT_TYPES)
    if base.is_file:
        # StableDiffusionDepth2ImgPipeline has no from_single_file: the file's parts load as an
        # SD pipeline's (the config's UNet has the fifth, depth, input channel).
        parts = common.load_pipeline(StableDiffusionPipeline, base, dtype, configs.get("base"),
                                     safety_checker=None, feature_extractor=None,
                                     requires_safety_checker=False)
        return StableDiffusionDepth2ImgPipeline(
            vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer,
            unet=parts.unet, scheduler=parts.scheduler, depth_estimator=None,
            feature_extractor=None)
    return common.load_pipeline(StableDiffusionDepth2ImgPipeline, base, dtype,
                                configs.get("base"), depth_estimator=None,
                                feature_extractor=None)


def depth_tensor(job: common.Job) -> torch.Tensor:
    if job.depth_float is not None:
        depth = np.nan_to_num(job.depth_float.astype(np.float32), nan=0.0, posinf=0.0)
    else:
        depth = np.asarray(job.depth.convert("L"), dtype=np.float32) / 255.0
    if depth.min() == depth.max():  # the pipeline would divide by its range: a black picture
        raise BackendError(ErrorCode.BAD_REQUEST,
                           "SD 2 depth2img needs depth that varies, and this depth map is flat",
                           hint="Frame more of the scene than one wall facing the camera, or "
                                "use a ControlNet model.")
    return torch.from_numpy(np.ascontiguousarray(depth))[None]


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    image, strength = (job.render, job.img2img_strength()) if job.render is not None \
        else (job.depth, 1.0)
    # The pipeline sizes its output from `image`: both inputs are already at the job's size.
    return pipe(image=image, depth_map=depth_tensor(job), strength=strength,
                negative_prompt=job.request.negative_prompt or None,
                guidance_scale=job.request.guidance,
                **common.pipeline_kwargs(job, callback)).images[0]


latent_grid = common.unet_latent_grid
decode_grid = common.sd_decode
