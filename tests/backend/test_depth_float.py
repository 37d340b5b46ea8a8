"""SD 2 depth2img takes the capture's float depth (`depth_float` = its `<stem>_depth.exr`, planar
Z in metres, 1e10 for background): what the float map holds beyond the 8-bit control image
reaches the picture, and a broken EXR is the job's BAD_REQUEST, not a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from t2i_core import depth_encoding as encode
from t2i_core import exr, protocol
from t2i_core.png import write_png

SIZE = 64
BLOCK = 16  # the sub-quantum pattern's cells: coarser than the 8x8-pixel latent grid


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Pairs of planar-Z EXRs that encode to one 8-bit control image (inverse encoding):
    - a floor from 2 m to 10 m under an empty sky (auto range), and the same floor moved by
      less than one grey level, nearer and farther in a checkerboard;
    - that floor before a back wall at 30 m or at 60 m, beyond a manual 2-10 m range."""
    folder = tmp_path_factory.mktemp("capture")
    rows = np.arange(SIZE)[:, None] * np.ones(SIZE)
    z = np.where(rows < 12, encode.BACKGROUND_Z, 10.0 - 8.0 * (rows - 12) / (SIZE - 13))
    background = encode.background_mask(z, clip_end=100.0)
    depth_range = encode.auto_range(z, background)
    codes = encode.to_uint8(encode.encode_depth(z, background, depth_range))
    # The inverse of the encoding, aimed 0.4 grey levels off each code, above or below.
    cells = (np.indices((SIZE, SIZE)) // BLOCK).sum(axis=0) % 2 * 2 - 1
    value = (codes + 0.4 * cells) / 255.0
    inv_near, inv_far = 1.0 / depth_range.near, 1.0 / depth_range.far
    moved = np.where(background | (codes == 0) | (codes == 255), z,
                     1.0 / (inv_far + value * (inv_near - inv_far)))
    moved_codes = encode.to_uint8(encode.encode_depth(moved, background, depth_range))
    assert np.array_equal(moved_codes, codes), "the premise: one 8-bit image for both maps"
    assert (np.abs(moved - z) > 1e-3).mean() > 0.5  # most of the floor moved
    paths = {"control": write_png(folder / "shot_depth.png", codes)}
    for name, planar in (("floor", z), ("moved", moved)):
        paths[name] = exr.write_grey_exr(folder / f"{name}_depth.exr",
                                         encode.z_for_file(planar, background))
    # A manual range that ends before the back wall: at 30 m or at 60 m it is black either way.
    manual = encode.DepthRange(near=2.0, far=10.0)
    walls = {name: np.where(rows < 12, wall, z) for name, wall in (("wall30", 30.0),
                                                                   ("wall60", 60.0))}
    wall_codes = [encode.to_uint8(encode.encode_depth(w, w > 1e9, manual)) for w in walls.values()]
    assert np.array_equal(*wall_codes) and (wall_codes[0][:12] == 0).all()
    paths["wall_control"] = write_png(folder / "wall_depth.png", wall_codes[0])
    for name, planar in walls.items():
        paths[name] = exr.write_grey_exr(folder / f"{name}_depth.exr", planar.astype(np.float32))
    return paths


@pytest.fixture
def sd2_job(tiny_models, make_job, model_spec, capture):
    model = model_spec("sd2_depth2img", tiny_models("sd2_depth2img"))

    def job(**fields):
        return make_job(model, **{"control_image": str(capture["control"]), "preview": False,
                                  **fields})

    return job


def _result(backend, job) -> bytes:
    final = backend.run(job)[-1]
    assert final["type"] == protocol.RESULT, final
    return Path(final["paths"][0]).read_bytes()


@pytest.mark.parametrize(("control", "first", "second"), [
    ("control", "floor", "moved"), ("wall_control", "wall30", "wall60")],
    ids=["within one grey level", "beyond the range"])
def test_float_maps_with_one_8bit_image_give_different_sd2_results(backend, sd2_job, capture,
                                                                   control, first, second):
    def run(name: str) -> bytes:
        return _result(backend, sd2_job(control_image=str(capture[control]),
                                        depth_float=str(capture[name])))

    result = run(first)
    assert run(second) != result
    assert run(first) == result


def test_sd2_with_the_float_depth_differs_from_the_8bit_control_image_alone(backend, sd2_job,
                                                                            capture):
    with_float = _result(backend, sd2_job(depth_float=str(capture["floor"])))
    assert _result(backend, sd2_job()) != with_float


@pytest.mark.parametrize("damage", ["truncated", "wrong size", "not an exr", "sees nothing"])
def test_a_broken_depth_exr_is_the_jobs_bad_request(
        backend, sd2_job, capture, tmp_path, damage):
    path = tmp_path / "broken_depth.exr"
    if damage == "truncated":
        data = capture["floor"].read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif damage == "wrong size":
        exr.write_grey_exr(path, np.full((SIZE // 2, SIZE), 5.0, np.float32))
    elif damage == "not an exr":
        path.write_bytes(capture["control"].read_bytes())
    else:
        exr.write_grey_exr(path, np.full((SIZE, SIZE), encode.BACKGROUND_Z, np.float32))

    final = backend.run(sd2_job(depth_float=str(path)))[-1]

    assert final["type"] == protocol.ERROR, final
    assert final["code"] == protocol.ErrorCode.BAD_REQUEST
    assert "broken_depth.exr" in final["message"]


def test_families_without_a_float_depth_input_never_read_it(backend, tiny_models, make_job,
                                                            model_spec, tmp_path):
    """The add-on sends the EXR with every capture; a ControlNet job must not fail on it."""
    path = tmp_path / "broken_depth.exr"
    path.write_bytes(b"not an exr")
    job = make_job(model_spec("sd15_controlnet", tiny_models("sd15_controlnet")),
                   depth_float=str(path), preview=False)
    assert backend.run(job)[-1]["type"] == protocol.RESULT


@pytest.mark.parametrize("source", ["control image", "float depth"])
def test_a_flat_depth_map_is_a_bad_request_for_sd2_not_a_black_picture(
        backend, sd2_job, tmp_path, source):
    """SD 2 min-max normalises its depth: a wall facing the camera would divide by zero."""
    flat = {"control_image": str(write_png(tmp_path / "flat_depth.png",
                                           np.full((SIZE, SIZE), 200, np.uint8)))}
    if source == "float depth":
        flat = {"depth_float": str(exr.write_grey_exr(tmp_path / "flat_depth.exr",
                                                      np.full((SIZE, SIZE), 3.0, np.float32)))}
    final = backend.run(sd2_job(**flat))[-1]
    assert final["type"] == protocol.ERROR, final
    assert final["code"] == protocol.ErrorCode.BAD_REQUEST
    assert "flat" in final["message"]
