"""Fake A1111 and ComfyUI installs filled with tiny real .safetensors files of every family,
ControlNet, LoRA, VAE and text encoder kind the model library tells apart.

Each file has the tensor names of the real format and shapes at toy sizes; where a rule keys on
a width (the 768 or 1024 text features an SD cross-attention reads, the channels a UNet or VAE
takes) that width is the real one. Where the names come from:
  - checkpoints, ControlNets, Z-Image, FLUX.2: diffusers' CHECKPOINT_KEY_NAMES
    (diffusers/loaders/single_file_utils.py) and the original LDM/SGM/BFL layouts it converts;
  - diffusers-layout transformers and ControlNets (FLUX, Qwen-Image, xinsir's Union): the state
    dict names of FluxTransformer2DModel, FluxControlNetModel, QwenImageTransformer2DModel,
    QwenImageControlNetModel and ControlNetUnionModel (the tiny models in models.py have them);
  - LoRAs: kohya's prefixes (lora_unet_, lora_te_, lora_te1_/lora_te2_, double_blocks/
    single_blocks for FLUX) as diffusers/loaders/lora_conversion_utils.py reads them, and
    peft's `<module>.lora_A/lora_B.weight`;
  - VAEs: the LDM layout (encoder.down.N.block), FLUX's 16-channel autoencoder, Qwen-Image's
    3D VAE (diffusers' "wan_vae" key);
  - training metadata: kohya's ss_* fields and the SAI model spec's trigger phrase.

Written by hand (header + raw little-endian bytes, the safetensors format), so only numpy is
needed; `add_loadable_sd15` adds files made from the tiny SD 1.5 model that really load (torch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

Layout = dict[str, list[int]]


def write_safetensors(path: Path, tensors: Layout, metadata: dict[str, str] | None = None,
                      seed: int = 0) -> Path:
    """A float16 safetensors file with small random values in every tensor."""
    rng = np.random.default_rng(seed)
    header: dict[str, Any] = {}
    blobs, offset = [], 0
    for name, shape in tensors.items():
        data = (rng.standard_normal(int(np.prod(shape))) * 0.02).astype("<f2").tobytes()
        header[name] = {"dtype": "F16", "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    return path


# --- layouts ------------------------------------------------------------------------------------

_CLIP_L = {"cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": [77, 8],
           "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight":
               [8, 8]}
_LDM_VAE = {"first_stage_model.encoder.down.0.block.0.conv1.weight": [4, 4, 3, 3],
            "first_stage_model.decoder.conv_in.weight": [8, 4, 3, 3]}


def _ldm_unet(in_channels: int = 4, context: int = 768, prefix: str = "model.diffusion_model."
              ) -> Layout:
    return {f"{prefix}input_blocks.0.0.weight": [8, in_channels, 3, 3],
            f"{prefix}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [8, context],
            f"{prefix}output_blocks.11.0.skip_connection.weight": [8, 16, 1, 1],
            f"{prefix}time_embed.0.weight": [32, 8]}


SD15 = {**_ldm_unet(), **_CLIP_L, **_LDM_VAE}
SD15_INPAINTING = {**_ldm_unet(in_channels=9), **_CLIP_L, **_LDM_VAE}
SD2 = {**_ldm_unet(context=1024), **_LDM_VAE,
       "cond_stage_model.model.token_embedding.weight": [16, 8],
       "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": [24, 8]}
SD2_DEPTH = {**SD2, "model.diffusion_model.input_blocks.0.0.weight": [8, 5, 3, 3]}
SDXL = {**{k: v for k, v in _ldm_unet().items() if "attn2" not in k}, **_LDM_VAE,
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight":
            [8, 2048],
        "model.diffusion_model.label_emb.0.0.weight": [32, 2816],
        "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight":
            [77, 8],
        "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": [8],
        "conditioner.embedders.1.model.positional_embedding": [77, 8]}


def _bfl_flux(img_in: int, prefix: str = "model.diffusion_model.", guidance: bool = True
              ) -> Layout:
    """Black Forest Labs' layout, as ComfyUI keeps FLUX.1 in diffusion_models/."""
    layout = {f"{prefix}double_blocks.0.img_attn.norm.key_norm.scale": [8],
              f"{prefix}double_blocks.0.img_attn.qkv.weight": [24, 8],
              f"{prefix}single_blocks.0.linear1.weight": [40, 8],
              f"{prefix}img_in.weight": [8, img_in], f"{prefix}txt_in.weight": [8, 16],
              f"{prefix}final_layer.linear.weight": [64, 8]}
    if guidance:
        layout[f"{prefix}guidance_in.in_layer.bias"] = [8]
    return layout


