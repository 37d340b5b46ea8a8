"""Fixtures for the ComfyUI bridge's tests: the real ComfyUI (skipped, saying why, without
T2I_TEST_COMFYUI and T2I_TEST_COMFYUI_PYTHON) behind the recording proxy."""

from __future__ import annotations

import os

import pytest

from .comfy_server import ComfyServer, find_comfyui, tiny_models
from .recording import RecordingProxy

RECORD_ENV = "T2I_COMFYUI_RECORD"  # set by `make record-comfyui`: save each live case


@pytest.fixture(scope="session")
def comfyui(request, tmp_path_factory):
    """(the running server, the proxy in front of it); one server for the session."""
    found = find_comfyui()
    if isinstance(found, str):
        pytest.skip(found)
    root, python = found
    models = tiny_models(request.config.cache.mkdir("t2i-comfyui"))
    server = ComfyServer(root, python, models, tmp_path_factory.mktemp("comfyui"))
    server.start()
    proxy = RecordingProxy(server.port)
    yield server, proxy
    proxy.close()
    server.stop()


def should_record() -> bool:
    return os.environ.get(RECORD_ENV, "") == "1"
