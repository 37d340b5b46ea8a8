"""Random-weight models of every family at toy sizes, saved as ordinary diffusers folders.

They use the real architecture classes, so loading them back runs exactly the loaders real
weights use. Each builder writes role folders (`base/`, `controlnet/`) into `folder` and returns
role -> path. Sizes: every VAE downsamples by 8 as the real ones do (a factor of 1 or 2 would make
attention run over huge latents), everything else is as small as the classes allow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .tokenizers import QWEN_VOCAB, clip_tokenizer, qwen2_tokenizer, t5_tokenizer

# --- shared parts -----------------------------------------------------------------------------


def _sd_vae(latent_channels: int = 4) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=[4, 4, 8, 8], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D"] * 4,
                         up_block_types=["UpDecoderBlock2D"] * 4,
                         latent_channels=latent_channels, norm_num_groups=2)


def _clip_config(hidden: int = 32, projection: int = 32) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=hidden,
                          intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
                          num_hidden_layers=2, pad_token_id=1, vocab_size=1000,
                          max_position_embeddings=77, projection_dim=projection)


def _sd_scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


CONTROL_SEED = 1234


def _keep_picture_signal(module: torch.nn.Module) -> None:
    """Weights drawn from N(0, (2 / sqrt(fan_in))^2), zero biases, for every layer of a stack
    that turns a picture into features (a ControlNet's conditioning embedding, a VAE encoder).
    torch's default initialisation shrinks the signal ~3x per layer, so after a stack of them
    the output is the biases and says nothing about the picture; a gain of 2 carries it through
    the SiLUs (3 blows it up). Call it inside a seeded, forked RNG."""
    for layer in module.modules():
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d)):
            torch.nn.init.normal_(layer.weight, std=2.0 / layer.weight[0].numel() ** 0.5)
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)


def _live_control_path(model: Any, embedding: str) -> Any:
    """Make a random control model (ControlNet, control transformer) pass the depth on.

    diffusers zero-initialises the layers through which a control model adds its signal: SD's
    zero convs and conditioning-embedding output, FLUX/Qwen's controlnet blocks and control
    embedder, Z-Image's before/after projections. Trained weights have moved away from zero;
    random ones have not, so the control path adds nothing and every depth map gives the same
    picture. Here those layers get torch's default random weights and the `embedding` (the
    child module that takes the control picture or its latents) weights that keep the
    picture's signal, with a fixed seed in a forked RNG: the rest of the model is untouched."""
    woken = []
    with torch.random.fork_rng(devices=()), torch.no_grad():
        torch.manual_seed(CONTROL_SEED)
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and not module.weight.any():
                module.reset_parameters()
                woken.append(name)
        _keep_picture_signal(getattr(model, embedding))
    if not woken:  # a diffusers change: the test of depth reaching the output would say so too
        raise RuntimeError(f"{type(model).__name__} has no zero-initialised control layers")
    return model


def _save(pipe_or_model: Any, folder: Path) -> Path:
    pipe_or_model.save_pretrained(folder, safe_serialization=True)
    return folder


# --- SD 1.5 / SD 2 / SDXL ---------------------------------------------------------------------

_SD_BLOCKS = dict(block_out_channels=(4, 8), layers_per_block=2, norm_num_groups=1,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"))
# The ControlNet's conditioning embedding downsamples by 2 ** (n - 1): 8, as the VAE does.
_CONDITIONING = (8, 8, 16, 16)


def build_sd15_controlnet(folder: Path) -> dict[str, Path]:
    from diffusers import ControlNetModel, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=32, in_channels=4, out_channels=4,
                                cross_attention_dim=32,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **_SD_BLOCKS)
    controlnet = ControlNetModel(conditioning_embedding_out_channels=_CONDITIONING,
                                 in_channels=4, cross_attention_dim=32, **_SD_BLOCKS)
    _live_control_path(controlnet, "controlnet_cond_embedding")
    base = StableDiffusionPipeline(vae=_sd_vae(), text_encoder=CLIPTextModel(_clip_config()),
                                   tokenizer=clip_tokenizer(), unet=unet,
                                   scheduler=_sd_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    return {"base": _save(base, folder / "base"),
            "controlnet": _save(controlnet, folder / "controlnet")}


def sd15_full_size_vae() -> Any:
    """SD 1.5's VAE at its real size (random weights)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                         down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4,
                         sample_size=512)


def clip_vit_l_text_encoder() -> Any:
    """SD 1.5's text encoder (CLIP ViT-L/14's text half) at its real size (random weights)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
        max_position_embeddings=77, vocab_size=49408, projection_dim=768))