FLUX_DEV = _bfl_flux(64)
FLUX_SCHNELL = _bfl_flux(64, prefix="", guidance=False)
FLUX_DEPTH = _bfl_flux(128)
FLUX_FILL = _bfl_flux(384)
FLUX_DIFFUSERS = {"x_embedder.weight": [8, 64], "context_embedder.weight": [8, 16],
                  "transformer_blocks.0.attn.add_k_proj.weight": [8, 8],
                  "single_transformer_blocks.0.attn.norm_k.weight": [4],
                  "proj_out.weight": [64, 8]}
FLUX2 = {"model.diffusion_model.single_stream_modulation.lin.weight": [24, 8],
         "model.diffusion_model.double_stream_modulation_img.lin.weight": [48, 8],
         "model.diffusion_model.img_in.weight": [8, 128]}
ZIMAGE = {"model.diffusion_model.layers.0.adaLN_modulation.0.weight": [32, 8],
          "model.diffusion_model.cap_embedder.0.weight": [16],
          "model.diffusion_model.x_pad_token": [1, 8],
          "model.diffusion_model.noise_refiner.0.adaLN_modulation.0.weight": [32, 8]}
QWEN_IMAGE = {"img_in.weight": [8, 64], "txt_in.weight": [8, 16], "txt_norm.weight": [16],
              "transformer_blocks.0.img_mod.1.weight": [48, 8],
              "transformer_blocks.0.attn.add_k_proj.weight": [8, 8], "proj_out.weight": [64, 8]}

CN_SD15_LDM = {"control_model.time_embed.0.weight": [32, 8],
               "control_model.input_hint_block.0.weight": [16, 3, 3, 3],
               "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [8, 768],
               "control_model.zero_convs.0.0.weight": [8, 8, 1, 1]}
CN_SD15_DIFFUSERS = {"controlnet_cond_embedding.conv_in.weight": [16, 3, 3, 3],
                     "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": [8, 768],
                     "controlnet_down_blocks.0.weight": [8, 8, 1, 1],
                     "time_embedding.linear_1.weight": [32, 8]}
CN_SDXL = {"controlnet_cond_embedding.conv_in.weight": [16, 3, 3, 3],
           "add_embedding.linear_1.weight": [32, 2816],
           "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": [8, 2048],
           "controlnet_down_blocks.0.weight": [8, 8, 1, 1]}
CN_SDXL_UNION = {**CN_SDXL, "task_embedding": [8, 8],
                 "control_add_embedding.linear_1.weight": [32, 2048],
                 "transformer_layes.0.attn.in_proj_weight": [24, 8],
                 "spatial_ch_projs.weight": [8, 8]}
CN_FLUX = {"controlnet_x_embedder.weight": [8, 64], "controlnet_blocks.0.weight": [8, 8],
           "x_embedder.weight": [8, 64], "context_embedder.weight": [8, 16],
           "single_transformer_blocks.0.attn.norm_k.weight": [4],
           "controlnet_mode_embedder.weight": [10, 8]}
CN_QWEN = {"controlnet_x_embedder.weight": [8, 64], "controlnet_blocks.0.weight": [8, 8],
           "img_in.weight": [8, 64], "txt_norm.weight": [16], "txt_in.weight": [8, 16]}
CN_ZIMAGE = {"control_all_x_embedder.2-1.weight": [8, 64],
             "control_layers.0.adaLN_modulation.0.weight": [32, 8],
             "control_noise_refiner.0.adaLN_modulation.0.weight": [32, 8]}


def _kohya(names: list[str], width: int = 8) -> Layout:
    layout: Layout = {}
    for name in names:
        layout[f"{name}.lora_down.weight"] = [1, width]
        layout[f"{name}.lora_up.weight"] = [8, 1]
        layout[f"{name}.alpha"] = []
    return layout


