"""Single-file checkpoints load offline with no Hugging Face cache: the configs shipped with the
backend, and the CLIP tokenizers written from open-clip-torch's BPE merges."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from backend import single_file_configs, weights
from backend.errors import ModelNotFound, UnsafeModelFile
from backend.single_file_configs import clip_vocabulary
from backend.tiny.checkpoints import save_sd15_single_file
from t2i_core import protocol


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> Path:
    """The backend's cache folder the shipped configs are materialized into."""
    return tmp_path_factory.mktemp("cache")


def _tokenizer(configs: Path, name: str, subfolder: str = "tokenizer"):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(single_file_configs.materialize(name, configs),
                                         subfolder=subfolder)


# Ids of the original CLIP tokenizer (the vocabulary SD 1.5, SD 2 and SDXL share), from public
# tests and docs: elixir-nx/bumblebee test/bumblebee/text/clip_tokenizer_test.exs (HF
# openai/clip-vit-base-patch32) and OpenAI's own `clip.tokenize` as printed in
# nishio/external_brain_in_markdown pages/CLIP.md (a sub-word split, and its zero padding).
KNOWN_IDS = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "a photo of a dog": [49406, 320, 1125, 539, 320, 1929, 49407],
    "a painting of a cat": [49406, 320, 3086, 539, 320, 2368, 49407],
    "bozuman": [49406, 647, 4091, 786, 49407],
}


@pytest.mark.parametrize(("name", "subfolder"), [("sd15", "tokenizer"), ("sd2-768-v", "tokenizer"),
                                                 ("sdxl-base", "tokenizer"),
                                                 ("sdxl-base", "tokenizer_2")])
def test_the_tokenizers_give_the_original_clip_ids(configs, name, subfolder):
    tokenizer = _tokenizer(configs, name, subfolder)
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    for prompt, ids in KNOWN_IDS.items():
        assert tokenizer(prompt).input_ids == ids, prompt
    assert tokenizer("A   PHOTO of a Cat").input_ids == KNOWN_IDS["a photo of a cat"]


def test_sd2_and_sdxl_second_tokenizer_pad_with_zero_as_open_clip_does(configs):
    """OpenCLIP-trained encoders (SD 2, SDXL's second) pad with id 0 (`!`), as OpenAI's
    clip.tokenize does; SD 1.5 and SDXL's first pad with <|endoftext|>, as HF's CLIP does."""
    padded = {(name, sub): _tokenizer(configs, name, sub)(
        "a painting of a cat", padding="max_length", max_length=10).input_ids
        for name, sub in (("sd2-768-v", "tokenizer"), ("sd2-512-base", "tokenizer"),
                          ("sdxl-base", "tokenizer_2"), ("sd15", "tokenizer"),
                          ("sdxl-base", "tokenizer"))}
    for key, ids in padded.items():
        pad = 0 if key[1] == "tokenizer_2" or key[0].startswith("sd2") else 49407
        assert ids == KNOWN_IDS["a painting of a cat"] + [pad] * 3, key


def test_the_vocabulary_is_built_from_the_merge_list_alone():
    pairs = clip_vocabulary.merges()
    vocab = clip_vocabulary.vocabulary(pairs)
    assert len(pairs) == 48894 and len(vocab) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["cat</w>"] == 2368  # a merge's id is 512 + its place in the list
    assert pairs[2368 - 512] == ("c", "at</w>")


# Published sizes (parameters): SD 1.5's model card (860M UNet, 123M text encoder); SD 2's
# (865M UNet, OpenCLIP ViT-H text tower); the SDXL paper (2.6B UNet, 817M in its two text
# encoders); the SD VAE (83.6M); ControlNet 1.1 for SD 1.5 (361M).
PUBLISHED = {
    ("sd15", "unet"): 860e6, ("sd15", "text_encoder"): 123e6, ("sd15", "vae"): 83.6e6,
    ("sd2-768-v", "unet"): 866e6, ("sd2-512-base", "unet"): 866e6,
    ("sdxl-base", "unet"): 2.57e9, ("sdxl-base", "vae"): 83.6e6,
    ("sd15-controlnet", ""): 361e6,
}


def _meta_model(folder: Path) -> torch.nn.Module:
    import diffusers
    import transformers

    config = json.loads((folder / "config.json").read_text())
    with torch.device("meta"):
        if "_class_name" in config:
            return getattr(diffusers, config["_class_name"]).from_config(config)
        kind = getattr(transformers, config["architectures"][0])
        return kind(transformers.CLIPTextConfig.from_pretrained(folder))


