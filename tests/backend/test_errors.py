"""Bad weights and bad requests give the right error code, and the backend keeps serving."""

from __future__ import annotations

import shutil

import pytest

from backend.tiny.checkpoints import save_sd15_single_file
from t2i_core import protocol
from t2i_core.protocol import ErrorCode


def _error(backend, job) -> dict:
    final = backend.run(job)[-1]
    assert final["type"] == protocol.ERROR, final
    assert final["hint"], "every error carries a hint"
    assert backend.hello()["type"] == protocol.READY  # still serving
    return final


@pytest.fixture(scope="module")
def sd15(tiny_models):
    return tiny_models("sd15_controlnet")


def test_missing_model_names_what_was_looked_for(backend, sd15, make_job, tmp_path):
    missing = tmp_path / "models" / "nowhere.safetensors"
    final = _error(backend, make_job({"family": "sd15_controlnet", "base": str(missing),
                                      "controlnet": str(sd15["controlnet"])}))
    assert final["code"] == ErrorCode.MODEL_NOT_FOUND
    assert str(missing) in final["message"]


def test_uncached_repo_id_is_model_not_found(backend, sd15, make_job):
    final = _error(backend, make_job({"family": "sd15_controlnet",
                                      "base": "no-such-org/no-such-model",
                                      "controlnet": str(sd15["controlnet"])}))
    assert final["code"] == ErrorCode.MODEL_NOT_FOUND
    assert "no-such-org/no-such-model" in final["message"]
    assert "hf download no-such-org/no-such-model" in final["hint"]


def test_pickle_checkpoint_is_refused_with_how_to_convert(backend, sd15, make_job, tmp_path):
    pickle_file = tmp_path / "model.ckpt"
    pickle_file.write_bytes(b"\x80\x04\x95 not to be unpickled")
    final = _error(backend, make_job({"family": "sd15_controlnet", "base": str(pickle_file),
                                      "controlnet": str(sd15["controlnet"])}))
    assert final["code"] == ErrorCode.UNSAFE_MODEL_FILE
    assert "safetensors" in final["message"]


def test_pickle_renamed_safetensors_is_refused(backend, sd15, make_job, tmp_path):
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(b"PK\x03\x04 a torch.save zip")
    final = _error(backend, make_job({"family": "sd15_controlnet", "base": str(disguised),
                                      "controlnet": str(sd15["controlnet"])}))
    assert final["code"] == ErrorCode.UNSAFE_MODEL_FILE


def test_truncated_safetensors_is_a_load_failure(backend, sd15, make_job, tmp_path):
    good = save_sd15_single_file(sd15["base"], tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    final = _error(backend, make_job({"family": "sd15_controlnet", "base": str(cut),
                                      "base_config": str(sd15["base"]),
                                      "controlnet": str(sd15["controlnet"])}))
    assert final["code"] == ErrorCode.MODEL_LOAD_FAILED
    assert "truncated" in final["message"]


def test_corrupt_weights_in_a_folder_are_a_load_failure(backend, sd15, make_job, tmp_path):
    broken = tmp_path / "controlnet"
    shutil.copytree(sd15["controlnet"], broken)
    (broken / "diffusion_pytorch_model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    final = _error(backend, make_job({"family": "sd15_controlnet", "base": str(sd15["base"]),
                                      "controlnet": str(broken)}))
    assert final["code"] == ErrorCode.MODEL_LOAD_FAILED


def test_folder_of_another_family_is_refused(backend, sd15, make_job):
    final = _error(backend, make_job({"family": "flux_depth", "base": str(sd15["base"])}))
    assert final["code"] == ErrorCode.WRONG_MODEL_FAMILY
    assert "StableDiffusionPipeline" in final["message"]


def test_single_file_of_another_family_is_refused(backend, sd15, tiny_models, make_job,
                                                 tmp_path):
    checkpoint = save_sd15_single_file(sd15["base"], tmp_path / "sd15.safetensors")
    sdxl = tiny_models("sdxl_controlnet")
    final = _error(backend, make_job({"family": "sdxl_controlnet", "base": str(checkpoint),
                                      "base_config": str(sdxl["base"]),
                                      "controlnet": str(sdxl["controlnet"])}))
    assert final["code"] == ErrorCode.WRONG_MODEL_FAMILY
    assert "'v1'" in final["message"]


def test_missing_input_picture_is_input_not_found(backend, sd15, make_job, tmp_path):
    final = _error(backend, make_job({"family": "sd15_controlnet", "base": str(sd15["base"]),
                                      "controlnet": str(sd15["controlnet"])},
                                     init_image=str(tmp_path / "gone.png")))
    assert final["code"] == ErrorCode.INPUT_NOT_FOUND


def test_unknown_family_is_a_bad_request(backend, make_job):
    final = _error(backend, make_job({"family": "sd9000", "base": "x/y"}))
    assert final["code"] == ErrorCode.BAD_REQUEST
    assert "sd15_controlnet" in final["message"]  # lists the known ones


@pytest.mark.parametrize(("field", "value"), [
    ("memory_mode", "turbo"), ("scheduler", "lms"), ("loras", [{"weight": 1}]),
    ("strength", 0), ("preview", {"every": -1}), ("reference_images", [3]),
])
def test_bad_optional_fields_are_bad_requests(backend, make_job, field, value):
    job = make_job({"family": "sd15_controlnet"}, **{field: value})
    backend.send(job)
    event = backend.wait_for(protocol.ERROR)
    assert event["code"] == ErrorCode.BAD_REQUEST
    assert event["id"] == job["id"]
    assert field in event["message"]
