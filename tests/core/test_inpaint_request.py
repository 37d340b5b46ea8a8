"""The `mask_image` field, without Blender: what parse_generate and build_request refuse, and
which families say they can inpaint."""

from __future__ import annotations

import pytest
from t2i_src.t2i_core import job_request as jobs
from t2i_src.t2i_core import protocol
from t2i_src.t2i_core.job_request import JobSettings
from t2i_src.t2i_core.presets import FAMILY_INFO, get_preset

SD15 = get_preset("sd15-depth")
SETTINGS = JobSettings(preset=SD15, prompt="a house", negative_prompt="", seed=7, steps=20,
                       guidance=7.5, control_strength=1.0, size=(512, 512))
# The families with a diffusers inpaint pipeline that keeps the depth control (docs/models.md)
INPAINTS = {"sd15_controlnet", "sdxl_controlnet", "sdxl_controlnet_union", "flux_depth",
            "flux_controlnet", "zimage_controlnet"}


def _message(**fields):
    message = {"type": "generate", "id": "j1",
               "model": {"family": "sd15_controlnet", "base": "tiny", "controlnet": "tiny"},
               "prompt": "p", "seed": 1, "steps": 4, "guidance": 1.0, "width": 64,
               "height": 64, "control_image": "/tmp/d.png", "output_dir": "/tmp/out",
               "init_image": "/tmp/init.png"}
    message.update(fields)
    return {k: v for k, v in message.items() if v is not None}


def test_a_mask_with_an_init_image_is_accepted_and_absent_means_none():
    assert protocol.parse_generate(_message(mask_image="/tmp/m.png")).mask_image == "/tmp/m.png"
    assert protocol.parse_generate(_message()).mask_image is None
    assert protocol.parse_generate(_message(mask_image=None)).mask_image is None


@pytest.mark.parametrize(("fields", "says"), [
    ({"mask_image": "/tmp/m.png", "init_image": None}, "needs 'init_image'"),
    ({"mask_image": "relative/m.png"}, "absolute path"),
    ({"mask_image": ""}, "absolute path"),
    ({"mask_image": 3}, "wrong type"),
    ({"mask_image": ["/tmp/m.png"]}, "wrong type"),
    ({"mask_image": "/tmp/m.png", "model": {"family": "flux2", "base": "tiny"}},
     "flux2 cannot inpaint"),
])
def test_a_bad_mask_is_a_bad_request_naming_the_field(fields, says):
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_generate(_message(**fields))
    assert caught.value.code == protocol.ErrorCode.BAD_REQUEST
    assert "mask_image" in str(caught.value) and says in str(caught.value)
    assert caught.value.job_id == "j1"


def test_a_refusal_names_the_families_that_can_inpaint():
    with pytest.raises(protocol.ProtocolError, match="sd15_controlnet") as caught:
        protocol.parse_generate(_message(mask_image="/m.png",
                                         model={"family": "sd2_depth2img", "base": "tiny"}))
    assert all(name in str(caught.value) for name in INPAINTS)


def test_a_mask_for_an_unknown_family_is_left_to_the_runner_to_refuse():
    # the runner names the known families; parse_generate does not guess
    request = protocol.parse_generate(_message(mask_image="/m.png", model={"family": ["x"]}))
    assert request.mask_image == "/m.png"


def test_the_families_that_inpaint_are_the_ones_with_a_depth_inpaint_pipeline():
    assert {name for name, info in FAMILY_INFO.items() if info.inpaint} == INPAINTS


def test_an_inpainting_family_without_img2img_takes_the_render_only_with_a_mask():
    flux = SETTINGS.but(preset=get_preset("flux-depth"), use_render=True)
    jobs.check_settings(flux.but(mask_image="/tmp/m.png"))
    with pytest.raises(ValueError, match="takes no colour render"):
        jobs.check_settings(flux)


def test_build_request_carries_the_mask_with_the_init_image():
    settings = SETTINGS.but(use_render=True, render_strength=1.0, mask_image="/tmp/m.png")
    message = jobs.build_request("j1", settings, "/tmp/d.png", "/tmp/out",
                                 init_image="/tmp/seen.png")
    request = protocol.parse_generate(message)
    assert (request.mask_image, request.init_image) == ("/tmp/m.png", "/tmp/seen.png")
    assert request.strength == 1.0
    assert "mask_image" not in jobs.build_request("j1", SETTINGS, "/tmp/d.png", "/tmp/out")


def test_build_request_refuses_a_mask_without_an_init_image_or_for_a_family_that_cannot():
    with pytest.raises(ValueError, match="needs an init image"):
        jobs.check_settings(SETTINGS.but(mask_image="/tmp/m.png"))
    flux = SETTINGS.but(preset=get_preset("flux2-klein"), use_render=True,
                        mask_image="/tmp/m.png")
    with pytest.raises(ValueError, match=r"FLUX.2 .* cannot inpaint.*SD 1.5 \+ ControlNet"):
        jobs.build_request("j1", flux, "/tmp/d.png", "/tmp/out", init_image="/tmp/r.png")
