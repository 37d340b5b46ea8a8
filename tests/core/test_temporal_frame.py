"""Temporal mode's pure parts: keyframes, the carried frame's init and mask, which families
take it, and the PNG reader that brings each result back."""

from __future__ import annotations

import numpy as np
import pytest
from t2i_src.t2i_core import job_request, png
from t2i_src.t2i_core.job_request import JobSettings
from t2i_src.t2i_core.presets import FAMILY_INFO, get_preset
from t2i_src.t2i_core.temporal_frame import (
    INPAINT,
    REFERENCE,
    TemporalOptions,
    carried_grey,
    init_and_mask,
    is_keyframe,
    temporal_kind,
)


def test_keyframes_are_the_first_frame_and_every_kth():
    assert [is_keyframe(i, 0) for i in range(5)] == [True, False, False, False, False]
    assert [i for i in range(10) if is_keyframe(i, 4)] == [0, 4, 8]


def test_init_keeps_carried_pixels_and_fills_the_occluded_with_their_mean():
    warped = np.zeros((4, 6, 3), np.uint8)
    warped[..., 0] = 100
    warped[:, :3, 1] = 50  # carried: left half
    occluded = np.zeros((4, 6), bool)
    occluded[:, 4:] = True
    warped[occluded] = 255  # whatever the warp left there must not survive
    init, mask = init_and_mask(warped, occluded, carry=0.75)
    assert (init[~occluded] == warped[~occluded]).all()
    kept = warped[~occluded].astype(float)
    assert (init[occluded] == np.rint(kept.mean(axis=0))).all()
    assert (mask[occluded] == 255).all() and (mask[~occluded] == carried_grey(0.75)).all()
    assert carried_grey(1.0) == 0 and carried_grey(0.0) == 255


def test_the_colour_render_fills_the_occluded_part_when_there_is_one():
    warped = np.full((3, 3, 3), 10, np.uint8)
    fill = np.full((3, 3, 3), 200, np.uint8)
    occluded = np.eye(3, dtype=bool)
    init, _mask = init_and_mask(warped, occluded, 1.0, fill)
    assert (init[occluded] == 200).all() and (init[~occluded] == 10).all()


def test_families_take_the_carried_frame_as_mask_or_reference_or_say_they_cannot():
    assert temporal_kind(FAMILY_INFO["sd15_controlnet"]) == INPAINT
    assert temporal_kind(FAMILY_INFO["flux_kontext"]) == REFERENCE
    assert temporal_kind(FAMILY_INFO["qwen_image_edit"]) == REFERENCE
    with pytest.raises(ValueError, match="temporal mode is not offered for SD 2 depth2img"):
        temporal_kind(FAMILY_INFO["sd2_depth2img"])


@pytest.mark.parametrize("options, message", [
    (TemporalOptions(carry=1.5), "carry"), (TemporalOptions(keyframe_every=-1), "keyframe"),
    (TemporalOptions(mask_dilate=-2), "dilation")])
def test_bad_options_say_which(options, message):
    with pytest.raises(ValueError, match=message):
        options.check()


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (5, 7, 4)])
def test_read_png_gives_back_what_write_png_wrote(tmp_path, shape):
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = png.write_png(tmp_path / "p.png", pixels)
    assert np.array_equal(png.read_png(path), pixels)


def test_read_png_decodes_every_row_filter(tmp_path):
    from PIL import Image  # Pillow picks Sub/Average/Paeth rows for a noisy picture

    pixels = np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    pixels[:, :5] = np.arange(5)[None, :, None] * 40  # smooth part: other filters win there
    Image.fromarray(pixels).save(tmp_path / "pil.png", optimize=True)
    assert np.array_equal(png.read_png(tmp_path / "pil.png"), pixels)


def test_read_png_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a PNG"):
        png.read_png(tmp_path / "x.png")
    wide = np.arange(12, dtype=np.uint16).reshape(2, 2, 3) * 5000
    png.write_png(tmp_path / "16.png", wide)  # 16-bit reads back exactly
    assert np.array_equal(png.read_png(tmp_path / "16.png"), wide)
    data = bytearray(png.encode_png(np.zeros((2, 2), np.uint8)))
    data[24] = 4  # IHDR bit depth: 4-bit grey
    (tmp_path / "4.png").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="8- or 16-bit"):
        png.read_png(tmp_path / "4.png")
    data = bytearray(png.encode_png(np.zeros((2, 2), np.uint8)))
    data[28] = 1  # IHDR interlace method: Adam7
    (tmp_path / "i.png").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="non-interlaced"):
        png.read_png(tmp_path / "i.png")


def _settings(preset: str) -> JobSettings:
    return JobSettings(preset=get_preset(preset), prompt="p", negative_prompt="", seed=1,
                       steps=4, guidance=1.0, control_strength=1.0, size=(64, 64))


def test_an_edit_family_takes_the_carried_frame_as_its_first_reference_picture():
    request = job_request.build_request(
        "j", _settings("flux-kontext"), "/tmp/d.png", "/tmp/out",
        reference_images=["/tmp/carried.png", "/tmp/d.png"])
    assert request["reference_images"] == ["/tmp/carried.png", "/tmp/d.png"]
    with pytest.raises(ValueError, match="takes no reference pictures"):
        job_request.build_request("j", _settings("sd15-depth"), "/tmp/d.png", "/tmp/out",
                                  reference_images=["/tmp/carried.png"])