LORA_SD15 = _kohya(["lora_te_text_model_encoder_layers_0_self_attn_q_proj"]) | _kohya(
    ["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"], width=768)
LORA_SD2 = _kohya(["lora_te_text_model_encoder_layers_0_self_attn_q_proj"]) | _kohya(
    ["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"], width=1024)
LORA_SDXL = _kohya(["lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
                    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj",
                    "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k"])
LORA_FLUX_KOHYA = _kohya(["lora_unet_double_blocks_0_img_attn_qkv",
                          "lora_unet_single_blocks_0_linear1"])
LORA_LYCORIS = {"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a": [8, 1],
                "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_b": [1, 8],
                "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": []}


def _peft(modules: list[str]) -> Layout:
    layout: Layout = {}
    for module in modules:
        layout[f"{module}.lora_A.weight"] = [1, 8]
        layout[f"{module}.lora_B.weight"] = [8, 1]
    return layout


LORA_FLUX_PEFT = _peft(["transformer.single_transformer_blocks.0.attn.to_q",
                        "transformer.transformer_blocks.0.attn.add_q_proj"])
LORA_SDXL_PEFT = _peft(["unet.down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k",
                        "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj"])
LORA_ZIMAGE = _peft(["diffusion_model.layers.0.attention.to_q",
                     "diffusion_model.layers.0.feed_forward.w1"])
LORA_QWEN = _peft(["transformer.transformer_blocks.0.img_mlp.net.0.proj",
                   "transformer.transformer_blocks.0.attn.to_q"])

VAE_SD = {"encoder.down.0.block.0.conv1.weight": [4, 4, 3, 3],
          "encoder.conv_in.weight": [4, 3, 3, 3], "decoder.conv_in.weight": [8, 4, 3, 3],
          "decoder.up.0.block.0.conv1.weight": [4, 4, 3, 3]}
VAE_FLUX = {"encoder.conv_in.weight": [4, 3, 3, 3], "decoder.conv_in.weight": [8, 16, 3, 3],
            "decoder.up.0.block.0.conv1.weight": [4, 4, 3, 3]}
VAE_QWEN = {"encoder.conv1.weight": [8, 3, 3, 3, 3],
            "decoder.middle.0.residual.0.gamma": [8, 1, 1, 1]}
TE_CLIP_L = {"text_model.encoder.layers.0.self_attn.q_proj.weight": [8, 8],
             "text_model.embeddings.position_embedding.weight": [77, 8]}
TE_T5 = {"encoder.block.0.layer.0.SelfAttention.q.weight": [8, 8], "shared.weight": [32, 8]}
TE_QWEN = {"model.layers.0.self_attn.q_proj.weight": [8, 8], "model.embed_tokens.weight": [32, 8]}

TRAINING_METADATA = {
    "ss_base_model_version": "sd_v1",
    "ss_tag_frequency": json.dumps({"10_sks teapot": {"sks teapot": 12, "table": 5,
                                                      "studio light": 3}}),
    "ss_output_name": "teapot",
}