def build_sd15_controlnet_full_size(folder: Path) -> dict[str, Path]:
    """SD 1.5's real architecture (UNet, depth ControlNet, VAE, CLIP ViT-L text encoder) with
    random weights: ~1.1 B parameters, for benchmarks that need real per-step cost offline."""
    from diffusers import (
        ControlNetModel,
        StableDiffusionPipeline,
        UNet2DConditionModel,
        UniPCMultistepScheduler,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
    controlnet = ControlNetModel(cross_attention_dim=768)
    vae = sd15_full_size_vae()
    text_encoder = clip_vit_l_text_encoder()
    scheduler = UniPCMultistepScheduler(beta_start=0.00085, beta_end=0.012,
                                        beta_schedule="scaled_linear")
    base = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(),
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    return {"base": _save(base, folder / "base"),
            "controlnet": _save(controlnet, folder / "controlnet")}


def build_sd2_depth2img(folder: Path) -> dict[str, Path]:
    from diffusers import StableDiffusionDepth2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    # depth2img's UNet takes the 4 latent channels plus the depth map: 5 in, 4 out.
    unet = UNet2DConditionModel(sample_size=32, in_channels=5, out_channels=4,
                                cross_attention_dim=32, attention_head_dim=(2, 4),
                                use_linear_projection=True,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **_SD_BLOCKS)
    base = StableDiffusionDepth2ImgPipeline(vae=_sd_vae(), text_encoder=CLIPTextModel(
        _clip_config()), tokenizer=clip_tokenizer(), unet=unet, scheduler=_sd_scheduler(),
        depth_estimator=None, feature_extractor=None)
    return {"base": _save(base, folder / "base")}


_SDXL_BLOCKS = dict(block_out_channels=(8, 16), layers_per_block=2, norm_num_groups=1,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    use_linear_projection=True, addition_embed_type="text_time",
                    addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
                    cross_attention_dim=64, attention_head_dim=(2, 4))


def _sdxl_base() -> Any:
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    unet = UNet2DConditionModel(sample_size=32, in_channels=4, out_channels=4,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                **_SDXL_BLOCKS)
    # 80 = 6 time ids x 8 + the second encoder's 32-wide pooled projection; 64 = 32 + 32.
    return StableDiffusionXLPipeline(
        vae=_sd_vae(), text_encoder=CLIPTextModel(_clip_config()), tokenizer=clip_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config()), tokenizer_2=clip_tokenizer(),
        unet=unet, scheduler=_sd_scheduler(), force_zeros_for_empty_prompt=True)


def build_sdxl_controlnet(folder: Path) -> dict[str, Path]:
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    base = _sdxl_base()
    controlnet = ControlNetModel(conditioning_embedding_out_channels=_CONDITIONING,
                                 in_channels=4, **_SDXL_BLOCKS)
    _live_control_path(controlnet, "controlnet_cond_embedding")
    return {"base": _save(base, folder / "base"),
            "controlnet": _save(controlnet, folder / "controlnet")}


def build_sdxl_controlnet_union(folder: Path) -> dict[str, Path]:
    from diffusers import ControlNetUnionModel

    torch.manual_seed(0)
    base = _sdxl_base()
    controlnet = ControlNetUnionModel(conditioning_embedding_out_channels=_CONDITIONING,
                                      in_channels=4, num_trans_channel=8, num_trans_head=2,
                                      num_proj_channel=8, **_SDXL_BLOCKS)
    _live_control_path(controlnet, "controlnet_cond_embedding")
    return {"base": _save(base, folder / "base"),
            "controlnet": _save(controlnet, folder / "controlnet")}


