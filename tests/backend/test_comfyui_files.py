"""The tiny ComfyUI checkpoint and ControlNet: the layouts ComfyUI's model detection reads,
written once, rebuilt when damaged, the same bytes each time. (That a real ComfyUI loads and
runs them is tests/comfyui/test_graphs.py's live test.)"""

from __future__ import annotations

import hashlib
import os

from safetensors import safe_open

from backend.tiny.comfyui_files import (
    CHECKPOINT_NAME,
    CONTROLNET_NAME,
    LORA_NAME,
    write_comfyui_models,
)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_comfyui_models(tmp_path):
    paths = write_comfyui_models(tmp_path)
    assert paths == {"checkpoint": tmp_path / "checkpoints" / CHECKPOINT_NAME,
                     "controlnet": tmp_path / "controlnet" / CONTROLNET_NAME,
                     "lora": tmp_path / "loras" / LORA_NAME}
    with safe_open(paths["checkpoint"], "pt") as checkpoint:
        keys = set(checkpoint.keys())
        assert {k.split(".")[0] for k in keys} == {"model", "first_stage_model",
                                                   "cond_stage_model"}
        # ComfyUI tells SD 1.5 by model_channels 320 and a 768-wide cross-attention
        unet = "model.diffusion_model."
        assert checkpoint.get_slice(unet + "input_blocks.0.0.weight").get_shape() == \
            [320, 4, 3, 3]
        attention = [k for k in keys if k.startswith(unet) and k.endswith("attn2.to_k.weight")]
        assert attention and all(checkpoint.get_slice(k).get_shape()[1] == 768
                                 for k in attention)
        assert unet + "middle_block.1.proj_in.weight" in keys
        assert checkpoint.get_slice(
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
        ).get_shape() == [49408, 768]
        assert checkpoint.get_slice("first_stage_model.decoder.conv_in.weight").get_shape() \
            == [512, 4, 3, 3]
    with safe_open(paths["controlnet"], "pt") as controlnet:
        keys = set(controlnet.keys())
        assert all(k.startswith("control_model.") for k in keys)
        hint = [controlnet.get_slice(f"control_model.input_hint_block.{i}.weight").get_shape()[0]
                for i in range(0, 16, 2)]
        assert hint == [16, 16, 32, 32, 96, 96, 256, 320]  # ComfyUI's fixed hint block
        zero_convs = sorted(k for k in keys if ".zero_convs." in k and k.endswith("weight"))
        assert len(zero_convs) == 6  # one per input block: conv_in, 2 resnets + downsample, 2
        for key in [*zero_convs, "control_model.middle_block_out.0.weight"]:
            assert controlnet.get_tensor(key).abs().max() > 0  # woken: the depth gets through

    with safe_open(paths["lora"], "pt") as lora:
        keys = set(lora.keys())
        assert keys and all(k.startswith("lora_unet_") for k in keys)
        assert "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k" \
               ".lora_down.weight" in keys

    # kept when complete, rebuilt (the same bytes) when not
    checkpoint_sha, mtime = _sha(paths["checkpoint"]), paths["checkpoint"].stat().st_mtime_ns
    assert write_comfyui_models(tmp_path) == paths
    assert paths["checkpoint"].stat().st_mtime_ns == mtime
    data = paths["controlnet"].read_bytes()
    paths["controlnet"].write_bytes(data[: len(data) // 2])  # an interrupted copy
    write_comfyui_models(tmp_path)
    assert paths["controlnet"].read_bytes() == data
    assert _sha(paths["checkpoint"]) == checkpoint_sha
    assert not [n for n in os.listdir(tmp_path / "controlnet") if n.startswith(".")]
