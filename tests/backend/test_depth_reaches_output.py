"""Depth reaches every family's picture: through the real protocol and pipelines on the tiny
models, a different depth map gives a different result, the same one the same bytes, and where
a family has a control strength, 0 cuts the depth off and the default lets it through."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend import families
from t2i_core import protocol
from t2i_core.presets import DEPTH, FAMILY_INFO

TAKES_DEPTH = [name for name in families.FAMILIES if DEPTH in FAMILY_INFO[name].inputs]


@pytest.fixture(scope="module")
def depth_maps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three unlike depth pictures (near = white), 64 x 64: left-right ramp, top-down ramp, a
    near disc on a far background."""
    folder = tmp_path_factory.mktemp("depth-maps")
    rows, cols = np.mgrid[0:64, 0:64] / 63.0
    values = {"ramp": cols, "vertical": rows,
              "disc": (((rows - 0.5) ** 2 + (cols - 0.5) ** 2) < 0.1).astype(float)}
    paths = {}
    for name, value in values.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(np.round(value * 255).astype(np.uint8)).convert("RGB").save(paths[name])
    return paths


def _result_bytes(backend, job: dict) -> bytes:
    final = backend.run(job)[-1]
    assert final["type"] == protocol.RESULT, final
    return Path(final["paths"][0]).read_bytes()


@pytest.mark.parametrize("family", TAKES_DEPTH)
def test_a_different_depth_map_changes_the_result_and_the_same_reproduces_it(
        backend, tiny_models, make_job, model_spec, depth_maps, family):
    info = FAMILY_INFO[family]
    model = model_spec(family, tiny_models(family))

    def run(depth: str, strength: float = info.control_strength) -> bytes:
        # guidance 1: no negative-prompt pass, half the work, the same question
        return _result_bytes(backend, make_job(model, control_image=str(depth_maps[depth]),
                                               control_strength=strength, guidance=1.0,
                                               preview=False))

    results = {name: run(name) for name in depth_maps}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in results.items()}
    assert len(set(digests.values())) == 3, digests
    assert run("ramp") == results["ramp"]
    if info.uses_control_strength:
        # Strength 0 scales the control path out: the depth no longer matters, and the
        # family's default strength (what its presets send) is what let it in above.
        cut_off = run("ramp", strength=0.0)
        assert run("disc", strength=0.0) == cut_off
        assert cut_off != results["ramp"]