# --- FLUX.1 -----------------------------------------------------------------------------------

_FLUX = dict(patch_size=1, num_layers=1, num_single_layers=1, attention_head_dim=16,
             num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
             axes_dims_rope=[4, 4, 8])


def _flux_parts() -> dict[str, Any]:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    vae = AutoencoderKL(block_out_channels=[4, 4, 8, 8], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=1,
                        norm_num_groups=2, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    t5 = T5EncoderModel(T5Config(d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
                                 vocab_size=128, decoder_start_token_id=0, pad_token_id=0,
                                 eos_token_id=1))
    return {"vae": vae, "text_encoder": CLIPTextModel(_clip_config()),
            "tokenizer": clip_tokenizer(), "text_encoder_2": t5,
            "tokenizer_2": t5_tokenizer(), "scheduler": FlowMatchEulerDiscreteScheduler()}


def build_flux_depth(folder: Path) -> dict[str, Path]:
    from diffusers import FluxControlPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    # Control latents are concatenated to the packed latents: 2 x (4 x 1 latent channel) in.
    transformer = FluxTransformer2DModel(in_channels=8, out_channels=4, guidance_embeds=True,
                                         **_FLUX)
    pipe = FluxControlPipeline(transformer=transformer, **_flux_parts())
    return {"base": _save(pipe, folder / "base")}


def build_flux_controlnet(folder: Path) -> dict[str, Path]:
    from diffusers import FluxControlNetModel, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(in_channels=4, guidance_embeds=True, **_FLUX)
    controlnet = FluxControlNetModel(in_channels=4, guidance_embeds=True, **_FLUX)
    _live_control_path(controlnet, "controlnet_x_embedder")
    pipe = FluxPipeline(transformer=transformer, **_flux_parts())
    return {"base": _save(pipe, folder / "base"),
            "controlnet": _save(controlnet, folder / "controlnet")}


def build_flux_kontext(folder: Path) -> dict[str, Path]:
    from diffusers import FluxKontextPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(in_channels=4, guidance_embeds=True, **_FLUX)
    pipe = FluxKontextPipeline(transformer=transformer, **_flux_parts())
    return {"base": _save(pipe, folder / "base")}


def _flux2_parts(guidance_embeds: bool) -> dict[str, Any]:
    """Transformer (text features of 3 layers x 16 wide in), VAE and scheduler shared by the
    FLUX.2 variants."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2Transformer2DModel,
    )

    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=48, timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4], guidance_embeds=guidance_embeds)
    vae = AutoencoderKLFlux2(sample_size=32, in_channels=3, out_channels=3,
                             down_block_types=("DownEncoderBlock2D",) * 4,
                             up_block_types=("UpDecoderBlock2D",) * 4,
                             block_out_channels=(4, 4, 8, 8), layers_per_block=1,
                             latent_channels=1, norm_num_groups=2, use_quant_conv=False,
                             use_post_quant_conv=False)
    return {"transformer": transformer, "vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler()}


def build_flux2(folder: Path) -> dict[str, Path]:
    """FLUX.2 klein: Qwen3 text encoder whose layers 9, 18 and 27 feed the transformer."""
    from diffusers import Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    parts = _flux2_parts(guidance_embeds=False)
    text_encoder = Qwen3ForCausalLM(Qwen3Config(
        intermediate_size=16, hidden_size=16, num_hidden_layers=27, num_attention_heads=2,
        num_key_value_heads=2, vocab_size=QWEN_VOCAB, max_position_embeddings=1024))
    pipe = Flux2KleinPipeline(text_encoder=text_encoder, tokenizer=qwen2_tokenizer(), **parts)
    return {"base": _save(pipe, folder / "base")}


def build_flux2_dev(folder: Path) -> dict[str, Path]:
    """FLUX.2 dev: Mistral 3 text encoder (layers 10, 20 and 30 feed the transformer) and
    embedded guidance. Laid out as black-forest-labs/FLUX.2-dev: model_index.json names the
    `tokenizer` a transformers PixtralProcessor, whose folder holds the tokenizer, the chat
    template, the image processor's and the processor's configs; written without torchvision,
    which transformers needs to build that processor. A byte-level tokenizer with Pixtral's
    image tokens stands in for Mistral's."""
    from diffusers import Flux2Pipeline
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        MistralConfig,
        PixtralVisionConfig,
    )

    torch.manual_seed(0)
    parts = _flux2_parts(guidance_embeds=True)
    tokenizer = qwen2_tokenizer(max_length=512)
    tokenizer.add_tokens(list(_PIXTRAL_TOKENS.values()), special_tokens=True)
    vision = PixtralVisionConfig(hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, image_size=32, patch_size=4, head_dim=8)
    text_encoder = Mistral3ForConditionalGeneration(Mistral3Config(
        text_config=MistralConfig(hidden_size=16, intermediate_size=16, num_hidden_layers=30,
                                  num_attention_heads=2, num_key_value_heads=2, head_dim=8,
                                  vocab_size=len(tokenizer), max_position_embeddings=1024),
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids(_PIXTRAL_TOKENS["image_token"])))
    pipe = Flux2Pipeline(text_encoder=text_encoder, tokenizer=None, **parts)
    base = _save(pipe, folder / "base")
    _write_pixtral_processor(base / "tokenizer", tokenizer, vision.patch_size,
                             text_encoder.config.spatial_merge_size)
    _name_component(base, "tokenizer", "PixtralProcessor")
    return {"base": base}