# path under the fake tree -> (layout, metadata, (role, arch, lora bases)): what the library
# must say about each file.
SD_BASES = ("sd15", "sd2", "sd2_depth")
FILES: dict[str, tuple[Layout, dict[str, str] | None, tuple[str, str, tuple[str, ...]]]] = {
    "a1111/models/Stable-diffusion/sd15_layout.safetensors":
        (SD15, None, ("checkpoint", "sd15", ())),
    "a1111/models/Stable-diffusion/inpaint/sd15_inpainting.safetensors":
        (SD15_INPAINTING, None, ("checkpoint", "sd15", ())),
    "a1111/models/Stable-diffusion/v2-1_768.safetensors": (SD2, None, ("checkpoint", "sd2", ())),
    "a1111/models/Stable-diffusion/512-depth-ema.safetensors":
        (SD2_DEPTH, None, ("checkpoint", "sd2_depth", ())),
    "a1111/models/ControlNet/control_v11f1p_sd15_depth.safetensors":
        (CN_SD15_LDM, None, ("controlnet", "sd15", ())),
    "a1111/models/ControlNet/diffusers_sd15_depth.safetensors":
        (CN_SD15_DIFFUSERS, None, ("controlnet", "sd15", ())),
    "a1111/models/ControlNet/controlnet-depth-sdxl.safetensors":
        (CN_SDXL, None, ("controlnet", "sdxl", ())),
    "a1111/models/Lora/teapot_sd15.safetensors":
        (LORA_SD15, TRAINING_METADATA, ("lora", "", ("sd15",))),
    "a1111/models/Lora/sd2_style.safetensors": (LORA_SD2, None, ("lora", "", ("sd2", "sd2_depth"))),
    "a1111/models/LyCORIS/loha_style.safetensors":
        (LORA_LYCORIS, None, ("lora", "", SD_BASES)),
    "a1111/models/VAE/vae-ft-mse-840000.safetensors": (VAE_SD, None, ("vae", "sd_vae", ())),
    "comfyui/models/checkpoints/sdxl_base.safetensors": (SDXL, None, ("checkpoint", "sdxl", ())),
    "comfyui/models/diffusion_models/flux1-dev.safetensors":
        (FLUX_DEV, None, ("diffusion_model", "flux1", ())),
    "comfyui/models/diffusion_models/flux1-depth-dev.safetensors":
        (FLUX_DEPTH, None, ("diffusion_model", "flux1_depth", ())),
    "comfyui/models/diffusion_models/flux1-fill-dev.safetensors":
        (FLUX_FILL, None, ("diffusion_model", "flux1_fill", ())),
    "comfyui/models/diffusion_models/flux2/flux2-dev.safetensors":
        (FLUX2, None, ("diffusion_model", "flux2", ())),
    "comfyui/models/unet/flux1-schnell.safetensors":
        (FLUX_SCHNELL, None, ("diffusion_model", "flux1", ())),
    "comfyui/models/unet/flux1-diffusers.safetensors":
        (FLUX_DIFFUSERS, None, ("diffusion_model", "flux1", ())),
    "comfyui/models/diffusion_models/z_image_turbo_bf16.safetensors":
        (ZIMAGE, None, ("diffusion_model", "zimage", ())),
    "comfyui/models/controlnet/flux-controlnet-union-pro.safetensors":
        (CN_FLUX, None, ("controlnet", "flux1", ())),
    "comfyui/models/controlnet/xinsir-union-promax.safetensors":
        (CN_SDXL_UNION, None, ("controlnet", "sdxl_union", ())),
    "comfyui/models/model_patches/Z-Image-Turbo-Fun-Controlnet-Union.safetensors":
        (CN_ZIMAGE, None, ("controlnet", "zimage", ())),
    "comfyui/models/loras/sdxl_kohya.safetensors": (LORA_SDXL, None, ("lora", "", ("sdxl",))),
    "comfyui/models/loras/sdxl_peft.safetensors": (LORA_SDXL_PEFT, None, ("lora", "", ("sdxl",))),
    "comfyui/models/loras/flux_kohya.safetensors":
        (LORA_FLUX_KOHYA, None, ("lora", "", ("flux1", "flux1_depth"))),
    "comfyui/models/loras/flux_peft.safetensors":
        (LORA_FLUX_PEFT, {"modelspec.trigger_phrase": "ohwx, film grain"},
         ("lora", "", ("flux1", "flux1_depth"))),
    "comfyui/models/loras/zimage_style.safetensors": (LORA_ZIMAGE, None, ("lora", "", ("zimage",))),
    "comfyui/models/vae/ae.safetensors": (VAE_FLUX, None, ("vae", "flux_vae", ())),
    "comfyui/models/vae/qwen_image_vae.safetensors": (VAE_QWEN, None, ("vae", "qwen_vae", ())),
    "comfyui/models/text_encoders/t5xxl_fp16.safetensors":
        (TE_T5, None, ("text_encoder", "t5", ())),
    "comfyui/models/text_encoders/qwen_2.5_vl_7b.safetensors":
        (TE_QWEN, None, ("text_encoder", "qwen_llm", ())),
    "comfyui/models/clip/clip_l.safetensors": (TE_CLIP_L, None, ("text_encoder", "clip", ())),
    # reached only through comfyui/extra_model_paths.yaml
    "extra/diffusion/qwen_image_bf16.safetensors":
        (QWEN_IMAGE, None, ("diffusion_model", "qwen_image", ())),
    "extra/control/qwen-image-controlnet-union.safetensors":
        (CN_QWEN, None, ("controlnet", "qwen_image", ())),
    "extra/lora/qwen_style.safetensors": (LORA_QWEN, None, ("lora", "", ("qwen_image",))),
}

