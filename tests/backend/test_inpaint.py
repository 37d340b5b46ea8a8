"""Inpainting under depth control, through the real protocol and the real diffusers inpaint
pipelines on the tiny models: the black part of the mask keeps the init image, the white part
is generated, and both the mask and the depth reach what is generated; families without an
inpaint pipeline refuse a mask, and hostile masks get clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2i_core import protocol
from t2i_core.presets import FAMILY_INFO
from t2i_core.protocol import ErrorCode

INPAINTS = [name for name, info in FAMILY_INFO.items() if info.inpaint]
CANNOT = ["sd2_depth2img", "flux2"]
# Z-Image inpaints with the Fun ControlNet Union 2.x only; its tiny 1.0 model cannot.
TINY_MODEL = {"zimage_controlnet": "zimage_controlnet_2"}
SIZE = 64


def _save_grey(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A coloured checker as the init image, two masks that overlap (right half; lower right
    three quarters), and two unlike depth maps, all 64 x 64."""
    folder = tmp_path_factory.mktemp("inpaint")
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    checker = ((np.floor(rows * 8) + np.floor(cols * 8)) % 2 * 255).astype(np.uint8)
    init = folder / "init.png"
    Image.fromarray(np.stack([checker, 255 - checker, np.full_like(checker, 90)], -1)).save(init)
    right = np.zeros((SIZE, SIZE)); right[:, SIZE // 2:] = 255  # noqa: E702
    corner = np.zeros((SIZE, SIZE)); corner[SIZE // 4:, SIZE * 3 // 8:] = 255  # noqa: E702
    paths = {"init": init, "right": _save_grey(folder / "right.png", right),
             "corner": _save_grey(folder / "corner.png", corner),
             "black": _save_grey(folder / "black.png", np.zeros((SIZE, SIZE))),
             "white": _save_grey(folder / "white.png", np.full((SIZE, SIZE), 255))}
    for name, value in (("ramp", cols), ("vertical", rows)):
        paths[name] = folder / f"{name}.png"
        Image.fromarray(np.round(value * 255).astype(np.uint8)).convert("RGB").save(paths[name])
    return paths


def _pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _white(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L")) > 127


@pytest.fixture
def inpaint(backend, tiny_models, make_job, model_spec, inputs):
    """inpaint(family, mask=..., depth=..., **fields) -> the job's final event (all of its
    events with every_event=True); the family's tiny model unless `model` is given."""

    def run(family: str, mask: str | Path = "right", depth: str = "ramp",
            every_event: bool = False, **fields):
        mask_path = inputs[mask] if isinstance(mask, str) else mask
        model = fields.pop("model", None) or model_spec(
            family, tiny_models(TINY_MODEL.get(family, family)))
        job = make_job(model, guidance=1.0, preview=False,
                       control_image=str(inputs[depth]), init_image=str(inputs["init"]),
                       mask_image=str(mask_path), **fields)
        events = backend.run(job)
        return events if every_event else events[-1]

    return run


def _result(event: dict) -> np.ndarray:
    assert event["type"] == protocol.RESULT, event
    return _pixels(event["paths"][0])


@pytest.mark.parametrize("family", INPAINTS)
def test_the_mask_keeps_the_black_part_and_mask_and_depth_shape_the_white_part(
        inpaint, inputs, family):
    init = _pixels(inputs["init"])
    right, corner = _white(inputs["right"]), _white(inputs["corner"])
    first = _result(inpaint(family, mask="right", depth="ramp"))

    assert np.abs(first - init)[~right].max() <= 1  # kept: the init image, to rounding
    assert np.abs(first - init)[right].mean() > 20  # regenerated (strength 1 by default)

    # Another mask: another picture even where both masks are white, so the mask reaches the
    # pipeline, not only the paste-back.
    other_mask = _result(inpaint(family, mask="corner", depth="ramp"))
    both = right & corner
    assert np.abs(first - other_mask)[both].mean() > 0.5
    assert np.abs(other_mask - init)[~corner].max() <= 1

    # Another depth: another white part, the same black part: depth still controls.
    other_depth = _result(inpaint(family, mask="right", depth="vertical"))
    assert np.abs(first - other_depth)[right].mean() > 0.5
    assert np.abs(first - other_depth)[~right].max() == 0


def test_capabilities_say_which_families_inpaint(backend):
    backend.send({"type": protocol.CAPABILITIES})
    reply = backend.wait_for(protocol.CAPABILITIES)
    assert [f["name"] for f in reply["families"] if f["inpaint"]] == INPAINTS
    assert not {f["name"] for f in reply["families"] if f["inpaint"]} & set(CANNOT)


def test_a_zimage_controlnet_1_refuses_a_mask_and_2_runs_without_one(
        backend, tiny_models, make_job, model_spec, inpaint):
    refused = inpaint("zimage_controlnet", model=model_spec(
        "zimage_controlnet", tiny_models("zimage_controlnet")))
    assert refused["code"] == ErrorCode.BAD_REQUEST and "cannot inpaint" in refused["message"]
    assert "2.0 or 2.1" in refused["hint"]
    plain = make_job(model_spec("zimage_controlnet", tiny_models("zimage_controlnet_2")),
                     preview=False)
    assert backend.run(plain)[-1]["type"] == protocol.RESULT  # the mask channels left empty


def test_inpainting_reuses_the_loaded_pipeline(backend, tiny_models, make_job, model_spec,
                                               inputs, inpaint):
    """The inpaint pipeline is built from the loaded txt2img one (from_pipe): no reload."""
    model = model_spec("sd15_controlnet", tiny_models("sd15_controlnet"))
    assert backend.run(make_job(model, preview=False))[-1]["type"] == protocol.RESULT
    event = inpaint("sd15_controlnet")
    assert event["type"] == protocol.RESULT and event["reused_model"] is True


def test_inpainting_runs_every_step_by_default_and_strength_lowers_it(inpaint):
    """Strength 1 by default (the white part from noise alone); a lower one starts from the
    noised init image and runs that share of the steps, as img2img does."""

    def steps_run(**fields) -> tuple[int, np.ndarray]:
        events = inpaint("sd15_controlnet", steps=4, every_event=True, **fields)
        return events[-2]["total"], _result(events[-1])

    (full_steps, full), (half_steps, half) = steps_run(), steps_run(strength=0.5)
    assert (full_steps, half_steps) == (4, 2)
    assert np.abs(full - half).max() > 0


@pytest.mark.parametrize("family", CANNOT)
def test_a_family_without_inpainting_refuses_a_mask_before_generating(
        backend, tiny_models, make_job, model_spec, inputs, family, tmp_path):
    job = make_job(model_spec(family, tiny_models(family)), init_image=str(inputs["init"]),
                   mask_image=str(inputs["right"]), output_dir=str(tmp_path))
    events = backend.run(job)
    assert [e["type"] for e in events] == [protocol.ERROR]  # never accepted
    assert events[0]["code"] == ErrorCode.BAD_REQUEST
    assert f"{family} cannot inpaint" in events[0]["message"]
    assert "sd15_controlnet" in events[0]["message"]
    assert not list(tmp_path.iterdir())


def test_a_mask_without_an_init_image_is_a_bad_request(backend, make_job, inputs):
    job = make_job({"family": "sd15_controlnet", "base": "tiny", "controlnet": "tiny"},
                   mask_image=str(inputs["right"]))
    event = backend.run(job)[-1]
    assert event["code"] == ErrorCode.BAD_REQUEST and "needs 'init_image'" in event["message"]


def test_an_all_black_mask_returns_the_init_image_and_an_all_white_one_a_new_picture(
        inpaint, inputs):
    init = _pixels(inputs["init"])
    assert np.abs(_result(inpaint("sd15_controlnet", mask="black")) - init).max() <= 1
    everything = _result(inpaint("sd15_controlnet", mask="white"))
    assert np.abs(everything - init).mean() > 20
    assert everything.std() > 0  # a picture, not a black (NaN-decoded) frame


def test_a_mask_of_another_size_is_resized_to_the_job(inpaint, inputs, tmp_path):
    """Like the init image, a mask of another size is resized (bilinear) to width x height."""
    small = np.zeros((16, 16)); small[:, 8:] = 255  # noqa: E702
    event = inpaint("sd15_controlnet", mask=_save_grey(tmp_path / "small.png", small))
    init, result = _pixels(inputs["init"]), _result(event)
    assert result.shape == (SIZE, SIZE, 3)
    assert np.abs(result - init)[:, : SIZE // 2 - 2].max() <= 1  # left: kept
    assert np.abs(result - init)[:, SIZE // 2 + 2:].mean() > 20  # right: regenerated


def test_a_16_bit_mask_is_scaled_not_clipped(inpaint, inputs, tmp_path):
    """Pillow's own 16-bit to 8-bit conversion clips (a dark grey would become white)."""
    deep = np.asarray(Image.open(inputs["right"]), dtype=np.uint16) * 257
    deep[deep == 0] = 600  # a near-black grey, 0.9 %: kept
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    assert Image.open(path).mode.startswith("I")
    init = _pixels(inputs["init"])
    result = _result(inpaint("sd15_controlnet", mask=path))
    assert np.abs(result - init)[~_white(inputs["right"])].max() <= 3


def test_a_grey_mask_blends_the_kept_and_generated_parts(inpaint, inputs, tmp_path):
    """Grey is a weight: a band at 64/255 moves at most a quarter of the way from the init
    image to what the pipeline made there; the black part stays the init image."""
    grey = np.asarray(Image.open(inputs["right"]), dtype=np.float64)
    grey[:, : SIZE // 4] = 64
    blended = _result(inpaint("sd15_controlnet", mask=_save_grey(tmp_path / "g.png", grey)))
    moved = np.abs(blended - _pixels(inputs["init"]))
    band, black = moved[:, : SIZE // 4], moved[:, SIZE // 4: SIZE // 2]
    assert band.mean() > 1 and band.max() <= 255 * 64 / 255 + 1
    assert black.max() <= 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_mask_that_is_not_a_regular_file_is_refused_not_read(inpaint, tmp_path):
    fifo = tmp_path / "mask.png"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes
    for path in (fifo, tmp_path):
        event = inpaint("sd15_controlnet", mask=path)
        assert event["code"] == ErrorCode.BAD_REQUEST, event
        assert "mask image" in event["message"] and "not a regular file" in event["message"]


def test_a_truncated_or_float_mask_is_a_bad_request_and_a_missing_one_not_found(
        backend, inpaint, inputs, tmp_path):
    data = inputs["right"].read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    float_mask = tmp_path / "nan.tiff"
    Image.fromarray(np.full((SIZE, SIZE), np.nan, dtype=np.float32)).save(float_mask)
    for path in (truncated, float_mask):
        event = inpaint("sd15_controlnet", mask=path)
        assert event["code"] == ErrorCode.BAD_REQUEST, event
        assert "mask image" in event["message"] and "unreadable" in event["message"]
    missing = inpaint("sd15_controlnet", mask=tmp_path / "gone.png")
    assert missing["code"] == ErrorCode.INPUT_NOT_FOUND and "mask image" in missing["message"]
    assert backend.hello()["type"] == protocol.READY
