"""The video family: Wan VACE's tiny random model saved to disk, loaded back through the family's
loader and run on clips of depth frames through the real protocol (2 steps, 32 x 32)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from t2i_core import protocol

SIZE = 32


def _clip(folder: Path, name: str, frames: int, offset: int, size: int = SIZE) -> list[str]:
    """A near bar (white) moving right over a far background, one depth PNG a frame."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(frames):
        depth = np.full((size, size), 40, np.uint8)
        left = (offset + 4 * index) % size
        depth[:, left:left + size // 4] = 255
        path = folder / f"{name}.{index + 1:04d}.png"
        Image.fromarray(depth).convert("RGB").save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def clip_job(backend, tiny_models, make_job, model_spec, tmp_path) -> Any:
    """clip_job(frames: list[str], **fields) -> the result event's job run to its end."""
    model = model_spec("wan_vace", tiny_models("wan_vace"))

    def run(frames: list[str], **fields: Any) -> list[dict[str, Any]]:
        job = make_job(model, **{"width": SIZE, "height": SIZE, "control_image": frames[0],
                                 "control_frames": frames, **fields})
        return backend.run(job)

    return run


def _frames(result: dict[str, Any]) -> list[np.ndarray]:
    return [np.asarray(Image.open(path), dtype=np.int16) for path in result["paths"]]


def test_a_clip_comes_back_as_one_png_a_frame_with_its_parameters(clip_job, tmp_path):
    events = clip_job(_clip(tmp_path / "depth", "bar", 5, 0))

    result = events[-1]
    assert result["type"] == protocol.RESULT, result
    assert [Path(p).name for p in result["paths"]] == \
        [f"{events[0]['id']}.{n:04d}.png" for n in range(1, 6)]
    for number, path in enumerate(result["paths"], start=1):
        with Image.open(path) as frame:
            assert frame.size == (SIZE, SIZE)
            assert frame.text["t2i:prompt"] == "a small house"
            assert frame.text["t2i:frame"] == f"{number}/5"
    steps = [e["step"] for e in events if e["type"] == protocol.PROGRESS]
    assert steps == [1, 2]
    assert not list(tmp_path.glob("*.tmp*"))


def test_the_depth_clip_steers_the_frames(clip_job, tmp_path):
    """Another depth clip gives other frames, frame by frame; the same clip the same ones."""
    first = clip_job(_clip(tmp_path / "a", "bar", 5, 0), preview=False)[-1]
    other = clip_job(_clip(tmp_path / "b", "bar", 5, 16), preview=False)[-1]
    again = clip_job(_clip(tmp_path / "c", "bar", 5, 0), preview=False)[-1]

    assert all(r["type"] == protocol.RESULT for r in (first, other, again))
    for mine, theirs, same in zip(_frames(first), _frames(other), _frames(again),
                                    strict=True):
        assert np.abs(mine - theirs).mean() > 1.0  # gray levels, not a rounding flicker
        assert np.array_equal(mine, same)


def test_a_clip_of_any_length_gets_a_frame_for_each_depth_frame(clip_job, tmp_path):
    """Wan runs 4k + 1 frames: 3 are padded to 5 and the 2 extra dropped."""
    result = clip_job(_clip(tmp_path / "depth", "bar", 3, 0), preview=False)[-1]

    assert result["type"] == protocol.RESULT, result
    assert len(result["paths"]) == 3


def test_reference_pictures_are_taken_and_change_the_frames(clip_job, pictures, tmp_path):
    frames = _clip(tmp_path / "depth", "bar", 5, 0)
    plain = clip_job(frames, preview=False)[-1]
    referenced = clip_job(frames, reference_images=[str(pictures["render"])])[-1]

    assert referenced["type"] == protocol.RESULT, referenced
    assert len(referenced["paths"]) == 5
    assert any(np.abs(a - b).max() > 0 for a, b in zip(_frames(plain), _frames(referenced),
                                                  strict=True))


def _refused(events: list[dict[str, Any]], code: str, *words: str) -> None:
    final = events[-1]
    assert final["type"] == protocol.ERROR, final
    assert final["code"] == code, final
    for word in words:
        assert word in final["message"], final


def test_bad_clips_are_refused_before_anything_is_generated(backend, clip_job, tiny_models,
                                                            make_job, model_spec, tmp_path):
    frames = _clip(tmp_path / "depth", "bar", 5, 0)
    bigger = _clip(tmp_path / "big", "bar", 1, 0, size=48)

    # one frame of another size: another capture, not a resize away
    _refused(clip_job([*frames[:4], *bigger]), protocol.ErrorCode.BAD_REQUEST,
             "control frame 5", "48x48", "one size")
    # a frame removed before the job read it
    _refused(clip_job([*frames[:4], str(tmp_path / "gone.png")]),
             protocol.ErrorCode.INPUT_NOT_FOUND, "control frame 5", "does not exist")
    # more frames than the size limit (4.2 MP: 16 latent frames of 512 x 512) allows
    long = [frames[0]] * 65
    _refused(clip_job(long, width=512, height=512), protocol.ErrorCode.BAD_REQUEST,
             "65 frames", "at most 61 frames")
    _refused(clip_job([frames[0], "relative.png"]), protocol.ErrorCode.BAD_REQUEST,
             "control_frames", "absolute")
    _refused(clip_job(frames, init_image=frames[0]), protocol.ErrorCode.BAD_REQUEST,
             "init_image")
    _refused(backend.run(make_job(model_spec("wan_vace", tiny_models("wan_vace")),
                                  control_frames=frames)),
             protocol.ErrorCode.BAD_REQUEST, "first of them")
    still = make_job(model_spec("sd15_controlnet", tiny_models("sd15_controlnet")),
                     control_image=frames[0], control_frames=frames)
    _refused(backend.run(still), protocol.ErrorCode.BAD_REQUEST, "still pictures", "wan_vace")
    other = make_job(model_spec("wan_vace", tiny_models("sd15_controlnet")),
                     control_image=frames[0], control_frames=frames, width=SIZE, height=SIZE)
    _refused(backend.run(other), protocol.ErrorCode.WRONG_MODEL_FAMILY, "not one of",
             "WanVACEPipeline")
    assert not list(tmp_path.glob("job*.png"))  # nothing made
