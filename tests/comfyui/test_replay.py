"""The bridge against recordings of the real ComfyUI (tests/comfyui/recordings, made by
`make record-comfyui`): no server needed. A request the bridge sends that differs from the
recorded one (method, path, query, JSON body after normalisation) fails the case."""

from __future__ import annotations

import pytest

from .cases import CASES, Rig
from .recording import RECORDINGS, ReplayServer


@pytest.mark.parametrize("case", list(CASES))
def test_replay(case, tmp_path):
    if not (RECORDINGS / f"{case}.json").is_file():
        pytest.fail(f"no recording for {case}: run `make record-comfyui` against a ComfyUI")
    replay = ReplayServer(case)
    try:
        CASES[case](Rig(url=replay.url, work=tmp_path, live=False))
    finally:
        replay.close()
    assert replay.mismatches == [], "\n".join(replay.mismatches)
    assert replay.unused() == [], "recorded requests the bridge did not send"