def test_shipped_configs_build_the_published_model_sizes(configs):
    """Each config builds its model (on the meta device: no memory) at the published size;
    a wrong block count, width or layer number would be far off."""
    def size(name: str, part: str) -> int:
        folder = single_file_configs.materialize(name, configs) / part
        return sum(p.numel() for p in _meta_model(folder).parameters())

    for (name, part), published in PUBLISHED.items():
        assert abs(size(name, part) - published) / published < 0.005, (name, part)
    text_encoders = size("sdxl-base", "text_encoder") + size("sdxl-base", "text_encoder_2")
    assert abs(text_encoders - 817e6) / 817e6 < 0.005
    assert size("sd2-depth", "unet") - size("sd2-512-base", "unet") == 320 * 9  # 5th channel
    # The SDXL depth ControlNet is the SDXL UNet's encoder, as diffusers derives it.
    from diffusers import ControlNetModel
    unet = _meta_model(single_file_configs.materialize("sdxl-base", configs) / "unet")
    with torch.device("meta"):
        derived = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
    shipped = _meta_model(single_file_configs.materialize("sdxl-controlnet", configs))
    assert ({k: v.shape for k, v in shipped.state_dict().items()}
            == {k: v.shape for k, v in derived.state_dict().items()})


def test_shipped_pipeline_configs_name_the_family_pipelines(configs):
    expected = {"sd15": "StableDiffusionPipeline", "sd2-768-v": "StableDiffusionPipeline",
                "sd2-512-base": "StableDiffusionPipeline",
                "sd2-depth": "StableDiffusionDepth2ImgPipeline",
                "sdxl-base": "StableDiffusionXLPipeline"}
    for name, class_name in expected.items():
        folder = single_file_configs.materialize(name, configs)
        assert weights.folder_class_name(folder) == class_name
    prediction = {name: json.loads((single_file_configs.materialize(name, configs) / "scheduler"
                                    / "scheduler_config.json").read_text()).get("prediction_type")
                  for name in ("sd2-768-v", "sd2-512-base")}
    assert prediction == {"sd2-768-v": "v_prediction", "sd2-512-base": "epsilon"}


# --- which config a file gets -------------------------------------------------------------------


def _sniffable(path: Path, *keys: str, shape: tuple[int, ...] = (2,)) -> Path:
    """A tiny safetensors file holding just the tensor names diffusers tells checkpoints by."""
    save_file({key: torch.zeros(shape) for key in keys}, path)
    return path


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


def test_an_empty_cache_falls_back_to_the_shipped_config(tmp_path, configs, empty_hf_cache):
    xl = _sniffable(tmp_path / "pony.safetensors",
                    "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias")
    v2 = _sniffable(tmp_path / "sd21.safetensors",
                    "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight",
                    shape=(320, 1024))
    controlnet = _sniffable(tmp_path / "depth.safetensors",
                            "controlnet_cond_embedding.conv_in.weight")
    vae = _sniffable(tmp_path / "sdxl_vae.safetensors", "encoder.conv_in.weight")
    cases = [("sdxl_controlnet", "base", xl, "sdxl-base"),
             ("sdxl_controlnet", "vae", vae, "sdxl-base/vae"),
             ("sd2_depth2img", "base", v2, "sd2-depth"),
             ("sd15_controlnet", "controlnet", controlnet, "sd15-controlnet")]
    for family, role, path, shipped in cases:
        found = weights.resolve_configs(family, {role: "no-such-org/config-repo"}, {},
                                        {role: weights.Source(str(path), path)}, configs)
        expected = single_file_configs.materialize(shipped.split("/")[0], configs)
        assert Path(found[role]) == (expected / shipped.split("/")[1] if "/" in shipped
                                     else expected), (family, role)


def test_a_file_no_config_fits_is_model_not_found_with_a_download_hint(tmp_path, configs,
                                                                        empty_hf_cache):
    mid = _sniffable(tmp_path / "mid.safetensors", "controlnet_cond_embedding.conv_in.weight",
                     "add_embedding.linear_1.weight", "down_blocks.1.attentions.0.norm.weight")
    source = weights.Source(str(mid), mid)
    with pytest.raises(ModelNotFound) as raised:
        weights.resolve_configs("sdxl_controlnet",
                                {"controlnet": "diffusers/controlnet-depth-sdxl-1.0"}, {},
                                {"controlnet": source}, configs)
    assert "controlnet_xl_mid" in str(raised.value)
    assert "hf download diffusers/controlnet-depth-sdxl-1.0" in raised.value.hint
    assert "controlnet_config" in raised.value.hint


def test_a_named_shipped_config_is_taken_over_the_checkpoint_type(tmp_path, configs,
                                                                   empty_hf_cache):
    v2 = _sniffable(tmp_path / "sd21.safetensors", "x")
    found = weights.resolve_configs("sd2_depth2img", {}, {"base_config": "sd2-768-v"},
                                    {"base": weights.Source(str(v2), v2)}, configs)
    assert Path(found["base"]) == single_file_configs.materialize("sd2-768-v", configs)


# --- through the backend, offline, with no Hugging Face cache at all ----------------------------