_PIXTRAL_TOKENS = {"image_token": "[IMG]", "image_break_token": "[IMG_BREAK]",
                   "image_end_token": "[IMG_END]"}


def _write_pixtral_processor(folder: Path, tokenizer: Any, patch_size: int,
                             spatial_merge_size: int) -> None:
    _save_processor_tokenizer(folder, tokenizer, "PixtralProcessor")
    _write_json(folder / "preprocessor_config.json", {
        "image_processor_type": "PixtralImageProcessorFast", "processor_class": "PixtralProcessor",
        "do_convert_rgb": True, "do_resize": True, "do_rescale": True, "do_normalize": True,
        "resample": 3, "rescale_factor": 1 / 255, "size": {"longest_edge": 1024},
        "patch_size": {"height": patch_size, "width": patch_size},
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]})
    _write_json(folder / "processor_config.json", {
        "processor_class": "PixtralProcessor", "patch_size": patch_size,
        "spatial_merge_size": spatial_merge_size, **_PIXTRAL_TOKENS})


# --- Z-Image ----------------------------------------------------------------------------------


def build_zimage_controlnet(folder: Path, control_in_dim: int = 16) -> dict[str, Path]:
    """Z-Image Turbo with a Fun ControlNet Union 1.0-style ControlNet: its control input is the
    16 latent channels of the control picture."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImageControlNetModel,
        ZImagePipeline,
        ZImageTransformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(0)
    shared = dict(all_patch_size=(2,), all_f_patch_size=(1,), dim=32, n_refiner_layers=1,
                  n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True)
    transformer = ZImageTransformer2DModel(in_channels=16, n_layers=2, cap_feat_dim=16,
                                           rope_theta=256.0, t_scale=1000.0, axes_dims=[8, 4, 4],
                                           axes_lens=[256, 32, 32], **shared)
    controlnet = ZImageControlNetModel(control_layers_places=[0],
                                       control_refiner_layers_places=[0],
                                       control_in_dim=control_in_dim, **shared)
    _live_control_path(controlnet, "control_all_x_embedder")
    with torch.no_grad():  # created with torch.empty: fill, or they may hold NaNs
        transformer.x_pad_token.fill_(1.0)
        transformer.cap_pad_token.fill_(1.0)
    vae = AutoencoderKL(block_out_channels=[8, 8, 16, 16], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=16,
                        norm_num_groups=8, scaling_factor=0.3611, shift_factor=0.1159)
    text_encoder = Qwen3Model(Qwen3Config(
        hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, vocab_size=QWEN_VOCAB, max_position_embeddings=1024))
    pipe = ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                          text_encoder=text_encoder, tokenizer=qwen2_tokenizer(),
                          transformer=transformer)
    return {"base": _save(pipe, folder / "base"),
            "controlnet": _save(controlnet, folder / "controlnet")}


def build_zimage_controlnet_2(folder: Path) -> dict[str, Path]:
    """The 2.0/2.1-style ControlNet (what inpaints): 33 control channels, the control picture's
    16 latent channels, the mask and the masked init image's 16 (zeros without a mask)."""
    return build_zimage_controlnet(folder, control_in_dim=33)


