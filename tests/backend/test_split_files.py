"""Transformer families from split files, as ComfyUI keeps them: the diffusion model, each text
encoder and the VAE in files of their own, with a config folder that holds no weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from t2i_core import protocol


def _config_folder(folder: Path, target: Path, given: set[str]) -> Path:
    """The model's folder without the weights of the parts given as files."""
    def ignore(directory: str, names: list[str]) -> list[str]:
        part = Path(directory).relative_to(folder).as_posix()
        return [n for n in names if part in given and n.endswith(".safetensors")]

    shutil.copytree(folder, target, ignore=ignore)
    return target


def _file(path: Path, target: Path, prefix: str = "") -> Path:
    """One part's weights as a lone file (`prefix`: key names as another tool writes them)."""
    save_file({prefix + k: v.contiguous() for k, v in load_file(path).items()}, target)
    return target


def _split(base: Path, folder: Path, parts: dict[str, str]) -> dict[str, str]:
    """role -> key prefix of the file written for it (a tool's naming, mapped back on load)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"base": str(_file(base / "transformer" / "diffusion_pytorch_model.safetensors",
                              folder / "diffusion_model.safetensors")),
            "base_config": str(_config_folder(base, folder / "configs",
                                              {"transformer", *parts}))}
    for role, prefix in parts.items():
        weights = next((base / role).glob("*.safetensors"))
        spec[role] = str(_file(weights, folder / f"{role}.safetensors", prefix))
    return spec


def _pixels(backend, job) -> np.ndarray:
    final = backend.run(job)[-1]
    assert final["type"] == protocol.RESULT, final
    with Image.open(final["paths"][0]) as image:
        return np.asarray(image)


# ComfyUI's clip_l.safetensors names its tensors `text_model.*`, which transformers 5 saves
# without; its other text encoders and VAEs use the names saved here.
@pytest.mark.parametrize(("family", "parts"), [
    ("flux_depth", {"vae": "", "text_encoder": "text_model.", "text_encoder_2": ""}),
    ("zimage_controlnet", {"vae": "", "text_encoder": ""}),
    ("qwen_image_controlnet", {"text_encoder": ""}),
])
def test_split_files_give_the_folders_picture(backend, tiny_models, model_spec, make_job,
                                              tmp_path, family, parts):
    roles = tiny_models(family)
    whole = model_spec(family, roles)
    split = {**whole, **_split(roles["base"], tmp_path / "comfy", parts)}
    fields = {"guidance": 0.0} if family == "zimage_controlnet" else {}
    assert np.array_equal(_pixels(backend, make_job(whole, **fields)),
                          _pixels(backend, make_job(split, **fields)))


def test_a_part_diffusers_cannot_load_from_one_file_is_refused_with_what_to_do(
        backend, tiny_models, model_spec, make_job, tmp_path):
    roles = tiny_models("qwen_image_controlnet")
    spec = {**model_spec("qwen_image_controlnet", roles),
            **_split(roles["base"], tmp_path / "comfy", {"vae": ""})}
    final = backend.run(make_job(spec))[-1]
    assert final["code"] == protocol.ErrorCode.MODEL_LOAD_FAILED
    assert "AutoencoderKLQwenImage from a single file" in final["message"]
    assert "Leave 'vae' out" in final["hint"]
