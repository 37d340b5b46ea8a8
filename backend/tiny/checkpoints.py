"""Files in the formats users bring from A1111/ComfyUI, made from a tiny SD 1.5 model:
a single-file checkpoint in the original (LDM) layout, and LoRAs in kohya and diffusers formats.
The tests load them through the same loaders real files go through.

The LDM key mapping is the inverse of the one diffusers applies when loading a single file
(diffusers' convert_diffusers_to_original_stable_diffusion script, generalised to any number of
UNet blocks with two layers each).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _unet_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("down_blocks."))
    layer_map = [("middle_block.1.", "mid_block.attentions.0.")]
    layer_map += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    for i in range(blocks):
        for j in range(2):
            layer_map.append((f"input_blocks.{3 * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            layer_map.append((f"input_blocks.{3 * i + j + 1}.1.",
                              f"down_blocks.{i}.attentions.{j}."))
        for j in range(3):
            layer_map.append((f"output_blocks.{3 * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            layer_map.append((f"output_blocks.{3 * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        layer_map.append((f"input_blocks.{3 * (i + 1)}.0.op.",
                          f"down_blocks.{i}.downsamplers.0.conv."))
        has_attention = any(k.startswith(f"up_blocks.{i}.attentions.") for k in state)
        layer_map.append((f"output_blocks.{3 * i + 2}.{2 if has_attention else 1}.",
                          f"up_blocks.{i}.upsamplers.0."))
    whole = {"time_embedding.linear_1.": "time_embed.0.",
             "time_embedding.linear_2.": "time_embed.2.", "conv_in.": "input_blocks.0.0.",
             "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    resnet = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"),
              ("out_layers.3", "conv2"), ("emb_layers.1", "time_emb_proj"),
              ("skip_connection", "conv_shortcut")]
    converted = {}
    for key, value in state.items():
        new = key
        for hf, sd in whole.items():
            if new.startswith(hf):
                new = sd + new[len(hf):]
        if "resnets" in key:
            for sd, hf in resnet:
                new = new.replace(hf, sd)
        for sd, hf in layer_map:
            new = new.replace(hf, sd)
        converted[new] = value
    return converted


def _vae_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    blocks = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.down_blocks."))
    top = blocks - 1
    pairs = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"),
             ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(blocks):
        pairs += [(f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}.")
                  for j in range(2)]
        pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
        pairs.append((f"up.{top - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        pairs += [(f"decoder.up.{top - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}.")
                  for j in range(3)]
    pairs += [(f"mid.block_{i + 1}.", f"mid_block.resnets.{i}.") for i in range(2)]
    attention = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."),
                 ("proj_out.", "to_out.0.")]
    converted = {}
    for key, value in state.items():
        new = key
        for sd, hf in pairs:
            new = new.replace(hf, sd)
        if "attentions" in key:
            for sd, hf in attention:
                new = new.replace(hf, sd)
            if new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")):
                value = value.reshape(*value.shape, 1, 1)  # linear -> 1x1 conv, as LDM stores
        converted[new] = value
    return converted


def sd15_ldm_state(unet: dict[str, torch.Tensor], vae: dict[str, torch.Tensor],
                   text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SD 1.5's diffusers state dicts (UNet, VAE, CLIP text model) as one LDM-layout dict."""
    state: dict[str, torch.Tensor] = {}
    state.update({f"model.diffusion_model.{k}": v for k, v in _unet_to_ldm(unet).items()})
    state.update({f"first_stage_model.{k}": v for k, v in _vae_to_ldm(vae).items()})
    # transformers 5 saves CLIP without its `text_model.` prefix; LDM files have it.
    state.update({"cond_stage_model.transformer." + ("" if k.startswith("text_model.")
                                                     else "text_model.") + k: v
                  for k, v in text.items()})
    return state


