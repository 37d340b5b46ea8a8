"""Job size rules and request building, without Blender."""

from __future__ import annotations

import pytest
from t2i_src.t2i_core import job_request as jobs
from t2i_src.t2i_core import protocol
from t2i_src.t2i_core.job_request import JobSettings
from t2i_src.t2i_core.presets import get_preset

SD15 = get_preset("sd15-depth")
SETTINGS = JobSettings(preset=SD15, prompt="a house", negative_prompt="", seed=7, steps=20,
                       guidance=7.5, control_strength=1.0, size=(512, 512))


def test_render_size_with_percentage_is_snapped_to_the_model_multiple():
    assert jobs.job_size(1921, 1081, 50, True, 0, 0, SD15) == (960, 544)
    assert jobs.job_size(1920, 1080, 100, True, 0, 0, SD15) == (1920, 1080)


def test_own_size_is_used_when_render_size_is_off():
    assert jobs.job_size(1920, 1080, 100, False, 515, 510, SD15) == (512, 512)


def test_zero_size_is_refused_with_a_message():
    with pytest.raises(ValueError, match="empty"):
        jobs.job_size(1920, 1080, 100, False, 0, 512, SD15)


def test_request_is_valid_protocol():
    message = jobs.build_request("job1", SETTINGS, "/tmp/depth.png", "/tmp/out")
    request = protocol.parse_generate(message)
    assert request.model["family"] == "sd15_controlnet"
    assert (request.width, request.height, request.seed) == (512, 512, 7)


def test_request_with_bad_values_is_refused_before_it_reaches_the_backend():
    with pytest.raises(protocol.ProtocolError, match="steps"):
        jobs.build_request("job1", SETTINGS.but(steps=0), "/tmp/depth.png", "/tmp/out")


def test_every_setting_applied_is_in_the_request():
    """Preferences (device, memory mode) and a model of the user's own are part of the
    settings, so the one validation sees them: nothing changes the request afterwards."""
    own = {"family": "sdxl_controlnet", "base": "/models/sdxl.safetensors",
           "controlnet": "/models/depth"}
    message = jobs.build_request("job1", SETTINGS.but(model=own, device="cuda",
                                                      memory_mode="model_offload"),
                                 "/tmp/depth.png", "/tmp/out")
    assert message["model"] == {**own, "device": "cuda"}
    assert message["memory_mode"] == "model_offload"
    assert jobs.build_request("job1", SETTINGS, "/d.png", "/o")["model"] == SD15.model_spec()


def test_a_model_of_an_unknown_family_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model family .sd9.*sd15_controlnet"):
        jobs.build_request("job1", SETTINGS.but(model={"family": "sd9"}), "/d.png", "/o")


def test_a_render_for_a_family_that_takes_none_is_refused():
    flux = SETTINGS.but(preset=get_preset("flux-depth"), use_render=True)
    with pytest.raises(ValueError, match="takes no colour render"):
        jobs.check_settings(flux)


def test_job_stems_are_unique_and_name_preset_and_seed():
    stems = [jobs.new_job_stem(SD15, 42) for _ in range(1000)]
    assert len(set(stems)) == 1000
    assert all(stem.endswith("_sd15-depth_s42") for stem in stems)
    assert stems == sorted(stems)  # sortable: later stems sort later


def test_a_render_size_far_from_the_trained_one_is_advised_against():
    advice = jobs.size_advice((1920, 1080), SD15)
    assert advice is not None
    assert "1920 x 1080" in advice.message and "512 x 512" in advice.message
    assert "repeated" in advice.message
    width, height = advice.size  # the trained area at the render's aspect, snapped
    assert (width, height) == (680, 384)
    assert width % 8 == height % 8 == 0 and abs(width * height / 512 ** 2 - 1) < 0.01


def test_sizes_near_the_trained_area_and_other_models_get_no_advice():
    assert jobs.size_advice((512, 512), SD15) is None
    assert jobs.size_advice((640, 480), SD15) is None
    sdxl = get_preset("sdxl-depth")
    assert jobs.size_advice((1920, 1080), sdxl) is None  # about 2 MP: SDXL's own range
    small = jobs.size_advice((256, 192), sdxl)
    assert small is not None and "blurred" in small.message
    assert small.size == (1184, 888)