@pytest.fixture(scope="module")
def real_vocabulary_sd15(tiny_models, tmp_path_factory, configs) -> dict[str, Path]:
    """The tiny SD 1.5 with a text encoder as wide as CLIP's vocabulary and the real tokenizer,
    as a diffusers folder, as an A1111 single file, and as a folder of its configs only (no
    weights, no tokenizer vocabulary): what the backend ships for real SD 1.5."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    roles = tiny_models("sd15_controlnet")
    root = tmp_path_factory.mktemp("real-vocab")
    pipe = StableDiffusionPipeline.from_pretrained(roles["base"])
    config = CLIPTextConfig.from_pretrained(roles["base"] / "text_encoder")
    config.vocab_size = 49408
    torch.manual_seed(5)
    pipe.text_encoder = CLIPTextModel(config)
    pipe.tokenizer = _tokenizer(configs, "sd15")
    folder = root / "diffusers"
    pipe.save_pretrained(folder, safe_serialization=True)
    configs_only = root / "configs-only"
    for path in folder.rglob("*.json"):
        if path.parent.name != "tokenizer" or path.name == "tokenizer_config.json":
            (configs_only / path.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, configs_only / path.relative_to(folder))
    controlnet_config = root / "controlnet-config"
    controlnet_config.mkdir()
    shutil.copyfile(roles["controlnet"] / "config.json", controlnet_config / "config.json")
    return {"folder": folder, "configs_only": configs_only,
            "single_file": save_sd15_single_file(folder, root / "model.safetensors"),
            "controlnet": roles["controlnet"], "controlnet_config": controlnet_config,
            "controlnet_file": roles["controlnet"] / "diffusion_pytorch_model.safetensors"}


def test_single_files_load_offline_with_no_cache_and_configs_only(start_backend, make_job,
                                                                  real_vocabulary_sd15,
                                                                  tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 (the fixture's) and an empty Hugging Face home: the A1111 file and a
    ComfyUI-style ControlNet file load with folders of configs only, the tokenizer is written
    from open-clip's merges, and the picture is the diffusers folder's, bit for bit."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    files = real_vocabulary_sd15
    backend = start_backend()
    folder_job = make_job({"family": "sd15_controlnet", "base": str(files["folder"]),
                           "controlnet": str(files["controlnet"])}, prompt="a photo of a cat")
    file_job = make_job({"family": "sd15_controlnet", "base": str(files["single_file"]),
                         "base_config": str(files["configs_only"]),
                         "controlnet": str(files["controlnet_file"]),
                         "controlnet_config": str(files["controlnet_config"])},
                        prompt="a photo of a cat")
    pictures = []
    for job in (folder_job, file_job):
        final = backend.run(job)[-1]
        assert final["type"] == protocol.RESULT, final
        with Image.open(final["paths"][0]) as image:
            pictures.append(np.asarray(image))
    assert np.array_equal(pictures[0], pictures[1])
    assert not (tmp_path / "empty-hf-home" / "hub").exists()  # nothing was looked up there


def test_a_header_length_that_looks_like_a_pickle_byte_is_still_safetensors(tmp_path):
    """The length's first byte is 0x80 (a pickle's first byte) for one file in 256, "P" (a
    zip's) for another: real safetensors files, not pickles in disguise."""
    for wanted in (0x80, ord("P")):
        for padding in range(400):
            path = _sniffable(tmp_path / "file.safetensors", "k" * (1 + padding))
            if path.read_bytes()[0] == wanted:
                break
        weights.check_file(path)
    legacy = tmp_path / "legacy.safetensors"
    legacy.write_bytes(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.")
    with pytest.raises(UnsafeModelFile):
        weights.check_file(legacy)


def _sd2_shaped_depth_model(tiny: Path, folder: Path) -> Path:
    """The tiny SD 2 depth model with what tells an SD 2 file apart (cross-attention of width
    1024 in the first block), so diffusers types its single file `v2` as a real one's."""
    from diffusers import StableDiffusionDepth2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(tiny, depth_estimator=None,
                                                            feature_extractor=None)
    torch.manual_seed(3)
    pipe.unet = UNet2DConditionModel(
        sample_size=32, in_channels=5, out_channels=4, cross_attention_dim=1024,
        attention_head_dim=(2, 4), use_linear_projection=True, block_out_channels=(4, 8),
        layers_per_block=2, norm_num_groups=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    config = CLIPTextConfig.from_pretrained(tiny / "text_encoder")
    config.hidden_size, config.projection_dim = 1024, 1024
    pipe.text_encoder = CLIPTextModel(config)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def test_an_sd2_depth_single_file_loads_though_its_pipeline_has_no_single_file_loader(
        backend, tiny_models, make_job, tmp_path):
    """StableDiffusionDepth2ImgPipeline lacks from_single_file: the family loads the file's
    parts as SD's and gets the folder's picture, bit for bit."""
    folder = _sd2_shaped_depth_model(tiny_models("sd2_depth2img")["base"], tmp_path / "sd2")
    single = save_sd15_single_file(folder, tmp_path / "512-depth-ema.safetensors")
    assert weights.checkpoint_type(single) == "v2"
    pictures = []
    for model in ({"family": "sd2_depth2img", "base": str(folder)},
                  {"family": "sd2_depth2img", "base": str(single), "base_config": str(folder)}):
        final = backend.run(make_job(model))[-1]
        assert final["type"] == protocol.RESULT, final
        with Image.open(final["paths"][0]) as image:
            pictures.append(np.asarray(image))
    assert np.array_equal(pictures[0], pictures[1])
