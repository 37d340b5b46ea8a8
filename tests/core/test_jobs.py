"""Job size rules and request building, without Blender."""

from __future__ import annotations

import pytest
from t2i_src.blender_t2i.core import job_request as jobs
from t2i_src.blender_t2i.core import protocol
from t2i_src.blender_t2i.core.presets import get_preset

SD15 = get_preset("sd15-depth")


def test_render_size_with_percentage_is_snapped_to_the_model_multiple():
    assert jobs.job_size(1921, 1081, 50, True, 0, 0, SD15) == (960, 544)
    assert jobs.job_size(1920, 1080, 100, True, 0, 0, SD15) == (1920, 1080)


def test_own_size_is_used_when_render_size_is_off():
    assert jobs.job_size(1920, 1080, 100, False, 515, 510, SD15) == (512, 512)


def test_zero_size_is_refused_with_a_message():
    with pytest.raises(ValueError, match="empty"):
        jobs.job_size(1920, 1080, 100, False, 0, 512, SD15)


def test_request_is_valid_protocol():
    message = jobs.generate_request("job1", SD15, "a house", "", 7, 20, 7.5, 1.0, (512, 512),
                                    "/tmp/depth.png", "/tmp/out")
    request = protocol.parse_generate(message)
    assert request.model["family"] == "sd15_controlnet"
    assert (request.width, request.height, request.seed) == (512, 512, 7)


def test_request_with_bad_values_is_refused_before_it_reaches_the_backend():
    with pytest.raises(protocol.ProtocolError, match="steps"):
        jobs.generate_request("job1", SD15, "a house", "", 7, 0, 7.5, 1.0, (512, 512),
                              "/tmp/depth.png", "/tmp/out")


def test_job_stems_are_unique_and_name_preset_and_seed():
    stem = jobs.new_job_stem(SD15, 42)
    assert stem.endswith("_sd15-depth_s42")
