"""Picks from the model library in a job's settings: the spec they make, the request's LoRAs
and scheduler, and what check_settings refuses before any capture (on the fake installs)."""

from __future__ import annotations

import pytest

from backend.tiny import model_files
from t2i_core import job_request as jobs
from t2i_core import protocol
from t2i_core.job_request import JobSettings
from t2i_core.presets import get_preset

SETTINGS = JobSettings(preset=get_preset("sd15-depth"), prompt="a house", negative_prompt="",
                       seed=7, steps=20, guidance=7.5, control_strength=1.0, size=(512, 512))


@pytest.fixture
def installs(tmp_path):
    return model_files.write_fake_installs(tmp_path)


def test_picks_replace_the_presets_weights_and_loras_and_scheduler_are_sent(installs):
    base = str(installs["a1111"] / "models/Stable-diffusion/sd15_layout.safetensors")
    controlnet = str(installs["a1111"] / "models/ControlNet/control_v11f1p_sd15_depth"
                                         ".safetensors")
    lora = str(installs["a1111"] / "models/Lora/teapot_sd15.safetensors")
    settings = SETTINGS.but(picks={"base": base, "controlnet": controlnet, "vae": ""},
                            loras=((lora, 0.8),), scheduler="dpmpp_2m_karras")
    message = jobs.build_request("j1", settings, "/tmp/d.png", "/tmp/out")
    assert message["model"]["base"] == base and message["model"]["controlnet"] == controlnet
    assert "vae" not in message["model"]  # an empty pick keeps the preset's
    assert message["loras"] == [{"path": lora, "weight": 0.8}]
    assert message["scheduler"] == "dpmpp_2m_karras"
    request = protocol.parse_generate(message)
    assert request.loras == (protocol.LoraSpec(lora, 0.8),)


def test_a_pick_of_another_family_is_refused_naming_both(installs):
    sdxl = str(installs["comfyui"] / "models/checkpoints/sdxl_base.safetensors")
    with pytest.raises(ValueError, match=r"'sdxl_base' is an SDXL checkpoint, which SD 1.5 \+ "
                                         r"ControlNet cannot use as its base"):
        jobs.check_settings(SETTINGS.but(picks={"base": sdxl}))
    flux_cn = str(installs["comfyui"] / "models/controlnet/flux-controlnet-union-pro"
                                        ".safetensors")
    with pytest.raises(ValueError, match=r"FLUX\.1 ControlNet"):
        jobs.check_settings(SETTINGS.but(picks={"controlnet": flux_cn}))
    lora = str(installs["a1111"] / "models/Lora/teapot_sd15.safetensors")
    with pytest.raises(ValueError, match="LoRA"):
        jobs.check_settings(SETTINGS.but(picks={"base": lora}))
    vae = str(installs["a1111"] / "models/VAE/vae-ft-mse-840000.safetensors")
    with pytest.raises(ValueError, match="takes no vae"):
        jobs.check_settings(SETTINGS.but(picks={"vae": vae}))
    sdxl_settings = SETTINGS.but(preset=get_preset("sdxl-depth"))
    jobs.check_settings(sdxl_settings.but(picks={"base": sdxl, "vae": vae}))  # all fit


def test_missing_corrupt_and_pickle_picks_are_refused(installs, tmp_path):
    gone = str(tmp_path / "deleted.safetensors")
    with pytest.raises(ValueError, match="not on this machine"):
        jobs.check_settings(SETTINGS.but(picks={"base": gone}))
    truncated = str(installs["a1111"] / "models/Stable-diffusion/truncated.safetensors")
    with pytest.raises(ValueError, match="truncated"):
        jobs.check_settings(SETTINGS.but(picks={"base": truncated}))
    pickle = str(installs["a1111"] / "models/Stable-diffusion/old_model.ckpt")
    with pytest.raises(ValueError, match="pickle"):
        jobs.check_settings(SETTINGS.but(picks={"base": pickle}))
    with pytest.raises(ValueError, match=r"LoRA .* not on this machine"):
        jobs.check_settings(SETTINGS.but(loras=((gone, 1.0),)))
    checkpoint = str(installs["a1111"] / "models/Stable-diffusion/sd15_layout.safetensors")
    with pytest.raises(ValueError, match="checkpoint, not a LoRA"):
        jobs.check_settings(SETTINGS.but(loras=((checkpoint, 1.0),)))


def test_repo_ids_are_left_to_the_backend():
    jobs.check_settings(SETTINGS.but(picks={"base": "someone/sd15-finetune"}))


def test_schedulers_only_for_the_families_that_take_one():
    jobs.check_settings(SETTINGS.but(scheduler="euler_a"))
    flux = SETTINGS.but(preset=get_preset("flux-controlnet-depth"))
    with pytest.raises(ValueError, match="flow-matching scheduler only"):
        jobs.check_settings(flux.but(scheduler="euler_a"))
    with pytest.raises(ValueError, match="unknown scheduler"):
        jobs.check_settings(SETTINGS.but(scheduler="lms"))


def test_a_lora_for_another_base_is_a_warning(installs):
    sdxl_lora = str(installs["comfyui"] / "models/loras/sdxl_kohya.safetensors")
    sd15_lora = str(installs["a1111"] / "models/Lora/teapot_sd15.safetensors")
    settings = SETTINGS.but(loras=((sdxl_lora, 1.0), (sd15_lora, 1.0)))
    jobs.check_settings(settings)  # not refused
    assert jobs.lora_warnings(settings) == ["the LoRA 'sdxl_kohya' was made for SDXL, not SD 1.5"]
    sdxl_base = str(installs["comfyui"] / "models/checkpoints/sdxl_base.safetensors")
    on_sdxl = settings.but(preset=get_preset("sdxl-depth"), picks={"base": sdxl_base})
    assert jobs.lora_warnings(on_sdxl) == ["the LoRA 'teapot_sd15' was made for SD 1.5, not SDXL"]

