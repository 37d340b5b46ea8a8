"""The add-on's backend client against the real backend process (tiny offline model)."""

from __future__ import annotations

import os
import signal
import sys
import threading

import numpy as np
import pytest
from PIL import Image
from t2i_src.blender_t2i.core import job_request as jobs
from t2i_src.blender_t2i.core import png
from t2i_src.blender_t2i.core.backend_process import BackendClient, BackendConfig, BackendFailure
from t2i_src.blender_t2i.core.presets import get_preset

TINY = get_preset("tiny-sd15-depth")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def client(tmp_path, cache_dir):
    client = BackendClient(BackendConfig(python=sys.executable, cache_dir=cache_dir,
                                         log_path=tmp_path / "backend.log"))
    client.start()
    yield client
    client.stop()


def _request(tmp_path, job_id, steps=2, size=(64, 48)):
    depth = png.write_png(tmp_path / "depth.png",
                          np.tile(np.linspace(0, 255, size[0], dtype=np.uint8), (size[1], 1)))
    return jobs.generate_request(job_id, TINY, "a red cube", "blurry", 3, steps, 7.5, 1.0, size,
                                 str(depth), str(tmp_path / "out"))


def test_one_job_through_the_real_process(client, tmp_path):
    assert client.ready["families"] and "cpu" in client.ready["devices"]
    steps = []
    client.send(_request(tmp_path, "job-1", steps=3))
    result = client.wait_for("job-1", on_event=lambda e: steps.append(e.get("step")))
    assert [s for s in steps if s] == [1, 2, 3]
    with Image.open(result["paths"][0]) as image:
        assert image.size == (64, 48)
        assert image.info["t2i:prompt"] == "a red cube"
        assert image.info["t2i:seed"] == "3"


def test_malformed_requests_get_errors_and_the_backend_keeps_serving(client, tmp_path):
    client._process.stdin.write(b"this is not json\n{\"type\": \"warp\"}\n")
    client._process.stdin.flush()
    first, second = client.events.get(timeout=30), client.events.get(timeout=30)
    assert (first["type"], first["code"]) == ("error", "BAD_REQUEST")
    assert (second["type"], second["code"]) == ("error", "UNKNOWN_REQUEST")
    bad = dict(_request(tmp_path, "job-bad"), width="wide")
    client.send(bad)
    with pytest.raises(BackendFailure, match="width") as failure:
        client.wait_for("job-bad", timeout=30)
    assert failure.value.code == "BAD_REQUEST"
    client.send(_request(tmp_path, "job-after"))
    assert client.wait_for("job-after")["paths"]


def test_missing_control_image_is_a_job_error_not_a_crash(client, tmp_path):
    request = dict(_request(tmp_path, "job-missing"), control_image=str(tmp_path / "nope.png"))
    client.send(request)
    with pytest.raises(BackendFailure) as failure:
        client.wait_for("job-missing")
    assert failure.value.code == "INPUT_NOT_FOUND"
    assert client.alive()


def test_a_killed_backend_is_reported_as_crashed(client, tmp_path):
    client.send(_request(tmp_path, "job-kill", steps=200))
    first_step = threading.Event()

    def on_event(event):
        if event["type"] == "progress" and not first_step.is_set():
            first_step.set()
            os.kill(client.pid, signal.SIGKILL)

    with pytest.raises(BackendFailure, match="stopped unexpectedly") as failure:
        client.wait_for("job-kill", on_event=on_event)
    assert failure.value.code == "BACKEND_CRASHED"
    assert not client.alive()


def test_backend_exits_when_its_stdin_closes(client):
    process = client._process
    process.stdin.close()
    assert process.wait(timeout=30) == 0


def test_a_python_without_torch_fails_to_start_with_the_reason(tmp_path, cache_dir):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    fake.chmod(0o755)
    client = BackendClient(BackendConfig(python=str(fake), cache_dir=cache_dir,
                                         log_path=tmp_path / "backend.log"))
    with pytest.raises(BackendFailure, match="No module named torch") as failure:
        client.start()
    assert failure.value.code == "BACKEND_START_FAILED"


def test_a_missing_python_is_a_configuration_error(tmp_path, cache_dir):
    client = BackendClient(BackendConfig(python=str(tmp_path / "nope"), cache_dir=cache_dir,
                                         log_path=tmp_path / "backend.log"))
    with pytest.raises(BackendFailure, match="does not exist") as failure:
        client.start()
    assert failure.value.code == "BACKEND_NOT_CONFIGURED"


def test_img2img_with_too_few_steps_for_its_strength_says_how_many(client, tmp_path):
    request = _request(tmp_path, "job-img2img", steps=1)
    request.update(init_image=request["control_image"], strength=0.6)
    client.send(request)
    with pytest.raises(BackendFailure, match="leave nothing to do") as failure:
        client.wait_for("job-img2img")
    assert failure.value.code == "BAD_REQUEST"
    assert "at least 2 steps" in failure.value.hint
    client.send(dict(request, id="job-img2img-2", steps=2))
    assert client.wait_for("job-img2img-2")["paths"]
