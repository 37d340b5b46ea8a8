"""FLUX.2 dev (`Flux2Pipeline`, Mistral text encoder) and klein (`Flux2KleinPipeline`, Qwen3).

Which one is read from the weights' model_index.json. There is no control input: the render and
the depth go in as reference pictures (`image=[...]`, shrunk by the pipeline to ~1 MP), and the
prompt says how to use them ("the second image is a depth map of the scene..."). Reference order:
the job's `reference_images` when sent, else render then depth, else depth alone. Distilled klein
ignores guidance.

dev's tokenizer folder holds a PixtralProcessor, which transformers builds only with torchvision.
The pipeline only asks it for the text chat template of the prompt (its image side serves prompt
upsampling, which is not used here), so without a working torchvision the folder loads as its
tokenizer, chat template included, the way PixtralProcessor itself loads that tokenizer.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import Flux2KleinPipeline, Flux2Pipeline, Flux2Transformer2DModel
from PIL import Image
from transformers.tokenization_utils_tokenizers import TokenizersBackend

from t2i_core.presets import FAMILY_INFO

from ..weights import Source, folder_class_name
from . import common

NAME = "flux2"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.bfloat16
FLOW_MATCH = True
OPTIONAL_ROLES = SPLIT_ROLES = common.SPLIT_ROLES
CONFIGS = {"base": "black-forest-labs/FLUX.2-klein-4B"}
BASE_CLASSES = ("Flux2Pipeline", "Flux2KleinPipeline")


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    base, config = weights["base"], configs.get("base")
    common.check_family(base, NAME, "base", BASE_CLASSES)
    folder = common.pipeline_folder(base, config)
    cls = Flux2KleinPipeline
    if folder is not None and folder_class_name(folder) == "Flux2Pipeline":
        cls = Flux2Pipeline
    tokenizer = None
    processor = common.component_folder(base, config, "tokenizer", ("PixtralProcessor",))
    if processor is not None and not common.package_usable("torchvision"):
        tokenizer = TokenizersBackend.from_pretrained(processor)
    # diffusers checks a part passed to from_pretrained against the class model_index.json
    # names (a processor, which a tokenizer is not); None makes it skip the part instead.
    components = {"tokenizer": None} if tokenizer is not None else {}
    pipe = common.load_transformer_pipeline(cls, Flux2Transformer2DModel, base, dtype, config,
                                            parts=weights, **components)
    if tokenizer is not None:
        pipe.register_modules(tokenizer=tokenizer)
    return pipe


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    return pipe(image=common.input_pictures(job), width=job.width, height=job.height,
                guidance_scale=job.request.guidance,
                **common.pipeline_kwargs(job, callback)).images[0]


latent_grid = common.packed_latent_grid


def decode_grid(pipe: Any, grid: torch.Tensor) -> torch.Tensor:
    """Undo FLUX.2's latent batch-norm and 2x2 patchify, then decode."""
    vae = pipe.vae
    grid = grid.to(common.decode_device(pipe), vae.dtype)
    mean = vae.bn.running_mean.view(1, -1, 1, 1).to(grid.device, grid.dtype)
    std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(
        grid.device, grid.dtype)
    latents = pipe._unpatchify_latents(grid * std + mean)
    return vae.decode(latents, return_dict=False)[0]
