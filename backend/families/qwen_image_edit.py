"""Qwen-Image-Edit 2511 (`QwenImageEditPlusPipeline`): instruction editing of input pictures.

The pictures are the job's `reference_images` when sent, else the colour render and the depth
(in that order, "Picture 1" and "Picture 2" to the prompt), else the depth alone. The prompt is an
instruction ("Picture 1 is a clay render, Picture 2 its depth: make it a photo of..."). The output
is requested at the job's size (multiples of 16). True CFG as Qwen-Image: a negative prompt of
" " when none is given.

Its input processor is a Qwen2VLProcessor, which transformers builds only with torchvision (for
its video half). Without a working torchvision the processor/ folder loads as the images-only
processor below, which is all the pipeline calls (`processor(text=..., images=...)`).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import QwenImageEditPlusPipeline, QwenImageTransformer2DModel
from PIL import Image
from transformers import Qwen2VLProcessor

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


class Qwen2VLImagesProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without its video processor. ProcessorMixin takes a processor's parts
    from its __init__ signature, so this one loads from the same folder with the image
    processor (the PIL one without torchvision), the tokenizer and the chat template only, and
    runs the same __call__ for still pictures (the PIL processor resamples them a little
    differently from the torchvision one)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                 chat_template: str | None = None, **kwargs: Any):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    base, config = weights["base"], configs.get("base")
    common.check_family(base, NAME, "base", BASE_CLASSES)
    components: dict[str, Any] = {}
    folder = common.component_folder(base, config, "processor", ("Qwen2VLProcessor",))
    if folder is not None and not common.package_usable("torchvision"):
        components["processor"] = Qwen2VLImagesProcessor.from_pretrained(folder)
    return common.load_transformer_pipeline(QwenImageEditPlusPipeline,
                                            QwenImageTransformer2DModel, base, dtype, config,
                                            parts=weights, **components)


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    return pipe(image=common.input_pictures(job), width=job.width, height=job.height,
                true_cfg_scale=job.request.guidance,
                negative_prompt=job.request.negative_prompt or " ",
                **common.pipeline_kwargs(job, callback)).images[0]


latent_grid = common.packed_latent_grid


decode_grid = qwen_image_controlnet.decode_grid