# The yaml ComfyUI users write: one section pointing at an A1111 install (relative base_path,
# a `|` block of two LoRA folders), one at a folder of their own.
EXTRA_MODEL_PATHS = """\
# ComfyUI's example file, trimmed
a111:
    base_path: ../a1111/

    checkpoints: models/Stable-diffusion
    vae: models/VAE
    loras: |
         models/Lora
         models/LyCORIS
    controlnet: models/ControlNet
    upscale_models: models/ESRGAN

mine:
    base_path: {extra}
    is_default: false
    diffusion_models: diffusion
    controlnet: "control"
    loras: lora  # a comment
"""

BROKEN = {  # file -> what is wrong with it (the library skips each with a note)
    "a1111/models/Stable-diffusion/truncated.safetensors": "truncated",
    "a1111/models/Lora/garbage.safetensors": "header",
    "comfyui/models/checkpoints/renamed_pickle.safetensors": "pickle",
    "a1111/models/Stable-diffusion/old_model.ckpt": "pickle checkpoint",
}


def write_fake_installs(root: Path) -> dict[str, Path]:
    """The fake A1111 (`root/a1111`), ComfyUI (`root/comfyui`, with extra_model_paths.yaml)
    and extra folder (`root/extra`); returns their paths."""
    for index, (relative, (layout, metadata, _expected)) in enumerate(sorted(FILES.items())):
        write_safetensors(root / relative, layout, metadata, seed=index)
    truncated = write_safetensors(root / "a1111/models/Stable-diffusion/truncated.safetensors",
                                  SD15, seed=99)
    truncated.write_bytes(truncated.read_bytes()[:-100])  # an interrupted download
    (root / "a1111/models/Lora/garbage.safetensors").write_bytes(
        (40).to_bytes(8, "little") + b"\xff\xfe not json at all, not at all!!!" + bytes(64))
    (root / "comfyui/models/checkpoints/renamed_pickle.safetensors").write_bytes(
        b"PK\x03\x04" + bytes(60))  # torch.save's zip, renamed
    (root / "a1111/models/Stable-diffusion/old_model.ckpt").write_bytes(b"\x80\x02" + bytes(30))
    (root / "comfyui").mkdir(parents=True, exist_ok=True)
    (root / "comfyui/extra_model_paths.yaml").write_text(
        EXTRA_MODEL_PATHS.format(extra=root / "extra"), encoding="utf-8")
    return {"a1111": root / "a1111", "comfyui": root / "comfyui", "extra": root / "extra"}


def add_loadable_sd15(root: Path, tiny_base: Path) -> dict[str, Path]:
    """Files made from the tiny SD 1.5 model that the backend really loads: an A1111-layout
    checkpoint and two LoRAs (kohya with training metadata, diffusers/peft). Needs torch."""
    from safetensors.torch import load_file, save_file

    from .checkpoints import save_diffusers_lora, save_kohya_lora, save_sd15_single_file

    checkpoint = save_sd15_single_file(
        tiny_base, root / "a1111/models/Stable-diffusion/tiny_sd15.safetensors")
    lora_dir = root / "a1111/models/Lora"
    lora_dir.mkdir(parents=True, exist_ok=True)
    kohya = save_kohya_lora(tiny_base, lora_dir / "tiny_kohya.safetensors", seed=3)
    save_file(load_file(kohya), kohya, metadata={  # as kohya's trainer stamps its files
        "ss_base_model_version": "sd_v1",
        "ss_tag_frequency": json.dumps({"5_tiny teapot": {"tiny teapot": 4, "shiny": 2}})})
    peft = save_diffusers_lora(tiny_base, lora_dir / "tiny_peft.safetensors", seed=4)
    return {"checkpoint": checkpoint, "kohya": kohya, "peft": peft}
