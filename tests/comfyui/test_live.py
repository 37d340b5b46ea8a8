"""The bridge against a real ComfyUI (T2I_TEST_COMFYUI, T2I_TEST_COMFYUI_PYTHON), each case
through the recording proxy; `make record-comfyui` runs these and keeps the recordings the
replay tests (test_replay.py) use in CI."""

from __future__ import annotations

import pytest

from .cases import CASES, Rig
from .conftest import should_record


@pytest.mark.parametrize("case", list(CASES))
def test_live(case, comfyui, tmp_path):
    server, proxy = comfyui
    if server.process is None or server.process.poll() is not None:
        server.start()  # a case before killed it
    proxy.start_case()
    rig = Rig(url=proxy.url, work=tmp_path, live=True, kill=server.kill, restart=server.start,
              server_url=server.url)
    CASES[case](rig)
    if should_record():
        proxy.save(case)
