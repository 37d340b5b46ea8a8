"""A clip request (`control_frames`), without Blender: what parse_generate and build_request
take and refuse, how the size limit counts a clip, and the frames a video model runs."""

from __future__ import annotations

import pytest
from t2i_src.t2i_core import job_request as jobs
from t2i_src.t2i_core import protocol
from t2i_src.t2i_core.job_request import JobSettings
from t2i_src.t2i_core.presets import FAMILY_INFO, get_preset

FRAMES = [f"/tmp/clip/d.{n:04d}.png" for n in range(1, 6)]
WAN = {"family": "wan_vace", "base": "tiny"}


def _message(**fields):
    message = {"type": "generate", "id": "c1", "model": WAN, "prompt": "p", "seed": 1,
               "steps": 4, "guidance": 1.0, "width": 32, "height": 32,
               "control_image": FRAMES[0], "output_dir": "/tmp/out", "control_frames": FRAMES}
    message.update(fields)
    return {k: v for k, v in message.items() if v is not None}


def test_a_clip_is_taken_as_a_tuple_and_a_still_job_has_none():
    assert protocol.parse_generate(_message()).control_frames == tuple(FRAMES)
    assert protocol.parse_generate(_message(control_frames=None)).control_frames == ()


@pytest.mark.parametrize(("fields", "says"), [
    ({"control_frames": "/tmp/a.png"}, "wrong type"),
    ({"control_frames": [FRAMES[0], 3]}, "list of absolute paths"),
    ({"control_frames": [FRAMES[0], ""]}, "list of absolute paths"),
    ({"control_frames": [FRAMES[0], "d.png"]}, "absolute path"),
    ({"control_frames": [FRAMES[0], "/tmp/\x00.png"]}, "NUL"),
    ({"control_frames": [FRAMES[0]] * (protocol.MAX_CLIP_FRAMES + 1)}, "more than the 1000"),
    ({"control_image": FRAMES[1]}, "first of them"),
    ({"init_image": "/tmp/r.png"}, "takes no 'init_image'"),
    ({"model": {"family": "sd15_controlnet", "base": "tiny", "controlnet": "tiny"}},
     "makes still pictures"),
])
def test_bad_clips_are_refused_naming_the_field(fields, says):
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_generate(_message(**fields))
    assert says in str(caught.value)
    assert caught.value.job_id == "c1"


def test_the_size_limit_counts_a_clip_by_its_latent_frames():
    """Every 4 frames are one latent frame (Wan's VAE), each costing a picture's pixels."""
    assert protocol.size_error(512, 512, 4.2, frames=61, frame_step=4) is None  # 16 x 0.26 MP
    message = protocol.size_error(512, 512, 4.2, frames=62, frame_step=4)  # 17 latent frames
    assert "62 frames" in message and "at most 61 frames fit" in message
    assert "not even one frame" in protocol.size_error(4096, 4096, 4.2, 5, 4)
    assert protocol.size_error(2048, 2048, 4.2) is None  # stills as before
    assert protocol.size_error(2048, 2048, 4.2, frames=5) is None  # no frame step: a still


def test_a_video_model_runs_the_next_4k_plus_1_frames():
    wan = FAMILY_INFO["wan_vace"]
    assert [wan.model_frames(n) for n in (1, 2, 5, 6, 9, 81)] == [1, 5, 5, 9, 9, 81]
    assert wan.takes_clip and not FAMILY_INFO["flux2"].takes_clip
    assert FAMILY_INFO["flux2"].model_frames(7) == 7


def test_build_request_sends_the_clip_and_validates_it():
    settings = JobSettings(preset=get_preset("tiny-wan-vace"), prompt="p", negative_prompt="",
                           seed=1, steps=2, guidance=5.0, control_strength=1.0, size=(32, 32))
    message = jobs.build_request("c1", settings, FRAMES[0], "/tmp/out", control_frames=FRAMES)
    assert message["control_frames"] == FRAMES
    with pytest.raises(protocol.ProtocolError, match="first of them"):
        jobs.build_request("c1", settings, FRAMES[1], "/tmp/out", control_frames=FRAMES)
    assert "control_frames" not in jobs.build_request("c2", settings, FRAMES[0], "/tmp/out")