# --- Qwen-Image -------------------------------------------------------------------------------

_QWEN_TRANSFORMER = dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                         attention_head_dim=16, num_attention_heads=3, joint_attention_dim=16,
                         axes_dims_rope=(8, 4, 4))


def _qwen_parts() -> dict[str, Any]:
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = qwen2_tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"))}
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2,
                     "vocab_size": QWEN_VOCAB, "rope_theta": 1_000_000.0,
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default",
                                      "type": "default"}},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                       "out_hidden_size": 16},
        hidden_size=16, vocab_size=QWEN_VOCAB, **ids)
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                 temperal_downsample=[False, True, True],
                                 latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    # Its encoder is how the depth picture enters both Qwen families (ControlNet control image,
    # edit input picture): with default random weights it loses the picture.
    with torch.random.fork_rng(devices=()), torch.no_grad():
        torch.manual_seed(CONTROL_SEED)
        _keep_picture_signal(vae.encoder)
    return {"vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(), "tokenizer": tokenizer,
            "text_encoder": Qwen2_5_VLForConditionalGeneration(config)}


def build_qwen_image_controlnet(folder: Path) -> dict[str, Path]:
    from diffusers import QwenImageControlNetModel, QwenImagePipeline, QwenImageTransformer2DModel

    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(guidance_embeds=False, **_QWEN_TRANSFORMER)
    controlnet = QwenImageControlNetModel(**_QWEN_TRANSFORMER)
    _live_control_path(controlnet, "controlnet_x_embedder")
    pipe = QwenImagePipeline(transformer=transformer, **_qwen_parts())
    return {"base": _save(pipe, folder / "base"),
            "controlnet": _save(controlnet, folder / "controlnet")}


def build_qwen_image_edit(folder: Path) -> dict[str, Path]:
    """Laid out as Qwen/Qwen-Image-Edit-2511: model_index.json names `processor` a
    transformers Qwen2VLProcessor, whose processor/ folder holds the tokenizer, the chat
    template, preprocessor_config.json and video_preprocessor_config.json. Written without
    torchvision, which transformers needs to build the processor's video half."""
    from diffusers import QwenImageEditPlusPipeline, QwenImageTransformer2DModel

    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(guidance_embeds=False, **_QWEN_TRANSFORMER)
    parts = _qwen_parts()
    pipe = QwenImageEditPlusPipeline(transformer=transformer, processor=None, **parts)
    base = _save(pipe, folder / "base")
    _write_qwen2vl_processor(base / "processor", parts["tokenizer"])
    _name_component(base, "processor", "Qwen2VLProcessor")
    return {"base": base}


# Qwen2-VL's picture preprocessing (its published defaults): 14-pixel patches merged 2 x 2.
_QWEN2VL_PIXELS = dict(do_convert_rgb=True, do_resize=True, do_rescale=True, do_normalize=True,
                       resample=3, rescale_factor=1 / 255,
                       image_mean=[0.48145466, 0.4578275, 0.40821073],
                       image_std=[0.26862954, 0.26130258, 0.27577711], patch_size=14,
                       temporal_patch_size=2, merge_size=2, min_pixels=56 * 56,
                       max_pixels=28 * 28 * 16384,
                       size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384})