def controlnet_ldm_state(controlnet: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers SD ControlNet's state dict in lllyasviel's original layout (control_model.*):
    the UNet's encoder half as the UNet maps it, plus the zero convs (controlnet_down_blocks.N ->
    zero_convs.N.0, controlnet_mid_block -> middle_block_out.0) and the hint block, whose convs
    sit at every other index of a Sequential with SiLUs between them (conv_in -> 0,
    blocks.k -> 2k + 2, conv_out -> last)."""
    embedding = "controlnet_cond_embedding."
    hint_blocks = 1 + max((int(k.split(".")[2]) for k in controlnet
                           if k.startswith(embedding + "blocks.")), default=-1)
    hint = {"conv_in.": 0, "conv_out.": 2 * hint_blocks + 2}
    hint |= {f"blocks.{k}.": 2 * k + 2 for k in range(hint_blocks)}
    unet_part, state = {}, {}
    for key, value in controlnet.items():
        if key.startswith(embedding):
            rest = key[len(embedding):]
            head = next(h for h in hint if rest.startswith(h))
            state[f"input_hint_block.{hint[head]}.{rest[len(head):]}"] = value
        elif key.startswith("controlnet_down_blocks."):
            index, leaf = key[len("controlnet_down_blocks."):].split(".", 1)
            state[f"zero_convs.{index}.0.{leaf}"] = value
        elif key.startswith("controlnet_mid_block."):
            state["middle_block_out.0." + key[len("controlnet_mid_block."):]] = value
        else:
            unet_part[key] = value
    state.update(_unet_to_ldm(unet_part))
    return {f"control_model.{k}": v for k, v in state.items()}


def save_sd15_single_file(base: Path, path: Path) -> Path:
    """An SD 1.5 diffusers folder as one LDM-layout .safetensors file."""
    state = sd15_ldm_state(load_file(base / "unet" / "diffusion_pytorch_model.safetensors"),
                           load_file(base / "vae" / "diffusion_pytorch_model.safetensors"),
                           load_file(base / "text_encoder" / "model.safetensors"))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


Projections = dict[str, list[tuple[str, int, int]]]
_ADAPTED = {"unet": (".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight"),
            "text_encoder": (".q_proj.weight", ".k_proj.weight", ".v_proj.weight",
                             ".out_proj.weight")}


def attention_projections(states: dict[str, dict[str, torch.Tensor]]) -> Projections:
    """component ("unet", "text_encoder") -> [(module path, in, out)] of the layers a LoRA
    adapts, from the components' diffusers/transformers state dicts."""
    found: Projections = {component: [] for component in _ADAPTED}
    for component, state in states.items():
        for key, value in state.items():
            if key.endswith(_ADAPTED[component]) and value.ndim == 2:
                found[component].append((key[: -len(".weight")], value.shape[1], value.shape[0]))
    return found


def _attention_projections(base: Path) -> Projections:
    return attention_projections({
        "unet": load_file(base / "unet" / "diffusion_pytorch_model.safetensors"),
        "text_encoder": load_file(base / "text_encoder" / "model.safetensors")})


def kohya_lora_state(projections: Projections, rank: int = 2, seed: int = 0,
                     scale: float = 1.0) -> dict[str, torch.Tensor]:
    """A kohya-format LoRA (lora_unet_* / lora_te_*, lora_down/lora_up/alpha) over the
    projections, random; `scale` shrinks lora_up (a LoRA that changes a picture, not one
    that swamps it)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for component, prefix in (("unet", "lora_unet_"), ("text_encoder", "lora_te_")):
        for module, fan_in, fan_out in projections[component]:
            name = prefix + module.replace(".", "_")
            state[f"{name}.lora_down.weight"] = torch.randn(rank, fan_in, generator=generator)
            state[f"{name}.lora_up.weight"] = torch.randn(fan_out, rank,
                                                          generator=generator) * scale
            state[f"{name}.alpha"] = torch.tensor(float(rank))
    return state


def save_kohya_lora(base: Path, path: Path, rank: int = 2, seed: int = 0) -> Path:
    """A kohya-format LoRA of a tiny SD 1.5 diffusers folder's UNet and text encoder."""
    save_file(kohya_lora_state(_attention_projections(base), rank, seed), path)
    return path


def save_diffusers_lora(base: Path, path: Path, rank: int = 2, seed: int = 1) -> Path:
    """A diffusers/peft-format LoRA (unet.<module>.lora_A/lora_B), UNet only."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for module, fan_in, fan_out in _attention_projections(base)["unet"]:
        state[f"unet.{module}.lora_A.weight"] = torch.randn(rank, fan_in, generator=generator)
        state[f"unet.{module}.lora_B.weight"] = torch.randn(fan_out, rank, generator=generator)
    save_file(state, path)
    return path
