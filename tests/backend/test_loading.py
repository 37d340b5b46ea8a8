"""Weights as users bring them: single-file checkpoints, LoRAs, caching between jobs, memory
modes and schedulers, all on the tiny SD 1.5 model through the real protocol."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from backend.tiny.checkpoints import save_diffusers_lora, save_kohya_lora, save_sd15_single_file
from t2i_core import protocol


@pytest.fixture(scope="module")
def sd15(tiny_models, tmp_path_factory):
    roles = tiny_models("sd15_controlnet")
    folder = tmp_path_factory.mktemp("sd15-files")
    return {
        **roles,
        "single_file": save_sd15_single_file(roles["base"], folder / "tiny-sd15.safetensors"),
        "kohya": save_kohya_lora(roles["base"], folder / "kohya_style.safetensors"),
        "diffusers_lora": save_diffusers_lora(roles["base"], folder / "peft_style.safetensors"),
    }


def _pixels(event) -> np.ndarray:
    with Image.open(event["paths"][0]) as image:
        return np.asarray(image, dtype=np.int16)


def _result(backend, job):
    events = backend.run(job)
    assert events[-1]["type"] == protocol.RESULT, events[-1]
    return events[-1]


def test_single_file_checkpoint_loads_with_the_family_config(backend, sd15, make_job):
    folder_job = make_job({"family": "sd15_controlnet", "base": str(sd15["base"]),
                           "controlnet": str(sd15["controlnet"])})
    file_job = make_job({"family": "sd15_controlnet", "base": str(sd15["single_file"]),
                         "base_config": str(sd15["base"]),
                         "controlnet": str(sd15["controlnet"])})
    # The A1111-layout file holds the same weights: the same picture, bit for bit.
    assert np.array_equal(_pixels(_result(backend, folder_job)),
                          _pixels(_result(backend, file_job)))


def test_single_file_without_a_local_config_is_model_not_found(backend, sd15, make_job):
    job = make_job({"family": "sd15_controlnet", "base": str(sd15["single_file"]),
                    "base_config": "no-such-org/no-such-config",
                    "controlnet": str(sd15["controlnet"])})
    final = backend.run(job)[-1]
    assert final["code"] == protocol.ErrorCode.MODEL_NOT_FOUND
    assert "no-such-org/no-such-config" in final["message"]


def test_loras_apply_with_their_weights_without_reloading(backend, sd15, make_job):
    model = {"family": "sd15_controlnet", "base": str(sd15["base"]),
             "controlnet": str(sd15["controlnet"])}
    plain = _result(backend, make_job(model))
    kohya = str(sd15["kohya"])
    peft = str(sd15["diffusers_lora"])
    full = _result(backend, make_job(model, loras=[{"path": kohya, "weight": 1.0},
                                                   {"path": peft, "weight": 0.5}]))
    zero = _result(backend, make_job(model, loras=[{"path": kohya, "weight": 0.0},
                                                   {"path": peft, "weight": 0.0}]))
    again = _result(backend, make_job(model))
    assert all(event["reused_model"] for event in (full, zero, again))
    assert not np.array_equal(_pixels(plain), _pixels(full))
    # weight 0 and no LoRA at all give the base model's picture
    assert np.abs(_pixels(zero) - _pixels(plain)).max() <= 1
    assert np.array_equal(_pixels(again), _pixels(plain))


@pytest.mark.parametrize(("scheduler", "runs_as"), [
    ("euler", "EulerDiscreteScheduler"), ("dpmpp_2m_karras", "DPMSolverMultistepScheduler"),
    ("unipc", "UniPCMultistepScheduler"), ("default", None)])
def test_switching_scheduler_keeps_the_model(backend, sd15, make_job, scheduler, runs_as):
    model = {"family": "sd15_controlnet", "base": str(sd15["base"]),
             "controlnet": str(sd15["controlnet"])}
    default = _result(backend, make_job(model, scheduler="default"))
    switched = _result(backend, make_job(model, scheduler=scheduler))
    assert switched["reused_model"]
    assert switched["scheduler"] == (runs_as or default["scheduler"])
    same_picture = np.array_equal(_pixels(default), _pixels(switched))
    assert same_picture == (scheduler == "default")  # another scheduler, another picture


# On a CPU model_offload runs as full (diffusers needs an accelerator to offload to); the
# others run as asked. Each result says which mode it ran in.
@pytest.mark.parametrize(("mode", "runs_as"), [
    ("group_offload", "group_offload"), ("fp8", "fp8"), ("model_offload", "full")])
def test_memory_modes_run_on_this_machine(backend, sd15, make_job, mode, runs_as):
    model = {"family": "sd15_controlnet", "base": str(sd15["base"]),
             "controlnet": str(sd15["controlnet"])}
    result = _result(backend, make_job(model, memory_mode=mode))
    on_cpu = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    assert result["paths"] and result["memory_mode"] == (runs_as if on_cpu else mode)


def test_flow_matching_family_refuses_other_schedulers(backend, tiny_models, make_job,
                                                      model_spec):
    job = make_job(model_spec("flux_depth", tiny_models("flux_depth")), scheduler="ddim")
    final = backend.run(job)[-1]
    assert final["code"] == protocol.ErrorCode.BAD_REQUEST
    assert "flow-matching" in final["message"]


def test_zimage_controlnet_loads_from_its_single_file(backend, tiny_models, make_job):
    roles = tiny_models("zimage_controlnet")
    job = make_job({"family": "zimage_controlnet", "base": str(roles["base"]),
                    "controlnet": str(roles["controlnet"]
                                      / "diffusion_pytorch_model.safetensors"),
                    "controlnet_config": str(roles["controlnet"])}, guidance=0.0)
    assert _result(backend, job)["paths"]


def test_unload_frees_the_model_and_the_next_job_reloads(backend, sd15, make_job):
    model = {"family": "sd15_controlnet", "base": str(sd15["base"]),
             "controlnet": str(sd15["controlnet"])}
    _result(backend, make_job(model))
    backend.send({"type": protocol.UNLOAD})
    backend.wait_for(protocol.UNLOADED)
    assert not _result(backend, make_job(model))["reused_model"]


def test_model_folders_find_checkpoints_by_name_or_relative_path(tmp_path, monkeypatch):
    from backend import weights
    from backend.errors import ModelNotFound

    comfy = tmp_path / "ComfyUI" / "models"
    checkpoint = comfy / "checkpoints" / "sd15" / "dreamshaper_8.safetensors"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    a1111 = tmp_path / "a1111" / "models"
    (a1111 / "ControlNet").mkdir(parents=True)
    monkeypatch.setenv(weights.MODEL_FOLDERS_ENV, f"{a1111}{os.pathsep}{comfy}")
    assert weights.locate("dreamshaper_8.safetensors") == checkpoint
    assert weights.locate("checkpoints/sd15/dreamshaper_8.safetensors") == checkpoint
    assert weights.locate("ControlNet") == a1111 / "ControlNet"
    with pytest.raises(ModelNotFound, match=f"in {comfy}"):
        weights.resolve("missing.safetensors", "base")


def test_repo_ids_load_from_the_local_hf_cache(start_backend, sd15, make_job, hf_cache):
    """`org/name` as found after `hf download`, offline; the same pixels as the
    folders they came from."""
    hf_cache("t2i-test/tiny-sd15", sd15["base"])
    hf_cache("t2i-test/tiny-sd15-depth", sd15["controlnet"])
    backend = start_backend()
    backend.hello()
    by_id = _result(backend, make_job({"family": "sd15_controlnet", "base": "t2i-test/tiny-sd15",
                                       "controlnet": "t2i-test/tiny-sd15-depth"}))
    by_folder = _result(backend, make_job({"family": "sd15_controlnet",
                                           "base": str(sd15["base"]),
                                           "controlnet": str(sd15["controlnet"])}))
    np.testing.assert_array_equal(_pixels(by_id), _pixels(by_folder))