def _write_qwen2vl_processor(folder: Path, tokenizer: Any) -> None:
    _save_processor_tokenizer(folder, tokenizer, "Qwen2VLProcessor")
    _write_json(folder / "preprocessor_config.json", {
        **_QWEN2VL_PIXELS, "image_processor_type": "Qwen2VLImageProcessorFast",
        "processor_class": "Qwen2VLProcessor"})
    _write_json(folder / "video_preprocessor_config.json", {
        **_QWEN2VL_PIXELS, "video_processor_type": "Qwen2VLVideoProcessor",
        "processor_class": "Qwen2VLProcessor", "do_sample_frames": False})


def _save_processor_tokenizer(folder: Path, tokenizer: Any, processor_class: str) -> None:
    """A processor's tokenizer files (tokenizer.json, tokenizer_config.json naming the processor,
    chat_template.jinja), as the processor's save_pretrained writes them."""
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    _write_json(config_path, {**config, "processor_class": processor_class})


def _name_component(pipeline_folder: Path, component: str, class_name: str) -> None:
    """List `component` in model_index.json as the transformers class the real model's folder
    holds (the pipeline was saved without it: building that class needs torchvision)."""
    index_path = pipeline_folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index[component] = ["transformers", class_name]
    _write_json(index_path, index)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


# --- Wan VACE ---------------------------------------------------------------------------------


def build_wan_vace(folder: Path) -> dict[str, Path]:
    """Wan 2.1 VACE at toy sizes: a 2-layer transformer with one VACE block, a 4-channel Wan
    VAE (8x spatial, 4x temporal as the real one), a 1-layer UMT5 encoder, and the real model's
    UniPC flow scheduler. Random Wan VAEs squash a picture to a constant within a few layers,
    both ways: the encoder (how depth frames and references enter) and the decoder (how the
    control's effect leaves) get picture-keeping weights, so another depth clip gives other
    frames; so do the VACE patch embedding and block."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    z_dim = 4
    # VACE's control input: the inactive and reactive latents (z_dim each) and the mask's
    # 8 x 8 pixels of every latent pixel.
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=z_dim,
        out_channels=z_dim, text_dim=16, freq_dim=16, ffn_dim=16, num_layers=2,
        rope_max_seq_len=32, vace_layers=[0], vace_in_channels=2 * z_dim + 64)
    vae = AutoencoderKLWan(base_dim=4, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)
    with torch.random.fork_rng(devices=()), torch.no_grad():
        torch.manual_seed(CONTROL_SEED)
        for module in (vae.encoder, vae.decoder, transformer.vace_patch_embedding,
                       *transformer.vace_blocks):
            _keep_picture_signal(module)
    text_encoder = UMT5EncoderModel(UMT5Config(
        d_model=16, d_kv=4, d_ff=16, num_layers=1, num_heads=2, vocab_size=100,
        relative_attention_num_buckets=8))
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=3.0)
    pipe = WanVACEPipeline(tokenizer=t5_tokenizer(max_length=64), text_encoder=text_encoder,
                           vae=vae, scheduler=scheduler, transformer=transformer)
    return {"base": _save(pipe, folder / "base")}


BUILDERS = {
    "sd15_controlnet": build_sd15_controlnet,
    "sdxl_controlnet": build_sdxl_controlnet,
    "sdxl_controlnet_union": build_sdxl_controlnet_union,
    "sd2_depth2img": build_sd2_depth2img,
    "flux_depth": build_flux_depth,
    "flux_controlnet": build_flux_controlnet,
    "zimage_controlnet": build_zimage_controlnet,
    "qwen_image_controlnet": build_qwen_image_controlnet,
    "qwen_image_edit": build_qwen_image_edit,
    "flux_kontext": build_flux_kontext,
    "flux2": build_flux2,
    "wan_vace": build_wan_vace,
    "flux2_dev": build_flux2_dev,  # a variant of the flux2 family, for its tests
    "zimage_controlnet_2": build_zimage_controlnet_2,  # zimage_controlnet that inpaints
}
